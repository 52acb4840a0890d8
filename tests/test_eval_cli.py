"""`grpokit eval` end to end on the tiny model: files, table, run-folder resolution, bad input."""

import json

import pytest

from grpokit.cli import main


def _task_file(tmp_path):
    rows = [{"question": f"say {d}", "answer": str(d)} for d in range(10) for _ in range(2)]
    p = tmp_path / "say.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


def test_eval_writes_consistent_files_and_a_table(tiny_model, tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["eval", "--model", tiny_model, "--task", _task_file(tmp_path), "--task-options", "{heldout_size: 4}",
               "-k", "4", "--pass-k", "1,4", "--max-new-tokens", "4", "--correctness", "final_number",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "say, heldout split, 4 questions, k=4 samples at T=0.6, top-p=0.95" in text
    assert "NOTE: only 4 questions" in text
    summary = json.loads((out / "summary.json").read_text())
    for name in ("greedy_acc", "pass@1", "pass@4", "cons@1", "cons@4"):
        row = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert f"{summary[name]:.4f}" in row and f"{summary[name + '_ci_high']:.4f}" in row
    assert "pass@2" not in summary  # --pass-k chose 1 and 4
    samples = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    questions = [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]
    assert len(samples) == 16 and len(questions) == 4
    assert summary["pass@1"] == pytest.approx(sum(s["correct"] for s in samples) / 16)
    assert summary["greedy_acc"] == pytest.approx(sum(q["greedy_correct"] for q in questions) / 4)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["k_values"] == [1, 4] and settings["temperature"] == 0.6 and settings["task_options"] == {"heldout_size": 4}


def test_eval_of_a_run_folder_uses_its_checkpoint_and_config(tiny_model, tmp_path, capsys):
    from grpokit.config import make
    from grpokit.train.loop import train

    run = train(make(overrides=dict(model=tiny_model, task=_task_file(tmp_path), out=str(tmp_path / "run"), steps=1,
                                    prompts_per_step=2, group_size=2, max_new_tokens=3, eval_size=0, progress=False,
                                    rewards={"final_number": 1.0}, task_options={"heldout_size": 3}, device="cpu")))
    capsys.readouterr()
    assert main(["eval", "--model", str(run), "-k", "0", "--correctness", "final_number", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert summary["checkpoint"].endswith("checkpoints/step_000001")
    assert summary["n_questions"] == 3 and summary["max_new_tokens"] == 3 and summary["task"] == "say"
    assert "greedy_acc" in summary and "pass@1" not in summary
    # One of the run's checkpoints also takes the run's settings.
    assert main(["eval", "--model", summary["checkpoint"], "-k", "0", "--correctness", "final_number", "--json"]) == 0
    again = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert again["greedy_acc"] == summary["greedy_acc"] and again["max_new_tokens"] == 3 and again["checkpoint"] is None


@pytest.mark.parametrize("argv, message", [
    (["--pass-k", "1,8", "-k", "4"], "need 1 <= k"),
    (["-n", "-1"], "-n must be >= 0"),
    (["--task-options", "[1, 2]"], "give a YAML mapping"),
])
def test_bad_input_is_a_clear_error(tiny_model, tmp_path, capsys, argv, message):
    rc = main(["eval", "--model", tiny_model, "--task", _task_file(tmp_path), "--device", "cpu"] + argv)
    assert rc == 2 and message in capsys.readouterr().err


def test_a_run_folder_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("task: add2\n")
    assert main(["eval", "--model", str(tmp_path / "run")]) == 2
    assert "has no finished checkpoint" in capsys.readouterr().err
