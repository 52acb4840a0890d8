"""Typed records that pass between the stages: tasks -> rollout -> rewards -> algo -> train.

``B`` prompts, ``G`` completions per prompt, ``N = B*G``, ``T`` completion tokens.
"""

from __future__ import annotations

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
