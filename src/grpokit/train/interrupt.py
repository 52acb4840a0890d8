"""Ctrl-C during a run: finish the step in flight, save a checkpoint, stop; loses nothing done."""

from __future__ import annotations

import signal


class GracefulInterrupt:
    """First Ctrl-C: finish the current step, save, stop. Second: stop at once (still saving)."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to stop now).", flush=True)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)
        return False
