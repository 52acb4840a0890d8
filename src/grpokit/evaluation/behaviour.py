"""Behaviour metrics of a batch of completions: the R1-Zero phenomena, measured.

DeepSeek-R1-Zero (Guo et al. 2025, §2.2.4 and the revised paper's Fig. on reflective words) reports
responses growing longer by themselves, reflective words ("wait", "verify", "mistake", ...) rising
5-7x, an "aha moment" where the model stops, re-evaluates and changes its answer, and language mixing.
Dr. GRPO (Liu et al. 2025, §3.1) shows *wrong* answers growing long under per-sequence length
normalisation, so lengths are reported separately for correct and wrong completions.

:func:`behaviour_metrics` returns a flat dict of ``behaviour/*`` keys (the trainer merges it into
``metrics.jsonl``; eval reports it). Keys whose inputs were not given, or that have no samples
(e.g. ``length_wrong_mean`` when everything is correct), are left out rather than set to NaN.

Counting conventions:

- **tokens**: ``lengths[i]`` as given (the policy tokenizer's completion length, the number the
  trainer has). Without ``lengths`` the count falls back to words (``\\S+`` runs), and the rates
  become "per 1,000 words", which are not comparable with token-based ones.
- **reflection_per_1k** ``= 1000 * sum_i hits_i / sum_i tokens_i`` (pooled over the batch, so long
  completions weigh more, as in a corpus rate); ``hits`` are whole-word, case-insensitive matches of
  :data:`REFLECTIVE_WORDS` (``\\bwait\\b``: "Wait," counts, "waiting" does not).
- **cjk_frac** ``= cjk / (cjk + latin)`` with one CJK ideograph counted as one word (Chinese has no
  spaces) and a Latin word a run of Latin letters: the words R1's language-consistency reward counts
  (:func:`grpokit.rewards.shaping.language_words`); ``mixed_lang_frac`` is the share of completions
  that contain both.
- **repetition** = mean over completions of rep-n ``= 1 - |unique n-grams| / |n-grams|`` over
  lower-cased whitespace words (Welleck et al. 2020, "Neural Text Generation with Unlikelihood
  Training", §5); completions shorter than ``n`` words are skipped.
- **entropy** = token-weighted mean of the given per-token entropies (nats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from grpokit.rewards.shaping import language_words

REFLECTIVE_WORDS = ("wait", "mistake", "however", "but", "retry", "error", "verify", "wrong", "evaluate", "check")
"""The words DeepSeek-R1 counts as reflective (revised R1 paper, analysis of R1-Zero training)."""

AHA_MARKERS = ("wait", "mistake", "wrong", "error", "retry", "actually", "oops", "recheck", "re-check",
               "reevaluate", "re-evaluate", "incorrect", "correction", "let me check", "let me verify")
"""Words that announce a revision. Narrower than :data:`REFLECTIVE_WORDS`: "but" and "however" also
join ordinary steps of an argument and would flag every multi-step computation."""

_WORD_RE = re.compile(r"\S+")


def _word_pattern(words: Sequence[str]) -> re.Pattern:
    alts = sorted((re.escape(w).replace(r"\ ", r"\s+") for w in words), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.IGNORECASE)


def count_words(text: str, words: Sequence[str] = REFLECTIVE_WORDS) -> int:
    """Whole-word, case-insensitive occurrences of any of ``words`` in ``text``."""
    return len(_word_pattern(words).findall(text))


def repetition(text: str, n: int = 4) -> float | None:
    """rep-n of one text: ``1 - unique/total`` word n-grams; None when it has fewer than ``n`` words."""
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return None
    return 1.0 - len(set(grams)) / len(grams)


# ----------------------------------------------------------------------------------------- aha

_NUM = r"-?\d(?:[\d,]*\d)?(?:\.\d+)?(?:/\d+)?"
_CANDIDATE_RES = (
    ("boxed", re.compile(r"\\boxed\{")),
    ("answer_tag", re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)),
    ("answer_is", re.compile(r"\banswer\s*(?:is|:|=)\s*\$?\s*(" + _NUM + r"|[^\s.,;$\\]+)", re.IGNORECASE)),
    # "= n" that ends an expression: not followed by an operator, a digit or an opening bracket.
    ("equals", re.compile(r"=\s*\$?\s*(" + _NUM + r")(?![\d.,/]*\d)(?!\s*[-+*/^×÷(])")),
)


@dataclass(frozen=True)
class AnswerMention:
    """An answer stated in a completion: its text, character span ``[start, end)`` and kind."""

    answer: str
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Aha:
    """A completion that stated one answer, announced a revision, and ended on a different, correct one.

    ``index`` is the completion's position in the batch; spans are character offsets in its text.
    """

    index: int
    first: AnswerMention
    marker: str
    marker_start: int
    final: AnswerMention
    excerpt: str

    def as_dict(self) -> dict:
        return {"index": self.index, "first_answer": self.first.answer,
                "first_span": [self.first.start, self.first.end],
                "marker": self.marker, "marker_span": [self.marker_start, self.marker_start + len(self.marker)],
                "final_answer": self.final.answer, "final_span": [self.final.start, self.final.end],
                "excerpt": self.excerpt}


def _braced(text: str, open_brace: int) -> int | None:
    depth = 0
    for j in range(open_brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j
    return None


def answer_mentions(text: str) -> list[AnswerMention]:
    """Every candidate answer statement, in text order: ``\\boxed{..}``, ``<answer>..</answer>``,
    "answer is/: X", and ``= <number>`` ending an expression (``= 3 + 4`` is skipped, ``= 7.`` kept);
    a mention nested in an earlier one (``<answer>x = 5</answer>``) is dropped."""
    found: list[AnswerMention] = []
    for kind, rx in _CANDIDATE_RES:
        for m in rx.finditer(text):
            if kind == "boxed":
                close = _braced(text, m.end() - 1)
                if close is None:
                    continue
                found.append(AnswerMention(text[m.end() : close].strip(), m.start(), close + 1, kind))
            else:
                found.append(AnswerMention(m.group(1).strip(), m.start(1), m.end(1), kind))
    found.sort(key=lambda a: (a.start, a.end))
    # An answer inside an <answer> tag or an "answer is" phrase may also match "= n": keep the outer one.
    out: list[AnswerMention] = []
    for a in found:
        if out and a.start < out[-1].end:
            continue
        out.append(a)
    return out


def _norm(ans: str) -> str:
    s = ans.strip().strip("$").strip().rstrip(".").replace(",", "").replace(" ", "")
    try:
        return repr(float(s))
    except ValueError:
        return s.lower()


def find_aha(
    texts: Sequence[str],
    correct: Sequence[bool | None],
    equivalent: Callable[[str, str], bool] | None = None,
    markers: Sequence[str] = AHA_MARKERS,
    context: int = 120,
) -> list[Aha]:
    """"Aha" candidates: completions that change their answer mid-way and end correct.

    Rule: the completion is correct (``correct[i]`` is True, as graded on its final answer); its last
    :func:`answer_mention` is the final answer; walking back, the latest earlier mention that differs
    from it (by ``equivalent(a, b)`` when given, else by normalised text / numeric value) is the first
    answer, and a revision marker (:data:`AHA_MARKERS`) must occur between the two. Requiring the
    marker keeps multi-step arithmetic ("3*4 = 12. 12+5 = 17") from counting as a change of mind.
    ``excerpt`` runs from ``context`` characters before the first answer to just after the final one.
    """
    if len(texts) != len(correct):
        raise ValueError(f"find_aha: {len(texts)} texts but {len(correct)} correctness flags")
    same = equivalent or (lambda a, b: _norm(a) == _norm(b))
    marker_re = _word_pattern(markers)
    found = []
    for i, (text, ok) in enumerate(zip(texts, correct)):
        if not ok:
            continue
        mentions = answer_mentions(text)
        if len(mentions) < 2:
            continue
        final = mentions[-1]
        for first in reversed(mentions[:-1]):
            if same(first.answer, final.answer):
                continue
            m = marker_re.search(text, first.end, final.start)
            if m:
                excerpt = text[max(0, first.start - context) : min(len(text), final.end + 20)]
                found.append(Aha(i, first, m.group(0), m.start(), final, excerpt))
            break  # only the latest differing answer counts as "the one it changed from"
    return found


# ------------------------------------------------------------------------------------- metrics


def _check_len(name: str, xs, n: int) -> None:
    if xs is not None and len(xs) != n:
        raise ValueError(f"behaviour_metrics: {name} has {len(xs)} entries but there are {n} texts")


def behaviour_metrics(
    texts: Sequence[str],
    lengths: Sequence[int] | None = None,
    correct: Sequence[bool | None] | None = None,
    entropies: Sequence[Sequence[float]] | None = None,
    format_fn: Callable[[str], bool] | None = None,
    equivalent: Callable[[str, str], bool] | None = None,
    repetition_n: int = 4,
    prefix: str = "behaviour/",
) -> dict[str, float]:
    """Behaviour of ``N`` completions as a flat dict (conventions in the module docstring).

    Args:
        texts: ``N`` completion texts.
        lengths: ``N`` completion lengths in tokens (falls back to word counts when None).
        correct: ``N`` correctness flags (None entries = ungraded, left out of the split lengths).
        entropies: ``N`` lists of per-token entropies (any lengths), averaged token-weighted.
        format_fn: predicate "the completion follows the required format".
        equivalent: answer equivalence used by :func:`find_aha` (e.g. ``grpokit.rewards.math.grade``).

    Keys (with ``prefix``): ``n``, ``length_mean``, ``length_median``, ``length_p90`` (numpy linear
    interpolation), ``length_correct_mean``, ``length_wrong_mean``, ``reflection_per_1k``,
    ``reflection_frac`` (share with >= 1 reflective word), ``format_rate``, ``cjk_frac``,
    ``mixed_lang_frac``, ``repetition``, ``entropy``, ``aha_count``, ``aha_frac``.
    """
    n = len(texts)
    if n == 0:
        raise ValueError("behaviour_metrics: no completions given")
    for name, xs in (("lengths", lengths), ("correct", correct), ("entropies", entropies)):
        _check_len(name, xs, n)
    toks = np.asarray(lengths if lengths is not None else [len(_WORD_RE.findall(t)) for t in texts], dtype=float)
    out: dict[str, float] = {"n": n}
    out["length_mean"] = float(toks.mean())
    out["length_median"] = float(np.median(toks))
    out["length_p90"] = float(np.percentile(toks, 90))
    if correct is not None:
        for key, want in (("length_correct_mean", True), ("length_wrong_mean", False)):
            sel = [t for t, c in zip(toks, correct) if c is not None and bool(c) == want]
            if sel:
                out[key] = float(np.mean(sel))

    refl = _word_pattern(REFLECTIVE_WORDS)
    hits = [len(refl.findall(t)) for t in texts]
    if toks.sum() > 0:
        out["reflection_per_1k"] = 1000.0 * sum(hits) / float(toks.sum())
    out["reflection_frac"] = sum(h > 0 for h in hits) / n

    if format_fn is not None:
        out["format_rate"] = sum(bool(format_fn(t)) for t in texts) / n

    langs = [language_words(t) for t in texts]  # (latin, cjk) words
    latin, cjk = sum(lat for lat, _ in langs), sum(c for _, c in langs)
    if cjk + latin:
        out["cjk_frac"] = cjk / (cjk + latin)
    out["mixed_lang_frac"] = sum(c > 0 and lat > 0 for lat, c in langs) / n

    reps = [r for r in (repetition(t, repetition_n) for t in texts) if r is not None]
    if reps:
        out["repetition"] = float(np.mean(reps))

    if entropies is not None:
        total = sum(len(e) for e in entropies)
        if total:
            out["entropy"] = float(sum(float(np.sum(e)) for e in entropies) / total)

    if correct is not None:
        ahas = find_aha(texts, correct, equivalent)
        out["aha_count"] = len(ahas)
        out["aha_frac"] = len(ahas) / n
    return {prefix + k: v for k, v in out.items()}
