"""Recipes: the shipped ones load and check; variables, overrides and references."""

import pytest

from grpokit.pipeline import recipe as rcp
from grpokit.pipeline.runner import check


@pytest.mark.parametrize("name", ["r1_zero", "r1", "distill"])
def test_shipped_recipes_open_with_paper_hyperparameters_and_deviations(name):
    r = rcp.load_recipe(name, ["teacher=some/ckpt"] if name == "distill" else [])
    check(r)
    head = r.text.split("\nrecipe:")[0]
    assert all(line.startswith("#") or not line.strip() for line in head.splitlines())
    assert "arXiv 2501.12948" in head and "Deviations" in head


def test_r1_stage_order_and_sft_restarts_from_the_original_model():
    r = rcp.load_recipe("r1")
    assert [s.kind for s in r.stages] == ["sample", "sft", "rl", "sample", "sft", "mix", "rl", "eval"]
    sft = next(s for s in r.stages if s.name == "sft")
    assert rcp.with_vars(r, sft)["model"] == r.vars["model"]
    cold = rcp.with_vars(r, r.stages[0])
    assert cold["few_shot"] == "r1"


def test_variables_keep_their_type_and_references_wait():
    r = rcp.load_recipe("r1_zero", ["steps=7", "rl.group_size=3"])
    params = rcp.with_vars(r, r.stages[0])
    assert params["steps"] == 7 and params["group_size"] == 3
    ev = rcp.with_vars(r, r.stages[1])
    assert ev["model"] == "${rl.model}"
    assert rcp.interpolate(ev, lambda name: f"/runs/x/{name}")["model"] == "/runs/x/rl.model"
    assert rcp.interpolate({"${a}": "p-${a}-${b}"}, {"a": "k", "b": 2}.get) == {"k": "p-k-2"}


def test_override_errors_name_the_fix():
    with pytest.raises(ValueError, match="no variable 'stepz'"):
        rcp.load_recipe("r1_zero", ["stepz=3"])
    with pytest.raises(ValueError, match="no stage 'rll'"):
        rcp.load_recipe("r1_zero", ["rll.steps=3"])
    with pytest.raises(ValueError, match="write name=value"):
        rcp.load_recipe("r1_zero", ["steps"])
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['stepz'\]"):
        check(rcp.load_recipe("r1_zero", ["rl.stepz=3"]))
    with pytest.raises(ValueError, match="set by the pipeline"):
        check(rcp.load_recipe("r1_zero", ["rl.out=elsewhere"]))
    with pytest.raises(ValueError, match=r"needs a value for \['teacher'\]"):
        check(rcp.load_recipe("distill"))
    with pytest.raises(FileNotFoundError, match="no recipe 'r2'"):
        rcp.load_recipe("r2")


def test_bad_references_are_found_before_running(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: bad\nstages:\n"
                   "  - {name: ev, kind: eval, with: {model: '${train.model}'}}\n"
                   "  - {name: train, kind: rl, with: {}}\n")
    with pytest.raises(ValueError, match="no earlier stage is named 'train'"):
        check(rcp.load_recipe(str(bad)))
    bad.write_text("recipe: bad\nstages:\n  - {name: s, kind: sample, with: {}}\n"
                   "  - {name: ev, kind: eval, with: {model: '${s.model}'}}\n")
    with pytest.raises(ValueError, match=r"a sample stage outputs \['data'\]"):
        check(rcp.load_recipe(str(bad)))
    bad.write_text("recipe: bad\nstages:\n  - {name: s, kind: train, with: {}}\n")
    with pytest.raises(ValueError, match="unknown kind 'train'"):
        check(rcp.load_recipe(str(bad)))
