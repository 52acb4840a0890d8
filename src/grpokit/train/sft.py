"""Supervised fine-tuning on prompt/response pairs: cold start, rejection-sampling SFT, distillation.

    pairs    <- JSONL rows {prompt, response}; prompt rendered with the template (chat by default),
                response + EOS appended: exactly the tokens the rollout engine would have sampled
    batches  <- a seeded shuffle per epoch, length-bucketed (similar lengths share a step and pad little)
    for step: for micro-batches: loss = sum of response-token NLL / response tokens in the step; backward
              clip, step; log metrics; checkpoint

The loss covers response tokens only (prompt tokens are labels -100) and is a token mean over the
whole optimizer step, so splitting a step into micro-batches does not change the gradient.
Checkpoints, ``metrics.jsonl``, ``status.json`` and ``--resume`` are those of GRPO runs
(:mod:`grpokit.train.checkpoint`, :class:`grpokit.run_folder.RunWriter`): ``grpokit report`` and
``grpokit sample`` read an SFT run like any other.

Length bucketing: each epoch's shuffled order is cut into windows of ``bucket_window`` batches; a
window is sorted by length and cut into batches, and the batch order is shuffled again. Batches are
then homogeneous in length while their order stays random.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from grpokit import models
from grpokit.config import ComputeOptions, OptimizerOptions, RunOptions, add_config_args, make, overrides_from, to_dict
from grpokit.rollout import render
from grpokit.train import checkpoint as ckpt, determinism
from grpokit.train.optim import adamw, check_schedule, lr_factor, lr_scheduler  # noqa: F401 (lr_factor: public here too)
from grpokit.train.session import RunSession


@dataclass(frozen=True)
class SFTConfig(RunOptions, OptimizerOptions, ComputeOptions):
    model: str = "smollm2-135m"
    """Model to fine-tune: 'smollm2-135m' (embedded), a local Hugging Face folder, or a run's checkpoint."""
    data: str = ""
    """JSONL file(s) of {prompt, response} rows (several: comma-separated), e.g. what `grpokit sample` writes."""
    prompt_key: str = "prompt"
    """Column holding the prompt (the bare question; the template is applied here)."""
    response_key: str = "response"
    """Column holding the target response."""
    template: str = "chat"
    """Prompt template: 'chat', 'r1_zero', 'plain', 'qa', or a string with {prompt} (use the one RL will use)."""
    system_prompt: str = ""
    """System message for the chat template."""
    epochs: int = 2
    """Passes over the data (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Optimizer steps (0 = epochs x batches per epoch)."""
    batch_size: int = 16
    """Sequences per optimizer step."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass (the update does not depend on it)."""
    max_length: int = 512
    """Token cap of prompt + response; longer responses are cut (and lose their EOS)."""
    length_bucketing: bool = True
    """Group sequences of similar length into the same step (less padding)."""
    bucket_window: int = 16
    """Batches per bucketing window: larger = more homogeneous lengths, less randomness."""
    # the optimizer (OptimizerOptions), with SFT's defaults
    lr: float = 2e-5
    lr_schedule: str = "cosine"
    adam_betas: tuple = (0.9, 0.95)

    FIXED_ON_RESUME: ClassVar[dict[str, str]] = {
        "model": "the checkpoint holds this model's fine-tuned weights",
        "data": "the saved step counts batches of these rows",
        "prompt_key": "the saved step counts batches of the rows read with it",
        "response_key": "the saved step counts batches of the rows read with it",
        "batch_size": "the saved step counts batches of this size",
        "length_bucketing": "the saved step counts batches planned with it",
        "bucket_window": "the saved step counts batches planned with it",
        "seed": "the batch order of every epoch was shuffled with it",
    }
    """Keys a resumed run cannot change, even with ``--override``, and why (see :func:`grpokit.config.make`)."""


