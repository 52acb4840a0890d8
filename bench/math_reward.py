"""Math reward cost per training step: 64 completions, plain numbers vs LaTeX answers.

Usage: python bench/math_reward.py [--steps 5] [--n 64]

Each step grades ``n`` fresh completions (the verdict cache is cleared between steps, so nothing
is reused). ``plain``: ``\\boxed{71}`` against ``71`` (in-process fast path, no worker);
``latex``: fractions, roots, sets and intervals (math-verify in the worker pool); ``mixed``:
half and half. The first row also pays the worker start (importing sympy once per worker).
"""

from __future__ import annotations

import argparse
import random
import time

import grpokit.rewards.math as m


def completions(kind: str, n: int, rng: random.Random) -> tuple[list[str], list[str]]:
    golds, comps = [], []
    for i in range(n):
        k = kind if kind != "mixed" else ("plain" if i % 2 else "latex")
        a, b = rng.randint(1, 999), rng.randint(2, 99)
        if k == "plain":
            golds.append(str(a))
            comps.append(f"<think>...</think> \\boxed{{{a if rng.random() < 0.5 else a + 1}}}")
        else:
            gold, pred = rng.choice([
                (f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{2 * a}}}{{{2 * b}}}"), (f"{b}\\sqrt{{2}}", f"\\sqrt{{{2 * b * b}}}"),
                (f"\\{{{a},{b}\\}}", f"\\{{{b},{a}\\}}"), (f"[{a},{a + b})", f"[{a},{a + b}]"), (f"x={a}", f"{a}")])
            golds.append(gold)
            comps.append(f"<think>...</think> \\boxed{{{pred}}}")
    return golds, comps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    rng = random.Random(0)
    print(f"{'answers':<8}{'step':>6}{'ms/step':>10}{'ms/completion':>15}")
    for kind in ("plain", "latex", "mixed"):
        for step in range(args.steps):
            golds, comps = completions(kind, args.n, rng)
            m._CACHE.clear()
            t0 = time.perf_counter()
            m.math([""] * args.n, comps, answer=golds)
            dt = (time.perf_counter() - t0) * 1000
            if step in (0, args.steps - 1):
                print(f"{kind:<8}{step:>6}{dt:>10.1f}{dt / args.n:>15.2f}")
    print(f"workers: {len(m.verify_pool().pids())}, hard timeouts: {m.verify_pool().timeouts}")


if __name__ == "__main__":
    main()
