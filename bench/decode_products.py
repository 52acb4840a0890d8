"""One decode step's matrix products in each library this CPU has, against the rate it streams the weights.

A decode step multiplies every weight of the model by a few rows (``B x G``, 16 in the vs-TRL
benchmark), so it reads all the weights once (SmolLM2-135M in fp32: 540 MB) and does 2 x rows FLOPs
per weight. If the products read the weights as fast as a plain sum does, decoding is at the
machine's limit; this script measures how far each library's kernel is from it, so that a change to
the decoder's products is measured against that limit rather than against the previous kernel.

Each round runs, one after the other in one process (alternating the order every round, since this
machine's speed drifts within minutes), one step's products in model order with each of:

- ``onednn``: oneDNN's inner product on weights reordered once into its layout (grpokit's decoder on
  x86 CPUs other than Intel's: ``fast_decode.packing``);
- ``mkl-packed``: MKL's sgemm on weights packed once (grpokit's decoder on Intel CPUs);
- ``mkl``: ``W @ x.T``, torch's own product (MKL on x86 builds), as the decoder multiplies unpacked
  weights at a few rows;
- ``numpy``: ``W @ x.T`` in numpy's BLAS (OpenBLAS in numpy's PyPI wheels), on the same memory;
- ``stream``: a sum over the same weights, one pass (the read rate the products would need to match).

It prints each way's milliseconds per step (median over rounds), the weights' read rate in GB/s,
FLOP/s, and the time as a multiple of the stream pass; and checks that every way's products agree.
Each timed way starts after ``--pause`` seconds idle: OpenBLAS's threads keep spinning after a call
and took the cores from whatever ran next (the stream pass read 42 ms after torch's products and
73-80 ms right after numpy's, on the machine of the README's numbers).

Usage: python bench/decode_products.py [--model smollm2-135m] [--rows 16] [--rounds 8] [--threads N]
       [--ways onednn,mkl-packed,mkl,numpy] [--pause 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from grpokit.rollout import fast_decode

WAYS = ("onednn", "mkl-packed", "mkl", "numpy")


def available(way: str) -> bool:
    """Whether this torch build (and numpy) can run ``way`` here."""
    if way in ("onednn", "mkl-packed"):
        return fast_decode.library_available("mkl" if way == "mkl-packed" else way)
    if way == "numpy":
        try:
            import numpy  # noqa: F401
        except ImportError:
            return False
    return True


def prepare(way: str, weights: list[torch.Tensor], rows: int) -> list:
    """Each weight in the layout ``way`` multiplies (done once, as the decoder does once per generate call)."""
    if way == "onednn":
        return [fast_decode.Reordered(w, rows) for w in weights]
    if way == "mkl-packed":
        return [fast_decode.Packed(w, rows) for w in weights]
    if way == "numpy":
        return [w.numpy() for w in weights]
    return list(weights)


def product(way: str, w, x: torch.Tensor) -> torch.Tensor:
    """``x @ W.T`` (``[rows, out]``) with ``w`` from :func:`prepare`: the decoder's own product
    (``fast_decode.product``), or numpy's."""
    if way == "numpy":
        return torch.from_numpy(w @ x.numpy().T).t()
    return fast_decode.product(x, w)


def step(way: str, prepared: list, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [product(way, w, x) for w, x in zip(prepared, inputs)]


def stream(weights: list[torch.Tensor]) -> float:
    return float(sum(w.sum() for w in weights))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=16, help="rows per product (B x G of a decode step)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds of idle before each timed way")
    ap.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, of {', '.join(WAYS)}")
    a = ap.parse_args(argv)
    ways = [w for w in a.ways.split(",") if w]
    bad = [w for w in ways if w not in WAYS]
    if bad:
        raise SystemExit(f"unknown way(s) {bad}: pick from {', '.join(WAYS)}")
    skipped = [w for w in ways if not available(w)]
    ways = [w for w in ways if w not in skipped]
    if a.threads:
        torch.set_num_threads(a.threads)

    from grpokit import models

    model, _ = models.load(a.model, dtype="fp32")
    # every nn.Linear once, in model order (a tied output layer is its own product, as in a decode step)
    weights = [m.weight.detach().contiguous() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(a.rows, w.shape[1], generator=gen) for w in weights]
    prepared = {way: prepare(way, weights, a.rows) for way in ways}
    ref = step("mkl", weights, inputs)
    for way in ways:  # warm-up, and every way's products must be the same numbers
        out = step(way, prepared[way], inputs)
        err = max(float((o - r).abs().max() / r.abs().max().clamp(min=1e-30)) for o, r in zip(out, ref))
        if err > 1e-4:
            raise SystemExit(f"{way}: products differ from torch's by {err:.1e} (relative): not the same product")
    stream(weights)

    order = ways + ["stream"]
    times: dict[str, list[float]] = {w: [] for w in order}
    for r in range(a.rounds):
        for way in order if r % 2 == 0 else order[::-1]:
            time.sleep(a.pause)  # untimed: spinning library threads of the previous way go to sleep
            t = time.perf_counter()
            if way == "stream":
                stream(weights)
            else:
                step(way, prepared[way], inputs)
            times[way].append(time.perf_counter() - t)

    nbytes = sum(w.numel() * w.element_size() for w in weights)
    flops = 2 * a.rows * sum(w.numel() for w in weights)
    med = {w: statistics.median(v) for w, v in times.items()}
    print(f"{a.model}: {len(weights)} products per step, {nbytes / 1e6:.0f} MB of fp32 weights, {a.rows} rows, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{a.rounds} interleaved rounds (medians)")
    if skipped:
        print(f"  not available here: {', '.join(skipped)}")
    print(f"  {'way':<11} {'ms/step':>8} {'GB/s':>6} {'GFLOP/s':>8} {'x stream':>9}")
    for w in order:
        s = med[w]
        fl = f"{flops / s / 1e9:8.1f}" if w != "stream" else f"{'':>8}"
        print(f"  {w:<11} {1e3 * s:8.1f} {nbytes / s / 1e9:6.1f} {fl} {s / med['stream']:8.2f}x")
    return med


if __name__ == "__main__":
    main()
