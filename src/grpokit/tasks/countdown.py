"""Countdown, TinyZero's task (Pan et al. 2025): combine 3-4 numbers with + - * / to hit a target.

Instances come from reasoning-gym's countdown generator (offline; every instance solvable);
instances whose target is one of the numbers are dropped (trivial). The prompt is TinyZero's.
Graded by ``grpokit.rewards.countdown`` (its own parser, exact fractions, each number at most
once), plus TinyZero's small format bonus through ``r1_format`` (0.1).
"""

from __future__ import annotations

from grpokit.records import Example
from grpokit.tasks import Task, register
from grpokit.tasks.gym import split

PROMPT = ("Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
          "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> "
          "tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.")


def _example(part: str, i: int, row: dict) -> Example | None:
    numbers, target = list(row["metadata"]["numbers"]), int(row["metadata"]["target"])
    if target in numbers:
        return None
    return Example(id=f"countdown-{part}-{i}", question=PROMPT.format(numbers=numbers, target=target),
                   answer=row["metadata"]["expression"],
                   columns={"numbers": numbers, "target": target, "data_source": "countdown"})


@register("countdown")
def countdown(train_size: int = 4000, heldout_size: int = 200, seed: int = 0, min_numbers: int = 3,
              max_numbers: int = 4, max_value: int = 99, min_target: int = 10, max_target: int = 100) -> Task:
    """TinyZero's setting: 3-4 numbers in 1..99, targets 10..100. ``answer`` is one valid solution."""
    cfg = dict(min_numbers=min_numbers, max_numbers=max_numbers, min_value=1, max_value=max_value,
               min_target=min_target, max_target=max_target)
    train, heldout = split("countdown", cfg, train_size, heldout_size, seed, _example)
    return Task(name="countdown", train=train, heldout=heldout, rewards={"countdown": 1.0, "r1_format": 0.1},
                instruction="", correctness="countdown",
                meta={"generator": "reasoning_gym.countdown", **cfg, "seed": seed})
