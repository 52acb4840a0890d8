"""Run untrusted programs: bubblewrap namespaces, an unprivileged uid, rlimits and a wall clock.

One ``Sandbox.run`` starts::

    prlimit --as --cpu --nproc --fsize --nofile --core=0 --      # resource limits, inherited
      setpriv --reuid U --regid U --clear-groups --no-new-privs   # an unprivileged uid (when root)
        bwrap --unshare-all --unshare-user --disable-userns       # no network, own pid/ipc/uts ns
              --ro-bind /usr ... --tmpfs /tmp (size-capped) --remount-ro /
              --die-with-parent --new-session --clearenv ...
          python3 -I -S -B -c HARNESS

Each concurrent slot has its own uid ``uid_base + slot``, so ``RLIMIT_NPROC`` (counted per uid)
bounds one program, not the sum of all, and programs cannot see or signal each other. When the
program's main process exits, bwrap's pid-1 exits and the kernel kills everything left in the pid
namespace: nothing outlives a run. On the wall-clock limit the whole process group is killed.

``mode="rlimits-only"`` (asked for by name only) skips the namespaces when bubblewrap is not
available: programs then see the host's files and network. Never use it for untrusted code.
"""

from __future__ import annotations

import os
import queue
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field, replace

MODES = ("bwrap", "rlimits-only")


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or a tool the sandbox needs) is missing or does not work on this machine."""


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory and CPU are per process (``RLIMIT_AS``, ``RLIMIT_CPU``); ``nproc``
    counts processes and threads of the run's uid; ``output_bytes`` caps what is read back."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    nproc: int = 32
    fsize_mb: int = 16
    nofile: int = 64
    tmpfs_mb: int = 64
    output_bytes: int = 1 << 20


@dataclass
class RunResult:
    """What came back from one run. ``returncode`` is None when the run was killed."""

    stdout: bytes
    stderr: bytes
    returncode: int | None
    timed_out: bool = False
    output_truncated: bool = False
    seconds: float = 0.0


@dataclass
class Sandbox:
    """Runs programs with ``python`` under ``limits``; at most ``slots`` at the same time.

    Args:
        mode: ``bwrap`` (default) or ``rlimits-only`` (no isolation; only by explicit request).
        python: the interpreter inside the sandbox. The default is the system's ``/usr/bin/python3``
            because only ``/usr`` is visible there (a virtualenv would expose installed data such as
            HumanEval's tests).
        uid_base: first uid of the per-slot unprivileged uids (used when running as root).
        slots: concurrent runs allowed (the bounded pool size).
    """

    mode: str = "bwrap"
    limits: Limits = field(default_factory=Limits)
    python: str = "/usr/bin/python3"
    uid_base: int = 231_000
    slots: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown sandbox mode {self.mode!r}: use 'bwrap' or, knowingly, 'rlimits-only'")
        self._root = os.geteuid() == 0
        need = ["prlimit"] + (["setpriv"] if self._root else [])
        if self.mode == "bwrap":
            if shutil.which("bwrap") is None:
                raise SandboxUnavailable(
                    "bubblewrap (bwrap) is not installed, so model-written code cannot be sandboxed. Install it "
                    "(`apt-get install bubblewrap`, see scripts/setup_test_extras.sh), or, only if you accept "
                    "running untrusted code without isolation, create Sandbox(mode='rlimits-only').")
            need.append("bwrap")
        missing = [t for t in need if shutil.which(t) is None]
        if missing:
            raise SandboxUnavailable(f"the sandbox needs {missing} (util-linux / bubblewrap); install them")
        if not os.path.exists(self.python):
            raise SandboxUnavailable(f"sandbox interpreter {self.python} does not exist; pass python=...")
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(self.slots):
            self._free.put(slot)
        self._self_test()

    def _self_test(self) -> None:
        """Start one trivial run, so a sandbox that cannot work here fails now, loudly, instead of
        scoring every program 0 (e.g. unprivileged user namespaces disabled by the kernel)."""
        res = self.run_python("print('ok')", limits=replace(self.limits, wall_s=max(10.0, self.limits.wall_s)))
        if res.returncode != 0 or res.stdout != b"ok\n":
            raise SandboxUnavailable(
                f"the {self.mode} sandbox cannot run {self.python} on this machine (exit {res.returncode}, "
                f"timed out: {res.timed_out}): {res.stderr.decode(errors='replace').strip()[-400:]}. "
                "bubblewrap needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) "
                "or root.")

    # --- command line --------------------------------------------------------------------

    def _bwrap_args(self, limits: Limits) -> list[str]:
        args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                "--new-session", "--as-pid-1", "--cap-drop", "ALL", "--hostname", "sandbox",
                "--ro-bind", "/usr", "/usr"]
        for d in ("bin", "lib", "lib32", "lib64", "sbin"):
            p = f"/{d}"
            if os.path.islink(p):
                args += ["--symlink", os.readlink(p), p]
            elif os.path.isdir(p):
                args += ["--ro-bind", p, p]
        args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
                 "--proc", "/proc", "--dev", "/dev",
                 "--size", str(1 << 20), "--tmpfs", "/dev/shm",
                 "--size", str(limits.tmpfs_mb << 20), "--tmpfs", "/tmp",
                 "--remount-ro", "/dev", "--remount-ro", "/",
                 "--chdir", "/tmp", "--clearenv",
                 "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
                 "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0", "--"]
        return args

    def command(self, argv: list[str], slot: int, limits: Limits | None = None) -> list[str]:
        """The full command line that runs ``argv`` in slot ``slot``."""
        lim = limits or self.limits
        cmd = ["prlimit", f"--as={lim.memory_mb << 20}", f"--cpu={lim.cpu_s}", f"--nproc={lim.nproc}",
               f"--fsize={lim.fsize_mb << 20}", f"--nofile={lim.nofile}", "--core=0", "--"]
        if self._root:
            uid = str(self.uid_base + slot)
            cmd += ["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all", "--no-new-privs", "--"]
        if self.mode == "bwrap":
            cmd += self._bwrap_args(lim)
        return cmd + argv

    def uid(self, slot: int) -> int | None:
        return self.uid_base + slot if self._root else None

    # --- running ---------------------------------------------------------------------------

    def run_python(self, source: str, stdin: bytes = b"", limits: Limits | None = None) -> RunResult:
        """Run Python ``source`` (isolated mode, no site, no .pyc) with ``stdin``."""
        return self.run([self.python, "-I", "-S", "-B", "-c", source], stdin, limits)

    def run(self, argv: list[str], stdin: bytes = b"", limits: Limits | None = None) -> RunResult:
        """Run ``argv`` in a free slot (blocks while all ``slots`` are busy)."""
        lim = limits or self.limits
        slot = self._free.get()
        try:
            return self._run(self.command(argv, slot, lim), stdin, lim)
        finally:
            if self._root:
                _reap_uid(self.uid_base + slot)
            self._free.put(slot)

    def _run(self, cmd: list[str], stdin: bytes, lim: Limits) -> RunResult:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, cwd="/", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        out, err = bytearray(), bytearray()
        timed_out = truncated = False
        sel = selectors.DefaultSelector()
        os.set_blocking(proc.stdin.fileno(), False)
        pending = memoryview(stdin)
        if pending:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        deadline = t0 + lim.wall_s
        try:
            while len(sel.get_map()) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(timeout=left):
                    if key.fileobj is proc.stdin:
                        try:
                            n = os.write(proc.stdin.fileno(), pending[:1 << 16])
                            pending = pending[n:]
                        except (BrokenPipeError, BlockingIOError) as e:
                            if isinstance(e, BlockingIOError):
                                continue
                            pending = pending[:0]
                        if not pending:
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                    if len(out) + len(err) > lim.output_bytes:
                        truncated = True
                        raise _Stop
        except _Stop:
            pass
        finally:
            sel.close()
            if timed_out or truncated:
                _kill_group(proc)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        try:
            rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            rc = proc.wait()
        killed = timed_out or truncated
        return RunResult(bytes(out[: lim.output_bytes]), bytes(err[: lim.output_bytes]), None if killed else rc,
                         timed_out, truncated, time.monotonic() - t0)

    def with_limits(self, **changes) -> Limits:
        return replace(self.limits, **changes)


class _Stop(Exception):
    pass


def _uid_pids(uid: int) -> list[int]:
    pids = []
    with os.scandir("/proc") as it:
        for d in it:
            if d.name.isdigit():
                try:
                    if d.stat().st_uid == uid:
                        pids.append(int(d.name))
                except OSError:
                    pass
    return pids


def _reap_uid(uid: int, timeout: float = 10.0) -> None:
    """Wait until no process of a slot's dedicated uid is left before the slot is reused.

    The kernel tears a pid namespace down asynchronously; a fork bomb's children still exiting
    would otherwise count against the next program's ``RLIMIT_NPROC``. The uid belongs to the
    sandbox alone, so whatever still runs under it is a leftover of our own run.
    """
    deadline = time.monotonic() + timeout
    while (pids := _uid_pids(uid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group; bwrap's pid-1 dying takes the whole pid namespace with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
