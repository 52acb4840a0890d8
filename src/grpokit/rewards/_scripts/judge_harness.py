"""Trusted judge for HumanEval-style ``check(candidate)`` tests, run in a sandbox of its own.

No model code ever runs here: only the dataset's prompt, reference solution and test code, plus
model *outputs* decoded from tagged JSON (plain built-in values). Prepended with ``codec.py``.

Every ``assert E`` in the test source is rewritten into ``__judge_assert__(lambda: E)``, which
records whether ``E`` held instead of stopping at the first failure. An assert *counts* when the
candidate was called since the previous assert (so ``assert True`` lines score nothing).

- ``{"op": "record", "prelude", "test", "entry_point", "seed"}``: run ``check`` on the reference
  solution; report every call's arguments (tagged JSON, taken before the call) and, per assert,
  ``[counted, passed]``.
- ``{"op": "replay", "prelude", "test", "entry_point", "seed", "calls", "outputs": [[result, ...],
  ...]}``: for each program, run ``check`` again with a stand-in candidate that checks it is
  called with the recorded arguments in the recorded order and returns that program's recorded
  result (or raises its error); report per assert ``passed``.
"""

import ast
import json
import random
import sys


class _Judge:
    def __init__(self):
        self.calls = 0
        self.at_last_assert = 0
        self.asserts = []

    def judge_assert(self, thunk):
        try:
            ok = bool(thunk())
        except BaseException:
            ok = False
        self.asserts.append([self.calls > self.at_last_assert, ok])
        self.at_last_assert = self.calls


class _AssertToCall(ast.NodeTransformer):
    def visit_Assert(self, node):
        thunk = ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                                              kwarg=None, defaults=[]), body=node.test)
        call = ast.Call(func=ast.Name(id="__judge_assert__", ctx=ast.Load()), args=[thunk], keywords=[])
        return ast.copy_location(ast.Expr(value=call), node)


def _load(job, judge):
    tree = _AssertToCall().visit(ast.parse(job["test"]))
    ast.fix_missing_locations(tree)
    ns = {"__name__": "__judge__", "__judge_assert__": judge.judge_assert}
    exec(compile(job["prelude"], "<prelude>", "exec"), ns)
    exec(compile(tree, "<test>", "exec"), ns)
    return ns


def _run_check(ns, candidate, seed):
    random.seed(seed)
    try:
        ns["check"](candidate)
    except BaseException:
        pass  # asserts not reached are failures; the parent knows how many there should be


def record(job):
    judge = _Judge()
    ns = _load(job, judge)
    real = ns[job["entry_point"]]
    calls = []

    def recorder(*args, **kwargs):
        calls.append([encode(list(args)), encode(kwargs)])
        judge.calls += 1
        return real(*args, **kwargs)

    _run_check(ns, recorder, job["seed"])
    return {"calls": calls, "asserts": judge.asserts}


class CandidateFailed(Exception):
    pass


def replay(job):
    results = []
    for outputs in job["outputs"]:
        judge = _Judge()
        ns = _load(job, judge)
        state = {"k": 0}

        def stand_in(*args, **kwargs):
            k = state["k"]
            state["k"] += 1
            judge.calls += 1
            if k >= len(job["calls"]) or [encode(list(args)), encode(kwargs)] != job["calls"][k]:
                raise CandidateFailed("called differently than when recorded")
            out = outputs[k] if k < len(outputs) else None
            if not isinstance(out, dict) or "value" not in out:
                raise CandidateFailed("the program failed on this call")
            return decode(out["value"])

        _run_check(ns, stand_in, job["seed"])
        results.append([ok for _, ok in judge.asserts])
    return {"results": results}


def main():
    job = json.loads(sys.stdin.read())
    out = record(job) if job["op"] == "record" else replay(job)
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


main()
