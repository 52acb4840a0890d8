"""Model FLOPs utilisation (MFU): each phase's achieved FLOP/s against this machine's measured matmul peak.

    python bench/mfu.py [--threads N]           # the peak alone (fp32; bf16 where the CPU multiplies it natively)
    python bench/mfu.py --run RUN_FOLDER        # the peak, and the MFU of each phase of a grpokit run's steps

The peak is measured, not looked up: the best of a few square ``n x n`` matrix products (n = 2048)
at the thread count torch uses, in fp32 and, only when the CPU has native bf16 (``avx512_bf16`` or
``amx_bf16`` in /proc/cpuinfo; otherwise bf16 is emulated and has no meaningful peak), in bf16.

FLOPs are counted from the model's shape, as in the PaLM paper's MFU (Chowdhery et al. 2022, app. B):
only matrix products, a multiply-add counted as 2, and only *useful* tokens (a padded position or a
finished row still in the decode batch costs time but adds no FLOPs). For a decoder with ``L``
layers, hidden size ``C``, ``H`` query heads and ``H_kv`` key/value heads of size ``D``, MLP width
``F`` (gated: gate, up, down) and vocabulary ``V``:

    linear(token)       = 2 L (C H D + 2 C H_kv D + H D C + 3 C F)      q, k, v, o and the MLP
    attention(token, S) = 4 L H D S                                      q.k scores and the weighted
                                                                         sum over the S keys it sees
    lm_head(position)   = 2 C V                                          only where logits are computed
    forward             = sum over tokens of linear + attention, plus lm_head at each scored position
    backward            = 2 x forward                                    gradients w.r.t. activations and weights
                        = 1 x forward with LoRA                          (the frozen base needs no weight
                                                                         gradients; the adapters' FLOPs are
                                                                         left out, under 2% at rank 16)

Per step, with ``P_b`` the prompt tokens of group ``b`` and ``l_i`` the tokens of completion ``i``:

- prefill: each prompt once (token ``k`` sees ``k`` keys), logits at its last position only.
- decode: completion ``i`` feeds ``l_i - 1`` tokens (its first comes from the prefill's logits;
  its last is not fed back); token ``j`` sees ``P_b + j + 1`` keys; one lm_head per fed token.
- learner forward: for each *trained* group the prompt once (grpokit keeps its keys/values for the
  ``G`` completions), then each completion's ``l_i - 1`` inputs, each scored (lm_head), plus the
  prompt's last position; learner backward = 2 x that. ``time/logprobs`` (old/reference log-probs,
  only when the preset needs them) is a forward over the same tokens.

Times come from grpokit's own step metrics (``time/prefill``, ``time/generate``, ``time/forward``,
``time/backward``, ``time/logprobs``); decode time is ``time/generate - time/prefill``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import torch

PEAK_N = 2048


@dataclass(frozen=True)
class Shape:
    """The dimensions of a Llama-family decoder that its FLOPs depend on."""

    L: int
    C: int
    H: int
    H_kv: int
    D: int
    F: int
    V: int

    @classmethod
    def of(cls, config) -> "Shape":
        d = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(L=config.num_hidden_layers, C=config.hidden_size, H=config.num_attention_heads,
                   H_kv=getattr(config, "num_key_value_heads", None) or config.num_attention_heads, D=d,
                   F=config.intermediate_size, V=config.vocab_size)

    def linear(self) -> float:
        """Forward FLOPs of one token through the layers' linear maps."""
        return 2.0 * self.L * (self.C * self.H * self.D + 2 * self.C * self.H_kv * self.D + self.H * self.D * self.C
                               + 3 * self.C * self.F)

    def attention(self, keys: float) -> float:
        """Forward FLOPs of attention for queries that see ``keys`` keys in all (summed over the queries)."""
        return 4.0 * self.L * self.H * self.D * keys

    def lm_head(self) -> float:
        return 2.0 * self.C * self.V


def _prompt_keys(P: int) -> int:
    return P * (P + 1) // 2  # token k (1-based) of a causal prompt sees k keys


def phase_flops(shape: Shape, groups: list[dict], lora: bool = False) -> dict[str, float]:
    """Useful FLOPs of one step's phases.

    ``groups``: one dict per group, ``{"P": prompt tokens, "lengths": [l_i], "trained": bool}``;
    ``lora``: the base is frozen, so the backward computes activation gradients only (1x forward).
    Returns ``{"prefill", "decode", "learner_fwd", "learner_bwd", "logprobs"}`` in FLOPs.
    """
    pre = dec = fwd = 0.0
    for g in groups:
        P, lens = g["P"], g["lengths"]
        prompt = P * shape.linear() + shape.attention(_prompt_keys(P))
        pre += prompt + shape.lm_head()
        fed = [max(0, n - 1) for n in lens]
        body = sum(k * shape.linear() + shape.attention(k * (P + 1) + k * (k - 1) / 2) for k in fed)
        dec += body + sum(fed) * shape.lm_head()
        if g["trained"]:
            fwd += prompt + body + (sum(fed) + 1) * shape.lm_head()
    return {"prefill": pre, "decode": dec, "learner_fwd": fwd, "learner_bwd": (1 if lora else 2) * fwd, "logprobs": fwd}


