"""A persistent pool of math-verify worker processes with a hard wall-clock kill.

Why processes: math-verify's timeouts use ``signal.alarm``, which only works in a main thread, and
cannot interrupt C code (a huge integer power); sympy can also eat all memory. So each worker is a
separate process (``_scripts/math_worker.py``) with an address-space limit, its own main thread, and a
parent that kills it when an answer takes longer than ``hard_timeout`` seconds. A pathological
answer costs one timeout and one worker restart, never the run.

Workers are started once and reused (importing sympy costs about a second), are spawned from one
long-lived thread so their ``PR_SET_PDEATHSIG`` fires only when the trainer itself dies, exit on
end of input, and are killed by ``close()`` (registered with ``atexit``).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_WORKER = Path(__file__).parent / "_scripts" / "math_worker.py"


@dataclass(frozen=True)
class Verdict:
    """One graded pair: ``ok`` is the verdict; ``error`` says why it is False when it is not a plain mismatch."""

    ok: bool
    error: str | None = None


class _Spawner:
    """Starts processes from one daemon thread that lives as long as the interpreter.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits; spawning from a
    reward-calling thread that later ends would kill healthy workers.
    """

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, name="grpokit-verify-spawner", daemon=True).start()

    def _loop(self) -> None:
        while True:
            args, kwargs, box, done = self._q.get()
            try:
                box.append(subprocess.Popen(*args, **kwargs))
            except Exception as e:  # handed back to the caller
                box.append(e)
            done.set()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        box: list = []
        done = threading.Event()
        self._q.put((args, kwargs, box, done))
        done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]


_SPAWNER: _Spawner | None = None


class _Worker:
    def __init__(self, memory_mb: int, inner_timeout: int) -> None:
        global _SPAWNER
        if _SPAWNER is None:
            _SPAWNER = _Spawner()
        self.proc = _SPAWNER.popen(
            [sys.executable, str(_WORKER), str(os.getpid()), str(memory_mb), str(inner_timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        self.buf = b""
        self.ready = False
        self.started = time.monotonic()
        self.job: int | None = None  # index of the pair being graded
        self.deadline = 0.0

    def send(self, job: int, payload: dict, hard_timeout: float) -> None:
        self.job, self.deadline = job, time.monotonic() + hard_timeout
        self.proc.stdin.write((json.dumps(payload) + "\n").encode())

    def read_lines(self) -> list[dict]:
        chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        if not chunk:
            raise EOFError("worker exited")
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in lines if x.strip()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class VerifyPool:
    """``n_workers`` math-verify processes grading ``(gold, pred)`` pairs in parallel.

    Args:
        n_workers: worker processes (each holds sympy, ~150 MB); default: the CPU count, at most 4.
        hard_timeout: seconds one pair may take before its worker is killed (verdict False).
        memory_mb: address-space limit of each worker (``RLIMIT_AS``); 0 for none.
        inner_timeout: math-verify's own (signal based) parse/compare timeout, in whole seconds.
        start_timeout: seconds a fresh worker may take to import math-verify.
    """

    def __init__(self, n_workers: int | None = None, hard_timeout: float = 10.0, memory_mb: int = 2048,
                 inner_timeout: int = 3, start_timeout: float = 120.0) -> None:
        if n_workers is None:
            n_workers = max(1, min(4, os.cpu_count() or 1))
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers, self.hard_timeout = n_workers, hard_timeout
        self.memory_mb, self.inner_timeout, self.start_timeout = memory_mb, inner_timeout, start_timeout
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.timeouts = 0  # pairs whose worker had to be killed
        atexit.register(self.close)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc.poll() is None]

    def map(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        """Grade every ``(gold, pred)`` pair; the order of the result matches ``pairs``."""
        if self._closed:
            raise RuntimeError("this VerifyPool is closed")
        with self._lock:
            try:
                return self._map(pairs)
            except BaseException:
                # Interrupted mid-batch (a reward time limit, Ctrl-C): a busy worker's late answer
                # carries this batch's index and would be taken as the next batch's; start afresh.
                for w in self._workers:
                    w.kill()
                self._workers = []
                raise

    def _map(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(pairs)
        todo = list(range(len(pairs)))[::-1]
        while len(self._workers) < min(self.n_workers, max(1, len(pairs))):
            self._workers.append(_Worker(self.memory_mb, self.inner_timeout))
        sel = selectors.DefaultSelector()
        try:
            for w in self._workers:
                sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            while any(r is None for r in results):
                for w in self._workers:  # hand work to idle, ready workers
                    if w.ready and w.job is None and todo:
                        i = todo.pop()
                        try:
                            w.send(i, {"id": i, "gold": pairs[i][0], "pred": pairs[i][1]}, self.hard_timeout)
                        except OSError:  # it died between two pairs: retry the pair on a fresh one
                            w.job = None
                            todo.append(i)
                            self._replace(sel, w, results, "worker died")
                now = time.monotonic()
                waits = [w.deadline - now for w in self._workers if w.job is not None]
                waits += [w.started + self.start_timeout - now for w in self._workers if not w.ready]
                for key, _ in sel.select(timeout=max(0.0, min(waits, default=1.0))):
                    w = key.data
                    try:
                        for msg in w.read_lines():
                            if msg.get("ready"):
                                w.ready = True
                            elif w.job is not None and msg.get("id") == w.job:
                                results[w.job] = Verdict(bool(msg["ok"]), msg.get("error"))
                                w.job = None
                    except (EOFError, OSError, ValueError):
                        self._replace(sel, w, results, "worker died")
                now = time.monotonic()
                for w in list(self._workers):
                    if w.job is not None and now > w.deadline:
                        self.timeouts += 1
                        self._replace(sel, w, results, f"timeout after {self.hard_timeout:g}s")
                    elif not w.ready and now > w.started + self.start_timeout:
                        raise RuntimeError(f"a math-verify worker did not start in {self.start_timeout:g}s; "
                                           "is math-verify installed in this interpreter?")
        finally:
            sel.close()
        return results  # type: ignore[return-value]

    def _replace(self, sel, w: _Worker, results: list, reason: str) -> None:
        if w.job is not None:
            results[w.job] = Verdict(False, reason)
        elif not w.ready:
            raise RuntimeError(f"a math-verify worker exited while starting ({reason}); "
                               "check that `python -c 'import math_verify'` works")
        sel.unregister(w.proc.stdout)
        w.kill()
        fresh = _Worker(self.memory_mb, self.inner_timeout)
        self._workers[self._workers.index(w)] = fresh
        sel.register(fresh.proc.stdout, selectors.EVENT_READ, fresh)

    def close(self) -> None:
        """Stop every worker (closing stdin first lets them exit on their own)."""
        self._closed = True
        for w in self._workers:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        for w in self._workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            w.kill()
        self._workers = []
