"""Prompts from JSONL / Parquet files (and, through ``tasks.hf``, Hugging Face datasets).

Columns are mapped with ``question_key`` / ``answer_key`` and ``columns`` (a rename map, e.g.
``{"solution": "answer_text", "source": "data_source"}``); every other column reaches the reward
functions unchanged. A ``data_source`` column routes each row to its rewards (the default reward
is then ``routed``), so one file can mix math and code.

Bad rows (no question, a question longer than ``max_question_chars``, a missing or ill-typed
answer, malformed code tests, a line that is not UTF-8 or not JSON) are reported with their file
and line. ``on_bad_row="error"`` (the default) stops with the list; ``"skip"`` drops
them with a warning and records them in ``task.meta["bad_rows"]``. They are never trained on.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from grpokit.records import Example
from grpokit.tasks import Task, register
from grpokit.tasks.conversational import check_conversation, episode_env, question_of
from grpokit.rewards.code import parse_tests

log = logging.getLogger(__name__)
ON_BAD_ROW = ("error", "skip")
MAX_QUESTION_CHARS = 100_000
"""Default cap on a question's length: ~25k tokens, far above any benchmark's prompts; a row past
it is almost always a broken export (a whole document in one cell)."""


@dataclass(frozen=True)
class BadRow:
    """Where a rejected row is (``file:line``, or ``source row N``) and why it was rejected."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def check_data_file(path: Path, what: str = "task file") -> None:
    """A clear error when ``path`` is missing or a directory (before anything is read)."""
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory: point at a .jsonl, .json or .parquet file inside it")


