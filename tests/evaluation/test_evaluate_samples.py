import json
import math

import pytest

from grpokit.evaluation.runner import evaluate_samples, format_summary, write_eval
from grpokit.records import Example
from grpokit.rewards.math import answer_region, grade

EXAMPLES = [
    Example("half", "Write one half.", "1/2"),
    Example("seven", "3 + 4?", "7"),
    Example("ten", "2 + 8?", "10"),
]
SAMPLES = [
    ["\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "\\boxed{3}", "no answer here"],  # c=2, one unextracted
    ["\\boxed{5}", "\\boxed{7}", "\\boxed{7}", "\\boxed{5}"],  # c=2, 2-2 tie, 5 appears first
    ["2 + 8 = 11. Wait, that is wrong. 2 + 8 = 10. \\boxed{10}", "\\boxed{10}", "\\boxed{10}", "\\boxed{12}"],  # c=3
]
LENGTHS = [[6, 9, 6, 4], [6, 6, 6, 6], [30, 6, 6, 6]]
GREEDY = ["\\boxed{1/2}", "\\boxed{7}", "\\boxed{11}"]


@pytest.fixture(scope="module")
def result():
    return evaluate_samples(EXAMPLES, SAMPLES, grade, answer_region, [1, 2, 4], token_lengths=LENGTHS,
                            format_fn=lambda t: "\\boxed{" in t, greedy_texts=GREEDY)


def test_summary_numbers(result):
    s, _, _ = result
    assert s["n_questions"] == 3 and s["samples_min"] == s["samples_max"] == 4
    assert s["pass@1"] == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    # pass@2 with n=4: c=2 -> 1 - C(2,2)/C(4,2) = 5/6; c=3 -> 1
    assert s["pass@2"] == pytest.approx((5 / 6 + 5 / 6 + 1) / 3)
    assert s["pass@4"] == pytest.approx(1.0)
    # votes: {0.5, \frac12} beats 3 (correct); 5 vs 7 tie -> 5 (wrong); 10 (correct)
    assert s["cons@4"] == pytest.approx(2 / 3) and s["cons@4_tie_frac"] == pytest.approx(1 / 3)
    assert s["cons@1"] == pytest.approx(2 / 3)  # first samples: 0.5 ok, 5 wrong, ...=10 ok
    assert s["greedy_acc"] == pytest.approx(2 / 3)
    assert s["extract_rate"] == pytest.approx(11 / 12)
    assert s["grade_errors"] == 0
    assert "pass@1" in s and "pass@1_se" in s and "cons@4_ci_low" in s and "greedy_acc_ci_high" in s
    assert "3 questions" in s["note"]
    assert s["behaviour/aha_count"] == 1
    assert s["behaviour/format_rate"] == pytest.approx(11 / 12)
    assert s["behaviour/length_mean"] == pytest.approx(sum(map(sum, LENGTHS)) / 12)


def test_every_estimate_has_an_interval(result):
    s, _, _ = result
    for name in ("pass@1", "pass@2", "pass@4", "cons@1", "cons@2", "cons@4", "greedy_acc"):
        assert s[f"{name}_ci_low"] <= s[name] <= s[f"{name}_ci_high"], name
        assert not math.isnan(s[f"{name}_se"])


def test_records(result):
    _, per_q, per_s = result
    assert [q["n_correct"] for q in per_q] == [2, 2, 3]
    assert per_q[1]["cons@4"] == {"answer": "5", "correct": False, "count": 2, "tie": True, "tied": ["5", "7"]}
    assert per_q[0]["cons@4"]["answer"] == "0.5" and per_q[0]["cons@4"]["correct"] is True
    assert per_q[0]["votes"] == [["0.5", 2], ["3", 1]]
    assert per_q[2]["pass@2"] == 1.0 and per_q[2]["greedy_correct"] is False
    assert len(per_s) == 12
    assert per_s[3] == {"id": "half", "sample": 3, "text": "no answer here", "extracted": None,
                        "correct": False, "length": 4, "format": False}
    aha = [r for r in per_s if "aha" in r]
    assert len(aha) == 1 and aha[0]["id"] == "ten" and aha[0]["sample"] == 0
    assert aha[0]["aha"]["first_answer"] == "11" and aha[0]["aha"]["final_answer"] == "10"


def test_k_larger_than_samples_is_a_clear_error():
    with pytest.raises(ValueError, match="k=5 needs at least 5 samples"):
        evaluate_samples(EXAMPLES, SAMPLES, grade, answer_region, [5])
    with pytest.raises(ValueError, match="3 examples but 2 sample lists"):
        evaluate_samples(EXAMPLES, SAMPLES[:2], grade, answer_region, [1])


def test_verifier_exceptions_count_as_wrong_and_are_reported():
    def fragile(gold, ans):
        if ans == "boom":
            raise RuntimeError("parser exploded")
        return gold == ans

    s, _, per_s = evaluate_samples([Example("a", "q", "1")], [["\\boxed{1}", "\\boxed{boom}"]], fragile,
                                   answer_region, [1, 2])
    assert s["pass@1"] == 0.5 and s["grade_errors"] >= 1
    assert "parser exploded" in s["grade_error_examples"][0]["error"]
    assert per_s[1]["correct"] is False


def test_write_eval_files(result, tmp_path):
    s, per_q, per_s = result
    paths = write_eval(tmp_path / "eval", s, per_q, per_s)
    lines = paths["per_sample.jsonl"].read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[8])["aha"]["marker"] == "Wait"
    assert len(paths["per_question.jsonl"].read_text().splitlines()) == 3
    assert json.loads(paths["summary.json"].read_text())["pass@2"] == pytest.approx(s["pass@2"])
    table = paths["summary.txt"].read_text()
    assert table == format_summary(s)
    row = next(line for line in table.splitlines() if line.startswith("cons@4 "))
    assert f"{s['cons@4']:.4f}" in row and f"{s['cons@4_ci_low']:.4f}" in row
    assert "NOTE: only 3 questions" in table


