"""Named points of a training step where a test injects a fault: ``GRPOKIT_FAULT=PHASE@STEP[:KIND]``.

    sampled        after sampling and scoring, before the update
    updated        after the weight update, before its metrics are logged
    logged         after the metrics line, before the checkpoint
    checkpointing  inside the checkpoint save: files written, not yet renamed into place
    saved          after the checkpoint

KIND: ``kill`` (default; SIGKILL, no cleanup of any kind), ``sigint`` / ``sigint2`` (one or two
Ctrl-C: SIGINT sent to the process itself), ``interrupt`` (a KeyboardInterrupt raised here),
``error`` (a RuntimeError), ``disk`` (an OSError "No space left on device"), ``pause`` (write this
process's pid to the file ``$GRPOKIT_FAULT_MARKER``, then wait for a signal: a test sends Ctrl-C from
outside at a known point, without sleeping). Unset, each point is one dictionary lookup. Used by
tests/train/test_faults.py and tests/train/test_dist.py.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "GRPOKIT_FAULT"
RANK_ENV = "GRPOKIT_FAULT_RANK"
"""With several processes (torchrun): only the rank it names faults (default: every rank)."""
MARKER_ENV = "GRPOKIT_FAULT_MARKER"
PHASES = ("sampled", "updated", "logged", "checkpointing", "saved")


def point(phase: str, step: int) -> None:
    """Fault ``phase`` of ``step`` when ``$GRPOKIT_FAULT`` names it."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    if os.environ.get(RANK_ENV, os.environ.get("RANK", "0")) != os.environ.get("RANK", "0"):
        return  # another rank's fault
    where, _, kind = spec.partition(":")
    if where != f"{phase}@{step}":
        return
    kind = kind or "kill"
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind in ("sigint", "sigint2"):
        for _ in range(1 if kind == "sigint" else 2):
            os.kill(os.getpid(), signal.SIGINT)
        return
    if kind == "pause":
        marker = os.environ[MARKER_ENV]
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)  # whole or absent: the test reads the pid once it exists
        signal.pause()  # returns once a signal's handler has run
        return
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "disk":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    raise RuntimeError(f"injected fault at {phase} of step {step}")
