"""Ctrl-C during a run: finish the step in flight, save a checkpoint, stop; loses nothing done."""

from __future__ import annotations

import signal
from contextlib import contextmanager


class GracefulInterrupt:
    """First Ctrl-C: finish the current step, save, stop. Second: stop at once (still saving), except
    inside :meth:`deferred` (the weight update), where it stops as soon as that block ends."""

    def __init__(self):
        self.requested = False
        self._deferring = False
        self._pending = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            if self._deferring:
                self._pending = True
                print("\nCtrl-C again: stopping as soon as the weight update in flight ends.", flush=True)
                return
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to stop now).", flush=True)

    @contextmanager
    def deferred(self):
        """A block a second Ctrl-C does not cut short (its KeyboardInterrupt comes when the block ends)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)
        return False
