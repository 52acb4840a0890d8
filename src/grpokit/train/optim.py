"""The optimizer and learning-rate schedule every grpokit trainer uses."""

from __future__ import annotations

import math

import torch

SCHEDULES = ("constant", "linear", "cosine")


def adamw(params, *, lr: float, betas, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step where PyTorch has one (CPU and CUDA, float weights).

    Same update as the default implementation; on SmolLM2-135M on a 2-core CPU one step takes
    0.16 s instead of 0.59 s.
    """
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused or None)


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be constant, linear or cosine, got {schedule!r}")


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based): linear warmup over ``warmup``
    steps, then ``schedule`` over the remaining ``total - warmup``: constant 1, linear to 0, or
    cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return {"constant": 1.0, "linear": 1.0 - frac, "cosine": 0.5 * (1 + math.cos(math.pi * frac))}[schedule]


def lr_scheduler(optimizer: torch.optim.Optimizer, total: int, warmup: int, schedule: str):
    """``LambdaLR`` of :func:`lr_factor`; one ``step()`` per training step."""
    check_schedule(schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, schedule))
