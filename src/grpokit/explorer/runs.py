"""The run folders the explorer was given, read safely, and shaped for the page.

The client never sends a path: it names a run by its index in the list the server was started
with, or by that run's sanitized name. Each reader call is wrapped so a run folder that is being
written, is partial, corrupt or deleted shows an error for that run (or that group), never a crash.

Every file is read through :class:`ConfinedReader`: its path is resolved (symlinks followed) and
refused unless it stays inside the run folder, so a symlink in a run folder cannot show a file
from elsewhere. A step's rollout dump is served a page of groups at a time (:func:`read_page`),
never whole: one line is one group, and a page stops at ``limit`` groups or ``MAX_PAGE_BYTES``.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from grpokit.explorer.scaling import SCALINGS, scale_group
from grpokit.run_folder import CHECKPOINT_DIR, ROLLOUT_DIR, RunReader, rollout_path
from grpokit.run_folder.config_keys import cfg_get, flatten

_RUN_MARKERS = ("config.yaml", "status.json", "metrics.jsonl", ROLLOUT_DIR)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
PAGE_GROUPS = 50
"""Groups per page of the step browser when the client does not say."""
MAX_PAGE_GROUPS = 500
MAX_PAGE_BYTES = 4_000_000
"""A page ends after the group that brings it past this many bytes of the dump (at least one group)."""
MAX_GROUP_BYTES = 8_000_000
"""A group (one line of the dump) larger than this is not parsed or sent; the page says so."""

# Config keys the summary shows, each with the spellings it may have ("/" = nesting).
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("model/name", "model/path", "model"),
    "task": ("task/name", "task"),
    "algorithm": ("algo/name", "algo/loss", "algorithm"),
    "advantage scale": ("algo/scale", "scale"),
    "critic": ("algo/use_critic", "use_critic"),
    "G (completions/prompt)": ("rollout/G", "rollout/num_generations", "algo/G", "G", "num_generations"),
    "prompts/step": ("rollout/B", "train/prompts_per_step", "B"),
    "learning rate": ("optim/lr", "train/lr", "lr", "learning_rate"),
    "KL beta": ("algo/beta", "beta"),
    "temperature": ("rollout/temperature", "temperature"),
    "steps": ("train/steps", "steps", "total_steps"),
}

# Metrics the critic-cost panel reads (the trainer writes them in metrics.jsonl; see docs/explorer.md).
COST_KEYS = {
    "policy_params": "model/policy_params",
    "critic_params": "model/critic_params",
    "peak_mb": "memory/peak_mb",
    "step_s": "time/step",
    "critic_s": "time/critic",
}


def _looks_like_run(d: Path) -> bool:
    return any((d / m).exists() for m in _RUN_MARKERS)


def expand_run_dirs(paths: list[str | os.PathLike]) -> list[Path]:
    """Each given folder, or, for a folder holding runs (``runs/``), each run inside it.

    Inside a folder of runs, a symlink that leads out of that folder is not taken as a run.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not _looks_like_run(p):
            root = p.resolve()
            kids = sorted(c for c in p.iterdir() if c.is_dir() and _looks_like_run(c)
                          and c.resolve().is_relative_to(root))
            if kids:
                out.extend(kids)
                continue
        out.append(p)
    return out


def confined(root: Path, *parts: str) -> Path:
    """``root/parts`` resolved; ``PermissionError`` if it (through a symlink or ``..``) leaves ``root``."""
    real = root.joinpath(*parts).resolve()
    if real != root and not real.is_relative_to(root):
        raise PermissionError(f"{'/'.join(parts)} leads outside the run folder (to {real}); "
                              "the explorer reads only files inside the run folder")
    return real


