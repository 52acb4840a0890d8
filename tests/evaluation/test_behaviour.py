import pytest

from grpokit.evaluation.behaviour import (
    answer_mentions,
    behaviour_metrics,
    count_words,
    find_aha,
    repetition,
)
from grpokit.rewards.math import grade
from grpokit.rewards.shaping import language_share, language_words

TEXTS = [
    "Wait, 2 + 2 = 5. But that is wrong. Let me check: 2 + 2 = 4. \\boxed{4}",  # 4 reflective words
    "The answer is 7.",  # none
    "However, I verify: 3 = 3. \\boxed{3}",  # 2
    "waiting for mistakes, checking errors",  # inflected forms do not count: 0
]
LENGTHS = [20, 5, 15, 10]
CORRECT = [True, False, True, False]


def has_boxed(t):
    return "\\boxed{" in t


def test_metrics_hand_computed():
    m = behaviour_metrics(TEXTS, LENGTHS, CORRECT, format_fn=has_boxed)
    assert m["behaviour/n"] == 4
    assert m["behaviour/length_mean"] == 12.5
    assert m["behaviour/length_median"] == 12.5
    assert m["behaviour/length_p90"] == pytest.approx(18.5)  # sorted 5,10,15,20: 15 + 0.7 * 5
    assert m["behaviour/length_correct_mean"] == 17.5
    assert m["behaviour/length_wrong_mean"] == 7.5
    assert m["behaviour/reflection_per_1k"] == pytest.approx(1000 * 6 / 50)
    assert m["behaviour/reflection_frac"] == 0.5
    assert m["behaviour/format_rate"] == 0.5
    assert m["behaviour/cjk_frac"] == 0.0
    assert m["behaviour/aha_count"] == 1 and m["behaviour/aha_frac"] == 0.25
    assert "behaviour/entropy" not in m  # not given: left out, not NaN


def test_reflective_words_are_whole_words_case_insensitive():
    assert count_words("WAIT. wait, Wait! waited awaits") == 3
    assert count_words("but butter rebut But") == 2
    assert [count_words(t) for t in TEXTS] == [4, 0, 2, 0]


def test_tokens_fall_back_to_words_without_lengths():
    m = behaviour_metrics(["wait a b c", "x y"])
    assert m["behaviour/length_mean"] == 3.0  # 4 and 2 words
    assert m["behaviour/reflection_per_1k"] == pytest.approx(1000 * 1 / 6)
    assert "behaviour/length_correct_mean" not in m and "behaviour/aha_count" not in m


def test_split_lengths_skip_ungraded_and_absent_classes():
    m = behaviour_metrics(["a", "b", "c"], [2, 4, 9], [True, None, True])
    assert m["behaviour/length_correct_mean"] == 5.5
    assert "behaviour/length_wrong_mean" not in m


def test_language_mix():
    assert language_words("答案是 4 because") == (1, 3)
    m = behaviour_metrics(["答案是 4 because", "hello world"])
    assert m["behaviour/cjk_frac"] == pytest.approx(3 / 6)
    assert m["behaviour/mixed_lang_frac"] == 0.5
    # the words the language-consistency reward counts: one mixed completion reads the same in both
    text = "答案是 don't know"
    assert behaviour_metrics([text])["behaviour/cjk_frac"] == pytest.approx(language_share(text, "zh")) == 3 / 5


def test_repetition_rep_n():
    # 4-grams of "a b c d a b c d": abcd bcda cdab dabc abcd -> 4 unique of 5
    assert repetition("a b c d a b c d") == pytest.approx(0.2)
    assert repetition("A b C d a B c D") == pytest.approx(0.2)  # lower-cased
    assert repetition("a b c") is None
    assert repetition("x x x x x x", n=2) == pytest.approx(1 - 1 / 5)
    m = behaviour_metrics(["a b c d a b c d", "a b c", "p q r s t"])
    assert m["behaviour/repetition"] == pytest.approx((0.2 + 0.0) / 2)


def test_entropy_is_token_weighted():
    m = behaviour_metrics(["a", "b"], entropies=[[1.0, 2.0], [3.0]])
    assert m["behaviour/entropy"] == pytest.approx(2.0)  # 6 / 3, not (1.5 + 3) / 2


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="lengths has 1 entries but there are 2 texts"):
        behaviour_metrics(["a", "b"], lengths=[3])
    with pytest.raises(ValueError, match="no completions"):
        behaviour_metrics([])


# ------------------------------------------------------------------------------------------ aha


def test_answer_mentions_kinds_and_spans():
    text = "x = 3 + 4 = 7. So the answer is 7. <answer>y = 8</answer> \\boxed{\\frac{1}{2}}"
    got = [(m.kind, m.answer, text[m.start : m.end]) for m in answer_mentions(text)]
    assert got == [
        ("equals", "7", "7"),  # "= 3 + 4" is mid-expression and skipped
        ("answer_is", "7", "7"),
        ("answer_tag", "y = 8", "y = 8"),  # the "= 8" inside is not a separate mention
        ("boxed", "\\frac{1}{2}", "\\boxed{\\frac{1}{2}}"),
    ]


def test_aha_found_with_spans():
    (aha,) = find_aha(TEXTS, CORRECT)
    text = TEXTS[0]
    assert aha.index == 0
    assert aha.first.answer == "5" and text[aha.first.start : aha.first.end] == "5"
    assert aha.marker == "wrong" and text[aha.marker_start : aha.marker_start + 5] == "wrong"
    assert aha.final.answer == "4" and text[aha.final.start : aha.final.end] == "\\boxed{4}"
    assert aha.excerpt.startswith("Wait, 2 + 2 = 5") and aha.excerpt.endswith("\\boxed{4}")
    d = aha.as_dict()
    assert d["first_span"] == [aha.first.start, aha.first.end] and d["final_answer"] == "4"


@pytest.mark.parametrize(
    "text",
    [
        "3 * 4 = 12. Then 12 + 5 = 17. \\boxed{17}",  # multi-step arithmetic, no revision
        "3 * 4 = 12. But 12 + 5 = 17. \\boxed{17}",  # "but" joins steps; not a revision marker
        "The answer is 5. The answer is 7.",  # changes answer without announcing it
        "Wait, let me check. \\boxed{7}",  # only one answer
    ],
)
def test_not_aha(text):
    assert find_aha([text], [True]) == []


def test_aha_needs_a_correct_ending():
    text = "2 + 2 = 5. Wait, wrong: 2 + 2 = 4. \\boxed{4}"
    assert len(find_aha([text], [True])) == 1
    assert find_aha([text], [False]) == []
    assert find_aha([text], [None]) == []


def test_aha_uses_the_verifier_to_compare_answers():
    text = "So x = 0.5. Wait, let me recheck. x is \\boxed{\\frac{1}{2}}"
    assert len(find_aha([text], [True])) == 1  # text comparison: 0.5 vs \frac{1}{2} differ
    assert find_aha([text], [True], equivalent=grade) == []  # same value: no change of mind
