"""Generate and score, the one path: examples -> prompts -> engine (n each) -> reward columns -> rewards.

Training, the evaluator (``grpokit eval``, periodic and pipeline evaluation), rejection sampling and
the explorer's Try it all call :func:`generate_and_score`, so a reward sees the same columns wherever
it runs. It sits in ``rewards`` because it uses the engine below it and the rewards.
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
    """The keyword columns of every reward call, one entry per completion: each example's dataset
    columns repeated ``n`` times, ``truncated``, ``completion_ids`` (unpadded; left out when None, as
    for canned texts) and ``max_new_tokens`` when given (length-aware rewards such as ``overlong``)."""
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
                       generator: torch.Generator | None = None, batch_size: int = 0, progress: bool = False) -> Scored:
    """``n`` completions for each example from ``engine``, scored by every reward in ``reward_specs``.

    ``engine`` is already synced to the weights to sample; ``params.max_new_tokens`` is also the
    ``max_new_tokens`` column; ``generator`` is one random stream over all engine calls;
    ``batch_size`` caps the sequences per engine call (whole groups; 0 = one call), the chunks being
    concatenated in order (reward errors index the whole record; ``progress`` shows a bar over them).
    Returns ``B * n`` rows.
    """
    if not examples:
        raise ValueError("generate_and_score: no examples to sample from")
    per_call = max(1, batch_size // n) if batch_size else max(1, len(examples))
    rollouts, scores, errors = [], [], []
    t_gen = t_rew = 0.0
    starts = range(0, len(examples), per_call)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"generate x{n}", dynamic_ncols=True)
    for i in starts:
        chunk = examples[i:i + per_call]
        t0 = time.time()
        r = engine.generate([prompt_text(ex) for ex in chunk], n, params, generator)
        t1 = time.time()
        cols = reward_columns(chunk, n, truncated=r.truncated.tolist(), completion_ids=r.token_ids(),
                              max_new_tokens=params.max_new_tokens)
        s = score(reward_specs, r.prompts, r.completions, cols)
        t_gen, t_rew = t_gen + t1 - t0, t_rew + time.time() - t1
        rollouts.append(r)
        scores.append(s)
        errors += [{**e, "index": e["index"] + i * n} for e in s.errors]
    total = scores[0] if len(scores) == 1 else concat_scores(scores, errors)
    return Scored(examples=list(examples), n=n, rollout=concat_rollouts(rollouts), scores=total, t_generate=t_gen,
                  t_reward=t_rew)
