"""The eval stage: its numbers are the stated functions of the samples it writes."""

import json

import pytest

from grpokit.datagen.filters import language_share
from grpokit.pipeline.evaluate import EvalConfig, comparison_table, evaluate_model
from grpokit.evaluation.report import load_runs
from grpokit.rewards.format import is_r1_format
from grpokit.run_folder import read_jsonl
from tests.pipeline.helpers import toy_task


def test_eval_numbers_match_its_samples(tiny_model, tmp_path):
    cfg = EvalConfig(model=tiny_model, task=toy_task(tmp_path / "toy.jsonl"), task_options={"heldout_size": 5}, k=3,
                     max_new_tokens=8, template="plain", temperature=1.5, correctness="tests.pipeline.helpers:has_digit",
                     prompts_per_batch=2, out=str(tmp_path / "ev"), progress=False)
    res = evaluate_model(cfg)
    samples = read_jsonl(tmp_path / "ev/samples.jsonl")
    assert len(samples) == 5 * 3 and res["n_questions"] == 5 and res["k"] == 3
    assert [s["correct"] for s in samples] == [any(ch.isdigit() for ch in s["text"]) for s in samples]
    assert res["pass@1"] == pytest.approx(sum(s["correct"] for s in samples) / 15)
    assert res["behaviour/format_rate"] == pytest.approx(sum(is_r1_format(s["text"]) for s in samples) / 15)
    assert res["language_consistency"] == pytest.approx(sum(language_share(s["text"]) for s in samples) / 15)
    assert json.loads((tmp_path / "ev/result.json").read_text())["pass@1"] == res["pass@1"]
    (run,) = load_runs([str(tmp_path / "ev")])  # grpokit report reads the stage folder like a run
    assert run.evals[0]["pass@1"] == res["pass@1"]


def test_comparison_table_layout():
    a = {"pass@1": 0.25, "pass@1_se": 0.05, "behaviour/format_rate": 0.1, "n_questions": 10, "k": 4}
    b = {"pass@1": 0.5, "pass@1_se": float("nan"), "behaviour/format_rate": 0.9, "n_questions": 10, "k": 4}
    table = comparison_table([("zero", a, {"sequences": 100, "seconds": 7}), ("r1", b, {"sequences": 90})])
    lines = table.splitlines()
    assert lines[0] == "| metric | zero | r1 |"
    assert "| held-out pass@1 | 0.250 ± 0.050 | 0.500 |" in lines
    assert "| format compliance | 0.100 | 0.900 |" in lines
    assert "| language consistency | — | — |" in lines
    assert "| budget: sequences sampled or trained on | 100 | 90 |" in lines
    assert "| budget: wall-clock seconds | 7 | — |" in lines
