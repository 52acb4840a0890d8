"""Stage kinds: what ``kind: rl | sft | sample | mix | eval`` in a recipe runs.

Each kind is one function ``run(params, stage_dir, progress) -> Outcome`` plus its config class and
the outputs later stages may reference (``${stage.model}``, ``${stage.data}``, ...). A kind resumes
from what its folder holds: ``rl`` and ``sft`` from their latest checkpoint (a folder with no
checkpoint yet starts over), ``sample`` from its finished batches; ``mix`` and ``eval`` just run again.

- ``rl``: :func:`grpokit.train.loop.train` with a :class:`grpokit.config.TrainConfig`. ``rewards`` may
  use the structured form of :func:`grpokit.rewards.by_source.structured_specs`.
- ``sft``: :func:`grpokit.train.sft.train_sft` with a :class:`grpokit.train.sft.SFTConfig`.
- ``sample``: :func:`grpokit.datagen.sample.sample` (rejection sampling, cold start, distillation data).
- ``mix``: the prompt set of R1's final RL stage: the task's prompts plus general prompts
  (``data_source: general``), the latter only when a reward model will grade them.
- ``eval``: :func:`grpokit.pipeline.evaluate.evaluate_model` on the held-out split.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grpokit.config import TrainConfig, make
from grpokit.run_folder import RunReader, read_jsonl
from grpokit.train import checkpoint as ckpt
from grpokit.rewards.by_source import structured_specs
from grpokit.train.loop import train
from grpokit.train.sft import SFTConfig, train_sft
from grpokit.datagen.sample import SampleConfig, sample
from grpokit.tasks import load_task
from grpokit.pipeline.evaluate import EvalConfig, evaluate_model

MANIFEST = "manifest.json"


@dataclass
class Outcome:
    """A stage run's result: finished or stopped early, its outputs (paths) and what it cost."""

    finished: bool
    outputs: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    config: type
    run: Callable[[dict, Path, bool], Outcome]
    outputs: tuple[str, ...]


def clear(stage_dir: Path) -> None:
    """Empty a stage folder except its manifest (what it held cannot be resumed)."""
    if stage_dir.is_dir():
        for p in stage_dir.iterdir():
            if p.name != MANIFEST:
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def _resume_or_clear(stage_dir: Path) -> bool:
    if ckpt.latest(stage_dir) is not None:
        return True
    clear(stage_dir)
    return False


def run_rl(params: dict, stage_dir: Path, progress: bool) -> Outcome:
    p = dict(params)
    if isinstance(p.get("rewards"), dict):
        p["rewards"] = structured_specs(p["rewards"])
    resume = _resume_or_clear(stage_dir)
    cfg = make(TrainConfig, overrides={**p, "out": str(stage_dir), "resume": resume, "progress": progress})
    train(cfg)
    state = RunReader(stage_dir).status().get("state")
    return Outcome(state == "finished", {"model": ckpt.latest(stage_dir), "run": stage_dir},
                   {"sequences": cfg.steps * cfg.prompts_per_step * cfg.group_size})


def run_sft(params: dict, stage_dir: Path, progress: bool) -> Outcome:
    resume = _resume_or_clear(stage_dir)
    cfg = make(SFTConfig, overrides={**params, "out": str(stage_dir), "resume": resume, "progress": progress})
    train_sft(cfg)
    reader = RunReader(stage_dir)
    return Outcome(reader.status().get("state") == "finished", {"model": ckpt.latest(stage_dir), "run": stage_dir},
                   {"sequences": sum(m.get("sft/sequences", 0) for m in reader.metrics())})


def run_sample(params: dict, stage_dir: Path, progress: bool) -> Outcome:
    stage_dir.mkdir(parents=True, exist_ok=True)
    cfg = make(SampleConfig, overrides={**params, "out": str(stage_dir / "data.jsonl"), "resume": True,
                                        "progress": progress})
    res = sample(cfg)
    return Outcome(res.finished, {"data": res.path} if res.finished else {},
                   {"sequences": res.summary.get("candidates", 0), "rows": res.summary.get("kept")})


@dataclass(frozen=True)
class MixConfig:
    task: str = "add2"
    """The reasoning task (rows keep their data_source, 'math' when they have none)."""
    task_options: dict = field(default_factory=dict)
    """Options passed to the task."""
    general: str = ""
    """JSONL of general prompts ({question} rows), graded by the reward model."""
    reward_model: str = ""
    """The classifier that will grade the general prompts; '' = leave them out (reasoning prompts only)."""
    general_fraction: float = 0.25
    """Share of general prompts in the training rows (they repeat to reach it)."""
    seed: int = 0
    """Seed of the row order."""


def run_mix(params: dict, stage_dir: Path, progress: bool) -> Outcome:
    cfg = make(MixConfig, overrides=params)
    if not 0 <= cfg.general_fraction < 1:
        raise ValueError(f"mix: general_fraction must be in [0, 1), got {cfg.general_fraction}")
    task = load_task(cfg.task, **cfg.task_options)

    def row(ex) -> dict:
        return {"question": task.question_text(ex), "answer": ex.answer, **ex.columns,
                "data_source": ex.columns.get("data_source") or "math"}

    rows = [row(ex) for ex in task.train]
    n_general = 0
    if cfg.reward_model and cfg.general and cfg.general_fraction > 0:
        general = read_jsonl(cfg.general)
        if not general or any("question" not in g for g in general):
            raise ValueError(f"mix: {cfg.general} must hold {{question}} rows")
        n_general = round(len(rows) * cfg.general_fraction / (1 - cfg.general_fraction))
        rows += [{"question": general[i % len(general)]["question"], "answer": None, "data_source": "general"}
                 for i in range(n_general)]
    random.Random(cfg.seed).shuffle(rows)
    stage_dir.mkdir(parents=True, exist_ok=True)
    train_path, heldout_path = stage_dir / "train.jsonl", stage_dir / "heldout.jsonl"
    for path, data in ((train_path, rows), (heldout_path, [row(ex) for ex in task.heldout])):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
        tmp.replace(path)
    if cfg.general and not cfg.reward_model:
        print("mix: no reward model given, so the general prompts are left out (final RL on reasoning prompts only)")
    return Outcome(True, {"data": train_path, "heldout": heldout_path},
                   {"rows": len(rows), "general_rows": n_general})


def run_eval(params: dict, stage_dir: Path, progress: bool) -> Outcome:
    cfg = make(EvalConfig, overrides={**params, "out": str(stage_dir), "progress": progress})
    res = evaluate_model(cfg)
    return Outcome(True, {"result": stage_dir / "result.json"},
                   {"pass@1": res["pass@1"], "format_rate": res.get("behaviour/format_rate")})


def _configs() -> dict[str, type]:
    return {"rl": TrainConfig, "sft": SFTConfig, "sample": SampleConfig, "mix": MixConfig, "eval": EvalConfig}


RUNNERS = {"rl": (run_rl, ("model", "run")), "sft": (run_sft, ("model", "run")), "sample": (run_sample, ("data",)),
           "mix": (run_mix, ("data", "heldout")), "eval": (run_eval, ("result",))}
"""kind -> (run function, output names)."""
MANAGED = {"rl": ("out", "resume", "progress"), "sft": ("out", "resume", "progress"),
           "sample": ("out", "resume", "progress"), "mix": (), "eval": ("out", "progress")}
"""Fields the pipeline sets itself (a recipe may not)."""


def kinds() -> dict[str, Kind]:
    configs = _configs()
    return {name: Kind(configs[name], fn, outs) for name, (fn, outs) in RUNNERS.items()}
