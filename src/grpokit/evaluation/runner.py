"""Score already-generated samples: accuracy estimators, majority votes and behaviour, plus files.

Generation is not done here (the rollout engine does it); this module turns ``Q`` questions with
``n`` sampled texts each into:

- a flat **summary** dict (loggable as an ``eval.jsonl`` line): ``pass@1`` (R1's mean over all
  ``n`` samples), unbiased ``pass@k`` and ``cons@k`` (= maj@k) for each requested ``k``, each with
  ``_se``/``_ci_low``/``_ci_high``, ``greedy_acc`` when greedy texts are given, the extraction
  rate, tie rates of the votes, and the ``behaviour/*`` metrics over all samples;
- **per-question** records (gold, correct count, per-k estimates, vote outcome and vote counts);
- **per-sample** records (text, extracted answer, correctness, length, format, aha span).

Correctness comes from ``grade_fn(gold, extract_fn(text))``, or precomputed flags (``correct=``,
``greedy_correct=``: what :mod:`grpokit.evaluation.accuracy` passes, from the task's correctness reward).
Greedy-only evaluations (``samples_per_question=None``) give ``greedy_acc`` and the behaviour of the
greedy texts; the trainer's periodic evaluation uses that by default because it is cheap.

Formulas and sources: :mod:`grpokit.evaluation.estimators` and :mod:`grpokit.evaluation.behaviour`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from grpokit.evaluation.behaviour import behaviour_metrics, find_aha
from grpokit.evaluation.estimators import (
    SMALL_N,
    majority_vote,
    maj_at_k,
    mean_at_k,
    mean_estimate,
    pass_at_k,
    pass_at_k_estimate,
    small_sample_note,
)
from grpokit.records import json_safe

GradeFn = Callable[[Any, str], bool]
ExtractFn = Callable[[str], "str | None"]


class _SafeGrader:
    """``grade(gold, answer)`` that records exceptions instead of raising, with a memo.

    A verifier that throws on one odd model output must not end an evaluation of thousands; the
    sample counts as wrong and the error is reported (``grade_errors`` in the summary).
    """

    def __init__(self, fn: GradeFn):
        self.fn, self.errors, self._memo = fn, [], {}

    def __call__(self, gold: Any, answer: str) -> bool:
        key = (str(gold), answer)
        if key not in self._memo:
            try:
                self._memo[key] = bool(self.fn(gold, answer))
            except Exception as e:  # noqa: BLE001 - any verifier failure becomes "not equal", reported
                self.errors.append({"gold": str(gold), "answer": answer, "error": f"{type(e).__name__}: {e}"})
                self._memo[key] = False
        return self._memo[key]


def _validate(examples, samples, k_values) -> list[int]:
    if not examples:
        raise ValueError("evaluate_samples: no questions to evaluate")
    if len(examples) != len(samples):
        raise ValueError(f"evaluate_samples: {len(examples)} examples but {len(samples)} sample lists; "
                         "pass one list of texts per question, in the same order")
    ns = [len(s) for s in samples]
    if min(ns) < 1:
        q = ns.index(min(ns))
        raise ValueError(f"evaluate_samples: question {getattr(examples[q], 'id', q)!r} has no samples")
    for k in k_values:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"evaluate_samples: k values must be positive ints, got {k!r}")
        if k > min(ns):
            raise ValueError(f"evaluate_samples: k={k} needs at least {k} samples per question but some question "
                             f"has only {min(ns)}; sample more or drop k={k}")
    return ns


def _shaped(name: str, rows, like: list[int]) -> None:
    if rows is not None and [len(r) for r in rows] != like:
        raise ValueError(f"evaluate_samples: {name} must have one entry per sample, shaped like the samples")


def _exact(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def evaluate_samples(
    examples: Sequence[Any],
    samples_per_question: Sequence[Sequence[str]] | None,
    grade_fn: GradeFn | None = None,
    extract_fn: ExtractFn | None = None,
    k_values: Sequence[int] = (1,),
    *,
    equivalent_fn: Callable[[str, str], bool] | None = None,
    token_lengths: Sequence[Sequence[int]] | None = None,
    format_fn: Callable[[str], bool] | None = None,
    greedy_texts: Sequence[str] | None = None,
    greedy_lengths: Sequence[int] | None = None,
    correct: Sequence[Sequence[bool]] | None = None,
    greedy_correct: Sequence[bool] | None = None,
    level: float = 0.95,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Everything eval reports, from texts. Returns ``(summary, per_question, per_sample)``.

    Args:
        examples: ``Q`` objects with ``id``, ``question`` and ``answer`` (e.g. :class:`grpokit.records.Example`).
        samples_per_question: ``Q`` lists of sampled completion texts (``n`` may differ per question);
            None for a greedy-only evaluation (then ``greedy_texts`` is required and ``k_values`` unused).
        grade_fn: ``grade_fn(gold, extracted) -> bool`` (e.g. :func:`grpokit.rewards.math.grade`).
            A sample is correct when ``extract_fn`` found an answer and ``grade_fn`` accepts it.
            Not needed when ``correct`` (and, with greedy texts, ``greedy_correct``) are given.
        extract_fn: ``extract_fn(text) -> str | None`` (e.g. :func:`grpokit.rewards.math.answer_region`).
            None = no answers to vote on: cons@k and ``extract_rate`` are left out.
        k_values: the ``k`` of pass@k and cons@k; each must be ``<=`` every question's ``n``.
        equivalent_fn: pools answers in the vote; defaults to ``grade_fn`` (the verifier decides
            when two answers are the same, so "1/2", "0.5" and "\\frac{1}{2}" vote together), else
            whitespace-normalised string equality.
        token_lengths: per-sample token counts for the behaviour metrics (word counts otherwise).
        format_fn: format predicate for ``behaviour/format_rate``.
        greedy_texts: ``Q`` greedy completions, graded into ``greedy_acc``.
        greedy_lengths: ``Q`` greedy token counts (behaviour metrics of a greedy-only evaluation).
        correct: ``Q`` lists of precomputed correctness flags shaped like the samples (e.g. the
            task's correctness reward, which sees every dataset column); replaces ``grade_fn``.
        greedy_correct: ``Q`` precomputed flags for ``greedy_texts``.
        level: interval coverage.

    The ``behaviour/*`` metrics describe the sampled completions, or the greedy ones when there are
    no samples (``behaviour_of`` in the summary says which).
    """
    greedy_only = samples_per_question is None
    if greedy_only:
        if greedy_texts is None:
            raise ValueError("evaluate_samples: give sampled texts, greedy texts, or both")
        if not examples:
            raise ValueError("evaluate_samples: no questions to evaluate")
        if token_lengths is not None or correct is not None:
            raise ValueError("evaluate_samples: token_lengths / correct describe samples, but none were given; "
                             "use greedy_lengths / greedy_correct")
        k_values = ()
    samples = [[] for _ in examples] if greedy_only else samples_per_question
    ns = [] if greedy_only else _validate(examples, samples, k_values)
    if not greedy_only:
        _shaped("token_lengths", token_lengths, ns)
        _shaped("correct", correct, ns)
    needs_grade = (not greedy_only and correct is None) or (greedy_texts is not None and greedy_correct is None)
    if needs_grade and (grade_fn is None or extract_fn is None):
        raise ValueError("evaluate_samples: pass grade_fn and extract_fn, or precomputed correct / greedy_correct "
                         "flags for every text given")
    grade = _SafeGrader(grade_fn) if grade_fn is not None else None
    equiv = grade if (equivalent_fn is None and grade is not None) else _SafeGrader(equivalent_fn or _exact)
    extract = extract_fn or (lambda text: None)

    def judge(ex, answers, given):
        if given is not None:
            return [bool(x) for x in given]
        return [a is not None and grade(ex.answer, a) for a in answers]

    extracted = [[extract(t) for t in texts] for texts in samples]
    ok = [judge(ex, ans, correct[q] if correct is not None else None)
          for q, (ex, ans) in enumerate(zip(examples, extracted))] if not greedy_only else [[] for _ in examples]

    summary: dict[str, Any] = {"n_questions": len(examples)}
    per_q_pass: dict[int, list[float]] = {}
    votes_at: dict[int, list] = {}
    if not greedy_only:
        summary.update({"samples_min": min(ns), "samples_max": max(ns)})
        summary.update(mean_at_k(ok, None, level).as_dict("pass@1"))
        for k in sorted(set(k_values)):
            if k > 1:
                summary.update(pass_at_k_estimate(ns, [sum(c) for c in ok], k, level).as_dict(f"pass@{k}"))
                per_q_pass[k] = [pass_at_k(n, sum(c), k) for n, c in zip(ns, ok)]
        if extract_fn is not None:
            for k in sorted(set(k_values)):
                est, votes = maj_at_k(extracted, ok, k, equiv, level)
                summary.update(est.as_dict(f"cons@{k}"))
                summary[f"cons@{k}_tie_frac"] = sum(v.tie for v in votes) / len(votes)
                votes_at[k] = votes
    if greedy_texts is not None:
        if len(greedy_texts) != len(examples):
            raise ValueError(f"evaluate_samples: {len(greedy_texts)} greedy texts for {len(examples)} questions")
        g_ans = [extract(t) for t in greedy_texts]
        g_ok = [judge(ex, [a], None if greedy_correct is None else [greedy_correct[q]])[0]
                for q, (ex, a) in enumerate(zip(examples, g_ans))]
        summary.update(mean_estimate([float(x) for x in g_ok], level).as_dict("greedy_acc"))
    if extract_fn is not None:
        pool = [a for row in extracted for a in row] if not greedy_only else g_ans
        summary["extract_rate"] = sum(a is not None for a in pool) / len(pool)

    if greedy_only:
        flat_texts, flat_correct = list(greedy_texts), g_ok
        flat_lengths = list(greedy_lengths) if greedy_lengths is not None else None
    else:
        flat_texts = [t for texts in samples for t in texts]
        flat_correct = [c for row in ok for c in row]
        flat_lengths = [x for row in token_lengths for x in row] if token_lengths is not None else None
    summary["behaviour_of"] = "greedy" if greedy_only else "sampled"
    summary.update(behaviour_metrics(flat_texts, flat_lengths, flat_correct, format_fn=format_fn,
                                     equivalent=equiv))
    errors = (grade.errors if grade else []) + (equiv.errors if equiv is not grade else [])
    summary["grade_errors"] = len(errors)
    summary["note"] = small_sample_note(len(examples))

    per_sample = []
    if not greedy_only:
        owner = [(q, i) for q, n in enumerate(ns) for i in range(n)]
        ahas = {owner[a.index]: a.as_dict() for a in find_aha(flat_texts, flat_correct, equiv)}
        for j, (q, i) in enumerate(owner):
            rec = {"id": examples[q].id, "sample": i, "text": flat_texts[j], "extracted": extracted[q][i],
                   "correct": ok[q][i], "length": flat_lengths[j] if flat_lengths else None}
            if format_fn is not None:
                rec["format"] = bool(format_fn(flat_texts[j]))
            if (q, i) in ahas:
                rec["aha"] = ahas[(q, i)]
            per_sample.append(rec)

    per_question = []
    for q, ex in enumerate(examples):
        rec: dict[str, Any] = {"id": ex.id, "question": ex.question, "answer": ex.answer}
        if not greedy_only:
            rec.update({"n": ns[q], "n_correct": sum(ok[q]), "pass@1": sum(ok[q]) / ns[q]})
            for k, vals in per_q_pass.items():
                rec[f"pass@{k}"] = vals[q]
            for k, votes in votes_at.items():
                v = votes[q]
                rec[f"cons@{k}"] = {"answer": v.answer, "correct": v.index is not None and ok[q][v.index],
                                    "count": v.count, "tie": v.tie, "tied": list(v.tied)}
            if extract_fn is not None:
                full = majority_vote(extracted[q], equiv)
                rec["votes"] = [[c.answer, c.count] for c in sorted(full.clusters, key=lambda c: -c.count)]
        if greedy_texts is not None:
            rec["greedy_correct"] = g_ok[q]
            rec["greedy_extracted"] = g_ans[q]
            rec["greedy_text"] = greedy_texts[q]
            if greedy_lengths is not None:
                rec["greedy_length"] = greedy_lengths[q]
        per_question.append(rec)
    if errors:
        summary["grade_error_examples"] = errors[:5]
    return summary, per_question, per_sample


