"""``grpokit rewards check``: see what the rewards of a task do with real completions, before training.

For each completion it prints the extracted answer, every reward and the weighted total, then a
summary that keeps apart the three reasons a completion earns nothing:

- ``format``: no gradable answer (no answer region, two different answers, too long, no code);
  the fix is the prompt / template / format reward, not the model's reasoning;
- ``wrong``: a well-formed answer that is not correct;
- ``unscorable``: a reward returned None or raised (a bad reference, a broken reward function).

Completions come from a list (canned, or read from a JSONL file) or from ``sample(questions) ->
completions per question``, where the CLI plugs in the rollout engine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TextIO

import torch

from grpokit import models
from grpokit.rewards import build, score
from grpokit.rewards.code import extract_code
from grpokit.rewards.generate import reward_columns
from grpokit.rewards.math import extract_answer
from grpokit.rollout import HFEngine, SamplingParams, render
from grpokit.tasks import load_task

CATEGORIES = ("correct", "wrong", "format", "unscorable")


@dataclass(frozen=True)
class Sampled:
    """One sampled completion with what the rollout engine knows about it."""

    text: str
    completion_ids: list[int] | None = None
    truncated: bool = False
    prompt: str | None = None  # the rendered prompt (lets format rewards see a pre-filled <think>)


@dataclass
class CheckRow:
    example_id: str
    index: int
    extracted: str | None
    extraction: str  # ok / missing / multiple / too_long / no_code
    rewards: dict[str, float | None]
    total: float
    category: str
    errors: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    rows: list[CheckRow]

    def counts(self) -> dict[str, int]:
        c = Counter(r.category for r in self.rows)
        return {k: c.get(k, 0) for k in CATEGORIES}

    def format_reasons(self) -> dict[str, int]:
        return dict(Counter(r.extraction for r in self.rows if r.category == "format"))


Sampler = Callable[[list[str]], Sequence[Sequence[str | Sampled]]]


def _extract(text: str, is_code: bool) -> tuple[str | None, str]:
    if is_code:
        code = extract_code(text)
        return (None, "no_code") if code is None else (f"<{len(code.splitlines())} lines of code>", "ok")
    ex = extract_answer(text)
    return ex.answer, ex.status


def check_rewards(task, completions: Sequence[Sequence[str | Sampled]] | None = None, sample: Sampler | None = None,
                  n: int = 32, split: str = "heldout", rewards: dict[str, float] | list[str] | None = None,
                  out: TextIO | None = None) -> CheckReport:
    """Score completions of the first ``n`` examples of ``task``'s ``split`` and print the report.

    ``completions[i]`` (or ``sample(questions)[i]``) holds the completions of example ``i``: strings
    or ``Sampled``. ``rewards`` overrides the task's reward specs.
    """
    out = out or sys.stdout
    if (completions is None) == (sample is None):
        raise ValueError("give either completions (canned) or sample (a function questions -> completions)")
    examples = list(getattr(task, split))[:n]
    if not examples:
        raise ValueError(f"task {task.name!r} has no {split} examples; use split='train' or 'heldout'")
    questions = [task.question_text(ex) for ex in examples]
    batches = list(completions) if completions is not None else list(sample(questions))
    if len(batches) < len(examples):
        raise ValueError(f"got completions for {len(batches)} examples, need {len(examples)}")
    specs = build(rewards if rewards is not None else task.rewards)
    correctness = task.correctness
    rows: list[CheckRow] = []
    for ex, q, batch in zip(examples, questions, batches):
        items = [c if isinstance(c, Sampled) else Sampled(str(c)) for c in batch]
        if not items:
            continue
        ids = [s.completion_ids or [] for s in items] if any(s.completion_ids is not None for s in items) else None
        cols = reward_columns([ex], len(items), truncated=[s.truncated for s in items], completion_ids=ids)
        prompts = [s.prompt if s.prompt is not None else q for s in items]
        scores = score(specs, prompts, [s.text for s in items], cols)
        print(f"== {ex.id}  reference: {_short(ex.answer)}", file=out)
        for j, s in enumerate(items):
            extracted, status = _extract(s.text, "tests" in ex.columns)
            per = {name: vals[j] for name, vals in scores.per_fn.items()}
            errs = [e["error"].strip().splitlines()[-1] for e in scores.errors if e["index"] == j]
            if not bool(scores.valid[j]) or errs:
                cat = "unscorable"
            elif status != "ok":
                cat = "format"
            elif per.get(correctness) == 1.0:
                cat = "correct"
            else:
                cat = "wrong"
            row = CheckRow(ex.id, j, extracted, status, per, float(scores.total[j]), cat, errs)
            rows.append(row)
            shown = _short(extracted) if status == "ok" else f"({status})"
            rs = " ".join(f"{k}={'None' if v is None else f'{v:.2f}'}" for k, v in per.items())
            print(f"  #{j:<3} {cat:<10} answer={shown:<24} {rs}  total={row.total:.2f}", file=out)
            for e in errs:
                print(f"       error: {e}", file=out)
    report = CheckReport(rows)
    _summary(report, specs, out)
    return report


def _short(v: Any, width: int = 40) -> str:
    s = repr(v) if not isinstance(v, str) else v
    s = s.replace("\n", "\\n")
    return s if len(s) <= width else s[: width - 3] + "..."


def _summary(report: CheckReport, specs, out: TextIO) -> None:
    n = len(report.rows)
    counts = report.counts()
    print(f"\n{n} completions: " + ", ".join(f"{k} {v} ({v / max(n, 1):.0%})" for k, v in counts.items()), file=out)
    if counts["format"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.format_reasons().items()))
        print(f"  format failures by reason: {reasons}", file=out)
    for s in specs:
        vals = [r.rewards[s.name] for r in report.rows if r.rewards.get(s.name) is not None]
        mean = sum(vals) / len(vals) if vals else float("nan")
        print(f"  {s.name} (weight {s.weight:g}): mean {mean:.3f} over {len(vals)} scored", file=out)


def read_completions(path: str, task, split: str = "heldout") -> tuple[list[list[str]], list]:
    """A JSONL file of ``{"id": example id, "completions": [str, ...]}`` -> (per-example completion
    lists, the examples they belong to), in split order."""
    by_id: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row.get("id"), str) or not isinstance(row.get("completions"), list):
                    raise ValueError(f"{path}:{lineno}: need {{'id': str, 'completions': [str, ...]}}")
                by_id.setdefault(row["id"], []).extend(map(str, row["completions"]))
    examples = [ex for ex in getattr(task, split) if ex.id in by_id]
    if not examples:
        raise ValueError(f"{path}: no line names an example id of task {task.name!r} ({split} split)")
    return [by_id[ex.id] for ex in examples], examples


def make_sampler(model_spec: str, g: int, *, template: str = "chat", system: str = "", temperature: float = 1.0,
                 max_new_tokens: int = 256, seed: int = 0, device: str = "auto"):
    """``sample(questions)``: ``g`` completions per question from the rollout engine, each question
    rendered with the chat template (or a named template) exactly as training does."""
    model, tok = models.load(model_spec, device=device)
    engine = HFEngine(model, tok)
    gen = torch.Generator().manual_seed(seed)
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)

    def sample(questions: list[str]) -> list[list[Sampled]]:
        prompts = [render(tok, q, template, system or None) for q in questions]
        r = engine.generate(prompts, g, params, gen)
        ids = r.token_ids()
        return [[Sampled(r.completions[i * g + j], ids[i * g + j], bool(r.truncated[i * g + j]), prompts[i])
                 for j in range(g)] for i in range(len(questions))]

    return sample


def main(argv: list[str] | None = None, make_sampler: Callable[[str, int], Sampler] | None = None) -> int:
    """``grpokit rewards check --task NAME [--model M | --completions FILE] [-n 32] [-g 4]``.

    ``make_sampler(model, g)`` (default :func:`make_sampler`) returns ``sample(questions)`` giving
    ``g`` completions per question from the rollout engine.
    """
    make_sampler = make_sampler or globals()["make_sampler"]

    ap = argparse.ArgumentParser(prog="grpokit rewards check", description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, help="task name (add2, gsm8k, gym:<dataset>, a .jsonl path, ...)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="sample completions from this model")
    src.add_argument("--completions", help='JSONL file of {"id": example id, "completions": [...]}')
    ap.add_argument("-n", type=int, default=32, help="examples to check (default 32)")
    ap.add_argument("-g", type=int, default=4, help="completions per example when sampling (default 4)")
    ap.add_argument("--split", choices=("heldout", "train"), default="heldout")
    ap.add_argument("--reward", action="append", help="reward spec to use instead of the task's (repeatable)")
    args = ap.parse_args(argv)
    task = load_task(args.task)
    if args.completions:
        batches, examples = read_completions(args.completions, task, args.split)
        task = _with_split(task, args.split, examples)
        report = check_rewards(task, completions=batches, n=args.n, split=args.split, rewards=args.reward)
    else:
        report = check_rewards(task, sample=make_sampler(args.model, args.g), n=args.n, split=args.split,
                               rewards=args.reward)
    return 0 if report.rows else 1


def _with_split(task, split: str, examples):
    from dataclasses import replace

    return replace(task, **{split: examples})
