"""Reading run folders for the explorer: names, views, and runs that are partial, corrupt or gone."""

import json
import shutil
import statistics

import pytest

from grpokit.explorer.runs import RunSet, expand_run_dirs, group_view
from grpokit.run_folder.config_keys import cfg_get
from grpokit.explorer.scaling import scale_group
from grpokit.run_folder import RunReader


@pytest.fixture
def copy_run(run_dir, tmp_path):
    """A private copy of the synthetic run that a test may damage."""
    return shutil.copytree(run_dir, tmp_path / "copy")


def test_names_are_sanitized_unique_and_the_only_way_in(tmp_path):
    rs = RunSet([tmp_path / "a b", tmp_path / "x" / "a b", tmp_path / "..weird<>"])
    assert [r.name for r in rs.runs] == ["a_b", "a_b-2", "weird"]
    assert rs.get("0").name == "a_b" and rs.get("a_b-2").index == 1
    for bad in ("3", "-1", "1e0", "²", "..", "../a_b", str(tmp_path / "a b"), "", " 0"):
        assert rs.get(bad) is None, bad


def test_a_folder_of_runs_expands_to_its_runs(run_dir, ppo_run_dir, tmp_path):
    parent = tmp_path / "runs"
    shutil.copytree(run_dir, parent / "one")
    shutil.copytree(ppo_run_dir, parent / "two")
    (parent / "notes").mkdir()
    assert [p.name for p in expand_run_dirs([parent])] == ["one", "two"]
    assert expand_run_dirs([run_dir]) == [run_dir]


def test_cfg_get_reads_nested_and_flat_spellings():
    cfg = {"algo": {"use_critic": True}, "rollout.G": 8}
    assert cfg_get(cfg, "algo/use_critic") is True
    assert cfg_get(cfg, "rollout/G") == 8
    assert cfg_get(cfg, "missing/key", default=3) == 3


def test_summary_of_a_finished_run(run_dir):
    rs = RunSet([run_dir])
    s = rs.summary(rs.runs[0])
    assert s["status"]["state"] == "finished" and s["errors"] == []
    assert s["steps"] == [1, 2] and s["checkpoints"] == ["step_000002"]
    assert s["summary"]["G (completions/prompt)"] == 6 and s["summary"]["task"] == "add2"
    assert s["use_critic"] is False and s["config"]["rewards/boxed_format"] == 0.1


def test_step_view_keeps_the_dump_and_flags_groups(run_dir):
    rs = RunSet([run_dir])
    view = rs.step(rs.runs[0], 1)
    dump = RunReader(run_dir).groups(1)
    assert view["errors"] == [] and len(view["groups"]) == len(dump)
    for g, d in zip(view["groups"], dump):
        assert [c["advantage"] for c in g["completions"]] == [c["advantage"] for c in d["completions"]]
        # For a GRPO run the recomputed group-mean advantages agree with the trainer's.
        assert g["advantages_group"] == pytest.approx([c["advantage"] for c in d["completions"]], abs=1e-6)
        assert g["reward_mean"] == pytest.approx(statistics.fmean(c["reward"] for c in d["completions"]))
    flags = [g["flags"] for g in view["groups"]]
    assert [f["zero_variance"] for f in flags] == [False, True, False, False]
    assert [f["truncated"] for f in flags] == [False, False, True, True]
    assert [f["format_failure"] for f in flags] == [True, False, True, True]


def test_critic_view_carries_values(ppo_run_dir):
    rs = RunSet([ppo_run_dir])
    g = rs.step(rs.runs[0], 1)["groups"][0]
    assert g["has_value"] and rs.summary(rs.runs[0])["use_critic"] is True
    assert g["advantages_critic"] == pytest.approx([c["reward"] - c["value"] for c in g["completions"]])
    assert g["advantages_group"] == pytest.approx(scale_group([c["reward"] for c in g["completions"]]).advantages)


