"""Outcome advantage estimators: one value per completion from the scalar rewards of a batch.

Shapes: ``B`` prompts, ``G`` completions per prompt. Every estimator registered here has the
signature ``fn(rewards [B, G], mask [B, G] | None = None, *, eps: float = 1e-4) -> [B, G]`` so the
training loop can look it up by the name in its preset (:data:`ADVANTAGE_ESTIMATORS`).

Shared conventions (the places where implementations disagree, fixed here):

- **std is the sample std** (Bessel, ``n - 1``), as TRL and veRL (``torch.std``); the DeepSeekMath
  paper writes ``std`` without saying which. With ``G = 2`` and rewards {0, 1} the population std
  is 0.5 and the sample std 0.707.
- **eps is added to the std, not to the variance**: ``(r - mean) / (std + eps)``, default ``1e-4``
  (TRL). Oat uses 1e-8; verl's ``masked_whiten`` uses ``rsqrt(var + 1e-8)``.
- ``mask`` marks completions that could be scored; masked ones are left out of every mean and
  std and get advantage exactly 0.
- Where the estimate is a ratio ``0 / 0`` (all rewards equal, fewer than two valid rewards) the
  advantage is exactly 0, never NaN and never 1e-9.
"""

from __future__ import annotations

from typing import Callable

import torch

from grpokit.algo.selection import informative_groups

SCALES = ("group", "batch", "none")
DEFAULT_EPS = 1e-4

AdvantageFn = Callable[..., torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: make ``fn(rewards, mask=None, *, eps)`` available under ``name``."""

    def deco(fn: AdvantageFn) -> AdvantageFn:
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return deco


def get_advantage_estimator(name: str) -> AdvantageFn:
    """The estimator registered under ``name``; a clear error lists the known names."""
    try:
        return ADVANTAGE_ESTIMATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown advantage estimator {name!r}; choose one of {sorted(ADVANTAGE_ESTIMATORS)} "
            "or register your own with @grpokit.algo.advantages.register_advantage(name)"
        ) from None


def _prepare(rewards: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float rewards with zeros where masked, and the bool mask."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, G], got shape {tuple(rewards.shape)}")
    if mask is not None and mask.shape != rewards.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} must match rewards shape {tuple(rewards.shape)}")
    rewards = rewards.float()
    m = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask.bool()
    return torch.where(m, rewards, torch.zeros_like(rewards)), m


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
    eps: float = DEFAULT_EPS,
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
    r, mask = _prepare(rewards, mask)
    mean, std, _ = _masked_mean_std(r, mask, dim=1)  # [B, 1] each
    centred = r - mean  # [B, G]
    if scale == "group":
        centred = centred / (std + eps)
    elif scale == "batch":
        _, batch_std, _ = _masked_mean_std(r, mask)
        centred = centred / (batch_std + eps)
    # Exact zeros where the group cannot teach: floating-point means of equal numbers
    # are not always equal to them, and we promise 0, not 1e-9.
    keep = mask & informative_groups(r, mask).unsqueeze(1)  # [B, G]
    return torch.where(keep, centred, torch.zeros_like(centred))


@register_advantage("grpo")
def grpo_advantages(
    rewards: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """GRPO: ``A = (r - mean_g r) / (std_g r + eps)``, std with Bessel (DeepSeekMath §4.1.2).

    Same as ``group_advantages(rewards, scale="group")``.
    """
    return group_advantages(rewards, scale="group", eps=eps, mask=mask)


@register_advantage("dr_grpo")
def dr_grpo_advantages(
    rewards: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """Dr. GRPO: ``A = r - mean_g r``, no std (Liu et al. 2025, arXiv 2503.20783).

    Dividing by the group std up-weights prompts that are nearly always right or nearly always
    wrong (the "question-difficulty bias"); Dr. GRPO removes it. ``eps`` is unused: accepted so
    every estimator shares one signature.
    """
    return group_advantages(rewards, scale="none", mask=mask)


@register_advantage("rloo")
def rloo_advantages(
    rewards: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """RLOO: each reward minus the mean of the *other* valid rewards of its group.

    ``A_i = r_i - (1/(n-1)) sum_{j != i} r_j = n/(n-1) * (r_i - mean_g r)``, ``n`` = valid rewards in
    the group (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740).
    The baseline does not depend on ``r_i``, so the estimator is unbiased. No std, so ``eps`` is
    unused (accepted for the shared signature).
    """
    r, m = _prepare(rewards, mask)
    mean, _, n = _masked_mean_std(r, m, dim=1)  # [B, 1] each
    adv = (r - mean) * n / (n - 1).clamp(min=1)  # [B, G]
    keep = m & informative_groups(r, m).unsqueeze(1)
    return torch.where(keep, adv, torch.zeros_like(adv))


@register_advantage("reinforce_pp")
def reinforce_pp_advantages(
    rewards: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """REINFORCE++: normalise with the mean and std of the whole batch, not of each group.

    ``A = (r - mean_batch r) / (std_batch r + eps)`` over all valid ``B*G`` rewards, Bessel std
    (Hu et al. 2025, arXiv 2501.03262, "global advantage normalization").

    Unlike the group estimators, a group whose rewards are all equal keeps a non-zero advantage
    (an all-correct group on a hard batch is pushed up), so dynamic sampling and skipping are
    different questions here (see :mod:`grpokit.algo.selection`). Only a batch whose valid rewards
    are all equal, or that has fewer than two, gets exactly 0.
    """
    r, m = _prepare(rewards, mask)
    mean, std, _ = _masked_mean_std(r, m)  # scalars
    adv = (r - mean) / (std + eps)  # [B, G]
    flat = ~informative_groups(r.reshape(1, -1), m.reshape(1, -1))  # [1]: the whole batch
    return torch.where(m & ~flat, adv, torch.zeros_like(adv))


@register_advantage("reinforce_pp_baseline")
def reinforce_pp_baseline_advantages(
    rewards: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """REINFORCE++-baseline: subtract the group mean, then divide by the batch std of the result.

    ``c = r - mean_g r``; ``A = c / (std_batch c + eps)``, Bessel std over all valid entries of ``c``,
    the zeros of flat groups included (Hu et al. 2025, arXiv 2501.03262, §"REINFORCE++-baseline").
    ``c`` already has batch mean 0 (each group sums to 0), so no second centring is needed.
    Compare ``group_advantages(scale="batch")``, which divides by the std of the raw rewards.
    """
    c = group_advantages(rewards, scale="none", mask=mask)  # [B, G], exact 0 where masked or flat
    _, m = _prepare(rewards, mask)
    _, std, _ = _masked_mean_std(c, m)
    return c / (std + eps)
