"""The reward contract, enforced: one value per completion, a number or ``None``, within a time limit.

A reward function that breaks the contract costs the completions it broke on (they score ``None``:
unscorable, advantage 0, counted), never the run and never the other completions' scores:

=====================  =========================================================================
what the reward does   what happens (``problem`` in the error record / ``reward_error`` event)
=====================  =========================================================================
raises an Exception    ``exception``: the batch is retried one completion at a time; only the
                       completions that still raise score ``None``.
SystemExit,            ``escape``: same as an exception. A reward cannot end the process.
GeneratorExit, other
BaseException
KeyboardInterrupt      propagates: it is taken as Ctrl-C (the run stops resumably, with a
                       checkpoint). Python cannot tell a real Ctrl-C from a reward raising
                       KeyboardInterrupt itself, and a stop is the safe reading of both.
wrong number of        ``wrong_count``: nothing from that call is used (N+1 or N-1 values cannot
values                 be matched to completions); the batch is retried one at a time.
a non-number           ``not_a_number`` (a string, a list, ...): that completion scores ``None``.
NaN or +-inf           ``non_finite``: that completion scores ``None``; a NaN never reaches the loss
                       (nor does a weighted sum that overflows: ``score`` checks the total too).
runs past the limit    ``timeout``: the call is interrupted after ``timeout`` seconds; the batch
                       is retried one at a time, giving up after two single completions time out.
=====================  =========================================================================

How the time limit works: in the main thread, a watchdog thread sends a private real-time signal
(``SIGRTMIN + 2``, not ``SIGALRM``, which rewards such as math_verify use for their own timeouts)
to the main thread at the deadline, whose handler raises :class:`RewardTimeout` inside the reward
(a ``BaseException``, so a reward's own ``except Exception`` cannot swallow it; it is re-sent every
second until the reward gives up). Limits: the limit is enforced only in the main thread on Linux
(elsewhere, e.g. the explorer's worker threads, it is not), and a hang inside C code that holds the
GIL (a catastrophic ``re`` pattern) cannot be interrupted in-process; such rewards belong in a
subprocess, as the built-in ``math`` and ``code`` rewards do.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
"""Per-call limit when none is configured: generous for a reward model on a CPU, finite for a hang."""
MAX_SINGLE_TIMEOUTS = 2
"""After a batch call times out, single completions are retried; after this many of them also time
out the rest are not retried (a reward that hangs on everything would otherwise cost N limits)."""

_SIGNAL = signal.SIGRTMIN + 2 if hasattr(signal, "SIGRTMIN") and hasattr(signal, "pthread_kill") else None
_deadlines: list[float] = []  # monotonic deadlines of the limits in force, innermost last
_installed = False
_warned_platform = False


class RewardTimeout(BaseException):
    """Raised inside a reward that ran past its limit (BaseException: ``except Exception`` lets it pass)."""


class RewardFailure(Exception):
    """A reward call broke the contract: ``problem`` names how, ``message`` says what happened."""

    def __init__(self, problem: str, message: str):
        super().__init__(message)
        self.problem, self.message = problem, message


def _on_signal(signum, frame) -> None:
    if _expired():
        raise RewardTimeout


def _expired() -> bool:
    return bool(_deadlines) and time.monotonic() >= min(_deadlines)


class _Limit:
    """One call's deadline: ``arm()`` registers it and starts its watchdog, ``disarm()`` undoes both.

    A :class:`RewardTimeout` can land between any two bytecodes, so the caller arms inside its
    ``try``, asks :meth:`expired` to tell its own timeout from an enclosing one, and disarms in its
    ``finally``; :meth:`disarm` is idempotent and retried when a signal lands inside it.
    """

    def __init__(self, seconds: float):
        global _warned_platform
        self.seconds = seconds if seconds and seconds > 0 else 0.0
        self.active = bool(self.seconds) and _SIGNAL is not None \
            and threading.current_thread() is threading.main_thread()
        if self.seconds and _SIGNAL is None and not _warned_platform:
            _warned_platform = True
            log.warning("reward_timeout is not enforced on this platform (no real-time signals)")
        self.deadline = math.inf
        self.done = threading.Event()
        self.dog: threading.Thread | None = None

    def arm(self) -> None:
        global _installed
        if not self.active:
            return
        if not _installed:  # once, and left in place: a late signal must never meet the default (fatal) action
            signal.signal(_SIGNAL, _on_signal)
            _installed = True
        main, done, seconds = threading.main_thread().ident, self.done, self.seconds

        def watchdog():
            if done.wait(seconds):
                return
            while not done.is_set():
                signal.pthread_kill(main, _SIGNAL)
                done.wait(1.0)  # the reward swallowed it (a bare except), or an inner limit held it: again

        self.deadline = time.monotonic() + seconds
        _deadlines.append(self.deadline)
        self.dog = threading.Thread(target=watchdog, name="grpokit-reward-timeout", daemon=True)
        self.dog.start()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def disarm(self) -> None:
        if not self.active:
            return
        pending = None
        while True:
            try:
                if self.deadline in _deadlines:
                    _deadlines.remove(self.deadline)
                self.done.set()
                if self.dog is not None and self.dog.ident is not None:
                    self.dog.join()
                break
            except RewardTimeout as e:  # an enclosing limit fired: raise it once this one is disarmed
                pending = e
        if pending is not None and _expired():
            raise pending

    def failure(self) -> "RewardFailure":
        return RewardFailure("timeout", f"took longer than {self.seconds:g} s and was stopped "
                                        "(raise reward_timeout if it is just slow)")


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`RewardFailure` ``timeout`` if the body runs past ``seconds`` (0 = no limit)."""
    limit = _Limit(seconds)
    try:
        limit.arm()
        yield
    except RewardTimeout:
        if not limit.expired():  # an enclosing limit expired, not this one
            raise
        raise limit.failure() from None
    finally:
        limit.disarm()


