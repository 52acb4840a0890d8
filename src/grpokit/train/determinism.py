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


SMALL_MODEL = 20_000_000
"""Parameters below which ``threads=0`` uses one thread: the matmuls are too small to split."""


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def auto_threads(model: torch.nn.Module) -> int:
    """What ``threads=0`` means: one thread for a model under :data:`SMALL_MODEL` parameters, else
    torch's default (one per physical core) capped at :func:`available_cpus`.

    Why: torch's default split the tiny test model's small matmuls over every core, and OpenMP's
    threads spin at each barrier; on a busy 2-core machine a 4-step tiny run took 34-51 s of wall
    time and 8-12 s of CPU with 2 threads against 16-21 s and 3.5-4.5 s with 1.
    """
    params = sum(p.numel() for p in model.parameters())
    n = 1 if params < SMALL_MODEL else min(torch.get_num_threads(), available_cpus())
    torch.set_num_threads(n)
    return n


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