class ConfinedReader(RunReader):
    """A :class:`RunReader` that refuses every file whose resolved path leaves the (resolved) run folder.

    ``refused`` lists the checkpoints left out of :meth:`checkpoints` for that reason.
    """

    def __init__(self, run_dir: str | os.PathLike):
        super().__init__(run_dir)
        self.dir = self.dir.resolve()
        self.refused: list[str] = []

    def config(self) -> dict:
        confined(self.dir, "config.yaml")
        return super().config()

    def status(self) -> dict:
        confined(self.dir, "status.json")
        return super().status()

    def metrics(self) -> list[dict]:
        confined(self.dir, "metrics.jsonl")
        return super().metrics()

    def evals(self) -> list[dict]:
        confined(self.dir, "eval.jsonl")
        return super().evals()

    def events(self) -> list[dict]:
        confined(self.dir, "events.log")
        return super().events()

    def steps(self) -> list[int]:
        confined(self.dir, ROLLOUT_DIR)
        return super().steps()

    def groups(self, step: int) -> list[dict]:
        confined(self.dir, ROLLOUT_DIR, rollout_path(self.dir, step).name)
        return super().groups(step)

    def checkpoints(self):
        confined(self.dir, CHECKPOINT_DIR)
        kept = []
        for p in super().checkpoints():
            try:
                confined(self.dir, CHECKPOINT_DIR, p.name)
                kept.append(p)
            except PermissionError as e:
                self.refused.append(f"checkpoint {p.name}: {e}")
        return iter(kept)


def _read_line(f, cap: int) -> tuple[bytes | None, int, bool]:
    """The next line of binary file ``f``: ``(bytes or None if longer than cap, size, complete)``.

    ``complete`` is False at the end of the file and for a last line without its newline (a
    writer is still writing it). A line over ``cap`` is skipped in 1 MB reads, never held whole.
    """
    line = f.readline(cap + 1)
    if line.endswith(b"\n"):
        return line, len(line), True
    if len(line) <= cap:  # end of file
        return None, len(line), False
    size = len(line)
    while True:
        more = f.readline(1 << 20)
        size += len(more)
        if more.endswith(b"\n"):
            return None, size, True
        if len(more) < (1 << 20):
            return None, size, False


def read_page(path: Path, offset: int, limit: int, max_bytes: int = MAX_PAGE_BYTES,
              max_line: int = MAX_GROUP_BYTES) -> tuple[list[tuple[int, bytes | None, int]], int]:
    """Lines ``offset, offset+1, ...`` of ``path`` as ``(index, bytes or None if too big, size)``, and the line count.

    The page stops at ``limit`` lines or once it holds ``max_bytes`` (after at least one line); the
    lines after it are only counted. A partial last line (still being written) is not a line yet.
    """
    page: list[tuple[int, bytes | None, int]] = []
    used = total = 0
    with open(path, "rb") as f:
        while len(page) < limit and (used < max_bytes or not page):
            line, size, complete = _read_line(f, max_line)
            if not complete:
                return page, total
            if total >= offset:
                page.append((total, line, size))
                used += size if line is not None else 0
            total += 1
        for chunk in iter(lambda: f.read(1 << 20), b""):  # count the rest without holding it
            total += chunk.count(b"\n")
    return page, total


@dataclass(frozen=True)
class Run:
    index: int
    name: str
    path: Path


