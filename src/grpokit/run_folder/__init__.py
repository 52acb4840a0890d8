"""The run folder: what a training run writes, and a tolerant reader for it.

Layout (see docs/run-format.md)::

    RUN_DIR/
      config.yaml              the resolved config
      status.json              {"state": running|finished|failed|interrupted, "step", "error", ...}
      metrics.jsonl            one JSON object per optimizer step (namespaced keys, "step" first)
      eval.jsonl               one JSON object per held-out evaluation ("step", "greedy_acc", ...)
      rollouts/step_000001.jsonl  one JSON object per group of G completions
      checkpoints/step_000005/ Hugging Face model folder + trainer_state.pt
      events.log               reward errors and other notable events, one JSON object a line

Writers append whole lines and flush, so a reader sees a prefix of complete lines plus at most one
partial line, which it skips.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from grpokit.records import json_safe as _clean
from grpokit.run_folder.trackers import TrackerSet

ROLLOUT_DIR = "rollouts"
CHECKPOINT_DIR = "checkpoints"


def rollout_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / ROLLOUT_DIR / f"step_{step:06d}.jsonl"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:06d}"


def latest(run_dir: Path) -> Path | None:
    d = Path(run_dir) / CHECKPOINT_DIR
    done = [p for p in d.glob("step_*") if (p / "trainer_state.pt").exists() and not p.name.endswith(".tmp")]
    return max(done, key=lambda p: int(p.name.split("_")[1])) if done else None


class RunWriter:
    """Appends to a run folder. One writer per run (the training process)."""

    def __init__(self, run_dir: str | os.PathLike, trackers: list | None = None):
        """``trackers``: :func:`grpokit.run_folder.trackers.open_trackers`' list; they get copies of the metrics and evals."""
        self.dir = Path(run_dir)
        (self.dir / ROLLOUT_DIR).mkdir(parents=True, exist_ok=True)
        self.trackers = TrackerSet(trackers or [], on_error=lambda **e: self.log_event("tracker_error", **e))

    def _append(self, name: str | Path, record: dict) -> None:
        with open(self.dir / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(record), ensure_ascii=False) + "\n")
            f.flush()

    def write_config(self, config: dict) -> None:
        tmp = self.dir / "config.yaml.tmp"
        tmp.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        tmp.replace(self.dir / "config.yaml")

    def set_status(self, state: str, **extra: Any) -> None:
        rec = {"state": state, "updated": time.time(), "pid": os.getpid(), **extra}
        tmp = self.dir / "status.json.tmp"
        tmp.write_text(json.dumps(_clean(rec)), encoding="utf-8")
        tmp.replace(self.dir / "status.json")
        if state != "running":  # finished, failed, interrupted: the trackers' runs end with this process's
            self.trackers.close()

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        self._append("metrics.jsonl", {"step": step, **metrics})
        self.trackers.log(step, metrics)

    def log_eval(self, step: int, result: dict[str, Any]) -> None:
        self._append("eval.jsonl", {"step": step, **result})
        self.trackers.log(step, {f"eval/{k}": v for k, v in result.items()})

    def log_event(self, kind: str, **data: Any) -> None:
        self._append("events.log", {"time": time.time(), "kind": kind, **data})

    def log_groups(self, step: int, groups: list[dict[str, Any]]) -> None:
        path = rollout_path(self.dir, step)
        with open(path, "w", encoding="utf-8") as f:
            for g in groups:
                f.write(json.dumps(_clean({"step": step, **g}), ensure_ascii=False) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume: drop records of steps after ``step`` (they were not checkpointed)."""
        for name in ("metrics.jsonl", "eval.jsonl"):
            p = self.dir / name
            if not p.exists():
                continue
            keep = [r for r in read_jsonl(p) if r.get("step", 0) <= step]
            tmp = p.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
            tmp.replace(p)
        for p in (self.dir / ROLLOUT_DIR).glob("step_*.jsonl"):
            if int(p.stem.split("_")[1]) > step:
                p.unlink()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All complete JSON lines of ``path``; a partial or corrupt line is skipped, not fatal."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return out


class RunReader:
    """Reads a run folder that may still be written, be partial, or be corrupt."""

    def __init__(self, run_dir: str | os.PathLike):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise FileNotFoundError(f"run folder {self.dir} does not exist")

    def config(self) -> dict:
        p = self.dir / "config.yaml"
        return yaml.safe_load(p.read_text(encoding="utf-8")) if p.exists() else {}

    def status(self) -> dict:
        p = self.dir / "status.json"
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "unknown"}

    def metrics(self) -> list[dict]:
        return read_jsonl(self.dir / "metrics.jsonl")

    def evals(self) -> list[dict]:
        return read_jsonl(self.dir / "eval.jsonl")

    def events(self) -> list[dict]:
        return read_jsonl(self.dir / "events.log")

    def steps(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in (self.dir / ROLLOUT_DIR).glob("step_*.jsonl"))

    def groups(self, step: int) -> list[dict]:
        return read_jsonl(rollout_path(self.dir, step))

    def checkpoints(self) -> Iterator[Path]:
        d = self.dir / CHECKPOINT_DIR
        return iter(sorted(d.glob("step_*"))) if d.is_dir() else iter(())
