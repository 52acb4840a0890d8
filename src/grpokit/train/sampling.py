"""From prompts to scored groups: generation rounds, DAPO's dynamic sampling, length shaping.

    round 1:  B prompts -> G completions each -> rewards
    dynamic sampling (max_rounds >= 1): drop groups whose rewards are all equal (they teach nothing),
              sample as many new prompts as groups are missing, repeat up to max_rounds rounds
    then:     the soft overlong penalty is added to the reward as one more reward term

DAPO (Yu et al. 2025, arXiv 2503.14476, §3.2) samples until the batch is full and gives no limit;
ours stops after ``max_rounds`` rounds. When the limit leaves fewer than ``B`` informative groups
the step trains on those; when it leaves none, on the last round's groups (with ``beta = 0``
those teach nothing and the loop skips them, so the step changes no weight).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grpokit.algo import informative_groups, overlong_penalty
from grpokit.records import Scored, Scores, concat_rollouts, concat_scores, select_rows, select_scores
from grpokit.rewards.generate import generate_and_score


@dataclass
class Sampled(Scored):
    """The groups a step trains on (``B'`` prompts, ``B' * G`` completions) and what it cost."""

    rounds: int = 1
    """Generation rounds run this step."""
    generated: int = 0
    """Completions generated in all rounds (``B * G`` without refills)."""
    dropped: int = 0
    """Groups left out because their rewards were all equal."""
    errors: list[dict] = field(default_factory=list)
    """Reward errors of every round (``round`` and ``index`` within that round)."""


def sample_groups(engine, data, prompt_text, reward_specs, params, sampler, B: int, G: int, *,
                  max_rounds: int = 0) -> Sampled:
    """Sample and score ``B`` groups of ``G``; with ``max_rounds >= 1`` keep informative groups only.

    Args:
        engine: a :class:`grpokit.rollout.RolloutEngine` already synced to the policy.
        data: the run's example stream (``take(n)``); refills advance it, so resuming stays exact.
        prompt_text: ``Example -> str`` (the rendered prompt).
        max_rounds: 0 = no dynamic sampling (one round, every group kept); ``k`` = DAPO dynamic
            sampling with at most ``k`` generation rounds.
    """
    kept_ex, kept_roll, kept_scores, errors = [], [], [], []
    rounds = generated = dropped = 0
    t_gen = t_rew = 0.0
    while True:
        n = B - len(kept_ex)  # the first round samples B prompts, each refill the groups still missing
        examples = data.take(n)
        got = generate_and_score(engine, examples, G, params, reward_specs, prompt_text, generator=sampler)
        rollout, scores = got.rollout, got.scores
        t_gen, t_rew = t_gen + got.t_generate, t_rew + got.t_reward
        errors += [{**e, "round": rounds} if rounds else e for e in scores.errors]
        rounds, generated = rounds + 1, generated + n * G
        if max_rounds == 0:
            kept_ex, kept_roll, kept_scores = examples, [rollout], [scores]
            break
        keep = informative_groups(scores.total.view(n, G), scores.valid.view(n, G)).tolist()  # [n]
        dropped += keep.count(False)
        groups = [b for b in range(n) if keep[b]]
        if groups:
            rows = [b * G + g for b in groups for g in range(G)]
            kept_ex += [examples[b] for b in groups]
            kept_roll.append(select_rows(rollout, rows))
            kept_scores.append(select_scores(scores, rows))
        if len(kept_ex) >= B or rounds >= max_rounds:
            break
    if not kept_ex:  # nothing informative within the limit: train on the last round (teaches only via a KL term)
        kept_ex, kept_roll, kept_scores = examples, [rollout], [scores]
        dropped -= len(examples)
    return Sampled(examples=kept_ex, n=G, rollout=concat_rollouts(kept_roll), scores=concat_scores(kept_scores, errors),
                   rounds=rounds, generated=generated, dropped=dropped, errors=errors, t_generate=t_gen, t_reward=t_rew)


def add_overlong_penalty(scores: Scores, lengths: torch.Tensor, max_len: int, cache_len: int) -> Scores:
    """DAPO's soft overlong punishment as one more reward term, ``overlong_penalty`` (eq. 13).

    Added to the total of every scorable completion and listed in ``per_fn`` so the rollout dump
    and the metrics show it beside the task reward.
    """
    pen = overlong_penalty(lengths, max_len, cache_len)  # [N]
    total = torch.where(scores.valid, scores.total + pen, scores.total)
    per_fn = {**scores.per_fn, "overlong_penalty": [float(p) for p in pen]}
    return Scores(per_fn=per_fn, total=total, valid=scores.valid, errors=scores.errors)
