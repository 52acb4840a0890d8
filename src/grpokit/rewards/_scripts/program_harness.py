"""Runs one model-written program inside the sandbox and reports raw results, never verdicts.

Prepended with ``codec.py`` and run as ``python -I -S -B -c``. Input (stdin, JSON):

- ``{"mode": "stdio", "source": str, "inputs": [str, ...], "case_timeout": s}``: the program runs
  once per input in a forked child with that input on its stdin; its stdout is reported.
- ``{"mode": "call", "source": str, "fn": name, "calls": [[args, kwargs], ...], "case_timeout": s}``:
  the program is executed once (``__name__`` is not ``"__main__"``), then ``fn`` is called on each
  tagged-JSON argument list; each return value is reported as tagged JSON. The first call that
  exceeds ``case_timeout`` or runs out of memory ends the run.

Output: one JSON line per case on a private copy of the original stdout, written as soon as the
case ends (a later hang or kill keeps the earlier results). The program shares this interpreter
and can forge these lines; that is harmless because the expected outputs never enter the sandbox:
the parent compares, so a forged line can only be right by solving the task.
"""

import json
import os
import select
import sys
import time


def _emit(fd, obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _run_stdio(job, code, out_fd):
    limit = 1 << 20
    for i, text in enumerate(job["inputs"]):
        path = "/tmp/.grpokit_in"
        with open(path, "w") as f:
            f.write(text)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the program
            try:
                os.close(r)
                os.close(out_fd)
                fd_in = os.open(path, os.O_RDONLY)
                os.dup2(fd_in, 0)
                os.dup2(w, 1)
                null = os.open("/dev/null", os.O_WRONLY)
                os.dup2(null, 2)
                sys.stdin = open(0, "r", closefd=False)
                sys.stdout = open(1, "w", closefd=False)
                sys.stderr = open(2, "w", closefd=False)
                status = 0
                try:
                    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
                except SystemExit as e:
                    status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except BaseException:
                    status = 1
                try:
                    sys.stdout.flush()
                except BaseException:
                    status = 1
                os._exit(status & 0xFF)
            finally:
                os._exit(1)
        os.close(w)
        buf, deadline, timed_out = bytearray(), time.monotonic() + job["case_timeout"], False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 1 << 16)
            if not chunk or len(buf) > limit:
                break
            buf.extend(chunk)
        os.close(r)
        if timed_out:
            os.kill(pid, 9)  # SIGKILL; `signal` is imported only in call mode (startup time)
        try:
            _, status = os.waitpid(pid, 0)
            code_ = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code_ = None
        _emit(out_fd, {"i": i, "stdout": buf.decode("utf-8", "replace"), "exit": code_, "timeout": timed_out})


class _CaseTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _CaseTimeout()


def _run_calls(job, code, out_fd):
    import signal

    ns = {"__name__": "__candidate__", "__builtins__": __builtins__}
    try:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, job["case_timeout"])
        exec(code, ns)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _emit(out_fd, {"load_error": type(e).__name__})
        return
    fn = ns.get(job["fn"])
    if not callable(fn):
        _emit(out_fd, {"load_error": "no function named " + job["fn"]})
        return
    for i, (args, kwargs) in enumerate(job["calls"]):
        try:
            a, k = decode(args), decode(kwargs)
            signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, job["case_timeout"])
            try:
                value = fn(*a, **k)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            _emit(out_fd, {"i": i, "value": encode(value)})
        except (_CaseTimeout, MemoryError) as e:
            # One timeout (or exhausted memory) ends the run: the remaining calls count as failed,
            # as in HumanEval's own harness (one time limit for the whole check), instead of
            # costing a timeout each.
            _emit(out_fd, {"i": i, "error": "timeout" if isinstance(e, _CaseTimeout) else "MemoryError"})
            return
        except BaseException as e:
            _emit(out_fd, {"i": i, "error": type(e).__name__})


def main():
    job = json.loads(sys.stdin.read())
    out_fd = os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # the program's own prints (call mode) are discarded: they are not results
    try:
        code = compile(job["source"], "<program>", "exec")
    except BaseException as e:
        _emit(out_fd, {"load_error": type(e).__name__})
        return
    if job["mode"] == "stdio":
        _run_stdio(job, code, out_fd)
    else:
        _run_calls(job, code, out_fd)


main()
