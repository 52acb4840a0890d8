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

import time
from dataclasses import dataclass, field

import torch

from grpokit import rewards as rw
from grpokit.algo import informative_groups, overlong_penalty
from grpokit.records import Example, Rollout, Scores
from grpokit.rollout.multiturn import with_episodes


@dataclass
class Sampled:
    """The groups a step trains on (``B'`` prompts, ``B' * G`` completions) and what it cost."""

    examples: list[Example]
    rollout: Rollout
    scores: Scores
    rounds: int = 1
    """Generation rounds run this step."""
    generated: int = 0
    """Completions generated in all rounds (``B * G`` without refills)."""
    dropped: int = 0
    """Groups left out because their rewards were all equal."""
    errors: list[dict] = field(default_factory=list)
    """Reward errors of every round (``round`` and ``index`` within that round)."""
    t_generate: float = 0.0
    t_reward: float = 0.0


def reward_columns(examples: list[Example], G: int, rollout: Rollout, max_new_tokens: int | None = None) -> dict[str, list]:
    """Dataset columns repeated per completion, plus ``completion_ids``, ``truncated`` and ``max_new_tokens``."""
    keys = {k for ex in examples for k in ex.reward_columns()}
    cols = {k: [ex.reward_columns().get(k) for ex in examples for _ in range(G)] for k in keys}
    cols["completion_ids"] = [row[m.bool()].tolist() for row, m in zip(rollout.completion_ids, rollout.completion_mask)]
    cols["truncated"] = rollout.truncated.tolist()
    if max_new_tokens is not None:  # lets length-aware rewards (overlong) work without options
        cols["max_new_tokens"] = [max_new_tokens] * len(rollout.completions)
    return cols


def _pad(t: torch.Tensor | None, width: int, left: bool) -> torch.Tensor | None:
    if t is None or t.shape[1] == width:
        return t
    pad = t.new_zeros(t.shape[0], width - t.shape[1])
    return torch.cat([pad, t] if left else [t, pad], 1)


def concat_rollouts(parts: list[Rollout]) -> Rollout:
    """One rollout from several: prompts left-padded, completions right-padded to the widest."""
    if len(parts) == 1:
        return parts[0]
    P = max(r.prompt_ids.shape[1] for r in parts)
    T = max(r.completion_ids.shape[1] for r in parts)
    logps = [r.sample_logp for r in parts]
    return with_episodes(Rollout(
        prompt_ids=torch.cat([_pad(r.prompt_ids, P, True) for r in parts]),
        prompt_mask=torch.cat([_pad(r.prompt_mask, P, True) for r in parts]),
        completion_ids=torch.cat([_pad(r.completion_ids, T, False) for r in parts]),
        completion_mask=torch.cat([_pad(r.completion_mask, T, False) for r in parts]),
        truncated=torch.cat([r.truncated for r in parts]),
        prompts=[p for r in parts for p in r.prompts],
        completions=[c for r in parts for c in r.completions],
        sample_logp=None if any(x is None for x in logps) else torch.cat([_pad(x, T, False) for x in logps]),
    ), parts)


def select_rows(r: Rollout, rows: list[int]) -> Rollout:
    """The rollout restricted to ``rows`` (in that order)."""
    idx = torch.tensor(rows, dtype=torch.long)
    return with_episodes(Rollout(
        prompt_ids=r.prompt_ids[idx], prompt_mask=r.prompt_mask[idx], completion_ids=r.completion_ids[idx],
        completion_mask=r.completion_mask[idx], truncated=r.truncated[idx], prompts=[r.prompts[i] for i in rows],
        completions=[r.completions[i] for i in rows],
        sample_logp=None if r.sample_logp is None else r.sample_logp[idx],
    ), [r], rows)


def select_scores(s: Scores, rows: list[int]) -> Scores:
    idx = torch.tensor(rows, dtype=torch.long)
    return Scores(per_fn={k: [v[i] for i in rows] for k, v in s.per_fn.items()}, total=s.total[idx],
                  valid=s.valid[idx], errors=[])


def concat_scores(parts: list[Scores], errors: list[dict]) -> Scores:
    names = list(parts[0].per_fn)
    return Scores(per_fn={k: [v for s in parts for v in s.per_fn[k]] for k in names},
                  total=torch.cat([s.total for s in parts]), valid=torch.cat([s.valid for s in parts]), errors=errors)


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
        t0 = time.time()
        rollout = engine.generate([prompt_text(ex) for ex in examples], G, params, sampler)
        t1 = time.time()
        scores = rw.score(reward_specs, rollout.prompts, rollout.completions,
                          reward_columns(examples, G, rollout, params.max_new_tokens))
        t_gen, t_rew = t_gen + t1 - t0, t_rew + time.time() - t1
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
    return Sampled(examples=kept_ex, rollout=concat_rollouts(kept_roll), scores=concat_scores(kept_scores, errors),
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