def test_precomputed_correctness_and_no_extractor():
    # Correctness from elsewhere (the task's reward); without an extractor nothing votes.
    correct = [[True, False, False, False], [False] * 4, [True, True, True, True]]
    s, per_q, per_s = evaluate_samples(EXAMPLES, SAMPLES, None, None, [1, 2], correct=correct,
                                       greedy_texts=GREEDY, greedy_correct=[False, True, True])
    assert s["pass@1"] == pytest.approx((1 / 4 + 0 + 1) / 3)
    assert s["pass@2"] == pytest.approx((1 / 2 + 0 + 1) / 3)  # c=1, n=4: 1 - C(3,2)/C(4,2) = 1/2
    assert s["greedy_acc"] == pytest.approx(2 / 3)
    assert not any(k.startswith("cons@") for k in s) and "extract_rate" not in s
    assert "votes" not in per_q[0] and per_s[0]["extracted"] is None and per_s[0]["correct"] is True


def test_greedy_only():
    s, per_q, per_s = evaluate_samples(EXAMPLES, None, grade, answer_region, greedy_texts=GREEDY,
                                       greedy_lengths=[5, 4, 6])
    assert s["greedy_acc"] == pytest.approx(2 / 3) and s["extract_rate"] == 1.0
    assert s["behaviour_of"] == "greedy" and s["behaviour/length_mean"] == pytest.approx(5.0)
    assert not any(k.startswith(("pass@", "cons@", "samples_")) for k in s)
    assert per_s == [] and [q["greedy_correct"] for q in per_q] == [True, True, False]
    assert per_q[2]["greedy_text"] == "\\boxed{11}" and per_q[2]["greedy_length"] == 6


def test_missing_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="sampled texts, greedy texts, or both"):
        evaluate_samples(EXAMPLES, None, grade, answer_region)
    with pytest.raises(ValueError, match="pass grade_fn and extract_fn, or precomputed"):
        evaluate_samples(EXAMPLES, SAMPLES, None, answer_region, [1])
    with pytest.raises(ValueError, match="correct must have one entry per sample"):
        evaluate_samples(EXAMPLES, SAMPLES, None, None, [1], correct=[[True]] * 3)
