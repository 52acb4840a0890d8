"""Countdown's safe expression checker: grammar, number use, exact arithmetic, caps, no eval."""

from __future__ import annotations

from fractions import Fraction

import pytest

from grpokit.rewards import resolve
from grpokit.rewards.countdown import ExprError, countdown_score, evaluate


@pytest.mark.parametrize("expr,numbers,value", [
    ("1 + 2 * 3", [1, 2, 3], 7), ("(1 + 2) * 3", [1, 2, 3], 9), ("8 / 3", [8, 3], Fraction(8, 3)),
    ("10 - 4 - 3", [10, 4, 3], 3), ("24 / (4 - 2)", [24, 4, 2], 12), ("((5))", [5], 5),
    ("6 × 7", [6, 7], 42), ("6*(98 - 54) - 34 - 66", [66, 34, 98, 54, 6], 164),
    ("2 * 3 = 6", [2, 3], 6), ("7 / 2 * 2", [7, 2, 2], 7),
])
def test_evaluate(expr, numbers, value):
    assert evaluate(expr, numbers) == value


@pytest.mark.parametrize("expr,numbers,msg", [
    ("2 + 2", [2, 3], "more often"), ("5 / (3 - 3)", [5, 3, 3], "division by zero"),
    ("2 ** 3", [2, 3], "expected a number"), ("-2 + 5", [2, 5], "expected a number"),
    ("2 + ", [2], "ends too early"), ("(2 + 3", [2, 3], "ends too early"), ("2 3", [2, 3], "unexpected"),
    ("__import__('os')", [1], "unexpected character"), ("2.5 * 2", [2, 2], "unexpected"),
    ("(" * 30 + "1" + ")" * 30, [1], "nested deeper"), ("1" * 7, [1111111], "digits"),
    ("1 + " * 100 + "1", [1], "longer than"), ("2 + 3", [2, 3, 4], None),
])
def test_evaluate_rejects(expr, numbers, msg):
    if msg is None:  # valid unless every number must be used
        assert evaluate(expr, numbers) == 5
        with pytest.raises(ExprError, match="does not use all"):
            evaluate(expr, numbers, use_all=True)
    else:
        with pytest.raises(ExprError, match=msg):
            evaluate(expr, numbers)


def test_countdown_score_uses_the_single_final_answer(tmp_path):
    f = tmp_path / "pwned"
    assert countdown_score("<think>try 3*4</think><answer>(10 - 4) * 2</answer>", [10, 4, 2], 12) == 1.0
    assert countdown_score("<answer>10 - 4 * 2</answer>", [10, 4, 2], 12) == 0.0
    assert countdown_score("<answer>1+1</answer><answer>2</answer>", [1, 1, 2], 2) == 0.0
    assert countdown_score("(10 - 4) * 2", [10, 4, 2], 12) == 0.0  # no answer region
    assert countdown_score(f"<answer>__import__('os').system('touch {f}')</answer>", [1], 0) == 0.0
    assert not f.exists()


def test_countdown_reward_columns():
    fn = resolve("countdown")
    out = fn(["", "", ""], ["<answer>3 * 4</answer>", "<answer>12</answer>", "<answer>1</answer>"],
             numbers=[[3, 4], [3, 4], None], target=[12, 12, 1])
    assert out == [1.0, 0.0, None]
    assert resolve("countdown(use_all=True)")([""], ["<answer>3 * 4</answer>"], numbers=[[3, 4, 5]], target=[12]) == [0.0]
