"""The rollout interface. An engine turns rendered prompts into ``G`` sampled completions each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from grpokit.records import Rollout


@dataclass(frozen=True)
class SamplingParams:
    """How completions are sampled.

    Attributes:
        temperature: softmax temperature; 0 means greedy. Training log-probs use the same value.
        top_p: nucleus sampling mass (1.0 = off).
        max_new_tokens: completion length cap; a completion that reaches it without EOS is truncated.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64


class RolloutEngine(Protocol):
    """What the trainer needs from a generator (Hugging Face today, vLLM later)."""

    def generate(self, prompts: list[str], n: int, params: SamplingParams, generator: torch.Generator | None = None) -> Rollout:
        """``n`` completions for each prompt, the ``n`` samples of a prompt adjacent (``N = len(prompts) * n``)."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the engine sample from ``model``'s current weights (a no-op when it shares them)."""
        ...
