"""From rollouts to per-token log-probs: the tensor work of one update, split into micro-batches.

Shapes: ``N`` sequences, ``P`` prompt tokens (left-padded), ``T`` completion tokens (right-padded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpokit.algo import head_logprobs, selective_logprobs, token_entropy
from grpokit.models import LLAMA_FAMILY, cache_kwarg
from grpokit.records import Rollout
from grpokit.train.sharding import is_sharded


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
    t_len = max(1, int(_extents(cm).max()))  # extent, not count: an episode's mask has holes on env tokens
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
    completions), and logits are computed only where completion tokens are predicted (for
    :func:`split_head` architectures a chunk of positions at a time, :func:`grpokit.algo.head_logprobs`).

    Returns:
        ``(logp [n, T], mask [n, T], entropy [n, T] or None)`` with ``T`` trimmed to the longest
        completion among ``rows``; ``mask`` is the matching completion mask.
    """
    device = next(model.parameters()).device
    ids, attn, positions, t_len, cm = _inputs(batch, rows, device)
    c_ids = ids[:, -t_len:]
    split = split_head(model)
    if split is not None:  # the head a chunk of positions at a time (no [n, T, V] logits)
        decoder, head = split
        hidden = decoder(input_ids=ids, attention_mask=attn, position_ids=positions,
                         use_cache=False).last_hidden_state[:, -(t_len + 1):-1]  # [n, T, C]: j predicts token j
        n = hidden.shape[0]
        logp, ent = head_logprobs(hidden.reshape(n * t_len, -1), head.weight, c_ids.reshape(-1), temperature,
                                  bias=head.bias, entropy=entropy)
        return logp.view(n, t_len), cm, None if ent is None else ent.view(n, t_len)
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=t_len + 1, use_cache=False)
    logits = out.logits[:, :-1]  # [n, T, V]: position j predicts completion token j
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


def _extents(mask: torch.Tensor) -> torch.Tensor:
    """``[n, T] -> [n]``: one past the last masked-in column of each row (0 for an empty row)."""
    cols = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return (mask.long() * cols).max(-1).values


