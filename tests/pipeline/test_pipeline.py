"""grpokit pipeline end to end on the tiny model: stages, resume after an interruption in every stage
(same final checkpoint hash as an uninterrupted run), failures, changed settings, the comparison."""

import json

import pytest

from grpokit.pipeline import recipe as rcp
from grpokit.pipeline import stages as stages_mod
from grpokit.pipeline.runner import compare, main, model_hash, run_pipeline, stage_manifests
from grpokit.run_folder import RunReader, read_jsonl
from tests.pipeline.helpers import language_reward_name, toy_task

R1_STAGES = ["cold_start_data", "cold_start_sft", "reasoning_rl", "rejection_sampling", "sft", "final_prompts",
             "final_rl", "eval"]


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):
    from tests.fixtures import build_tiny_classifier

    d = tmp_path_factory.mktemp("pipeline")
    rm = build_tiny_classifier(d / "rm")
    common = [f"model={tiny_model}", f"task={toy_task(d / 'toy.jsonl')}", "task_options={heldout_size: 4}",
              "max_new_tokens=6", "eval_n=4", "eval_k=2", "prompts_per_step=2", "group_size=3"]
    r1 = common + [
        "system_prompt=Think, then answer.", f"language_reward={language_reward_name()}", f"reward_model={rm}",
        "cold_start_prompts=4", "cold_start_size=3", "sft_epochs=1", "rl_steps=2", "final_rl_steps=2",
        "rs_prompts=4", "rs_k=2", "cold_start_data.n_shots=1", "cold_start_data.prompts_per_batch=2",
        "cold_start_data.verifier=tests.pipeline.helpers:always_one", "cold_start_data.filters=[correct, duplicate]",
        "cold_start_sft.batch_size=2", "rejection_sampling.prompts_per_batch=2",
        "rejection_sampling.verifier=tests.pipeline.helpers:always_one", "rejection_sampling.filters=[correct]",
        "sft.batch_size=4"]
    return {"dir": d, "r1": r1, "r1_zero": common + ["steps=3"]}


def _run(name, overrides, out):
    return run_pipeline(rcp.load_recipe(name, overrides), str(out), progress=False)


@pytest.fixture(scope="module")
def r1_run(setup):
    out = setup["dir"] / "r1_full"
    assert _run("r1", setup["r1"], out) == 0
    return out


def _final_hash(run):
    return json.loads((run / "pipeline.json").read_text())["final_model_sha256"]


def test_r1_runs_every_stage_and_records_it(r1_run):
    mans = stage_manifests(r1_run)
    assert [m["name"] for m in mans] == R1_STAGES and all(m["state"] == "finished" for m in mans)
    meta = json.loads((r1_run / "pipeline.json").read_text())
    assert meta["state"] == "finished" and meta["final_model"] == mans[6]["outputs"]["model"]
    assert meta["final_model_sha256"] == model_hash(r1_run / meta["final_model"])
    # the second SFT starts again from the original model, not the RL checkpoint
    assert mans[4]["config"]["model"] == mans[1]["config"]["model"] != mans[3]["config"]["model"]
    cold = read_jsonl(r1_run / "stages/cold_start_data/data.jsonl")
    assert len(cold) == 3 and all(r["provenance"]["few_shot"] == "r1" for r in cold)
    assert all("<think>" not in r["prompt"] for r in cold)  # stored without the demonstrations
    # final RL mixes general prompts, graded by the reward model through by_source
    train_rows = read_jsonl(r1_run / "stages/final_prompts/train.jsonl")
    assert {r["data_source"] for r in train_rows} == {"math", "general"}
    metrics = RunReader(r1_run / "stages/final_rl").metrics()
    assert len(metrics) == 2 and all(m["reward/errors"] == 0 and m["reward/unscorable_frac"] == 0 for m in metrics)
    result = json.loads((r1_run / "stages/eval/result.json").read_text())
    samples = read_jsonl(r1_run / "stages/eval/samples.jsonl")
    assert result["pass@1"] == pytest.approx(sum(s["correct"] for s in samples) / len(samples))
    assert set(result) >= {"behaviour/format_rate", "language_consistency", "behaviour/length_mean",
                           "behaviour/reflection_per_1k"}


