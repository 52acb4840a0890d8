"""Reward debugging: per-completion lines and a summary that separates format, wrong, unscorable."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from grpokit.records import Example
from grpokit.evaluation.check import Sampled, check_rewards, main
from grpokit.tasks import Task

TASK = Task(name="t", train=[], heldout=[Example("a", "1+1?", "2"), Example("b", "2+2?", "4"), Example("c", "?", None)],
            rewards={"math": 1.0, "r1_format": 0.5}, correctness="math")


def test_check_separates_the_three_failure_kinds():
    completions = [
        ["<think>1+1</think><answer>2</answer>", "<think>x</think><answer>3</answer>", "the answer is 2"],
        ["\\boxed{4} or \\boxed{5}", "<think>y</think><answer>4</answer>"],
        ["\\boxed{1}"],  # no reference answer: the math reward cannot score it
    ]
    out = io.StringIO()
    report = check_rewards(TASK, completions=completions, out=out)
    cats = [(r.example_id, r.category, r.extraction) for r in report.rows]
    assert cats == [("a", "correct", "ok"), ("a", "wrong", "ok"), ("a", "format", "missing"),
                    ("b", "format", "multiple"), ("b", "correct", "ok"), ("c", "unscorable", "ok")]
    assert report.counts() == {"correct": 2, "wrong": 1, "format": 2, "unscorable": 1}
    assert report.format_reasons() == {"missing": 1, "multiple": 1}
    assert report.rows[0].total == 1.5 and report.rows[0].rewards == {"math": 1.0, "r1_format": 1.0}
    text = out.getvalue()
    assert "== a  reference: 2" in text and "answer=3" in text and "(multiple)" in text
    assert "6 completions: correct 2 (33%), wrong 1 (17%), format 2 (33%), unscorable 1 (17%)" in text
    assert "format failures by reason: missing 1, multiple 1" in text
    assert "math (weight 1): mean 0.400 over 5 scored" in text


def test_check_with_a_sampler_passes_prompts_ids_and_truncation():
    seen = {}

    def sample(questions):
        seen["q"] = questions
        return [[Sampled("2</think><answer>2</answer>", completion_ids=[1] * 9, prompt="Q <think>")] for _ in questions]

    report = check_rewards(TASK, sample=sample, n=1, rewards=["r1_format", "overlong(max_len=10, cache=4)"],
                           out=io.StringIO())
    assert seen["q"] == ["1+1?"]
    assert report.rows[0].rewards == {"r1_format": 1.0, "overlong(max_len=10, cache=4)": pytest.approx(-0.75)}


def test_check_needs_exactly_one_source():
    with pytest.raises(ValueError, match="either completions"):
        check_rewards(TASK, out=io.StringIO())


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_check_code_rows_show_code_and_no_code():
    tests = {"format": "stdio", "inputs": ["3\n"], "outputs": ["6\n"]}
    task = Task(name="c", train=[], heldout=[Example("p", "double it", None, {"tests": tests})],
                rewards={"code_tests": 1.0}, correctness="code_tests")
    report = check_rewards(task, completions=[["```python\nprint(2 * int(input()))\n```", "print(6)", "```python\nprint(5)\n```"]],
                           out=io.StringIO())
    assert [(r.category, r.extraction) for r in report.rows] == [("correct", "ok"), ("format", "no_code"), ("wrong", "ok")]
    assert report.rows[0].extracted == "<1 lines of code>"


def test_main_reads_canned_completions(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"{i}+1?", "answer": str(i + 1)}) for i in range(10)))
    from grpokit.tasks import load_task

    task = load_task(str(data), heldout_size=2)
    comp = tmp_path / "c.jsonl"
    comp.write_text("\n".join(json.dumps({"id": ex.id, "completions": [f"\\boxed{{{ex.answer}}}", "\\boxed{0}"]})
                              for ex in task.heldout))
    assert main(["--task", str(data), "--completions", str(comp)]) == 0
    assert "4 completions: correct 2 (50%), wrong 2 (50%), format 0 (0%), unscorable 0 (0%)" in capsys.readouterr().out
    from grpokit.models import ModelNotFound

    with pytest.raises(ModelNotFound, match="'m' is neither a local folder"):  # --model samples through the engine
        main(["--task", str(data), "--model", "m"])
