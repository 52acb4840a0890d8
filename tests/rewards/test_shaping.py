"""Shaping rewards against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from grpokit.rewards import resolve
from grpokit.rewards.shaping import language_share, overlong_value, reasoning_text, repetition_value


def test_reasoning_text():
    assert reasoning_text("<think>abc</think><answer>x</answer>") == "abc"
    assert reasoning_text("pre-filled thoughts</think> answer") == "pre-filled thoughts"
    assert reasoning_text("<think>unfinished") == "unfinished"
    assert reasoning_text("no tags") == "no tags"


@pytest.mark.parametrize("text,target,share", [
    ("the sum is four", "en", 1.0),
    ("我们计算 the sum", "en", 2 / 6),   # 4 ideographs + 2 English words
    ("我们计算 the sum", "zh", 4 / 6),
    ("2 + 2 = 4", "en", 0.0),           # no words at all
    ("it's 你", "en", 0.5),
])
def test_language_share(text, target, share):
    assert language_share(text, target) == pytest.approx(share)


def test_language_consistency_reward_reads_only_the_reasoning_and_a_language_column():
    fn = resolve("language_consistency")
    c = ["<think>think in english</think><answer>答案</answer>", "<think>用中文思考 ok</think><answer>x</answer>"]
    assert fn(["", ""], c) == [1.0, pytest.approx(1 / 6)]
    assert fn(["", ""], c, language=["zh", "zh"]) == [0.0, pytest.approx(5 / 6)]
    assert resolve("language_consistency(target='zh')")(["", ""], c)[1] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="supports"):
        resolve("language_consistency(target='fr')")


@pytest.mark.parametrize("length,expected", [
    (0, 0.0), (750, 0.0), (751, -1 / 250), (875, -0.5), (1000, -1.0), (1001, -1.0),
])
def test_overlong_value_dapo_formula(length, expected):
    # L_max = 1000, L_cache = 250: the ramp starts after 750 tokens
    assert overlong_value(length, 1000, 250) == pytest.approx(expected)


def test_overlong_reward_from_completion_ids():
    fn = resolve("overlong(max_len=10, cache=4)")
    ids = [[1] * 6, [1] * 8, torch.ones(10, dtype=torch.long), [1] * 12]
    assert fn([""] * 4, [""] * 4, completion_ids=ids) == [0.0, pytest.approx(-0.5), -1.0, -1.0]


def test_overlong_without_max_len_uses_the_column_or_says_how_to_configure():
    fn = resolve("overlong")
    assert fn([""], [""], completion_ids=[[1] * 9], max_new_tokens=[10]) == [pytest.approx(-0.5)]  # cache 10//5 = 2
    with pytest.raises(ValueError, match=r"overlong\(max_len=1024"):
        fn([""], [""], completion_ids=[[1] * 9])
    with pytest.raises(ValueError, match="completion_ids"):
        fn([""], [""])
    with pytest.raises(ValueError, match="0 < cache <= max_len"):
        resolve("overlong(max_len=10, cache=20)")


@pytest.mark.parametrize("tokens,n,value", [
    ([1, 2, 3, 4, 5], 3, 0.0),
    ([1, 2, 1, 2, 1, 2], 2, -(1 - 2 / 5)),    # bigrams 12 21 12 21 12: 2 distinct of 5
    ([7] * 10, 3, -(1 - 1 / 8)),
    ([1, 2], 3, 0.0),
])
def test_repetition_value(tokens, n, value):
    assert repetition_value(tokens, n) == pytest.approx(value)


def test_repetition_reward_uses_ids_or_words():
    fn = resolve("repetition(ngram=2, max_penalty=0.5)")
    assert fn([""], ["a b a b a b"]) == [pytest.approx(-0.5 * (1 - 2 / 5))]
    assert fn([""], ["ignored"], completion_ids=[torch.tensor([1, 2, 3])]) == [0.0]