def test_interrupting_each_stage_then_rerunning_gives_the_same_final_model(setup, r1_run, monkeypatch):
    out = setup["dir"] / "r1_interrupted"

    def interrupted_after_running(kind):
        real = stages_mod.RUNNERS[kind]

        def run(*args):
            real[0](*args)  # the work happens, then Ctrl-C arrives before the stage is recorded as finished
            raise KeyboardInterrupt
        return run, real[1]

    for name in R1_STAGES:
        kind = next(s.kind for s in rcp.load_recipe("r1").stages if s.name == name)
        with monkeypatch.context() as m:
            if kind in ("mix", "eval"):
                m.setitem(stages_mod.RUNNERS, kind, interrupted_after_running(kind))
                stop = []
            else:
                stop = [f"{name}.stop_after=1"]
            assert _run("r1", setup["r1"] + stop, out) == 130, name
        states = {m_["name"]: m_["state"] for m_ in stage_manifests(out)}
        done = R1_STAGES[:R1_STAGES.index(name)]
        assert all(states[s] == "finished" for s in done) and states[name] == "interrupted", (name, states)
    assert _run("r1", setup["r1"], out) == 0
    assert _final_hash(out) == _final_hash(r1_run)
    for stage in ("cold_start_data", "rejection_sampling"):
        got = (out / f"stages/{stage}/data.jsonl").read_text().replace(str(out), "RUN")
        assert got == (r1_run / f"stages/{stage}/data.jsonl").read_text().replace(str(r1_run), "RUN")
    for stage in ("cold_start_sft", "reasoning_rl", "sft"):
        a, b = (json.loads((r / f"stages/{stage}/manifest.json").read_text()) for r in (out, r1_run))
        assert a["info"]["model_sha256"] == b["info"]["model_sha256"], stage


def test_a_failed_stage_stops_keeps_earlier_work_and_a_fixed_rerun_continues(setup, tmp_path, capsys):
    out = tmp_path / "z"
    assert _run("r1_zero", setup["r1_zero"] + ["eval.correctness=no_such_reward"], out) == 1
    err = capsys.readouterr().err
    assert "stage 'eval' (eval) failed" in err and "no_such_reward" in err and "run the same command" in err
    mans = stage_manifests(out)
    assert [m["state"] for m in mans] == ["finished", "failed"] and "no_such_reward" in mans[1]["error"]
    ckpt_before = (out / mans[0]["outputs"]["model"] / "model.safetensors").stat().st_mtime_ns
    assert _run("r1_zero", setup["r1_zero"], out) == 0
    assert "rl (rl): finished earlier, skipped" in capsys.readouterr().out
    assert (out / mans[0]["outputs"]["model"] / "model.safetensors").stat().st_mtime_ns == ckpt_before
    # a finished stage with other settings is an error: its outputs fed the stages after it
    rc = main(["r1_zero", "--out", str(out), "--no-progress", *setup["r1_zero"], "steps=4"])
    assert rc == 2 and "finished earlier with other settings (steps: 3 -> 4)" in capsys.readouterr().err


def test_compare_puts_the_final_evaluations_side_by_side(setup, r1_run, tmp_path, capsys):
    z = tmp_path / "zero"
    assert _run("r1_zero", setup["r1_zero"], z) == 0
    md = tmp_path / "cmp.md"
    assert main(["--compare", str(z), str(r1_run), "--md", str(md)]) == 0
    table = md.read_text()
    assert table == compare([str(z), str(r1_run)])
    rz = json.loads((z / "stages/eval/result.json").read_text())
    row = next(line for line in table.splitlines() if line.startswith("| held-out pass@1"))
    assert row.split("|")[2].strip().startswith(f"{rz['pass@1']:.3f}")
    budget = next(line for line in table.splitlines() if "sequences" in line)
    assert budget.split("|")[2].strip() == str(3 * 2 * 3)  # steps x prompts x group size


def test_distill_samples_the_teacher_and_fine_tunes_the_student(setup, tiny_model, tmp_path):
    from tests.fixtures import build_tiny_model

    student = build_tiny_model(tmp_path / "student", seed=1)
    out = tmp_path / "distill"
    overrides = [o for o in setup["r1_zero"] if not o.startswith(("model=", "steps=", "prompts_per_step=", "group_size="))]
    overrides += [f"teacher={tiny_model}", f"student={student}", "n_prompts=4", "k=2", "sft_epochs=1",
                  "teacher_samples.verifier=tests.pipeline.helpers:always_one", "teacher_samples.filters=[correct]"]
    assert _run("distill", overrides, out) == 0
    mans = stage_manifests(out)
    rows = read_jsonl(out / mans[0]["outputs"]["data"])
    assert len(rows) == 8 and {r["provenance"]["model"] for r in rows} == {tiny_model}
    assert mans[1]["config"]["model"] == str(student)
    assert mans[1]["info"]["model_sha256"] != model_hash(student)  # the student was trained
