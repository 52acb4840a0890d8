"""The real thing: `grpokit pipeline` as a process, stopped by Ctrl-C (SIGINT) and by SIGKILL mid-stage,
then re-run: the final checkpoint is the one an uninterrupted run makes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpokit.pipeline import recipe as rcp
from grpokit.pipeline.runner import run_pipeline, stage_manifests
from grpokit.train.run_folder import read_jsonl
from tests.pipeline.helpers import toy_task

ROOT = Path(__file__).resolve().parents[2]


def _start(args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "grpokit", "pipeline", "r1_zero", "--no-progress", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_steps(proc, metrics: Path, n: int, timeout=240):
    t0 = time.time()
    while len(read_jsonl(metrics)) < n:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() - t0 < timeout, "the run did not reach the step in time"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigint_and_sigkill_during_the_rl_stage(tiny_model, tmp_path):
    overrides = [f"model={tiny_model}", f"task={toy_task(tmp_path / 'toy.jsonl')}", "task_options={heldout_size: 4}",
                 "steps=40", "prompts_per_step=2", "group_size=3", "max_new_tokens=6", "eval_n=4", "eval_k=2",
                 "rl.save_every=1"]
    want = tmp_path / "uninterrupted"
    assert run_pipeline(rcp.load_recipe("r1_zero", overrides), str(want), progress=False) == 0

    out = tmp_path / "run"
    metrics = out / "stages/rl/metrics.jsonl"
    proc = _start(["--out", str(out), *overrides])
    _wait_for_steps(proc, metrics, 2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the step in flight finishes, a checkpoint is saved
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, log
    assert "stopped before finishing" in log
    assert [m["state"] for m in stage_manifests(out)] == ["interrupted", "not started"]

    proc = _start(["--out", str(out), *overrides])  # resumes, then dies without any chance to clean up
    n_before = len(read_jsonl(metrics))
    _wait_for_steps(proc, metrics, n_before + 2)  # 40 steps: the kill lands well before the stage ends
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert stage_manifests(out)[0]["state"] == "running"  # what a killed process leaves behind

    assert run_pipeline(rcp.load_recipe("r1_zero", overrides), str(out), progress=False) == 0
    final = [json.loads((r / "pipeline.json").read_text())["final_model_sha256"] for r in (want, out)]
    assert final[0] == final[1]
    assert [m["step"] for m in read_jsonl(metrics)] == list(range(1, 41))
