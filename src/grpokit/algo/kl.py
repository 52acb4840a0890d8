"""Per-token estimators of KL(pi || pi_ref) from the log-probs of sampled tokens.

Schulman 2020, "Approximating KL divergence" (http://joschu.net/blog/kl-approx.html). With
``x = logp - ref_logp`` (the log-ratio of the sampled token):

    k1 = x                        unbiased, can be negative, high variance
    k2 = x^2 / 2                  biased, >= 0, low variance; its gradient is the KL's gradient
    k3 = exp(-x) + x - 1          unbiased, >= 0, low variance  (DeepSeekMath eq. 4)

Where the estimate goes is a separate choice (see ``docs/algorithms.md``):

- **in the reward** (classic RLHF, PPO in verl/TinyZero, RLOO in TRL, REINFORCE++): the estimate is
  computed once at sampling time from ``old_logp`` (no gradient) and subtracted from the reward,
  ``k1`` is the usual choice;
- **in the loss** (GRPO): the estimate is computed from ``logp`` (with gradient) and added to the
  per-token loss; ``k3`` (GRPO) or ``k2`` (REINFORCE++-baseline as slime documents it).
"""

from __future__ import annotations

from typing import Callable

import torch

KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k1 = logp - ref_logp`` per token, ``[N, T] -> [N, T]`` (Schulman 2020)."""
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k2 = (logp - ref_logp)^2 / 2`` per token, ``[N, T] -> [N, T]`` (Schulman 2020)."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per token, unbiased and >= 0.

    ``d = ref_logp - logp``; ``kl = exp(d) - d - 1``  (DeepSeekMath eq. 4; Schulman 2020, "Approximating KL")

    Args:
        logp, ref_logp: ``[N, T]`` log-probs of the sampled tokens under the policy and reference.

    Returns:
        ``[N, T]``.
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


KL_ESTIMATORS: dict[str, KLFn] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def get_kl_estimator(name: str) -> KLFn:
    """The estimator registered under ``name``; a clear error lists the known names."""
    try:
        return KL_ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown KL estimator {name!r}; choose one of {sorted(KL_ESTIMATORS)}") from None


def sequence_kl(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, estimator: str = "k1"
) -> torch.Tensor:
    """KL of each whole completion, the sum of its per-token estimates: ``[N, T] -> [N]``.

    ``KL_i = sum_t m[i, t] * k(logp[i, t], ref_logp[i, t])``. With ``k1`` this is
    ``log pi(o_i) - log pi_ref(o_i)``, the sequence-level penalty RLOO subtracts from the reward
    (Ahmadian et al. 2024; TRL's RLOOTrainer: ``r_i - beta * KL_i``). Pass ``old_logp`` (sampling
    time, no gradient) when the result goes into a reward.
    """
    per_token = get_kl_estimator(estimator)(logp, ref_logp)  # [N, T]
    return (per_token * mask.to(per_token.dtype)).sum(-1)
