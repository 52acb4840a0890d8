"""grpokit vs TRL's GRPOTrainer at equal settings: completions per second, peak memory, reward, MFU.

Both sides train the same model on prompts of the same task (rendered with the model's chat
template), with the same G, completion cap, beta, learning rate, loss aggregation, temperature,
compute dtype, number of steps and (with ``--lora-rank``) the same LoRA adapters, and the same reward
function (grpokit's ``final_number``, which already has TRL's signature). Each side runs in its own
subprocess of this script, one after the other, so peak memory (max RSS) is measured separately and
neither warms the other's caches.

Fairness choices, stated: TRL's gradient checkpointing (on by default) is turned off, since it
trades speed for memory and grpokit does not checkpoint; TRL's loss_type is set to "grpo"
(grpokit's seq-mean-token-mean); dropout is off on both; throughput counts steps 2..n (step 1
includes one-off warm-up on both sides). ``--dtype bf16`` is autocast over fp32 weights on both
sides (TRL: ``bf16=True``); the default fp32 computes in fp32 on both, whatever the CPU.

The task matters: at beta 0 grpokit skips groups whose rewards are all equal (their gradient is
exactly zero; TRL computes them), so a task the model rarely or always solves flatters grpokit.
``--task add1`` (one-digit sums, about half of which SmolLM2-135M answers right greedily) is the
dense case, where most groups train (12-33% of sequences skipped in our short runs); the table
shows the share of sequences each side skipped.

After the table, grpokit's phases are set against this machine's measured matmul peak
(``bench/mfu.py``: FLOPs from the model's shape, times from grpokit's ``time/*`` metrics).

``--pairs K`` runs both sides K times, alternating which goes first, and prints each pair's ratio:
this machine's speed drifts by 10-20% within minutes, so one pair's ratio carries that much noise.
The per-step detail and the MFU are the first pair's. Runs of one side sample the same tokens only
up to the kernels' summation order (multi-threaded MKL sums in an order that can change between
runs, docs/reproducibility.md), so a side's later steps may differ between its runs; the script
says so and prints each run's rewards.

Usage: python bench/vs_trl.py [--task add1] [--steps 5] [--prompts 2] [--G 8] [--max-new-tokens 64]
       [--dtype fp32|bf16] [--lora-rank 16] [--pairs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mfu  # noqa: E402  (bench/mfu.py, beside this file)


def _prompts(tok, task_name, n):
    from grpokit.rollout import render
    from grpokit.tasks import load_task

    task = load_task(task_name)
    exs = task.train[:n]
    return [render(tok, task.question_text(e)) for e in exs], [e.answer for e in exs]


def run_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpokit import models
    from grpokit.rewards.arith import final_number_reward

    path = models.resolve(a.model)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    prompts, answers = _prompts(tok, a.task, a.prompts * a.steps)
    ds = Dataset.from_dict({"prompt": prompts, "answer": answers})
    stamps, rewards, zero_std = [], [], []
    peft_config = None
    if a.lora_rank:
        from peft import LoraConfig

        peft_config = LoraConfig(r=a.lora_rank, lora_alpha=a.lora_alpha, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.time())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                rewards.append(logs["reward"])
                zero_std.append(logs.get("frac_reward_zero_std"))

    cfg = GRPOConfig(output_dir="/tmp/grpokit-bench-trl", per_device_train_batch_size=a.prompts * a.G,
                     num_generations=a.G, max_completion_length=a.max_new_tokens, beta=a.beta, learning_rate=a.lr,
                     max_steps=a.steps, logging_steps=1, use_cpu=True, bf16=a.dtype == "bf16", report_to=[],
                     gradient_checkpointing=False, loss_type="grpo", temperature=1.0, save_strategy="no",
                     disable_dropout=True, seed=0, shuffle_dataset=False, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=final_number_reward, args=cfg, train_dataset=ds,
                          processing_class=tok, callbacks=[Clock()], peft_config=peft_config)
    t0 = time.time()
    trainer.train()
    stamps.insert(0, t0)
    return {"step_times": [b - a_ for a_, b in zip(stamps, stamps[1:])], "rewards": rewards,
            "zero_std": zero_std, "skipped": [0] * len(rewards)}


def run_grpokit(a) -> dict:
    import tempfile

    from grpokit.config import make
    from grpokit.run_folder import RunReader
    from grpokit.train.loop import train

    import torch
    from transformers import AutoConfig, AutoTokenizer

    from grpokit import models

    out = tempfile.mkdtemp(prefix="grpokit-bench-")
    lora = dict(lora_rank=a.lora_rank, lora_alpha=a.lora_alpha, lora_target_modules="all-linear") if a.lora_rank else {}
    cfg = make(overrides=dict(model=a.model, task=a.task, steps=a.steps, prompts_per_step=a.prompts,
                              group_size=a.G, max_new_tokens=a.max_new_tokens, beta=a.beta, lr=a.lr, eval_size=0,
                              out=out + "/run", progress=False, micro_batch_size=a.prompts * a.G,
                              aggregation="seq-mean-token-mean", temperature=1.0, dtype=a.dtype, **lora))
    train(cfg)
    m = RunReader(out + "/run").metrics()
    res = {"step_times": [x["time/step"] for x in m], "rewards": [x["reward/mean"] for x in m],
           "generate": [x["time/generate"] for x in m], "update": [x["time/update"] for x in m],
           "zero_std": [x["groups/zero_std_frac"] for x in m], "skipped": [x["groups/skipped_sequences"] for x in m]}
    path = models.resolve(a.model)
    peaks = mfu.peaks()  # same process, same threads as the run
    res["peaks"] = peaks
    res["mfu"] = mfu.run_mfu(out + "/run", mfu.Shape.of(AutoConfig.from_pretrained(path)),
                             AutoTokenizer.from_pretrained(path), mfu.peak_for(peaks, a.dtype)[1], lora=bool(a.lora_rank))
    res["threads"] = torch.get_num_threads()
    return res


def child(side: str, a) -> None:
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    res = (run_trl if side == "trl" else run_grpokit)(a)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="model alias or folder (default: the embedded SmolLM2)")
    p.add_argument("--task", default="add2", help="grpokit task name; add1 is the dense case (most groups "
                                                  "have reward variance), add2 the sparse one")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=2, help="prompts per step (B)")
    p.add_argument("--G", type=int, default=8, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=0, help="torch threads on both sides (default: torch's choice)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                   help="compute dtype on both sides (bf16: autocast over fp32 weights; only sensible on a CPU "
                        "with native bf16, see bench/mfu.py)")
    p.add_argument("--lora-rank", type=int, default=0, help="LoRA adapters of this rank on every linear layer "
                                                            "but the head, on both sides (0: full fine-tuning)")
    p.add_argument("--lora-alpha", type=float, default=32.0)
    p.add_argument("--pairs", type=int, default=1,
                   help="run both sides this many times, alternating which goes first, and report each pair's "
                        "ratio: the machine's speed drifts between runs (default 1)")
    p.add_argument("--side", choices=["trl", "grpokit"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.side:
        child(a.side, a)
        return 0
    if a.pairs < 1:
        raise SystemExit(f"--pairs must be >= 1, got {a.pairs}")
    runs: dict[str, list] = {"grpokit": [], "trl": []}
    for k in range(a.pairs):
        for side in (("grpokit", "trl") if k % 2 == 0 else ("trl", "grpokit")):
            print(f"running {side} ..." + (f" (pair {k + 1} of {a.pairs})" if a.pairs > 1 else ""), flush=True)
            proc = subprocess.run([sys.executable, __file__, "--side", side] + sys.argv[1:], capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{side} failed (exit {proc.returncode})")
            runs[side].append(json.loads(line[0][7:]))
    results = {side: rs[0] for side, rs in runs.items()}  # per-step detail and MFU: the first pair
    N = a.prompts * a.G
    timed_steps = lambda r: r["step_times"][1:] or r["step_times"]  # noqa: E731
    rows = {}
    for side, rs in runs.items():
        times = [x for r in rs for x in timed_steps(r)]
        timed = [x for r in rs for x in (r["skipped"][1:] or r["skipped"])]
        rows[side] = {"s_per_step": statistics.mean(times), "cps": N / statistics.mean(times),
                      "peak_mb": max(r["peak_rss_mb"] for r in rs), "rewards": results[side]["rewards"],
                      "skipped": sum(timed) / (N * len(timed))}
    g, t = rows["grpokit"], rows["trl"]
    pair_ratios = [statistics.mean(timed_steps(rt)) / statistics.mean(timed_steps(rg))
                   for rg, rt in zip(runs["grpokit"], runs["trl"])]
    mode = f"LoRA r={a.lora_rank} alpha={a.lora_alpha:g}" if a.lora_rank else "full fine-tuning"
    print(f"\n{a.model}, {a.task}, B={a.prompts} G={a.G} (N={N}), max_new_tokens={a.max_new_tokens}, {a.dtype}, "
          f"{mode}, beta={a.beta}, lr={a.lr}, {a.steps} steps (throughput over steps 2..{a.steps})")
    print(f"{'':12}{'s/step':>10}{'compl/s':>10}{'peak MB':>10}{'skipped':>9}  reward per step")
    for side in ("grpokit", "trl"):
        r = rows[side]
        print(f"{side:12}{r['s_per_step']:10.1f}{r['cps']:10.2f}{r['peak_mb']:10.0f}{r['skipped']:9.0%}  "
              + " ".join(f"{x:.2f}" for x in r["rewards"]))
    print(f"{'ratio':12}{'':10}{g['cps'] / t['cps']:9.2f}x{g['peak_mb'] / t['peak_mb']:9.2f}x  (grpokit / TRL)")
    if a.pairs > 1:
        print(f"(s/step and skipped: over the {a.pairs} runs of each side; completions/s ratio of each pair: "
              + ", ".join(f"{x:.2f}x" for x in pair_ratios) + f"; median {statistics.median(pair_ratios):.2f}x)")
        for side, rs in runs.items():
            if any(r["rewards"] != rs[0]["rewards"] for r in rs):
                print(f"({side}'s runs did not sample the same tokens: multi-threaded CPU kernels sum in an order "
                      f"that can change from run to run; its rewards per step in each run:\n"
                      + "\n".join("   " + " ".join(f"{x:.2f}" for x in r["rewards"]) for r in rs) + ")")
    print("(skipped: share of the timed steps' sequences given no forward/backward; grpokit skips groups with "
          "zero reward variance at beta 0, their gradient being exactly zero; TRL computes every group)")
    r = results["grpokit"]
    print("\nper step: grpokit generate / update seconds, zero-variance groups of grpokit / of TRL:")
    tz = results["trl"]["zero_std"]
    for i, (gen, upd, z) in enumerate(zip(r["generate"], r["update"], r["zero_std"]), 1):
        other = tz[i - 1] if i <= len(tz) and tz[i - 1] is not None else float("nan")
        print(f"  step {i}: {gen:6.1f} / {upd:6.1f} s, {z:4.0%} / {other:4.0%}")
    print(f"\ngrpokit's phases over steps 2..{a.steps} ({r['threads']} threads):")
    mfu.print_peaks(r["peaks"])
    mfu.print_mfu(r["mfu"], mfu.peak_for(r["peaks"], a.dtype)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
