import math
import random

import pytest

from grpokit.evaluation.report import config_diff, flatten, fmt, load_runs, main, smooth_centered
from grpokit.run_folder import RunWriter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _synthetic_run(path, name, loss_agg, seed, steps=60, with_clip=True, with_eval=True):
    """A run folder with the metric shapes of an R1-Zero-like run: reward up, length and reflection up."""
    rng = random.Random(seed)
    w = RunWriter(path)
    w.write_config({"name": name, "seed": seed, "model": {"name": "tiny-llama"},
                    "algo": {"loss_agg": loss_agg, "beta": 0.001, "lr": 3e-6}, "rewards": ["math", "r1_format"]})
    speed = 0.08 if loss_agg == "token" else 0.05
    finals = {}
    for step in range(1, steps + 1):
        acc = 1 / (1 + math.exp(-speed * (step - 30)))
        length = 120 + 2.5 * step * (1.3 if loss_agg == "sequence" else 1.0)
        m = {
            "reward/mean": acc + rng.gauss(0, 0.05),
            "reward/math/mean": acc + rng.gauss(0, 0.05),
            "reward/r1_format/mean": min(1.0, 0.4 + step / 50) + rng.gauss(0, 0.03),
            "completions/mean_length": length + rng.gauss(0, 8),
            "behaviour/length_correct_mean": length * 0.9 + rng.gauss(0, 8),
            "behaviour/length_wrong_mean": length * 1.2 + rng.gauss(0, 8),
            "behaviour/reflection_per_1k": 2 + 0.15 * step + rng.gauss(0, 0.5),
            "behaviour/format_rate": min(1.0, 0.4 + step / 50),
            "behaviour/aha_count": rng.randint(0, 2),
            "policy/entropy": 1.2 * math.exp(-step / 80) + rng.gauss(0, 0.02),
            "loss/kl": 0.0005 * step + abs(rng.gauss(0, 0.002)),
            "time/generate": 4.0 + rng.random(), "time/reward": 0.3 + 0.1 * rng.random(),
            "time/update": 2.0 + rng.random(),
        }
        if with_clip:
            m["loss/clip_low_frac"] = 0.01 + 0.005 * rng.random()
            m["loss/clip_high_frac"] = 0.02 + 0.005 * rng.random()
        m["time/step"] = m["time/generate"] + m["time/reward"] + m["time/update"] + 0.1
        w.log_metrics(step, m)
        finals = m
    evals = []
    if with_eval:
        for step in (0, 20, 40, 60):
            acc = 1 / (1 + math.exp(-speed * (step - 30)))
            rec = {"n_questions": 30, "pass@1": acc * 0.9, "cons@8": min(1.0, acc * 1.05), "greedy_acc": acc * 0.95}
            for k in ("pass@1", "cons@8", "greedy_acc"):
                se = math.sqrt(rec[k] * (1 - rec[k]) / 30)
                rec.update({f"{k}_se": se, f"{k}_ci_low": max(0, rec[k] - 1.96 * se),
                            f"{k}_ci_high": min(1, rec[k] + 1.96 * se)})
            w.log_eval(step, rec)
            evals.append(rec)
    w.set_status("finished", step=steps, total_steps=steps)
    return finals, evals


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    a = _synthetic_run(base / "grpo", "grpo", "sequence", seed=1)
    b = _synthetic_run(base / "drgrpo", "dr-grpo", "token", seed=2, with_clip=False, with_eval=True)
    out = base / "report"
    rc = main([str(base / "grpo"), str(base / "drgrpo"), "--out", str(out)])
    return rc, out, a, b


