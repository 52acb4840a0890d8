"""Every stop can be resumed, bit-identically (deterministic mode): a fault-injection matrix.

A process is killed with SIGKILL (``GRPOKIT_FAULT=PHASE@STEP``, see grpokit.train.faults) at every
phase of a step: after sampling, after the update, between the metrics line and the checkpoint,
mid-checkpoint, after it. One chain of runs per algorithm meets each phase once (step 1 at the first
phase, step 2 at the second, ...), each run resuming what the previous one left; the final weights
and metrics (timings aside) must equal an uninterrupted run's. The fault is injected by the process
itself at a named point, so nothing depends on timing. Then the in-process stops: a second Ctrl-C
in evaluation, an error, a full disk at the final save, a stop inside the update.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpokit.config import make
from grpokit.pipeline import recipe as rcp
from grpokit.pipeline.runner import model_hash, run_pipeline, stage_manifests
from grpokit.train import checkpoint as ckpt
from grpokit.train.faults import ENV, PHASES
from grpokit.train.loop import train
from grpokit.run_folder import RunReader, read_jsonl
from grpokit.train.session import LOCK, RunLocked
from tests.pipeline.helpers import toy_task

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("time/", "throughput/", "memory/")
COMMON = dict(steps=len(PHASES) + 1, prompts_per_step=2, group_size=3, max_new_tokens=5, eval_size=0, progress=False,
              lr=1e-2, template="plain", rewards={"tests.train.rewards_for_tests:digit_share": 1.0},
              task_options={"heldout_size": 4}, deterministic=True, save_every=1)


def _cli_args(values: dict) -> list[str]:
    return [a for k, v in values.items() for a in (f"--{k}", json.dumps(v) if isinstance(v, dict) else str(v))]


def _subprocess(args: list[str], fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env.pop(ENV, None)
    if fault:
        env[ENV] = fault
    return subprocess.run([sys.executable, "-m", "grpokit", *args], env=env, capture_output=True, text=True, timeout=600)


def _metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if not k.startswith(VOLATILE)} for m in RunReader(run).metrics()]


def _same_run(got: Path, want: Path) -> None:
    assert model_hash(ckpt.latest(got)) == model_hash(ckpt.latest(want))
    assert _metrics(got) == _metrics(want)
    assert RunReader(got).status()["state"] == "finished"


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return toy_task(tmp_path_factory.mktemp("faults") / "toy.jsonl")


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_sigkill_at_every_phase_resumes_bit_identical(tiny_model, task, tmp_path, algo):
    values = {**COMMON, "model": tiny_model, "task": task, "algo": algo}
    want = train(make(overrides={**values, "out": str(tmp_path / "want")}))
    out = tmp_path / "run"
    args = ["train", *_cli_args({**values, "out": str(out)})]
    for step, phase in enumerate(PHASES, 1):
        proc = _subprocess(args + (["--resume", "true"] if step > 1 else []), f"{phase}@{step}")
        assert proc.returncode == -9, (phase, proc.stdout[-2000:], proc.stderr[-3000:])  # killed where asked
        assert RunReader(out).status()["state"] == "running"  # what a killed process leaves: stale, and a lock
        assert (out / LOCK).exists()
    proc = _subprocess(args + ["--resume", "true"], None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_run(out, want)
    assert not (out / LOCK).exists()
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []  # the half save is gone


def test_sigkill_in_the_pipeline_rl_stage_resumes_bit_identical(tiny_model, task, tmp_path):
    overrides = [f"model={tiny_model}", f"task={task}", "task_options={heldout_size: 4}", "steps=3",
                 "prompts_per_step=2", "group_size=3", "max_new_tokens=5", "eval_n=4", "eval_k=2",
                 "lr=1e-2", "rl.save_every=1", "rl.deterministic=true",
                 'rl.rewards={"tests.train.rewards_for_tests:digit_share": 1.0}']
    want = tmp_path / "want"
    assert run_pipeline(rcp.load_recipe("r1_zero", overrides), str(want), progress=False) == 0
    out = tmp_path / "run"
    args = ["pipeline", "r1_zero", "--no-progress", "--out", str(out), *overrides]
    proc = _subprocess(args, "updated@1:sigint")  # Ctrl-C: step 1 finishes, is saved, the pipeline stops
    assert proc.returncode == 130 and "stopped before finishing" in proc.stderr, proc.stderr[-3000:]
    assert [m["state"] for m in stage_manifests(out)] == ["interrupted", "not started"]
    for fault in ("checkpointing@2", "logged@3"):
        proc = _subprocess(args, fault)
        assert proc.returncode == -9, (fault, proc.stdout[-2000:], proc.stderr[-3000:])
    assert stage_manifests(out)[0]["state"] == "running"
    assert run_pipeline(rcp.load_recipe("r1_zero", overrides), str(out), progress=False) == 0
    final = [json.loads((r / "pipeline.json").read_text())["final_model_sha256"] for r in (want, out)]
    assert final[0] == final[1]
    assert _metrics(out / "stages/rl") == _metrics(want / "stages/rl")


def test_ctrl_c_twice_while_sampling_saves_the_step_before_under_its_own_number(tiny_model, task, tmp_path):
    values = {**COMMON, "model": tiny_model, "task": task, "steps": 3, "save_every": 0, "out": str(tmp_path / "run")}
    proc = _subprocess(["train", *_cli_args(values)], "sampled@2:sigint2")
    assert proc.returncode == 130, proc.stderr[-3000:]
    status = RunReader(tmp_path / "run").status()
    assert status["state"] == "interrupted" and status["step"] == 1
    assert ckpt.latest(tmp_path / "run").name == "step_000001"
    assert [m["step"] for m in RunReader(tmp_path / "run").metrics()] == [1]


# --- in-process stops: Ctrl-C, errors, a full disk ---

def _cfg(tiny_model, task, out, **kw):
    return make(overrides={**COMMON, "model": tiny_model, "task": task, "out": str(out), "steps": 3, "save_every": 0,
                           **kw})


@pytest.fixture(scope="module")
def reference(tiny_model, task, tmp_path_factory):
    return train(_cfg(tiny_model, task, tmp_path_factory.mktemp("ref") / "run"))


def _resume(tiny_model, task, out, **kw):
    return train(_cfg(tiny_model, task, out, resume=True, **kw))


def test_second_ctrl_c_after_the_update_saves_that_step_under_its_own_number(tiny_model, task, tmp_path, reference,
                                                                          monkeypatch):
    monkeypatch.setenv(ENV, "updated@2:interrupt")  # where the evaluation of step 2 runs
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_model, task, tmp_path / "run", eval_every=1))
    status = RunReader(tmp_path / "run").status()
    assert status["state"] == "interrupted" and status["step"] == 2
    assert ckpt.latest(tmp_path / "run").name == "step_000002"
    assert [m["step"] for m in RunReader(tmp_path / "run").metrics()] == [1, 2]
    monkeypatch.delenv(ENV)
    _same_run(_resume(tiny_model, task, tmp_path / "run", override="eval_every"), reference)


def test_an_error_saves_the_last_completed_step_and_says_failed(tiny_model, task, tmp_path, reference, monkeypatch):
    monkeypatch.setenv(ENV, "sampled@2:error")
    with pytest.raises(RuntimeError, match="injected"):
        train(_cfg(tiny_model, task, tmp_path / "run"))
    status = RunReader(tmp_path / "run").status()
    assert status["state"] == "failed" and status["step"] == 1 and "injected fault" in status["error"]
    assert ckpt.latest(tmp_path / "run").name == "step_000001"
    monkeypatch.delenv(ENV)
    _same_run(_resume(tiny_model, task, tmp_path / "run"), reference)


def test_a_full_disk_at_the_final_save_leaves_a_resumable_folder(tiny_model, task, tmp_path, reference, monkeypatch):
    monkeypatch.setenv(ENV, "checkpointing@3:disk")
    with pytest.raises(OSError, match="No space left"):
        train(_cfg(tiny_model, task, tmp_path / "run"))
    status = RunReader(tmp_path / "run").status()
    assert status["state"] == "failed" and "No space left" in status["error"] and status["step"] == 0
    assert ckpt.latest(tmp_path / "run").name == "step_000000"  # the start, saved before step 1
    monkeypatch.delenv(ENV)
    _same_run(_resume(tiny_model, task, tmp_path / "run"), reference)


def test_a_stop_inside_the_update_never_saves_half_updated_weights(tiny_model, task, tmp_path, reference):
    def stop(rec):
        if rec.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_model, task, tmp_path / "run"), on_update=stop)
    status = RunReader(tmp_path / "run").status()
    assert status["state"] == "interrupted" and status["step"] == 0  # step 1 was never saved; step 2 half-done
    assert ckpt.latest(tmp_path / "run").name == "step_000000"
    _same_run(_resume(tiny_model, task, tmp_path / "run"), reference)


# --- the lock, and resuming with another config ---

def test_a_live_lock_keeps_a_second_run_off_and_a_dead_one_is_taken_over(tiny_model, task, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(f"{os.getppid()}\n")  # a process that is alive
    with pytest.raises(RunLocked, match=f"in use by process {os.getppid()}"):
        train(_cfg(tiny_model, task, out, steps=1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK).write_text(dead.stdout)
    train(_cfg(tiny_model, task, out, steps=1))
    assert RunReader(out).status()["state"] == "finished" and not (out / LOCK).exists()


def test_resume_refuses_a_changed_config_unless_overridden_and_records_it(tiny_model, task, tmp_path, reference):
    out = tmp_path / "run"
    train(_cfg(tiny_model, task, out, stop_after=1))
    with pytest.raises(ValueError, match=r"lr: 0.01 -> 0.02.*--override lr"):
        _resume(tiny_model, task, out, lr=2e-2)
    assert RunReader(out).config()["lr"] == 0.01  # not rewritten by the refused run
    _resume(tiny_model, task, out, lr=2e-2, override="lr")
    assert RunReader(out).config()["lr"] == 0.02
    history = read_jsonl(out / "config_history.jsonl")
    assert history == [{"time": history[0]["time"], "step": 1, "changed": {"lr": [0.01, 0.02]}}]
    assert [e["changed"] for e in RunReader(out).events() if e["kind"] == "config_changed"] == [{"lr": [0.01, 0.02]}]


# --- nothing non-finite reaches the weights ---

def _weights_finite(run):
    from safetensors.torch import load_file

    return all(torch.isfinite(t).all() for t in load_file(ckpt.latest(run) / "model.safetensors").values())


def test_nan_and_inf_rewards_are_unscorable_and_leave_finite_weights(tiny_model, task, tmp_path):
    run = train(_cfg(tiny_model, task, tmp_path / "run", rewards={"tests.train.rewards_for_tests:nan_every_other": 1.0}))
    metrics, events = RunReader(run).metrics(), RunReader(run).events()
    # caught by the reward contract (a reward_error, problem non_finite): of 6 completions 0, 4 (inf), 1, 3, 5 (NaN), every step
    bad = [e for e in events if e["kind"] == "reward_error" and e["problem"] == "non_finite"]
    assert len(bad) == 15 and {e["index"] for e in bad} == {0, 1, 3, 4, 5}
    assert all(m["reward/unscorable_frac"] == pytest.approx(5 / 6) and m["reward/nonfinite"] == 5 for m in metrics)
    assert RunReader(run).status()["state"] == "finished" and _weights_finite(run)


def _nan_grad_norm(monkeypatch, calls_to_spoil: int):
    real, calls = torch.nn.utils.clip_grad_norm_, []

    def spoiled(params, max_norm, *a, **kw):
        calls.append(1)
        norm = real(params, max_norm, *a, **kw)
        return torch.tensor(float("nan")) if len(calls) <= calls_to_spoil else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spoiled)


def test_non_finite_steps_are_skipped_then_the_run_goes_on(tiny_model, task, tmp_path, monkeypatch):
    _nan_grad_norm(monkeypatch, calls_to_spoil=2)
    run = train(_cfg(tiny_model, task, tmp_path / "run", steps=3, max_skipped_steps=3))
    assert [m["optim/skipped_steps"] for m in RunReader(run).metrics()] == [1, 1, 0]
    assert len([e for e in RunReader(run).events() if e["kind"] == "nonfinite_update"]) == 2
    assert RunReader(run).status()["state"] == "finished" and _weights_finite(run)


def test_too_many_skipped_steps_in_a_row_stop_the_run(tiny_model, task, tmp_path, monkeypatch):
    _nan_grad_norm(monkeypatch, calls_to_spoil=100)
    with pytest.raises(RuntimeError, match="max_skipped_steps=2"):
        train(_cfg(tiny_model, task, tmp_path / "run", steps=3, max_skipped_steps=2))
    status = RunReader(tmp_path / "run").status()
    assert status["state"] == "failed" and "max_skipped_steps" in status["error"]
    start = model_hash(tiny_model)
    assert model_hash(ckpt.latest(tmp_path / "run")) == start  # no step reached the weights
