"""The reward contract: a reward that breaks it costs its own completions, never the run or other scores."""

from __future__ import annotations

import math
import threading

import pytest

from grpokit.rewards import RewardSpec, build, score
from grpokit.rewards.contract import time_limit

COMPLETIONS = ["a", "b", "c", "d"]
GOOD = [1.0, 2.0, 3.0, 4.0]


def run(fn, timeout=0.0, completions=COMPLETIONS):
    return score([RewardSpec("r", fn, 1.0, timeout)], [""] * len(completions), list(completions),
                 {"answer": [str(i) for i in range(len(completions))]})


def by_letter(completions):
    return [GOOD["abcd".index(c)] for c in completions]


def test_a_good_reward_scores_every_completion():
    s = run(lambda p, c, **k: by_letter(c))
    assert s.per_fn["r"] == GOOD and s.valid.all() and s.errors == []


@pytest.mark.parametrize("extra", [1, -1])
def test_a_wrong_count_never_shifts_scores(extra):
    def fn(prompts, completions, **kw):  # one value too many / too few, on every call
        out = by_letter(completions)
        return out + [9.0] if extra > 0 else out[:-1]

    s = run(fn)
    assert s.per_fn["r"] == [None] * 4 and not s.valid.any()  # no value is matched to the wrong completion
    assert [e["problem"] for e in s.errors] == ["wrong_count"] * 4
    assert f"returned {1 + extra} values for 1 completion" in s.errors[0]["error"]


def test_a_wrong_count_only_in_batches_is_rescued_one_at_a_time():
    def fn(prompts, completions, **kw):
        out = by_letter(completions)
        return out + [0.0] if len(completions) > 1 else out

    s = run(fn)
    assert s.per_fn["r"] == GOOD and s.errors == []


def test_non_numbers_and_non_finite_values_are_unscorable_and_counted():
    s = run(lambda p, c, **k: [1.0, "0.5", math.nan, -math.inf])
    assert s.per_fn["r"] == [1.0, None, None, None]
    assert s.valid.tolist() == [True, False, False, False]
    assert s.total.tolist() == [1.0, 0.0, 0.0, 0.0]  # nothing non-finite reaches the total
    assert [(e["index"], e["problem"]) for e in s.errors] == [(1, "not_a_number"), (2, "non_finite"), (3, "non_finite")]
    s = run(lambda p, c, **k: [[1.0], {"x": 1}, None, True])
    assert s.per_fn["r"] == [None, None, None, 1.0]
    assert [e["problem"] for e in s.errors] == ["not_a_number", "not_a_number"]  # None is "cannot score", not an error


def test_finite_values_whose_weighted_sum_overflows_are_unscorable_too():
    specs = [RewardSpec("a", lambda p, c, **k: [1e308, 1.0], 10.0), RewardSpec("b", lambda p, c, **k: [1.0, 2.0], 1.0)]
    s = score(specs, ["", ""], ["x", "y"], {})
    assert s.valid.tolist() == [False, True] and s.total.tolist() == [0.0, 12.0]
    assert s.per_fn == {"a": [1e308, 1.0], "b": [1.0, 2.0]}  # each value was a number; their sum was not
    assert [(e["reward"], e["index"], e["problem"]) for e in s.errors] == [("total", 0, "non_finite")]


@pytest.mark.parametrize("exc", [ValueError("bad"), SystemExit(3), GeneratorExit(), type("Custom", (BaseException,), {})()])
def test_exceptions_and_escapes_cost_only_their_sample(exc):
    def fn(prompts, completions, **kw):
        if "c" in completions:
            raise exc
        return by_letter(completions)

    s = run(fn)
    assert s.per_fn["r"] == [1.0, 2.0, None, 4.0]
    assert [(e["index"], e["problem"]) for e in s.errors] == [(2, "exception" if isinstance(exc, Exception) else "escape")]
    assert type(exc).__name__ in s.errors[0]["error"]


def test_keyboard_interrupt_is_a_stop_not_a_reward_failure():
    def fn(prompts, completions, **kw):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(fn)


def test_a_hanging_reward_is_stopped_and_costs_only_its_sample():
    calls = []

    def fn(prompts, completions, **kw):
        calls.append(len(completions))
        if "b" in completions:
            threading.Event().wait()  # hangs for ever (a blocking wait, interrupted by the signal)
        return by_letter(completions)

    s = run(fn, timeout=0.5)
    assert s.per_fn["r"] == [1.0, None, 3.0, 4.0]
    assert [(e["index"], e["problem"]) for e in s.errors] == [(1, "timeout")]
    assert "took longer than 0.5 s" in s.errors[0]["error"]
    assert calls == [4, 1, 1, 1, 1]


