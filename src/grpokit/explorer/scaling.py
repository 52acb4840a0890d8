"""The advantage scalings the explorer's "Try it" view can switch between, without re-sampling.

One function per scaling, registered by name in ``SCALINGS``. Each takes the rewards of ONE group
(``[G]`` floats) and a validity mask, and returns the baseline subtracted from each completion and
the resulting advantage, so the page can draw both.

- ``group``: GRPO (DeepSeekMath, Shao et al. 2024): ``A_i = (r_i - mean(r)) / (std(r) + eps)``,
  computed by ``grpokit.algo.group_advantages`` so the page shows exactly what training uses.
- ``none``: Dr. GRPO (Liu et al. 2025): ``A_i = r_i - mean(r)`` (``group_advantages(scale="none")``).
- ``rloo``: REINFORCE leave-one-out (Ahmadian et al. 2024):
  ``A_i = r_i - mean_{j != i} r_j = G/(G-1) * (r_i - mean(r))`` (``grpokit.algo.rloo_advantages``).

Invalid completions (a reward function could not score them) are left out of every mean and get
advantage exactly 0; a group with fewer than two valid rewards, or all-equal rewards, gets all 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from grpokit.algo.advantages import group_advantages, rloo_advantages


@dataclass(frozen=True)
class Scaled:
    """Advantages of one group: ``baselines[i]`` is what was subtracted from ``r_i``."""

    advantages: list[float]
    baselines: list[float | None]
    mean: float | None
    std: float | None


def _stats(rewards: torch.Tensor, valid: torch.Tensor) -> tuple[float | None, float | None]:
    v = rewards[valid]
    if v.numel() == 0:
        return None, None
    std = float(v.std(unbiased=True)) if v.numel() > 1 else 0.0
    return float(v.mean()), std


def _via_group_advantages(scale: str) -> Callable[[torch.Tensor, torch.Tensor, float], Scaled]:
    def fn(rewards: torch.Tensor, valid: torch.Tensor, eps: float) -> Scaled:
        adv = group_advantages(rewards[None], scale=scale, eps=eps, mask=valid[None])[0]  # [G]
        mean, std = _stats(rewards, valid)
        base = [mean if ok else None for ok in valid.tolist()]
        return Scaled(adv.tolist(), base, mean, std)

    fn.__doc__ = f"``group_advantages(scale={scale!r})`` on one group; the baseline is the group mean."
    return fn


def rloo(rewards: torch.Tensor, valid: torch.Tensor, eps: float = 0.0) -> Scaled:
    """RLOO: :func:`grpokit.algo.advantages.rloo_advantages` (what ``--algo rloo`` trains with); the
    baseline of ``r_i`` is the mean of the other valid rewards (the group mean where none teaches).

    Args:
        rewards: ``[G]`` rewards of one group.
        valid: ``[G]`` bool; invalid entries are excluded from the sums and get 0.
        eps: unused (RLOO does not divide); kept so every scaling has one signature.
    """
    adv = rloo_advantages(rewards[None], valid[None])[0]  # [G]
    mean, std = _stats(rewards, valid)
    n, total = int(valid.sum()), float(rewards.double()[valid].sum())
    teaches = bool(adv.ne(0).any())
    base = [((total - r) / (n - 1) if teaches else mean) if ok else None
            for r, ok in zip(rewards.double().tolist(), valid.tolist())]
    return Scaled(adv.tolist(), base, mean, std)


SCALINGS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], Scaled]] = {
    "group": _via_group_advantages("group"),
    "none": _via_group_advantages("none"),
    "rloo": rloo,
}


def scale_group(rewards: Sequence[float | None], scale: str = "group", eps: float = 1e-4) -> Scaled:
    """Advantages of one group of rewards (``None`` = could not be scored) under ``scale``."""
    if scale not in SCALINGS:
        raise ValueError(f"unknown advantage scaling {scale!r}: use one of {sorted(SCALINGS)}")
    if not rewards:
        raise ValueError("a group needs at least one reward")
    valid = torch.tensor([r is not None for r in rewards], dtype=torch.bool)
    r = torch.tensor([0.0 if x is None else float(x) for x in rewards], dtype=torch.float32)
    return SCALINGS[scale](r, valid, eps)
