"""Peak memory per process of one training step: full fine-tuning, LoRA, 2 data-parallel ranks,
2 FSDP2 ranks, gradient checkpointing, side by side, with what the 16-bytes-per-parameter rule predicts.

    python bench/memory.py                       # SmolLM2-135M (embedded) and a random-init SmolLM2-360M
    python bench/memory.py --models 135m --seq 256 --batch 8

Each cell is a fresh process (or two, for the ranks) that loads the model, builds AdamW over the
trainable parameters, and runs forward + backward + optimizer step on a fixed random batch of
``batch x seq`` tokens; it reports its peak resident set size (CPU) or peak CUDA allocation. The
360M model is built from its config written out below (no download) with random weights: memory
does not depend on the values. "Predicted" is weights + gradients + two AdamW moments (4 + 4 + 8
bytes per trainable parameter, 4 per frozen one), before activations and the process's baseline
(Python, torch, the tokenizer), which the measured column includes. Data parallelism replicates
the model: each rank needs what one process needs. FSDP2 (``--sharding fsdp``) divides the states
by the number of ranks (the predicted column); each rank still loads the whole fp32 model before
sharding it (4 bytes per parameter, briefly), which on a CPU sets a floor under the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SMOLLM2_360M = dict(vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                    num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192, rope_theta=100000.0,
                    tie_word_embeddings=True, rms_norm_eps=1e-5, hidden_act="silu")
"""SmolLM2-360M's shape (its config.json on the hub), for a random-init model of the real size."""

CELLS = ("full", "lora", "full, 2 ranks", "full, FSDP2 x 2", "full + checkpointing", "lora + checkpointing")


def _model(spec: str, tmp: Path) -> str:
    if spec == "135m":
        return "smollm2-135m"
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp / "smollm2-360m-random"
    if not (out / "config.json").exists():
        import torch

        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(**SMOLLM2_360M)).save_pretrained(out)
        from grpokit import models

        tok_from = Path(models.resolve("smollm2-135m"))
        for f in tok_from.glob("*"):
            if f.name.startswith(("tokenizer", "special_tokens")):
                (out / f.name).write_bytes(f.read_bytes())
    return str(out)


def one_step(model_spec: str, lora: bool, checkpointing: bool, batch: int, seq: int, fsdp: bool = False) -> dict:
    """Load, one forward/backward/AdamW step; the peak memory of this process and the parameter counts."""
    import resource

    import torch

    from grpokit import models
    from grpokit.train import dist, policy, sharding
    from grpokit.train.critic import count_params
    from grpokit.train.optim import adamw

    d = dist.setup("auto")
    model, _ = models.load(model_spec, device=d.device("auto"), dtype="fp32", train=True)
    total = sum(p.numel() for p in model.parameters())
    if lora:
        model = policy.add_adapters(model, rank=16, alpha=32.0, dropout=0.0, targets="all-linear")
    if checkpointing:
        policy.enable_checkpointing(model)
    if fsdp:
        model = sharding.shard(model, models.compute_dtype(model))
    model.train()
    params = policy.trainable(model)
    opt = adamw(params, lr=1e-5, betas=(0.9, 0.99), weight_decay=0.0)
    dev = next(model.parameters()).device
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(d.rank)).to(dev)
    loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
    loss.backward()
    if not fsdp:  # (FSDP reduce-scattered them in backward)
        d.sum_grads(params)
    opt.step()
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trainable = count_params(model)
    dist.teardown(d)
    return {"rank": d.rank, "peak_mb": peak, "params": total, "trainable": trainable}


def _run(args, model_path: str, cell: str) -> list[dict]:
    lora, ckpt, fsdp = "lora" in cell, "checkpointing" in cell, "FSDP2" in cell
    ranks = 2 if ("2 ranks" in cell or fsdp) else 1
    inner = [__file__, "--worker", model_path, "--batch", str(args.batch), "--seq", str(args.seq)]
    inner += ["--lora"] if lora else []
    inner += ["--checkpointing"] if ckpt else []
    inner += ["--fsdp"] if fsdp else []
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), *inner]
           if ranks > 1 else [sys.executable, *inner])
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{cell}: {out.stderr[-2000:]}")
    return [json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="135m,360m", help="comma-separated: 135m (embedded), 360m (random init)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fsdp", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cells", default=";".join(CELLS), help=f"which settings, separated by ; (default: all of {CELLS})")
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(one_step(args.worker, args.lora, args.checkpointing, args.batch, args.seq,
                                              args.fsdp)), flush=True)
        return 0
    tmp = Path(tempfile.gettempdir()) / "grpokit-bench-memory"
    tmp.mkdir(exist_ok=True)
    print(f"one step, batch {args.batch} x {args.seq} tokens, fp32 weights, AdamW; peak memory per process (MiB)\n")
    print(f"| model | setting | trainable params | predicted states (MiB) | measured peak per rank (MiB) | vs full |")
    print("|---|---|---:|---:|---:|---:|")
    for spec in args.models.split(","):
        path = _model(spec.strip(), tmp)
        full_peak = None
        for cell in [c.strip() for c in args.cells.split(";")]:
            res = _run(args, path, cell)
            peak = max(r["peak_mb"] for r in res)
            total, trainable = res[0]["params"], res[0]["trainable"]
            predicted = (4 * total + 12 * trainable) / 2**20  # weights + (grad + 2 moments) of the trainable ones
            if "FSDP2" in cell:
                predicted /= len(res)  # each rank holds 1/W of every state
            full_peak = full_peak or peak
            per_rank = ", ".join(f"{r['peak_mb']:,.0f}" for r in res)
            print(f"| {spec} | {cell} | {trainable / 1e6:.1f}M / {total / 1e6:.1f}M | {predicted:,.0f} | "
                  f"{per_rank} | {peak / full_peak:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
