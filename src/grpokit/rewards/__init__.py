"""Rewards: any callable ``fn(prompts, completions, **columns) -> list[float | None]``.

This is TRL's signature, so functions users already wrote work unchanged. ``columns`` are the
dataset's columns (``answer``, ``data_source``, ...), one entry per completion, plus
``completion_ids`` (token ids) and ``truncated`` (hit the length limit). ``None`` means "cannot
score": the completion gets advantage 0 and is counted in the metrics.

A reward function may carry an ``extract(text) -> str | None`` attribute: the answer its grader
reads. The loop stores it with each completion (``extracted`` in the rollout dump) so that people
can see what was graded.

Functions are named in a config as a built-in name (``math``, ``format``, ...), as a configured
built-in ``name(key=value, ...)`` (``overlong(max_len=1024, cache=256)``: keyword arguments are
Python literals, given to the factory registered under that name), or as ``module:function``.
Several combine with weights. A function that breaks the contract (raises, even ``SystemExit``;
returns the wrong number of values, a non-number or a NaN; runs past ``reward_timeout``) does not
kill the run and does not shift other scores: the error is logged with the failing sample, which
scores ``None``. See :mod:`grpokit.rewards.contract`.
"""

from __future__ import annotations

import ast
import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from grpokit.records import Scores
from grpokit.rewards import contract

log = logging.getLogger(__name__)

RewardFn = Callable[..., list]
_REGISTRY: dict[str, RewardFn] = {}
_FACTORIES: dict[str, Callable[..., RewardFn]] = {}
# Modules whose import registers the built-in rewards (kept lazy: nothing runs at import time).
_BUILTIN_MODULES = ("grpokit.rewards.math", "grpokit.rewards.format", "grpokit.rewards.shaping",
                    "grpokit.rewards.code", "grpokit.rewards.countdown", "grpokit.rewards.routed",
                    "grpokit.rewards.exact", "grpokit.rewards.arith",
                    "grpokit.rewards.reward_model", "grpokit.rewards.by_source")
_CALL_RE = re.compile(r"^\s*(?P<name>[A-Za-z_][\w.]*)\s*\((?P<args>.*)\)\s*$", re.DOTALL)


def register(name: str):
    """Decorator: make ``fn`` available as a built-in reward under ``name``."""

    def deco(fn: RewardFn) -> RewardFn:
        _REGISTRY[name] = fn
        return fn

    return deco