def read_pairs(spec: str, prompt_key: str = "prompt", response_key: str = "response") -> list[tuple[str, str]]:
    """``(prompt, response)`` pairs from one or more comma-separated JSONL files."""
    paths = [p.strip() for p in spec.split(",") if p.strip()]
    if not paths:
        raise ValueError("sft: no data given; pass --data FILE.jsonl (rows with prompt and response)")
    pairs = []
    for path in paths:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"sft data file {p} does not exist")
        for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: not valid JSON ({e.msg})") from e
            if prompt_key not in row or response_key not in row:
                raise ValueError(f"{p}:{lineno}: needs {prompt_key!r} and {response_key!r}, has {sorted(row)}; "
                                 "map yours with --prompt_key / --response_key")
            pairs.append((str(row[prompt_key]), str(row[response_key])))
    if not pairs:
        raise ValueError(f"sft: {spec} holds no rows")
    return pairs


def encode(tokenizer, pairs, template: str, system: str, max_length: int) -> list[tuple[list[int], int]]:
    """Each pair -> ``(token ids, prompt length)``; the response gets EOS. Pairs whose prompt fills
    ``max_length`` are an error (nothing would be learned from them)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: the model could never learn to stop")
    out = []
    for i, (prompt, response) in enumerate(pairs):
        p = tokenizer(render(tokenizer, prompt, template, system or None), add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(p) >= max_length:
            raise ValueError(f"sft row {i + 1}: its prompt alone has {len(p)} tokens >= max_length={max_length}; "
                             "raise max_length")
        out.append(((p + r)[:max_length], len(p)))
    return out


def plan_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, bucketing: bool = True,
                 window: int = 16) -> list[list[int]]:
    """One epoch's batches of example indices (module docstring); deterministic in ``(seed, epoch)``."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not bucketing:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    span = batch_size * max(1, window)
    for w in range(0, len(order), span):
        chunk = sorted(order[w:w + span], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def response_nll(model, seqs: list[tuple[list[int], int]], pad_id: int, device) -> tuple[torch.Tensor, int]:
    """Summed NLL of the response tokens of ``seqs`` (right-padded into one batch) and their count."""
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (row, p) in enumerate(seqs):
        ids[i, :len(row)] = torch.tensor(row)
        labels[i, p:len(row)] = torch.tensor(row[p:])
        mask[i, :len(row)] = 1
    ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
    with models.precision(model):  # half-precision compute over fp32 weights where the dtype asks for it
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # [b, L-1, V]
    target = labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                            ignore_index=-100, reduction="sum")
    return nll, int((target != -100).sum())


def _check(cfg: SFTConfig) -> None:
    check_schedule(cfg.lr_schedule)
    if min(cfg.batch_size, cfg.micro_batch_size, cfg.max_length) < 1 or (cfg.max_steps <= 0 and cfg.epochs < 1):
        raise ValueError("batch_size, micro_batch_size, max_length and epochs (or max_steps) must be >= 1")


def train_sft(cfg: SFTConfig) -> Path:
    """Fine-tune as configured; returns the run folder (``status.json`` says whether it finished)."""
    _check(cfg)
    run_dir = Path(cfg.out or f"runs/sft-{time.strftime('%Y%m%d-%H%M%S')}")
    session = RunSession(run_dir, to_dict(cfg), resume=cfg.resume, override=cfg.override, command="grpokit sft",
                         fixed=cfg.FIXED_ON_RESUME)
    with session:
        _train_sft(cfg, session)
    return run_dir


