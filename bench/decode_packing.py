"""fp32 decoding on a CPU with and without packed weights (``fast_decode.pack_weights``: MKL's or oneDNN's layout).

Samples the same prompts with the same seeds with packing off and on, alternately, and prints the
seconds per call, the milliseconds per decoded token step and the ratio, and whether both sampled
the same tokens. Packing is done inside each timed call (as in training, where the weights change
at every step), so its cost is counted.

Usage: python bench/decode_packing.py [--model smollm2-135m] [--prompts 4] [--G 8] [--max-new-tokens 48]
       [--repeats 3] [--kind mkl|onednn]
The library is this CPU's (``fast_decode.packing``: MKL on Intel CPUs, oneDNN on other x86 CPUs;
on an AMD EPYC (Zen 3) MKL's packing was 1.32x slower than its plain products), or ``--kind``'s.
To see an AVX2-only Intel CPU on a newer one:
ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/decode_packing.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="word_problems1")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kind", choices=["mkl", "onednn"], help="the packing library (default: this CPU's, fast_decode.packing)")
    a = ap.parse_args()

    from grpokit import models
    from grpokit.rollout import HFEngine, SamplingParams, fast_decode, render
    from grpokit.tasks import load_task

    model, tok = models.load(a.model, dtype="fp32", train=True)
    if not fast_decode.can_pack(model):
        raise SystemExit("packing needs fp32 weights on a CPU with MKL (Intel) or oneDNN (other x86) built into torch")
    task = load_task(a.task)
    prompts = [render(tok, task.question_text(e)) for e in task.train[:a.prompts]]
    params = SamplingParams(temperature=a.temperature, top_p=1.0, max_new_tokens=a.max_new_tokens)
    eng = HFEngine(model, tok)
    eng.generate(prompts, a.G, params, torch.Generator().manual_seed(0))  # warm-up
    runs: dict[bool, list] = {False: [], True: []}
    for rep in range(a.repeats):
        for pack in (False, True):
            eng.pack = (a.kind or True) if pack else False
            t = time.perf_counter()
            r = eng.generate(prompts, a.G, params, torch.Generator().manual_seed(rep))
            runs[pack].append((time.perf_counter() - t, eng.draws, r.completion_ids))
    print(f"{a.model}, {a.prompts} prompts x G={a.G} ({a.prompts * a.G} rows), <= {a.max_new_tokens} tokens, fp32, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    med = {}
    for pack in (False, True):
        secs = [s for s, _, _ in runs[pack]]
        per = [1000 * s / d for s, d, _ in runs[pack]]
        med[pack] = statistics.median(per)
        print(f"  packed={pack!s:5}  s/call {' '.join(f'{s:.2f}' for s in secs)}   ms per token step "
              f"{' '.join(f'{p:.1f}' for p in per)} (median {med[pack]:.1f})")
    same = all(torch.equal(x[2], y[2]) for x, y in zip(runs[False], runs[True]))
    print(f"  packed ({a.kind or fast_decode.packing()}) / plain time per token step: {med[True] / med[False]:.2f}x; same tokens: {same}")


if __name__ == "__main__":
    main()
