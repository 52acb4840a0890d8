"""Rewards routed by the row's ``data_source``: rule rewards for reasoning rows, a reward model for the rest.

DeepSeek-R1's final RL stage (§2.3.4) mixes prompt kinds in one batch: reasoning prompts are graded
by rules (accuracy, format, language consistency), general prompts by reward models. A plain sum of
reward functions cannot express that (a rule reward has no reference answer on a general prompt and
would mark it unscorable), so ``by_source`` scores each row with the weighted rewards of its own
source::

    by_source(math={'final_number': 1.0, 'r1_format': 1.0},
              general={'helpful': {'reward': 'reward_model', 'path': 'rm', 'target': 'answer'}})

A route maps reward specs to weights in the **structured form** :func:`structured_specs` reads:
``name: weight``, or ``name: {weight: w, reward: factory, option: value, ...}`` where ``reward``
defaults to ``name`` and the other keys become the factory's options. Recipes write rewards in this
form so they stay readable YAML. A row whose source has no route is an error naming the routes.
Rows are scored by :func:`grpokit.rewards.routed.route_rows`, the router ``routed`` uses too.
"""

from __future__ import annotations

from typing import Any

from grpokit import rewards as rw
from grpokit.rewards.routed import route_rows


def _literal(v: Any) -> str:
    return repr(v)


def structured_spec(name: str, value: Any) -> tuple[str, float]:
    """One structured entry -> ``(spec string, weight)`` for :func:`grpokit.rewards.build`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(name), float(value)
    if not isinstance(value, dict):
        raise ValueError(f"reward {name!r}: give a weight or a mapping of options (weight, reward, ...), got {value!r}")
    opts = dict(value)
    weight = float(opts.pop("weight", 1.0))
    fn = str(opts.pop("reward", name))
    if not opts:
        return fn, weight
    return f"{fn}({', '.join(f'{k}={_literal(v)}' for k, v in opts.items())})", weight


def structured_specs(mapping: dict[str, Any]) -> dict[str, float]:
    """A mapping of structured entries -> ``{spec: weight}`` (two entries may not make the same spec)."""
    out: dict[str, float] = {}
    for name, value in mapping.items():
        spec, weight = structured_spec(name, value)
        if spec in out:
            raise ValueError(f"reward {spec!r} is listed twice; merge the entries or change an option")
        out[spec] = weight
    return out


@rw.register_factory("by_source")
def by_source(**routes: dict) -> rw.RewardFn:
    """A reward that scores each row with the weighted rewards of its ``data_source`` (module docstring)."""
    if not routes:
        raise ValueError("by_source: give at least one route, e.g. by_source(math={'final_number': 1.0})")
    built = {}
    for source, specs in routes.items():
        if not isinstance(specs, dict) or not specs:
            raise ValueError(f"by_source: route {source!r} must map reward names to weights, got {specs!r}")
        built[source] = rw.build(structured_specs(specs))

    def lookup(source: str) -> list[rw.RewardSpec]:
        if source not in built:
            raise ValueError(f"by_source: no rewards for data_source {source!r}; routes: {sorted(built)}")
        return built[source]

    def score(prompts, completions, data_source=None, **columns) -> list[float | None]:
        if data_source is None:
            raise ValueError("by_source: the rows have no data_source column; add one to the task rows")
        return route_rows(lookup, prompts, completions, data_source, columns)

    score.__name__ = "by_source"
    return score
