"""Hugging Face ``datasets`` by name: ``hf:<name>`` (e.g. ``hf:openai/gsm8k`` with ``config='main'``).

``datasets.load_dataset`` downloads from the Hub (online users) or reads a local dataset folder
(``hf:/path/to/folder`` holding data files, or one saved with ``save_to_disk``). Column mapping,
bad-row handling and ``data_source`` routing are those of file tasks (``tasks.files``). The
held-out split is ``heldout_split`` when the dataset has it (e.g. ``test``), else a fixed random
share of ``split``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grpokit.tasks import Task, register_prefix
from grpokit.tasks.files import handle_bad_rows, make_task, random_split, rows_to_examples


def _load(name: str, config: str | None, split: str):
    try:
        import datasets
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("hf: tasks need the `datasets` package: pip install 'grpokit[data]'") from e
    p = Path(name)
    if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "state.json").exists()):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"{name} has splits {sorted(ds)}, not {split!r}; pass split=")
            ds = ds[split]
        return ds
    try:
        return datasets.load_dataset(name, config, split=split)
    except ValueError as e:
        if "split" in str(e).lower() or "Unknown split" in str(e):
            raise ValueError(f"dataset {name!r} has no split {split!r}: {e}") from e
        raise


@register_prefix("hf")
def from_hf(name: str, config: str | None = None, split: str = "train", heldout_split: str | None = "test",
            question_key: str = "question", answer_key: str | None = "answer", columns: dict[str, str] | None = None,
            data_source: str | None = None, heldout_size: int = 500, seed: int = 0, rewards: dict | None = None,
            instruction: str = "", on_bad_row: str = "error", max_rows: int | None = None,
            tools: list | None = None) -> Task:
    """A dataset from the Hub or a local folder, with the column mapping (and conversational rows) of file tasks."""
    kw: dict[str, Any] = dict(question_key=question_key, answer_key=answer_key, columns=columns, data_source=data_source)

    def rows(ds, label):
        n = len(ds) if max_rows is None else min(max_rows, len(ds))
        return ((f"{name} [{label}] row {i + 1}", ds[i]) for i in range(n))

    train_ds = _load(name, config, split)
    train, bad = rows_to_examples(rows(train_ds, split), f"hf-{Path(name).name}-{split}", **kw)
    heldout = None
    if heldout_split and heldout_split != split:
        try:
            held_ds = _load(name, config, heldout_split)
        except ValueError:
            held_ds = None  # no such split: fall back to a random share of `split`
        if held_ds is not None:
            heldout, bad_h = rows_to_examples(rows(held_ds, heldout_split), f"hf-{Path(name).name}-{heldout_split}", **kw)
            heldout = heldout[:heldout_size]
            bad += bad_h
    if heldout is None:
        train, heldout = random_split(train, heldout_size, seed)
    handle_bad_rows(bad, on_bad_row, f"hf:{name}")
    return make_task(f"hf:{name}", train, heldout, bad, rewards, instruction,
                     {"dataset": name, "config": config, "split": split, "heldout_split": heldout_split}, tools)
