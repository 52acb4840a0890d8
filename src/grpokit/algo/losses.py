"""Policy losses (token-level clipped surrogate, GSPO) and how per-token losses are averaged.

Shapes: ``N = B*G`` sequences, ``T`` completion tokens; ``mask[n, t]`` is 1 on generated tokens
up to and including EOS.

Every loss registered in :data:`POLICY_LOSSES` has the signature of :func:`policy_loss`:
``fn(logp, old_logp, adv, mask, *, eps_low, eps_high, beta, ref_logp, kl_estimator, aggregation,
max_len, normalizer) -> (loss, metrics)`` with the same metric names, so the loop swaps them by
the name in its preset.
"""

from __future__ import annotations

from typing import Callable

import torch

from grpokit.algo.kl import get_kl_estimator, kl_k3

AGGREGATIONS = ("seq-mean-token-mean", "token-mean", "constant")

PolicyLossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
POLICY_LOSSES: dict[str, PolicyLossFn] = {}

__all__ = [
    "AGGREGATIONS",
    "POLICY_LOSSES",
    "aggregate",
    "get_policy_loss",
    "gspo_loss",
    "kl_k3",
    "policy_loss",
    "register_policy_loss",
    "step_normalizer",
]


def register_policy_loss(name: str) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: make a loss with :func:`policy_loss`'s signature available under ``name``."""

    def deco(fn: PolicyLossFn) -> PolicyLossFn:
        if name in POLICY_LOSSES:
            raise ValueError(f"policy loss {name!r} is already registered")
        POLICY_LOSSES[name] = fn
        return fn

    return deco


def get_policy_loss(name: str) -> PolicyLossFn:
    """The loss registered under ``name``; a clear error lists the known names."""
    try:
        return POLICY_LOSSES[name]
    except KeyError:
        raise ValueError(
            f"unknown policy loss {name!r}; choose one of {sorted(POLICY_LOSSES)} "
            "or register your own with @grpokit.algo.losses.register_policy_loss(name)"
        ) from None


def step_normalizer(mask: torch.Tensor, aggregation: str, max_len: int | None = None) -> float:
    """The denominator of the loss for one whole optimizer step.

    Computed once from the step's full ``[N, T]`` mask and handed to every micro-batch, so that the
    sum of micro-batch losses equals the full-batch loss and the gradient does not depend on the
    split (formula sheet §2):

    - ``seq-mean-token-mean``: ``N`` (each sequence first averages over its own tokens);
    - ``token-mean``: ``sum_{n,t} mask``;
    - ``constant``: ``N * max_len`` (Dr. GRPO; ``max_len`` defaults to ``T``).
    """
    if aggregation == "seq-mean-token-mean":
        return float(mask.shape[0])
    if aggregation == "token-mean":
        return float(mask.sum().clamp(min=1).item())
    if aggregation == "constant":
        return float(mask.shape[0] * (max_len if max_len is not None else mask.shape[1]))
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    aggregation: str = "seq-mean-token-mean",
    *,
    max_len: int | None = None,
    normalizer: float | None = None,
) -> torch.Tensor:
    """Reduce a ``[N, T]`` per-token loss to a scalar.

    - ``seq-mean-token-mean`` (GRPO paper): ``sum_n (sum_t l*m / sum_t m) / norm``, ``norm = N``
    - ``token-mean`` (DAPO):                ``sum_{n,t} l*m / norm``, ``norm = sum m``
    - ``constant`` (Dr. GRPO):              ``sum_{n,t} l*m / norm``, ``norm = N * max_len``

    ``normalizer`` overrides ``norm`` (see :func:`step_normalizer`); leave it ``None`` when this
    batch is the whole optimizer step.
    """
    m = mask.to(per_token.dtype)
    if normalizer is None:
        normalizer = step_normalizer(mask, aggregation, max_len)
    if aggregation == "seq-mean-token-mean":
        per_seq = (per_token * m).sum(-1) / m.sum(-1).clamp(min=1)  # [N]
        return per_seq.sum() / normalizer
    if aggregation in ("token-mean", "constant"):
        return (per_token * m).sum() / normalizer
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1)


def _kl_term(logp, ref_logp, beta, kl_estimator):
    """``(kl in the loss or None, k3 for the metric or None)``, both ``[N, T]``."""
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (log-probs under the frozen reference model)")
    if ref_logp is None:
        return None, None
    loss_kl = get_kl_estimator(kl_estimator)(logp, ref_logp) if beta > 0 else None
    with torch.no_grad():
        metric_kl = kl_k3(logp, ref_logp)
    return loss_kl, metric_kl


def _metrics(ratio, a, mask, eps_low, eps_high, metric_kl):
    """Detached scalars shared by every policy loss; ``ratio`` and ``a`` broadcast to ``[N, T]``."""
    with torch.no_grad():
        ratio = ratio.expand_as(mask)
        return {
            "clip_low_frac": _masked_mean(((ratio < 1 - eps_low) & (a < 0)).float(), mask),
            "clip_high_frac": _masked_mean(((ratio > 1 + eps_high) & (a > 0)).float(), mask),
            "kl": _masked_mean(metric_kl, mask) if metric_kl is not None else torch.zeros(()),
            "ratio": _masked_mean(ratio, mask),
            "tokens": mask.sum().float(),
        }


