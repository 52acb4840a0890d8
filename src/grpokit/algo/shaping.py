"""DAPO's length shaping: the soft overlong punishment and overlong filtering (Yu et al. 2025, §3.4).

Tensor functions only; wrapping the penalty into a reward function is done in ``grpokit.rewards``.
"""

from __future__ import annotations

import torch


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13), added to the task reward.

    With ``L_safe = max_len - cache_len``::

        R_len(y) = 0                            if |y| <= L_safe
                 = (L_safe - |y|) / cache_len   if L_safe < |y| <= max_len
                 = -1                           if |y| > max_len

    The penalty falls linearly from 0 to -1 over the last ``cache_len`` tokens of the budget.
    DAPO used ``max_len = 20480`` and ``cache_len = 4096`` (expected length 16384).

    Args:
        lengths: ``[N]`` completion lengths in tokens; float32 math for integers, else their dtype.
        max_len: ``L_max``, the generation budget.
        cache_len: ``L_cache``, the width of the soft zone, ``0 < cache_len <= max_len``.

    Returns:
        ``[N]`` penalties in ``[-1, 0]`` (float32 for integer lengths).
    """
    if not 0 < cache_len <= max_len:
        raise ValueError(
            f"need 0 < cache_len <= max_len, got cache_len={cache_len}, max_len={max_len}; "
            "DAPO used cache_len=4096 with max_len=20480"
        )
    length = lengths if lengths.is_floating_point() else lengths.float()  # [N]
    safe = float(max_len - cache_len)
    soft = ((safe - length) / cache_len).clamp(max=0.0)  # [N] 0 up to L_safe, then linear
    return torch.where(length > max_len, torch.full_like(length, -1.0), soft)


def overlong_filter(mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """DAPO's overlong filtering: drop truncated completions from the loss, ``[N, T] -> [N, T]``.

    A completion cut by the length limit gets a reward for an unfinished answer, which is noise;
    DAPO masks its loss (§3.4). The rows of ``truncated`` completions become all-zero, so the step
    normalizer (token-mean) no longer counts them.

    Args:
        mask: ``[N, T]`` completion mask.
        truncated: ``[N]`` bool, ``True`` where generation stopped at the length limit without EOS.
    """
    return mask * (~truncated.bool()).unsqueeze(-1).to(mask.dtype)
