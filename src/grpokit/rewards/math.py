"""Math answer reward: grade only the final-answer region with ``math-verify``.

The region is, by ``region``: the inside of the last ``<answer>...</answer>``; the text after the
last ``</think>``; the last ``\\boxed{...}``; or ``auto`` (answer tag if present, else the last
``\\boxed{}``). There is deliberately no "last number anywhere" fallback: under RL pressure a
policy learns to spray numbers.
"""

from __future__ import annotations

import re

from grpokit.rewards import register

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def answer_region(text: str, region: str = "auto") -> str | None:
    """The part of a completion that is graded, or None when there is none."""
    if region in ("answer", "auto"):
        tags = _ANSWER_RE.findall(text)
        if tags:
            return tags[-1].strip()
        if region == "answer":
            return None
    if region == "think":
        if "</think>" not in text:
            return None
        return text.rsplit("</think>", 1)[1].strip()
    if region in ("boxed", "auto"):
        return last_boxed(text)
    raise ValueError(f"unknown answer region {region!r}")


_NUM_RE = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?$")


def _as_number(s: str):
    s = s.strip().strip("$").replace(",", "").strip()
    if not _NUM_RE.match(s):
        return None
    try:
        return float(s)
    except ValueError:
        return None


def grade(gold: str, answer: str) -> bool:
    """True when ``answer`` equals ``gold``: exact number first, then math-verify."""
    g, a = _as_number(str(gold)), _as_number(answer)
    if g is not None and a is not None:
        return g == a
    from math_verify import parse, verify  # heavy import, only when needed

    gold_parsed = parse(str(gold) if "$" in str(gold) or "\\" in str(gold) else f"${gold}$")
    pred_parsed = parse(answer if "\\boxed" in answer or "$" in answer else f"${answer}$")
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed))


@register("math")
def math_reward(prompts, completions, answer, region: str = "auto", **_) -> list[float | None]:
    """1.0 when the answer region matches the reference ``answer`` column, else 0.0."""
    out: list[float | None] = []
    for text, gold in zip(completions, answer):
        if gold is None:
            out.append(None)
            continue
        pred = answer_region(text, region)
        out.append(float(pred is not None and grade(gold, pred)))
    return out