# ------------------------------------------------------------------------------------ output


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.4f}" if abs(x) < 1000 else f"{x:.1f}"
    return str(x)


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table: each estimate with ± SE and its interval, then behaviour, then notes."""
    names = [k for k in summary if not k.startswith("behaviour/") and f"{k}_se" in summary]
    width = max([len(k) for k in names] + [len(k) for k in summary if k.startswith("behaviour/")] + [6])
    q = summary.get("n_questions", 0)
    lines = [f"{'metric':<{width}}  {'value':>8}  {'± SE':>8}  95% interval", "-" * (width + 42)]
    for k in names:
        lo, hi = summary.get(f"{k}_ci_low"), summary.get(f"{k}_ci_high")
        ci = f"[{_fmt(lo)}, {_fmt(hi)}]"
        lines.append(f"{k:<{width}}  {_fmt(summary[k]):>8}  {_fmt(summary[f'{k}_se']):>8}  {ci}")
    lines.append("")
    for k in ("n_questions", "samples_min", "samples_max", "extract_rate", "grade_errors"):
        if k in summary:
            lines.append(f"{k:<{width}}  {_fmt(summary[k]):>8}")
    lines += [f"{k:<{width}}  {_fmt(v):>8}" for k, v in summary.items() if k.endswith("_tie_frac")]
    beh = [(k, v) for k, v in summary.items() if k.startswith("behaviour/")]
    if beh:
        lines.append("")
        lines += [f"{k:<{width}}  {_fmt(v):>8}" for k, v in beh]
    if q and q < SMALL_N:
        lines += ["", f"NOTE: {small_sample_note(q)}."]
    return "\n".join(lines) + "\n"


def write_eval(out_dir: str | Path, summary: dict, per_question: list[dict], per_sample: list[dict]) -> dict[str, Path]:
    """Write ``summary.json``, ``summary.txt``, ``per_question.jsonl``, ``per_sample.jsonl``; return paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    paths = {name: out / name for name in ("summary.json", "summary.txt", "per_question.jsonl", "per_sample.jsonl")}
    paths["summary.json"].write_text(json.dumps(json_safe(summary), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["summary.txt"].write_text(format_summary(summary), encoding="utf-8")
    for name, recs in (("per_question.jsonl", per_question), ("per_sample.jsonl", per_sample)):
        with open(paths[name], "w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(json_safe(r), ensure_ascii=False, default=str) + "\n")
    return paths
