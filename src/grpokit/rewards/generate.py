"""Generate and score: the one path from examples to scored completions.

    examples -> prompt_text(example) -> engine.generate (n per prompt) -> reward columns -> every reward

Training (:mod:`grpokit.train.sampling`), the evaluator (:mod:`grpokit.evaluation.accuracy`, used by
``grpokit eval``, the trainer's periodic evaluation and the pipeline), rejection sampling
(:mod:`grpokit.datagen.sample`) and the explorer's Try it all call :func:`generate_and_score`, so a
reward sees the same columns wherever it runs. It lives in ``rewards`` (not ``rollout``) because it
uses both stages: the engine below it and the reward functions.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from grpokit.records import Example, Scored, concat_rollouts, concat_scores
from grpokit.rewards import RewardSpec, score
from grpokit.rollout.base import RolloutEngine, SamplingParams


def reward_columns(examples: list[Example], n: int, *, truncated: list[bool],
                   completion_ids: list[list[int]] | None = None, max_new_tokens: int | None = None) -> dict[str, list[Any]]:
    """The keyword columns of every reward call, one entry per completion (the one place they are built).

    Each example's dataset columns (``answer``, ``data_source``, ...) repeated ``n`` times, plus
    ``truncated``, ``completion_ids`` (generated token ids without padding; left out when None, e.g.
    for canned texts) and ``max_new_tokens`` when given (lets length-aware rewards such as
    ``overlong`` work without options).
    """
    keys = {k for ex in examples for k in ex.reward_columns()}
    cols = {k: [ex.reward_columns().get(k) for ex in examples for _ in range(n)] for k in keys}
    if completion_ids is not None:
        cols["completion_ids"] = completion_ids
    cols["truncated"] = list(truncated)
    if max_new_tokens is not None:
        cols["max_new_tokens"] = [max_new_tokens] * len(cols["truncated"])
    return cols


def generate_and_score(engine: RolloutEngine, examples: list[Example], n: int, params: SamplingParams,
                       reward_specs: list[RewardSpec], prompt_text: Callable[[Example], str], *,
                       generator: torch.Generator | None = None, batch_size: int = 0) -> Scored:
    """``n`` completions for each example from ``engine``, scored by every reward in ``reward_specs``.

    Args:
        engine: a :class:`grpokit.rollout.RolloutEngine` (already synced to the weights to sample).
        examples: the ``B`` examples; their columns reach the rewards.
        n: completions per example (``G``).
        params: sampling settings (``params.max_new_tokens`` is also the ``max_new_tokens`` column).
        reward_specs: the rewards (``grpokit.rewards.build``); their weighted sum is ``scores.total``.
        prompt_text: ``example -> rendered prompt``.
        generator: the sampler's random generator (one stream over all engine calls).
        batch_size: most sequences per engine call (whole groups; 0 = all in one call). Chunks are
            generated and scored in order and concatenated (reward errors index the whole record).

    Returns:
        A :class:`grpokit.records.Scored` of ``B * n`` rows, the ``n`` of an example adjacent.
    """
    if not examples:
        raise ValueError("generate_and_score: no examples to sample from")
    per_call = max(1, batch_size // n) if batch_size else max(1, len(examples))
    rollouts, scores, errors = [], [], []
    t_gen = t_rew = 0.0
    for i in range(0, len(examples), per_call):
        chunk = examples[i:i + per_call]
        t0 = time.time()
        r = engine.generate([prompt_text(ex) for ex in chunk], n, params, generator)
        t1 = time.time()
        ids = [row[m.bool()].tolist() for row, m in zip(r.completion_ids, r.completion_mask)]
        s = score(reward_specs, r.prompts, r.completions,
                  reward_columns(chunk, n, truncated=r.truncated.tolist(), completion_ids=ids,
                                 max_new_tokens=params.max_new_tokens))
        t_gen, t_rew = t_gen + t1 - t0, t_rew + time.time() - t1
        rollouts.append(r)
        scores.append(s)
        errors += [{**e, "index": e["index"] + i * n} for e in s.errors]
    total = scores[0] if len(scores) == 1 else concat_scores(scores, errors)
    return Scored(examples=list(examples), n=n, rollout=concat_rollouts(rollouts), scores=total, t_generate=t_gen,
                  t_reward=t_rew)
