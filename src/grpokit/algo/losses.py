"""The clipped-surrogate policy loss with GRPO's KL term, and how per-token losses are averaged.

Shapes: ``N = B*G`` sequences, ``T`` completion tokens; ``mask[n, t]`` is 1 on generated tokens
up to and including EOS.
"""

from __future__ import annotations

import torch

AGGREGATIONS = ("seq-mean-token-mean", "token-mean", "constant")


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per token, unbiased and >= 0.

    ``d = ref_logp - logp``; ``kl = exp(d) - d - 1``  (DeepSeekMath eq. 4; Schulman 2020, "Approximating KL")

    Args:
        logp, ref_logp: ``[N, T]`` log-probs of the sampled tokens under the policy and reference.

    Returns:
        ``[N, T]``.
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


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
    aggregation: str = "seq-mean-token-mean",
    max_len: int | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The negated GRPO objective (DeepSeekMath eq. 3; clip-higher from DAPO).

    ``rho = exp(logp - old_logp)``;
    ``l[n, t] = -min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A) + beta * k3(logp, ref_logp)``;
    ``loss = aggregate(l, mask, aggregation)``.

    Args:
        logp: ``[N, T]`` log-probs under the policy being optimized (carries the gradient).
        old_logp: ``[N, T]`` log-probs at sampling time (no gradient). With one update per batch
            (``mu = 1``) pass ``logp.detach()``: then ``rho == 1`` and clipping never binds.
        adv: ``[N]`` one advantage per sequence (broadcast over tokens), or ``[N, T]`` per token.
        mask: ``[N, T]`` completion mask.
        eps_low, eps_high: clip range ``[1 - eps_low, 1 + eps_high]``.
        beta: KL coefficient; needs ``ref_logp`` when > 0.
        aggregation, max_len, normalizer: see :func:`aggregate`.

    Returns:
        ``(loss, metrics)``; metrics are detached scalars: ``clip_low_frac`` (tokens whose ratio is
        below ``1 - eps_low`` with negative advantage, where the clip binds), ``clip_high_frac``,
        ``kl`` (mean k3 over completion tokens; 0 without a reference), ``ratio`` (mean rho) and
        ``tokens`` (number of completion tokens).
    """
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (log-probs under the frozen reference model)")
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv  # [N, 1] or [N, T]
    ratio = torch.exp(logp - old_logp)  # [N, T]
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.minimum(ratio * a, clipped * a)  # [N, T]
    kl = kl_k3(logp, ref_logp) if ref_logp is not None else None
    if beta > 0:
        per_token = per_token + beta * kl
    loss = aggregate(per_token, mask, aggregation, max_len=max_len, normalizer=normalizer)
    with torch.no_grad():
        metrics = {
            "clip_low_frac": _masked_mean(((ratio < 1 - eps_low) & (a < 0)).float(), mask),
            "clip_high_frac": _masked_mean(((ratio > 1 + eps_high) & (a > 0)).float(), mask),
            "kl": _masked_mean(kl, mask) if kl is not None else torch.zeros(()),
            "ratio": _masked_mean(ratio, mask),
            "tokens": mask.sum().float(),
        }
    return loss, metrics
