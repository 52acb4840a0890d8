"""The pipeline's held-out evaluation stage, and the side-by-side table of finished pipelines.

The numbers DeepSeek-R1 reports for R1-Zero vs R1 (§3, and the readability discussion of §2.3), from
the one evaluator (:func:`grpokit.evaluation.accuracy.evaluate`, also behind ``grpokit eval``):

- ``pass@1``: correctness averaged over ``k`` samples per question at temperature 0.6, top-p 0.95
  (R1 §3.1), with the standard error across questions (:func:`grpokit.evaluation.estimators.mean_at_k`);
- ``behaviour/format_rate``: share of samples in the ``<think>...</think><answer>...</answer>`` layout;
- ``language_consistency``: mean share of target-script words in a sample's reasoning, the value the
  ``language_consistency`` reward gives (R1's measure, :func:`grpokit.rewards.shaping.language_share`;
  a reasoning without words counts 0, as in the reward);
- ``behaviour/length_mean`` (tokens), ``behaviour/reflection_per_1k`` and ``behaviour/reflection_frac``
  (reflective words, :mod:`grpokit.evaluation.behaviour`).

The stage writes ``result.json`` (all of it), ``eval.jsonl`` (one line, so ``grpokit report`` reads the
stage folder like a run) and ``samples.jsonl`` (every sample with its grade).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grpokit import models
from grpokit.config import ComputeOptions, to_dict
from grpokit.datagen.sample import _write_json, checkpoint_step
from grpokit.evaluation.accuracy import EvalSettings, evaluate
from grpokit.records import json_safe
from grpokit.rewards.format import is_r1_format
from grpokit.rewards.shaping import language_share, reasoning_text
from grpokit.rollout import HFEngine
from grpokit.tasks import load_task

COMPARED = (("pass@1", "held-out pass@1"), ("behaviour/format_rate", "format compliance"),
            ("language_consistency", "language consistency"), ("behaviour/length_mean", "mean length (tokens)"),
            ("behaviour/reflection_per_1k", "reflective words per 1k tokens"),
            ("behaviour/reflection_frac", "share with a reflective word"))
"""Rows of the comparison table: (result key, label)."""


@dataclass(frozen=True)
class EvalConfig(ComputeOptions):
    model: str = "smollm2-135m"
    """Model or checkpoint to evaluate."""
    task: str = "add2"
    """Task whose held-out split is used."""
    task_options: dict = field(default_factory=dict)
    """Options passed to the task."""
    n: int = 0
    """Held-out questions (0 = all)."""
    k: int = 4
    """Samples per question; pass@1 is their mean correctness."""
    temperature: float = 0.6
    """Sampling temperature (R1 evaluates at 0.6)."""
    top_p: float = 0.95
    """Nucleus mass (R1: 0.95)."""
    max_new_tokens: int = 128
    """Completion cap."""
    template: str = "chat"
    """Prompt template (the one the model was trained with)."""
    system_prompt: str = ""
    """System message for the chat template."""
    correctness: str = ""
    """Reward spec that grades (1.0 = correct); '' = the task's correctness reward."""
    script: str = "latin"
    """Target script of language consistency."""
    prompts_per_batch: int = 16
    """Questions sampled together."""
    seed: int = 0
    """Sampling seed."""
    out: str = ""
    """Folder for result.json, eval.jsonl and samples.jsonl."""


def evaluate_model(cfg: EvalConfig) -> dict:
    """Sample, grade and measure (module docstring) with the one evaluator; writes ``cfg.out`` when set."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = load_task(cfg.task, **cfg.task_options)
    examples = task.heldout[:cfg.n] if cfg.n else task.heldout
    if not examples:
        raise ValueError(f"task {cfg.task!r} has no held-out questions to evaluate")
    model, tok = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    settings = EvalSettings(k=cfg.k, k_values=(cfg.k,), greedy=False, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, template=cfg.template, system=cfg.system_prompt,
                            batch_size=cfg.prompts_per_batch * cfg.k, seed=cfg.seed)
    res = evaluate(HFEngine(model, tok), tok, task, examples, settings, correctness=cfg.correctness or None,
                   format_fn=is_r1_format, progress=cfg.progress)
    samples = [{k: s[k] for k in ("id", "sample", "text", "correct")} for s in res.per_sample]
    summary = {k: v for k, v in res.summary.items() if k not in ("task", "k", "note")}
    result = {"model": cfg.model, "model_step": checkpoint_step(cfg.model), "task": task.name, "k": cfg.k, **summary,
              # the language_consistency reward's own value (its reasoning text, its word count)
              "language_consistency": sum(language_share(reasoning_text(s["text"]), cfg.script) for s in samples) / len(samples),
              "config": to_dict(cfg)}
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
        line = {"step": result["model_step"] or 0, **{k: v for k, v in result.items() if k != "config"}}
        (out / "eval.jsonl").write_text(json.dumps(json_safe(line)) + "\n", encoding="utf-8")
        _write_json(out / "result.json", json_safe(result))
    print(f"[eval] {cfg.model}: pass@1 {result['pass@1']:.1%} ± {result['pass@1_se']:.1%}, format "
          f"{result['behaviour/format_rate']:.1%}, language {result['language_consistency']:.1%} "
          f"(n={len(examples)}, k={cfg.k})", flush=True)
    return result


def _fmt(v) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def comparison_table(runs: list[tuple[str, dict, dict]]) -> str:
    """Markdown table of ``(name, final eval result, budget)`` per pipeline run, side by side."""
    head = "| metric | " + " | ".join(name for name, _, _ in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for key, label in COMPARED:
        cells = []
        for _, res, _ in runs:
            v, se = res.get(key), res.get(f"{key}_se")
            cells.append(_fmt(v) + (f" ± {se:.3f}" if isinstance(se, float) and math.isfinite(se) else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| questions x samples | " + " | ".join(f"{r.get('n_questions')} x {r.get('k')}" for _, r, _ in runs) + " |")
    for key, label in (("sequences", "budget: sequences sampled or trained on"), ("seconds", "budget: wall-clock seconds")):
        lines.append(f"| {label} | " + " | ".join(_fmt(b.get(key)) for _, _, b in runs) + " |")
    return "\n".join(lines) + "\n"
