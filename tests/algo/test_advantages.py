"""Advantage estimators against hand-computed numbers (worked out in the comments)."""

import pytest
import torch

from grpokit.algo.advantages import (
    ADVANTAGE_ESTIMATORS,
    get_advantage_estimator,
    group_advantages,
    register_advantage,
)
from grpokit.algo.process import process_advantages

# Group A = [1, 0, 0, 1]: mean 0.5, deviations +-0.5, sample std sqrt(4 * 0.25 / 3) = 0.5773503.
# Group B = [1, 1, 1, 1]: flat.
# Group C = [0, 0.5, 1, 1]: mean 0.625, deviations -0.625, -0.125, 0.375, 0.375,
#   sum of squares 0.6875, sample std sqrt(0.6875 / 3) = 0.4787136.
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.5, 1.0, 1.0]])


def close(actual, expected, tol=1e-5):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


def test_registry_holds_every_estimator():
    assert set(ADVANTAGE_ESTIMATORS) == {"grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline"}


def test_grpo_group_std_with_bessel():
    adv = get_advantage_estimator("grpo")(REWARDS, eps=0.0)
    close(adv, [
        [0.8660254, -0.8660254, -0.8660254, 0.8660254],  # 0.5 / 0.5773503
        [0.0, 0.0, 0.0, 0.0],
        [-1.3055824, -0.2611165, 0.7833495, 0.7833495],  # deviations / 0.4787136
    ])


def test_grpo_eps_is_added_to_the_std():
    adv = get_advantage_estimator("grpo")(torch.tensor([[1.0, 0.0]]), eps=0.1)
    # G = 2: deviations +-0.5, sample std sqrt(0.5) = 0.7071068; 0.5 / 0.8071068 = 0.6194973
    close(adv, [[0.6194973, -0.6194973]])


def test_grpo_equals_group_advantages_scale_group():
    torch.testing.assert_close(ADVANTAGE_ESTIMATORS["grpo"](REWARDS), group_advantages(REWARDS, scale="group"))


def test_dr_grpo_has_no_std():
    close(ADVANTAGE_ESTIMATORS["dr_grpo"](REWARDS), [
        [0.5, -0.5, -0.5, 0.5],
        [0.0, 0.0, 0.0, 0.0],
        [-0.625, -0.125, 0.375, 0.375],
    ])


def test_rloo_leave_one_out():
    close(ADVANTAGE_ESTIMATORS["rloo"](REWARDS), [
        [2 / 3, -2 / 3, -2 / 3, 2 / 3],  # 1 - mean(0, 0, 1); 0 - mean(1, 0, 1)
        [0.0, 0.0, 0.0, 0.0],
        [-5 / 6, -1 / 6, 0.5, 0.5],  # 0 - 2.5/3; 0.5 - 2/3; 1 - 1.5/3
    ])


def test_rloo_with_masked_completion():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 7.0]])
    mask = torch.tensor([[True, True, True, False]])
    # n = 3: 1 - mean(0, 0) = 1; 0 - mean(1, 0) = -0.5; the masked one gets 0
    close(ADVANTAGE_ESTIMATORS["rloo"](rewards, mask), [[1.0, -0.5, -0.5, 0.0]])


def test_reinforce_pp_normalises_over_the_whole_batch():
    # 12 rewards: eight 1s, three 0s, one 0.5; sum 8.5, mean 0.7083333;
    # sum of squares 8 * 0.2916667^2 + 3 * 0.7083333^2 + 0.2083333^2 = 2.2291667;
    # sample std sqrt(2.2291667 / 11) = 0.4501683
    adv = ADVANTAGE_ESTIMATORS["reinforce_pp"](REWARDS, eps=0.0)
    one, zero, half = 0.6479052, -1.5734840, -0.4627894
    close(adv, [[one, zero, zero, one], [one, one, one, one], [zero, half, one, one]])
    # the flat group keeps a positive advantage: batch-level baseline, not group-level
    assert (adv[1] > 0).all()


