"""Any ``reasoning-gym`` dataset by name: ``gym:<dataset>`` (its generators run offline).

The held-out split is generated with its own seed (``seed + 1_000_003``) and training questions
that also occur in it are dropped, so the split is fixed and disjoint. Only reasoning-gym's
*generators* are used: its scorers evaluate model text (its countdown scorer calls
``sympy.parse_expr``), so grading uses grpokit's own rewards: ``math`` when every reference answer
is a plain number, the safe ``countdown`` checker for countdown, else normalized ``exact_answer``.
"""

from __future__ import annotations

from typing import Any, Callable

from grpokit.records import Example
from grpokit.rewards.numbers import plain_number
from grpokit.tasks import Task, register_prefix

INSTRUCTION = "Put the final answer in \\boxed{}."
HELDOUT_SEED_OFFSET = 1_000_003


def gym_rows(dataset: str, seed: int, size: int, config: dict[str, Any]) -> list[dict]:
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if dataset not in DATASETS:
        raise ValueError(f"unknown reasoning-gym dataset {dataset!r}; available: {sorted(DATASETS)}")
    try:
        return list(reasoning_gym.create_dataset(dataset, seed=seed, size=size, **config))
    except TypeError as e:
        raise ValueError(f"reasoning-gym dataset {dataset!r} rejected its config {config}: {e}") from e


def split(dataset: str, config: dict[str, Any], train_size: int, heldout_size: int, seed: int,
          to_example: Callable[[str, int, dict], Example | None]) -> tuple[list[Example], list[Example]]:
    """(train, heldout): generated with different seeds; questions in both are dropped from train."""
    held_rows = gym_rows(dataset, seed + HELDOUT_SEED_OFFSET, heldout_size, config)
    heldout = [ex for i, r in enumerate(held_rows) if (ex := to_example("eval", i, r)) is not None]
    seen = {ex.question for ex in heldout}
    train_rows = gym_rows(dataset, seed, train_size + heldout_size, config) if train_size else []
    train = [ex for i, r in enumerate(train_rows) if (ex := to_example("train", i, r)) is not None and ex.question not in seen]
    return train[:train_size], heldout


def _gym_example(dataset: str):
    def to_example(part: str, i: int, row: dict) -> Example:
        meta = row.get("metadata") or {}
        cols = {"data_source": f"gym:{dataset}"}
        if dataset == "countdown":
            cols.update(numbers=list(meta["numbers"]), target=int(meta["target"]))
        return Example(id=f"gym-{dataset}-{part}-{i}", question=row["question"], answer=str(row["answer"]), columns=cols)

    return to_example


@register_prefix("gym")
def gym(dataset: str, train_size: int = 2000, heldout_size: int = 200, seed: int = 0,
        config: dict[str, Any] | None = None, rewards: dict[str, float] | None = None,
        instruction: str = INSTRUCTION) -> Task:
    """``gym:<dataset>``: a reasoning-gym generator with ``config`` (its dataclass fields)."""
    cfg = dict(config or {})
    train, heldout = split(dataset, cfg, train_size, heldout_size, seed, _gym_example(dataset))
    if rewards is None:
        if dataset == "countdown":
            rewards = {"countdown": 1.0}
        elif all(plain_number(ex.answer) is not None for ex in train + heldout):
            rewards = {"math": 1.0}
        else:
            rewards = {"exact_answer": 1.0}
    correctness = next(iter(rewards))
    return Task(name=f"gym:{dataset}", train=train, heldout=heldout, rewards=rewards, instruction=instruction,
                correctness=correctness, meta={"generator": f"reasoning_gym.{dataset}", "config": cfg, "seed": seed})