def call(fn: Callable[..., Any], name: str, prompts: list, completions: list, columns: dict,
         timeout: float) -> list:
    """``fn(prompts, completions, **columns)`` under the contract: exactly one raw value per completion.

    Raises :class:`RewardFailure` for an exception, an escape, a timeout or a wrong count;
    lets ``KeyboardInterrupt`` (Ctrl-C) and an enclosing limit's :class:`RewardTimeout` through.
    """
    n = len(completions)
    limit = _Limit(timeout)
    try:  # the outer try: a timeout landing anywhere below, even inside an except clause, is caught here
        try:
            limit.arm()
            out = list(fn(prompts, completions, **columns))  # a generator runs inside the limit too
        except RewardTimeout:
            raise
        except KeyboardInterrupt:
            log.warning("reward %s was interrupted by KeyboardInterrupt: stopping as for Ctrl-C", name)
            raise
        except Exception:
            raise RewardFailure("exception", traceback.format_exc(limit=3)) from None
        except BaseException as e:  # SystemExit, GeneratorExit, ...: a reward does not get to end the run
            raise RewardFailure("escape", f"raised {type(e).__name__}({e!r}); a reward cannot stop the run, "
                                          "so its completions score None\n" + traceback.format_exc(limit=3)) from None
        finally:
            limit.disarm()
    except RewardTimeout:
        if not limit.expired():  # an enclosing limit (a reward that calls rewards): that one's failure
            raise
        raise limit.failure() from None
    if len(out) != n:
        raise RewardFailure("wrong_count", f"returned {len(out)} values for {n} completion{'s' * (n != 1)}; "
                                           "a reward returns exactly one number (or None) per completion")
    return out


def to_score(v: Any) -> tuple[float | None, str | None, str]:
    """One raw value -> ``(score, problem, message)``; ``score`` is ``None`` when ``problem`` is set or ``v`` is None."""
    if v is None:
        return None, None, ""
    if isinstance(v, (str, bytes, bytearray)):
        return None, "not_a_number", f"returned {v!r:.80}, not a number"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None, "not_a_number", f"returned {type(v).__name__} {v!r:.80}, not a number"
    if not math.isfinite(f):
        return None, "non_finite", f"returned {f}; non-finite rewards are unscorable"
    return f, None, ""