def test_cost_reads_the_runs_own_measurements(run_dir, ppo_run_dir):
    rs = RunSet([run_dir, ppo_run_dir])
    grpo, ppo = rs.cost(rs.runs[0]), rs.cost(rs.runs[1])
    m = RunReader(ppo_run_dir).metrics()
    assert grpo["critic_params"] is None and ppo["critic_params"] == m[-1]["model/critic_params"]
    assert ppo["peak_mb"] == max(r["memory/peak_mb"] for r in m)
    assert ppo["step_s"] == statistics.median(r["time/step"] for r in m)
    assert ppo["critic_s"] == statistics.median(r["time/critic"] for r in m) and grpo["critic_s"] is None


def test_corrupt_files_cost_only_themselves(copy_run):
    (copy_run / "status.json").write_text("{not json", encoding="utf-8")
    (copy_run / "config.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    with open(copy_run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("garbage line\n{\"step\": 3, \"reward/mean\": 0.5")  # a corrupt line and a partial last line
    with open(copy_run / "rollouts" / "step_000001.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 1, "completions": "not a list"}) + "\n")
        f.write(json.dumps([1, 2, 3]) + "\n")
        f.write(json.dumps({"step": 1, "completions": [{"text": "hi", "rewards": 5}]}) + "\n")
    rs = RunSet([copy_run])
    run = rs.runs[0]
    s = rs.summary(run)
    assert s["status"]["state"] == "unknown"
    assert any(e.startswith("config.yaml:") for e in s["errors"]) and s["steps"] == [1, 2]
    assert [r["step"] for r in rs.series(run)["metrics"]] == [1, 2]
    groups = rs.step(run, 1)["groups"]
    assert [("error" in g) for g in groups] == [False] * 4 + [True] * 3
    assert "completions" in groups[4]["error"] and "rewards" in groups[6]["error"]


def test_missing_files_and_a_missing_step(tmp_path):
    (tmp_path / "empty").mkdir()
    rs = RunSet([tmp_path / "empty"])
    run = rs.runs[0]
    s = rs.summary(run)
    assert s["status"] == {"state": "unknown"} and s["steps"] == [] and s["errors"] == []
    assert rs.series(run) == {"metrics": [], "evals": [], "errors": []}
    assert "no rollout dump for step 7" in rs.step(run, 7)["errors"][0]


def test_a_deleted_run_shows_an_error_not_an_exception(copy_run):
    rs = RunSet([copy_run])
    run = rs.runs[0]
    shutil.rmtree(copy_run)
    s = rs.summary(run)
    assert s["status"]["state"] == "missing" and "does not exist" in s["errors"][0]
    assert rs.series(run)["errors"] and rs.step(run, 1)["errors"] and rs.cost(run)["peak_mb"] is None


def test_group_view_rejects_malformed_records():
    with pytest.raises(ValueError, match="completions"):
        group_view(0, {"completions": []})
    with pytest.raises(ValueError, match="text"):
        group_view(0, {"completions": [{"reward": 1.0}]})
    g = group_view(0, {"completions": [{"text": "a", "reward": None, "rewards": {"math": None}},
                                       {"text": "b", "reward": 1.0, "rewards": {"math": 1.0}}]})
    assert [c["valid"] for c in g["completions"]] == [False, True] and g["advantages_group"] == [0.0, 0.0]


def test_episodes_reach_the_group_view():
    from grpokit.explorer.runs import group_view

    ep = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<tool>calculator: 1+1</tool>"},
                       {"role": "tool", "name": "calculator", "content": "2"}, {"role": "assistant", "content": "2"}],
          "spans": [["model", 0, 5], ["env", 5, 9], ["model", 9, 11]], "turns": 2, "tool_calls": 1, "tool_errors": 0,
          "malformed_calls": 0, "end": "no_tool_call", "transcript": "..."}
    rec = {"completions": [{"text": "2", "reward": 1.0, "rewards": {"final_number": 1.0}, "episode": ep},
                           {"text": "3", "reward": 0.0, "rewards": {"final_number": 0.0}}]}
    v = group_view(0, rec)
    got = v["completions"][0]["episode"]
    assert got["spans"] == ep["spans"] and got["messages"][2] == {"role": "tool", "name": "calculator", "content": "2"}
    assert got["end"] == "no_tool_call" and "episode" not in v["completions"][1]
