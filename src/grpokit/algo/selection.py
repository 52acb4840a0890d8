"""Which groups can teach, and which sequences need no forward/backward pass.

Two different questions, answered from two different tensors:

- **Dynamic sampling** (DAPO §3.2, eq. 11: keep a prompt only if ``0 < #correct < G``) asks whether a
  group's *rewards* differ. We generalise "0 < accuracy < 1" to "not all valid rewards are equal",
  which is the same test for 0/1 rewards and the right one for graded rewards (e.g. a format bonus).
- **Skipping** asks whether a sequence's *advantage* is zero. For group-centred estimators (grpo,
  dr_grpo, rloo, reinforce_pp_baseline) that happens exactly on the groups dynamic sampling drops,
  but not for ``reinforce_pp``, whose batch-level baseline gives an all-correct group a positive
  advantage: so skipping looks at advantages, never at rewards.
"""

from __future__ import annotations

import torch


def informative_groups(rewards: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Groups whose valid rewards are not all equal: ``[B, G] -> [B]`` bool.

    A group with fewer than two valid (scored) completions is not informative either. This is the
    keep-rule of DAPO's dynamic sampling; the loop keeps sampling prompts until ``B`` informative
    groups are collected or its refill limit is reached. Pass the task reward (DAPO filters on
    accuracy), before length shaping such as :func:`grpokit.algo.shaping.overlong_penalty`, which
    would otherwise make equally-correct groups look informative.

    Args:
        rewards: ``[B, G]``.
        mask: optional ``[B, G]`` bool, ``False`` where a completion could not be scored.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, G], got shape {tuple(rewards.shape)}")
    r = rewards.float()
    m = torch.ones_like(r, dtype=torch.bool) if mask is None else mask.bool()
    big = torch.finfo(r.dtype).max
    hi = torch.where(m, r, torch.full_like(r, -big)).amax(1)  # [B]
    lo = torch.where(m, r, torch.full_like(r, big)).amin(1)  # [B]
    return (hi != lo) & (m.sum(1) >= 2)


def skippable_sequences(adv: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Sequences that contribute exactly nothing to the policy gradient: ``[N] or [N, T] -> [N]`` bool.

    With the clipped surrogate (token-level or GSPO) a sequence whose advantage is 0 on every
    completion token has loss ``-min(rho*0, clip(rho)*0) = 0`` whatever ``rho`` is, so it needs no
    forward or backward pass. With ``beta > 0`` and the KL in the loss it still carries
    ``beta * kl`` (which pulls it toward the reference), so nothing is skippable: this function
    returns all ``False``. Pass ``beta = 0`` when the KL sits in the reward.

    Two conditions keep the gradient unchanged when the loop drops these sequences:

    1. the loss normalizer is computed from the *full* step mask (:func:`step_normalizer` on all
       ``N`` sequences) before dropping, because token-mean and seq-mean count the skipped
       sequences in their denominators;
    2. there is no critic: a value model still learns from zero-advantage sequences.

    Args:
        adv: ``[N]`` one advantage per sequence, or ``[N, T]`` per token.
        mask: ``[N, T]`` completion mask (used for per-token advantages).
        beta: the KL coefficient *in the loss*.
    """
    n = adv.shape[0]
    if beta > 0:
        return torch.zeros(n, dtype=torch.bool, device=adv.device)
    if adv.dim() == 1:
        return adv == 0
    return ~((adv != 0) & mask.bool()).any(-1)
