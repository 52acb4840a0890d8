"""The optimizer every grpokit trainer uses."""

from __future__ import annotations

import torch


def adamw(params, *, lr: float, betas, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step where PyTorch has one (CPU and CUDA, float weights).

    Same update as the default implementation; on SmolLM2-135M on a 2-core CPU one step takes
    0.16 s instead of 0.59 s.
    """
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused or None)
