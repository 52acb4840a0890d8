"""Held-out evaluation of a model on a task: generate, grade with the task's reward, score.

    examples -> prompts (the task's instruction, the template)
             -> greedy completion, and k sampled ones per question (T = 0.6, top-p = 0.95, as R1)
             -> correctness: the task's correctness reward on every completion, with every dataset
                column (the function that trains the model grades it: the two cannot drift apart)
             -> answers for votes: the reward's AnswerReader (grpokit.evaluation.answers)
             -> grpokit.evaluation.runner.evaluate_samples: greedy_acc, pass@1 over k, pass@k,
                cons@k, each with SE and a 95% interval, behaviour metrics, per-question and
                per-sample records

``grpokit eval`` and the trainer's periodic evaluation both call :func:`evaluate`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grpokit import rewards as rw
from grpokit.evaluation import R1_TEMPERATURE, R1_TOP_P
from grpokit.evaluation.answers import base_name, reader_for
from grpokit.evaluation.runner import evaluate_samples, write_eval
from grpokit.records import Example
from grpokit.rollout import SamplingParams, render



@dataclass(frozen=True)
class EvalSettings:
    """How an evaluation samples and what it reports.

    Attributes:
        k: sampled completions per question for pass@1 / pass@k / cons@k (0 = greedy only).
        k_values: the ``k`` of pass@k and cons@k (each ``<= k``); empty = :func:`default_k_values`.
        greedy: also decode greedily once per question (``greedy_acc``).
        temperature, top_p: sampling of the ``k`` completions (R1: 0.6 and 0.95).
        max_new_tokens: completion cap; a completion that reaches it is truncated (and graded as is).
        template, system: prompt rendering (:func:`grpokit.rollout.render`), as in training.
        batch_size: sequences per generation call (memory vs speed).
        seed: seed of the sampler, so the same model gets the same samples (evaluations at
            different training steps then differ by the model, not by the dice).
        level: coverage of the intervals.
    """

    k: int = 0
    k_values: tuple[int, ...] = ()
    greedy: bool = True
    temperature: float = R1_TEMPERATURE
    top_p: float = R1_TOP_P
    max_new_tokens: int = 64
    template: str = "chat"
    system: str = ""
    batch_size: int = 64
    seed: int = 0
    level: float = 0.95

    def ks(self) -> tuple[int, ...]:
        """The pass@k / cons@k values this evaluation reports (validated against ``k``)."""
        ks = tuple(sorted(set(self.k_values))) if self.k_values else default_k_values(self.k)
        bad = [x for x in ks if not 1 <= x <= self.k]
        if bad:
            raise ValueError(f"pass@k / cons@k values {bad} need 1 <= k <= the samples per question ({self.k}); "
                             f"sample more (-k) or drop them")
        return ks


def default_k_values(k: int) -> tuple[int, ...]:
    """Powers of two below ``k``, and ``k``: ``8 -> (1, 2, 4, 8)``, ``6 -> (1, 2, 4, 6)``, ``0 -> ()``."""
    if k <= 0:
        return ()
    return tuple(sorted({2 ** i for i in range(int(math.log2(k)) + 1)} | {k}))


@dataclass
class Completions:
    """``n`` graded completions for each of ``Q`` questions (rows in question order)."""

    texts: list[list[str]]
    lengths: list[list[int]]
    truncated: list[list[bool]]
    rewards: list[list[float | None]]  # the correctness reward's values; None = could not score
    reward_errors: list[dict] = field(default_factory=list)
    grade_seconds: float = 0.0

    @property
    def correct(self) -> list[list[bool]]:
        return [[v is not None and math.isclose(v, 1.0) for v in row] for row in self.rewards]


@dataclass
class EvalResult:
    """What an evaluation returns: the flat ``summary`` (an ``eval.jsonl`` line) and the records."""

    summary: dict
    per_question: list[dict]
    per_sample: list[dict]

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """``summary.json``, ``summary.txt``, ``per_question.jsonl``, ``per_sample.jsonl`` in ``out_dir``."""
        return write_eval(out_dir, self.summary, self.per_question, self.per_sample)


def _columns(chunk: list[Example], n: int, rollout) -> dict[str, list]:
    keys = {key for ex in chunk for key in ex.reward_columns()}
    cols = {key: [ex.reward_columns().get(key) for ex in chunk for _ in range(n)] for key in keys}
    cols["completion_ids"] = [row[m.bool()].tolist() for row, m in zip(rollout.completion_ids, rollout.completion_mask)]
    cols["truncated"] = rollout.truncated.tolist()
    return cols


def generate_graded(engine, tokenizer, task, examples: list[Example], n: int, params: SamplingParams,
                    grader: rw.RewardSpec, *, template: str = "chat", system: str = "", batch_size: int = 64,
                    generator: torch.Generator | None = None) -> Completions:
    """``n`` completions per question from ``engine``, scored by ``grader`` (the correctness reward)."""
    per_call = max(1, batch_size // n)
    out = Completions([], [], [], [])
    for i in range(0, len(examples), per_call):
        chunk = examples[i:i + per_call]
        prompts = [render(tokenizer, task.question_text(ex), template, system or None) for ex in chunk]
        r = engine.generate(prompts, n, params, generator)
        t0 = time.time()
        scores = rw.score([grader], r.prompts, r.completions, _columns(chunk, n, r))
        out.grade_seconds += time.time() - t0
        values = scores.per_fn[grader.name]
        out.reward_errors += scores.errors
        lengths, trunc = r.lengths.tolist(), r.truncated.tolist()
        for j in range(len(chunk)):
            rows = slice(j * n, (j + 1) * n)
            out.texts.append(r.completions[rows])
            out.lengths.append([int(x) for x in lengths[rows]])
            out.truncated.append([bool(x) for x in trunc[rows]])
            out.rewards.append(values[rows])
    return out


def _format_fn(task):
    """A format predicate from the task's first ``*_format`` reward (1.0 = compliant), or None."""
    for spec in task.rewards:
        if base_name(spec).endswith("_format"):
            fn = rw.resolve(spec)
            return lambda text: fn([""], [text])[0] == 1.0
    return None


