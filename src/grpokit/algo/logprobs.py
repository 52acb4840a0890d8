"""Per-token log-probabilities and entropies of sampled tokens, computed one row at a time."""

from __future__ import annotations

import torch


def selective_logprobs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each sampled token under temperature-scaled logits.

    ``logp[n, t] = logits[n, t, y] / tau - logsumexp_v(logits[n, t, v] / tau)``, ``y = token_ids[n, t]``

    The sampler drew tokens from ``softmax(logits / tau)``; scoring them at ``tau = 1`` instead
    would bias the importance ratio (formula sheet, notation). Rows are processed one at a time so
    that only a ``[T, V]`` temporary exists, never a full ``[N, T, V]`` log-softmax copy.

    Args:
        logits: ``[N, T, V]``.
        token_ids: ``[N, T]`` long.
        temperature: the sampling temperature (> 0).

    Returns:
        ``[N, T]`` float32 log-probs, differentiable w.r.t. ``logits``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rows = []
    for row_logits, row_ids in zip(logits, token_ids):  # [T, V], [T]
        row = row_logits.float()
        if temperature != 1.0:
            row = row / temperature
        picked = row.gather(-1, row_ids.unsqueeze(-1)).squeeze(-1)  # [T]
        rows.append(picked - torch.logsumexp(row, dim=-1))
    return torch.stack(rows)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of the sampling distribution at each position, ``[N, T, V] -> [N, T]``.

    ``H = logsumexp(z) - sum_v softmax(z)_v z_v`` with ``z = logits / tau``; no gradient.
    """
    rows = []
    for row_logits in logits:
        z = row_logits.float() / temperature
        lse = torch.logsumexp(z, dim=-1)
        rows.append(lse - (torch.softmax(z, dim=-1) * z).sum(-1))
    return torch.stack(rows)
