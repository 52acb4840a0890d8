"""Per-row routing: one run mixes tasks (math, code, countdown, ...) by each row's ``data_source``.

``routed(routes={'math': {'math': 1.0}, 'code': {'code_tests': 1.0}})`` sends each row to the
reward specs of its ``data_source`` (a dict name -> weight, a list of names, or one name, as in
``grpokit.rewards.build``) and returns their weighted sum. A source not in the table is looked up
by its prefix before ``:`` (``gym:leg_counting`` -> ``gym``). The built-in ``routed`` uses
``DEFAULT_ROUTES``. A row whose source has no route is an error for that row (logged, scored
None), never a silent 0.
"""

from __future__ import annotations

from typing import Any, Callable

from grpokit.rewards import RewardSpec, build, register, register_factory

DEFAULT_ROUTES: dict[str, Any] = {
    "math": {"math": 1.0},
    "gsm8k": {"math_exact": 1.0},
    "code": {"code_tests": 1.0},
    "humaneval": {"code_tests": 1.0},
    "countdown": {"countdown": 1.0},
    "gym": {"exact_answer": 1.0},
}


def _as_specs(route: Any) -> list[RewardSpec]:
    if isinstance(route, str):
        route = [route]
    return build(route)


@register_factory("routed")
def routed_reward(routes: dict[str, Any] | None = None):
    """A reward that dispatches rows on ``data_source`` (see the module docstring)."""
    table = dict(DEFAULT_ROUTES if routes is None else routes)
    if not table:
        raise ValueError("routed needs at least one route: routed(routes={'math': {'math': 1.0}})")
    compiled: dict[str, list[RewardSpec]] = {}

    def specs_for(source: str) -> list[RewardSpec]:
        key = source if source in table else str(source).split(":", 1)[0]
        if key not in table:
            raise ValueError(f"no reward route for data_source {source!r}; routes: {sorted(table)}. "
                             "Add one with routed(routes={...}) in the reward config")
        if key not in compiled:
            compiled[key] = _as_specs(table[key])
        return compiled[key]

    def routed(prompts, completions, data_source, **columns) -> list[float | None]:
        """Weighted sum of the row's routed rewards; None where one of them cannot score."""
        return route_rows(specs_for, prompts, completions, data_source, columns)

    return routed


def route_rows(specs_for: Callable[[str], list[RewardSpec]], prompts: list[str], completions: list[str],
               data_source: list[str], columns: dict[str, Any]) -> list[float | None]:
    """Each row's weighted rewards of its ``data_source`` (Python floats; None where one gives None):
    the router of ``routed`` and ``by_source``. ``specs_for(source)`` raises naming the routes. Errors
    propagate, so :func:`grpokit.rewards.score` logs them with the failing sample."""
    groups: dict[str, list[int]] = {}
    for i, src in enumerate(data_source):
        groups.setdefault(src, []).append(i)
    out: list[float | None] = [None] * len(completions)
    for src, idx in groups.items():
        specs = specs_for(src)
        cols = {k: _rows(v, idx, len(completions)) for k, v in columns.items()}
        cols["data_source"] = [src] * len(idx)
        sub_p, sub_c = [prompts[i] for i in idx], [completions[i] for i in idx]
        parts = [list(s.fn(sub_p, sub_c, **cols)) for s in specs]
        for j, i in enumerate(idx):
            vals = [p[j] for p in parts]
            out[i] = None if any(v is None for v in vals) else sum(s.weight * v for s, v in zip(specs, vals))
    return out


def _rows(col: Any, idx: list[int], n: int) -> Any:
    """The rows ``idx`` of a per-completion column (list or tensor); other values pass through."""
    if isinstance(col, (list, tuple)):
        return [col[i] for i in idx]
    if hasattr(col, "shape") and len(col.shape) > 0 and col.shape[0] == n:
        return col[idx]
    return col


routed = register("routed")(routed_reward())
