"""Format-robust reading of a model's numeric answer: units, currency, bold, commas, a full stop."""

from __future__ import annotations

from fractions import Fraction

import pytest

from grpokit.rewards import math as m
from grpokit.rewards.arith import final_number_reward
from grpokit.rewards.numbers import plain_number


@pytest.mark.parametrize("s,value", [
    ("12 apples", 12), ("12 apples.", 12), ("1,200 dollars", 1200), ("12 dollars.", 12), ("45 minutes", 45),
    ("12 minutes in total", 12), ("**12**", 12), ("**$12**", 12), ("**12 apples**", 12), ("£12", 12),
    ("€12.50", Fraction(25, 2)), ("USD 12", 12), ("-$5", -5), ("$1,200.", 1200), ("2 hours", 2), ("5 cm", 5),
    # a word that changes the value, a variable, a second number, a hedge: not a plain number
    ("12 hundred", None), ("3 dozen", None), ("12 x", None), ("12 or 13", None), ("12 apples and 3", None),
    ("about 12", None), ("12 more than 5", None), ("1,00 apples", None), ("", None),
])
def test_plain_number_with_units_reads_a_grade_school_answer(s, value):
    assert plain_number(s, units=True) == (None if value is None else Fraction(value))


@pytest.mark.parametrize("s", ["12 apples", "**12**", "£12", "USD 12"])
def test_plain_number_stays_strict_without_units(s):
    # exact_answer and the gym task's "is every reference a number" check rely on the strict reading
    assert plain_number(s) is None


def test_math_grades_units_and_currency_in_process(monkeypatch):
    def no_pool():
        raise AssertionError("a number with a unit word must be decided without the worker pool")

    monkeypatch.setattr(m, "verify_pool", no_pool)
    m._CACHE.clear()
    golds = ["12", "12", "1200", "12", "12"]
    answers = ["12 apples.", "$12.", "$1,200 dollars", "**12**", "13 apples"]
    assert m.grade_many(golds, answers) == [True, True, True, True, False]


def test_math_reward_reads_a_boxed_answer_with_a_unit():
    out = m.math([""] * 3, ["So \\boxed{12 apples.}", "\\boxed{\\$1,200}", "\\boxed{12 dollars}"],
                 answer=["12", "1200", "13"])
    assert out == [1.0, 1.0, 0.0]


def test_final_number_reads_commas_currency_and_a_full_stop():
    completions = ["She pays 3 * $400 = $1,200.", "12 apples.", "That makes 45 minutes in total.", "7 + 5 = 12. No, 13."]
    assert final_number_reward([""] * 4, completions, answer=["1200", "12", "45", "12"]) == [1.0, 1.0, 1.0, 0.0]
