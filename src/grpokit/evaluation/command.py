"""``grpokit eval``: evaluate a model, checkpoint or run folder on a task's held-out split (or a file).

``--model`` takes an alias (``smollm2-135m``), a Hugging Face folder, a checkpoint
(``RUN/checkpoints/step_000020``) or a run folder (its latest checkpoint). For a run or one of its
checkpoints the task, template, system prompt and completion cap default to the run's
``config.yaml``, so "after training" is measured the way training saw the task. Output: a table of every estimate with its standard error
and 95% interval on stdout, and with ``--out DIR`` the files of
:func:`grpokit.evaluation.runner.write_eval` plus ``settings.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import yaml

from grpokit.evaluation import R1_TEMPERATURE, R1_TOP_P
from grpokit.run_folder import latest as latest_checkpoint
from grpokit import models
from grpokit.evaluation.accuracy import EvalSettings, evaluate
from grpokit.evaluation.runner import format_summary
from grpokit.rollout import HFEngine, render
from grpokit.tasks import load_task
from grpokit.rollout.multiturn import EpisodeEngine

SPLITS = ("heldout", "train", "all")


def add_arguments(e: argparse.ArgumentParser) -> None:
    """The ``grpokit eval`` options (used by :mod:`grpokit.cli`)."""
    e.add_argument("--model", default="smollm2-135m",
                   help="model alias, Hugging Face folder, checkpoint, or run folder (its latest checkpoint and "
                        "its config's task/template) (default: smollm2-135m)")
    e.add_argument("--task", default=None, help="task name or .jsonl/.parquet file (default: the run's task, else add2)")
    e.add_argument("--task-options", dest="task_options", default=None,
                   help="task options as YAML, e.g. '{heldout_size: 500}' (default: the run's, else none)")
    e.add_argument("--split", choices=SPLITS, default="heldout", help="which examples (default: heldout)")
    e.add_argument("-n", type=int, default=0, help="evaluate the first N questions of the split (0 = all)")
    e.add_argument("-k", type=int, default=4,
                   help="sampled completions per question for pass@1 / pass@k / cons@k (0 = greedy only; default 4)")
    e.add_argument("--pass-k", dest="pass_k", default="",
                   help="comma-separated k values for pass@k and cons@k, each <= -k (default: 1, 2, 4, ... and k)")
    e.add_argument("--temperature", type=float, default=R1_TEMPERATURE,
                   help=f"sampling temperature of the k samples (default {R1_TEMPERATURE}, as R1)")
    e.add_argument("--top-p", dest="top_p", type=float, default=R1_TOP_P,
                   help=f"nucleus mass of the k samples (default {R1_TOP_P}, as R1)")
    e.add_argument("--no-greedy", dest="greedy", action="store_false", help="skip the greedy decode (greedy_acc)")
    e.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=None,
                   help="completion cap (default: the run's eval/training cap, else 64)")
    e.add_argument("--template", default=None, help="prompt template (default: the run's, else chat)")
    e.add_argument("--system-prompt", dest="system_prompt", default=None, help="system message (default: the run's, else none)")
    e.add_argument("--correctness", default=None,
                   help="reward that decides correctness (default: the task's, e.g. final_number for add2)")
    e.add_argument("--batch-size", dest="batch_size", type=int, default=64, help="sequences per generation call (default 64)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda")
    e.add_argument("--dtype", default="auto", help="auto, fp32, bf16")
    e.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    e.add_argument("--seed", type=int, default=0, help="sampling seed")
    e.add_argument("--out", default=None,
                   help="write summary.json, summary.txt, per_question.jsonl, per_sample.jsonl, settings.json here")
    e.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    e.add_argument("--no-tools", dest="tools", action="store_false",
                   help="multi-turn tool tasks (e.g. calculator_mul): answer in one turn without the tools and "
                        "without the tool instruction (the no-tool baseline on the same questions)")


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--pass-k {text!r}: give comma-separated integers, e.g. 1,4,8") from None


def resolve_model(spec: str) -> tuple[str, dict]:
    """``--model`` -> (what ``models.load`` takes, the run's config when ``spec`` is a run folder or one of
    its checkpoints; else ``{}``)."""

    p = Path(spec).expanduser()
    if p.is_dir() and (p / "config.yaml").exists() and not (p / "config.json").exists():
        last = latest_checkpoint(p)
        if last is None:
            raise FileNotFoundError(f"run folder {p} has no finished checkpoint in {p / 'checkpoints'}; "
                                    "pass a checkpoint folder or let the run save one")
        return str(last), yaml.safe_load((p / "config.yaml").read_text(encoding="utf-8")) or {}
    run_cfg = p.parent.parent / "config.yaml"  # RUN/checkpoints/step_000020: the run's settings still apply
    if p.is_dir() and p.parent.name == "checkpoints" and run_cfg.exists():
        return spec, yaml.safe_load(run_cfg.read_text(encoding="utf-8")) or {}
    return spec, {}


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; print the table; write files with ``--out``."""
    import torch


    if args.n < 0:
        raise ValueError(f"-n must be >= 0 (0 = all), got {args.n}")
    model_path, run_cfg = resolve_model(args.model)
    task_name = args.task or run_cfg.get("task") or "add2"
    if args.task_options is not None:
        options = yaml.safe_load(args.task_options) or {}
        if not isinstance(options, dict):
            raise ValueError(f"--task-options {args.task_options!r}: give a YAML mapping, e.g. '{{heldout_size: 500}}'")
    elif args.task:  # another task than the run's: the run's options were meant for its own task
        options = {}
    else:
        options = run_cfg.get("task_options") or {}
    task = load_task(task_name, **options)
    split = {"heldout": task.heldout, "train": task.train, "all": task.train + task.heldout}[args.split]
    examples = split[: args.n] if args.n else split
    settings = EvalSettings(
        k=args.k, k_values=_parse_ks(args.pass_k), greedy=args.greedy, temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens or run_cfg.get("eval_max_new_tokens") or run_cfg.get("max_new_tokens") or 64,
        template=args.template or run_cfg.get("template") or "chat",
        system=args.system_prompt if args.system_prompt is not None else run_cfg.get("system_prompt") or "",
        batch_size=args.batch_size, seed=args.seed)
    settings.ks()  # a bad --pass-k fails before the model loads
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = models.load(model_path, device=args.device, dtype=args.dtype)
    engine = HFEngine(model, tok)
    if task.env is not None and not args.tools:  # the same questions, one turn, no tool and no word of one
        task = dataclasses.replace(task, env=None, instruction="")
    if task.env is not None:  # a multi-turn task: each question runs as an episode, as in training

        engine = EpisodeEngine.for_task(engine, tok, task, lambda ex: render(tok, task.question_text(ex), settings.template,
                                                                              settings.system or None))
    res = evaluate(engine, tok, task, examples, settings, correctness=args.correctness)
    res.summary["tools"] = task.env is not None
    res.summary.update({"model": args.model, "checkpoint": model_path if model_path != args.model else None,
                        "split": args.split})

    s = res.summary
    sampled = (f", k={settings.k} samples at T={settings.temperature}, top-p={settings.top_p}" if settings.k else "")
    print(f"{args.model}" + (f" ({model_path})" if model_path != args.model else ""))
    print(f"{task.name}, {args.split} split, {s['n_questions']} questions{sampled}; "
          f"correct = reward {s['correctness']!r} == 1")
    print()
    print(format_summary(s), end="")
    if settings.k and not any(key.startswith("cons@") for key in s):
        print(f"\ncons@k: {s['votes']}")
    print(f"\n{s['time/generate']:.0f}s generating, {s['time/score']:.1f}s scoring; "
          f"truncated {s['truncated_frac']:.1%}, unscored {s['unscored']}, reward errors {s['reward_errors']}")
    if args.out:
        paths = res.write(args.out)
        settings_path = Path(args.out) / "settings.json"
        settings_path.write_text(json.dumps({"model": args.model, "checkpoint": s["checkpoint"], "task": task_name,
                                             "task_options": options, "split": args.split, "n": args.n,
                                             **{k: getattr(settings, k) for k in settings.__dataclass_fields__},
                                             "k_values": list(settings.ks())},
                                            indent=2, default=list) + "\n", encoding="utf-8")
        print(f"wrote {', '.join(p.name for p in paths.values())} and settings.json to {args.out}")
    if args.json:
        print(json.dumps(s, default=str))
    return 0