def read_rows(path: Path) -> Iterable[tuple[str, Any]]:
    """``(location, row)`` pairs; a line that is not UTF-8 or not JSON is yielded as an error string row."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(f"{path}: reading Parquet needs the `pyarrow` package: "
                                      f"pip install 'grpokit[data]'") from e

        for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield f"{path} row {i}", row
        return
    with open(path, "rb") as f:
        if path.suffix == ".json" and f.read(1) == b"[":  # a JSON array of rows
            f.seek(0)
            raw = f.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                line = raw[:e.start].count(b"\n") + 1
                raise ValueError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None
            for i, row in enumerate(json.loads(text), 1):
                yield f"{path} item {i}", row
            return
        f.seek(0)
        for lineno, raw_line in enumerate(f, 1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield f"{path}:{lineno}", _NotJson(f"not UTF-8 text (byte {raw_line[e.start]:#04x} at column {e.start + 1}); "
                                                   f"save the file as UTF-8")
                continue
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as e:
                yield f"{path}:{lineno}", _NotJson(f"not valid JSON ({e.msg}); fix or remove that line")


class _NotJson(str):
    """A line that could not be read, with the reason."""


def _check_row(row: Any, question_key: str, answer_key: str | None,
               max_question_chars: int = MAX_QUESTION_CHARS) -> str | None:
    """Why ``row`` cannot be used, or None when it is fine."""
    if isinstance(row, _NotJson):
        return str(row)
    if not isinstance(row, dict):
        return f"a row must be an object with columns, got {type(row).__name__}"
    bad_conv = check_conversation(row)
    if bad_conv:
        return bad_conv
    q = row.get(question_key) if question_key in row else question_of(row)
    if not isinstance(q, str) or not q.strip():
        return f"column {question_key!r} must be a non-empty string (columns: {sorted(row)})"
    if len(q) > max_question_chars:
        return (f"the question has {len(q):,} characters, more than max_question_chars={max_question_chars:,}; "
                f"check the row, or raise the cap with task_options {{max_question_chars: N}}")
    if row.get("tests") is not None:
        try:
            parse_tests(row["tests"])
        except (ValueError, TypeError) as e:
            return f"column 'tests' is malformed: {e}"
        return None
    if answer_key is None:
        return None
    if answer_key in row and row[answer_key] is None and row.get("data_source") is not None:
        # An explicit null with a data_source: a prompt without a reference answer, routed to rewards
        # that need none (a reward model for general prompts, as R1's final RL stage).
        return None
    if answer_key not in row or row[answer_key] is None:
        return f"missing answer column {answer_key!r} (columns: {sorted(row)}); map yours with answer_key="
    a = row[answer_key]
    if isinstance(a, bool) or not isinstance(a, (str, int, float)):
        return f"answer {a!r} has type {type(a).__name__}; expected a string or a number"
    if isinstance(a, str) and not a.strip():
        return f"answer column {answer_key!r} is empty"
    return None


def rows_to_examples(rows: Iterable[tuple[str, Any]], prefix: str, question_key: str = "question",
                     answer_key: str | None = "answer", columns: dict[str, str] | None = None,
                     data_source: str | None = None,
                     max_question_chars: int = MAX_QUESTION_CHARS) -> tuple[list[Example], list[BadRow]]:
    """Validated examples and the rejected rows. ``columns`` renames columns before anything else."""
    examples, bad = [], []
    for i, (where, row) in enumerate(rows):
        if columns and isinstance(row, dict):
            row = {columns.get(k, k): v for k, v in row.items()}
        reason = _check_row(row, question_key, answer_key, max_question_chars)
        if reason:
            bad.append(BadRow(where, reason))
            continue
        cols = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
        if data_source is not None:
            cols["data_source"] = data_source
        answer = row.get(answer_key) if answer_key else None
        question = row[question_key] if question_key in row else question_of(row)  # conversational rows: last user message
        examples.append(Example(id=f"{prefix}-{i}", question=question, answer=answer, columns=cols))
    return examples, bad


def handle_bad_rows(bad: list[BadRow], on_bad_row: str, source: str) -> None:
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}, got {on_bad_row!r}")
    if not bad:
        return
    listing = "\n  ".join(map(str, bad[:20])) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
    if on_bad_row == "error":
        raise ValueError(f"{len(bad)} bad row(s) in {source}:\n  {listing}\n"
                         "fix them, or pass on_bad_row='skip' to leave them out (they are listed in task.meta)")
    log.warning("skipping %d bad row(s) in %s:\n  %s", len(bad), source, listing)


def default_rewards(examples: list[Example]) -> tuple[dict[str, float], str]:
    """``routed`` when rows carry a ``data_source``; ``math`` otherwise."""
    if any("data_source" in ex.columns for ex in examples):
        return {"routed": 1.0}, "routed"
    return {"math": 1.0}, "math"


def make_task(name: str, train: list[Example], heldout: list[Example], bad: list[BadRow],
              rewards: dict[str, float] | None, instruction: str, meta: dict[str, Any], tools: list | None = None) -> Task:
    if not train and not heldout:
        raise ValueError(f"task {name!r} has no usable rows")
    if rewards is None:
        rewards, correctness = default_rewards(train + heldout)
    else:
        correctness = next(iter(rewards))
    return Task(name=name, train=train, heldout=heldout, rewards=rewards, instruction=instruction,
                correctness=correctness, meta={**meta, "bad_rows": [str(b) for b in bad]},
                env=episode_env(train + heldout, tools, instruction))


def random_split(examples: list[Example], heldout_size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, heldout): at most ``heldout_size`` and at most a fifth of the rows are held out."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    k = min(heldout_size, len(examples) // 5)
    return [examples[i] for i in sorted(order[k:])], [examples[i] for i in sorted(order[:k])]


@register("file")
def from_file(path: str, question_key: str = "question", answer_key: str | None = "answer",
              heldout_path: str | None = None, heldout_size: int = 100, seed: int = 0,
              rewards: dict | None = None, instruction: str = "", columns: dict[str, str] | None = None,
              data_source: str | None = None, on_bad_row: str = "error",
              max_question_chars: int = MAX_QUESTION_CHARS, tools: list | None = None) -> Task:
    """Rows ``{question_key: str, answer_key: ...}`` from a ``.jsonl``, ``.json`` or ``.parquet`` file.

    Conversational rows (``prompt``/``messages`` lists, optional ``tools``) are read too
    (``tasks.conversational``); ``tools`` gives every row those tools (multi-turn episodes).
    """
    p = Path(path)
    check_data_file(p)
    if heldout_path:
        check_data_file(Path(heldout_path), "held-out file")
    kw = dict(question_key=question_key, answer_key=answer_key, columns=columns, data_source=data_source,
              max_question_chars=max_question_chars)
    rows, bad = rows_to_examples(read_rows(p), p.stem, **kw)
    if heldout_path:
        hp = Path(heldout_path)
        heldout, bad_h = rows_to_examples(read_rows(hp), f"{hp.stem}-heldout", **kw)
        bad += bad_h
        train = rows
    else:
        train, heldout = random_split(rows, heldout_size, seed)
    handle_bad_rows(bad, on_bad_row, str(p))
    return make_task(p.stem, train, heldout, bad, rewards, instruction, {"path": str(p)}, tools)