def native_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX); read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def matmul_peak(dtype: torch.dtype, n: int = PEAK_N, seconds: float = 1.5) -> float:
    """Best FLOP/s of ``[n, n] @ [n, n]`` in ``dtype`` over repeated products for about ``seconds``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up (thread pool, kernel selection)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t0))
    return best


def peaks() -> dict[str, float | int | None]:
    """``{"fp32": FLOP/s, "bf16": FLOP/s or None (not native here), "threads": n}`` at torch's current thread count."""
    return {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16) if native_bf16() else None,
            "threads": torch.get_num_threads()}


def step_groups(run_dir: str, step: int, tokenizer, skipped: int = 0) -> list[dict]:
    """The groups of one logged step as :func:`phase_flops` wants them (prompt re-tokenised as the engine does).

    ``skipped``: the step's ``groups/skipped_sequences``; when some were skipped, a group counts as
    trained when any of its advantages is non-zero (what grpokit skips at beta 0), else all are.
    """
    from grpokit.run_folder import RunReader

    out = []
    for g in RunReader(run_dir).groups(step):
        comps = g["completions"]
        out.append({"P": len(tokenizer(g["prompt"], add_special_tokens=False)["input_ids"]),
                    "lengths": [c["length"] for c in comps],
                    "trained": not skipped or any(c.get("advantage") not in (0, 0.0, None) for c in comps)})
    return out


def run_mfu(run_dir: str, shape: Shape, tokenizer, peak: float, steps: list[int] | None = None,
            lora: bool = False) -> dict:
    """Achieved FLOP/s and MFU of each phase over ``steps`` (default: all but the first) of a run."""
    from grpokit.run_folder import RunReader

    metrics = {m["step"]: m for m in RunReader(run_dir).metrics()}
    steps = steps or sorted(metrics)[1:] or sorted(metrics)
    flops = {k: 0.0 for k in ("prefill", "decode", "learner_fwd", "learner_bwd", "logprobs")}
    secs = dict.fromkeys(flops, 0.0)
    for s in steps:
        m = metrics[s]
        for k, v in phase_flops(shape, step_groups(run_dir, s, tokenizer, m.get("groups/skipped_sequences", 0)),
                                lora).items():
            flops[k] += v
        pre = m.get("time/prefill") or 0.0
        secs["prefill"] += pre
        secs["decode"] += m["time/generate"] - pre
        secs["learner_fwd"] += m.get("time/forward") or 0.0
        secs["learner_bwd"] += m.get("time/backward") or 0.0
        secs["logprobs"] += m.get("time/logprobs") or 0.0
    if secs["logprobs"] < 0.01 * secs["learner_fwd"]:
        del secs["logprobs"]  # the preset needed no old/reference log-probs: only bookkeeping was timed
    rows = {}
    for k in secs:
        if secs[k] > 0 and flops[k] > 0:
            rows[k] = {"seconds": secs[k], "gflop": flops[k] / 1e9, "gflops": flops[k] / secs[k] / 1e9,
                       "mfu": flops[k] / secs[k] / peak}
    return rows


def print_peaks(p: dict) -> None:
    bf = f"{p['bf16'] / 1e9:.1f} GFLOP/s" if p["bf16"] else "not native on this CPU (not measured)"
    print(f"matmul peak ({PEAK_N}^3, {p['threads']} threads): fp32 {p['fp32'] / 1e9:.1f} GFLOP/s, bf16 {bf}")


def peak_for(pk: dict, dtype: str) -> tuple[str, float]:
    """The peak a run computing in ``dtype`` is measured against, and its name: the bf16 peak where
    the CPU multiplies bf16 natively, else the fp32 one (emulated bf16 runs no faster than fp32)."""
    return (dtype, pk[dtype]) if pk.get(dtype) else ("fp32", pk["fp32"])


def print_mfu(rows: dict, peak_name: str) -> None:
    print(f"{'phase':14}{'seconds':>9}{'GFLOP':>9}{'GFLOP/s':>9}{'MFU':>7}   (useful FLOPs, vs the {peak_name} peak)")
    for k, r in rows.items():
        print(f"{k:14}{r['seconds']:9.2f}{r['gflop']:9.1f}{r['gflops']:9.1f}{r['mfu']:7.1%}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    p.add_argument("--run", help="a grpokit run folder: also the MFU of its phases (steps 2..n)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], help="the run's compute dtype (default: its config's)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    pk = peaks()
    print_peaks(pk)
    if a.run:
        from transformers import AutoConfig, AutoTokenizer

        from grpokit import models
        from grpokit.run_folder import RunReader

        cfg = RunReader(a.run).config()
        path = models.resolve(cfg["model"])
        dtype = a.dtype or ("bf16" if models.pick_dtype(cfg.get("dtype", "auto"), torch.device("cpu")) == torch.bfloat16
                            else "fp32")
        name, peak = peak_for(pk, dtype)
        rows = run_mfu(a.run, Shape.of(AutoConfig.from_pretrained(path)), AutoTokenizer.from_pretrained(path), peak,
                       lora=bool(cfg.get("lora_rank")))
        print_mfu(rows, name)
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
