"""grpokit sample on the tiny model: rows and provenance, filters, target size, exact resume."""

import json

import pytest

from grpokit.config import make
from grpokit.datagen.sample import SampleConfig, checkpoint_step, main, sample
from grpokit.run_folder import read_jsonl
from tests.pipeline.helpers import toy_task


def _cfg(tiny_model, tmp_path, name, **kw):
    base = dict(model=tiny_model, task=toy_task(tmp_path / "toy.jsonl"), task_options={"heldout_size": 4}, n_prompts=6,
                k=3, max_new_tokens=6, prompts_per_batch=2, template="plain", progress=False,
                verifier="tests.pipeline.helpers:has_digit", filters=["correct", "duplicate"], max_per_prompt=2,
                out=str(tmp_path / f"{name}.jsonl"))
    base.update(kw)
    return make(SampleConfig, overrides=base)


def test_rows_carry_provenance_and_pass_the_filters(tiny_model, tmp_path):
    res = sample(_cfg(tiny_model, tmp_path, "a", temperature=1.5))
    rows = read_jsonl(res.path)
    s = res.summary
    assert res.finished and s["kept"] == len(rows) > 0
    assert s["candidates"] == 6 * 3 and s["prompts"] == 6
    assert s["kept"] + sum(s["rejected"].values()) == s["candidates"]
    per_prompt = {}
    for r in rows:
        assert any(ch.isdigit() for ch in r["response"])  # the verifier said correct
        assert r["prompt"].startswith("say ") and r["answer"] == r["prompt"][-1]
        p = r["provenance"]
        assert p["model"] == tiny_model and p["model_step"] is None and p["reward"] == 1.0
        assert p["filters_passed"] == ["correct", "duplicate"] and p["temperature"] == 1.5
        per_prompt.setdefault(p["prompt_id"], []).append(r["response"].strip().lower())
    for texts in per_prompt.values():
        assert len(texts) <= 2 and len(set(texts)) == len(texts)


def test_interrupted_and_resumed_run_writes_the_same_file(tiny_model, tmp_path):
    full = sample(_cfg(tiny_model, tmp_path, "full", filters=["duplicate"]))
    cfg = _cfg(tiny_model, tmp_path, "part", filters=["duplicate"], stop_after=1)
    part = sample(cfg)
    assert not part.finished and not (tmp_path / "part.jsonl").exists()
    # a crash after writing rows but before recording progress leaves extra lines: they must go
    with open(part.path, "a") as f:
        f.write('{"half": "written"}\n')
    with pytest.raises(FileExistsError, match="--resume true"):
        sample(_cfg(tiny_model, tmp_path, "part", filters=["duplicate"]))
    done = sample(_cfg(tiny_model, tmp_path, "part", filters=["duplicate"], resume=True))
    assert done.finished
    assert (tmp_path / "part.jsonl").read_text() == (tmp_path / "full.jsonl").read_text().replace(
        str(tmp_path / "full.jsonl"), str(tmp_path / "part.jsonl"))
    assert not (tmp_path / "part.jsonl.progress.json").exists()


def test_target_size_and_empty_results(tiny_model, tmp_path):
    res = sample(_cfg(tiny_model, tmp_path, "t", filters=[], max_per_prompt=0, target_size=4))
    assert len(read_jsonl(res.path)) == 4 and res.summary["prompts"] == 2  # stopped after the 2nd batch
    with pytest.raises(ValueError, match="no sample passed the filters"):
        sample(_cfg(tiny_model, tmp_path, "none", verifier="tests.train.rewards_for_tests:crash_on_digits",
                    filters=["correct"], min_reward=2.0))


def test_checkpoint_step(tmp_path):
    (tmp_path / "checkpoints" / "step_000012").mkdir(parents=True)
    assert checkpoint_step(str(tmp_path / "checkpoints" / "step_000012")) == 12
    assert checkpoint_step("smollm2-135m") is None


def test_cli_errors_are_clear(tiny_model, tmp_path, capsys):
    assert main(["--model", tiny_model, "--task", toy_task(tmp_path / "toy.jsonl"), "--filters", "[correct, tidy]",
                 "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "unknown filter" in capsys.readouterr().err
