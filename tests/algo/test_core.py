"""The core GRPO formulas against numbers computed by hand."""

import math

import pytest
import torch

from grpokit.algo import aggregate, group_advantages, kl_k3, policy_loss, selective_logprobs, step_normalizer


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # mean 0.5; sample std = sqrt(4 * 0.25 / 3) = 0.57735
    a = group_advantages(r, eps=0.0)
    assert torch.allclose(a, torch.tensor([[0.866025, -0.866025, -0.866025, 0.866025]]), atol=1e-5)
    a = group_advantages(r, scale="none")
    assert a.tolist() == [[0.5, -0.5, -0.5, 0.5]]


def test_group_advantages_batch_scale_by_hand():
    r = torch.tensor([[1.0, 0.0], [3.0, 3.0]])
    # group-centred: [0.5, -0.5], [0, 0]; batch sample std of [1, 0, 3, 3] = sqrt(((-.75)^2 + (-1.75)^2 + 1.25^2 * 2) / 3)
    std = math.sqrt((0.75**2 + 1.75**2 + 2 * 1.25**2) / 3)
    a = group_advantages(r, scale="batch", eps=0.0)
    assert torch.allclose(a, torch.tensor([[0.5 / std, -0.5 / std], [0.0, 0.0]]), atol=1e-6)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_identical_rewards_give_exact_zero(scale):
    r = torch.tensor([[0.1, 0.1, 0.1], [0.7, 0.7, 0.7]])
    a = group_advantages(r, scale=scale)
    assert (a == 0).all() and not a.isnan().any()


def test_unscorable_rewards_get_zero_and_are_left_out():
    r = torch.tensor([[1.0, 0.0, 5.0, 0.0]])
    mask = torch.tensor([[True, True, False, True]])
    a = group_advantages(r, scale="none", mask=mask)
    # mean over valid = 1/3
    assert torch.allclose(a, torch.tensor([[2 / 3, -1 / 3, 0.0, -1 / 3]]))


def test_bad_scale_is_a_clear_error():
    with pytest.raises(ValueError, match="scale must be one of"):
        group_advantages(torch.zeros(1, 2), scale="std")


def test_kl_k3_by_hand():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -2.0]])
    # d = -0.5: exp(-0.5) + 0.5 - 1 = 0.106531; d = 0: 0
    assert torch.allclose(kl_k3(logp, ref), torch.tensor([[0.1065307, 0.0]]), atol=1e-6)


def test_selective_logprobs_matches_log_softmax_with_temperature():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    ids = torch.randint(0, 11, (3, 5))
    want = torch.log_softmax(logits / 0.7, -1).gather(-1, ids[..., None]).squeeze(-1)
    assert torch.allclose(selective_logprobs(logits, ids, 0.7), want, atol=1e-6)
    # by hand for one entry: logits [0, ln 3] at T=1 -> p = 3/4
    two = torch.tensor([[[0.0, math.log(3.0)]]])
    assert selective_logprobs(two, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))


def test_policy_loss_by_hand():
    # two sequences, two tokens each; second sequence has one real token
    logp = torch.tensor([[math.log(1.5), 0.0], [math.log(0.5), 0.0]])
    old = torch.zeros(2, 2)
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, m = policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.2)
    # seq 1: token ratios 1.5 (clipped to 1.2 for A=1 -> min(1.5, 1.2) = 1.2) and 1.0 -> -(1.2 + 1)/2 = -1.1
    # seq 2: ratio 0.5, A=-2: min(-1.0, 0.8 * -2 = -1.6) = -1.6 -> loss 1.6
    assert loss.item() == pytest.approx((-1.1 + 1.6) / 2)
    assert m["clip_high_frac"].item() == pytest.approx(1 / 3)
    assert m["clip_low_frac"].item() == pytest.approx(1 / 3)
    assert m["ratio"].item() == pytest.approx((1.5 + 1.0 + 0.5) / 3)
    # token-mean: (-1.2 - 1 + 1.6) / 3 ; constant with max_len 4: sum / (2 * 4)
    assert policy_loss(logp, old, adv, mask, aggregation="token-mean")[0].item() == pytest.approx(-0.6 / 3)
    assert policy_loss(logp, old, adv, mask, aggregation="constant", max_len=4)[0].item() == pytest.approx(-0.6 / 8)


def test_policy_loss_kl_term_by_hand():
    logp = torch.tensor([[-1.0]], requires_grad=True)
    ref = torch.tensor([[-1.5]])
    loss, m = policy_loss(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), beta=0.1, ref_logp=ref)
    assert loss.item() == pytest.approx(0.1 * 0.1065307, abs=1e-7)
    assert m["kl"].item() == pytest.approx(0.1065307, abs=1e-6)
    loss.backward()
    # d/dlogp of beta * (exp(ref - logp) - (ref - logp) - 1) = beta * (1 - exp(ref - logp))
    assert logp.grad.item() == pytest.approx(0.1 * (1 - math.exp(-0.5)), abs=1e-6)


def test_policy_gradient_sign_at_ratio_one():
    # mu = 1: ratio is 1, gradient is -A/|o| * dlogp (pushes up positive-advantage tokens)
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    loss, _ = policy_loss(logp, logp.detach(), torch.tensor([2.0]), torch.ones(1, 2))
    loss.backward()
    assert logp.grad.tolist() == [[-1.0, -1.0]]


def test_beta_without_reference_is_an_error():
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1), beta=0.1)


@pytest.mark.parametrize("aggregation", ["seq-mean-token-mean", "token-mean", "constant"])
@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_gradient_does_not_depend_on_micro_batch_split(aggregation, beta):
    torch.manual_seed(1)
    N, T = 6, 5
    theta = torch.randn(N, T, requires_grad=True)
    old = (theta.detach() + 0.3 * torch.randn(N, T))
    ref = torch.randn(N, T) - 1
    adv = torch.randn(N)
    mask = torch.ones(N, T, dtype=torch.long)
    for i, L in enumerate([5, 2, 3, 1, 4, 5]):
        mask[i, L:] = 0

    def logp_of(th):
        return torch.nn.functional.logsigmoid(th)

    full, _ = policy_loss(logp_of(theta), old, adv, mask, beta=beta, ref_logp=ref, aggregation=aggregation, max_len=T)
    (g_full,) = torch.autograd.grad(full, theta)
    norm = step_normalizer(mask, aggregation, T)
    theta.grad = None
    for rows in ([0, 1], [2, 3, 4], [5]):
        part, _ = policy_loss(logp_of(theta[rows]), old[rows], adv[rows], mask[rows], beta=beta, ref_logp=ref[rows],
                              aggregation=aggregation, max_len=T, normalizer=norm)
        part.backward()
    assert torch.allclose(theta.grad, g_full, atol=1e-6)


def test_aggregate_rejects_unknown():
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "sum")
