"""Conversational rows (message lists, per-row tools) from JSONL, Parquet and HF datasets; the tool task."""

import json

import pytest

from grpokit.tasks import load_task, task_names

ROWS = [{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"What is {i} * 7?"}],
         "answer": str(i * 7), "tools": ["calculator"]} for i in range(10)]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_jsonl_conversational_rows_become_a_multi_turn_task(tmp_path):
    task = load_task(_jsonl(tmp_path / "conv.jsonl", ROWS), heldout_size=2)
    ex = task.train[0]
    assert ex.question.startswith("What is ") and ex.columns["prompt"][0]["role"] == "system"
    assert task.env is not None
    start = task.env().reset(ex)
    assert start.messages == ex.columns["prompt"] and start.tools[0]["function"]["name"] == "calculator"


def test_parquet_rows_and_tools_option(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"messages": [{"role": "user", "content": f"{i} + 1?"}], "answer": str(i + 1)} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "conv.parquet")
    plain = load_task(str(tmp_path / "conv.parquet"), heldout_size=2)
    assert plain.env is None and plain.train[0].question.endswith("+ 1?")  # messages but no tools: single-turn
    tooled = load_task(str(tmp_path / "conv.parquet"), heldout_size=2, tools=["calculator"])
    assert [t["function"]["name"] for t in tooled.env().reset(tooled.train[0]).tools] == ["calculator"]


def test_hf_dataset_folder_with_conversational_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    task = load_task(f"hf:{tmp_path / 'ds'}", heldout_split=None, heldout_size=2)
    assert task.env is not None and task.train[0].columns["tools"] == ["calculator"]


def test_row_tool_given_as_a_schema_runs_the_named_tool(tmp_path):
    schema = {"type": "function", "function": {"name": "calculator", "description": "Multiply things.",
                                               "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                                              "required": ["expression"]}}}
    rows = [{**r, "tools": [schema]} for r in ROWS]
    task = load_task(_jsonl(tmp_path / "s.jsonl", rows), heldout_size=2)
    env = task.env()
    start = env.reset(task.train[0])
    assert start.tools == [schema]
    from grpokit.envs import parse_turn
    assert env.step(parse_turn("<tool>calculator: 6*7</tool>")).messages[0]["content"] == "42"


@pytest.mark.parametrize("row, reason", [
    ({"prompt": [{"role": "user"}], "answer": "1"}, "message 0"),
    ({"prompt": [{"role": "system", "content": "x"}], "answer": "1"}, "no user message"),
    ({"prompt": [{"role": "user", "content": "q"}], "answer": "1", "tools": "calculator"}, "column 'tools'"),
])
def test_bad_conversational_rows_are_named(tmp_path, row, reason):
    with pytest.raises(ValueError, match=reason):
        load_task(_jsonl(tmp_path / "bad.jsonl", [row] + ROWS), heldout_size=2)


def test_calculator_task_is_listed_and_multi_turn():
    assert "calculator_mul" in task_names()
    task = load_task("calculator_mul", train_size=20, heldout_size=5)
    ex = task.heldout[0]
    a, b = [int(x) for x in ex.question.removeprefix("Calculate ").rstrip(".").split(" * ")]
    assert ex.answer == str(a * b) and 100 <= a <= 999 and 100 <= b <= 999
    assert {e.question for e in task.train}.isdisjoint({e.question for e in task.heldout})
    start = task.env().reset(ex)
    assert start.messages[-1]["content"].startswith(ex.question) and start.messages[1]["role"] == "assistant"  # the demo
    assert task.meta["episode"] == {"max_turns": 3, "max_episode_tokens": 256}
    assert load_task("calculator_mul", train_size=5, heldout_size=2, demo=False).env().reset(ex).messages[0]["role"] == "user"
