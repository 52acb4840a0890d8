"""bench/generate_ab.py: both sides run from their own source trees and report, on a tiny model."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


_needs_git = pytest.mark.skipif(not shutil.which("git") or _git("rev-parse", "HEAD").returncode != 0, reason="not a git checkout")


def _ab_against_head(tiny_model, *args) -> subprocess.CompletedProcess:
    """bench/generate_ab.py --base HEAD on the tiny model, 2 short rounds, one thread; checks it exited 0."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "generate_ab.py"), "--base", "HEAD", *args, "--model", tiny_model,
                          "--rounds", "2", "--max-new-tokens", "6", "--threads", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@_needs_git
def test_generate_ab_against_head(tiny_model):
    out = _ab_against_head(tiny_model)
    head = _git("rev-parse", "--short", "HEAD").stdout.strip()
    lines = out.stdout.splitlines()
    base = next(line for line in lines if line.strip().startswith("base "))
    assert head in base and "ms per token step" in base
    assert any(line.strip().startswith("working tree") and "ms per token step" in line for line in lines)
    # the script itself checks that each side imported grpokit from its own tree; with the sampler
    # unchanged since HEAD both sides draw the same tokens
    if _git("diff", "--quiet", "HEAD", "--", "src").returncode == 0:
        assert lines[-1].endswith("same tokens in every round: True"), out.stdout


@_needs_git
def test_update_ab_against_head(tiny_model):
    out = _ab_against_head(tiny_model, "--phase", "update")
    lines = out.stdout.splitlines()
    assert sum("s per update: median" in line for line in lines) == 2, out.stdout
    # both sides train on the one batch the base side sampled: with the learner unchanged since
    # HEAD they compute the same loss and gradient norm
    if _git("diff", "--quiet", "HEAD", "--", "src").returncode == 0:
        loss = lines[-1].split("loss ")[1].split(";")[0].split(", ")
        norm = lines[-1].split("gradient norm ")[1].split(" (")[0].split(", ")
        assert loss[0] == loss[1] and norm[0] == norm[1], lines[-1]
