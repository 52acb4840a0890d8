"""The explorer's advantage scalings against hand-computed numbers."""

import math

import pytest

from grpokit.explorer.scaling import SCALINGS, scale_group


def test_group_scale_divides_by_the_bessel_std_plus_eps():
    s = scale_group([1.0, 0.0, 1.0, 0.0], "group")
    std = math.sqrt((4 * 0.25) / 3)  # sample std of [1, 0, 1, 0]
    assert s.mean == pytest.approx(0.5) and s.std == pytest.approx(std)
    assert s.advantages == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 2, rel=1e-6)
    assert s.baselines == [0.5] * 4


def test_none_scale_is_reward_minus_mean():
    s = scale_group([1.1, 0.1, 0.0, 1.1], "none")
    assert s.advantages == pytest.approx([1.1 - 0.575, 0.1 - 0.575, -0.575, 1.1 - 0.575], rel=1e-6)


def test_rloo_subtracts_the_mean_of_the_others():
    s = scale_group([1.0, 0.0, 0.0, 0.0], "rloo")
    assert s.advantages == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3])
    assert s.baselines == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])
    # RLOO = G/(G-1) * (r - mean)
    assert s.advantages[0] == pytest.approx(4 / 3 * (1.0 - 0.25))


def test_rloo_leaves_unscorable_completions_out():
    s = scale_group([1.0, None, 0.0, 0.0], "rloo")
    assert s.advantages == pytest.approx([1.0, 0.0, -0.5, -0.5])
    assert s.baselines[1] is None and s.baselines[0] == pytest.approx(0.0)
    assert s.mean == pytest.approx(1 / 3)


@pytest.mark.parametrize("scale", sorted(SCALINGS))
def test_equal_rewards_or_one_valid_reward_give_exact_zeros(scale):
    assert scale_group([0.7, 0.7, 0.7], scale).advantages == [0.0, 0.0, 0.0]
    assert scale_group([0.7, None, None], scale).advantages == [0.0, 0.0, 0.0]


def test_unknown_scale_names_the_choices():
    with pytest.raises(ValueError, match="group.*none.*rloo"):
        scale_group([1.0, 0.0], "batchnorm")
