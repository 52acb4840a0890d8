"""``grpokit sample``: rejection sampling into an SFT dataset (also cold-start and distillation data).

    for each batch of prompts (a seeded order of the task's split):
        k completions per prompt, verifier score of each  (rewards.generate_and_score, optionally few-shot
                                                           prompted; the task's correctness by default)
        keep those that pass the filters, <= max_per_prompt per prompt     (datagen.filters)
        append them to the dataset; record progress
    stop at target_size rows

Each output line is ``{"id", "prompt", "response", "answer", "data_source", "provenance"}`` where
``prompt`` is the bare question (never the few-shot demonstrations: SFT should teach the answer
without them) and ``provenance`` records the model, its training step, the verifier's reward and
the filters the sample passed, with the sampling settings. A summary (candidates, kept, rejections
by filter) goes to ``OUT.summary.json``.

Resumable: rows are appended a batch at a time to ``OUT.partial`` and the number of finished
batches is recorded (atomically) in ``OUT.progress.json``; each batch samples with its own
generator seeded from ``(seed, batch index)``, so an interrupted and resumed run writes exactly the
file an uninterrupted one does. ``OUT`` appears (by rename) only when sampling is complete.

Distillation is the same command on a teacher checkpoint; train the student with ``grpokit sft``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grpokit import models, rewards as rw
from grpokit.config import ComputeOptions, add_config_args, make, overrides_from, to_dict
from grpokit.datagen.fewshot import load_demos, render_few_shot
from grpokit.datagen.filters import Candidate, FilterSettings, check_names, select
from grpokit.rewards.generate import generate_and_score
from grpokit.rollout import HFEngine, SamplingParams, render
from grpokit.tasks import load_task


@dataclass(frozen=True)
class SampleConfig(ComputeOptions):
    model: str = "smollm2-135m"
    """Model to sample from: a run's checkpoint folder (its step is recorded), a local HF folder, or 'smollm2-135m'."""
    task: str = "add2"
    """Task name or a .jsonl/.parquet file of {question, answer} rows: where the prompts come from."""
    task_options: dict = field(default_factory=dict)
    """Options passed to the task (e.g. {train_size: 4000})."""
    split: str = "train"
    """Which prompts: the task's 'train' or 'heldout' split."""
    n_prompts: int = 0
    """Prompts to use, from a seeded shuffle of the split (0 = all)."""
    k: int = 4
    """Completions sampled per prompt."""
    temperature: float = 0.7
    """Sampling temperature."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    max_new_tokens: int = 128
    """Completion length cap in tokens (a truncated completion fails the 'length' filter)."""
    template: str = "chat"
    """Prompt template: 'chat', 'r1_zero', 'plain', 'qa', or a string with {prompt}."""
    system_prompt: str = ""
    """System message for the chat template."""
    few_shot: str = ""
    """Cold start: '' (no demonstrations), 'r1' (built-in <think>/<answer> demos with checking and correction) or a JSONL of {question, response} demos."""
    n_shots: int = 0
    """Demonstrations to use (0 = all of them)."""
    verifier: str = ""
    """Reward spec that decides correctness ('' = the task's correctness reward); its score is recorded."""
    filters: tuple = ("correct", "format", "language", "length", "repetition", "duplicate")
    """Filters a kept sample must pass, in order: correct, format, language, length, repetition, duplicate."""
    min_reward: float = 1.0
    """'correct': the verifier score a sample needs."""
    min_tokens: int = 1
    """'length': fewest completion tokens."""
    max_tokens: int = 0
    """'length': most completion tokens (0 = only the max_new_tokens cap)."""
    max_repetition: float = 0.3
    """'repetition': highest share of repeated word 4-grams."""
    script: str = "latin"
    """'language': the script the text must be written in ('latin' or 'cjk')."""
    min_language_share: float = 1.0
    """'language': least share of words in that script (R1's language-consistency measure)."""
    max_per_prompt: int = 1
    """Most samples kept per prompt (0 = all that pass)."""
    target_size: int = 0
    """Stop once this many rows are kept (0 = use every prompt)."""
    prompts_per_batch: int = 8
    """Prompts sampled together (each gets k completions)."""
    out: str = "samples.jsonl"
    """The dataset file to write."""
    resume: bool = False
    """Continue an interrupted run with the same out."""
    stop_after: int = 0
    """Stop after this many batches, as if interrupted (0 = off; for tests and scheduling)."""
    seed: int = 0
    """Seed of the prompt order and of sampling."""


@dataclass
class SampleResult:
    """What a sampling run produced: the file (final when ``finished``) and its summary."""

    path: Path
    finished: bool
    summary: dict


def checkpoint_step(model: str) -> int | None:
    """The training step of a checkpoint folder ``.../step_000010`` (None for other models)."""
    m = re.fullmatch(r"step_(\d+)", Path(model).name)
    return int(m.group(1)) if m and Path(model).is_dir() else None


def _paths(out: Path) -> tuple[Path, Path, Path]:
    return (out.with_name(out.name + ".partial"), out.with_name(out.name + ".progress.json"),
            out.with_name(out.stem + ".summary.json"))


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    tmp.replace(path)


def _keep_lines(path: Path, n: int) -> None:
    """Drop lines after the first ``n`` (rows of a batch whose progress was never recorded)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
    if len(lines) != n:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(lines[:n]), encoding="utf-8")
        tmp.replace(path)


def _check(cfg: SampleConfig) -> None:
    check_names(list(cfg.filters))
    if cfg.split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {cfg.split!r}")
    if cfg.k < 1 or cfg.prompts_per_batch < 1:
        raise ValueError("k and prompts_per_batch must be >= 1")
    if cfg.temperature <= 0 and cfg.k > 1:
        raise ValueError("temperature 0 is greedy: k > 1 samples would be identical; use temperature > 0 or k = 1")


def sample(cfg: SampleConfig) -> SampleResult:
    """Run rejection sampling as configured (module docstring)."""
    _check(cfg)
    out = Path(cfg.out)
    partial, progress_path, summary_path = _paths(out)
    if out.exists():
        if cfg.resume:
            return SampleResult(out, True, json.loads(summary_path.read_text()) if summary_path.exists() else {})
        raise FileExistsError(f"{out} already exists: choose another --out, or delete it")
    if partial.exists() and not cfg.resume:
        raise FileExistsError(f"an unfinished sampling run is at {partial}: pass --resume true to continue it, "
                              "or delete it")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = load_task(cfg.task, **cfg.task_options)
    examples = list(task.train if cfg.split == "train" else task.heldout)
    random.Random(cfg.seed).shuffle(examples)
    examples = examples[:cfg.n_prompts] if cfg.n_prompts else examples
    if not examples:
        raise ValueError(f"task {cfg.task!r} has no {cfg.split} prompts")
    verifier = cfg.verifier or task.correctness
    specs = rw.build({verifier: 1.0})
    demos = load_demos(cfg.few_shot, cfg.n_shots) if cfg.few_shot else None
    model, tok = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    engine = HFEngine(model, tok)
    params = SamplingParams(cfg.temperature, cfg.top_p, cfg.max_new_tokens)
    settings = FilterSettings(cfg.min_reward, cfg.min_tokens, cfg.max_tokens, cfg.max_repetition, 4, cfg.script,
                              cfg.min_language_share)
    state = {"batches": 0, "rows": 0, "candidates": 0, "prompts": 0, "rejected": {}}
    if cfg.resume and progress_path.exists():
        state = json.loads(progress_path.read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    _keep_lines(partial, state["rows"])
    _write_json(progress_path, state)
    step = checkpoint_step(cfg.model)
    common = {"model": cfg.model, "model_step": step, "task": task.name, "split": cfg.split, "verifier": verifier,
              "filters": list(cfg.filters), "few_shot": cfg.few_shot or None, "template": cfg.template,
              "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": cfg.seed}

    def prompt_text(ex) -> str:
        q = task.question_text(ex)
        system = cfg.system_prompt or None
        return render_few_shot(tok, demos, q, cfg.template, system) if demos else render(tok, q, cfg.template, system)

    n_batches = -(-len(examples) // cfg.prompts_per_batch)
    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=n_batches, initial=state["batches"], desc="sample", dynamic_ncols=True)
    done_now = 0
    try:
        while state["batches"] < n_batches and not (cfg.target_size and state["rows"] >= cfg.target_size):
            b = state["batches"]
            chunk = examples[b * cfg.prompts_per_batch:(b + 1) * cfg.prompts_per_batch]
            rows, cands, rejected = _one_batch(cfg, b, chunk, engine, prompt_text, task, specs, params, settings, common)
            if cfg.target_size:
                rows = rows[:cfg.target_size - state["rows"]]
            with open(partial, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())
            for name, n in rejected.items():
                state["rejected"][name] = state["rejected"].get(name, 0) + n
            state.update(batches=b + 1, rows=state["rows"] + len(rows), candidates=state["candidates"] + cands,
                         prompts=state["prompts"] + len(chunk))
            _write_json(progress_path, state)
            done_now += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(kept=state["rows"])
            if cfg.stop_after and done_now >= cfg.stop_after and state["batches"] < n_batches:
                print(f"Stopped after {state['batches']} batches; continue with --resume true", flush=True)
                return SampleResult(partial, False, state)
    finally:
        if bar is not None:
            bar.close()
    if state["rows"] == 0:
        raise ValueError(f"no sample passed the filters {list(cfg.filters)} ({state['candidates']} candidates, "
                         f"rejected by: {state['rejected']}); sample more (k, n_prompts), raise max_new_tokens, "
                         "or loosen the filters")
    summary = {**common, "prompts": state["prompts"], "candidates": state["candidates"], "kept": state["rows"],
               "target_size": cfg.target_size, "rejected": state["rejected"], "config": to_dict(cfg)}
    if cfg.target_size and state["rows"] < cfg.target_size:
        summary["short_by"] = cfg.target_size - state["rows"]
        print(f"warning: only {state['rows']} of the {cfg.target_size} requested rows passed the filters; "
              "raise k or n_prompts, or loosen the filters", file=sys.stderr)
    _write_json(summary_path, summary)
    partial.replace(out)
    progress_path.unlink()
    print(f"Kept {state['rows']} of {state['candidates']} samples -> {out}", flush=True)
    return SampleResult(out, True, summary)


def _one_batch(cfg, b, chunk, engine, prompt_text, task, specs, params, settings, common):
    """Sample, verify and filter one batch of prompts -> (rows, candidates, rejections by filter)."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + b)
    got = generate_and_score(engine, chunk, cfg.k, params, specs, prompt_text, generator=gen)
    rollout, reward = got.rollout, got.scores.per_fn[specs[0].name]
    rows, rejected = [], {}
    for j, ex in enumerate(chunk):
        idx = range(j * cfg.k, (j + 1) * cfg.k)
        cands = [Candidate(rollout.completions[i], int(rollout.lengths[i]), bool(rollout.truncated[i]), reward[i])
                 for i in idx]
        for s in select(cands, list(cfg.filters), settings, cfg.max_per_prompt, rejected):
            c = cands[s]
            rows.append({"id": f"{ex.id}-s{s}", "prompt": task.question_text(ex), "response": c.text,
                         "answer": ex.answer, "data_source": ex.columns.get("data_source"),
                         "provenance": {**common, "prompt_id": ex.id, "sample": s, "reward": c.reward,
                                        "tokens": c.tokens, "filters_passed": list(cfg.filters)}})
    return rows, len(chunk) * cfg.k, rejected


def main(argv: list[str] | None = None) -> int:
    """``grpokit sample [--config FILE] [--key value ...]``."""

    ap = argparse.ArgumentParser(prog="grpokit sample", description=(
        "Rejection sampling: k completions per prompt from a model or checkpoint, verified and filtered into a "
        "JSONL dataset with provenance. Also makes cold-start data (--few_shot r1) and distillation data "
        "(--model TEACHER_CHECKPOINT)."))
    ap.add_argument("--config", help="YAML file of config keys")
    add_config_args(ap, SampleConfig)
    args = ap.parse_args(argv)
    try:
        cfg = make(SampleConfig, args.config, overrides_from(args, SampleConfig))
        sample(cfg)
    except KeyboardInterrupt:
        print("Interrupted; finished batches are kept: re-run with --resume true", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"grpokit sample: error: {e}", file=sys.stderr)
        return 2
    return 0