@register_policy_loss("token_clip")
def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    kl_estimator: str = "k3",
    aggregation: str = "seq-mean-token-mean",
    max_len: int | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The negated GRPO objective (DeepSeekMath eq. 3; clip-higher from DAPO). Registry name ``token_clip``.

    ``rho = exp(logp - old_logp)``;
    ``l[n, t] = -min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A) + beta * k(logp, ref_logp)``;
    ``loss = aggregate(l, mask, aggregation)``.

    Args:
        logp: ``[N, T]`` log-probs under the policy being optimized (carries the gradient).
        old_logp: ``[N, T]`` log-probs at sampling time (no gradient). With one update per batch
            (``mu = 1``) pass ``logp.detach()``: then ``rho == 1`` and clipping never binds.
        adv: ``[N]`` one advantage per sequence (broadcast over tokens), or ``[N, T]`` per token.
        mask: ``[N, T]`` completion mask.
        eps_low, eps_high: clip range ``[1 - eps_low, 1 + eps_high]``.
        beta: KL coefficient in the loss; needs ``ref_logp`` when > 0. Pass 0 when the KL sits
            in the reward.
        kl_estimator: ``"k3"`` (GRPO, default), ``"k2"`` or ``"k1"`` (see :mod:`grpokit.algo.kl`).
        aggregation, max_len, normalizer: see :func:`aggregate`.

    Returns:
        ``(loss, metrics)``; metrics are detached scalars: ``clip_low_frac`` (tokens whose ratio is
        below ``1 - eps_low`` with negative advantage, where the clip binds), ``clip_high_frac``,
        ``kl`` (mean k3 over completion tokens whatever ``kl_estimator`` is, so runs compare;
        0 without a reference), ``ratio`` (mean rho) and ``tokens`` (number of completion tokens).
    """
    loss_kl, metric_kl = _kl_term(logp, ref_logp, beta, kl_estimator)
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv  # [N, 1] or [N, T]
    ratio = torch.exp(logp - old_logp)  # [N, T]
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)  # [N, T]
    per_token = -torch.minimum(ratio * a, clipped * a)  # [N, T]
    if loss_kl is not None:
        per_token = per_token + beta * loss_kl
    loss = aggregate(per_token, mask, aggregation, max_len=max_len, normalizer=normalizer)
    return loss, _metrics(ratio, a, mask, eps_low, eps_high, metric_kl)


@register_policy_loss("gspo")
def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    kl_estimator: str = "k3",
    aggregation: str = "seq-mean-token-mean",
    max_len: int | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO: one length-normalised importance ratio per sequence, clipped per sequence.

    Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv 2507.18071 (the GSPO objective):

    ``s_i = exp( (1/|o_i|) sum_t m[i,t] (logp[i,t] - old_logp[i,t]) )``  (geometric mean of token ratios)
    ``l_i = -min(s_i * A_i, clip(s_i, 1 - eps_low, 1 + eps_high) * A_i)``
    ``loss = (1/N) sum_i l_i``  (with the default ``seq-mean-token-mean`` aggregation)

    ``s_i`` is computed from ``logp`` with its gradient (the paper's GSPO, not a stop-gradient
    surrogate): when unclipped, ``grad l_i = -A_i s_i (1/|o_i|) sum_t grad logp[i,t]``, every token
    of a sequence weighted by the same ``s_i``.

    Defaults ``eps_low = 3e-4``, ``eps_high = 4e-4`` are the paper's (experiments section, "we set
    the left and right clipping ranges in Equation (5) to 3e-4 and 4e-4"): a sequence ratio is a geometric mean
    and stays far closer to 1 than token ratios, so token-level ranges like 0.2 would never bind.
    The paper trains without KL; ``beta > 0`` adds the per-token ``beta * k`` term as
    :func:`policy_loss` does. Other aggregations broadcast ``l_i`` to every token first
    (``token-mean`` then weights sequences by length, which departs from the paper).

    Args: as :func:`policy_loss`, except ``adv`` must hold one value per sequence: ``[N]`` or
    ``[N, 1]`` (per-token advantages, e.g. process supervision, need ``token_clip``).

    Returns:
        ``(loss, metrics)`` with :func:`policy_loss`'s names; ``clip_*_frac`` and ``ratio`` count
        tokens (each token carries its sequence's ``s_i``), as the GSPO paper reports clipped
        token fractions.
    """
    if adv.dim() == 2 and adv.shape[1] != 1:
        raise ValueError(
            f"gspo_loss needs one advantage per sequence ([N] or [N, 1]), got {tuple(adv.shape)}; "
            "use the token_clip loss for per-token advantages"
        )
    loss_kl, metric_kl = _kl_term(logp, ref_logp, beta, kl_estimator)
    a = adv.reshape(-1)  # [N]
    m = mask.to(logp.dtype)
    lengths = m.sum(-1).clamp(min=1)  # [N]
    seq_ratio = torch.exp(((logp - old_logp) * m).sum(-1) / lengths)  # [N]
    clipped = torch.clamp(seq_ratio, 1 - eps_low, 1 + eps_high)  # [N]
    per_seq = -torch.minimum(seq_ratio * a, clipped * a)  # [N]
    per_token = per_seq.unsqueeze(-1).expand_as(logp)  # [N, T]
    if loss_kl is not None:
        per_token = per_token + beta * loss_kl
    loss = aggregate(per_token, mask, aggregation, max_len=max_len, normalizer=normalizer)
    return loss, _metrics(seq_ratio.unsqueeze(-1), a.unsqueeze(-1), mask, eps_low, eps_high, metric_kl)
