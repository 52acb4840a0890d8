"""Rejection-sampling filters on hand-made samples."""

import pytest

from grpokit.datagen.filters import FILTERS, Candidate, FilterSettings, language_share, normalise, select

GOOD = "<think> 2 + 2 = 4, check: 4 - 2 = 2. </think> <answer> 4 </answer>"
S = FilterSettings()


def cand(text=GOOD, tokens=20, truncated=False, reward=1.0):
    return Candidate(text, tokens, truncated, reward)


def test_language_share_by_hand():
    assert language_share("two plus two") == 1.0
    assert language_share("two 加 two") == pytest.approx(2 / 3)  # one CJK char = one word
    assert language_share("加法", "cjk") == 1.0
    # No words: 0, as the language-consistency reward gives (one function; this filter used to say 1.0).
    assert language_share("12 + 3 = 15") == 0.0
    assert not FILTERS["language"](cand(text="12 + 3 = 15"), S)
    with pytest.raises(ValueError, match="unknown script"):
        language_share("x", "greek")


@pytest.mark.parametrize("name, c, ok", [
    ("correct", cand(reward=1.0), True), ("correct", cand(reward=0.0), False), ("correct", cand(reward=None), False),
    ("format", cand(), True), ("format", cand(text="4"), False),
    ("format", cand(text=GOOD + " <answer> 5 </answer>"), False),
    ("language", cand(text="<think> 二加二 </think> <answer> 4 </answer>"), False), ("language", cand(), True),
    ("length", cand(truncated=True), False), ("length", cand(tokens=0), False), ("length", cand(tokens=20), True),
    ("repetition", cand(text="a b c d " * 10), False), ("repetition", cand(), True),
])
def test_each_filter(name, c, ok):
    assert FILTERS[name](c, S) is ok


def test_thresholds_are_used():
    assert not FILTERS["length"](cand(tokens=50), FilterSettings(max_tokens=40))
    assert FILTERS["correct"](cand(reward=0.5), FilterSettings(min_reward=0.5))
    assert FILTERS["language"](cand(text="two 加 two"), FilterSettings(min_language_share=0.6))


def test_select_keeps_in_order_drops_duplicates_and_counts_rejections():
    cands = [cand(reward=0.0), cand(), cand(text="  " + GOOD.replace(" 4 ", "\n4  ") + " "), cand(text=GOOD.replace("4", "5")),
             cand(text=GOOD.replace("2", "3"))]
    rejected = {}
    kept = select(cands, ["correct", "format", "duplicate"], S, max_keep=2, rejected=rejected)
    # 0 wrong; 1 kept; 2 is 1 again once normalised; 3 kept; 4 passes but the quota of 2 is full
    assert kept == [1, 3]
    assert rejected == {"correct": 1, "duplicate": 1, "max_keep": 1}
    assert normalise("  A\n\tB ") == "a b"


def test_unknown_filter_is_an_error():
    with pytest.raises(ValueError, match="unknown filter"):
        select([cand()], ["correct", "readable"], S)
