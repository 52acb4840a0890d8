"""The math verifier against a table of (gold, completion, expected) cases.

Every case goes through the public ``math`` reward (region extraction, one-answer rule, fast path
or worker pool), so the table checks what training sees. Malicious answers must score 0 and must
never run: each payload would create a file if anything evaluated it.
"""

from __future__ import annotations

import pytest

from grpokit.rewards import resolve

B = "\\boxed{%s}"

AUTO_CASES = [
    # plain numbers (fast path)
    ("71", B % "71", 1), ("71", B % "72", 0), ("-3", B % "-3", 1), ("-3", B % "3", 0),
    ("72", B % "72.0", 1), ("0.5", B % ".5", 1), ("72", B % "72.", 1), ("3.14", B % "3.140", 1),
    # fractions and \frac
    ("1/2", B % "\\frac{1}{2}", 1), ("\\frac{1}{2}", B % "0.5", 1), ("\\frac{3}{4}", B % "\\dfrac34", 1),
    ("\\frac{2}{4}", B % "\\frac12", 1), ("\\frac{1}{3}", B % "0.33", 0), ("\\frac{1}{2}", B % "\\frac{2}{1}", 0),
    ("-\\frac{1}{2}", B % "-0.5", 1), ("\\frac{7}{2}", B % "3\\frac{1}{2}", 1),
    # roots
    ("\\sqrt{2}", B % "2^{1/2}", 1), ("2\\sqrt{2}", B % "\\sqrt{8}", 1), ("\\sqrt{3}", B % "\\sqrt{2}", 0),
    ("\\frac{\\sqrt{2}}{2}", B % "\\frac{1}{\\sqrt{2}}", 1), ("3+\\sqrt{5}", B % "\\sqrt{5}+3", 1),
    # sets
    ("\\{1,2\\}", B % "\\{2,1\\}", 1), ("\\{1,2\\}", B % "\\{1,3\\}", 0), ("\\{1,2,3\\}", B % "\\{1,2\\}", 0),
    # intervals
    ("[1,3)", B % "[1,3)", 1), ("(1,3]", B % "[1,3)", 0), ("(-\\infty, 2]", B % "(-\\infty,2]", 1),
    ("(0,1)", B % "(0,1]", 0),
    # units
    ("5", B % "5\\text{ cm}", 1), ("12", B % "12 \\text{ dollars}", 1), ("5", B % "6\\text{ cm}", 0),
    # percentages
    ("50", B % "50\\%", 1), ("25\\%", B % "25", 1), ("50", B % "40\\%", 0),
    # thousands separators
    ("1000", B % "1,000", 1), ("1234567", B % "1,234,567", 1), ("1000", B % "1{,}000", 1),
    ("1000", B % "1,001", 0), ("1000", B % "\\$1,000", 1),
    # equations
    ("2", B % "x=2", 1), ("x=2", B % "2", 1), ("x=2", B % "x = 3", 0), ("y=2x+1", B % "y = 1 + 2x", 1),
    # hedging and several answers
    ("5", "\\boxed{5} or \\boxed{6}", 0), ("5", B % "5 \\text{ or } 6", 0), ("5", B % "5 or 6", 0),
    ("5", "<answer>5</answer> <answer>6</answer>", 0), ("5", B % "5, 6", 0), ("5", B % "\\{5,6\\}", 0),
    ("5", "<answer>either 5 or 6</answer>", 0), ("5", "first \\boxed{5}, checked: \\boxed{5}", 1),
    ("5", "<answer>5</answer> <answer>5</answer>", 1), ("5", B % "x=5, y=6", 0),
    # where the answer must be: no "last number anywhere"
    ("5", "<think>maybe 6</think><answer>5</answer>", 1), ("5", "<think>\\boxed{5}</think><answer>6</answer>", 0),
    ("5", "<think>the answer is 5</think>", 0), ("5", "The answer is 5", 0), ("5", "<think>x</think> The answer is 5.", 1),
    ("5", "<think>x</think> \\boxed{5}", 1), ("5", "<think>x</think> <answer>The final answer is $5$</answer>", 1),
    # length cap
    ("5", B % ("5" + " + 0" * 80), 0),
    # pathological: one timeout, score 0
    ("5", B % "2^{2^{30}}", 0),
]

EXACT_CASES = [  # GSM8K-style integer answers: math(mode='exact')
    ("72", B % "72.0", 1), ("1234", B % "\\$1,234", 1), ("18", B % "18 vacuum cleaners", 1),
    ("18", B % "17 or 18", 0), ("5", "<think>x</think> 5 hours", 1), ("72", B % "72\\%", 1),
    ("72", B % "7.2", 0), ("1,234", B % "1234", 1), ("12", "<answer>x = 12</answer>", 1),
    ("12", "<answer>3 * 4 = 12</answer>", 0), ("-4", B % "-4", 1), ("7", "The answer is 7", 0),
]

PAYLOADS = [
    "__import__('os').system('touch {f}')",
    "\\text{{__import__(\"os\").system(\"touch {f}\")}}",
    "exec(\"open('{f}','w').write('x')\")",
    "eval(compile('open(\"{f}\",\"w\")','a','exec'))",
    "(lambda: __import__('os').system('touch {f}'))()",
    "Symbol('x').__class__.__init__.__globals__['__builtins__']['open']('{f}','w')",
    "__import__('pathlib').Path('{f}').touch()",
    "x=__import__('os').system('touch {f}')",
]


@pytest.mark.parametrize("gold,completion,expected", AUTO_CASES)
def test_auto_mode_table(gold, completion, expected):
    assert resolve("math")([""], [completion], answer=[gold]) == [float(expected)]


@pytest.mark.parametrize("gold,completion,expected", EXACT_CASES)
def test_exact_mode_table(gold, completion, expected):
    assert resolve("math(mode='exact')")([""], [completion], answer=[gold]) == [float(expected)]


def test_table_is_large_enough():
    assert len(AUTO_CASES) + len(EXACT_CASES) >= 60


@pytest.mark.parametrize("mode", ["auto", "exact", "symbolic"])
@pytest.mark.parametrize("wrap", ["\\boxed{%s}", "<answer>%s</answer>", "<think>t</think> %s"])
def test_malicious_answers_never_run(tmp_path, mode, wrap):
    files = [tmp_path / f"pwned{i}" for i in range(len(PAYLOADS))]
    completions = [wrap % p.format(f=f) for p, f in zip(PAYLOADS, files)]
    # The gold is a number that cannot occur in the tmp path, so no payload is "right" by accident.
    gold = ["987654321"] * len(completions)
    rewards = resolve(f"math(mode={mode!r})")([""] * len(completions), completions, answer=gold)
    assert rewards == [0.0] * len(completions)
    assert [f for f in files if f.exists()] == []