def evaluate(engine, tokenizer, task, examples: list[Example], settings: EvalSettings = EvalSettings(),
             *, correctness: str | None = None) -> EvalResult:
    """Greedy accuracy and (``settings.k > 0``) pass@1 over k, pass@k, cons@k of ``examples``.

    ``correctness`` overrides the task's correctness reward (a reward spec). The summary also holds
    the settings, ``unscored`` (completions the reward could not score, counted wrong),
    ``reward_errors``, ``truncated_frac``, ``votes`` (the answer reader, or why cons@k is absent),
    ``time/generate`` (sampling) and ``time/score`` (the reward, estimators and votes) in seconds.
    """
    if not examples:
        raise ValueError(f"task {task.name!r} has no questions to evaluate in this split")
    if settings.k < 0:
        raise ValueError(f"k must be >= 0 (0 = greedy only), got {settings.k}")
    if settings.k == 0 and not settings.greedy:
        raise ValueError("nothing to evaluate: greedy decoding is off and k = 0 samples")
    ks = settings.ks()
    name = correctness or task.correctness
    grader = rw.RewardSpec(name=base_name(name), fn=rw.resolve(name))
    reader = reader_for(name)
    common = dict(template=settings.template, system=settings.system, batch_size=settings.batch_size)

    t0 = time.time()
    greedy = sampled = None
    if settings.greedy:
        greedy = generate_graded(engine, tokenizer, task, examples, 1, SamplingParams(0.0, 1.0, settings.max_new_tokens),
                                 grader, **common)
    if settings.k > 0:
        params = SamplingParams(settings.temperature, settings.top_p, settings.max_new_tokens)
        gen = torch.Generator().manual_seed(settings.seed)
        sampled = generate_graded(engine, tokenizer, task, examples, settings.k, params, grader, generator=gen, **common)
    t1 = time.time()

    summary, per_q, per_s = evaluate_samples(
        examples, sampled.texts if sampled else None, None, reader.extract if reader else None, ks,
        equivalent_fn=reader.equivalent if reader else None,
        token_lengths=sampled.lengths if sampled else None, format_fn=_format_fn(task),
        greedy_texts=[row[0] for row in greedy.texts] if greedy else None,
        greedy_lengths=[row[0] for row in greedy.lengths] if greedy else None,
        correct=sampled.correct if sampled else None,
        greedy_correct=[row[0] for row in greedy.correct] if greedy else None, level=settings.level)
    if sampled:
        flat_trunc = [t for row in sampled.truncated for t in row]
        for rec, trunc in zip(per_s, flat_trunc):
            rec["truncated"] = trunc
    runs = [c for c in (greedy, sampled) if c is not None]
    every = [v for c in runs for row in c.rewards for v in row]
    summary.update({
        "task": task.name, "correctness": name, "k": settings.k, "max_new_tokens": settings.max_new_tokens,
        "template": settings.template,
        "votes": reader.source if reader else (f"no answer reader for reward {name!r}: cons@k left out "
                                              "(register one with grpokit.evaluation.answers.register_reader)"),
        "unscored": sum(v is None for v in every), "reward_errors": sum(len(c.reward_errors) for c in runs),
        "truncated_frac": sum(t for c in runs for row in c.truncated for t in row) / max(1, len(every)),
        "time/generate": t1 - t0 - sum(c.grade_seconds for c in runs),
        "time/score": time.time() - t1 + sum(c.grade_seconds for c in runs),
    })
    if settings.k:
        summary.update({"temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed})
    return EvalResult(summary, per_q, per_s)
