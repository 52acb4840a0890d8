"""Format rewards: does the completion put its answer where the grader will look?

- ``r1_format``: DeepSeek-R1's layout, exactly one ``<think>...</think>`` then exactly one
  ``<answer>...</answer>``, nothing after (1.0 or 0.0).
- ``tag_count``: a partial version (0.25 per R1 tag that appears exactly once), which gives a
  gradient before the full layout is ever produced (open-r1's ``tag_count_reward`` idea).
- ``boxed_format``: exactly one ``\\boxed{}`` answer.

Chat templates of reasoning models often pre-fill ``<think>`` at the end of the prompt; the
completion then starts inside the reasoning. By default (``think_prefilled=None``) this is read
from each prompt: a prompt that ends with ``<think>`` counts that tag for the completion.
"""

from __future__ import annotations

import re

from grpokit.rewards import register, register_factory
from grpokit.rewards.math import boxed_all

_R1_RE = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<ans>.*?)</answer>\s*$", re.DOTALL)
R1_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def prompt_prefills_think(prompt: str) -> bool:
    """True when the rendered prompt ends inside an opened ``<think>`` (a pre-filled template)."""
    return prompt.rstrip().endswith("<think>")


def is_r1_format(text: str, think_prefilled: bool = False) -> bool:
    """Exactly one ``<think>...</think>`` followed by exactly one ``<answer>...</answer>``, nothing after.

    With ``think_prefilled`` the template already wrote ``<think>``, so the completion starts inside it.
    """
    body = "<think>" + text if think_prefilled else text
    if any(body.count(tag) != 1 for tag in R1_TAGS):
        return False
    return _R1_RE.match(body) is not None


def tag_count_score(text: str, think_prefilled: bool = False) -> float:
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` present exactly once."""
    body = "<think>" + text if think_prefilled else text
    return sum(0.25 for tag in R1_TAGS if body.count(tag) == 1)


def _prefilled(prompts, n: int, think_prefilled: bool | None) -> list[bool]:
    if think_prefilled is not None:
        return [think_prefilled] * n
    return [prompt_prefills_think(p) if isinstance(p, str) else False for p in prompts]


@register_factory("r1_format")
def r1_format_reward(think_prefilled: bool | None = None):
    """``r1_format`` with the pre-fill decided once: ``r1_format(think_prefilled=True)``."""

    def r1_format(prompts, completions, **_) -> list[float]:
        """1.0 for the R1 ``<think>..</think><answer>..</answer>`` layout, else 0.0."""
        pre = _prefilled(prompts, len(completions), think_prefilled)
        return [float(is_r1_format(c, p)) for c, p in zip(completions, pre)]

    return r1_format


@register_factory("tag_count")
def tag_count_reward(think_prefilled: bool | None = None):
    """``tag_count`` with the pre-fill decided once: ``tag_count(think_prefilled=False)``."""

    def tag_count(prompts, completions, **_) -> list[float]:
        """0.25 per R1 tag that occurs exactly once (0.0 .. 1.0)."""
        pre = _prefilled(prompts, len(completions), think_prefilled)
        return [tag_count_score(c, p) for c, p in zip(completions, pre)]

    return tag_count


r1_format = register("r1_format")(r1_format_reward())
tag_count = register("tag_count")(tag_count_reward())


@register("boxed_format")
def boxed_format_reward(prompts, completions, **_) -> list[float]:
    """1.0 when the completion has exactly one ``\\boxed{}`` answer, else 0.0."""
    return [float(c.count("\\boxed") == 1 and len(boxed_all(c)) == 1) for c in completions]