def test_report_writes_valid_pngs(report):
    rc, out, _, _ = report
    assert rc == 0
    expected = {"reward", "reward_fns", "heldout", "length", "reflection", "entropy", "kl", "clip", "format", "time"}
    pngs = {p.stem for p in out.glob("*.png")}
    assert pngs == expected
    for stem in expected:
        data = (out / f"{stem}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, stem


def test_report_md_has_final_numbers_and_config_diff(report):
    _, out, (fin_a, ev_a), (fin_b, ev_b) = report
    md = (out / "report.md").read_text()
    for fin in (fin_a, fin_b):
        assert fmt(fin["reward/mean"]) in md
        assert fmt(fin["completions/mean_length"]) in md
        assert fmt(fin["behaviour/reflection_per_1k"]) in md
    # held-out: before -> after, with SE
    assert f"{fmt(ev_a[0]['pass@1'])} ± {ev_a[0]['pass@1_se']:.2g} → {fmt(ev_a[-1]['pass@1'])}" in md
    assert fmt(ev_b[-1]["cons@8"]) in md
    assert "intervals are wide" in md  # 30 questions
    # config diff: loss_agg, name and seed differ; beta is shared and absent from the diff
    assert "| `algo.loss_agg` | sequence | token |" in md
    assert "| `seed` | 1 | 2 |" in md
    assert "`algo.beta`" not in md
    assert "![heldout](heldout.png)" in md and "## Time per step" in md


def test_missing_metrics_are_skipped(tmp_path):
    w = RunWriter(tmp_path / "bare")
    for step in range(1, 4):
        w.log_metrics(step, {"reward/mean": 0.1 * step})
    out = tmp_path / "out"
    assert main([str(tmp_path / "bare"), "--out", str(out)]) == 0
    assert {p.stem for p in out.glob("*.png")} == {"reward"}
    md = (out / "report.md").read_text()
    assert "No held-out evaluation was logged." in md and "One run: nothing to compare." in md
    assert "0.3 (0.2)" in md  # last value (mean of last 10 steps)


def test_default_out_and_bad_folder(tmp_path, capsys):
    w = RunWriter(tmp_path / "r")
    w.log_metrics(1, {"loss/kl": 0.0})
    assert main([str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report" / "report.md").exists()
    assert main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_helpers():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}
    assert smooth_centered([0.0, 1, 2, 3, 4], 0.0) == pytest.approx([0, 1, 2, 3, 4])  # a trend is not shifted
    assert smooth_centered([0.0, 3, 0, 3, 0], 0.0) == pytest.approx([0, 1, 2, 1, 0])  # window 3, raw ends
    assert smooth_centered([0.0, 5, 0, 0, 0, 5, 0], 0.75) == pytest.approx([0, 5 / 3, 1, 2, 1, 5 / 3, 0])
    assert (fmt(3), fmt(0.123456), fmt(12345.6), fmt(None)) == ("3", "0.1235", "12,346", "—")


def test_config_diff_marks_absent_keys(tmp_path):
    for name, cfg in (("a", {"x": 1, "y": {"z": 2}}), ("b", {"x": 1, "y": {"z": 3}, "w": True})):
        RunWriter(tmp_path / name).write_config(cfg)
    runs = load_runs([str(tmp_path / "a"), str(tmp_path / "b")])
    assert config_diff(runs) == [("y.z", [2, 3]), ("w", [None, True])]


def test_time_table_spreads_evaluation_over_all_steps(tmp_path):
    """Evaluation every 4th step: its per-step share is amortised, never more than the whole."""
    w = RunWriter(tmp_path / "r")
    for step in range(1, 5):
        m = {"time/generate": 3.0, "time/update": 1.0, "time/step": 4.0}
        if step == 4:
            m["time/eval"] = 8.0
        w.log_metrics(step, m)
    out = tmp_path / "out"
    assert main([str(tmp_path / "r"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    row = next(ln for ln in md.split("## Time per step")[1].splitlines() if ln.startswith("| r |"))
    # per step: generate 3, update 1, eval 8 / 4 = 2 -> total 6
    assert row == "| r | 3 s (50%) | 1 s (17%) | 2 s (33%) | 6 s |"
