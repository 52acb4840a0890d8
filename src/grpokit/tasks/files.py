"""Prompts from JSONL / Parquet files with a column mapping."""

from __future__ import annotations

import json
from pathlib import Path

from grpokit.records import Example
from grpokit.tasks import Task, register


def _read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or remove that line") from e
    return rows


@register("file")
def from_file(path: str, question_key: str = "question", answer_key: str = "answer", heldout_path: str | None = None,
              heldout_size: int = 100, seed: int = 0, rewards: dict | None = None, instruction: str = "") -> Task:
    """Rows ``{question_key: str, answer_key: ...}``; other columns reach reward functions unchanged."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"task file {p} does not exist")

    def examples(rows, prefix):
        out = []
        for i, row in enumerate(rows):
            if question_key not in row or answer_key not in row:
                raise ValueError(f"{prefix} row {i + 1}: needs columns {question_key!r} and {answer_key!r}, "
                                 f"has {sorted(row)}; map yours with question_key= / answer_key=")
            cols = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
            out.append(Example(id=f"{p.stem}-{i}", question=str(row[question_key]), answer=row[answer_key], columns=cols))
        return out

    rows = examples(_read_rows(p), str(p))
    if heldout_path:
        heldout = examples(_read_rows(Path(heldout_path)), heldout_path)
        train = rows
    else:
        import random

        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        k = min(heldout_size, len(rows) // 5)
        heldout = [rows[i] for i in order[:k]]
        train = [rows[i] for i in order[k:]]
    return Task(name=p.stem, train=train, heldout=heldout, rewards=rewards or {"math": 1.0}, instruction=instruction)