def _train_sft(cfg: SFTConfig, session: RunSession) -> None:
    resume_from = session.resume_from
    determinism.setup(threads=cfg.threads, deterministic=cfg.deterministic, seed=cfg.seed, device=cfg.device)
    model, tok = models.load(str(resume_from) if resume_from else cfg.model, device=cfg.device, dtype=cfg.dtype, train=True)
    model.config.use_cache = False
    if not cfg.threads and not cfg.deterministic:
        determinism.auto_threads(model)
    device = next(model.parameters()).device
    seqs = encode(tok, read_pairs(cfg.data, cfg.prompt_key, cfg.response_key), cfg.template, cfg.system_prompt,
                  cfg.max_length)
    lengths = [len(ids) for ids, _ in seqs]
    per_epoch = -(-len(seqs) // cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    optimizer = adamw(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
    scheduler = lr_scheduler(optimizer, total, cfg.warmup_steps, cfg.lr_schedule)
    step = 0
    if resume_from:
        state = ckpt.load_state(resume_from)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]

    def save(at: int, _position) -> Path:  # the data position is the step itself
        return ckpt.save(session.dir, at, model, tok, {"step": at, "optimizer": optimizer.state_dict(),
                                                        "scheduler": scheduler.state_dict()})

    session.begin(step, total, save, extra_config={"sft_examples": len(seqs), "sft_total_steps": total})
    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, desc="sft", dynamic_ncols=True)
    plans: dict[int, list[list[int]]] = {}
    skipped = 0  # optimizer steps skipped in a row (non-finite loss or gradient norm)
    try:
        while session.step < total:
            epoch, pos = divmod(session.step, per_epoch)
            if epoch not in plans:
                plans = {epoch: plan_batches(lengths, cfg.batch_size, cfg.seed, epoch, cfg.length_bucketing,
                                             cfg.bucket_window)}
            step = session.step + 1
            with session.critical():
                metrics = _one_step(cfg, model, optimizer, scheduler, [seqs[i] for i in plans[epoch][pos]],
                                    tok.pad_token_id, device)
                metrics["sft/epoch"] = step / per_epoch
                session.completed(step, metrics)
            session.log(step, metrics)
            skipped = skipped + 1 if metrics["optim/skipped_steps"] else 0
            if metrics["optim/skipped_steps"]:
                session.writer.log_event("nonfinite_update", step=step, loss=repr(metrics["loss/sft"]),
                                         grad_norm=repr(metrics["optim/grad_norm"]))
                print(f"step {step}: non-finite loss or gradient norm; optimizer step skipped", file=sys.stderr)
            if skipped >= cfg.max_skipped_steps:
                raise RuntimeError(f"{skipped} optimizer steps in a row had a non-finite loss or gradient norm and were "
                                   f"skipped (max_skipped_steps={cfg.max_skipped_steps}); lower the lr or check the data")
            if cfg.save_every and step % cfg.save_every == 0:
                session.save(step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss/sft']:.3f}")
            if session.should_stop(cfg.stop_after):
                break
    finally:
        if bar is not None:
            bar.close()
    if session.end():
        session.finished()


def _one_step(cfg, model, optimizer, scheduler, batch, pad_id, device) -> dict:
    t0 = time.time()
    model.train()
    optimizer.zero_grad(set_to_none=True)
    batch = sorted(batch, key=lambda s: -len(s[0]))  # similar lengths share a micro-batch
    n_tokens = sum(len(ids) - p for ids, p in batch)
    loss_sum = 0.0
    for i in range(0, len(batch), cfg.micro_batch_size):
        nll, _ = response_nll(model, batch[i:i + cfg.micro_batch_size], pad_id, device)
        (nll / n_tokens).backward()
        loss_sum += float(nll.detach())
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf")))
    lr = scheduler.get_last_lr()[0]
    finite = math.isfinite(loss_sum) and math.isfinite(grad_norm)
    if finite:
        optimizer.step()
    else:  # nothing non-finite reaches the weights or AdamW's moments
        optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # the schedule follows steps, skipped ones too
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()
    dt = time.time() - t0
    return {"loss/sft": loss_sum / n_tokens, "sft/response_tokens": n_tokens, "sft/sequences": len(batch),
            "sft/mean_length": sum(len(ids) for ids, _ in batch) / len(batch), "optim/grad_norm": grad_norm,
            "optim/skipped_steps": 0 if finite else 1,
            "optim/lr": lr, "time/step": dt, "throughput/tokens_per_s": sum(len(ids) for ids, _ in batch) / dt}


def main(argv: list[str] | None = None) -> int:
    """``grpokit sft [--config FILE] [--key value ...]``."""

    ap = argparse.ArgumentParser(prog="grpokit sft", description=(
        "Supervised fine-tuning on {prompt, response} JSONL rows (loss on response tokens only). Writes a run "
        "folder like `grpokit train`: checkpoints, metrics.jsonl, status.json; --resume true continues it."))
    ap.add_argument("--config", help="YAML file of config keys")
    add_config_args(ap, SFTConfig)
    args = ap.parse_args(argv)
    try:
        train_sft(make(SFTConfig, args.config, overrides_from(args, SFTConfig)))
    except KeyboardInterrupt:
        print("Interrupted; the checkpoint above holds the last finished step.", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"grpokit sft: error: {e}", file=sys.stderr)
        return 2
    return 0