def register_factory(name: str):
    """Decorator: ``factory(**options) -> reward fn``, used for ``name(key=value, ...)`` specs."""

    def deco(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        _FACTORIES[name] = factory
        return factory

    return deco


def builtin_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def factory_names() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def _parse_call(spec: str) -> tuple[str, dict[str, Any]] | None:
    m = _CALL_RE.match(spec)
    if not m:
        return None
    try:
        call = ast.parse(f"f({m['args']})", mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"reward {spec!r}: cannot read its options ({e.msg}); write name(key=value, ...)") from e
    if call.args:
        raise ValueError(f"reward {spec!r}: options must be named, e.g. {m['name']}(max_len=1024)")
    try:
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except ValueError as e:
        raise ValueError(f"reward {spec!r}: option values must be literals (numbers, strings, lists)") from e
    return m["name"], kwargs


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError as e:  # an optional extra is missing; its rewards are simply absent
            log.debug("reward module %s unavailable: %s", mod, e)


def resolve(spec: str | RewardFn) -> RewardFn:
    """A built-in name, ``module:function``, or a callable -> the callable."""
    if callable(spec):
        return spec
    _load_builtins()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    call = _parse_call(spec)
    if call is not None:
        name, kwargs = call
        if name not in _FACTORIES:
            raise ValueError(f"reward {spec!r}: {name!r} takes no options; configurable rewards are {factory_names()}")
        try:
            return _FACTORIES[name](**kwargs)
        except TypeError as e:
            raise ValueError(f"reward {spec!r}: {e}") from e
    if spec in _FACTORIES:
        return _FACTORIES[spec]()
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise ValueError(f"reward {spec!r}: cannot import module {mod_name!r} ({e}); "
                             "is it on PYTHONPATH?") from e
        fn = getattr(mod, attr, None)
        if not callable(fn):
            raise ValueError(f"reward {spec!r}: {mod_name!r} has no callable {attr!r}")
        return fn
    raise ValueError(f"unknown reward {spec!r}: use one of {builtin_names()} or 'module:function'")


@dataclass(frozen=True)
class RewardSpec:
    """A reward function with its name (for logging) and its weight in the total."""

    name: str
    fn: RewardFn
    weight: float = 1.0
    timeout: float = contract.DEFAULT_TIMEOUT_S
    """Seconds one call may take before it is stopped and its completions score None (0 = no limit)."""


def build(specs: list[str] | dict[str, float], timeout: float = contract.DEFAULT_TIMEOUT_S) -> list[RewardSpec]:
    """Config form -> specs. A list gives weight 1 each; a dict maps name -> weight.

    ``timeout``: seconds each call of each function may take (0 = no limit); see :mod:`grpokit.rewards.contract`.
    """
    items = specs.items() if isinstance(specs, dict) else [(s, 1.0) for s in specs]
    return [RewardSpec(name=_display_name(name), fn=resolve(name), weight=float(w), timeout=float(timeout))
            for name, w in items]


def _display_name(spec) -> str:
    if callable(spec):
        return getattr(spec, "__name__", "reward")
    spec = str(spec)
    return spec if _CALL_RE.match(spec) else spec.split(":")[-1]


def _call_one(spec: RewardSpec, prompts, completions, columns, errors) -> list[float | None]:
    """One reward on ``N`` completions under the contract (:mod:`grpokit.rewards.contract`)."""
    n = len(completions)

    def failed(i: int, problem: str, message: str) -> None:
        errors.append({"reward": spec.name, "index": i, "completion": completions[i][:500], "problem": problem,
                       "error": message})
        log.warning("reward %s failed on sample %d (%s): %s", spec.name, i, problem, message.strip().splitlines()[-1])

    def scored(i: int, raw) -> float | None:
        v, problem, message = contract.to_score(raw)
        if problem:
            failed(i, problem, message)
        return v

    try:
        out = contract.call(spec.fn, spec.name, prompts, completions, columns, spec.timeout)
        return [scored(i, v) for i, v in enumerate(out)]
    except contract.RewardFailure as e:
        if n == 1:
            failed(0, e.problem, e.message)
            return [None]
        log.warning("reward %s failed on the batch of %d (%s); scoring one completion at a time",
                    spec.name, n, e.message.strip().splitlines()[-1])
    # The batch call failed: retry one sample at a time so a single bad sample costs only itself.
    result: list[float | None] = []
    timeouts = 0
    for i in range(n):
        if timeouts >= contract.MAX_SINGLE_TIMEOUTS:
            failed(i, "timeout", f"not scored: {timeouts} single completions of this batch already timed out")
            result.append(None)
            continue
        cols_i = {k: [v[i]] for k, v in columns.items()}
        try:
            result.append(scored(i, contract.call(spec.fn, spec.name, [prompts[i]], [completions[i]], cols_i,
                                                  spec.timeout)[0]))
        except contract.RewardFailure as e:
            timeouts += e.problem == "timeout"
            failed(i, e.problem, e.message)
            result.append(None)
    return result


def score(specs: list[RewardSpec], prompts: list[str], completions: list[str], columns: dict[str, list[Any]]) -> Scores:
    """Run every reward function on ``N`` completions and combine them with their weights."""
    errors: list[dict[str, Any]] = []
    per_fn = {s.name: _call_one(s, prompts, completions, columns, errors) for s in specs}
    n = len(completions)
    total = torch.zeros(n)
    valid = torch.ones(n, dtype=torch.bool)
    for s in specs:
        for i, v in enumerate(per_fn[s.name]):
            if v is None:
                valid[i] = False
            else:
                total[i] += s.weight * v
    for i in (valid & ~torch.isfinite(total)).nonzero().flatten().tolist():  # finite values whose weighted sum overflows
        valid[i] = False
        errors.append({"reward": "total", "index": i, "completion": completions[i][:500], "problem": "non_finite",
                       "error": f"the weighted sum of the rewards is {float(total[i])}; non-finite rewards are unscorable"})
    total[~valid] = 0.0
    return Scores(per_fn=per_fn, total=total, valid=valid, errors=errors)
