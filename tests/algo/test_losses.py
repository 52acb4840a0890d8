"""Policy losses against hand-computed numbers; micro-batch invariance; skipping zero-advantage rows."""

import math

import pytest
import torch

from grpokit.algo.losses import AGGREGATIONS, POLICY_LOSSES, get_policy_loss, gspo_loss, policy_loss, step_normalizer
from grpokit.algo.selection import skippable_sequences

# Two sequences, two tokens; the second sequence's last token is padding.
# ratios: row 0 = [1.5, 0.9], row 1 = [0.7, 1.0]; advantages [+1, -1]
RATIO = torch.tensor([[1.5, 0.9], [0.7, 1.0]])
OLD = torch.zeros(2, 2)
LOGP = RATIO.log()
ADV = torch.tensor([1.0, -1.0])
MASK = torch.tensor([[1, 1], [1, 0]])
# per-token loss with eps 0.2: row 0 (A=+1): -min(1.5, 1.2) = -1.2, -min(0.9, 0.9) = -0.9
#                               row 1 (A=-1): -min(-0.7, -0.8) = 0.8, (padding)


def test_registry():
    assert POLICY_LOSSES == {"token_clip": policy_loss, "gspo": gspo_loss}
    with pytest.raises(ValueError, match="unknown policy loss 'ppo'"):
        get_policy_loss("ppo")


@pytest.mark.parametrize(
    "aggregation, expected",
    [
        ("seq-mean-token-mean", (-1.05 + 0.8) / 2),  # row means -1.05 and 0.8
        ("token-mean", (-1.2 - 0.9 + 0.8) / 3),
        ("constant", (-1.2 - 0.9 + 0.8) / (2 * 2)),  # N * max_len
    ],
)
def test_token_clip_aggregations(aggregation, expected):
    loss, metrics = policy_loss(LOGP, OLD, ADV, MASK, aggregation=aggregation)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert metrics["clip_high_frac"].item() == pytest.approx(1 / 3)  # 1.5 > 1.2 with A > 0
    assert metrics["clip_low_frac"].item() == pytest.approx(1 / 3)  # 0.7 < 0.8 with A < 0
    assert metrics["ratio"].item() == pytest.approx((1.5 + 0.9 + 0.7) / 3)
    assert metrics["tokens"].item() == 3


def test_clip_higher_raises_only_the_upper_bound():
    loss, _ = policy_loss(LOGP, OLD, ADV, MASK, eps_low=0.2, eps_high=0.28, aggregation="token-mean")
    assert loss.item() == pytest.approx((-1.28 - 0.9 + 0.8) / 3, abs=1e-6)


def test_token_clip_gradient_is_zero_where_clipped():
    logp = LOGP.clone().requires_grad_(True)
    policy_loss(logp, OLD, ADV, MASK, aggregation="token-mean")[0].backward()
    # d/dlogp of -rho*A / 3 = -rho*A/3 where unclipped: row 0 token 1 -> -0.9/3; clipped tokens -> 0
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.3], [0.0, 0.0]]))


def test_kl_in_the_loss_with_each_estimator():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[-1.0, 0.0]])  # x = logp - ref = [1, 0]
    mask = torch.ones(1, 2)
    adv = torch.zeros(1)
    for est, per_token in {"k1": [1.0, 0.0], "k2": [0.5, 0.0], "k3": [math.exp(-1), 0.0]}.items():
        loss, metrics = policy_loss(logp, logp, adv, mask, beta=0.1, ref_logp=ref, kl_estimator=est)
        assert loss.item() == pytest.approx(0.1 * sum(per_token) / 2, abs=1e-7)
        assert metrics["kl"].item() == pytest.approx(math.exp(-1) / 2, abs=1e-7)  # metric is k3 always


def test_beta_without_reference_fails_clearly():
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(LOGP, OLD, ADV, MASK, beta=0.04)
    with pytest.raises(ValueError, match="ref_logp"):
        gspo_loss(LOGP, OLD, ADV, MASK, beta=0.04)


# -- GSPO ------------------------------------------------------------------------------------------


def test_gspo_sequence_ratio_value_and_gradient():
    # one sequence, log-ratios [0.1, 0.3] -> s = exp(0.2) = 1.2214028; A = 1
    logp = torch.tensor([[0.1, 0.3]], requires_grad=True)
    old, mask, adv = torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1)
    loss, metrics = gspo_loss(logp, old, adv, mask, eps_low=0.5, eps_high=0.5)
    assert loss.item() == pytest.approx(-1.2214028, abs=1e-6)
    loss.backward()
    # d(-s)/dlogp_t = -s / |o| = -0.6107014 on both tokens
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.6107014, -0.6107014]]))
    assert metrics["ratio"].item() == pytest.approx(1.2214028, abs=1e-6)


