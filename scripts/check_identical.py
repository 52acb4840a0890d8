"""Is a refactor behaviour-preserving? Run the same short trainings at two git revisions and compare.

    python scripts/check_identical.py REV_A [REV_B] [--run "ARGS" ...] [--quickstart] [--keep DIR]

REV_B defaults to the working tree as it is.

Each revision is checked out into a temporary worktree; every run config trains there with
``PYTHONPATH=<worktree>/src``, single-threaded (``--threads 1``: multi-threaded CPU matmuls are not
bit-reproducible from run to run, see docs/reproducibility.md). Compared per run: every
``metrics.jsonl`` value except timings, throughput and memory (``time/``, ``throughput/``,
``memory/`` keys), and the sha256 of the final checkpoint's ``model.safetensors``. Keys present at
only one revision are listed (a new metric is not a difference in behaviour); ``--strict-keys``
makes them fail too. Exit 0 when everything is identical, 1 otherwise.

Default runs (the tiny test model, toy digit task, a reward that varies within groups, 3 steps): the default algorithm, ``--algo ppo``
and ``--algo dapo``. ``--quickstart`` adds ``configs/quickstart.yaml`` cut to 3 steps without evaluation (the embedded
SmolLM2-135M; minutes on a CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOLATILE_PREFIXES = ("time/", "throughput/", "memory/")
TINY = ("--steps 3 --prompts_per_step 2 --group_size 4 --max_new_tokens 6 --eval_size 0 --lr 1e-2 --template plain "
        "--task_options '{heldout_size: 4}' --rewards '{\"check_rewards:digit_share\": 1.0}'")
REWARDS = '''def digit_share(prompts, completions, **_):
    """Share of digits: varies within a group from the first step, so every run changes its weights."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]
'''
QUICKSTART = "--config configs/quickstart.yaml --steps 3 --eval_size 0"
DEFAULT_RUNS = {"default": TINY, "ppo": TINY + " --algo ppo", "dapo": TINY + " --algo dapo"}


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def _toy_task(path: Path) -> Path:
    rows = [{"question": f"say {d}", "answer": str(d)} for d in range(10) for _ in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _tiny_model(path: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import build_tiny_model

    return build_tiny_model(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(tree: Path, args: str, out: Path) -> tuple[list[dict], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(out.parent)]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "grpokit", "train", *shlex.split(args), "--out", str(out), "--threads", "1",
           "--progress", "false"]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed in {tree}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    if not (out / "metrics.jsonl").exists():
        raise RuntimeError(f"{out} has no metrics.jsonl:\n{proc.stdout[-2000:]}")
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    final = sorted((out / "checkpoints").glob("step_*"))[-1]
    return metrics, _sha256(final / "model.safetensors")


def compare(a: tuple[list[dict], str], b: tuple[list[dict], str], strict_keys: bool) -> list[str]:
    problems = []
    (ma, sa), (mb, sb) = a, b
    if sa != sb:
        problems.append(f"final model.safetensors sha256 differs: {sa[:16]} vs {sb[:16]}")
    if len(ma) != len(mb):
        problems.append(f"{len(ma)} vs {len(mb)} metrics lines")
    for ra, rb in zip(ma, mb):
        keep = lambda r: {k: v for k, v in r.items() if not k.startswith(VOLATILE_PREFIXES)}  # noqa: E731
        ka, kb = keep(ra), keep(rb)
        only = sorted(set(ka) ^ set(kb))
        if only:
            msg = f"step {ra.get('step')}: keys at one revision only: {only}"
            if strict_keys:
                problems.append(msg)
            else:
                print("  note:", msg)
        for k in sorted(set(ka) & set(kb)):
            if ka[k] != kb[k]:
                problems.append(f"step {ra.get('step')}: {k} = {ka[k]!r} vs {kb[k]!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev_a")
    ap.add_argument("rev_b", nargs="?", default="WORKTREE",
                    help="a revision, or WORKTREE (default) for the files as they are now")
    ap.add_argument("--run", action="append", metavar="ARGS",
                    help="`grpokit train` arguments of one run (repeatable; replaces the default runs; "
                         "{tiny_model} and {toy_task} stand for the tiny model and toy task it builds; write --run='--algo ppo ...')")
    ap.add_argument("--quickstart", action="store_true", help="also the quickstart config cut to 3 steps, without evaluation")
    ap.add_argument("--strict-keys", action="store_true", help="a metric present at one revision only is a failure")
    ap.add_argument("--keep", help="keep the run folders under this directory")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still remove the worktrees (the finally below)

    with tempfile.TemporaryDirectory(prefix="check_identical-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model, task = _tiny_model(work / "tiny"), _toy_task(work / "toy.jsonl")
        (work / "check_rewards.py").write_text(REWARDS)
        if args.run:  # as given; {tiny_model} and {toy_task} name the built ones
            runs = {f"run{i}": r.format(tiny_model=model, toy_task=task) for i, r in enumerate(args.run)}
        else:
            runs = {name: f"--model {model} --task {task} {r}" for name, r in DEFAULT_RUNS.items()}
        if args.quickstart:
            runs["quickstart"] = QUICKSTART
        trees = {}
        for label, rev in (("a", args.rev_a), ("b", args.rev_b)):
            if rev == "WORKTREE":
                trees[label] = ROOT
                continue
            tree = work / f"tree_{label}"
            _git("worktree", "add", "--detach", str(tree), rev)
            trees[label] = tree
        failed = False
        try:
            for name, r in runs.items():
                print(f"== {name}: {r}", flush=True)
                res = [run(trees[label], r, work / f"{name}_{label}") for label in ("a", "b")]
                problems = compare(*res, strict_keys=args.strict_keys)
                for p in problems[:20]:
                    print("  DIFF:", p)
                print(f"  {'DIFFERENT' if problems else 'identical'} ({len(res[0][0])} steps, sha {res[0][1][:16]})")
                failed |= bool(problems)
        finally:
            for label, tree in trees.items():
                if tree != ROOT:
                    _git("worktree", "remove", "--force", str(tree))
    print("all identical" if not failed else "DIFFERENCES FOUND")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
