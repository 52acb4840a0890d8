"""Data parallelism over ``torch.distributed``, behind one small object the loop passes around.

Launched with torchrun (``torchrun --nproc-per-node N -m grpokit train ...``, or ``grpokit train
--nproc N``), each of the ``W`` ranks holds the whole policy and trains on its share of every step:

    prompts      every rank reads the same seeded data stream and keeps prompts
                 ``[r * B/W, (r+1) * B/W)`` of the step's ``B`` (a group never straddles ranks; the
                 data position, and so every checkpoint, is the same on every rank)
    sampling     the sampling noise (one uniform per row and token step) of rank r's rows is the
                 slice of the noise one process would draw for all ``B * G`` rows, and after sampling
                 every rank draws as many noise blocks as the longest-decoding rank did, so all
                 samplers stay in the one-process state
    advantages   rewards are gathered (``[B, G]``, small) and the preset's estimator runs on the
                 whole batch, so batch-level statistics (REINFORCE++) see every group
    loss         the normaliser counts the sequences / tokens of all ranks; gradients are summed
                 over ranks (an all-reduce, as DDP does, with the loss already divided by the global
                 normaliser) before clipping, so W ranks x B/W prompts give the update 1 x B gives
    metrics      as one process computes them: those of the rollouts from every rank's groups
                 (:func:`whole_step`), the update's per-token means weighted by each rank's loss tokens,
                 losses and throughput summed, times and memory the slowest rank's
    run folder   rank 0 writes it (config, metrics, groups of every rank, checkpoints); a checkpoint
                 does not depend on W, so a run resumes on any number of ranks

Backends: gloo on CPU, NCCL on CUDA (rank r uses ``cuda:LOCAL_RANK``). Every collective has the
``GRPOKIT_DIST_TIMEOUT`` timeout (seconds, default 1800): a rank that dies makes the others fail
with a clear message within that time instead of hanging (torchrun itself also stops the other
ranks when one exits with an error).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from grpokit.records import concat_rollouts, concat_scores
from grpokit.train.interrupt import GracefulInterrupt

TIMEOUT_ENV = "GRPOKIT_DIST_TIMEOUT"


class RankFailed(RuntimeError):
    """A collective timed out or failed: another rank died or is stuck."""


@dataclass
class Dist:
    """This process's place among the ranks; ``Dist()`` is the single-process run (every method a no-op)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    timeout_s: float = 1800.0
    comm: str = "cpu"
    """Where the small tensors of collectives live: 'cpu' for gloo, the rank's GPU for NCCL."""

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    # --- the step's share ---
    def share(self, n: int) -> tuple[int, int]:
        """``[start, stop)`` of this rank's part of ``n`` items (prompts); ``n`` must divide evenly."""
        if n % self.world:
            raise ValueError(f"prompts_per_step {n} does not split over {self.world} ranks: use a multiple of "
                             f"{self.world} (each rank samples whole groups of the same number of prompts), or "
                             f"another number of processes")
        k = n // self.world
        return self.rank * k, (self.rank + 1) * k

    # --- collectives ---
    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as e:  # gloo / NCCL: timeouts and lost peers
            raise RankFailed(f"rank {self.rank}/{self.world}: {what} failed ({str(e).splitlines()[0][:200]}); "
                             f"another rank probably died or hangs (see its log above). The last checkpoint "
                             f"resumes with --resume true, on any number of processes") from None

    def sum(self, x: float) -> float:
        if not self.active:
            return x
        t = torch.tensor([float(x)], dtype=torch.float64, device=self.comm)
        self._call("all-reduce", torch.distributed.all_reduce, t)
        return float(t[0])

    def max(self, x: int) -> int:
        if not self.active:
            return x
        t = torch.tensor([int(x)], dtype=torch.long, device=self.comm)
        self._call("all-reduce", torch.distributed.all_reduce, t, torch.distributed.ReduceOp.MAX)
        return int(t[0])

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (pickled; for small things)."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        self._call("all-gather", torch.distributed.all_gather_object, out, obj)
        return out

    def cat(self, t: torch.Tensor) -> torch.Tensor:
        """Every rank's ``t`` concatenated along dim 0 in rank order (CPU tensors)."""
        if not self.active:
            return t
        return torch.cat([x.to(t.device) for x in self.gather(t.detach().cpu())])

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        self._call("broadcast", torch.distributed.broadcast_object_list, box, 0)
        return box[0]

    def sum_grads(self, params) -> None:
        """Sum the gradients of ``params`` over ranks, in one flat buffer (what DDP's buckets do)."""
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:  # a rank whose rows taught nothing still joins with zeros
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self._call("gradient all-reduce", torch.distributed.all_reduce, flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        if self.active:
            self._call("barrier", torch.distributed.barrier)

    def reduce_metrics(self, metrics: dict, weight: float, summed: tuple[str, ...] = (), maxed: tuple[str, ...] = (),
                       same: tuple[str, ...] = ()) -> dict:
        """Metrics of all ranks as one process would have them: ``summed`` keys added, ``maxed`` keys the
        largest, ``same`` keys (alike on every rank) rank 0's, the rest means weighted by ``weight``, what a
        rank's value averages over (its loss tokens for a per-token mean). A rank of weight 0 averaged
        nothing and is left out (all of weight 0: the plain mean); None where a rank that counts has None."""
        if not self.active:
            return metrics
        everyone = self.gather((metrics, weight))
        counted = [(m, w) for m, w in everyone if w > 0] or [(m, 1.0) for m, _ in everyone]
        total = sum(w for _, w in counted)
        out = {}
        for k, v in metrics.items():
            vals = [m.get(k) for m, _ in everyone]
            if k in same:
                out[k] = everyone[0][0].get(k)
                continue
            if k not in summed and k not in maxed:
                vals = [m.get(k) for m, _ in counted]
            if any(x is None or isinstance(x, bool) or not isinstance(x, (int, float)) for x in vals):
                out[k] = v if all(x is not None for x in vals) else None
            elif k in summed:
                out[k] = sum(vals)
            elif k in maxed:
                out[k] = max(vals)
            else:
                out[k] = sum(x * w for x, (_, w) in zip(vals, counted)) / total
        return out

    def device(self, requested: str) -> str:
        """The device this rank computes on: ``cuda:LOCAL_RANK`` for a CUDA run, else ``requested``."""
        if not self.active:
            return requested
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        return f"cuda:{self.local_rank}" if requested.startswith("cuda") else requested


def timeout_s() -> float:
    """Seconds a collective may wait for the other ranks (``$GRPOKIT_DIST_TIMEOUT``, default 1800)."""
    return float(os.environ.get(TIMEOUT_ENV, "1800"))


def setup(device: str = "auto") -> Dist:
    """Join the torchrun job this process belongs to (``WORLD_SIZE`` > 1), else the single-process ``Dist()``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    timeout = timeout_s()
    cuda = (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda")
    if not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout))
    return Dist(rank=rank, world=world, local_rank=local, local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
                timeout_s=timeout, comm=f"cuda:{local}" if cuda else "cpu")


def teardown(d: Dist) -> None:
    if d.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def catch_up_noise(d: Dist, engine, generator) -> None:
    """Draw the noise blocks the longest-decoding rank drew and this one did not (see the module
    docstring), so every rank's sampler ends the step where one process's would."""
    missing = d.max(engine.draws) - engine.draws
    for _ in range(missing):
        engine.draw_noise(generator)


def whole_step(d: Dist, got, scores):
    """The step's groups of every rank, joined in rank order as one process holds them (rank r's rows
    after rank r-1's): ``got`` (a :class:`grpokit.train.sampling.Sampled`) with ``scores`` and its
    reward errors (their ``index`` shifted to the joined rows). One process: ``got`` with ``scores``."""
    if not d.active:
        return dataclasses.replace(got, scores=scores)
    parts = d.gather((got, scores))
    errors, offset = [], 0
    for part, _ in parts:
        errors += [{**e, "index": e["index"] + offset} for e in part.errors]
        offset += len(part.rollout.completions)
    return dataclasses.replace(
        got, examples=[ex for part, _ in parts for ex in part.examples],
        rollout=concat_rollouts([part.rollout for part, _ in parts]), scores=concat_scores([sc for _, sc in parts], errors),
        errors=errors, rounds=max(part.rounds for part, _ in parts), generated=sum(part.generated for part, _ in parts),
        dropped=sum(part.dropped for part, _ in parts))


class ShareOfStream:
    """A view of the run's data stream that hands this rank its share of every ``take``: all ranks
    advance the stream by the whole step's prompts, so its position stays the same everywhere."""

    def __init__(self, data, d: Dist):
        self.data, self.d = data, d

    def take(self, n: int):
        everything = self.data.take(n * self.d.world)
        return everything[self.d.rank * n:(self.d.rank + 1) * n]

    def __getattr__(self, name):
        return getattr(self.data, name)


def check_supported(cfg, d: Dist) -> None:
    """What data parallelism does not do yet, refused before anything loads."""
    if not d.active:
        return
    d.share(cfg.prompts_per_step)
    if cfg.dynamic_sampling_max_rounds:
        raise ValueError(f"dynamic sampling (dynamic_sampling_max_rounds={cfg.dynamic_sampling_max_rounds}) is not "
                         f"supported with {d.world} processes yet: each rank would refill a different number of "
                         "groups. Use one process, or dynamic_sampling_max_rounds 0")
    if cfg.use_critic and cfg.sharding == "fsdp" and cfg.critic_trunk == "shared":
        raise ValueError("--sharding fsdp with --critic_trunk shared is not supported: the value head would call the "
                         "policy's trunk past its FSDP root. Use --critic_trunk separate (the default), or --sharding ddp")


class _NoWriter:
    """The run-folder writer of ranks other than 0: they write nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class FollowerSession:
    """A rank other than 0 inside a run: it steps with rank 0, which owns the run folder
    (:class:`grpokit.train.session.RunSession`) and writes every file.

    It calls ``save`` where rank 0 does (the step-0 checkpoint of a new run, ``save(step)``, the
    last step at the end), because gathering sharded weights (FSDP) takes every rank; ``save``
    writes nothing here. Ctrl-C reaching this rank is handled as on rank 0: the step in flight
    finishes, and the loop's all-reduce of "should stop" stops every rank at the same step.
    """

    def __init__(self, run_dir, resume_from):
        self.dir, self.resume_from = Path(run_dir), resume_from
        self.writer, self.step, self.saved, self.total = _NoWriter(), 0, 0, 0
        self._save = None
        self._interrupt = GracefulInterrupt()

    def begin(self, step: int, total: int, save, position=None, extra_config=None, trackers=None,
              save_is_collective: bool = False) -> None:
        self.step, self.saved, self.total, self._save = step, step, total, save
        if self.resume_from is None:
            self._save_now(step)

    def critical(self):
        return self._interrupt.deferred()

    def completed(self, step: int, metrics=None) -> None:
        self.step = step

    def log(self, step: int, metrics: dict) -> None:
        pass

    def save(self, step: int):
        return self._save_now(step)

    def _save_now(self, step: int):
        self._save(step, None)
        self.saved = step

    def should_stop(self, stop_after: int = 0) -> bool:
        return self._interrupt.requested or bool(stop_after and self.step >= stop_after)

    def end(self) -> bool:
        if self.step != self.saved:
            self._save_now(self.step)
        return self.step >= self.total

    def finished(self) -> None:
        pass

    def __enter__(self):
        self._interrupt.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self._interrupt.__exit__(*exc)
        return False


def open_session(d: Dist, make_session, run_dir):
    """Rank 0 opens the run folder (``make_session()``, which may refuse: locked, changed config) and
    tells the other ranks where to resume from, or why it could not."""
    if not d.active:
        return make_session()
    if d.main:
        try:
            session = make_session()
        except BaseException as e:
            d.broadcast(("error", f"{type(e).__name__}: {e}"))
            raise
        d.broadcast(("ok", None if session.resume_from is None else str(session.resume_from)))
        return session
    status, detail = d.broadcast(None)
    if status == "error":
        raise RankFailed(f"rank {d.rank}: rank 0 could not open the run folder: {detail}")
    return FollowerSession(run_dir, None if detail is None else Path(detail))


def torchrun_command(argv: list[str], *, nproc: int, nnodes: int = 1, rdzv_endpoint: str = "",
                     rdzv_id: str = "grpokit") -> list[str]:
    """The torchrun command that runs ``grpokit train ARGV`` on ``nproc`` processes per node
    (``nnodes`` nodes meeting at ``rdzv_endpoint``, torchrun's c10d rendezvous)."""
    if nnodes > 1 and not rdzv_endpoint:
        raise ValueError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, the address every node can reach "
                         "(e.g. the first node's, 10.0.0.1:29400)")
    # After a Ctrl-C torchrun gives the ranks --shutdown-timeout seconds (its default: 30) before SIGKILL;
    # they need the rest of a step and a checkpoint, as long as a collective may take.
    grace = str(int(timeout_s()))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--shutdown-timeout", grace, "--nproc-per-node", str(nproc)]
    if nnodes > 1:
        cmd += ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", rdzv_id]
    else:
        cmd += ["--standalone"]
    return cmd + ["-m", "grpokit", "train", *argv]
