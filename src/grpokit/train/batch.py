"""From rollouts to per-token log-probs: the tensor work of one update, split into micro-batches.

Shapes: ``N`` sequences, ``P`` prompt tokens (left-padded), ``T`` completion tokens (right-padded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpokit.algo import selective_logprobs, token_entropy
from grpokit.records import Rollout


@dataclass
class TrainBatch:
    """Everything the losses need for ``N`` sequences.

    ``completion_mask`` is the *loss* mask: the rollout's mask, minus what the step leaves out
    (DAPO's overlong filtering, unscorable completions under PPO).
    """

    prompt_ids: torch.Tensor  # [N, P]
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T]
    advantages: torch.Tensor | None = None  # [N] (outcome) or [N, T] (critic)
    old_logp: torch.Tensor | None = None  # [N, T]
    ref_logp: torch.Tensor | None = None  # [N, T]
    old_values: torch.Tensor | None = None  # [N, T] critic values at sampling time
    returns: torch.Tensor | None = None  # [N, T] the critic's targets

    @classmethod
    def from_rollout(cls, r: Rollout, advantages: torch.Tensor | None = None) -> "TrainBatch":
        return cls(r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, advantages)

    def __len__(self) -> int:
        return self.completion_ids.shape[0]


def micro_batches(rows: list[int], size: int) -> list[list[int]]:
    """Split row indices into chunks of at most ``size``."""
    return [rows[i:i + size] for i in range(0, len(rows), max(1, size))]


def _inputs(batch: TrainBatch, rows: list[int], device):
    """Prompt + completion ids of ``rows`` with the padding columns they all share cut off.

    Returns ``(ids [n, P'+T], attention [n, P'+T], positions [n, P'+T], T, completion mask [n, T])``,
    ``T`` the longest completion among ``rows`` (at least 1).
    """
    idx = torch.tensor(rows, dtype=torch.long)
    pm = batch.prompt_mask.index_select(0, idx)
    cm = batch.completion_mask.index_select(0, idx)
    start = int(pm.any(0).nonzero()[0])  # first prompt column holding a real token
    t_len = max(1, int(cm.sum(-1).max()))
    p_ids = batch.prompt_ids.index_select(0, idx)[:, start:]
    c_ids = batch.completion_ids.index_select(0, idx)[:, :t_len]
    pm, cm = pm[:, start:], cm[:, :t_len]
    ids = torch.cat([p_ids, c_ids], 1).to(device)  # [n, P' + T]
    attn = torch.cat([pm, torch.ones_like(cm)], 1).to(device)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    return ids, attn, positions, t_len, cm.to(device)


def sequence_logprobs(model, batch: TrainBatch, rows: list[int], temperature: float, *, entropy: bool = False):
    """Per-token log-probs of the completion tokens of ``rows`` under ``model``.

    Padding columns shared by all selected rows are cut first (left of the prompts, right of the
    completions), and logits are computed only where completion tokens are predicted.

    Returns:
        ``(logp [n, T], mask [n, T], entropy [n, T] or None)`` with ``T`` trimmed to the longest
        completion among ``rows``; ``mask`` is the matching completion mask.
    """
    device = next(model.parameters()).device
    ids, attn, positions, t_len, cm = _inputs(batch, rows, device)
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=t_len + 1, use_cache=False)
    logits = out.logits[:, :-1]  # [n, T, V]: position j predicts completion token j
    c_ids = ids[:, -t_len:]
    logp = selective_logprobs(logits, c_ids, temperature)
    ent = token_entropy(logits, temperature) if entropy else None
    return logp, cm, ent


def group_chunks(advantages: torch.Tensor, group_size: int, micro_batch_size: int, *, skip_zero: bool) -> list[list[int]]:
    """Row indices in micro-batches of whole groups (``G`` consecutive rows share a prompt).

    With ``skip_zero`` (beta = 0), groups whose advantages are all zero are left out: their loss
    and gradient are exactly zero. The normalizer still counts them (``step_normalizer``), so the
    update is the same as if they had been computed.
    """
    n_groups = advantages.numel() // group_size
    adv = advantages.view(n_groups, group_size)
    keep = [b for b in range(n_groups) if not skip_zero or bool((adv[b] != 0).any())]
    per_chunk = max(1, micro_batch_size // group_size)
    return [[b * group_size + g for b in keep[i:i + per_chunk] for g in range(group_size)]
            for i in range(0, len(keep), per_chunk)]


def cache_kwarg(model) -> str:
    """The forward() keyword for a KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def group_logprobs(model, batch: TrainBatch, rows: list[int], group_size: int, temperature: float, *, entropy: bool = False):
    """As :func:`sequence_logprobs` for whole groups, computing each shared prompt only once.

    The ``G`` completions of a prompt share its tokens, so the prompt goes through the model once
    per group; its keys and values (still attached to the autograd graph) are repeated ``G`` times
    and the completions attend to them. Gradients are the same as the per-sequence forward
    (tested), at roughly ``1/G`` of the prompt compute.
    """
    from transformers import DynamicCache

    if len(rows) % group_size or any(rows[i] % group_size for i in range(0, len(rows), group_size)):
        raise ValueError("group_logprobs needs whole groups of consecutive rows")
    firsts = torch.tensor(rows[::group_size], dtype=torch.long)
    idx = torch.tensor(rows, dtype=torch.long)
    device = next(model.parameters()).device
    pm = batch.prompt_mask.index_select(0, firsts)
    start = int(pm.any(0).nonzero()[0])
    pm = pm[:, start:].to(device)
    p_ids = batch.prompt_ids.index_select(0, firsts)[:, start:].to(device)  # [B', P]
    cm = batch.completion_mask.index_select(0, idx)
    t_len = max(1, int(cm.sum(-1).max()))
    c_ids = batch.completion_ids.index_select(0, idx)[:, :t_len].to(device)  # [N', T]
    cm = cm[:, :t_len].to(device)
    p_pos = (pm.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    kw = cache_kwarg(model)
    out = model(input_ids=p_ids, attention_mask=pm, position_ids=p_pos, use_cache=True, logits_to_keep=1, **{kw: cache})
    first_logits = out.logits[:, -1:].repeat_interleave(group_size, 0)  # [N', 1, V]: predicts token 0
    cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else cache
    cache.batch_repeat_interleave(group_size)
    attn = torch.cat([pm.repeat_interleave(group_size, 0), torch.ones_like(cm)], 1)
    c_pos = p_pos[:, -1:].repeat_interleave(group_size, 0) + 1 + torch.arange(t_len, device=device)
    if t_len > 1:
        rest = model(input_ids=c_ids[:, :-1], attention_mask=attn[:, :-1], position_ids=c_pos[:, :-1],
                     use_cache=True, **{kw: cache}).logits  # [N', T-1, V]
        logits = torch.cat([first_logits, rest], 1)
    else:
        logits = first_logits
    logp = selective_logprobs(logits, c_ids, temperature)
    ent = token_entropy(logits, temperature) if entropy else None
    return logp, cm, ent


def sequence_values(critic, batch: TrainBatch, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Critic values ``V_t`` of the completion tokens of ``rows``: ``(values [n, T], mask [n, T])``.

    ``V_t`` is read at the position that predicts completion token ``t`` (the state before ``t`` is
    generated, as verl), so ``V_0`` is the value of the prompt alone. ``T`` is trimmed exactly as in
    :func:`sequence_logprobs`, so both line up.
    """
    device = next(critic.parameters()).device
    ids, attn, positions, t_len, cm = _inputs(batch, rows, device)
    values = critic(input_ids=ids, attention_mask=attn, position_ids=positions, keep=t_len + 1)[:, :-1]  # [n, T]
    return values, cm
