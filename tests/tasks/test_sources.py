"""Task sources: reasoning-gym by name, countdown, GSM8K and HumanEval samples, name routing."""

from __future__ import annotations

import pytest

from grpokit.rewards import build, score
from grpokit.tasks import load_task, task_names


def test_gym_task_by_name_has_a_fixed_disjoint_heldout_split():
    t = load_task("gym:leg_counting", train_size=30, heldout_size=10, seed=3)
    again = load_task("gym:leg_counting", train_size=30, heldout_size=10, seed=3)
    assert t.name == "gym:leg_counting" and len(t.heldout) == 10 and 0 < len(t.train) <= 30
    assert [e.question for e in t.heldout] == [e.question for e in again.heldout]
    assert not {e.question for e in t.train} & {e.question for e in t.heldout}
    assert t.rewards == {"math": 1.0}  # every leg count is a plain number
    assert t.train[0].columns["data_source"] == "gym:leg_counting"
    ex = t.heldout[0]
    s = score(build(t.rewards), [""], [f"\\boxed{{{ex.answer}}}"], {"answer": [ex.answer]})
    assert s.per_fn["math"] == [1.0]


def test_gym_non_numeric_answers_use_exact_match_and_config_reaches_the_generator():
    t = load_task("gym:spell_backward", train_size=5, heldout_size=5, config={"min_word_len": 5})
    assert t.rewards == {"exact_answer": 1.0}
    ex = t.heldout[0]
    s = score(build(t.rewards), ["", ""], [f"<answer>{ex.answer.upper()}</answer>", "<answer>nope</answer>"],
              {"answer": [ex.answer] * 2})
    assert s.per_fn["exact_answer"] == [1.0, 0.0]


def test_gym_errors_are_clear():
    with pytest.raises(ValueError, match="unknown reasoning-gym dataset 'no_such'"):
        load_task("gym:no_such")
    with pytest.raises(ValueError, match="name what follows 'gym:'"):
        load_task("gym:")
    assert "gym:<name>" in task_names() and "countdown" in task_names()


def test_countdown_task_and_its_reward():
    t = load_task("countdown", train_size=20, heldout_size=10)
    for ex in t.train + t.heldout:
        assert 3 <= len(ex.columns["numbers"]) <= 4 and ex.columns["target"] not in ex.columns["numbers"]
        assert str(ex.columns["target"]) in ex.question
    ex = t.heldout[0]
    cols = {"answer": [ex.answer] * 2, **{k: [v] * 2 for k, v in ex.columns.items()}}
    right = f"<think>search</think> <answer>{ex.answer}</answer>"
    s = score(build(t.rewards), ["", ""], [right, "<think>x</think> <answer>1 + 1</answer>"], cols)
    assert s.per_fn["countdown"] == [1.0, 0.0]
    assert s.total.tolist() == pytest.approx([1.1, 0.1])


def test_gsm8k_sample_is_eval_only_and_graded_exactly():
    t = load_task("gsm8k")
    assert t.train == [] and len(t.heldout) == 100 and t.correctness == "math_exact"
    ex = t.heldout[0]
    s = score(build(t.rewards), [""], [f"\\boxed{{{ex.answer}.00}}"], {"answer": [ex.answer]})
    assert s.per_fn["math_exact"] == [1.0]


def test_humaneval_task_has_164_problems_with_tests():
    t = load_task("humaneval")
    assert len(t.heldout) == 164 and t.train == [] and t.rewards == {"code_tests": 1.0}
    assert {e.columns["tests"]["format"] for e in t.heldout} == {"humaneval"}
    split = load_task("humaneval", heldout_size=64, seed=1)
    assert len(split.train) == 100 and not {e.id for e in split.train} & {e.id for e in split.heldout}
