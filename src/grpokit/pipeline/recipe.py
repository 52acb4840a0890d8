"""Recipes: a YAML file of variables and stages, with references between them.

::

    # comments: the paper, its hyperparameters, the deviations
    recipe: r1_zero
    vars:                     # ${name} anywhere below; override with name=value on the command line
      model: smollm2-135m
    stages:
      - name: rl              # the stage's folder: RUN/stages/rl
        kind: rl              # rl | sft | sample | mix | eval (grpokit.pipeline.stages.KINDS)
        with:                 # the kind's config fields (grpokit train / sft / sample ... keys)
          model: ${model}
      - name: eval
        kind: eval
        with:
          model: ${rl.model}  # an output of an earlier stage (OUTPUTS lists them per kind)

Built-in variables: ``${recipe_dir}`` (the folder of the recipe file, for data files next to it).
Overrides: ``name=value`` sets a variable, ``stage.key=value`` a stage's field; values are YAML
(``steps=5``, ``rewards={math: 1}``). References are checked before anything runs.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

_REF = re.compile(r"\$\{([^}]+)\}")
RECIPES_DIR = Path(__file__).resolve().parents[3] / "recipes"
"""The recipes shipped with grpokit (the repository's ``recipes/`` folder)."""


@dataclass
class Stage:
    name: str
    kind: str
    params: dict[str, Any]


@dataclass
class Recipe:
    name: str
    path: Path
    text: str
    vars: dict[str, Any]
    stages: list[Stage]
    overrides: list[str] = field(default_factory=list)


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []


def find_recipe(spec: str) -> Path:
    """A recipe file path, or a name looked up in ``./recipes`` and then grpokit's own recipes."""
    for p in (Path(spec), Path("recipes") / f"{spec}.yaml", RECIPES_DIR / f"{spec}.yaml"):
        if p.is_file():
            return p.resolve()
    raise FileNotFoundError(f"no recipe {spec!r}: give a YAML file or one of {recipe_names()}")


def load_recipe(spec: str, overrides: list[str] = ()) -> Recipe:
    """Read, apply ``overrides`` and check a recipe (module docstring)."""
    path = find_recipe(spec)
    text = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise ValueError(f"{path}: a recipe needs a non-empty 'stages' list (see docs/pipeline.md)")
    unknown = sorted(set(raw) - {"recipe", "vars", "stages"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; a recipe has recipe, vars and stages")
    stages = []
    for i, s in enumerate(raw["stages"]):
        if not isinstance(s, dict) or not {"name", "kind"} <= set(s) or set(s) - {"name", "kind", "with"}:
            raise ValueError(f"{path}: stage {i + 1} must have name, kind and (optionally) with, got {s!r}")
        stages.append(Stage(str(s["name"]), str(s["kind"]), copy.deepcopy(s.get("with") or {})))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: stage names must be unique, got {names}")
    recipe = Recipe(str(raw.get("recipe", path.stem)), path, text, dict(raw.get("vars") or {}), stages, list(overrides))
    recipe.vars.setdefault("recipe_dir", str(path.parent))
    for item in overrides:
        _apply_override(recipe, item)
    return recipe


def _apply_override(recipe: Recipe, item: str) -> None:
    key, sep, raw_value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r}: write name=value (a variable) or stage.key=value (a stage field)")
    value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    if "." in key:
        stage_name, _, field_name = key.partition(".")
        stage = next((s for s in recipe.stages if s.name == stage_name), None)
        if stage is None:
            raise ValueError(f"override {item!r}: no stage {stage_name!r}; stages: {[s.name for s in recipe.stages]}")
        stage.params[field_name] = value
    elif key in recipe.vars:
        recipe.vars[key] = value
    else:
        raise ValueError(f"override {item!r}: {recipe.name} has no variable {key!r}; variables: "
                         f"{sorted(recipe.vars)} (or set a stage field with stage.key=value)")


def interpolate(value: Any, lookup: Callable[[str], Any]) -> Any:
    """Replace ``${name}`` in strings (keys too) with ``lookup(name)``; a string that is one reference
    keeps the looked-up value's type (``steps: ${steps}`` stays an int)."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return lookup(whole.group(1))
        return _REF.sub(lambda m: str(lookup(m.group(1))), value)
    if isinstance(value, dict):
        return {interpolate(k, lookup): interpolate(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, lookup) for v in value]
    return value


def references(value: Any) -> list[str]:
    """Every ``${...}`` name inside ``value`` (keys included)."""
    if isinstance(value, str):
        return _REF.findall(value)
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in references(k) + references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def with_vars(recipe: Recipe, stage: Stage) -> dict[str, Any]:
    """The stage's params with variables filled in and stage references left as ``${stage.key}``."""

    def lookup(name: str) -> Any:
        if name in recipe.vars:
            return recipe.vars[name]
        if "." in name:
            return "${" + name + "}"
        raise ValueError(f"stage {stage.name!r}: unknown variable ${{{name}}}; variables: {sorted(recipe.vars)}")

    return interpolate(stage.params, lookup)


def check_references(recipe: Recipe, outputs_of: Callable[[str], tuple[str, ...]]) -> None:
    """Each ``${stage.key}`` must name an earlier stage and one of its kind's outputs."""
    seen: dict[str, str] = {}
    for stage in recipe.stages:
        for ref in references(with_vars(recipe, stage)):
            src, _, key = ref.partition(".")
            if src not in seen:
                raise ValueError(f"stage {stage.name!r} refers to ${{{ref}}}, but no earlier stage is named {src!r} "
                                 f"(earlier stages: {list(seen)})")
            if key not in outputs_of(seen[src]):
                raise ValueError(f"stage {stage.name!r} refers to ${{{ref}}}: a {seen[src]} stage outputs "
                                 f"{list(outputs_of(seen[src]))}")
        seen[stage.name] = stage.kind
