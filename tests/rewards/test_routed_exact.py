"""Per-row routing on data_source, and the exact-match reward for non-numeric answers."""

from __future__ import annotations

import pytest
import torch

from grpokit.rewards import build, resolve, score
from grpokit.rewards.exact import normalize, same_answer


@pytest.mark.parametrize("gold,answer,same", [
    ("Paris", " paris. ", True), ("cat, dog", "Cat,  dog", True), ("72", "72.0", True), ("yes", "'Yes'", True),
    ("\\text{blue}", "blue", True), ("red", "blue", False), ("1 2 3", "1 2 4", False),
])
def test_same_answer(gold, answer, same):
    assert same_answer(gold, answer) is same


def test_normalize():
    assert normalize("  $x$ ") == "x"


def test_routed_mixes_sources_and_weights():
    fn = resolve("routed(routes={'math': {'math': 1.0, 'boxed_format': 0.5}, 'countdown': 'countdown', 'gym': ['exact_answer']})")
    completions = ["\\boxed{4}", "<answer>3 * 4</answer>", "<answer>Paris</answer>", "\\boxed{5}"]
    out = fn([""] * 4, completions, data_source=["math", "countdown", "gym:capitals", "math"],
             answer=["4", None, "paris", "4"], numbers=[None, [3, 4], None, None], target=[None, 12, None, None],
             completion_ids=torch.zeros(4, 3))
    assert out == [1.5, 1.0, 1.0, 0.5]


def test_routed_unknown_source_is_an_error_for_that_row_only():
    specs = build({"routed": 1.0})
    s = score(specs, ["", ""], ["\\boxed{1}", "\\boxed{1}"], {"data_source": ["math", "poetry"], "answer": ["1", "1"]})
    assert s.per_fn["routed"] == [1.0, None]
    assert "no reward route for data_source 'poetry'" in s.errors[0]["error"]
