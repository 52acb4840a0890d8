"""Math answer reward: find the one final answer in a completion and compare it with the reference.

Pipeline, per completion:

1. **Region** (``answer_region``): by template, the inside of ``<answer>...</answer>``
   (``answer``), the text after the last ``</think>`` (``think``), the ``\\boxed{}`` answers
   (``boxed``), or ``auto`` (answer tags if present, else text after ``</think>``, else boxed).
   There is deliberately no "last number anywhere" fallback: under RL pressure a policy learns to
   spray numbers.
2. **One answer** (``extract_answer``): a ``\\boxed{}`` inside the region wins; two *different*
   boxed answers or two different ``<answer>`` blocks are a hedge and score 0, as does an answer
   longer than ``max_chars``.
3. **Grade** (``grade``): mode ``auto`` compares plain numbers exactly in-process
   (``numbers.plain_number``; units, currency signs and bold around the model's number are
   allowed) and sends everything else to math-verify in a pool of worker
   processes (``verify_pool``); mode ``exact`` is GSM8K's integer reading (``numbers.exact_number``)
   and never leaves the process; mode ``symbolic`` always uses math-verify.

Model text is never passed to ``eval`` / ``sympify`` / ``parse_expr`` in this process: the fast
path is regular expressions and ``fractions.Fraction``; math-verify runs in the workers, with
LaTeX-only extraction and a guard on sympy's ``eval_expr``.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from grpokit.rewards import register, register_factory
from grpokit.rewards.numbers import AMBIGUOUS, exact_number, plain_number
from grpokit.rewards.verify_pool import VerifyPool

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LEAD_RE = re.compile(r"^\s*(?:so,?\s+)?(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)?\s*:?\s*", re.IGNORECASE)
_HEDGE_RE = re.compile(r"\b(?:or|either)\b|\\(?:text|mbox|textrm)\s*\{\s*or\s*\}", re.IGNORECASE)
REGIONS = ("auto", "answer", "think", "boxed")
MODES = ("auto", "exact", "symbolic")
MAX_ANSWER_CHARS = 200


def boxed_all(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces), in order."""
    out = []
    for m in _BOXED_RE.finditer(text):
        depth, i = 0, m.end() - 1
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[i + 1 : j])
                    break
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces), or None."""
    found = boxed_all(text)
    return found[-1] if found else None


def answer_region(text: str, region: str = "auto") -> str | None:
    """The part of a completion that is graded (the last ``<answer>`` block's inside, the text
    after the last ``</think>``, or the last ``\\boxed{}``), or None when there is none."""
    if region not in REGIONS:
        raise ValueError(f"unknown answer region {region!r}: use one of {REGIONS}")
    if region in ("answer", "auto"):
        tags = _ANSWER_RE.findall(text)
        if tags:
            return tags[-1].strip()
        if region == "answer":
            return None
    if region in ("think", "auto") and "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    if region == "think":
        return None
    return last_boxed(text)


@dataclass(frozen=True)
class Extracted:
    """The final answer of a completion, or why there is none.

    ``status``: ``ok``; ``missing`` (no region / empty answer: a format failure); ``multiple``
    (two different final answers); ``too_long`` (longer than the cap).
    """

    answer: str | None
    status: str


def _distinct(items: list[str]) -> list[str]:
    seen: list[str] = []
    for x in items:
        key = re.sub(r"\s+", "", x)
        if key not in [re.sub(r"\s+", "", s) for s in seen]:
            seen.append(x)
    return seen


def extract_answer(text: str, region: str = "auto", max_chars: int = MAX_ANSWER_CHARS) -> Extracted:
    """The single final answer of ``text`` under ``region`` (see the module docstring)."""
    if region not in REGIONS:
        raise ValueError(f"unknown answer region {region!r}: use one of {REGIONS}")
    tags = _ANSWER_RE.findall(text) if region in ("answer", "auto") else []
    if tags:
        tags = _distinct([t.strip() for t in tags])
        if len(tags) > 1:
            return Extracted(None, "multiple")
        scope = tags[0]
    elif region == "answer":
        return Extracted(None, "missing")
    elif region in ("think", "auto") and "</think>" in text:
        scope = text.rsplit("</think>", 1)[1]
    elif region == "think":
        return Extracted(None, "missing")
    else:  # boxed, or auto without tags: only a boxed answer counts
        scope = None
    boxes = _distinct([b.strip() for b in boxed_all(text if scope is None else scope)])
    if len(boxes) > 1:
        return Extracted(None, "multiple")
    if boxes:
        answer = boxes[0]
    elif scope is None:
        return Extracted(None, "missing")
    else:
        answer = _LEAD_RE.sub("", scope.strip(), count=1).strip().rstrip(".").strip()
    if not answer:
        return Extracted(None, "missing")
    if len(answer) > max_chars:
        return Extracted(None, "too_long")
    return Extracted(answer, "ok")


# --- grading -------------------------------------------------------------------------------

_POOL: VerifyPool | None = None
_POOL_LOCK = threading.Lock()
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 200_000


def verify_pool() -> VerifyPool:
    """The process-wide math-verify pool (started on first use; see ``configure_pool``)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = VerifyPool()
        return _POOL


