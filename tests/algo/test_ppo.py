"""PPO pieces against hand-computed numbers."""

import pytest
import torch

from grpokit.algo.losses import step_normalizer
from grpokit.algo.ppo import gae, last_token_index, masked_whiten, token_rewards, value_loss


def close(actual, expected, tol=1e-6):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


def test_gae_hand_computed():
    # rewards [0, 0, 1], values [0.5, 0.6, 0.7], gamma 1, lam 0.5:
    # delta_2 = 1 - 0.7 = 0.3;        A_2 = 0.3
    # delta_1 = 0.7 - 0.6 = 0.1;      A_1 = 0.1 + 0.5 * 0.3 = 0.25
    # delta_0 = 0.6 - 0.5 = 0.1;      A_0 = 0.1 + 0.5 * 0.25 = 0.225
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3), 1.0, 0.5)
    close(adv, [[0.225, 0.25, 0.3]])
    close(ret, [[0.725, 0.85, 1.0]])


def test_gae_lambda_one_is_discounted_return_minus_value():
    # gamma 0.9: returns-to-go of [0, 0, 1] are [0.81, 0.9, 1.0]; minus values
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3), 0.9, 1.0)
    close(adv, [[0.31, 0.3, 0.3]])
    close(ret, [[0.81, 0.9, 1.0]])


def test_gae_padding_is_terminal_and_ignored():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0], [0.25, 0.5, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    adv, ret = gae(rewards, values, mask, 1.0, 0.5)
    # row 1: delta_1 = 2 - 0.5 = 1.5; delta_0 = 0.5 - 0.25 = 0.25; A_0 = 0.25 + 0.5 * 1.5 = 1.0
    close(adv, [[0.225, 0.25, 0.3, 0.0], [1.0, 1.5, 0.0, 0.0]])
    close(ret, [[0.725, 0.85, 1.0, 0.0], [1.25, 2.0, 0.0, 0.0]])


def test_gae_skips_masked_positions_inside_a_row():
    # token 1 is masked (e.g. a tool output): the episode is tokens 0 and 2
    # delta_2 = 1 - 0.7 = 0.3; delta_0 = 0.7 - 0.5 = 0.2; A_0 = 0.2 + 0.5 * 0.3 = 0.35
    adv, _ = gae(torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([[0.5, 99.0, 0.7]]), torch.tensor([[1, 0, 1]]), 1.0, 0.5)
    close(adv, [[0.35, 0.0, 0.3]])


def test_gae_has_no_gradient():
    values = torch.rand(2, 3, requires_grad=True)
    adv, ret = gae(torch.rand(2, 3), values, torch.ones(2, 3))
    assert not adv.requires_grad and not ret.requires_grad


def test_token_rewards_score_at_last_token_and_kl_everywhere():
    scores = torch.tensor([1.0, 2.0, 3.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [1.0, 1.0, 1.0]])
    r = token_rewards(scores, mask, kl=kl, beta=0.5)
    # row 0: [-0.05, -0.1 + 1, 0]; row 1: [-0.2 + 2, 0, 0]; row 2 has no tokens: nothing
    close(r, [[-0.05, 0.9, 0.0], [1.8, 0.0, 0.0], [0.0, 0.0, 0.0]])
    close(token_rewards(scores, mask), [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert last_token_index(mask).tolist() == [1, 0, 0]


def test_masked_whiten():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    # masked values 1, 2, 3, 4: mean 2.5, sample std sqrt(5 / 3) = 1.2909944
    out = masked_whiten(x, mask, eps=0.0)
    close(out, [[-1.1618950, -0.3872983, 0.0], [0.3872983, 1.1618950, 0.0]])


def test_value_loss_clipped_hand_computed():
    values = torch.tensor([[1.0, 0.0]])
    old = torch.tensor([[0.5, -0.5]])
    returns = torch.tensor([[0.0, 1.0]])
    # token 0: (1 - 0)^2 = 1; V_clip = 0.5 + 0.2 = 0.7, (0.7)^2 = 0.49; max 1 -> 0.5
    # token 1: (0 - 1)^2 = 1; V_clip = -0.5 + 0.2 = -0.3, (-1.3)^2 = 1.69; max 1.69 -> 0.845
    loss, metrics = value_loss(values, old, returns, torch.ones(1, 2), clip_eps=0.2)
    assert loss.item() == pytest.approx((0.5 + 0.845) / 2)
    assert metrics["vf_clip_frac"].item() == 0.5
    assert metrics["value_mse"].item() == pytest.approx(1.0)
    unclipped, _ = value_loss(values, old, returns, torch.ones(1, 2), clip_eps=None)
    assert unclipped.item() == pytest.approx(0.5)


def test_value_loss_micro_batch_invariance():
    torch.manual_seed(0)
    v0, old, ret = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    mask = (torch.arange(4) < torch.tensor([4, 1, 3, 2, 4]).unsqueeze(1)).long()
    norm = step_normalizer(mask, "token-mean")
    full = v0.clone().requires_grad_(True)
    value_loss(full, old, ret, mask)[0].backward()
    split = v0.clone().requires_grad_(True)
    for rows in (slice(0, 2), slice(2, 5)):
        value_loss(split[rows], old[rows], ret[rows], mask[rows], normalizer=norm)[0].backward()
    torch.testing.assert_close(split.grad, full.grad)
