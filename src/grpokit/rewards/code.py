"""Code reward: run model-written Python against test cases in a sandbox; score = fraction passed.

The grading decision is made here, in the trainer process, by trusted code. The program runs in a
``grpokit.envs.sandbox.Sandbox`` and only reports raw results (its stdout per input, or the tagged-JSON
return value per call); the expected outputs never enter its sandbox. So a program that exits
early, hooks ``atexit``, returns an object whose ``__eq__`` is always True, or rewrites the
harness can at most forge results, which are right only if it solved the task.

Test formats (the ``tests`` column; a dict or its JSON text):

- ``{"format": "stdio", "inputs": [str], "outputs": [str]}``: competitive-programming style. A case
  passes when the program exits 0 within the time limit and its stdout equals the expected output
  (trailing whitespace per line and trailing blank lines ignored).
- ``{"format": "call", "fn_name": str, "cases": [{"args": [...], "kwargs": {...}, "expected": v}]}``:
  a case passes when the returned value equals ``expected`` (floats to 1e-6 relative).
- ``{"format": "humaneval", "prompt", "test", "entry_point", "canonical_solution"}``: HumanEval's
  ``check(candidate)``. A trusted judge (``_scripts/judge_harness.py``, its own sandbox) first runs
  ``check`` on the reference solution and records every call's arguments; the program is then
  called on exactly those arguments; finally the judge replays ``check`` with the program's
  recorded return values. Each assert that calls the candidate is one case.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpokit.rewards import register, register_factory
from grpokit.rewards._scripts.codec import decode, encode
from grpokit.envs.sandbox import Limits, RunResult, Sandbox

_SCRIPTS = Path(__file__).parent / "_scripts"
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PY_LANGS = ("", "python", "py", "python3")
MAX_CODE_CHARS = 20_000


def _script(name: str) -> str:
    return (_SCRIPTS / "codec.py").read_text() + "\n" + (_SCRIPTS / name).read_text()


def extract_code(text: str, allow_raw: bool = False) -> str | None:
    """The program in a completion: the last fenced Python block of its answer region (inside
    ``<answer>``, else after ``</think>``, else the whole text); with ``allow_raw``, the region
    itself when it has no fence (completion-style prompts). None when there is none."""
    tags = _ANSWER_RE.findall(text)
    scope = tags[-1] if tags else (text.rsplit("</think>", 1)[1] if "</think>" in text else text)
    blocks = [body for lang, body in _FENCE_RE.findall(scope) if lang.lower() in _PY_LANGS]
    code = blocks[-1] if blocks else (scope if allow_raw and scope.strip() else None)
    if code is None or len(code) > MAX_CODE_CHARS:
        return None
    return code


# --- test specifications -------------------------------------------------------------------

@dataclass(frozen=True)
class StdioTests:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class CallTests:
    fn_name: str
    cases: tuple[dict, ...]


@dataclass(frozen=True)
class HumanEvalTests:
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str


def parse_tests(spec: Any) -> StdioTests | CallTests | HumanEvalTests:
    """The ``tests`` column value -> a typed spec; a clear error for malformed ones."""
    if isinstance(spec, str):
        spec = json.loads(spec)
    if not isinstance(spec, dict) or "format" not in spec:
        raise ValueError("tests must be a dict with a 'format' key: 'stdio', 'call' or 'humaneval'")
    fmt = spec["format"]
    if fmt == "stdio":
        ins, outs = spec.get("inputs"), spec.get("outputs")
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs) or not ins:
            raise ValueError("stdio tests need equally long, non-empty 'inputs' and 'outputs' lists")
        return StdioTests(tuple(map(str, ins)), tuple(map(str, outs)))
    if fmt == "call":
        cases = spec.get("cases")
        if not isinstance(spec.get("fn_name"), str) or not isinstance(cases, list) or not cases:
            raise ValueError("call tests need 'fn_name' and a non-empty 'cases' list of {args, kwargs, expected}")
        for c in cases:
            if not isinstance(c, dict) or "expected" not in c or not isinstance(c.get("args", []), list):
                raise ValueError(f"call test case {c!r} needs 'args' (a list) and 'expected'")
        return CallTests(spec["fn_name"], tuple(cases))
    if fmt == "humaneval":
        keys = ("prompt", "test", "entry_point", "canonical_solution")
        if not all(isinstance(spec.get(k), str) for k in keys):
            raise ValueError(f"humaneval tests need string fields {keys}")
        return HumanEvalTests(*(spec[k] for k in keys))
    raise ValueError(f"unknown tests format {fmt!r}: use 'stdio', 'call' or 'humaneval'")


def _program(code: str, tests) -> str:
    if isinstance(tests, HumanEvalTests):
        # A full function redefines the prompt's stub; a bare body continues the prompt.
        if re.search(rf"^\s*def\s+{re.escape(tests.entry_point)}\s*\(", code, re.MULTILINE):
            return tests.prompt + "\n\n" + code
        return tests.prompt + code
    return code


def _same_stdout(got: str, expected: str) -> bool:
    def norm(s: str) -> list[str]:
        return [line.rstrip() for line in s.replace("\r\n", "\n").rstrip().split("\n")]

    return norm(got) == norm(expected)


def same_value(got: Any, expected: Any) -> bool:
    """Equality of plain decoded values; lists equal tuples; floats to 1e-6 relative; bools are not ints."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and isinstance(expected, (int, float)) and \
            math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(same_value(g, e) for g, e in zip(got, expected))
    if isinstance(expected, dict) and isinstance(got, dict):
        return got.keys() == expected.keys() and all(same_value(got[k], expected[k]) for k in expected)
    return type(got) is type(expected) and got == expected