def configure_pool(**kwargs) -> VerifyPool:
    """Replace the process-wide pool, e.g. ``configure_pool(n_workers=4, hard_timeout=5)``."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
        _POOL = VerifyPool(**kwargs)
        _CACHE.clear()
        return _POOL


def _as_latex(s: str) -> str:
    return s if ("$" in s or "\\boxed" in s or "\\(" in s or "\\[" in s) else f"${s}$"


def _gold_text(gold) -> str:
    if isinstance(gold, bool) or not isinstance(gold, (str, int, float)):
        raise ValueError(f"reference answer {gold!r} has type {type(gold).__name__}; use a string or a number")
    return str(gold).strip()


def grade_many(golds: list, answers: list[str | None], mode: str = "auto") -> list[bool]:
    """Grade ``answers[i]`` (an extracted answer, None = none) against ``golds[i]``.

    Plain numbers (and every pair in ``exact`` mode) are decided here; the rest go to the worker
    pool in one parallel batch. Verdicts are cached by ``(gold, answer, mode)``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown grading mode {mode!r}: use one of {MODES}")
    out: list[bool | None] = [None] * len(answers)
    slow: dict[tuple[str, str], list[int]] = {}
    for i, (gold, ans) in enumerate(zip(golds, answers)):
        g = _gold_text(gold)
        if ans is None:
            out[i] = False
            continue
        key = (g, ans, mode)
        if key in _CACHE:
            out[i] = _CACHE[key]
            continue
        if mode == "exact":
            gv = exact_number(g)
            if gv is None or gv == AMBIGUOUS:
                raise ValueError(f"exact mode needs a single number as the reference answer, got {g!r}")
            av = exact_number(ans)
            out[i] = _remember(key, av is not None and av != AMBIGUOUS and av == gv)
            continue
        gv = plain_number(g)
        av = plain_number(ans, units=gv is not None)  # "12 apples." against 12: read as written, no sympy
        if mode == "auto" and gv is not None and av is not None:
            out[i] = _remember(key, gv == av)
        elif mode == "auto" and gv is not None and plain_number(_HEDGE_RE.split(ans)[0]) is not None and _HEDGE_RE.search(ans):
            out[i] = _remember(key, False)  # "5 or 6" against a number: a hedge, no need for sympy
        else:
            slow.setdefault((g, ans), []).append(i)
    if slow:
        pairs = list(slow)
        verdicts = verify_pool().map([(_as_latex(g), _as_latex(a)) for g, a in pairs])
        for (g, a), v in zip(pairs, verdicts):
            _remember((g, a, mode), v.ok)
            for i in slow[(g, a)]:
                out[i] = v.ok
    return out  # type: ignore[return-value]


def _remember(key, value: bool) -> bool:
    _CACHE[key] = value
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def grade(gold, answer: str, mode: str = "auto") -> bool:
    """True when the extracted ``answer`` equals ``gold`` (see ``grade_many``)."""
    return grade_many([gold], [answer], mode)[0]


def same_answer(a: str, b: str, mode: str = "auto") -> bool:
    """Two extracted answers are one vote (cons@k) under ``mode``: ``exact`` compares integer readings
    (non-numbers never pool), the other modes ask :func:`grade` with ``a`` as the reference."""
    if mode == "exact":
        x = exact_number(a)
        return x is not None and x != AMBIGUOUS and x == exact_number(b)
    return grade(a, b, mode)


def math_reward(region: str = "auto", mode: str = "auto", max_chars: int = MAX_ANSWER_CHARS):
    """A math reward with its options fixed: ``math(region='answer', mode='exact')`` in a config."""
    if region not in REGIONS or mode not in MODES:
        raise ValueError(f"math reward: region must be one of {REGIONS} and mode one of {MODES}, "
                         f"got region={region!r} mode={mode!r}")

    def reward(prompts, completions, answer, **_) -> list[float | None]:
        """1.0 when the completion's single final answer equals the ``answer`` column, else 0.0;
        None where the reference answer is missing."""
        extracted = [extract_answer(c, region, max_chars) for c in completions]
        idx = [i for i, g in enumerate(answer) if g is not None]
        verdicts = grade_many([answer[i] for i in idx], [extracted[i].answer for i in idx], mode)
        out: list[float | None] = [None] * len(completions)
        for i, v in zip(idx, verdicts):
            out[i] = float(v)
        return out

    reward.__name__ = f"math_{region}_{mode}"
    # The reward's answer reader (rollout dumps, the explorer, cons@k votes): exactly what it grades.
    def extract(text: str) -> str | None:
        return extract_answer(text, region, max_chars).answer

    def equivalent(a: str, b: str) -> bool:
        return same_answer(a, b, mode)

    extract.__qualname__ = f"extract_answer(region={region!r}, max_chars={max_chars})"  # named in eval summaries
    reward.extract, reward.equivalent = extract, equivalent
    return reward


register_factory("math")(math_reward)
math = register("math")(math_reward())
math_exact = register("math_exact")(math_reward(mode="exact"))
