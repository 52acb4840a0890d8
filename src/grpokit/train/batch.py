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
