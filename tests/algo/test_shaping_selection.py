"""DAPO's overlong shaping and dynamic-sampling selection against hand-computed values."""

import pytest
import torch

from grpokit.algo.selection import informative_groups
from grpokit.algo.shaping import overlong_filter, overlong_penalty


def test_overlong_penalty_zones():
    # max 20, cache 5: safe up to 15, then -(len - 15) / 5, -1 beyond 20
    lengths = torch.tensor([10, 15, 16, 18, 20, 21])
    assert overlong_penalty(lengths, 20, 5).tolist() == pytest.approx([0.0, 0.0, -0.2, -0.6, -1.0, -1.0])


def test_overlong_penalty_dapo_numbers():
    # DAPO: L_max 20480, L_cache 4096: 16384 is free, 18432 is half-way
    assert overlong_penalty(torch.tensor([16384, 18432]), 20480, 4096).tolist() == pytest.approx([0.0, -0.5])


def test_overlong_penalty_rejects_bad_cache():
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty(torch.tensor([1]), 10, 0)
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty(torch.tensor([1]), 10, 11)


def test_overlong_filter_masks_truncated_rows():
    mask = torch.ones(3, 2, dtype=torch.long)
    out = overlong_filter(mask, torch.tensor([False, True, False]))
    assert out.tolist() == [[1, 1], [0, 0], [1, 1]]


def test_informative_groups():
    rewards = torch.tensor([
        [1.0, 0.0, 1.0],  # mixed: keep
        [1.0, 1.0, 1.0],  # all right: drop
        [0.0, 0.0, 0.0],  # all wrong: drop
        [0.5, 0.5, 0.6],  # graded, not all equal: keep
        [1.0, 0.0, 0.0],  # masked below to a single valid reward: drop
        [1.0, 1.0, 0.0],  # masked below to two equal rewards: drop
    ])
    mask = torch.ones_like(rewards, dtype=torch.bool)
    mask[4, 1:] = False
    mask[5, 2] = False
    assert informative_groups(rewards, mask).tolist() == [True, False, False, True, False, False]
    assert informative_groups(rewards).tolist() == [True, False, False, True, True, True]