def test_a_reward_that_swallows_the_timeout_and_spins_is_still_stopped():
    def fn(prompts, completions, **kw):
        while True:
            try:
                while True:
                    pass
            except Exception:  # a broad except does not catch the timeout (a BaseException)
                pass

    s = run(fn, timeout=0.3, completions=["a"])
    assert s.per_fn["r"] == [None] and s.errors[0]["problem"] == "timeout"


def test_a_reward_that_hangs_on_everything_gives_up_after_two_single_timeouts():
    calls = []

    def fn(prompts, completions, **kw):
        calls.append(len(completions))
        threading.Event().wait()

    s = run(fn, timeout=0.3)
    assert calls == [4, 1, 1]  # the batch, then two single completions; the rest are not retried
    assert s.per_fn["r"] == [None] * 4 and [e["problem"] for e in s.errors] == ["timeout"] * 4
    assert "already timed out" in s.errors[3]["error"]


def test_time_limit_off_the_main_thread_is_not_enforced_and_harmless():
    out = []

    def worker():
        with time_limit(0.01):
            out.append(sum(range(1000)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out == [499500]


def test_an_inner_limit_does_not_swallow_an_outer_one():
    """A reward that scores with other rewards (by_source) under a longer inner limit is stopped by the outer."""

    def hang(prompts, completions, **kw):
        threading.Event().wait()

    def outer(prompts, completions, **kw):
        return score([RewardSpec("inner", hang, 1.0, 60.0)], prompts, completions, {}).per_fn["inner"]

    s = run(outer, timeout=0.3, completions=["a"])
    assert s.per_fn["r"] == [None] and s.errors[0]["problem"] == "timeout"


def test_build_passes_the_timeout():
    assert [s.timeout for s in build(["tag_count"], timeout=7)] == [7.0]


def test_a_time_limit_inside_the_math_pool_never_leaks_a_stale_verdict():
    """Stopped mid-batch, the pool's busy worker must not answer for the next batch's first pair."""
    from grpokit.rewards.contract import RewardFailure
    from grpokit.rewards.verify_pool import VerifyPool

    pool = VerifyPool(n_workers=1, hard_timeout=30, inner_timeout=60)  # the reward limit (1 s) stops the pair first
    try:
        assert [v.ok for v in pool.map([("$1$", "$1$")])] == [True]  # started and warm
        old = pool.pids()
        with pytest.raises(RewardFailure, match="took longer than 1 s"):
            with time_limit(1.0):
                pool.map([("$5$", "$10^{10^{10}}$")])  # grades for minutes
        assert not set(old) & set(pool.pids())  # the busy worker is gone: its late verdict cannot be read
        assert [v.ok for v in pool.map([("$2$", "$2$")])] == [True]
    finally:
        pool.close()


@pytest.mark.slow
def test_a_reward_that_breaks_every_rule_costs_samples_not_the_run(tiny_model, tmp_path):
    """SystemExit, NaN and a wrong count from a reward, in the real loop: it finishes with finite weights."""
    import torch
    from safetensors.torch import load_file

    from grpokit.train.loop import train
    from grpokit.run_folder import RunReader
    from tests.train.test_loop import _cfg

    run = train(_cfg(tiny_model, tmp_path, "broken-reward", steps=2,
                     rewards={"tests.train.rewards_for_tests:breaks_the_contract": 1.0}))
    reader = RunReader(run)
    assert reader.status()["state"] == "finished"
    errors = [e for e in reader.events() if e["kind"] == "reward_error"]
    assert errors and {e["problem"] for e in errors} <= {"escape", "non_finite"}
    assert all("SystemExit" in e["error"] for e in errors if e["problem"] == "escape")
    metrics = reader.metrics()
    assert sum(m["reward/errors"] for m in metrics) == len(errors)
    assert all(math.isfinite(m["reward/mean"]) for m in metrics)
    weights = load_file(str(next(reader.checkpoints()) / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_limits_that_expire_as_the_reward_returns_leave_nothing_behind():
    """Hundreds of limits racing their rewards: each call scores or times out, never escapes, and no
    deadline or watchdog outlives its call (whatever the machine's load decides about who wins)."""
    from grpokit.rewards import contract

    def sometimes_raises(prompts, completions, i=0, **kw):
        total = sum(range(2000 + i[0]))
        if i[0] % 2:
            raise ValueError(f"odd {total}")  # the traceback is formatted while the limit may fire
        return [1.0] * len(completions)

    outcomes = set()
    for i in range(400):
        s = score([RewardSpec("r", sometimes_raises, 1.0, 0.0005)], [""], ["a"], {"i": [i]})
        outcomes.add("scored" if s.per_fn["r"] == [1.0] else s.errors[0]["problem"])
    assert outcomes <= {"scored", "timeout", "exception"}
    assert contract._deadlines == []
    assert not [t for t in threading.enumerate() if t.name == "grpokit-reward-timeout" and t.is_alive()]
