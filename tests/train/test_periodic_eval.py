"""Held-out evaluation during training: what eval.jsonl holds, its time share, and that it is invisible to training."""

import json

import pytest

from grpokit.config import make
from grpokit.run_folder import RunReader
from grpokit.train.loop import train


def _task_file(tmp_path):
    rows = [{"question": f"say {d}", "answer": str(d)} for d in range(10) for _ in range(2)]
    p = tmp_path / "say.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


def _cfg(tiny_model, tmp_path, name, **kw):
    base = dict(model=tiny_model, task=_task_file(tmp_path), out=str(tmp_path / name), steps=2, prompts_per_step=2,
                group_size=2, max_new_tokens=4, progress=False, lr=1e-3, rewards={"final_number": 1.0},
                task_options={"heldout_size": 4}, eval_size=3, device="cpu")
    base.update(kw)
    return make(overrides=base)


def test_eval_lines_carry_greedy_pass_at_1_cons_and_time_share(tiny_model, tmp_path, capsys):
    run = train(_cfg(tiny_model, tmp_path, "ev", eval_every=1, eval_samples=2))
    evals = RunReader(run).evals()
    # The closing line gives greedy accuracy and pass@1 over the samples, before -> after.
    assert (f"Held-out greedy accuracy: {evals[0]['greedy_acc']:.1%} before -> {evals[-1]['greedy_acc']:.1%} after; "
            f"pass@1 over 2 samples: {evals[0]['pass@1']:.1%} before -> {evals[-1]['pass@1']:.1%} after") in capsys.readouterr().out
    evals = RunReader(run).evals()
    assert [e["step"] for e in evals] == [0, 1, 2]  # before, every step, after
    for e in evals:
        assert e["n_questions"] == 3 and e["k"] == 2 and e["temperature"] == 0.6
        for name in ("greedy_acc", "pass@1", "pass@2", "cons@2"):
            assert e[f"{name}_ci_low"] <= e[name] <= e[f"{name}_ci_high"], name
        assert 0 < e["eval_share"] <= 1 and e["time/eval"] > 0
    metrics = RunReader(run).metrics()
    assert metrics[0]["time/eval"] == pytest.approx(evals[1]["time/eval"])  # the step-1 evaluation
    assert "time/eval" not in metrics[1]  # the last step's evaluation runs after the loop
    # The share is cumulative: all eval time over all wall time so far, so it is below 1 once training ran.
    assert evals[-1]["eval_share"] < evals[0]["eval_share"]


def test_greedy_only_by_default_and_training_is_unchanged_by_evaluation(tiny_model, tmp_path):
    with_eval = train(_cfg(tiny_model, tmp_path, "with", eval_every=1))
    without = train(_cfg(tiny_model, tmp_path, "without", eval_size=0))
    e = RunReader(with_eval).evals()[0]
    assert "greedy_acc" in e and not any(k.startswith(("pass@", "cons@")) for k in e)
    assert RunReader(without).evals() == []
    keys = ("reward/mean", "loss/policy", "optim/grad_norm", "completions/mean_length")
    a, b = RunReader(with_eval).metrics(), RunReader(without).metrics()
    assert [[m[k] for k in keys] for m in a] == [[m[k] for k in keys] for m in b]
