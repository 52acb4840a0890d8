"""Process supervision for GRPO: per-token advantages from per-step rewards (DeepSeekMath §4.1.3).

A step-reward function (user-provided: a process reward model, a rule per reasoning step, ...)
scores each step of each completion; a step is identified by the index of its last token in the
completion. All step rewards of the group are normalised together, and each token's advantage is
the sum of the normalised rewards of the steps that end at or after it:

    R       = { r_i^{index(j)} : every step j of every completion i of the group }
    r~      = (r - mean(R)) / (std(R) + eps)
    A[i, t] = sum_{j : index(j) >= t} r~_i^{index(j)}
"""

from __future__ import annotations

from typing import Sequence

import torch

from grpokit.algo.advantages import DEFAULT_EPS

Steps = Sequence[tuple[int, float]]


def process_advantages(
    steps: Sequence[Steps],
    length: int,
    *,
    eps: float = DEFAULT_EPS,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per-token advantages of one group from its step rewards: ``G`` step lists -> ``[G, T]``.

    Args:
        steps: one list per completion of ``(end_token_index, reward)`` pairs; ``end_token_index``
            is the 0-based position, in the completion, of the step's last token. A completion may
            have no steps (its advantages are then 0).
        length: ``T``, the padded completion length of the returned tensor.
        eps: added to the std of all step rewards of the group (Bessel std, as the outcome
            estimators in :mod:`grpokit.algo.advantages`).
        device: where to build the result.

    Returns:
        ``[G, T]`` float32. Tokens after a completion's last step get 0. When the group has fewer
        than two steps, or all its step rewards are equal, every advantage is exactly 0.

    Use with the token-level loss (``policy_loss`` accepts ``[N, T]`` advantages); GSPO's
    sequence-level ratio needs one advantage per sequence.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    rows, cols, values = [], [], []
    for i, completion in enumerate(steps):
        for end, reward in completion:
            if not 0 <= int(end) < length:
                raise ValueError(
                    f"completion {i}: step end index {end} is outside [0, {length}); "
                    "indices are 0-based token positions within the completion"
                )
            rows.append(i)
            cols.append(int(end))
            values.append(float(reward))
    out = torch.zeros(len(steps), length, dtype=torch.float32, device=device)  # [G, T]
    if len(values) < 2 or len(set(values)) == 1:
        return out
    r = torch.tensor(values, dtype=torch.float32, device=device)  # [S] all steps of the group
    normed = (r - r.mean()) / (r.std(unbiased=True) + eps)  # [S]
    idx_r = torch.tensor(rows, device=device)
    idx_c = torch.tensor(cols, device=device)
    out.index_put_((idx_r, idx_c), normed, accumulate=True)  # [G, T] reward at each step's end
    return out.flip(-1).cumsum(-1).flip(-1)  # [G, T] sum over steps ending at or after t
