"""How to read a completion's final answer, per correctness reward: for votes and per-sample records.

Correctness in an evaluation always comes from the task's correctness *reward* (the function that
trains the model also grades it, with every dataset column). What a reward does not give is the
answer it read, which majority voting (cons@k) needs; an :class:`AnswerReader` supplies it: the
same extraction the reward applies, and an equivalence test that pools answers written differently
("72", "72.0", "+72") into one vote.

Readers are registered by reward name in one table (:data:`_READERS`, filled by
:func:`register_reader`); a reward module can register its own reader next to the reward. A reward
without a reader (a ``module:function`` of the user, a code test) still gets pass@1 and pass@k;
cons@k needs an answer to vote on, so it is left out and the summary says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
    """The reader registered for ``reward`` (a reward spec string), or None when there is none.

    The reward's own module is imported first (through :func:`grpokit.rewards.resolve`, which also
    rejects unknown names), so readers registered beside a reward are found.
    """
    from grpokit import rewards as rw

    rw.resolve(reward)
    factory = _READERS.get(base_name(reward))
    return factory() if factory is not None else None


def reader_names() -> list[str]:
    """Reward names that have a registered reader."""
    return sorted(_READERS)


# ------------------------------------------------------------------------------ built-in readers


@register_reader("final_number")
def _final_number() -> AnswerReader:
    from grpokit.rewards.arith import final_number
    from grpokit.rewards.numbers import plain_number

    def same(a: str, b: str) -> bool:
        x, y = plain_number(a), plain_number(b)
        return x is not None and x == y

    return AnswerReader(final_number, same, "grpokit.rewards.arith.final_number")


@register_reader("math")
def _math() -> AnswerReader:
    from grpokit.rewards.math import answer_region, grade

    return AnswerReader(answer_region, grade, "grpokit.rewards.math.answer_region")