def test_gspo_clips_the_whole_sequence_with_paper_defaults():
    # s = exp(0.2) is far above 1 + 4e-4: clipped, loss -(1 + 4e-4) * A, no gradient
    logp = torch.tensor([[0.1, 0.3]], requires_grad=True)
    loss, metrics = gspo_loss(logp, torch.zeros(1, 2), torch.tensor([2.0]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(-2 * 1.0004, abs=1e-6)
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(1, 2))
    assert metrics["clip_high_frac"].item() == 1.0


def test_gspo_ratio_ignores_padding_and_averages_over_sequences():
    # row 0: log-ratios [0.2, (pad 5.0)] -> s = exp(0.2); row 1: [-0.1, -0.3] -> s = exp(-0.2)
    logp = torch.tensor([[0.2, 5.0], [-0.1, -0.3]])
    mask = torch.tensor([[1, 0], [1, 1]])
    adv = torch.tensor([1.0, -1.0])
    loss, _ = gspo_loss(logp, torch.zeros(2, 2), adv, mask, eps_low=1.0, eps_high=1.0)
    # (-exp(0.2) + exp(-0.2)) / 2 = (-1.2214028 + 0.8187308) / 2
    assert loss.item() == pytest.approx(-0.201336, abs=1e-6)


def test_gspo_rejects_per_token_advantages():
    with pytest.raises(ValueError, match="one advantage per sequence"):
        gspo_loss(LOGP, OLD, torch.ones(2, 2), MASK)


def test_gspo_on_policy_gradient_equals_token_clip_seq_mean():
    torch.manual_seed(0)
    base = torch.randn(4, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    adv = torch.randn(4)
    grads = []
    for fn in (gspo_loss, policy_loss):
        logp = base.clone().requires_grad_(True)
        fn(logp, base, adv, mask, eps_low=0.2, eps_high=0.2)[0].backward()
        grads.append(logp.grad)
    torch.testing.assert_close(grads[0], grads[1])


# -- micro-batch invariance ------------------------------------------------------------------------


def _batch(seed=0, n=6, t=7):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 1, 4, 6, 2, 5])[:n]
    mask = (torch.arange(t) < lengths.unsqueeze(1)).long()
    old = -torch.rand(n, t, generator=g) * 2
    logp0 = old + 0.3 * torch.randn(n, t, generator=g)
    ref = old + 0.1 * torch.randn(n, t, generator=g)
    adv = torch.randn(n, generator=g)
    return logp0, old, ref, adv, mask


def _grad(loss_fn, logp0, old, ref, adv, mask, splits, shared_normalizer=True, **kw):
    logp = logp0.clone().requires_grad_(True)
    agg = kw["aggregation"]
    norm = step_normalizer(mask, agg, max_len=mask.shape[1])
    start = 0
    for size in splits:
        rows = slice(start, start + size)
        loss, _ = loss_fn(
            logp[rows], old[rows], adv[rows], mask[rows], ref_logp=ref[rows], max_len=mask.shape[1],
            normalizer=norm if shared_normalizer else None, **kw,
        )
        loss.backward()
        start += size
    return logp.grad


@pytest.mark.parametrize("loss_name", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("splits", [(3, 3), (1, 4, 1), (2, 1, 3)])
def test_gradient_does_not_depend_on_the_micro_batch_split(loss_name, aggregation, splits):
    args = _batch()
    kw = dict(aggregation=aggregation, eps_low=0.2, eps_high=0.28, beta=0.04)
    fn = POLICY_LOSSES[loss_name]
    full = _grad(fn, *args, splits=(6,), **kw)
    assert full.abs().sum() > 0
    torch.testing.assert_close(_grad(fn, *args, splits=splits, **kw), full, rtol=1e-5, atol=1e-7)


def test_per_micro_batch_token_mean_would_change_the_gradient():
    # the check above can fail: normalising each micro-batch by its own tokens is wrong
    args = _batch()
    kw = dict(aggregation="token-mean", beta=0.0)
    full = _grad(policy_loss, *args, splits=(6,), **kw)
    local = _grad(policy_loss, *args, splits=(1, 5), shared_normalizer=False, **kw)
    assert not torch.allclose(full, local, atol=1e-4)


# -- skipping zero-advantage sequences -------------------------------------------------------------


@pytest.mark.parametrize("loss_name", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_skipping_zero_advantage_sequences_keeps_the_gradient_when_beta_is_zero(loss_name, aggregation):
    logp0, old, ref, adv, mask = _batch(seed=1)
    adv = adv * torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])  # three sequences cannot teach
    fn = POLICY_LOSSES[loss_name]
    kw = dict(aggregation=aggregation, beta=0.0, max_len=mask.shape[1])
    norm = step_normalizer(mask, aggregation, max_len=mask.shape[1])

    full = logp0.clone().requires_grad_(True)
    fn(full, old, adv, mask, normalizer=norm, **kw)[0].backward()

    skip = skippable_sequences(adv, mask, beta=0.0)
    assert skip.tolist() == [False, True, False, True, True, False]
    kept = logp0.clone().requires_grad_(True)
    keep = ~skip
    fn(kept[keep], old[keep], adv[keep], mask[keep], normalizer=norm, **kw)[0].backward()
    torch.testing.assert_close(kept.grad, full.grad)


def test_with_beta_zero_advantage_sequences_still_carry_the_kl_gradient():
    logp0, old, ref, adv, mask = _batch(seed=1)
    adv = adv * torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    assert not skippable_sequences(adv, mask, beta=0.04).any()
    logp = logp0.clone().requires_grad_(True)
    policy_loss(logp, old, adv, mask, beta=0.04, ref_logp=ref)[0].backward()
    # the KL term pulls the zero-advantage rows toward the reference: their gradient is not zero
    assert (logp.grad[1, :1].abs() > 0).all() and (logp.grad[3, :6].abs() > 0).all()


def test_skippable_sequences_per_token_advantages():
    adv = torch.tensor([[0.0, 0.0, 5.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])  # row 0's non-zero value sits on padding
    assert skippable_sequences(adv, mask, beta=0.0).tolist() == [True, False]


def test_gspo_adds_the_per_token_kl_term():
    # on-policy (s = 1), A = 0: the loss is only beta * mean_t k3; x = logp - ref = [1, 0]
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[-1.0, 0.0]])
    loss, _ = gspo_loss(logp, logp, torch.zeros(1), torch.ones(1, 2), beta=0.1, ref_logp=ref)
    assert loss.item() == pytest.approx(0.1 * math.exp(-1) / 2, abs=1e-7)
