"""Format rewards: does the completion put its answer where the grader will look?"""

from __future__ import annotations

import re

from grpokit.rewards import register
from grpokit.rewards.math import last_boxed

_R1_RE = re.compile(r"^\s*(<think>)?(?P<think>.*?)</think>\s*<answer>(?P<ans>.*?)</answer>\s*$", re.DOTALL)


def is_r1_format(text: str, think_prefilled: bool = False) -> bool:
    """Exactly one ``<think>...</think>`` followed by exactly one ``<answer>...</answer>``, nothing after.

    With ``think_prefilled`` the template already wrote ``<think>``, so the completion starts inside it.
    """
    body = text if not think_prefilled else "<think>" + text
    if body.count("<think>") != 1 or body.count("</think>") != 1:
        return False
    if body.count("<answer>") != 1 or body.count("</answer>") != 1:
        return False
    m = _R1_RE.match(body)
    return bool(m) and body.lstrip().startswith("<think>")


@register("r1_format")
def r1_format_reward(prompts, completions, **_) -> list[float]:
    """1.0 for the R1 ``<think>..</think><answer>..</answer>`` layout, else 0.0."""
    return [float(is_r1_format(c)) for c in completions]


@register("boxed_format")
def boxed_format_reward(prompts, completions, **_) -> list[float]:
    """1.0 when the completion has exactly one ``\\boxed{}`` answer, else 0.0."""
    return [float(c.count("\\boxed") == 1 and last_boxed(c) is not None) for c in completions]
