"""Accuracy estimators for sampled evaluation: pass@k, pass@1 over k samples, maj@k, and their errors.

Notation: ``Q`` questions; question ``q`` has ``n_q`` samples of which ``c_q`` are correct.

- **Unbiased pass@k** (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1):
  ``pass@k_q = 1 - C(n-c, k) / C(n, k)``, evaluated as the numerically stable product
  ``1 - prod_{i=n-c+1..n} (1 - k/i)``, and exactly 1.0 when ``n - c < k``. The dataset value is the
  mean of ``pass@k_q`` over questions.
- **pass@1 averaged over k samples** (DeepSeek-R1 2025, §3.1 "Evaluation Setup"): sample ``k``
  answers per question, ``pass@1 = mean_q (1/k) sum_i correct_qi``. It equals unbiased pass@1.
- **maj@k / cons@k** (Wang et al. 2023 "Self-consistency"; R1 reports cons@64): majority vote over
  the ``k`` extracted answers of a question, equivalent answers pooled by a verifier, then the
  winning answer is checked. See :func:`majority_vote` for the clustering and tie rules.

Uncertainty: every number comes back as an :class:`Estimate` with a standard error and a 95%
interval computed *across questions* (the samples of one question are not independent draws of the
benchmark, so pooling samples would understate the error):

- per-question scores that are all 0/1 (greedy accuracy, maj@k, pass@k with ``n = 1``): binomial
  SE ``sqrt(p(1-p)/Q)`` and the **Wilson score interval** (Wilson 1927), which stays inside [0, 1]
  and keeps sensible width at ``p = 0`` or ``1`` where the normal interval collapses to a point;
- fractional per-question scores (pass@k, pass@1 over k): SE ``= s / sqrt(Q)`` with ``s`` the sample
  std (Bessel) of the per-question values, normal interval ``mean +- z*SE`` clipped to [0, 1]
  (Miller 2024, "Adding Error Bars to Evals", §2.2); :func:`bootstrap_estimate` gives a
  percentile-bootstrap interval over questions instead.

Both rest on asymptotics. With fewer than :data:`SMALL_N` questions (AIME has 30) intervals are
wide and themselves rough; :attr:`Estimate.note` says so and callers should print it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np

SMALL_N = 50
"""Below this many questions an estimate carries a "wide interval" note."""

Equivalent = Callable[[str, str], bool]


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` questions with its standard error and a confidence interval.

    ``se``, ``ci_low`` and ``ci_high`` are NaN when undefined (one question with a fractional score).
    ``method`` is ``"wilson"``, ``"normal"`` or ``"bootstrap"``; ``level`` the interval's coverage.
    """

    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    method: str
    level: float = 0.95

    @property
    def note(self) -> str:
        """Empty, or a warning that the interval is wide because there are few questions."""
        return small_sample_note(self.n)

    def as_dict(self, name: str) -> dict[str, float]:
        """Flat keys for metrics/eval logs: ``name``, ``name_se``, ``name_ci_low``, ``name_ci_high``."""
        return {name: self.value, f"{name}_se": self.se, f"{name}_ci_low": self.ci_low, f"{name}_ci_high": self.ci_high}

    def __str__(self) -> str:
        if math.isnan(self.se):
            return f"{self.value:.4f} (n={self.n}, no interval)"
        return f"{self.value:.4f} ± {self.se:.4f} [{self.ci_low:.4f}, {self.ci_high:.4f}] (n={self.n})"


def small_sample_note(n: int) -> str:
    """The caveat to print next to an estimate over ``n`` questions ("" when ``n >= SMALL_N``)."""
    if n >= SMALL_N:
        return ""
    return (
        f"only {n} questions (< {SMALL_N}): the interval is wide and approximate; "
        "differences smaller than it are not evidence"
    )


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf((1.0 + level) / 2.0)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    ``centre = (p + z^2/2n) / (1 + z^2/n)``,
    ``half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)``  (Wilson 1927; Brown, Cai & DasGupta 2001).
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    z = _z(level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 (or 1) the bound is 0 (or 1) exactly; rounding would leave 1e-17.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def _as_array(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what}: need a non-empty list of per-question numbers, got {arr.size} values")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: per-question values must be finite numbers (found NaN or inf)")
    return arr


