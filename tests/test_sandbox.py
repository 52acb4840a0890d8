"""The sandbox itself: limits in force, isolation, timeouts, clear errors."""

from __future__ import annotations

import os
import shutil

import pytest

import grpokit.envs.sandbox as sandbox_mod
from grpokit.envs.sandbox import Limits, Sandbox

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@needs_bwrap
def test_limits_are_in_force_inside():
    sb = Sandbox(limits=Limits(memory_mb=300, cpu_s=3, nproc=12, fsize_mb=2, nofile=40), slots=1)
    res = sb.run_python("print(open('/proc/self/limits').read())")
    assert res.returncode == 0, res.stderr
    limits = {line[:26].strip(): line[26:].split()[:2] for line in res.stdout.decode().splitlines()[1:] if line.strip()}
    assert limits["Max address space"] == [str(300 << 20)] * 2
    assert limits["Max cpu time"] == ["3", "3"]
    assert limits["Max processes"] == ["12", "12"]
    assert limits["Max file size"] == [str(2 << 20)] * 2
    assert limits["Max open files"] == ["40", "40"]


@needs_bwrap
def test_isolation_no_network_private_tmp_read_only_root_unprivileged():
    sb = Sandbox(slots=1)
    res = sb.run_python(
        "import os, socket\nprint(sorted(os.listdir('/tmp')))\nprint([n for _, n in socket.if_nameindex()])\n"
        "print(os.getuid())\nprint(os.path.exists('/work'), os.path.exists('/root'))\n"
        "try:\n    open('/x', 'w')\nexcept OSError as e:\n    print('ro', e.errno)\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    lines = res.stdout.decode().split("\n")
    assert res.returncode == 0, res.stderr
    assert lines[0] == "[]" and lines[1] == "['lo']"
    if os.geteuid() == 0:
        assert lines[2] == str(sb.uid_base)
    assert lines[3] == "False False"
    assert lines[4].startswith("ro")
    assert int(lines[5], 16) == 0  # no capabilities


@needs_bwrap
def test_tmpfs_is_size_capped():
    sb = Sandbox(limits=Limits(tmpfs_mb=4, fsize_mb=64), slots=1)
    res = sb.run_python("open('/tmp/big', 'wb').write(b'x' * (8 << 20))")
    assert res.returncode != 0 and b"No space left" in res.stderr


@needs_bwrap
def test_wall_clock_kills_the_whole_run():
    sb = Sandbox(limits=Limits(wall_s=1.0), slots=1)
    res = sb.run_python("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\ntime.sleep(60)")
    assert res.timed_out and res.returncode is None and res.seconds < 10
    if os.geteuid() == 0:
        assert sandbox_mod._uid_pids(sb.uid_base) == []


@needs_bwrap
def test_output_is_capped():
    sb = Sandbox(limits=Limits(output_bytes=1000), slots=1)
    res = sb.run_python("while True: print('x' * 100)")
    assert res.output_truncated and len(res.stdout) == 1000


@needs_bwrap
def test_stdin_larger_than_a_pipe_buffer_is_delivered():
    res = Sandbox(slots=1).run_python("import sys; print(len(sys.stdin.read()))", b"y" * 500_000)
    assert res.stdout.strip() == b"500000"


def test_missing_bubblewrap_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sandbox_mod.shutil, "which", lambda name: None if name == "bwrap" else "/usr/bin/" + name)
    with pytest.raises(sandbox_mod.SandboxUnavailable, match="apt-get install bubblewrap"):
        Sandbox()


def test_weaker_mode_only_by_its_name():
    with pytest.raises(ValueError, match="rlimits-only"):
        Sandbox(mode="rlimits")


@needs_bwrap
def test_a_sandbox_that_cannot_start_fails_at_creation(tmp_path):
    broken = tmp_path / "python3"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(sandbox_mod.SandboxUnavailable, match="cannot run"):
        Sandbox(python=str(broken), slots=1)