def _errors_to(errors: list[str], what: str, fn: Callable[[], Any], default: Any) -> Any:
    """``fn()``, or ``default`` with a line appended to ``errors`` naming ``what`` failed."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - any failure of one file must not take the page down
        errors.append(f"{what}: {type(e).__name__}: {e}")
        return default


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


class RunSet:
    """The fixed list of run folders the server may read. Nothing else on disk is reachable."""

    def __init__(self, paths: list[str | os.PathLike]):
        self.runs: list[Run] = []
        seen: set[str] = set()
        for i, p in enumerate(paths):
            path = Path(p).resolve()
            base = _SAFE.sub("_", path.name).strip("._") or "run"
            name, k = base, 2
            while name in seen:
                name, k = f"{base}-{k}", k + 1
            seen.add(name)
            self.runs.append(Run(i, name, path))

    def get(self, ref: str) -> Run | None:
        """A run by index (``"0"``) or sanitized name; ``None`` for anything else."""
        if re.fullmatch(r"[0-9]{1,9}", ref) and int(ref) < len(self.runs):
            return self.runs[int(ref)]
        return next((r for r in self.runs if r.name == ref), None)

    # ---- per-run views -------------------------------------------------------------------
    def summary(self, run: Run) -> dict[str, Any]:
        errors: list[str] = []
        out: dict[str, Any] = {"id": run.index, "name": run.name, "path": str(run.path)}
        reader = _errors_to(errors, "run folder", lambda: ConfinedReader(run.path), None)
        if reader is None:
            return {**out, "status": {"state": "missing"}, "errors": errors, "steps": [], "checkpoints": []}
        cfg = _errors_to(errors, "config.yaml", reader.config, {}) or {}
        if not isinstance(cfg, dict):
            errors.append(f"config.yaml: expected a mapping, got {type(cfg).__name__}")
            cfg = {}
        status = _errors_to(errors, "status.json", reader.status, {"state": "unknown"})
        if not isinstance(status, dict) or "state" not in status:
            errors.append("status.json: expected an object with a 'state'")
            status = {"state": "unknown"}
        out["status"] = status
        out["config"] = flatten(cfg) if cfg else {}
        out["summary"] = {label: v for label, keys in SUMMARY_KEYS.items()
                          if (v := cfg_get(cfg, *keys)) is not None and not isinstance(v, dict)}
        out["steps"] = _errors_to(errors, "rollouts", reader.steps, [])
        out["checkpoints"] = _errors_to(errors, "checkpoints", lambda: [p.name for p in reader.checkpoints()], [])
        errors += reader.refused
        out["use_critic"] = bool(cfg_get(cfg, "algo/use_critic", "use_critic", default=False))
        out["version"] = self._version(run)
        out["errors"] = errors
        return out

    def _version(self, run: Run) -> str:
        """Changes whenever a file the page shows changes (the page re-fetches only then)."""
        parts = []
        for name in ("status.json", "metrics.jsonl", "eval.jsonl", ROLLOUT_DIR):
            try:
                st = (run.path / name).stat()
                parts.append(f"{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                parts.append("-")
        return "|".join(parts)

    def series(self, run: Run) -> dict[str, Any]:
        """Numeric metrics and evals, one record per step, for the curves."""
        errors: list[str] = []
        reader = _errors_to(errors, "run folder", lambda: ConfinedReader(run.path), None)
        if reader is None:
            return {"metrics": [], "evals": [], "errors": errors}

        def numeric(records: list) -> list[dict[str, float]]:
            rows = []
            for r in records:
                if isinstance(r, dict) and _num(r.get("step")) is not None:
                    rows.append({k: v for k, v in r.items() if _num(v) is not None})
            return rows

        return {"metrics": numeric(_errors_to(errors, "metrics.jsonl", reader.metrics, [])),
                "evals": numeric(_errors_to(errors, "eval.jsonl", reader.evals, [])),
                "errors": errors}

    def cost(self, run: Run) -> dict[str, Any]:
        """The run's own measurements of what it cost (see ``COST_KEYS``); ``None`` where not logged."""
        rows = self.series(run)["metrics"]

        def vals(key: str) -> list[float]:
            return [r[key] for r in rows if key in r]

        def last(key: str) -> float | None:
            v = vals(key)
            return v[-1] if v else None

        step_s, critic_s = vals(COST_KEYS["step_s"]), vals(COST_KEYS["critic_s"])
        peak = vals(COST_KEYS["peak_mb"])
        return {"policy_params": last(COST_KEYS["policy_params"]),
                "critic_params": last(COST_KEYS["critic_params"]),
                "peak_mb": max(peak) if peak else None,
                "step_s": statistics.median(step_s) if step_s else None,
                "critic_s": statistics.median(critic_s) if critic_s else None,
                "steps_measured": len(step_s), "keys": COST_KEYS}

    def step(self, run: Run, step: int, offset: int = 0, limit: int = PAGE_GROUPS) -> dict[str, Any]:
        """Groups ``offset..offset+limit-1`` of step ``step`` (fewer if they pass ``MAX_PAGE_BYTES``).

        ``total`` is the number of groups in the dump, ``next`` the offset of the next page (or None).
        """
        errors: list[str] = []
        out: dict[str, Any] = {"step": step, "groups": [], "errors": errors, "offset": offset, "total": 0, "next": None}
        reader = _errors_to(errors, "run folder", lambda: ConfinedReader(run.path), None)
        if reader is None:
            return out
        name = f"rollouts/step_{step:06d}.jsonl"

        def page():
            path = confined(reader.dir, ROLLOUT_DIR, rollout_path(reader.dir, step).name)
            return read_page(path, offset, limit) if path.exists() else ([], 0)

        lines, total = _errors_to(errors, name, page, ([], 0))
        if total == 0 and not errors:
            errors.append(f"no rollout dump for step {step} ({name} is missing or empty)")
        groups = []
        for i, line, size in lines:
            if line is None:
                groups.append({"index": i, "error": f"group {i} is {size / 1e6:.1f} MB, more than the explorer shows "
                                                    f"({MAX_GROUP_BYTES / 1e6:.0f} MB): read line {i + 1} of {name}"})
                continue
            try:
                groups.append(group_view(i, json.loads(line)))
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                groups.append({"index": i, "error": f"group {i} of step {step} is malformed: {e}"})
        end = lines[-1][0] + 1 if lines else offset
        return {**out, "groups": groups, "total": total, "next": end if end < total else None}


