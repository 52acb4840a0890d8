"""PPO with a learned critic: per-token rewards, GAE, advantage whitening, the clipped value loss.

The baseline GRPO removes (formula sheet §4). Shapes: ``N`` sequences, ``T`` completion tokens,
``mask[n, t]`` = 1 on generated tokens. The policy side reuses :func:`grpokit.algo.losses.policy_loss`
with per-token advantages ``[N, T]``.
"""

from __future__ import annotations

import torch

from grpokit.algo.losses import aggregate


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last completion token of each row, ``[N, T] -> [N]`` long (0 for empty rows)."""
    positions = torch.arange(mask.shape[-1], device=mask.device)  # [T]
    return (positions * mask.bool()).argmax(-1)


def token_rewards(
    scores: torch.Tensor,
    mask: torch.Tensor,
    *,
    kl: torch.Tensor | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """Per-token rewards for PPO: the scalar reward at the last token, the KL penalty on every token.

    ``r[n, t] = -beta * kl[n, t] * m[n, t] + [t == last_n] * scores[n]``

    With ``kl`` the classic RLHF setup (Ziegler et al. 2019; Ouyang et al. 2022; verl and
    TinyZero's PPO): the penalty is a reward, so it flows back through GAE and the critic learns
    it. Compute ``kl`` at sampling time from ``old_logp`` (no gradient), usually with ``k1``. Without
    ``kl`` (or ``beta = 0``) the KL, if any, belongs in the loss (``policy_loss(beta=...)``).

    Args:
        scores: ``[N]`` scalar reward of each completion.
        mask: ``[N, T]`` completion mask; rows with no token get no reward.
        kl: optional ``[N, T]`` per-token KL estimate.
        beta: coefficient of the KL penalty.

    Returns:
        ``[N, T]`` float32.
    """
    m = mask.to(torch.float32)
    r = torch.zeros_like(m)  # [N, T]
    if kl is not None and beta > 0:
        r = r - beta * kl.detach().float() * m
    last = last_token_index(mask)  # [N]
    has_tokens = m.sum(-1) > 0  # [N]
    bonus = torch.where(has_tokens, scores.float(), torch.zeros_like(scores, dtype=torch.float32))  # [N]
    return r.scatter_add(1, last.unsqueeze(1), bonus.unsqueeze(1))


@torch.no_grad()
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, arXiv 1506.02438), no gradient.

    ``delta_t = r_t + gamma * V_{t+1} - V_t``; ``A_t = delta_t + gamma * lam * A_{t+1}``;
    ``R_t = A_t + V_t`` (the critic's regression target).

    The episode ends after the last completion token: ``V`` and ``A`` beyond it are 0. Masked
    positions inside a row are skipped (the next *unmasked* value and advantage carry over them,
    as in verl), so ``t+1`` means "the next completion token". A completion cut at the length limit
    is also treated as terminal (no bootstrap), as verl does.

    Args:
        rewards: ``[N, T]`` per-token rewards (see :func:`token_rewards`).
        values: ``[N, T]`` critic values at sampling time.
        mask: ``[N, T]`` completion mask.
        gamma: discount; 1.0 for LLM episodes (verl, TinyZero).
        lam: GAE lambda; 0.95 is the usual PPO value (the R1 paper's PPO comparison used it;
            lam = 1 gives Monte-Carlo returns minus the value).

    Returns:
        ``(advantages [N, T], returns [N, T])``, both 0 outside the mask.
    """
    m = mask.to(torch.float32)
    r = rewards.float() * m  # [N, T]
    v = values.float()  # [N, T]
    n, t_len = r.shape
    adv = torch.zeros_like(r)  # [N, T]
    next_value = torch.zeros(n, dtype=r.dtype, device=r.device)  # [N]
    next_adv = torch.zeros_like(next_value)  # [N]
    for t in reversed(range(t_len)):
        mt = m[:, t]  # [N]
        delta = r[:, t] + gamma * next_value - v[:, t]  # [N]
        a_t = delta + gamma * lam * next_adv  # [N]
        adv[:, t] = a_t * mt
        next_value = v[:, t] * mt + next_value * (1 - mt)
        next_adv = a_t * mt + next_adv * (1 - mt)
    returns = (adv + v) * m  # [N, T]
    return adv, returns


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, *, eps: float = 1e-8, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to mean 0, std 1 over the masked entries: ``[N, T] -> [N, T]``, 0 outside the mask.

    ``(x - mean) / (std + eps)`` with the Bessel std over all masked tokens of the batch (each token
    counts once, so long sequences weigh more). PPO implementations whiten GAE advantages this
    way (verl's ``masked_whiten``, which uses ``rsqrt(var + 1e-8)``). ``shift_mean=False`` keeps the
    mean (only rescales).
    """
    m = mask.to(x.dtype)
    n = m.sum().clamp(min=1)
    mean = (x * m).sum() / n
    var = (((x - mean) ** 2) * m).sum() / (n - 1).clamp(min=1)
    out = (x - mean) if shift_mean else x
    return out / (var.sqrt() + eps) * m


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float | None = 0.5,
    aggregation: str = "token-mean",
    max_len: int | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped value loss (Schulman et al. 2017 as implemented in OpenAI baselines).

    ``V_clip = old_V + clip(V - old_V, -eps, +eps)``;
    ``l[n, t] = 0.5 * max((V - R)^2, (V_clip - R)^2)``; ``loss = aggregate(l, mask, aggregation)``.

    Args:
        values: ``[N, T]`` current critic values (carry the gradient).
        old_values: ``[N, T]`` critic values at sampling time (the ones GAE used).
        returns: ``[N, T]`` targets from :func:`gae`.
        mask: ``[N, T]`` completion mask.
        clip_eps: value clip range; ``None`` gives the plain ``0.5 * (V - R)^2``. Default 0.5 as
            verl's ``critic.cliprange_value``.
        aggregation, max_len, normalizer: see :func:`grpokit.algo.losses.aggregate`; use
            :func:`grpokit.algo.losses.step_normalizer` for micro-batches.

    Returns:
        ``(loss, metrics)``: ``vf_clip_frac`` (tokens where the clipped term is the larger one),
        ``value_mse`` (mean ``(V - R)^2``) and ``value_mean``, all detached.
    """
    unclipped = (values - returns) ** 2  # [N, T]
    if clip_eps is None:
        per_token = 0.5 * unclipped
        clipped = unclipped
    else:
        v_clip = old_values + (values - old_values).clamp(-clip_eps, clip_eps)  # [N, T]
        clipped = (v_clip - returns) ** 2  # [N, T]
        per_token = 0.5 * torch.maximum(unclipped, clipped)
    loss = aggregate(per_token, mask, aggregation, max_len=max_len, normalizer=normalizer)
    with torch.no_grad():
        m = mask.to(values.dtype)
        count = m.sum().clamp(min=1)
        metrics = {
            "vf_clip_frac": ((clipped > unclipped).to(values.dtype) * m).sum() / count,
            "value_mse": (unclipped * m).sum() / count,
            "value_mean": (values * m).sum() / count,
        }
    return loss, metrics
