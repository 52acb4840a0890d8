"""How to read a completion's final answer, per correctness reward: for votes and per-sample records.

Correctness in an evaluation always comes from the task's correctness *reward* (the function that
trains the model also grades it, with every dataset column). What a reward does not return is the
answer it read, which majority voting (cons@k) needs; an :class:`AnswerReader` supplies it.

One reader per reward, the reward's own: its ``extract(text)`` (the answer its grader reads, with
its options: ``math(region='answer')`` votes on the ``<answer>`` block) and ``equivalent(a, b)``
(pools "72", "72.0", "+72"); rollout dumps and the explorer show the same ``extract``. A reward
without them (a user's ``module:function``) can get one with :func:`register_reader`; else it has
pass@1 and pass@k but no cons@k, and the summary says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from grpokit import rewards as rw

Extract = Callable[[str], "str | None"]
Equivalent = Callable[[str, str], bool]


@dataclass(frozen=True)
class AnswerReader:
    """Reads the graded answer of a completion and tells when two answers are the same.

    Attributes:
        extract: ``text -> answer`` (None when the completion states no answer).
        equivalent: ``(a, b) -> bool`` for two extracted answers (the vote's pooling rule).
        source: where it comes from, recorded in the summary (e.g. ``grpokit.rewards.arith.final_number``).
    """

    extract: Extract
    equivalent: Equivalent
    source: str


_READERS: dict[str, Callable[[], AnswerReader]] = {}


def register_reader(reward_name: str):
    """Decorator: ``factory() -> AnswerReader`` for the reward registered as ``reward_name``.

    Factories run on first use, so registering costs no import of the reward's dependencies.
    """

    def deco(factory: Callable[[], AnswerReader]) -> Callable[[], AnswerReader]:
        _READERS[reward_name] = factory
        return factory

    return deco


def base_name(spec: str) -> str:
    """The registry key of a reward spec: ``"math(region=answer)"`` -> ``"math"``."""
    return spec.split("(", 1)[0].strip()


def reader_for(reward: str) -> AnswerReader | None:
    """The reader of ``reward`` (a spec): its own ``extract``/``equivalent``, else one registered for
    the spec or its base name, else None. Unknown rewards are an error (``rewards.resolve``)."""
    fn = rw.resolve(reward)
    extract, equivalent = getattr(fn, "extract", None), getattr(fn, "equivalent", None)
    if callable(extract) and callable(equivalent):
        return AnswerReader(extract, equivalent, f"{extract.__module__}.{extract.__qualname__}")
    factory = _READERS.get(reward) or _READERS.get(base_name(reward))
    return factory() if factory is not None else None


def reader_names() -> list[str]:
    """Reward specs that have a registered reader (rewards that carry their own are not listed)."""
    return sorted(_READERS)


def answer_extractor(specs: list, correctness: str | None) -> Extract | None:
    """The answer a run's rollout dump and the explorer show (``extracted``): the ``extract`` of the reward named
    ``correctness`` among ``specs`` (:class:`grpokit.rewards.RewardSpec`), else of the first one."""
    spec = next((s for s in specs if s.name == correctness), specs[0] if specs else None)
    extract = getattr(spec.fn, "extract", None) if spec else None

    def safe(text: str) -> str | None:
        try:
            return extract(text)
        except Exception:  # a user's extractor must not cost a training step, nor the explorer a page
            return None

    return safe if extract is not None else None
