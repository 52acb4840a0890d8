"""One training run's life in its folder, the same for GRPO (:mod:`grpokit.train.loop`) and SFT.

    open       lock the folder (a file holding our pid), find the resume point, refuse a changed
               config unless ``--override`` names the keys that may change
    begin      config.yaml (+ a config_history.jsonl line for what changed), status "running",
               records after the resumed step dropped, and for a new run a step-0 checkpoint:
               from here on every stop leaves a folder ``--resume true`` continues
    each step  ``critical()`` around the weight update; ``completed(step)`` when the step's weights,
               optimizer and data position are final; ``log(step, metrics)``; ``save(step)``
    any stop   Ctrl-C (first: finish the step; second: stop now, but never inside the update), an
               error, a full disk: the last *completed* step is saved under its own number (not when
               the weights are mid-update: then the last checkpoint stays), the status says
               interrupted or failed with the reason, the lock goes. The final save is part of this.

The lock (``RUN/.lock``) holds the pid of the run using the folder. A second run on the same folder
is refused while that process lives; a lock left by a process that is gone (SIGKILL, power cut) is
taken over.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from grpokit.config import RUN_INVOCATION
from grpokit.train import checkpoint as ckpt
from grpokit.train.interrupt import GracefulInterrupt
from grpokit.run_folder import RunReader, RunWriter

LOCK = ".lock"
CONFIG_HISTORY = "config_history.jsonl"
VOLATILE = ("progress", "threads", "report_to", "sharding")
"""Config keys that may change on resume without ``--override``: they do not change what is computed
(a change is still recorded; the keys of one invocation, ``RUN_INVOCATION``, are not compared at all)."""


class RunLocked(FileExistsError):
    """Another live process is using the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def acquire_lock(run_dir: Path) -> Path:
    """Create ``run_dir/.lock`` holding this pid and host; take over a lock whose process is gone.

    A lock written on another host (a shared file system) cannot be checked, so it is respected.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path, host = run_dir / LOCK, socket.gethostname()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_s, _, their_host = path.read_text().strip().partition(" ")
                pid = int(pid_s)
            except (OSError, ValueError):
                pid, their_host = 0, host  # empty or half-written: its writer died between create and write
            other_host = bool(their_host) and their_host != host
            if pid and (other_host or (pid != os.getpid() and _alive(pid))):
                where = f"process {pid}" + (f" on {their_host}" if other_host else "")
                raise RunLocked(f"{run_dir} is in use by {where} (lock file {path}); wait for it to end or stop it, "
                                f"or use another --out. If no such run is going on, delete {path}") from None
            path.unlink(missing_ok=True)  # its process is gone: the folder is free
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {host}\n")
        return path
    raise RunLocked(f"could not lock {run_dir}: {path} keeps reappearing (another run starting?)")


def release_lock(path: Path) -> None:
    try:
        if path.read_text().split()[0] == str(os.getpid()):
            path.unlink()
    except (OSError, IndexError):
        pass


def resume_command(command: str, run_dir: Path) -> str:
    """The command that continues a run: its config.yaml supplies the rest (:func:`grpokit.config.make`)."""
    return f"{command} --out {shlex.quote(str(run_dir))} --resume true"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def config_changes(run_dir: Path, config: dict[str, Any]) -> dict[str, list]:
    """``key -> [before, now]`` for the keys of ``config`` that differ from the run's config.yaml
    (the keys of one invocation, ``RUN_INVOCATION``, and keys the file does not have left out)."""
    before = RunReader(run_dir).config()
    return {k: [before[k], v] for k, v in config.items()
            if k in before and k not in RUN_INVOCATION and not _same(before[k], v)}


def check_config(run_dir: Path, config: dict[str, Any], override: str, command: str,
                 fixed: dict[str, str] | None = None, checkpoint: Path | None = None) -> dict[str, list]:
    """The changes of a resumed run's config (recorded by :meth:`RunSession.begin`); a clear error for
    a ``fixed`` key (``key -> why``) that changed, which nothing allows, and for a change of a key
    neither ``VOLATILE`` nor allowed by ``override``."""
    changes = config_changes(run_dir, config)
    allowed = {k.strip() for k in (override or "").split(",") if k.strip()}
    unknown = sorted(allowed - set(config))
    if unknown:
        raise ValueError(f"--override names unknown config key(s) {unknown}; known keys: {sorted(config)}")
    frozen = {k: v for k, v in changes.items() if k in (fixed or {})}
    if frozen:
        lines = "; ".join(f"{k}: {a!r} -> {b!r} ({fixed[k]})" for k, (a, b) in frozen.items())
        raise ValueError(f"{', '.join(frozen)} cannot change when {run_dir} resumes ({lines}); --override cannot allow "
                         f"it. To continue the run as it was, drop {', '.join('--' + k for k in frozen)} from the "
                         f"command and the --config file (the run's config.yaml supplies it): "
                         f"{resume_command(command, run_dir)}. To train with the new value, start a new run from "
                         f"its weights: --model {shlex.quote(str(checkpoint or run_dir))} and another --out")
    refused = {k: v for k, v in changes.items() if k not in allowed and k not in VOLATILE}
    if refused:
        lines = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        raise ValueError(f"{run_dir} was trained with another config ({lines}). Resume with the run's settings "
                         f"(drop {', '.join('--' + k for k in refused)}: {resume_command(command, run_dir)}), or pass "
                         f"--override {','.join(refused)} to change them from here on ({command} records it)")
    return changes


class RunSession:
    """A run folder in use by this process: see the module docstring.

    Args:
        run_dir: the run folder.
        config: the resolved config as a dict (written to config.yaml).
        resume: continue from the latest checkpoint (``--resume``).
        override: comma-separated config keys allowed to differ from the resumed run's.
        command: how the user restarts it (``grpokit train`` / ``grpokit sft``), for messages.
        fixed: config keys a resumed run cannot change, even with ``override`` -> why (the config
            class's ``FIXED_ON_RESUME``).
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], *, resume: bool, override: str = "",
                 command: str = "grpokit train", fixed: dict[str, str] | None = None):
        self.dir, self.config, self.command = Path(run_dir), dict(config), command
        self._created = not self.dir.exists()
        self._lock = acquire_lock(self.dir)
        try:
            self.resume_from = ckpt.resume_point(self.dir, resume)
            self.changes = (check_config(self.dir, self.config, override, command, fixed, self.resume_from)
                            if self.resume_from else {})
        except BaseException:
            self.close()
            raise
        self.writer: RunWriter | None = None
        self.step = self.saved = self.total = 0  # last completed step, last checkpointed step
        self._save: Callable[[int, Any], Path] | None = None
        self._position: Callable[[], Any] = lambda: None
        self._at: Any = None  # the resumable position (data order, sampler) after ``self.step``
        self._pending: dict | None = None  # metrics of a completed step not yet logged
        self._dirty = False  # inside the weight update: the state matches no step
        self._saving = False  # inside a checkpoint save
        self._interrupt = GracefulInterrupt()
        self._collective = False  # saving needs every rank (see begin)

    # --- start ---
    def begin(self, step: int, total: int, save: Callable[[int, Any], Path], position: Callable[[], Any] = lambda: None,
              extra_config: dict[str, Any] | None = None, trackers: list | None = None,
              save_is_collective: bool = False) -> None:
        """Start (or continue at ``step``) a run of ``total`` steps. ``save(step, position)`` writes a
        checkpoint; ``position()`` returns what it needs besides weights and optimizer (data order,
        sampler state), read when a step completes so a later stop saves that step's own state.
        ``trackers`` (:func:`grpokit.run_folder.trackers.open_trackers`) get copies of the metrics.
        ``save_is_collective``: every rank must join ``save`` (FSDP gathers the sharded weights), so
        after an error or a second Ctrl-C, when the other ranks may not, nothing is saved: the last
        checkpoint stays."""
        self.writer = RunWriter(self.dir, trackers)
        self.step = self.saved = step
        self.total, self._save, self._position = total, save, position
        self._collective = save_is_collective
        self._at = position()
        if self.resume_from is not None:
            self.writer.truncate_after(step)
            print(f"Resuming {self.dir} from step {step}")
        if self.changes:
            rec = {"time": time.time(), "step": step, "changed": self.changes}
            with open(self.dir / CONFIG_HISTORY, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, default=str) + "\n")
            self.writer.log_event("config_changed", step=step, changed=self.changes)
            print(f"Config changed on resume at step {step}: "
                  + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in self.changes.items()))
        self.writer.write_config({**self.config, **(extra_config or {})})
        self.writer.set_status("running", step=step, total_steps=total)
        if self.resume_from is None:
            self._save_now(step)  # step 0: resumable before the first step ends

    # --- each step ---
    @contextmanager
    def critical(self):
        """The weight update: a second Ctrl-C waits for it to end; an error inside leaves the weights
        matching no step, so nothing is saved from them."""
        self._dirty = True
        with self._interrupt.deferred():
            yield
        self._dirty = False

    def completed(self, step: int, metrics: dict | None = None) -> None:
        """Step ``step`` changed the weights for good; its metrics are logged by :meth:`log` (or at a stop)."""
        self.step, self._pending, self._at = step, metrics, self._position()
        self._dirty = False  # the state is this step's (a Ctrl-C deferred to the end of the block saves it)

    def log(self, step: int, metrics: dict) -> None:
        self.writer.log_metrics(step, metrics)
        self._pending = None
        self.writer.set_status("running", step=step, total_steps=self.total)

    def save(self, step: int) -> Path:
        assert step == self.step, (step, self.step)
        return self._save_now(step)

    def should_stop(self, stop_after: int = 0) -> bool:
        """Ctrl-C was pressed, or ``stop_after`` is reached."""
        return self._interrupt.requested or bool(stop_after and self.step >= stop_after)

    def end(self) -> bool:
        """After the loop: save the last step; True when the run reached its total (then the caller
        evaluates and calls :meth:`finished`), else status interrupted and how to continue."""
        if self.step != self.saved:
            print(f"Saved checkpoint {self._save_now(self.step)}")
        if self.step >= self.total:
            return True
        self.writer.set_status("interrupted", step=self.step, total_steps=self.total)
        print(f"Stopped after step {self.step}; continue with: {self.resume_command}")
        return False

    @property
    def resume_command(self) -> str:
        return resume_command(self.command, self.dir)

    def finished(self) -> None:
        self.writer.set_status("finished", step=self.step, total_steps=self.total)

    # --- the frame ---
    def __enter__(self) -> "RunSession":
        self._interrupt.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._interrupt.__exit__(exc_type, exc, tb)
            if exc_type is not None and self.writer is not None:
                self._stop(exc_type, exc)
        finally:
            self.close()
        return False

    def close(self) -> None:
        release_lock(self._lock)
        if self._created:  # a run that failed before writing anything leaves no empty folder behind
            try:
                self.dir.rmdir()
            except OSError:
                pass

    def _save_now(self, step: int) -> Path:
        self._saving = True
        path = self._save(step, self._at)
        self._saving = False
        self.saved = step
        if step > 0:  # the step-0 checkpoint only served to make the start resumable
            ckpt.remove(self.dir, 0)
        return path

    def _stop(self, exc_type, exc) -> None:
        """Save the last completed step if the weights are that step's, then a true status."""
        interrupted = issubclass(exc_type, KeyboardInterrupt)
        error = None if interrupted else f"{exc_type.__name__}: {exc}"
        try:
            if self._pending is not None:  # stopped between the update and its log line (e.g. in evaluation)
                self.writer.log_metrics(self.step, self._pending)
                self._pending = None
            if not self._dirty and not self._saving and not self._collective and self.step != self.saved:
                # (a failed save is not retried; a collective one cannot count on the other ranks here)
                print(f"Saved checkpoint {self._save_now(self.step)}", flush=True)
        except BaseException as e:  # a full disk at this save: the last checkpoint stays, the status says why
            error = (error + "; then " if error else "") + f"saving step {self.step} failed: {type(e).__name__}: {e}"
        state = "interrupted" if interrupted and error is None else "failed"
        try:
            extra = {"error": error} if error else {}
            self.writer.set_status(state, step=self.saved, total_steps=self.total, **extra)
        except OSError as e:
            print(f"{self.command}: could not write {self.dir / 'status.json'}: {e}", file=sys.stderr)
        if state == "failed":
            print(f"{self.command}: stopped: {error}. The last checkpoint is step {self.saved}; fix the cause and "
                  f"continue with: {self.resume_command}", file=sys.stderr)
        else:  # a second Ctrl-C: the first one's way out (session.end) is not reached
            print(f"Stopped; the last checkpoint is step {self.saved}; continue with: {self.resume_command}",
                  file=sys.stderr)
