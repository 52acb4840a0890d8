"""Training on episodes: every preset runs on masks with holes; the tool task runs from the CLI."""

import pytest

from grpokit.algo import PRESETS
from grpokit.config import make
from grpokit.envs import ToolEnv
from grpokit.envs.base import Step
from grpokit.records import Example
from grpokit.tasks import Task, register
from grpokit.train.loop import train
from grpokit.run_folder import RunReader


class Echo(ToolEnv):
    """Answers every turn with an observation, so every episode has environment spans inside it."""

    def step(self, turn):
        return Step([{"role": "user", "content": "go on"}], done=False, info={"tool_calls": 1})


@register("test_multiturn_echo")
def _echo_task(**_):
    exs = [Example(f"e{i}", f"say {i % 10}", str(i % 10)) for i in range(20)]
    return Task("test_multiturn_echo", exs[:16], exs[16:], rewards={"final_number": 1.0}, correctness="final_number",
                env=lambda: Echo([]), meta={"episode": {"max_turns": 3, "max_episode_tokens": 40}})


@pytest.fixture(scope="module")
def short_turns_model(tiny_model, tmp_path_factory):
    """The tiny model with 48 of its ~100 tokens declared end-of-turn (``generation_config.eos_token_id``
    lists them, as Llama 3 lists three), so nearly every 5-token turn ends by itself and episodes
    reliably go past one turn, whatever the sampler draws (the random model rarely picks the one EOS)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    specials = set(tok.all_special_ids)
    model.generation_config.eos_token_id = [tok.eos_token_id] + [i for i in range(len(tok)) if i not in specials][:47]
    path = tmp_path_factory.mktemp("short_turns") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("algo", sorted(PRESETS))
def test_every_preset_trains_on_episodes(short_turns_model, tmp_path, algo):
    cfg = make(overrides=dict(model=short_turns_model, task="test_multiturn_echo", algo=algo, out=str(tmp_path / algo), steps=2,
                              prompts_per_step=2, group_size=2, max_new_tokens=5, eval_size=2, progress=False))
    run = train(cfg)
    rd = RunReader(run)
    m = rd.metrics()[-1]
    assert m["episodes/turns_mean"] > 1 and "episodes/tool_call_rate" in m
    eps = [c["episode"] for step in (1, 2) for g in rd.groups(step) for c in g["completions"]]  # the run folder stores episodes
    assert len(eps) >= 2 and all(ep["messages"][-1]["role"] == "assistant" for ep in eps)
    assert any(k == "env" for ep in eps for k, _, _ in ep["spans"])


def test_tool_task_runs_from_the_cli_with_nothing_else_set(tiny_model, tmp_path, capsys):
    from grpokit.cli import main

    code = main(["train", "--task", "calculator_mul", "--model", tiny_model, "--steps", "1", "--prompts_per_step", "2",
                 "--group_size", "2", "--max_new_tokens", "8", "--eval_size", "2", "--progress", "false",
                 "--out", str(tmp_path / "cli")])
    assert code in (0, None), capsys.readouterr()
    m = RunReader(tmp_path / "cli").metrics()[-1]
    assert m["episodes/turns_mean"] >= 1


def test_report_shows_tool_use_and_turns(tiny_model, tmp_path):
    pytest.importorskip("matplotlib")
    from grpokit.evaluation.report import main as report

    run = train(make(overrides=dict(model=tiny_model, task="test_multiturn_echo", out=str(tmp_path / "r"), steps=2,
                                    prompts_per_step=2, group_size=2, max_new_tokens=5, eval_size=0, progress=False)))
    assert report([str(run), "--out", str(tmp_path / "rep")]) == 0
    for name in ("episodes", "turns", "reward_turns"):
        assert (tmp_path / "rep" / f"{name}.png").exists(), name
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "episodes/tool_call_rate" in md and "episodes/turns_mean" in md


def test_eval_runs_episodes_and_the_no_tool_baseline(tiny_model, capsys):
    import json as _json

    from grpokit.cli import main

    for flags, tools in (([], True), (["--no-tools"], False)):
        assert main(["eval", "--model", tiny_model, "--task", "calculator_mul", "--task-options", "{train_size: 10, heldout_size: 3}",
                     "-n", "2", "-k", "0", "--max-new-tokens", "6", "--json", *flags]) == 0
        summary = _json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["tools"] is tools and summary["n_questions"] == 2
