"""File and Hugging Face tasks: column mapping, bad rows with file and line, data_source routing."""

from __future__ import annotations

import json

import pytest

from grpokit.rewards import build, score
from grpokit.tasks import load_task


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_column_mapping_and_extra_columns(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"q": f"{i}+1?", "sol": str(i + 1), "level": i} for i in range(10)])
    t = load_task(str(p), question_key="q", answer_key="ans", columns={"sol": "ans"}, heldout_size=2)
    assert len(t.train) == 8 and len(t.heldout) == 2 and t.rewards == {"math": 1.0}
    ex = t.train[0]
    assert ex.question.endswith("+1?") and ex.columns == {"level": int(ex.question.split("+")[0])}


def test_bad_rows_are_reported_with_file_and_line(tmp_path):
    rows = [{"question": "ok", "answer": "1"}, {"question": "no answer"}, "{not json",
            {"question": "list answer", "answer": [1, 2]}, {"question": "", "answer": "3"},
            {"question": "bool", "answer": True}, {"question": "fine", "answer": 2}]
    p = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError) as e:
        load_task(str(p))
    msg = str(e.value)
    assert "5 bad row(s)" in msg
    for line in (2, 3, 4, 5, 6):
        assert f"bad.jsonl:{line}:" in msg
    assert "missing answer column 'answer'" in msg and "not valid JSON" in msg and "type list" in msg
    t = load_task(str(p), on_bad_row="skip", heldout_size=0)
    assert sorted(ex.question for ex in t.train) == ["fine", "ok"]
    assert len(t.meta["bad_rows"]) == 5 and t.meta["bad_rows"][0].startswith(f"{p}:2:")
    with pytest.raises(ValueError, match="on_bad_row must be one of"):
        load_task(str(p), on_bad_row="ignore")


def test_parquet_rows_are_located_by_row_number(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"question": ["a", "b", "c"], "answer": ["1", None, "3"]}), p)
    with pytest.raises(ValueError, match=r"d.parquet row 2: missing answer"):
        load_task(str(p))


def test_mixed_math_and_code_rows_route_on_data_source(tmp_path):
    tests = {"format": "stdio", "inputs": ["2\n"], "outputs": ["4\n"]}
    rows = [{"question": "2+2?", "answer": "4", "data_source": "math"},
            {"question": "Double the input.", "tests": tests, "data_source": "code"},
            {"question": "Broken code row", "tests": {"format": "stdio", "inputs": ["1"]}, "data_source": "code"}]
    p = write_jsonl(tmp_path / "mixed.jsonl", rows)
    t = load_task(str(p), on_bad_row="skip", heldout_size=0)
    assert t.rewards == {"routed": 1.0} and len(t.train) == 2
    assert "mixed.jsonl:3: column 'tests' is malformed" in t.meta["bad_rows"][0]
    math_ex, code_ex = t.train
    cols = {k: [math_ex.reward_columns().get(k), code_ex.reward_columns().get(k)] for k in ("answer", "tests", "data_source")}
    completions = ["\\boxed{4}", "```python\nprint(2 * int(input()))\n```"]
    import shutil
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed")
    s = score(build(t.rewards), ["", ""], completions, cols)
    assert s.per_fn["routed"] == [1.0, 1.0]


def test_hf_local_dataset_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    d = tmp_path / "ds"
    d.mkdir()
    write_jsonl(d / "train.jsonl", [{"problem": f"{i}*2?", "solution": str(2 * i)} for i in range(12)])
    write_jsonl(d / "test.jsonl", [{"problem": f"{i}*3?", "solution": str(3 * i)} for i in range(4)])
    t = load_task(f"hf:{d}", question_key="problem", answer_key="solution", data_source="math")
    assert len(t.train) == 12 and len(t.heldout) == 4 and t.rewards == {"routed": 1.0}
    assert t.heldout[0].question == "0*3?" and t.heldout[0].columns == {"data_source": "math"}
    t2 = load_task(f"hf:{d}", question_key="problem", answer_key="solution", heldout_split="validation", heldout_size=3)
    assert len(t2.heldout) == 2 and len(t2.train) == 10  # no such split: a random fifth, at most heldout_size
