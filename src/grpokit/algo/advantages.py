"""Advantage estimators: one value per completion from the rewards of its group.

Shapes: ``B`` prompts, ``G`` completions per prompt. Rewards arrive as ``[B, G]``.
"""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")


def _masked_mean_std(x: torch.Tensor, mask: torch.Tensor, dim=None):
    """Mean and Bessel-corrected std over ``mask``; ``dim=None`` reduces everything."""
    m = mask.to(x.dtype)
    n = m.sum() if dim is None else m.sum(dim, keepdim=True)
    mean = (x * m).sum() / n.clamp(min=1) if dim is None else (x * m).sum(dim, keepdim=True) / n.clamp(min=1)
    sq = ((x - mean) ** 2) * m
    ss = sq.sum() if dim is None else sq.sum(dim, keepdim=True)
    std = (ss / (n - 1).clamp(min=1)).sqrt()
    return mean, std, n


def group_advantages(
    rewards: torch.Tensor,
    *,
    scale: str = "group",
    eps: float = 1e-4,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """GRPO outcome advantage: each reward minus its group's mean, optionally over a std.

    ``A[b, g] = (r[b, g] - mean_g r[b]) / (std + eps)``  (DeepSeekMath, Shao et al. 2024, eq. in §4.1.2)

    Args:
        rewards: ``[B, G]`` scalar reward of each completion.
        scale: ``"group"`` divides by the group's sample std (Bessel, ``G-1``, as TRL and veRL);
            ``"batch"`` by the sample std of all ``B*G`` rewards
            (REINFORCE++-style scale, still group-centred); ``"none"`` keeps ``r - mean`` (Dr. GRPO).
        eps: added to the std (TRL uses 1e-4; Oat 1e-8).
        mask: optional ``[B, G]`` bool, ``False`` for completions that could not be scored.
            They are left out of the mean and std and get advantage exactly 0.

    Returns:
        ``[B, G]`` advantages. A group whose (valid) rewards are all equal, or that has fewer than
        two valid rewards, gets exactly 0 (never NaN).
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, G], got shape {tuple(rewards.shape)}")
    rewards = rewards.float()
    if mask is None:
        mask = torch.ones_like(rewards, dtype=torch.bool)
    mask = mask.bool()
    r = torch.where(mask, rewards, torch.zeros_like(rewards))
    mean, std, n = _masked_mean_std(r, mask, dim=1)  # [B, 1] each
    centred = r - mean  # [B, G]
    if scale == "group":
        centred = centred / (std + eps)
    elif scale == "batch":
        _, batch_std, _ = _masked_mean_std(r, mask)
        centred = centred / (batch_std + eps)
    # Exact zeros where the group cannot teach: floating-point means of equal numbers
    # are not always equal to them, and we promise 0, not 1e-9.
    big = torch.finfo(r.dtype).max
    hi = torch.where(mask, r, torch.full_like(r, -big)).amax(1, keepdim=True)
    lo = torch.where(mask, r, torch.full_like(r, big)).amin(1, keepdim=True)
    flat = (hi == lo) | (n < 2)  # [B, 1]
    return torch.where(mask & ~flat, centred, torch.zeros_like(centred))
