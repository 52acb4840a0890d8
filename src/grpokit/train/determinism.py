"""How a run computes: CPU threads, seeds, and the ``deterministic`` mode.

What is reproducible:

- ``deterministic=True``: re-running a config, and resuming it after any stop, give bit-identical
  weights and metrics (timings aside). On the CPU it uses one thread: the multi-threaded MKL/oneDNN
  kernels sum in an order that changes from run to run (``MKL_CBWR=COMPATIBLE`` in the environment
  before Python starts is the other cure). On CUDA it turns on
  ``torch.use_deterministic_algorithms`` (and sets ``CUBLAS_WORKSPACE_CONFIG``), slower kernels
  that sum in a fixed order.
- Without it: the same data order, prompts and sampling seeds, but results equal only up to
  floating-point summation order; over many steps two runs drift apart like any two trainings.

"""

from __future__ import annotations

import os
import random

import torch


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def setup(*, threads: int, deterministic: bool, seed: int, device: str = "auto") -> None:
    """Apply the thread count, seed every generator, and (``deterministic``) fix the kernels' order."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = one per available CPU), got {threads}")
    if deterministic and threads > 1 and not str(device).startswith("cuda"):
        raise ValueError(f"deterministic runs on the CPU use one thread (multi-threaded kernels are not "
                         f"bit-reproducible), but threads={threads}: drop --threads or set it to 1")
    if deterministic:
        torch.set_num_threads(1)
        if torch.cuda.is_available() and str(device) != "cpu":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
    elif threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