def mean_estimate(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean of per-question scores in [0, 1] with SE and interval across questions (rules above)."""
    arr = _as_array(values, "mean_estimate")
    n = arr.size
    p = float(arr.mean())
    if np.all((arr == 0.0) | (arr == 1.0)):
        lo, hi = wilson_interval(int(arr.sum()), n, level)
        return Estimate(p, math.sqrt(p * (1 - p) / n), lo, hi, n, "wilson", level)
    if n < 2:
        return Estimate(p, math.nan, math.nan, math.nan, n, "normal", level)
    se = float(arr.std(ddof=1)) / math.sqrt(n)
    z = _z(level)
    return Estimate(p, se, max(0.0, p - z * se), min(1.0, p + z * se), n, "normal", level)


def bootstrap_estimate(values: Sequence[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Percentile bootstrap over questions: resample ``Q`` questions with replacement ``n_boot`` times.

    ``se`` is the std of the resampled means; the interval is their ``(1-level)/2`` and
    ``(1+level)/2`` quantiles (Efron & Tibshirani 1993, ch. 13). Deterministic given ``seed``.
    """
    arr = _as_array(values, "bootstrap_estimate")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    _z(level)  # validates level
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    means = arr[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return Estimate(float(arr.mean()), float(means.std(ddof=1)) if n_boot > 1 else math.nan,
                    float(lo), float(hi), arr.size, "bootstrap", level)


# ----------------------------------------------------------------------------------------- pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question from ``n`` samples with ``c`` correct (Chen et al. 2021).

    ``1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1..n} (1 - k/i)``; 1.0 when ``n - c < k``.
    """
    for name, v in (("n", n), ("c", c), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"pass_at_k: {name} must be an int, got {type(v).__name__}")
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k={k} must be between 1 and the number of samples n={n}; sample more")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k_estimate(ns: Sequence[int], cs: Sequence[int], k: int, level: float = 0.95) -> Estimate:
    """Dataset pass@k: mean over questions of :func:`pass_at_k`, SE across questions."""
    if len(ns) != len(cs):
        raise ValueError(f"pass_at_k_estimate: {len(ns)} sample counts but {len(cs)} correct counts")
    return mean_estimate([pass_at_k(int(n), int(c), k) for n, c in zip(ns, cs)], level)


def mean_at_k(correct: Sequence[Sequence[bool]], k: int | None = None, level: float = 0.95) -> Estimate:
    """R1's pass@1: correctness averaged over the first ``k`` samples of each question (all if None).

    ``pass@1 = mean_q (1/k) sum_{i<k} correct_qi`` (DeepSeek-R1, §3.1); SE across questions.
    """
    per_q = []
    for q, row in enumerate(correct):
        kk = len(row) if k is None else k
        if kk < 1 or len(row) < kk:
            raise ValueError(f"mean_at_k: question {q} has {len(row)} samples, need k={kk} >= 1")
        per_q.append(sum(bool(x) for x in row[:kk]) / kk)
    return mean_estimate(per_q, level)


# ------------------------------------------------------------------------------- majority voting


@dataclass(frozen=True)
class Cluster:
    """Answers pooled as equivalent: the first one seen (``answer``), its sample index, all members."""

    answer: str
    first_index: int
    members: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class Vote:
    """Outcome of one majority vote.

    ``answer``/``index``: the winning cluster's representative and its sample index (None when no
    sample had an extractable answer). ``k``: votes considered (including unextractable ones).
    ``tie``: several clusters shared the top count; ``tied`` lists their representatives in order of
    first appearance (the winner first).
    """

    answer: str | None
    index: int | None
    count: int
    k: int
    clusters: tuple[Cluster, ...]
    tie: bool
    tied: tuple[str, ...]


def cluster_answers(answers: Sequence[str | None], equivalent: Equivalent) -> list[Cluster]:
    """Pool equivalent answers, in order of first appearance.

    Sample ``i`` joins the earliest existing cluster whose representative (its first member) is
    equivalent to it, checked as ``equivalent(representative, answer)``; otherwise it opens a new
    cluster. Identical strings (after ``strip``) are pooled without calling ``equivalent``. ``None``
    or empty answers (nothing extracted) are never votes. Verifier equivalence need not be
    transitive, so comparing against the representative only (not every member) is the rule.
    """
    reps: list[str] = []
    members: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None or not str(a).strip():
            continue
        a = str(a).strip()
        for j, rep in enumerate(reps):
            if a == rep or equivalent(rep, a):
                members[j].append(i)
                break
        else:
            reps.append(a)
            members.append([i])
    return [Cluster(rep, m[0], tuple(m)) for rep, m in zip(reps, members)]


def majority_vote(answers: Sequence[str | None], equivalent: Equivalent) -> Vote:
    """Majority vote over extracted answers with verifier pooling (see :func:`cluster_answers`).

    Tie-breaking: among clusters sharing the top count the winner is the one whose first member
    appears earliest in ``answers`` (deterministic given sample order; sample order is the
    generation order, which carries no preference, so this is an arbitrary but reproducible pick).
    Ties are reported in :attr:`Vote.tie` / :attr:`Vote.tied` so they can be counted.
    """
    clusters = cluster_answers(answers, equivalent)
    if not clusters:
        return Vote(None, None, 0, len(answers), (), False, ())
    top = max(c.count for c in clusters)
    tied = [c for c in clusters if c.count == top]  # already in first-appearance order
    win = tied[0]
    return Vote(win.answer, win.first_index, top, len(answers), tuple(clusters), len(tied) > 1,
                tuple(c.answer for c in tied))


def maj_at_k(
    answers: Sequence[Sequence[str | None]],
    correct: Sequence[Sequence[bool]],
    k: int,
    equivalent: Equivalent,
    level: float = 0.95,
) -> tuple[Estimate, list[Vote]]:
    """maj@k (= cons@k): vote over the first ``k`` answers of each question; the question counts as
    solved when the winning representative sample is correct (``correct[q][vote.index]``), so the
    vote's answer is graded exactly as that sample was. No extractable answer -> not solved.

    Returns the dataset estimate (0/1 per question, Wilson interval) and each question's vote.
    """
    if len(answers) != len(correct):
        raise ValueError(f"maj_at_k: {len(answers)} answer lists but {len(correct)} correctness lists")
    solved, votes = [], []
    for q, (ans, cor) in enumerate(zip(answers, correct)):
        if len(ans) != len(cor):
            raise ValueError(f"maj_at_k: question {q} has {len(ans)} answers but {len(cor)} correctness flags")
        if k < 1 or len(ans) < k:
            raise ValueError(f"maj_at_k: question {q} has {len(ans)} samples, k={k} needs at least k >= 1")
        vote = majority_vote(ans[:k], equivalent)
        votes.append(vote)
        solved.append(float(vote.index is not None and bool(cor[vote.index])))
    return mean_estimate(solved, level), votes
