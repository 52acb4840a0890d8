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
    ``chunk`` positions at a time, with the gradient formed in the forward pass.

    ``logits = hidden @ weight.T + bias``, then as :func:`selective_logprobs`:
    ``logp[m] = logits[m, y] / tau - logsumexp_v(logits[m, v] / tau)``, ``y = token_ids[m]``.
    Each position's values are those of the whole product (a row of a matrix product does not
    depend on the other rows); callers pass only the positions they score, so padding costs nothing.

    The gradient of ``logp[m]`` with respect to its logits is ``(onehot(y) - softmax(logits / tau)) / tau``,
    so each chunk's logits are turned into that, in place, as soon as the chunk's log-probs are read
    off, and the backward pass scales it by the incoming gradient and multiplies once by the weight
    and once by the hidden states (whole ``[M, V] x [V, C]`` and ``[V, M] x [M, C]`` products). Autograd
    through the chunks' ``linear``/``logsumexp``/``gather`` kept the same ``[M, V]`` floats but made
    six more passes over them, each in a fresh buffer, and summed the weight's gradient from one
    thin product per chunk. Under autocast the products run in its dtype, as ``linear`` would.

    Args:
        hidden: ``[M, C]`` final hidden states (after the last norm).
        weight: ``[V, C]`` the output layer's weight (tied or not); ``bias``: ``[V]`` or None.
        token_ids: ``[M]`` long, the token each position is scored on.
        temperature: the sampling temperature (> 0).
        entropy: also return the entropy of each position's distribution (no gradient).
        chunk: positions per forward product; ``[128, V]`` float32 is 25 MB for a 49k vocabulary,
            which stays in a large last-level cache between the product and the softmax.

    Returns:
        ``(logp [M] float32, differentiable w.r.t. hidden, weight and bias; entropy [M] float32 or None)``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (hidden, weight, bias))
    logp, ent = _HeadLogprobs.apply(hidden, weight, bias, token_ids, float(temperature), bool(entropy), int(chunk), grad)
    return logp, ent if entropy else None


class _HeadLogprobs(torch.autograd.Function):
    """:func:`head_logprobs`: ``d logp / d logits`` formed in the forward pass, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, token_ids, temperature, entropy, chunk, grad):
        dev = hidden.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else hidden.dtype
        m, v = hidden.shape[0], weight.shape[0]
        h, w = hidden.to(dtype), weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        keep = torch.empty(m if grad else min(m, chunk), v, device=hidden.device)  # d logp / d logits (fp32)
        logp = torch.empty(m, device=hidden.device)
        ent = torch.zeros(m if entropy else 0, device=hidden.device)
        rows = torch.arange(m, device=hidden.device)
        with torch.autocast(dev, enabled=False):
            for s in range(0, m, chunk):
                e = min(s + chunk, m)
                z = keep[s:e] if grad else keep[:e - s]
                if dtype == torch.float32:
                    torch.mm(h[s:e], w.t(), out=z)
                    if b is not None:
                        z.add_(b)
                else:
                    z.copy_(torch.nn.functional.linear(h[s:e], w, b))
                if temperature != 1.0:
                    z.div_(temperature)
                lse = torch.logsumexp(z, dim=-1)  # [c]
                y = token_ids[s:e]
                logp[s:e] = z.gather(-1, y[:, None])[:, 0] - lse
                z.sub_(lse[:, None]).exp_()  # softmax
                if entropy:  # H = lse - sum_v p_v z_v, with z_v = log p_v + lse
                    ent[s:e] = -(z * z.log().nan_to_num_(neginf=0.0)).sum(-1)
                if grad:
                    z.neg_()
                    z[rows[: e - s], y] += 1.0
                    if temperature != 1.0:
                        z.div_(temperature)
        if grad:
            ctx.save_for_backward(keep, hidden, weight, bias)
            ctx.dtype = dtype
        ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_logp, _g_ent):
        keep, hidden, weight, bias = ctx.saved_tensors
        d = keep * g_logp.float()[:, None]  # [M, V]
        d = d.to(ctx.dtype)
        g_h = g_w = g_b = None
        if ctx.needs_input_grad[0]:
            g_h = (d @ weight.to(ctx.dtype)).to(hidden.dtype)
        if ctx.needs_input_grad[1]:
            g_w = (d.t() @ hidden.to(ctx.dtype)).to(weight.dtype)
        if bias is not None and ctx.needs_input_grad[2]:
            g_b = d.sum(0).to(bias.dtype)
        return g_h, g_w, g_b, None, None, None, None, None
