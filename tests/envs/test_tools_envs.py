"""Tools fail into messages (raise, hang, bad arguments); the environment adapters run unchanged envs."""

import asyncio
import json
import threading

import pytest

from grpokit.envs import ToolEnv, TRLEnvironment, VerifiersEnvironment, from_function, load_tool, parse_turn, run_call
from grpokit.records import Example

def boom(x: str) -> str:
    """Always fails.

    Args:
        x: anything
    """
    raise RuntimeError("kaput")


def make_hang(release: threading.Event):
    def hang(x: str) -> str:
        """Never answers (until the test releases it).

        Args:
            x: anything
        """
        release.wait()
        return "late"

    return hang


def test_raising_tool_answers_with_the_error():
    res = run_call(from_function(boom), "boom", {"x": "1"})
    assert not res.ok and res.error == "raised" and "RuntimeError: kaput" in res.text


def test_hanging_tool_times_out():
    release = threading.Event()
    try:
        res = run_call(from_function(make_hang(release), timeout_s=0.2), "hang", {"x": "1"})
    finally:
        release.set()
    assert not res.ok and res.error == "timeout" and "did not answer" in res.text


def test_unknown_tool_and_bad_arguments():
    calc = load_tool("calculator")
    assert run_call(None, "nope", {}).error == "unknown_tool"
    assert run_call(calc, "calculator", {"wrong": "1"}).error == "bad_arguments"
    assert run_call(calc, "calculator", {"expression": "2*21"}).text == "42"
    assert run_call(calc, "calculator", {"__input__": "2*21"}).text == "42"
    bad = run_call(calc, "calculator", {"expression": "1/0"})
    assert not bad.ok and bad.error == "tool_error"


def test_module_function_tool_with_and_without_schema(tmp_path):
    t = load_tool("tests.envs.test_tools_envs:boom")
    assert t.name == "boom" and t.required == ["x"]
    schema = {"name": "renamed", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "string"}},
                                                                     "required": ["x"]}}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    t2 = load_tool(f"tests.envs.test_tools_envs:boom={tmp_path / 's.json'}")
    assert t2.name == "renamed" and t2.schema["type"] == "function"
    with pytest.raises(ValueError, match="cannot import module"):
        load_tool("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="unknown tool"):
        load_tool("abacus")


def test_python_tool_runs_in_the_sandbox():
    from grpokit.envs.sandbox import SandboxUnavailable

    tool = load_tool("python")
    try:
        ok = run_call(tool, "python", {"code": "print(6*7)"})
    except SandboxUnavailable as e:  # pragma: no cover - bubblewrap missing here
        pytest.skip(str(e))
    assert ok.text == "42", ok.text
    net = run_call(tool, "python", {"code": "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"})
    assert not net.ok and net.text.startswith("Error:")
    home = run_call(tool, "python", {"code": "import os; print(os.path.exists('/work'))"})
    assert home.text == "False"


def test_tool_env_episode_semantics_and_row_tools():
    env = ToolEnv(["calculator"])
    start = env.reset(Example("1", "What is 6*7?", "42"))
    assert start.messages == [{"role": "user", "content": "What is 6*7?"}]
    assert [t["function"]["name"] for t in start.tools] == ["calculator"]
    step = env.step(parse_turn('<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'))
    assert not step.done and step.messages == [{"role": "tool", "name": "calculator", "content": "42"}]
    assert step.info == {"tool_calls": 1, "malformed_calls": 0, "tool_errors": 0}
    assert env.step(parse_turn("It is 42.")).done
    bad = env.step(parse_turn("<tool_call>{oops</tool_call>"))
    assert bad.info == {"tool_calls": 1, "malformed_calls": 1, "tool_errors": 1} and "Error" in bad.messages[0]["content"]
    conv = Example("2", "", "1", columns={"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                          "tools": ["tests.envs.test_tools_envs:boom"]})
    start = env.reset(conv)
    assert start.messages[0]["role"] == "system" and [t["function"]["name"] for t in start.tools] == ["boom"]


class Counter:
    """A TRL environment_factory class, written for TRL: reset(**row), public documented methods are tools."""

    def reset(self, **kwargs):
        self.n = 0
        return f"Start counting for {kwargs['answer']}."

    def increment(self, by: int) -> str:
        """Add to the counter.

        Args:
            by: how much to add
        """
        self.n += by
        return str(self.n)


def test_trl_environment_factory_runs_unchanged():
    env = TRLEnvironment(Counter)
    start = env.reset(Example("1", "Count.", "3"))
    assert start.messages[-1]["content"] == "Count.\n\nStart counting for 3."
    assert [t["function"]["name"] for t in start.tools] == ["increment"]
    s1 = env.step(parse_turn('<tool_call>{"name": "increment", "arguments": {"by": 2}}</tool_call>'))
    s2 = env.step(parse_turn('<tool_call>{"name": "increment", "arguments": {"by": 1}}</tool_call>'))
    assert (s1.messages[0]["content"], s2.messages[0]["content"]) == ("2", "3")
    assert env.step(parse_turn("done")).done


class Guess:
    """A verifiers-style MultiTurnEnv (async hooks): guess the number, told higher/lower."""

    async def setup_state(self, state):
        state["guesses"] = 0
        return state

    async def is_completed(self, messages, state):
        return state.get("won", False) or state["guesses"] >= 3

    async def env_response(self, messages, state):
        state["guesses"] += 1
        guess = int(messages[-1]["content"])
        if guess == int(state["answer"]):
            state["won"] = True
            return [{"role": "user", "content": "correct"}], state
        return [{"role": "user", "content": "higher" if guess < int(state["answer"]) else "lower"}], state


def test_verifiers_style_environment_runs_unchanged():
    env = VerifiersEnvironment(Guess())
    env.reset(Example("1", "Guess 1-10.", "7"))
    s = env.step(parse_turn("5"))
    assert s.messages == [{"role": "user", "content": "higher"}] and not s.done
    s = env.step(parse_turn("7"))
    assert s.messages == [{"role": "user", "content": "correct"}] and s.done
    assert not asyncio.iscoroutine(s)
