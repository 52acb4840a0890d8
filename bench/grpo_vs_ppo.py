"""GRPO vs PPO: the same task, model, prompts, G and steps, with the critic off and on.

Each algorithm runs as its own ``grpokit train`` subprocess, one after the other, so each peak
memory is measured alone. Both runs get the same flags; only ``--algo`` differs. The script then
prints one table: trainable parameters, peak memory, seconds per step split by phase, and the
reward and held-out accuracy curves side by side, with GRPO / PPO ratios.

    PYTHONPATH=src python bench/grpo_vs_ppo.py --steps 4 --prompts-per-step 2 --group-size 4 \\
        --max-new-tokens 32 --eval-size 20

``--beta`` defaults to 0 for both (grpokit's default): then the critic is the only model one run
has and the other lacks. ``--beta 0.04`` gives both a frozen reference model (GRPO's KL in the loss,
PPO's in the reward, as their presets place it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ALGOS = ("grpo", "ppo")
# phase -> how to read it from one metrics row (seconds); "policy update" is what the others leave of time/update
PHASES = {
    "generate": lambda m: m["time/generate"],
    "reward": lambda m: m["time/reward"],
    "old/ref log-probs": lambda m: m.get("time/logprobs", 0.0),
    "critic (values, fwd/bwd, step)": lambda m: m.get("time/critic", 0.0),
    "policy update (fwd/bwd, step)": lambda m: m["time/update"] - m.get("time/logprobs", 0.0) - m.get("time/critic", 0.0),
    "total": lambda m: m["time/step"],
}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="model alias or folder (default: the embedded smollm2-135m)")
    p.add_argument("--task", default="add2", help="task name or .jsonl file (default: add2)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prompts-per-step", type=int, default=2, help="B")
    p.add_argument("--group-size", type=int, default=4, help="G")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--eval-size", type=int, default=20, help="held-out questions per evaluation (0 = none)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every K steps (0 = before and after only)")
    p.add_argument("--beta", type=float, default=0.0, help="KL coefficient for both runs (default 0: no reference model)")
    p.add_argument("--lr", type=float, default=None, help="policy learning rate for both (default: grpokit's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (0 = torch's default)")
    p.add_argument("--out", default="", help="folder for the two run folders (default runs/bench-grpo-vs-ppo-<time>)")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the runs' final checkpoints (default: delete)")
    p.add_argument("--markdown", default="", help="also write the table to this Markdown file")
    p.add_argument("--report", default="", help="only print the table of a finished bench folder (its bench.json)")
    return p.parse_args(argv)


def run_one(algo: str, args, out: Path) -> tuple[Path, float]:
    run_dir = out / algo
    cmd = [sys.executable, "-m", "grpokit", "train", "--algo", algo, "--model", args.model, "--task", args.task,
           "--steps", str(args.steps), "--prompts_per_step", str(args.prompts_per_step),
           "--group_size", str(args.group_size), "--max_new_tokens", str(args.max_new_tokens),
           "--eval_size", str(args.eval_size), "--eval_every", str(args.eval_every), "--beta", str(args.beta),
           "--seed", str(args.seed), "--threads", str(args.threads), "--out", str(run_dir), "--progress", "false"]
    if args.lr is not None:
        cmd += ["--lr", str(args.lr)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    wall = time.time() - t0
    if not args.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return run_dir, wall


def _ratio(a, b) -> str:
    # a ratio of two near-zero timings is noise: show it only when one side is substantial
    if a is None or b in (None, 0) or max(abs(a), abs(b)) < 0.05:
        return ""
    return f"{a / b:.2f}"


def _num(x, fmt) -> str:
    return "" if x is None else format(x, fmt)


def table(runs: dict, walls: dict, args) -> str:
    from grpokit.run_folder import RunReader

    metrics = {a: RunReader(runs[a]).metrics() for a in ALGOS}
    evals = {a: RunReader(runs[a]).evals() for a in ALGOS}
    g, p = metrics["grpo"], metrics["ppo"]
    rows = ["| | GRPO (critic off) | PPO (critic on) | GRPO / PPO |", "|---|---:|---:|---:|"]

    def row(name, a, b, fmt, ratio=True):
        rows.append(f"| {name} | {_num(a, fmt)} | {_num(b, fmt)} | {_ratio(a, b) if ratio else ''} |")

    def params(ms):
        return (ms[-1]["model/policy_params"] + ms[-1]["model/critic_params"]) / 1e6

    row("trainable parameters (M): policy + critic", params(g), params(p), ",.1f")
    row("peak memory (MB)", max(m["memory/peak_mb"] for m in g), max(m["memory/peak_mb"] for m in p), ",.0f")
    rows.append("| **seconds per step** (mean over steps 2.., step 1 warms up) | | | |")
    for name, read in PHASES.items():
        def mean(ms):
            tail = ms[1:] or ms
            return sum(read(m) for m in tail) / len(tail)
        row(f"&nbsp;&nbsp;{name}", mean(g), mean(p), ".2f")
    row("wall time of the whole run incl. loading and evals (s)", walls["grpo"], walls["ppo"], ".0f")
    row("sequences skipped (zero advantage: no forward/backward)", sum(m["groups/skipped_sequences"] for m in g),
        sum(m["groups/skipped_sequences"] for m in p), "d", ratio=False)
    rows.append("| **mean reward by step** | | | difference |")
    for mg, mp in zip(g, p):
        rows.append(f"| &nbsp;&nbsp;step {mg['step']} | {mg['reward/mean']:.3f} | {mp['reward/mean']:.3f} | "
                    f"{mg['reward/mean'] - mp['reward/mean']:+.3f} |")
    if evals["grpo"] and evals["ppo"]:
        rows.append("| **held-out greedy accuracy** | | | difference |")
        for eg, ep in zip(evals["grpo"], evals["ppo"]):
            rows.append(f"| &nbsp;&nbsp;step {eg['step']} (n={eg['n']}) | {eg['greedy_acc']:.1%} ± {eg['greedy_stderr']:.1%} | "
                        f"{ep['greedy_acc']:.1%} ± {ep['greedy_stderr']:.1%} | {eg['greedy_acc'] - ep['greedy_acc']:+.1%} |")
    if "critic/explained_var" in p[-1]:
        rows.append(f"| critic explained variance at the last step | | {_num(p[-1]['critic/explained_var'], '.2f')} | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        out = Path(args.report)
        saved = json.loads((out / "bench.json").read_text())
        args = argparse.Namespace(**{**vars(args), **saved["args"], "report": args.report, "markdown": args.markdown})
        walls = saved["walls"]
    else:
        from grpokit import models

        models.resolve(args.model)  # converts the embedded GGUF once, here, not inside a measured run
        out = Path(args.out or f"runs/bench-grpo-vs-ppo-{time.strftime('%Y%m%d-%H%M%S')}")
        walls = {}
        for algo in ALGOS:
            walls[algo] = run_one(algo, args, out)[1]
        (out / "bench.json").write_text(json.dumps({"args": vars(args), "walls": walls}, indent=1) + "\n")
    runs = {algo: out / algo for algo in ALGOS}
    md = table(runs, walls, args)
    setting = (f"model {args.model}, task {args.task}, {args.steps} steps, B={args.prompts_per_step}, "
               f"G={args.group_size}, max_new_tokens={args.max_new_tokens}, eval_size={args.eval_size}, "
               f"beta={args.beta}, seed={args.seed}")
    print(f"\n{setting}\n\n{md}\n\nRun folders: {out}/grpo, {out}/ppo")
    if args.markdown:
        Path(args.markdown).write_text(f"{setting}\n\n{md}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
