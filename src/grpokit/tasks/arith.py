"""Default task: integer arithmetic from ``reasoning-gym``'s generator (offline, deterministic).

``add2`` (two-digit addition) is the default: SmolLM2-135M-Instruct gets some right greedily out of
the box, so GRPO has signal from the first step, and it can visibly learn it on a laptop CPU.
Graded by grpokit's own exact-number check (``final_number``: the last boxed or final number), never by evaluating model text.
"""

from __future__ import annotations

from grpokit.records import Example
from grpokit.tasks import Task, register

INSTRUCTION = ""


def _generate(prefix: str, seed: int, size: int, **cfg) -> list[Example]:
    import reasoning_gym

    ds = reasoning_gym.create_dataset("basic_arithmetic", seed=seed, size=size, **cfg)
    return [Example(id=f"{prefix}-{i}", question=row["question"], answer=str(row["answer"]),
                    columns={"data_source": "math"}) for i, row in enumerate(ds)]


def _split(name: str, cfg: dict, train_size: int, heldout_size: int, seed: int) -> Task:
    heldout, seen = [], set()
    for ex in _generate(f"{name}-eval", seed + 1_000_003, heldout_size, **cfg):
        if ex.question not in seen:  # distinct questions: a duplicate would count twice
            heldout.append(ex)
            seen.add(ex.question)
    # Oversample, then drop training questions that also appear in the held-out split.
    train = [ex for ex in _generate(f"{name}-train", seed, train_size + heldout_size, **cfg) if ex.question not in seen]
    return Task(name=name, train=train[:train_size], heldout=heldout, rewards={"final_number": 1.0},
                instruction=INSTRUCTION, correctness="final_number",
                meta={"generator": "reasoning_gym.basic_arithmetic", **cfg, "seed": seed})


@register("add2")
def add2(train_size: int = 4000, heldout_size: int = 200, seed: int = 0) -> Task:
    """Two two-digit non-negative integers added: ``Calculate 95 + 21.`` -> ``116``."""
    cfg = dict(min_terms=2, max_terms=2, min_digits=2, max_digits=2, operators=("+",),
               allow_parentheses=False, allow_negation=False)
    return _split("add2", cfg, train_size, heldout_size, seed)


@register("add1")
def add1(train_size: int = 4000, heldout_size: int = 40, seed: int = 0) -> Task:
    """Two one-digit numbers added: ``Calculate 7 + 8.`` -> ``15`` (the quickstart task).

    SmolLM2-135M-Instruct answers about half of these greedily out of the box (measured: 52% on 48
    questions), so every group has signal from the first step; ``add2`` starts near 5% and is too
    sparse for a 15-minute CPU run. There are only 100 distinct questions: the held-out split takes
    about a third of them and training never sees those.
    """
    cfg = dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1, operators=("+",),
               allow_parentheses=False, allow_negation=False)
    return _split("add1", cfg, train_size, heldout_size, seed)


@register("arith")
def arith(train_size: int = 4000, heldout_size: int = 200, seed: int = 0, min_terms: int = 2,
          max_terms: int = 3, min_digits: int = 1, max_digits: int = 2, operators: str = "+-*") -> Task:
    """Mixed integer arithmetic (a harder curriculum step than ``add2``)."""
    cfg = dict(min_terms=min_terms, max_terms=max_terms, min_digits=min_digits, max_digits=max_digits,
               operators=tuple(operators), allow_parentheses=False, allow_negation=False)
    return _split("arith", cfg, train_size, heldout_size, seed)
