"""Held-out evaluation of a model on a task: generate, grade with the task's reward, score.

    examples -> prompts (the task's instruction, the template)
             -> greedy completion, and k sampled ones per question (T = 0.6, top-p = 0.95, as R1)
             -> correctness: the task's correctness reward on every completion, with every dataset
                column (the function that trains the model grades it: the two cannot drift apart)
             -> answers for votes: the reward's own reader (grpokit.evaluation.answers)
             -> grpokit.evaluation.runner.evaluate_samples: greedy_acc, pass@1 over k, pass@k,
                cons@k, each with SE and a 95% interval, behaviour metrics, per-question and
                per-sample records

The one evaluator: ``grpokit eval``, the trainer's periodic evaluation and the pipeline's eval stage
all call :func:`evaluate`; generation and grading are :func:`grpokit.rewards.generate.generate_and_score`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from grpokit import rewards as rw
from grpokit.evaluation import R1_TEMPERATURE, R1_TOP_P
from grpokit.evaluation.answers import base_name, reader_for
from grpokit.evaluation.runner import evaluate_samples, write_eval
from grpokit.records import Example, Scored
from grpokit.rewards.generate import generate_and_score
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
class EvalResult:
    """What an evaluation returns: the flat ``summary`` (an ``eval.jsonl`` line) and the records."""

    summary: dict
    per_question: list[dict]
    per_sample: list[dict]

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """``summary.json``, ``summary.txt``, ``per_question.jsonl``, ``per_sample.jsonl`` in ``out_dir``."""
        return write_eval(out_dir, self.summary, self.per_question, self.per_sample)


def _correct(values: list[float | None]) -> list[bool]:
    """The correctness reward's values as flags: 1.0 is correct; None (could not score) counts as wrong."""
    return [v is not None and math.isclose(v, 1.0) for v in values]


def _format_fn(task):
    """A format predicate from the task's first ``*_format`` reward (1.0 = compliant), or None."""
    for spec in task.rewards:
        if base_name(spec).endswith("_format"):
            fn = rw.resolve(spec)
            return lambda text: fn([""], [text])[0] == 1.0
    return None


def evaluate(engine, tokenizer, task, examples: list[Example], settings: EvalSettings = EvalSettings(),
             *, correctness: str | None = None, format_fn: Callable[[str], bool] | None = None,
             progress: bool = False) -> EvalResult:
    """Greedy accuracy and (``settings.k > 0``) pass@1 over k, pass@k, cons@k of ``examples``.

    ``correctness`` overrides the task's correctness reward (a reward spec); ``format_fn`` the format
    predicate of ``behaviour/format_rate`` (default: the task's first ``*_format`` reward);
    ``progress`` shows a bar over the generation calls. Sampling
    and grading go through :func:`grpokit.rewards.generate.generate_and_score`. The summary also holds
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

    def prompt_text(ex: Example) -> str:
        return render(tokenizer, task.question_text(ex), settings.template, settings.system or None)

    def run(n: int, params: SamplingParams, generator=None) -> Scored:
        return generate_and_score(engine, examples, n, params, [grader], prompt_text, generator=generator,
                                  batch_size=settings.batch_size, progress=progress)

    greedy = sampled = None
    if settings.greedy:
        greedy = run(1, SamplingParams(0.0, 1.0, settings.max_new_tokens))
    if settings.k > 0:
        sampled = run(settings.k, SamplingParams(settings.temperature, settings.top_p, settings.max_new_tokens),
                      torch.Generator().manual_seed(settings.seed))
    t1 = time.time()

    def values(c: Scored) -> list[float | None]:  # the correctness reward's values
        return c.scores.per_fn[grader.name]

    summary, per_q, per_s = evaluate_samples(
        examples, sampled.per_example(sampled.texts) if sampled else None, None, reader.extract if reader else None, ks,
        equivalent_fn=reader.equivalent if reader else None,
        token_lengths=sampled.per_example(sampled.rollout.lengths.tolist()) if sampled else None,
        format_fn=format_fn or _format_fn(task),
        greedy_texts=greedy.texts if greedy else None,
        greedy_lengths=greedy.rollout.lengths.tolist() if greedy else None,
        correct=sampled.per_example(_correct(values(sampled))) if sampled else None,
        greedy_correct=_correct(values(greedy)) if greedy else None, level=settings.level)
    if sampled:
        for rec, trunc in zip(per_s, sampled.rollout.truncated.tolist()):
            rec["truncated"] = trunc
    runs = [c for c in (greedy, sampled) if c is not None]
    every = [v for c in runs for v in values(c)]
    scoring = sum(c.t_reward for c in runs)
    summary.update({
        "task": task.name, "correctness": name, "k": settings.k, "max_new_tokens": settings.max_new_tokens,
        "template": settings.template,
        "votes": reader.source if reader else (f"no answer reader for reward {name!r}: cons@k left out "
                                              "(register one with grpokit.evaluation.answers.register_reader)"),
        "unscored": sum(v is None for v in every), "reward_errors": sum(len(c.scores.errors) for c in runs),
        "truncated_frac": sum(t for c in runs for t in c.rollout.truncated.tolist()) / max(1, len(every)),
        "time/generate": sum(c.t_generate for c in runs),
        "time/score": time.time() - t1 + scoring,
    })
    if settings.k:
        summary.update({"temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed})
    return EvalResult(summary, per_q, per_s)
