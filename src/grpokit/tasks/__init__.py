"""Tasks: where prompts and their reference answers come from, with the rewards that grade them.

A task keeps its data and its default reward functions side by side (nanochat's habit), so the
metric you report and the reward you train on cannot drift apart. Every task has a fixed held-out
split that training never sees.

Task sources are registered by name; ``load_task`` also accepts a ``.jsonl`` / ``.parquet`` path
and prefixed names, ``prefix:rest`` (``gym:leg_counting``, ``hf:openai/gsm8k``), whose prefix is
registered with ``register_prefix``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from grpokit.records import Example

TaskFactory = Callable[..., "Task"]
_REGISTRY: dict[str, TaskFactory] = {}
_PREFIXES: dict[str, TaskFactory] = {}
# Modules whose import registers task sources (imported lazily, on first lookup).
_SOURCE_MODULES = ("grpokit.tasks.arith", "grpokit.tasks.files", "grpokit.tasks.gym", "grpokit.tasks.countdown",
                   "grpokit.tasks.gsm8k", "grpokit.tasks.humaneval", "grpokit.tasks.hf",
                   "grpokit.tasks.word_problems", "grpokit.tasks.tool_arith")


@dataclass(frozen=True)
class Task:
    """A named source of examples with a fixed held-out split and its default rewards.

    Attributes:
        name: registry name, recorded in the run folder.
        train: examples drawn for training, in a fixed order (the loop shuffles with its own seed).
        heldout: the fixed evaluation split, disjoint from ``train``.
        rewards: default reward specs, name -> weight (see ``grpokit.rewards.build``).
        instruction: appended to each question when the prompt is rendered (tells the model where
            to put its answer, matching the grader's ``answer_region``).
        correctness: the reward name whose value 1.0 means "correct"; accuracy is measured with it.
        env: for multi-turn tasks, a factory of one environment per episode (``grpokit.envs``);
            the trainer then runs each prompt as an episode (``grpokit.rollout.multiturn``).
            ``meta["episode"]`` may hold ``max_turns`` / ``max_episode_tokens``.
    """

    name: str
    train: list[Example]
    heldout: list[Example]
    rewards: dict[str, float] = field(default_factory=lambda: {"math": 1.0})
    instruction: str = ""
    correctness: str = "math"
    meta: dict[str, Any] = field(default_factory=dict)
    env: Callable[[], Any] | None = None

    def question_text(self, ex: Example) -> str:
        return f"{ex.question} {self.instruction}".strip() if self.instruction else ex.question


def register(name: str):
    """Decorator: register a task factory under ``name``."""

    def deco(fn: TaskFactory) -> TaskFactory:
        _REGISTRY[name] = fn
        return fn

    return deco


def register_prefix(prefix: str):
    """Decorator: ``factory(rest, **options)`` serves every task name ``prefix:rest``."""

    def deco(fn: TaskFactory) -> TaskFactory:
        _PREFIXES[prefix] = fn
        return fn

    return deco


def _load_sources() -> None:
    for mod in _SOURCE_MODULES:
        importlib.import_module(mod)


def task_names() -> list[str]:
    _load_sources()
    return sorted(_REGISTRY) + [f"{p}:<name>" for p in sorted(_PREFIXES)]


def _factory(name: str) -> tuple[TaskFactory, tuple]:
    """The factory serving task ``name`` and the positional arguments it gets before the options."""
    _load_sources()
    if name.endswith((".jsonl", ".json", ".parquet")):
        return _REGISTRY["file"], ()
    if name in _REGISTRY:
        return _REGISTRY[name], ()
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _PREFIXES:
        if not rest:
            raise ValueError(f"task {name!r}: name what follows '{prefix}:', e.g. {prefix}:<name>")
        return _PREFIXES[prefix], (rest,)
    raise ValueError(f"unknown task {name!r}: use one of {task_names()} or a .jsonl/.parquet path")


def check_task_options(name: str, options: dict[str, Any]) -> None:
    """Raise a ``ValueError`` listing the options task ``name`` does not take (and those it does),
    without loading any data."""
    factory, args = _factory(name)
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    fixed = {"path"} if name.endswith((".jsonl", ".json", ".parquet")) else set()
    known = [p for i, p in enumerate(params) if i >= len(args) and p not in fixed]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"task {name!r} has no option(s) {unknown}; its options are {known} "
                         f"(set them with task_options, e.g. {{{known[0] if known else 'option'}: ...}})")


def load_task(name: str, **options: Any) -> Task:
    """A registered task by name, a ``prefix:rest`` name, or a ``.jsonl`` / ``.parquet`` file of rows.

    Unknown options are an error that lists the task's own (checked before any data is read).
    """
    factory, args = _factory(name)
    check_task_options(name, options)
    if name.endswith((".jsonl", ".json", ".parquet")):
        return factory(path=name, **options)
    return factory(*args, **options)