# --- the runner ----------------------------------------------------------------------------

@dataclass
class CodeResult:
    """One completion's outcome: ``passed`` of ``total`` cases; ``status`` ``ok``, ``no_code``
    (format failure), ``load_error`` (syntax error, crash at import) or ``timeout``."""

    passed: int
    total: int
    status: str = "ok"

    @property
    def score(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass(frozen=True)
class _Record:
    calls: list
    counted: tuple[int, ...]  # indices of asserts that call the candidate and pass on the reference


class CodeRunner:
    """Grades programs in parallel (``sandbox.slots`` at a time) and keeps throughput counters."""

    def __init__(self, sandbox: Sandbox | None = None, case_timeout: float = 2.0, judge_wall_s: float = 60.0,
                 allow_raw: bool = False, seed: int = 0) -> None:
        self.sandbox = sandbox or Sandbox()
        self.case_timeout, self.judge_wall_s, self.allow_raw, self.seed = case_timeout, judge_wall_s, allow_raw, seed
        self._program_src, self._judge_src = _script("program_harness.py"), _script("judge_harness.py")
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self.programs_run = 0
        self.seconds = 0.0

    @property
    def programs_per_second(self) -> float:
        """Programs graded per second of ``grade`` wall time, over this runner's life."""
        return self.programs_run / self.seconds if self.seconds else 0.0

    def _map(self, fn, items: list) -> list:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=self.sandbox.slots) as ex:
            return list(ex.map(fn, items))

    def _run_program(self, job: dict) -> dict[int, dict]:
        n = len(job.get("inputs") or job.get("calls") or [])
        wall = min(self.sandbox.limits.wall_s, 1.0 + n * self.case_timeout)
        res = self.sandbox.run_python(self._program_src, json.dumps(job).encode(),
                                      self.sandbox.with_limits(wall_s=wall))
        return _parse_lines(res)

    def _judge(self, job: dict) -> dict:
        res = self.sandbox.run_python(self._judge_src, json.dumps(job).encode(),
                                      self.sandbox.with_limits(wall_s=self.judge_wall_s, memory_mb=2048))
        if res.returncode != 0:
            raise RuntimeError(f"the HumanEval judge failed ({'timeout' if res.timed_out else res.returncode}): "
                               f"{res.stderr.decode(errors='replace')[-500:]}")
        return json.loads(res.stdout)

    def _job_base(self, t: HumanEvalTests) -> dict:
        return {"prelude": t.prompt + t.canonical_solution, "test": t.test, "entry_point": t.entry_point,
                "seed": self.seed}

    def record(self, tests: HumanEvalTests) -> _Record:
        """The reference run of a HumanEval problem (cached): call arguments and the counted asserts."""
        key = hashlib.sha256(json.dumps(self._job_base(tests), sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._records:
                return self._records[key]
        out = self._judge({"op": "record", **self._job_base(tests)})
        counted = tuple(k for k, (calls_it, ok) in enumerate(out["asserts"]) if calls_it and ok)
        if not counted:
            raise ValueError(f"HumanEval problem {tests.entry_point!r}: no assert calls the candidate and passes on "
                             "the reference solution, so nothing can be scored")
        rec = _Record(out["calls"], counted)
        with self._lock:
            self._records[key] = rec
        return rec

    def grade(self, completions: list[str], tests: list[Any]) -> list[CodeResult]:
        """One ``CodeResult`` per completion; ``tests[i]`` grades ``completions[i]``."""
        t0 = time.monotonic()
        specs = [parse_tests(t) for t in tests]
        he = {s for s in specs if isinstance(s, HumanEvalTests)}
        records = dict(zip(he, self._map(self.record, list(he))))
        results: list[CodeResult | None] = [None] * len(completions)
        jobs, owners = [], []
        for i, (text, spec) in enumerate(zip(completions, specs)):
            code = extract_code(text, self.allow_raw)
            if code is None:
                results[i] = CodeResult(0, _n_cases(spec, records), "no_code")
                continue
            job = {"source": _program(code, spec), "case_timeout": self.case_timeout}
            if isinstance(spec, StdioTests):
                job.update(mode="stdio", inputs=list(spec.inputs))
            elif isinstance(spec, CallTests):
                job.update(mode="call", fn=spec.fn_name,
                           calls=[[encode(list(c.get("args", []))), encode(dict(c.get("kwargs", {})))] for c in spec.cases])
            else:
                job.update(mode="call", fn=spec.entry_point, calls=records[spec].calls)
            jobs.append(job)
            owners.append(i)
        outputs = self._map(self._run_program, jobs)
        self.programs_run += len(jobs)
        replay: dict[HumanEvalTests, list[tuple[int, dict]]] = {}
        for i, out in zip(owners, outputs):
            spec = specs[i]
            if "load_error" in out:
                results[i] = CodeResult(0, _n_cases(spec, records), "load_error")
            elif isinstance(spec, StdioTests):
                ok = [_stdio_pass(out.get(k), exp) for k, exp in enumerate(spec.outputs)]
                results[i] = CodeResult(sum(ok), len(ok), "timeout" if _any_timeout(out) else "ok")
            elif isinstance(spec, CallTests):
                ok = [_call_pass(out.get(k), c["expected"]) for k, c in enumerate(spec.cases)]
                results[i] = CodeResult(sum(ok), len(ok), "timeout" if _any_timeout(out) else "ok")
            elif not any("value" in out.get(k, {}) for k in range(len(records[spec].calls))):
                results[i] = CodeResult(0, len(records[spec].counted), "timeout" if _any_timeout(out) else "ok")
            else:
                replay.setdefault(spec, []).append((i, out))
        judged = self._map(lambda item: self._replay(*item, records[item[0]]), list(replay.items()))
        for scores in judged:
            for i, res in scores:
                results[i] = res
        self.seconds += time.monotonic() - t0
        return results  # type: ignore[return-value]

    def _replay(self, spec: HumanEvalTests, progs: list[tuple[int, dict]], rec: _Record) -> list[tuple[int, CodeResult]]:
        outputs = [[out.get(k) for k in range(len(rec.calls))] for _, out in progs]
        job = {"op": "replay", **self._job_base(spec), "calls": rec.calls, "outputs": outputs}
        results = self._judge(job)["results"]
        scored = []
        for (i, out), res in zip(progs, results):
            passed = sum(1 for k in rec.counted if k < len(res) and res[k] is True)
            scored.append((i, CodeResult(passed, len(rec.counted), "timeout" if _any_timeout(out) else "ok")))
        return scored


def _parse_lines(res: RunResult) -> dict:
    """The harness's result lines -> ``{case index: result}``; the first line per case wins."""
    out: dict = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if "load_error" in msg and not out:
            return {"load_error": str(msg["load_error"])[:100]}
        if isinstance(msg.get("i"), int) and msg["i"] not in out:
            out[msg["i"]] = msg
    if res.timed_out:
        out["timeout"] = True
    return out


def _any_timeout(out: dict) -> bool:
    return bool(out.get("timeout")) or any(isinstance(v, dict) and (v.get("timeout") or v.get("error") == "timeout")
                                           for v in out.values())


def _stdio_pass(got: dict | None, expected: str) -> bool:
    return bool(got) and got.get("exit") == 0 and not got.get("timeout") and \
        isinstance(got.get("stdout"), str) and _same_stdout(got["stdout"], expected)


def _call_pass(got: dict | None, expected: Any) -> bool:
    if not got or "value" not in got:
        return False
    try:
        return same_value(decode(got["value"]), expected)
    except (ValueError, TypeError, RecursionError):
        return False


def _n_cases(spec, records) -> int:
    if isinstance(spec, StdioTests):
        return len(spec.inputs)
    if isinstance(spec, CallTests):
        return len(spec.cases)
    return len(records[spec].counted)


# --- reward functions ----------------------------------------------------------------------

_RUNNER: CodeRunner | None = None


def default_runner() -> CodeRunner:
    """The process-wide runner (bubblewrap sandbox with default limits), created on first use."""
    global _RUNNER
    if _RUNNER is None:
        _RUNNER = CodeRunner()
    return _RUNNER


def code_tests_reward(runner: CodeRunner | None = None, case_timeout: float | None = None,
                      allow_raw: bool | None = None, memory_mb: int | None = None, mode: str = "bwrap"):
    """A ``code_tests`` reward with its own runner: ``code_tests(case_timeout=5, allow_raw=True)``."""
    if runner is None and ((case_timeout, allow_raw, memory_mb) != (None, None, None) or mode != "bwrap"):
        runner = CodeRunner(Sandbox(mode=mode, limits=Limits(memory_mb=memory_mb or Limits.memory_mb)),
                            case_timeout=case_timeout or 2.0, allow_raw=bool(allow_raw))

    def code_tests(prompts, completions, tests, **_) -> list[float | None]:
        """Fraction of the row's test cases the completion's program passes (sandboxed)."""
        r = runner or default_runner()
        idx = [i for i, t in enumerate(tests) if t is not None]
        out: list[float | None] = [None] * len(completions)
        for i, res in zip(idx, r.grade([completions[i] for i in idx], [tests[i] for i in idx])):
            out[i] = res.score
        return out

    return code_tests


register_factory("code_tests")(code_tests_reward)
code_tests = register("code_tests")(code_tests_reward())
