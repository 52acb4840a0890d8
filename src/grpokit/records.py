"""Typed records that pass between the stages: tasks -> rollout -> rewards -> algo -> train.

``B`` prompts, ``G`` completions per prompt, ``N = B*G``, ``T`` completion tokens.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Example:
    """One task row: the question, its reference answer, and any other dataset columns.

    ``columns`` reach reward functions as keyword arguments (TRL's convention), so a reward can
    read ``answer``, ``tests``, ``data_source`` or anything else the dataset carries.
    """

    id: str
    question: str
    answer: Any
    columns: dict[str, Any] = field(default_factory=dict)

    def reward_columns(self) -> dict[str, Any]:
        return {"answer": self.answer, **self.columns}


@dataclass
class Rollout:
    """What the rollout engine returns for ``N`` sequences (the ``G`` samples of a prompt adjacent).

    ``prompt_ids`` is left-padded ``[N, P]``; ``completion_ids`` right-padded ``[N, T]``;
    ``completion_mask`` is 1 on generated tokens up to and including EOS. ``truncated[n]`` is True
    when the sequence hit ``max_new_tokens`` without EOS. ``sample_logp`` holds the sampler's own
    per-token log-probs when the engine provides them (``None`` otherwise).
    """

    prompt_ids: torch.Tensor  # [N, P]
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T]
    truncated: torch.Tensor  # [N] bool
    prompts: list[str]
    completions: list[str]
    sample_logp: torch.Tensor | None = None  # [N, T]

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)

    def token_ids(self) -> list[list[int]]:
        """Each completion's generated token ids (padding removed, EOS kept)."""
        return [row[m.bool()].tolist() for row, m in zip(self.completion_ids, self.completion_mask)]


@dataclass
class Scores:
    """Rewards of ``N`` completions: per reward function and the weighted total.

    ``per_fn[name][n]`` is ``None`` where that function could not score; ``valid[n]`` is False when
    any function gave ``None`` (the completion then gets advantage 0 and is counted).
    """

    per_fn: dict[str, list[float | None]]
    total: torch.Tensor  # [N]
    valid: torch.Tensor  # [N] bool
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Scored:
    """``n`` completions of each of ``B`` examples, generated and scored; rows ``b*n .. b*n+n-1`` are ``examples[b]``.

    What :func:`grpokit.rewards.generate.generate_and_score` returns to every caller. ``rollout``
    holds texts, token ids, masks, lengths, truncation and sampler log-probs; ``scores`` the values
    per reward, the weighted total and the errors. Any engine returning a :class:`Rollout` (HF, vLLM,
    a multi-turn rollout whose ``completion_mask`` leaves out tool turns) yields the same record.
    """

    examples: list[Example]
    n: int
    rollout: Rollout
    scores: Scores
    t_generate: float = 0.0
    """Seconds spent in the engine."""
    t_reward: float = 0.0
    """Seconds spent in the reward functions."""

    @property
    def texts(self) -> list[str]:
        return self.rollout.completions

    def per_example(self, values: list) -> list[list]:
        """``N`` per-completion values -> ``B`` lists of ``n`` (one per example)."""
        return [values[b * self.n:(b + 1) * self.n] for b in range(len(self.examples))]


def _pad(t: torch.Tensor, width: int, left: bool) -> torch.Tensor:
    if t.shape[1] == width:
        return t
    pad = t.new_zeros(t.shape[0], width - t.shape[1])
    return torch.cat([pad, t] if left else [t, pad], 1)


def concat_rollouts(parts: list[Rollout]) -> Rollout:
    """One rollout from several: prompts left-padded, completions right-padded to the widest."""
    if len(parts) == 1:
        return parts[0]
    P = max(r.prompt_ids.shape[1] for r in parts)
    T = max(r.completion_ids.shape[1] for r in parts)
    logps = [r.sample_logp for r in parts]
    return _like(parts, None,
        prompt_ids=torch.cat([_pad(r.prompt_ids, P, True) for r in parts]),
        prompt_mask=torch.cat([_pad(r.prompt_mask, P, True) for r in parts]),
        completion_ids=torch.cat([_pad(r.completion_ids, T, False) for r in parts]),
        completion_mask=torch.cat([_pad(r.completion_mask, T, False) for r in parts]),
        truncated=torch.cat([r.truncated for r in parts]),
        prompts=[p for r in parts for p in r.prompts],
        completions=[c for r in parts for c in r.completions],
        sample_logp=None if any(x is None for x in logps) else torch.cat([_pad(x, T, False) for x in logps]),
    )


def select_rows(r: Rollout, rows: list[int]) -> Rollout:
    """The rollout restricted to ``rows`` (in that order)."""
    idx = torch.tensor(rows, dtype=torch.long)
    return _like([r], rows,
        prompt_ids=r.prompt_ids[idx], prompt_mask=r.prompt_mask[idx], completion_ids=r.completion_ids[idx],
        completion_mask=r.completion_mask[idx], truncated=r.truncated[idx], prompts=[r.prompts[i] for i in rows],
        completions=[r.completions[i] for i in rows],
        sample_logp=None if r.sample_logp is None else r.sample_logp[idx],
    )


def _like(parts: list[Rollout], rows: list[int] | None, **fields) -> Rollout:
    """A Rollout of ``fields``, or of the parts' own subclass when they share one: the per-row lists a
    subclass adds (a multi-turn rollout's episodes and transcripts) are concatenated, or taken at ``rows``."""
    cls = type(parts[0])
    if cls is Rollout or any(type(p) is not cls for p in parts):
        return Rollout(**fields)
    for f in dataclasses.fields(cls):
        if f.name not in fields:
            joined = [x for p in parts for x in getattr(p, f.name)]
            fields[f.name] = joined if rows is None else [joined[i] for i in rows]
    return cls(**fields)


def select_scores(s: Scores, rows: list[int]) -> Scores:
    """The scores restricted to ``rows`` (errors are left out: their indices refer to the whole batch)."""
    idx = torch.tensor(rows, dtype=torch.long)
    return Scores(per_fn={k: [v[i] for i in rows] for k, v in s.per_fn.items()}, total=s.total[idx],
                  valid=s.valid[idx], errors=[])


def concat_scores(parts: list[Scores], errors: list[dict]) -> Scores:
    names = list(parts[0].per_fn)
    return Scores(per_fn={k: [v for s in parts for v in s.per_fn[k]] for k in names},
                  total=torch.cat([s.total for s in parts]), valid=torch.cat([s.valid for s in parts]), errors=errors)


def json_safe(v: Any) -> Any:
    """JSON-safe (the run folder, eval files, pipeline results, explorer answers): one-element tensors
    become numbers, NaN/inf None (JSON has neither), keys JSON cannot hold (tuples, ...) strings."""
    if hasattr(v, "item") and getattr(v, "numel", lambda: 1)() == 1:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k if k is None or isinstance(k, (str, int, float, bool)) else str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v
