"""Sampling or update speed of two revisions of grpokit, interleaved: the working tree against ``--base``.

A change to the decoder or the learner is worth a few percent; this machine's speed drifts by more
than that within minutes (other tenants share its memory bandwidth), so two separate runs cannot
tell such a change from the drift. Here each side is a long-lived child process importing grpokit
from its own source tree (the working tree's ``src``, and ``git archive BASE`` unpacked in a scratch
folder) with the same model, prompts and seeds; the parent lets them work one at a time, alternating
which goes first, and prints each side's time (median over rounds) and the ratio.

``--phase generate`` (default): one ``generate`` call per round; milliseconds per decoded token
step, and whether both sides sampled the same tokens. ``--phase update``: the learner's forward and
backward (``train.batch.group_logprobs``, the GRPO loss's token mean) over one batch of completions,
the same batch on both sides (sampled once by the base side), without an optimizer step; seconds
per update, and both sides' loss and gradient norm.

Usage: python bench/generate_ab.py --base REV [--phase generate|update] [--model smollm2-135m]
       [--task add1] [--prompts 2] [--G 8] [--max-new-tokens 64] [--temperature 1.0] [--rounds 8]
       [--dtype fp32|bf16] [--threads N] [--lora-rank R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(a) -> None:
    """Load the model, then generate once per line read from stdin ("go SEED"), answering in JSON."""
    import time

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    import grpokit
    from grpokit import models
    from grpokit.rollout import HFEngine, SamplingParams, render
    from grpokit.tasks import load_task

    model, tok = models.load(a.model, dtype=a.dtype, train=True)
    if a.lora_rank:  # PEFT adapters on every linear layer, B random so that they change the outputs
        import peft

        compute = models.compute_dtype(model)
        torch.manual_seed(0)  # PEFT draws lora_A from the global generator: the same adapters on both sides
        model = peft.get_peft_model(model, peft.LoraConfig(r=a.lora_rank, lora_alpha=2 * a.lora_rank, lora_dropout=0.0,
                                                            target_modules="all-linear", task_type="CAUSAL_LM")).get_base_model()
        model.grpokit_compute_dtype = compute
        gen = torch.Generator().manual_seed(0)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.02, generator=gen)
    task = load_task(a.task)
    prompts = [render(tok, task.question_text(e)) for e in task.train[:a.prompts]]
    params = SamplingParams(temperature=a.temperature, top_p=1.0, max_new_tokens=a.max_new_tokens)
    eng = HFEngine(model, tok)
    if a.phase == "update":
        return _child_updates(a, model, eng, prompts, params)
    eng.generate(prompts, a.G, params, torch.Generator().manual_seed(12345))  # warm-up
    print(json.dumps({"ready": grpokit.__file__}), flush=True)
    for line in sys.stdin:
        seed = int(line.split()[1])
        t = time.perf_counter()
        r = eng.generate(prompts, a.G, params, torch.Generator().manual_seed(seed))
        secs = time.perf_counter() - t
        print(json.dumps({"secs": secs, "steps": eng.draws, "tokens": r.completion_ids.tolist()}), flush=True)


def _child_updates(a, model, eng, prompts, params) -> None:
    """The learner's forward + backward over one batch per line read from stdin; the batch is sampled
    by the first side started and saved to ``a.batch``, which the other side loads."""
    import time

    import torch

    import grpokit
    from grpokit import models
    from grpokit.train.batch import TrainBatch, group_logprobs

    if os.path.exists(a.batch):
        rollout = torch.load(a.batch, weights_only=False)
    else:
        rollout = eng.generate(prompts, a.G, params, torch.Generator().manual_seed(12345))
        torch.save(rollout, a.batch)
    batch = TrainBatch.from_rollout(rollout)
    rows = list(range(len(batch)))

    def update() -> tuple[float, float, float]:
        t = time.perf_counter()
        with models.precision(model):
            logp, mask, _ = group_logprobs(model, batch, rows, a.G, a.temperature)
            loss = -(logp * mask).sum() / mask.sum()
        loss.backward()
        secs = time.perf_counter() - t
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
        model.zero_grad(set_to_none=True)
        return secs, float(loss.detach()), float(norm)

    update()  # warm-up
    print(json.dumps({"ready": grpokit.__file__}), flush=True)
    for _ in sys.stdin:
        secs, loss, norm = update()
        print(json.dumps({"secs": secs, "loss": loss, "grad_norm": norm}), flush=True)


def _unpack(rev: str, into: str) -> str:
    """``src/`` of revision ``rev`` of this repository, unpacked under ``into``."""
    blob = subprocess.run(["git", "-C", ROOT, "archive", rev, "src"], check=True, capture_output=True).stdout
    path = os.path.join(into, "archive.tar")
    with open(path, "wb") as f:
        f.write(blob)
    with tarfile.open(path) as t:
        t.extractall(into, filter="data")
    return os.path.join(into, "src")


def _answer(name: str, p: subprocess.Popen) -> dict:
    """The next JSON line of child ``p``; a clear exit if it died (its error is on stderr above)."""
    line = p.stdout.readline()
    if not line:
        raise SystemExit(f"the {name} side exited (code {p.wait()}) before answering: see its error above")
    return json.loads(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision to compare the working tree against")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="add1")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads per side (default: torch's own)")
    ap.add_argument("--lora-rank", type=int, default=0, help="PEFT LoRA adapters of this rank on every linear layer (needs peft)")
    ap.add_argument("--phase", default="generate", choices=["generate", "update"],
                    help="time sampling (default) or the learner's forward + backward on one batch")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    found = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "--verify", a.base + "^{commit}"],
                           capture_output=True, text=True)
    if found.returncode:
        raise SystemExit(f"--base {a.base!r} is not a revision of {ROOT} (git: {found.stderr.strip()}); "
                         "give a commit, branch or tag, e.g. --base HEAD~1")
    rev = found.stdout.strip()
    keys = ("model", "task", "prompts", "G", "max_new_tokens", "temperature", "dtype", "threads", "lora_rank", "phase")
    args = [a.__dict__[k] for k in keys]
    flags = ["--" + k.replace("_", "-") for k in keys]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--base", a.base] + [
        x for f, v in zip(flags, args) for x in (f, str(v))]
    with tempfile.TemporaryDirectory(prefix="grpokit-ab-") as tmp:
        cmd += ["--batch", os.path.join(tmp, "rollout.pt")]
        sides = {"base " + rev: _unpack(a.base, tmp), "working tree": os.path.join(ROOT, "src")}
        procs = {}
        for name, src in sides.items():  # one at a time: loading is not timed, but keep it off the other's cores
            env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            ready = _answer(name, p)
            assert ready["ready"].startswith(src), f"{name} imported grpokit from {ready['ready']}, not {src}"
            procs[name] = p
        names = list(procs)
        runs: dict[str, list] = {n: [] for n in names}
        for r in range(a.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                p = procs[name]
                p.stdin.write(f"go {r}\n")
                p.stdin.flush()
                runs[name].append(_answer(name, p))
        for p in procs.values():
            p.stdin.close()
            p.wait()
    import torch

    print(f"{a.phase}, {a.model}, {a.task}: {a.prompts} prompts x G={a.G}, <= {a.max_new_tokens} tokens, T={a.temperature:g}, "
          f"{a.dtype}{f', LoRA r={a.lora_rank}' if a.lora_rank else ''}, {a.rounds} rounds alternating, threads {a.threads or torch.get_num_threads()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    med = {}
    per_round = "update" if a.phase == "update" else "token step"
    for name in names:
        per = [x["secs"] if a.phase == "update" else 1000 * x["secs"] / x["steps"] for x in runs[name]]
        med[name] = statistics.median(per)
        unit, fmt = ("s", "{:.2f}") if a.phase == "update" else ("ms", "{:.1f}")
        print(f"  {name:14s} {unit} per {per_round}: median {fmt.format(med[name]):>6s}  "
              f"(rounds: {' '.join(fmt.format(v) for v in per)})")
    ratio = f"  working tree / base: {med[names[1]] / med[names[0]]:.3f}x the time per {per_round}; "
    if a.phase == "update":
        loss = {n: runs[n][0]["loss"] for n in names}
        norm = {n: runs[n][0]["grad_norm"] for n in names}
        print(ratio + "loss " + ", ".join(f"{loss[n]:.6f}" for n in names) + "; gradient norm "
              + ", ".join(f"{norm[n]:.6f}" for n in names) + " (base, working tree)")
    else:
        same = all(x["tokens"] == y["tokens"] for x, y in zip(*(runs[n] for n in names)))
        print(ratio + f"same tokens in every round: {same}")

if __name__ == "__main__":
    main()
