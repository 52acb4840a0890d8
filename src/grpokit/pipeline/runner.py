"""Running a recipe's stages in order in one run folder, resumably.

::

    RUN/
      pipeline.json            recipe, variables, overrides, stage list, state, final model and its hash
      recipe.yaml              the recipe file as it was read
      stages/<name>/manifest.json   {state: running|finished|interrupted|failed, identity, config,
                                     outputs, info, error, started, finished} (written atomically)
      stages/<name>/...        the stage's own files (an rl/sft stage folder is a normal run folder)

For each stage: a ``finished`` manifest whose settings (its ``identity``: the stage's fields with
variables filled in, minus ``stop_after`` and ``threads``) match the recipe is skipped; otherwise
the stage runs, resuming from what its folder holds. When its settings changed, an unfinished stage
starts over, while a finished one is an error (its outputs fed later stages). A stage that raises
is marked ``failed`` with the error and the pipeline stops (exit 1); one that stops early (Ctrl-C,
``stop_after``) is marked ``interrupted`` (exit 130). Nothing of earlier stages is touched either way:
running the same command again continues.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from grpokit.pipeline import recipe as rcp
from grpokit.pipeline.stages import MANAGED, MANIFEST, clear, kinds
from grpokit.train.session import acquire_lock, release_lock
from grpokit.pipeline.evaluate import comparison_table

VOLATILE = ("stop_after", "threads")
"""Stage fields that do not change results (left out of a stage's identity)."""


def model_hash(path: str | Path) -> str:
    """SHA-256 over a checkpoint's tensors (name, dtype, shape, bytes, in name order)."""
    import torch
    from safetensors.torch import load_file

    h = hashlib.sha256()
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path} holds no .safetensors weights")
    tensors = {}
    for f in files:
        tensors.update(load_file(f))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _rel(run_dir: Path, p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p)


def identity(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in VOLATILE}


def _diff(a: dict, b: dict) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in keys
            if json.dumps(a.get(k), sort_keys=True, default=str) != json.dumps(b.get(k), sort_keys=True, default=str)]


def check(recipe: rcp.Recipe) -> None:
    """Kinds, fields and references of every stage, before anything runs."""
    import dataclasses

    missing = sorted(k for k, v in recipe.vars.items() if v is None)
    if missing:
        raise ValueError(f"recipe {recipe.name!r} needs a value for {missing}: add "
                         + " ".join(f"{k}=VALUE" for k in missing) + " to the command (see the recipe's comments)")
    known = kinds()
    for stage in recipe.stages:
        if stage.kind not in known:
            raise ValueError(f"stage {stage.name!r}: unknown kind {stage.kind!r}; kinds: {sorted(known)}")
        fields = {f.name for f in dataclasses.fields(known[stage.kind].config)}
        params = rcp.with_vars(recipe, stage)
        bad = sorted(set(params) - fields)
        if bad:
            raise ValueError(f"stage {stage.name!r} ({stage.kind}): unknown field(s) {bad}; fields: {sorted(fields)}")
        managed = sorted(set(params) & set(MANAGED[stage.kind]))
        if managed:
            raise ValueError(f"stage {stage.name!r}: {managed} are set by the pipeline; remove them from the recipe")
    rcp.check_references(recipe, lambda kind: known[kind].outputs)