def _is_format_failure(c: dict) -> bool:
    fmt = {k: v for k, v in c["rewards"].items() if "format" in k}
    if fmt:
        return any(v is None or v <= 0 for v in fmt.values())
    return c.get("extracted") is None


def _episode(ep: dict) -> dict[str, Any]:
    """An episode's turns (role, tool name, text) and spans, the fields the completion dialog draws."""
    msgs = [{"role": str(m.get("role")), "name": m.get("name"), "content": str(m.get("content", ""))}
            for m in ep.get("messages") or [] if isinstance(m, dict)]
    spans = [[str(k), int(a), int(b)] for k, a, b in ep.get("spans") or []]
    counts = {k: ep.get(k) for k in ("turns", "tool_calls", "tool_errors", "malformed_calls", "end")}
    return {"messages": msgs, "spans": spans, **counts}


def group_view(index: int, rec: dict) -> dict[str, Any]:
    """One rollout-dump line -> the fields the page draws, with the flags its filters use."""
    if not isinstance(rec, dict):
        raise TypeError(f"expected an object, got {type(rec).__name__}")
    comps = rec.get("completions")
    if not isinstance(comps, list) or not comps:
        raise ValueError("'completions' must be a non-empty list")
    out_c = []
    for j, c in enumerate(comps):
        if not isinstance(c, dict) or not isinstance(c.get("text"), str):
            raise ValueError(f"completion {j} has no 'text'")
        rewards = c.get("rewards") or {}
        if not isinstance(rewards, dict):
            raise ValueError(f"completion {j}: 'rewards' must be an object")
        reward = _num(c.get("reward"))
        valid = bool(c.get("valid", reward is not None)) and reward is not None
        out_c.append({"text": c["text"], "length": c.get("length"), "truncated": bool(c.get("truncated")),
                      "rewards": {str(k): _num(v) for k, v in rewards.items()}, "reward": reward,
                      "valid": valid, "advantage": _num(c.get("advantage")),
                      "extracted": None if c.get("extracted") is None else str(c.get("extracted")),
                      "value": _num(c.get("value")),
                      # multi-turn runs: the conversation and its trained / masked token spans (docs/multiturn.md)
                      **({"episode": _episode(c["episode"])} if isinstance(c.get("episode"), dict) else {})})
    for c in out_c:
        c["format_failure"] = _is_format_failure(c)
    valid_r = [c["reward"] for c in out_c if c["valid"]]
    values = [c["value"] for c in out_c if c["value"] is not None]
    mean = sum(valid_r) / len(valid_r) if valid_r else None
    # The other baseline, for the critic toggle: what the group mean gives on a PPO run, and
    # A(s_0) = R - V(s_0) (gamma = lambda = 1, reward at the end) where values were stored.
    scale = rec.get("scale") if rec.get("scale") in SCALINGS else "group"
    adv_group = scale_group([c["reward"] if c["valid"] else None for c in out_c], scale).advantages
    adv_critic = ([c["reward"] - c["value"] if c["valid"] and c["value"] is not None else 0.0 for c in out_c]
                  if values else None)
    return {"index": index, "prompt_id": rec.get("prompt_id"), "question": rec.get("question"),
            "prompt": rec.get("prompt"), "answer": None if rec.get("answer") is None else str(rec.get("answer")),
            "baseline": _num(rec.get("baseline")), "reward_std": _num(rec.get("reward_std")),
            "scale": rec.get("scale"), "reward_mean": mean,
            "value_mean": sum(values) / len(values) if values else None, "has_value": bool(values),
            "completions": out_c, "advantages_group": adv_group, "advantages_group_scale": scale,
            "advantages_critic": adv_critic,
            "flags": {"zero_variance": len(set(valid_r)) <= 1,
                      "truncated": any(c["truncated"] for c in out_c),
                      "format_failure": any(c["format_failure"] for c in out_c)}}
