"""Rollout engines side by side: grpokit's HF engine, transformers' ``generate`` and vLLM.

The same prompts (the add1 task's first ``B`` training questions in the model's chat template), the
same ``G`` samples per prompt, completion cap and temperature go through each engine. Each engine
runs in its own child process of this script, one after the other (one process tree), so peak
memory is measured separately and no engine warms another's caches. Each child loads the model,
runs one untimed warm-up round, then ``--repeats`` timed rounds.

- ``hf``: ``grpokit.rollout.HFEngine`` (what ``--engine hf`` trains with);
- ``generate``: ``model.generate(do_sample=True, num_return_sequences=G)`` with top-k off;
- ``vllm``: ``grpokit.rollout.vllm.VLLMEngine`` (vLLM's ``LLM`` in the process, ``n = G``).

Tokens per second count generated tokens up to and including the stop token. Peak memory is the
child's maximum resident set size on a CPU, and on CUDA the most memory the GPU had in use
(``mem_get_info``), which for vLLM includes the KV cache it reserves up front.

Usage: python bench/engines.py [--model smollm2-135m] [--B 4] [--G 8] [--max-new-tokens 32]
       [--temperature 1.0] [--repeats 3] [--engines hf,generate,vllm] [--device auto]
Run it with a Python that has vLLM (CPU: /work/venvs/vllm or .venv after setup.sh --test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _prompts(tok, B):
    from grpokit.rollout import render
    from grpokit.tasks import load_task

    task = load_task("add1")
    return [render(tok, task.question_text(e)) for e in task.train[:B]]


def _gpu_in_use(torch) -> float:
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def child(a) -> dict:
    import torch

    from grpokit import models
    from grpokit.rollout import HFEngine, SamplingParams

    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model, tok = models.load(a.model, device=a.device, dtype=a.dtype)
    cuda = next(model.parameters()).device.type == "cuda"
    prompts = _prompts(tok, a.B)
    params = SamplingParams(temperature=a.temperature, max_new_tokens=a.max_new_tokens)
    gpu_peak = [0.0]

    if a.child == "hf":
        engine = HFEngine(model, tok)

        def run(seed):
            r = engine.generate(prompts, a.G, params, torch.Generator().manual_seed(seed))
            return int(r.completion_mask.sum())
    elif a.child == "vllm":
        from grpokit.rollout.vllm import VLLMEngine

        engine = VLLMEngine(model, tok, models.resolve(a.model), sleep=False,
                            gpu_memory_utilization=a.gpu_memory_utilization)

        def run(seed):
            r = engine.generate(prompts, a.G, params, torch.Generator().manual_seed(seed))
            return int(r.completion_mask.sum())
    elif a.child == "generate":
        from grpokit.rollout.hf import stop_token_ids

        stops = stop_token_ids(tok, model)
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)

        def run(seed):
            torch.manual_seed(seed)
            with torch.inference_mode(), models.precision(model):
                out = model.generate(**enc, do_sample=True, temperature=a.temperature, top_k=0, top_p=1.0,
                                     max_new_tokens=a.max_new_tokens, num_return_sequences=a.G, eos_token_id=stops,
                                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else stops[0])
            gen = out[:, enc["input_ids"].shape[1]:]
            is_stop = torch.isin(gen, torch.tensor(stops, device=gen.device))
            after = (is_stop.cumsum(-1) - is_stop.long()) > 0  # tokens after the first stop are padding
            return int((~after).sum())
    else:
        raise ValueError(f"unknown engine {a.child!r}")
    load_s = time.perf_counter() - t0
    run(1000)  # warm-up: one-off allocations, kernel selection
    if cuda:
        torch.cuda.synchronize()
    tokens, t1 = 0, time.perf_counter()
    for i in range(a.repeats):
        tokens += run(i)
        if cuda:
            torch.cuda.synchronize()
            gpu_peak[0] = max(gpu_peak[0], _gpu_in_use(torch))
    wall = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"engine": a.child, "tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall,
            "load_s": load_s, "peak_mb": gpu_peak[0] if cuda else rss, "memory": "GPU in use" if cuda else "max RSS",
            "device": str(next(model.parameters()).device), "dtype": str(models.compute_dtype(model)).replace("torch.", ""),
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--B", type=int, default=4)
    p.add_argument("--G", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--engines", default="hf,generate,vllm")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(child(a)), flush=True)
        return 0
    rows = []
    for name in a.engines.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name] + [
            x for k, v in vars(a).items() if k not in ("child", "engines")
            for x in (f"--{k.replace('_', '-')}", str(v))]
        print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if out.returncode or line is None:
            print(f"[{name}] failed (exit {out.returncode}):\n{out.stderr[-3000:]}", flush=True)
            continue
        rows.append(json.loads(line[len("RESULT "):]))
    if not rows:
        return 1
    base = next((r for r in rows if r["engine"] == "hf"), rows[0])
    print(f"\nB={a.B} prompts x G={a.G}, cap {a.max_new_tokens} tokens, T={a.temperature}, {a.repeats} timed rounds, "
          f"model {a.model} in {rows[0]['dtype']} on {rows[0]['device']} ({rows[0]['threads']} torch threads)")
    print(f"| engine | tokens/s | vs hf | seconds | tokens | load s | peak MB ({rows[0]['memory']}) | vs hf |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['engine']} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / base['tokens_per_s']:.2f}x | "
              f"{r['seconds']:.1f} | {r['tokens']} | {r['load_s']:.1f} | {r['peak_mb']:,.0f} | "
              f"{r['peak_mb'] / base['peak_mb']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