def run_pipeline(recipe: rcp.Recipe, out: str = "", progress: bool = True) -> int:
    """Run (or continue) ``recipe`` in ``out``; returns the exit code (0, 1 failed, 130 interrupted)."""
    check(recipe)
    run_dir = Path(out or f"runs/{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    meta_path = run_dir / "pipeline.json"
    meta = _read_json(meta_path)
    if meta is not None and meta.get("recipe") != recipe.name:
        raise FileExistsError(f"{run_dir} holds a {meta.get('recipe')!r} pipeline, not {recipe.name!r}; use another --out")
    lock = acquire_lock(run_dir)  # one pipeline per folder (each rl/sft stage also locks its own)
    try:
        return _run_locked(recipe, run_dir, meta_path, meta, progress)
    finally:
        release_lock(lock)


def _run_locked(recipe: rcp.Recipe, run_dir: Path, meta_path: Path, meta: dict | None, progress: bool) -> int:
    if not (run_dir / "recipe.yaml").exists():
        (run_dir / "recipe.yaml").write_text(recipe.text, encoding="utf-8")
    meta = {"recipe": recipe.name, "recipe_file": str(recipe.path), "vars": recipe.vars, "overrides": recipe.overrides,
            "stages": [{"name": s.name, "kind": s.kind} for s in recipe.stages], "state": "running",
            "started": (meta or {}).get("started", time.time())}
    _write_json(meta_path, meta)
    known = kinds()
    outputs: dict[str, dict[str, str]] = {}

    def lookup(name: str) -> Any:
        src, _, key = name.partition(".")
        return str(run_dir / outputs[src][key])

    n = len(recipe.stages)
    for i, stage in enumerate(recipe.stages, 1):
        stage_dir = run_dir / "stages" / stage.name
        ident = identity(rcp.with_vars(recipe, stage))
        man = _read_json(stage_dir / MANIFEST)
        if man is not None and man.get("identity") != ident:
            changes = "; ".join(_diff(man.get("identity", {}), ident))
            if man.get("state") == "finished":
                raise ValueError(f"stage {stage.name!r} finished earlier with other settings ({changes}). Its outputs "
                                 f"fed the later stages: use another --out, or delete {stage_dir} and the stages "
                                 "after it to redo them")
            print(f"stage {stage.name!r}: settings changed since it was interrupted ({changes}); starting it over")
            clear(stage_dir)
            man = None
        if man is not None and man.get("state") == "finished":
            outputs[stage.name] = man["outputs"]
            print(f"== stage {i}/{n} {stage.name} ({stage.kind}): finished earlier, skipped", flush=True)
            continue
        params = rcp.interpolate(rcp.with_vars(recipe, stage), lookup)
        print(f"== stage {i}/{n} {stage.name} ({stage.kind})" + (" : resuming" if man else ""), flush=True)
        man = {"name": stage.name, "kind": stage.kind, "state": "running", "identity": ident, "config": params,
               "started": (man or {}).get("started", time.time()), "seconds_before": (man or {}).get("seconds", 0.0)}
        _write_json(stage_dir / MANIFEST, man)
        t0 = time.time()
        try:
            outcome = known[stage.kind].run(params, stage_dir, progress)
        except KeyboardInterrupt:
            return _stop(meta_path, meta, stage_dir, man, t0, "interrupted", None, stage, run_dir)
        except Exception as e:  # noqa: BLE001 - any stage failure stops the pipeline with its message
            return _stop(meta_path, meta, stage_dir, man, t0, "failed", e, stage, run_dir)
        man["seconds"] = man.pop("seconds_before") + time.time() - t0
        if not outcome.finished:
            man["info"] = outcome.info
            return _stop(meta_path, meta, stage_dir, man, None, "interrupted", None, stage, run_dir)
        man["outputs"] = {k: _rel(run_dir, v) for k, v in outcome.outputs.items() if v is not None}
        man["info"] = outcome.info
        if "model" in outcome.outputs and outcome.outputs["model"] is not None:
            man["info"]["model_sha256"] = model_hash(outcome.outputs["model"])
        man.update(state="finished", finished=time.time())
        _write_json(stage_dir / MANIFEST, man)
        outputs[stage.name] = man["outputs"]
    final = _final_model(run_dir, recipe)
    meta.update(state="finished", finished=time.time(), **final)
    _write_json(meta_path, meta)
    print(summary(run_dir), flush=True)
    return 0


def _stop(meta_path, meta, stage_dir, man, t0, state, error, stage, run_dir) -> int:
    if t0 is not None:
        man["seconds"] = man.pop("seconds_before", 0.0) + time.time() - t0
    man["state"] = state
    if error is not None:
        man["error"] = f"{type(error).__name__}: {error}"
        man["traceback"] = traceback.format_exc(limit=8)
    _write_json(stage_dir / MANIFEST, man)
    meta.update(state=state, stopped_at=stage.name)
    _write_json(meta_path, meta)
    again = shlex.join(["grpokit", "pipeline", meta["recipe_file"], "--out", str(run_dir),
                        *(o for o in meta["overrides"] if ".stop_after=" not in o)])
    if state == "failed":
        print(f"\ngrpokit pipeline: stage {stage.name!r} ({stage.kind}) failed: {man['error']}\n"
              f"Earlier stages are kept in {run_dir / 'stages'}; the traceback is in {stage_dir / MANIFEST}.\n"
              f"Fix the cause and run the same command to continue from this stage:\n  {again}", file=sys.stderr)
        return 1
    print(f"\nStage {stage.name!r} stopped before finishing; everything done so far is kept. Continue with:\n  {again}",
          file=sys.stderr)
    return 130


def _final_model(run_dir: Path, recipe: rcp.Recipe) -> dict:
    for stage in reversed(recipe.stages):
        man = _read_json(run_dir / "stages" / stage.name / MANIFEST) or {}
        if "model" in man.get("outputs", {}):
            return {"final_model": man["outputs"]["model"], "final_model_sha256": man["info"]["model_sha256"]}
    return {}


def stage_manifests(run_dir: str | Path) -> list[dict]:
    """The manifests of a pipeline run, in stage order."""
    run_dir = Path(run_dir)
    meta = _read_json(run_dir / "pipeline.json")
    if meta is None:
        raise FileNotFoundError(f"{run_dir} holds no pipeline.json: pass a folder written by `grpokit pipeline`")
    return [_read_json(run_dir / "stages" / s["name"] / MANIFEST) or {"name": s["name"], "kind": s["kind"],
                                                                      "state": "not started"}
            for s in meta["stages"]]


def summary(run_dir: str | Path) -> str:
    """A table of the stages of a run: state, seconds, sequences, main outputs."""
    rows = ["| stage | kind | state | seconds | sequences | outputs |", "|---|---|---|---|---|---|"]
    for m in stage_manifests(run_dir):
        info = m.get("info", {})
        secs = f"{m['seconds']:.0f}" if "seconds" in m else "—"
        outs = ", ".join(f"{k}: {v}" for k, v in m.get("outputs", {}).items())
        rows.append(f"| {m['name']} | {m['kind']} | {m['state']} | {secs} | {info.get('sequences', '—')} | {outs} |")
    return "\n".join(rows)


def compare(run_dirs: list[str]) -> str:
    """Side-by-side Markdown table of the final ``eval`` stage of each pipeline run, with its budget."""
    runs = []
    for d in run_dirs:
        mans = stage_manifests(d)
        evals = [m for m in mans if m.get("kind") == "eval" and m.get("state") == "finished"]
        if not evals:
            raise ValueError(f"{d}: no finished eval stage to compare; finish the pipeline first")
        result = _read_json(Path(d) / evals[-1]["outputs"]["result"]) or {}
        trained = [m for m in mans if m.get("kind") != "eval"]
        budget = {"sequences": sum(m.get("info", {}).get("sequences", 0) for m in trained),
                  "seconds": round(sum(m.get("seconds", 0.0) for m in trained))}
        meta = _read_json(Path(d) / "pipeline.json") or {}
        runs.append((f"{meta.get('recipe', '?')} ({Path(d).name})", result, budget))
    return comparison_table(runs)


def main(argv: list[str] | None = None) -> int:
    """``grpokit pipeline RECIPE [--out RUN] [name=value | stage.key=value ...]`` and ``--compare``/``--list``."""
    ap = argparse.ArgumentParser(prog="grpokit pipeline", description=(
        "Run a multi-stage recipe (r1_zero, r1, distill, or a YAML file) in one run folder. Re-running the same "
        "command skips finished stages and resumes an interrupted one."))
    ap.add_argument("recipe", nargs="?", help=f"recipe name ({', '.join(rcp.recipe_names()) or 'none found'}) or YAML file")
    ap.add_argument("overrides", nargs="*", help="name=value (a recipe variable) or stage.key=value (a stage field)")
    ap.add_argument("--out", default="", help="run folder (default runs/<recipe>-<date>-<time>)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--list", action="store_true", help="list the recipes, their variables and stages")
    ap.add_argument("--compare", nargs="+", metavar="RUN", help="print a side-by-side table of finished pipeline runs")
    ap.add_argument("--md", help="with --compare: also write the table to this Markdown file")
    args = ap.parse_intermixed_args(argv)
    try:
        if args.compare:
            table = compare(args.compare)
            print(table)
            if args.md:
                Path(args.md).write_text(table, encoding="utf-8")
            return 0
        if args.list:
            for name in rcp.recipe_names():
                r = rcp.load_recipe(name)
                shown = ", ".join(f"{k}={str(v)[:40]}" for k, v in r.vars.items() if k != "recipe_dir")
                print(f"{name}: {' -> '.join(f'{s.name} ({s.kind})' for s in r.stages)}\n  variables: {shown}")
            return 0
        if not args.recipe:
            ap.error("give a recipe (or --list / --compare)")
        return run_pipeline(rcp.load_recipe(args.recipe, args.overrides), args.out, not args.no_progress)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"grpokit pipeline: error: {e}", file=sys.stderr)
        return 2
