"""Math reward internals: answer extraction, the exact-number readers, the fast path, the pool."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import pytest

import grpokit.rewards.math as m
from grpokit.rewards.numbers import AMBIGUOUS, exact_number, plain_number
from grpokit.rewards.verify_pool import VerifyPool

@pytest.mark.parametrize("text,region,answer,status", [
    ("<think>a</think><answer> 5 </answer>", "auto", "5", "ok"),
    ("<think>a</think> so \\boxed{7}", "auto", "7", "ok"),
    ("<think>\\boxed{3}</think> \\boxed{7}", "auto", "7", "ok"),  # boxes inside the reasoning do not count
    ("\\boxed{3} then \\boxed{7}", "auto", None, "multiple"),
    ("\\boxed{3} then \\boxed{ 3}", "boxed", "3", "ok"),
    ("<answer>1</answer><answer>2</answer>", "answer", None, "multiple"),
    ("no tags at all 42", "auto", None, "missing"),
    ("<answer></answer>", "answer", None, "missing"),
    ("<answer>4</answer>", "think", None, "missing"),
    ("<think>x</think> The answer is 12.", "think", "12", "ok"),
    ("\\boxed{" + "1" * 250 + "}", "boxed", None, "too_long"),
    ("\\fbox{9}", "boxed", "9", "ok"),
    ("\\boxed{\\frac{1}{2}}", "boxed", "\\frac{1}{2}", "ok"),
])
def test_extract_answer(text, region, answer, status):
    assert m.extract_answer(text, region) == m.Extracted(answer, status)


def test_answer_region_and_last_boxed_keep_their_contract():
    assert m.answer_region("<think>a</think>tail", "think") == "tail"
    assert m.answer_region("<answer>1</answer> x <answer>2</answer>", "answer") == "2"
    assert m.last_boxed("\\boxed{a{b}c} \\boxed{d}") == "d"
    assert m.last_boxed("\\boxed{unbalanced") is None
    with pytest.raises(ValueError, match="unknown answer region"):
        m.answer_region("x", "last_number")


@pytest.mark.parametrize("s,value", [
    ("72", 72), ("-3.5", Fraction(-7, 2)), ("1,234", 1234), ("$72", 72), ("\\$72", 72), ("72.", 72),
    ("$\\frac{3}{4}$", Fraction(3, 4)), ("\\dfrac34", Fraction(3, 4)), ("3/4", Fraction(3, 4)),
    ("1{,}000", 1000), ("1,00", None), ("5 cm", None), ("x", None), ("3/0", None), ("2^3", None),
])
def test_plain_number(s, value):
    assert plain_number(s) == (None if value is None else Fraction(value))


@pytest.mark.parametrize("s,value", [
    ("72.0", 72), ("$1,234.00 dollars", 1234), ("#### 18", 18), ("Solution... #### -3,500", -3500),
    ("x = 12", 12), ("\\text{12 apples}", 12), ("\\frac{1}{2}", Fraction(1, 2)), ("5 or 6", AMBIGUOUS),
    ("5 - 3", AMBIGUOUS), ("12 and 12.0", 12), ("no number", None), ("7\\%", 7),
])
def test_exact_number(s, value):
    assert exact_number(s) == (value if value in (None, AMBIGUOUS) else Fraction(value))


def test_plain_numbers_never_start_a_worker(monkeypatch):
    def no_pool():
        raise AssertionError("the fast path must not use the worker pool")

    monkeypatch.setattr(m, "verify_pool", no_pool)
    m._CACHE.clear()
    golds = ["71", "1,000", "0.5", "\\frac{1}{2}", "5"]
    answers = ["71", "1000", "1/2", "0.5", "5 or 6"]
    assert m.grade_many(golds, answers) == [True, True, True, True, False]


def test_exact_mode_rejects_a_non_numeric_gold():
    with pytest.raises(ValueError, match="exact mode needs a single number"):
        m.grade("blue", "2", mode="exact")


def test_reward_gives_none_without_reference():
    assert m.math([""] * 2, ["\\boxed{1}", "\\boxed{1}"], answer=[None, "1"]) == [None, 1.0]


def test_bad_reference_type_is_an_error():
    with pytest.raises(ValueError, match="use a string or a number"):
        m.math([""], ["\\boxed{1}"], answer=[[1, 2]])


def test_hard_timeout_kills_one_worker_and_the_pool_goes_on():
    # math-verify's own alarm is set far away, so only the parent's hard kill can stop the pathological pair.
    pool = VerifyPool(n_workers=1, hard_timeout=1.0, inner_timeout=60)
    try:
        pairs = [("$5$", "$5$"), ("$5$", "$10^{10^{10}}$"), ("$\\frac12$", "$0.5$")]
        t0 = time.monotonic()
        verdicts = pool.map(pairs)
        assert [v.ok for v in verdicts] == [True, False, True]
        assert "timeout" in verdicts[1].error
        assert pool.timeouts == 1
        assert time.monotonic() - t0 < 30
    finally:
        pool.close()


def test_worker_has_a_memory_limit_and_is_reused():
    pool = VerifyPool(n_workers=1, memory_mb=1536)
    try:
        pool.map([("$1$", "$1$")])
        (pid,) = pool.pids()
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert line.split()[3] == str(1536 * 1024 * 1024)
        pool.map([("$2$", "$2$")])
        assert pool.pids() == [pid]  # persistent: no new process per call
    finally:
        pool.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["exit", "sigkill", "sigkill_while_busy"])
def test_no_orphan_workers_when_the_trainer_ends(how):
    # The "trainer" loads verify_pool.py by path (it imports nothing from grpokit, so no torch import
    # slows this test down), grades one pair through a worker, then exits or is SIGKILLed.
    pool_file = Path(m.__file__).with_name("verify_pool.py")
    script = textwrap.dedent(f"""
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("verify_pool", {str(pool_file)!r})
        vp = sys.modules["verify_pool"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(vp)
        pool = vp.VerifyPool(n_workers=2, hard_timeout=120, inner_timeout=120)
        assert [v.ok for v in pool.map([("$\\sqrt{{2}}$", "$2^{{1/2}}$"), ("$1$", "$2$")])] == [True, False]
        print(" ".join(map(str, pool.pids())), flush=True)
        if {how == "sigkill_while_busy"!r}:  # both workers deep in sympy when the trainer dies
            pool.map([("$5$", "$10^{{10^{{10}}}}$"), ("$6$", "$9^{{9^{{9}}}}$")])
        if {how != "exit"!r}:
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    if how != "exit":
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


PY_PAYLOADS = [
    "__import__('os').system('touch {f}')",
    "(lambda: __import__('pathlib').Path('{f}').touch())()",
]


@pytest.mark.parametrize("payload", PY_PAYLOADS)
def test_control_payloads_do_write_when_evaluated(tmp_path, payload):
    """The payloads are real: sympy's parse_expr (what math-verify's expression extraction calls) runs them."""
    f = tmp_path / "written"
    code = f"from sympy.parsing.sympy_parser import parse_expr\ntry:\n parse_expr({payload.format(f=f)!r})\nexcept Exception: pass"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert f.exists()


@pytest.mark.parametrize("payload", PY_PAYLOADS)
def test_worker_guard_refuses_sympy_string_evaluation(tmp_path, payload):
    f = tmp_path / "written"
    worker_dir = Path(m.__file__).parent / "_scripts"
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(worker_dir)!r})
        import math_worker
        math_worker.install_eval_guard()
        from sympy import sympify, Integer
        assert sympify("12") == Integer(12)
        try:
            sympify({payload.format(f=f)!r})
        except Exception as e:
            print("refused", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused" in out.stdout, out.stderr
    assert not f.exists()


def test_the_trainer_process_never_evaluates_model_text(monkeypatch):
    """Neither path calls sympy's string evaluation (behind sympify / parse_expr) in this process."""
    import sympy.parsing.sympy_parser as sp

    calls = []
    monkeypatch.setattr(sp, "eval_expr", lambda code, *a: calls.append(code))
    m._CACHE.clear()
    texts = ["\\boxed{71}", "\\boxed{\\frac{1}{2}}", "\\boxed{\\sqrt{2}}", "\\boxed{__import__('os')}", "<answer>x=2</answer>"]
    m.math([""] * 5, texts, answer=["71", "0.5", "\\sqrt{2}", "1", "2"])
    m.math_exact([""] * 5, texts, answer=["71", "0.5", "2", "1", "2"])
    assert calls == []