def test_reinforce_pp_flat_batch_is_exactly_zero():
    adv = ADVANTAGE_ESTIMATORS["reinforce_pp"](torch.full((2, 3), 0.3))
    assert torch.equal(adv, torch.zeros(2, 3))


def test_reinforce_pp_baseline_centres_per_group_then_batch_std():
    # c = group-centred rewards: [0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [-0.625, -0.125, 0.375, 0.375];
    # mean of c is 0; sum of squares 4 * 0.25 + 0.6875 = 1.6875; std sqrt(1.6875 / 11) = 0.3916747
    adv = ADVANTAGE_ESTIMATORS["reinforce_pp_baseline"](REWARDS, eps=0.0)
    close(adv, [
        [1.2765695, -1.2765695, -1.2765695, 1.2765695],
        [0.0, 0.0, 0.0, 0.0],
        [-1.5957118, -0.3191424, 0.9574271, 0.9574271],
    ])


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_masked_completions_get_zero_and_do_not_move_the_others(name):
    rewards = torch.tensor([[1.0, 0.0, 0.5, 100.0], [0.0, 1.0, 1.0, -100.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    fn = ADVANTAGE_ESTIMATORS[name]
    with_mask = fn(rewards, mask)
    assert with_mask[:, 3].eq(0).all()
    torch.testing.assert_close(with_mask[:, :3], fn(rewards[:, :3]))


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_no_nan_for_single_completion_or_flat_groups(name):
    fn = ADVANTAGE_ESTIMATORS[name]
    assert torch.isfinite(fn(torch.tensor([[1.0]]))).all()
    assert torch.isfinite(fn(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))).all()


def test_unknown_estimator_and_duplicate_registration_fail_clearly():
    with pytest.raises(ValueError, match="unknown advantage estimator 'grpoo'.*dr_grpo"):
        get_advantage_estimator("grpoo")
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(lambda r, m=None, *, eps=1e-4: r)


def test_bad_shapes_fail_clearly():
    with pytest.raises(ValueError, match=r"\[B, G\]"):
        ADVANTAGE_ESTIMATORS["rloo"](torch.zeros(4))
    with pytest.raises(ValueError, match="mask shape"):
        ADVANTAGE_ESTIMATORS["grpo"](torch.zeros(2, 3), torch.ones(3, 2, dtype=torch.bool))


# -- process supervision ---------------------------------------------------------------------------


def test_process_advantages_sum_of_later_normalised_steps():
    # steps: completion 0 ends steps at tokens 0 (reward 1) and 2 (reward 0);
    #        completion 1 ends steps at tokens 1 (0) and 3 (0).
    # R = {1, 0, 0, 0}: mean 0.25, sample std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    # normalised: 1 -> 1.5, 0 -> -0.5
    adv = process_advantages([[(0, 1.0), (2, 0.0)], [(1, 0.0), (3, 0.0)]], 5, eps=0.0)
    close(adv, [
        [1.0, -0.5, -0.5, 0.0, 0.0],  # t=0: 1.5 - 0.5; t=1,2: only the step ending at 2
        [-1.0, -1.0, -0.5, -0.5, 0.0],
    ])


def test_process_advantages_default_eps_and_empty_completion():
    # R = {1, 0}: mean 0.5, sample std 0.7071068; normalised +-0.5 / (0.7071068 + 1e-4) = +-0.7070068
    adv = process_advantages([[(1, 1.0)], [(0, 0.0)], []], 3)
    close(adv, [[0.7070068, 0.7070068, 0.0], [-0.7070068, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_process_advantages_flat_or_single_step_is_zero():
    assert torch.equal(process_advantages([[(0, 1.0)], [(1, 1.0)]], 2), torch.zeros(2, 2))
    assert torch.equal(process_advantages([[(0, 3.0)], []], 2), torch.zeros(2, 2))


def test_process_advantages_rejects_out_of_range_step():
    with pytest.raises(ValueError, match="outside"):
        process_advantages([[(5, 1.0)]], 5)
