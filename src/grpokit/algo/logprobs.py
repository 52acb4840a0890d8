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


def head_logprobs(hidden: torch.Tensor, weight: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0,
                  *, bias: torch.Tensor | None = None, entropy: bool = False, chunk: int = 128):
    """:func:`selective_logprobs` (and :func:`token_entropy`) of the output layer applied to ``hidden``,
    ``chunk`` positions at a time, so the ``[M, V]`` logits never exist at once.

    ``logits = hidden @ weight.T + bias``, then as :func:`selective_logprobs`:
    ``logp[m] = logits[m, y] / tau - logsumexp_v(logits[m, v] / tau)``, ``y = token_ids[m]``.
    Each position's values are those of the whole product (a row of a matrix product does not
    depend on the other rows); callers pass only the positions they score, so padding costs nothing.

    Args:
        hidden: ``[M, C]`` final hidden states (after the last norm).
        weight: ``[V, C]`` the output layer's weight (tied or not); ``bias``: ``[V]`` or None.
        token_ids: ``[M]`` long, the token each position is scored on.
        temperature: the sampling temperature (> 0).
        entropy: also return the entropy of each position's distribution (no gradient).
        chunk: positions per product; ``[128, V]`` float32 is 25 MB for a 49k vocabulary (64 was
            12% slower for SmolLM2: more, thinner weight-gradient products, each added to the grad).

    Returns:
        ``(logp [M] float32, differentiable w.r.t. hidden and weight; entropy [M] float32 or None)``.
    """
    logps, ents = [], []
    n_chunks = max(1, -(-hidden.shape[0] // chunk))
    for h, y in zip(hidden.tensor_split(n_chunks), token_ids.tensor_split(n_chunks)):  # near-equal chunks
        logits = torch.nn.functional.linear(h, weight, bias)  # [m, V]
        logps.append(selective_logprobs(logits[None], y[None], temperature)[0])
        if entropy:
            ents.append(token_entropy(logits[None].detach(), temperature)[0].float())
    return torch.cat(logps), torch.cat(ents) if entropy else None
