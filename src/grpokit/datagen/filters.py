"""Filters for rejection-sampled data: which verified completions are worth training on.

DeepSeek-R1 (§2.3.3) keeps only correct responses from its rejection sampling and filters out
"chain-of-thought with mixed languages, long paragraphs, and code blocks"; its cold-start data keeps
readable outputs in the ``<think>``/answer format. The filters here are those checks, one function
each, applied in the order given; a sample is kept when it passes every one:

- ``correct``: the verifier scored it 1.0 (at least ``min_reward``);
- ``format``: exactly one ``<think>...</think>`` then one ``<answer>...</answer>`` (``r1_format``);
- ``language``: at least ``min_language_share`` of its words are in the target script
  (:func:`grpokit.rewards.shaping.language_share`, the function R1's language-consistency reward
  calls; a text without words has share 0 and fails);
- ``length``: it ended by itself (not truncated) and has ``min_tokens <= tokens <= max_tokens``;
- ``repetition``: rep-n (share of repeated word n-grams, Welleck et al. 2020) at most ``max_repetition``;
- ``duplicate``: its normalised text differs from every sample already kept for the same prompt.

``duplicate`` needs the samples kept so far, so :func:`select` applies it; the others are pure
functions of one :class:`Candidate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from grpokit.evaluation.behaviour import repetition
from grpokit.rewards.format import is_r1_format
from grpokit.rewards.shaping import language_share


@dataclass(frozen=True)
class Candidate:
    """One sampled completion with what the filters need to know about it."""

    text: str
    tokens: int
    truncated: bool
    reward: float | None
    """The verifier's score (None = it could not score)."""


@dataclass(frozen=True)
class FilterSettings:
    """Thresholds of the filters (their meaning is in the module docstring)."""

    min_reward: float = 1.0
    min_tokens: int = 1
    max_tokens: int = 0
    """0 = no cap besides the sampling cap (a truncated sample always fails ``length``)."""
    max_repetition: float = 0.3
    repetition_n: int = 4
    script: str = "latin"
    min_language_share: float = 1.0


def _correct(c: Candidate, s: FilterSettings) -> bool:
    return c.reward is not None and c.reward >= s.min_reward


def _format(c: Candidate, s: FilterSettings) -> bool:
    return is_r1_format(c.text)


def _language(c: Candidate, s: FilterSettings) -> bool:
    return language_share(c.text, s.script) >= s.min_language_share


def _length(c: Candidate, s: FilterSettings) -> bool:
    return not c.truncated and c.tokens >= s.min_tokens and (s.max_tokens <= 0 or c.tokens <= s.max_tokens)


def _repetition(c: Candidate, s: FilterSettings) -> bool:
    rep = repetition(c.text, s.repetition_n)
    return rep is None or rep <= s.max_repetition


FILTERS: dict[str, Callable[[Candidate, FilterSettings], bool]] = {
    "correct": _correct, "format": _format, "language": _language, "length": _length, "repetition": _repetition,
}
"""Per-sample filters by name; ``duplicate`` (which needs the kept set) is applied by :func:`select`."""
FILTER_NAMES = (*FILTERS, "duplicate")


def check_names(names: list[str] | tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in FILTER_NAMES]
    if unknown:
        raise ValueError(f"unknown filter(s) {unknown}: use any of {list(FILTER_NAMES)}")


def normalise(text: str) -> str:
    """The text a duplicate is judged on: lower case, whitespace runs collapsed."""
    return re.sub(r"\s+", " ", text.strip().lower())


def select(candidates: list[Candidate], names: list[str], settings: FilterSettings, max_keep: int = 0,
           rejected: dict[str, int] | None = None) -> list[int]:
    """Indices of the candidates of ONE prompt that pass every filter, in order, at most ``max_keep`` (0 = all).

    ``rejected[name]`` counts candidates by the first filter they failed (``max_keep`` for the ones
    that passed but came after the prompt's quota was full).
    """
    check_names(names)
    kept: list[int] = []
    seen: set[str] = set()
    for i, c in enumerate(candidates):
        failed = None
        for name in names:
            ok = normalise(c.text) not in seen if name == "duplicate" else FILTERS[name](c, settings)
            if not ok:
                failed = name
                break
        if failed is None and max_keep and len(kept) >= max_keep:
            failed = "max_keep"
        if failed is not None:
            if rejected is not None:
                rejected[failed] = rejected.get(failed, 0) + 1
            continue
        kept.append(i)
        seen.add(normalise(c.text))
    return kept
