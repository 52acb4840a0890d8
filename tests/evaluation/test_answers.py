import pytest

from grpokit.evaluation import answers
from grpokit.evaluation.answers import AnswerReader, base_name, reader_for, register_reader


def test_final_number_reader_reads_what_the_reward_grades():
    r = reader_for("final_number")
    assert r.extract("12 + 60 = 72, so the answer is 72.") == "72"
    assert r.extract("\\boxed{1,072} and then 5") == "1,072"  # a boxed answer wins over later numbers
    assert r.extract("no digits") is None
    assert r.equivalent("72", "72.0") and r.equivalent("+72", "72") and r.equivalent("1,072", "1072")
    assert not r.equivalent("72", "72.5") and not r.equivalent("x", "x")  # non-numbers never pool


def test_math_reader_pools_by_the_verifier():
    r = reader_for("math")
    assert r.extract("so \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert r.extract("<answer> 0.5 </answer>") == "0.5"
    assert r.equivalent("1/2", "0.5") and not r.equivalent("1/2", "0.25")


def test_lookup_rules():
    assert base_name("math(region=answer)") == "math"
    assert reader_for("tests.train.rewards_for_tests:first_char_is_answer") is None  # no reader: no votes
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        reader_for("nope")


def test_register_reader_plugs_a_new_reward_in(monkeypatch):
    monkeypatch.setattr(answers, "_READERS", dict(answers._READERS))
    spec = "tests.train.rewards_for_tests:first_char_is_answer"

    @register_reader(spec)
    def _first_char():
        return AnswerReader(lambda t: t[:1] or None, lambda a, b: a == b, "first char")

    r = reader_for(spec)
    assert r.extract("7 apples") == "7" and r.source == "first char"
    assert spec in answers.reader_names()
