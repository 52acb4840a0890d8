"""Exact integer answers for arithmetic tasks.

The graded answer is the last ``\\boxed{}`` when there is one, else the number that ends the final
statement (the last number of the completion). Only that one number is compared with the
reference, so writing many numbers cannot earn reward: the last one must be right. The comparison
is exact (fractions, not floats: ``72``, ``72.0``, ``+72`` and ``1,072`` parse; ``72.5`` does not
equal 72, and 17-digit integers are not rounded), through ``rewards.numbers.plain_number``.
"""

from __future__ import annotations

import re

from grpokit.rewards import register
from grpokit.rewards.math import last_boxed
from grpokit.rewards.numbers import plain_number

_NUM = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")


def final_number(text: str) -> str | None:
    """The graded answer string of ``text`` (see module docstring), or None."""
    boxed = last_boxed(text)
    region = boxed if boxed is not None else text
    nums = _NUM.findall(region)
    return nums[-1] if nums else None


@register("final_number")
def final_number_reward(prompts, completions, answer, **_) -> list[float | None]:
    """1.0 when the final number equals the integer reference ``answer``; None when there is no reference."""
    out: list[float | None] = []
    for text, gold in zip(completions, answer):
        g = plain_number(str(gold)) if gold is not None else None
        if g is None:
            out.append(None)
            continue
        pred = final_number(text)
        out.append(float(pred is not None and plain_number(pred) == g))
    return out


def same_number(a: str, b: str) -> bool:
    """Two extracted answers are one vote when they are the same plain number ("72", "72.0", "+72")."""
    x = plain_number(a)
    return x is not None and x == plain_number(b)


# The reward's answer reader (rollout dumps, the explorer, cons@k votes): exactly what it grades.
final_number_reward.extract = final_number
final_number_reward.equivalent = same_number
