"""Exact-match reward for answers that are words, lists or labels (reasoning-gym tasks, QA).

The final answer is found as for math (``math.extract_answer``: one answer, in the answer
region); both sides are then normalized (case, surrounding whitespace and quotes, inner runs of
whitespace, a final full stop, ``$`` / ``\\text{}`` wrappers) and compared as strings; two plain
numbers compare exactly as numbers (``72.0`` = ``72``).
"""

from __future__ import annotations

import re

from grpokit.rewards import register, register_factory
from grpokit.rewards.math import REGIONS, extract_answer
from grpokit.rewards.numbers import plain_number

_TEXT_RE = re.compile(r"^\\(?:text|textbf|mathrm)\{(.*)\}$", re.DOTALL)


def normalize(s: str) -> str:
    s = str(s).strip()
    if s.startswith("$") and s.endswith("$") and len(s) > 1:
        s = s.strip("$").strip()
    if m := _TEXT_RE.match(s):
        s = m.group(1)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"`":
        s = s[1:-1].strip()
    return s.casefold()


def same_answer(gold, answer: str) -> bool:
    g, a = normalize(gold), normalize(answer)
    gv, av = plain_number(g), plain_number(a)
    if gv is not None and av is not None:
        return gv == av
    return g == a


@register_factory("exact_answer")
def exact_answer_reward(region: str = "auto", max_chars: int = 1000):
    """``exact_answer(region='answer')``: 1.0 when the normalized final answer equals ``answer``."""
    if region not in REGIONS:
        raise ValueError(f"exact_answer: region must be one of {REGIONS}, got {region!r}")

    def exact_answer(prompts, completions, answer, **_) -> list[float | None]:
        """1.0 for a normalized string match of the single final answer; None without a reference."""
        out: list[float | None] = []
        for c, g in zip(completions, answer):
            if g is None:
                out.append(None)
                continue
            ex = extract_answer(c, region, max_chars)
            out.append(float(ex.answer is not None and same_answer(g, ex.answer)))
        return out

    return exact_answer


exact_answer = register("exact_answer")(exact_answer_reward())
