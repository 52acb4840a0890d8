"""The real command line, end to end on a tiny model."""

import json
import shlex
import subprocess
import sys

from grpokit.run_folder import RunReader


def _grpokit(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "grpokit", *args], capture_output=True, text=True, timeout=timeout)


def test_two_step_train_then_eval(tiny_model, tmp_path):
    task = tmp_path / "t.jsonl"
    task.write_text("".join(json.dumps({"question": f"{a} + {b}", "answer": str(a + b)}) + "\n" for a in range(6) for b in range(4)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 2\nprompts_per_step: 2\ngroup_size: 3\nmax_new_tokens: 5\neval_size: 3\n")
    out = tmp_path / "run"
    r = _grpokit("train", "--config", str(cfg), "--model", tiny_model, "--task", str(task), "--out", str(out),
                 "--lr", "1e-4", "--progress", "false")
    assert r.returncode == 0, r.stderr
    assert "before ->" in r.stdout and "after" in r.stdout
    run = RunReader(out)
    assert run.status()["state"] == "finished"
    assert [m["step"] for m in run.metrics()] == [1, 2]
    assert run.config()["lr"] == 1e-4 and run.config()["group_size"] == 3  # YAML + override, resolved
    assert [e["step"] for e in run.evals()] == [0, 2]
    ckpt = out / "checkpoints" / "step_000002"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "config.json").exists()
    r = _grpokit("eval", "--model", str(ckpt), "--task", str(task), "-n", "3", "-k", "2", "--max-new-tokens", "4", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["n_questions"] == 3


def _main(capsys, *args):
    from grpokit.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse exits on usage errors
        code = e.code
    return code, capsys.readouterr()


def test_clear_errors(tmp_path, capsys):
    code, out = _main(capsys, "train", "--model", str(tmp_path / "nope"), "--progress", "false", "--out", str(tmp_path / "r"))
    assert code == 2 and "no model folder" in out.err
    code, out = _main(capsys, "train", "--stepz", "3")
    assert code == 2 and "unrecognized arguments" in out.err
    code, out = _main(capsys, "train", "--steps", "three")
    assert code == 2 and "'steps'" in out.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-5\nbogus_key: 1\n")
    code, out = _main(capsys, "train", "--config", str(bad))
    assert code == 2 and "bogus_key" in out.err


def test_the_resume_command_a_stopped_run_prints_continues_it_with_its_own_config(tiny_model, tmp_path, capsys):
    """What the trainer prints at a stop (`grpokit train --out RUN --resume true`) works: RUN's
    config.yaml is the base, not the defaults; a key that cannot change mid-run is refused, even with
    --override, and leaves config.yaml as it was."""
    task = tmp_path / "t.jsonl"
    task.write_text("".join(json.dumps({"question": f"{a} + {b}", "answer": str(a + b)}) + "\n" for a in range(6) for b in range(4)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 3\nprompts_per_step: 2\ngroup_size: 3\nmax_new_tokens: 5\neval_size: 0\nlr: 1e-3\n"
                   "template: plain\nprogress: false\n")
    out = tmp_path / "run"
    code, got = _main(capsys, "train", "--config", str(cfg), "--model", tiny_model, "--task", str(task), "--out", str(out),
                      "--stop_after", "1")
    assert code == 0, got.err
    printed = shlex.split(got.out.split("continue with: ")[1].splitlines()[0])
    assert printed[:2] == ["grpokit", "train"]
    saved = RunReader(out).config()
    code, got = _main(capsys, *printed[1:], "--group_size", "4", "--override", "group_size")
    assert code == 2 and "group_size cannot change" in got.err and "drop --group_size" in got.err
    assert RunReader(out).config() == saved
    code, got = _main(capsys, *printed[1:])
    assert code == 0, got.err
    run = RunReader(out)
    assert run.status()["state"] == "finished" and [m["step"] for m in run.metrics()] == [1, 2, 3]
    per_invocation = ("resume", "stop_after")
    assert {k: v for k, v in run.config().items() if k not in per_invocation} == \
        {k: v for k, v in saved.items() if k not in per_invocation}
    assert not (out / "config_history.jsonl").exists()


def test_help_documents_every_option(capsys):
    import dataclasses

    from grpokit.config import TrainConfig, field_docs

    code, out = _main(capsys, "train", "--help")
    assert code == 0
    docs = field_docs()
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name}" in out.out and docs.get(f.name), f.name


def test_rewards_check_samples_from_a_model(tiny_model, tmp_path, capsys):
    task = tmp_path / "t.jsonl"
    task.write_text("".join(json.dumps({"question": f"{a} + 1", "answer": str(a + 1)}) + "\n" for a in range(10)))
    code, out = _main(capsys, "rewards", "check", "--task", str(task), "--model", tiny_model, "-n", "2", "-g", "3")
    assert code == 0, out.err
    assert out.out.count("reference:") == 2 and "6 completions" in out.out
    code, out = _main(capsys, "rewards", "bogus")
    assert code == 2 and "rewards check" in out.err