def _packed_layout(extents: torch.Tensor, group_size: int):
    """Where each completion token goes when a group's completions are packed into rows.

    Completion ``r`` (of group ``r // G``) contributes its tokens ``0 .. e_r - 2`` as inputs (its
    last token predicts nothing that is scored). The completions of each group are packed
    first-fit-decreasing into rows of width ``W`` = the longest input, so a row is as long as the
    padded layout's but holds several short completions, and attention stays ``W x (P + W)`` per
    row. Returns ``(b, s, r, j)`` for every packed input (row, column, completion, token index),
    the group of each row, and ``W``.
    """
    n_in = (extents - 1).clamp(min=0).tolist()
    width = max(1, max(n_in, default=0))
    b_idx, s_idx, r_idx, j_idx, row_group = [], [], [], [], []
    for grp in range(len(n_in) // group_size):
        members = sorted(range(grp * group_size, (grp + 1) * group_size), key=lambda r: -n_in[r])
        fill: list[int] = []  # used width of this group's rows
        first_row = len(row_group)
        for r in members:
            k = n_in[r]
            if k == 0:
                continue
            slot = next((i for i, used in enumerate(fill) if used + k <= width), None)
            if slot is None:
                fill.append(0)
                row_group.append(grp)
                slot = len(fill) - 1
            b_idx += [first_row + slot] * k
            s_idx += range(fill[slot], fill[slot] + k)
            r_idx += [r] * k
            j_idx += range(k)
            fill[slot] += k
    as_t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return as_t(b_idx), as_t(s_idx), as_t(r_idx), as_t(j_idx), as_t(row_group), width


def split_head(model):
    """``(decoder, lm_head)`` of a causal LM whose logits are ``lm_head(decoder(...).last_hidden_state)``
    (:data:`grpokit.models.LLAMA_FAMILY` architectures, also under a PEFT wrapper), else None (use the whole forward)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(base, "config", None)
    head, decoder = getattr(base, "lm_head", None), getattr(base, "model", None)
    if getattr(cfg, "model_type", None) not in LLAMA_FAMILY or not isinstance(head, torch.nn.Linear) or decoder is None:
        return None
    if is_sharded(model) or is_sharded(base):  # FSDP gathers the root's weights (head, norm) in the root's forward only
        return None
    return decoder, head


def group_logprobs(model, batch: TrainBatch, rows: list[int], group_size: int, temperature: float, *, entropy: bool = False):
    """As :func:`sequence_logprobs` for whole groups, with each prompt computed once and no padding work.

    The ``G`` completions of a prompt share its tokens, so the prompt goes through the model once
    per group and its keys and values (still attached to the autograd graph) are kept in the
    cache. The completions are then *packed*: short ones share a row (first-fit decreasing, rows
    as wide as the longest completion), each token attending to its group's prompt and to the
    earlier tokens of its own completion only (a block-diagonal causal mask passed to the model as
    a 4D mask; rotary positions restart after the prompt for each completion). So only real
    completion tokens are computed, not ``[G, T]`` padding. Where the architecture allows
    (:func:`split_head`), the output layer is applied only at the packed tokens' positions, a chunk
    at a time (:func:`grpokit.algo.head_logprobs`), so neither padding nor the ``[R, W, V]`` logits
    cost anything. Values and gradients equal the per-sequence forward (tested).
    """
    from transformers import DynamicCache

    G = group_size
    if len(rows) % G or any(rows[i] % G for i in range(0, len(rows), G)):
        raise ValueError("group_logprobs needs whole groups of consecutive rows")
    firsts = torch.tensor(rows[::G], dtype=torch.long)
    idx = torch.tensor(rows, dtype=torch.long)
    device = next(model.parameters()).device
    pm = batch.prompt_mask.index_select(0, firsts)
    start = int(pm.any(0).nonzero()[0])
    pm = pm[:, start:].to(device)
    p_ids = batch.prompt_ids.index_select(0, firsts)[:, start:].to(device)  # [B', P]
    cm = batch.completion_mask.index_select(0, idx)
    extents = _extents(cm)  # [N']
    t_len = max(1, int(extents.max()))
    c_ids = batch.completion_ids.index_select(0, idx)[:, :t_len]  # [N', T]
    cm = cm[:, :t_len].to(device)
    n_rows = len(rows)
    p_pos = (pm.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    kw = cache_kwarg(model)
    out = model(input_ids=p_ids, attention_mask=pm, position_ids=p_pos, use_cache=True, logits_to_keep=1, **{kw: cache})
    cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else cache
    first = out.logits[:, -1].repeat_interleave(G, 0)[:, None]  # [N', 1, V]: predicts token 0
    flat0 = torch.arange(n_rows, device=device) * t_len  # token 0 of each completion in [N' * T]
    logp = selective_logprobs(first, c_ids[:, :1].to(device), temperature)[:, 0]
    logp = torch.zeros(n_rows * t_len, device=device, dtype=logp.dtype).index_put((flat0,), logp)
    ent = None
    if entropy:
        ent = torch.zeros(n_rows * t_len, device=device).index_put((flat0,), token_entropy(first, temperature)[:, 0].float())

    b, s, r, j, row_group, W = _packed_layout(extents, G)
    if len(b):
        R = len(row_group)
        ids = torch.zeros(R, W, dtype=torch.long)
        ids[b, s] = c_ids[r, j]
        targets = torch.zeros(R, W, dtype=torch.long)
        targets[b, s] = c_ids[r, j + 1]
        seg = torch.full((R, W), -1, dtype=torch.long)  # which completion each packed token belongs to
        seg[b, s] = r
        pos = torch.zeros(R, W, dtype=torch.long)
        pos[b, s] = j
        # Token (row, s) sees the prompt's real tokens and the packed tokens s' <= s of its own
        # completion; a padding column sees only itself (never an empty softmax).
        real = seg >= 0
        cols = torch.arange(W)
        own = (seg[:, :, None] == seg[:, None, :]) & (cols[None, None, :] <= cols[None, :, None]) & real[:, :, None]
        own |= torch.eye(W, dtype=torch.bool)[None]
        see_prompt = pm.cpu().bool().index_select(0, row_group)[:, None, :] & real[:, :, None]  # [R, W, P]
        allowed = torch.cat([see_prompt, own], -1)[:, None].to(device)  # [R, 1, W, P + W]
        dtype = next(model.parameters()).dtype
        mask4d = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)
        cache.batch_select_indices(row_group.to(device))  # each packed row gets its group's prompt
        positions = p_pos.index_select(0, row_group.to(device))[:, -1:] + 1 + pos.to(device)  # [R, W]
        inputs = dict(input_ids=ids.to(device), attention_mask=mask4d, position_ids=positions, use_cache=True)
        b, s = b.to(device), s.to(device)
        flat = r.to(device) * t_len + j.to(device) + 1
        split = split_head(model)
        if split is not None:  # the head only where a completion token is scored
            decoder, head = split
            hidden = decoder(**inputs, **{cache_kwarg(decoder): cache}).last_hidden_state  # [R, W, C]
            lp, en = head_logprobs(hidden[b, s], head.weight, targets.to(device)[b, s], temperature, bias=head.bias,
                                   entropy=entropy)  # [M]
        else:
            logits = model(**inputs, **{kw: cache}).logits  # [R, W, V]
            lp = selective_logprobs(logits, targets.to(device), temperature)[b, s]
            en = token_entropy(logits, temperature)[b, s].float() if entropy else None
        logp = logp.index_put((flat,), lp)
        if entropy:
            ent = ent.index_put((flat,), en)
    return logp.view(n_rows, t_len), cm, None if ent is None else ent.view(n_rows, t_len)


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
