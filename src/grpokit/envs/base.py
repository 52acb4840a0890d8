"""The environment interface: what an episode's other side does between model turns.

grpokit's protocol is Gymnasium's ``reset``/``step`` over chat messages, one environment object per
episode (so it may keep state)::

    env = make_env()
    start = env.reset(example)       # Start(messages, tools): the first context and tool schemas
    while True:
        turn = <model writes one assistant message>       # ParsedTurn: text + tool calls
        step = env.step(turn)         # Step(messages, done, info): tool results / observations
        if step.done or <max_turns / max_episode_tokens reached>: break

Two adapters let environments written for other libraries run unchanged:

- :class:`TRLEnvironment` takes a TRL ``environment_factory`` class: ``reset(**row) -> str | None``
  (the text is appended to the last user message), and every other public method is a tool. The
  episode ends when the model answers without a tool call. (TRL also hands the environment objects
  to reward functions as ``environments=``; grpokit's rewards see the episode's text only.)
- :class:`VerifiersEnvironment` takes an object with verifiers' ``MultiTurnEnv`` hooks,
  ``env_response(messages, state)`` and ``is_completed(messages, state)`` (sync or ``async``;
  ``env_response`` may return messages or ``(messages, state)``).

The reward comes from the finished episode through grpokit's reward functions (``grpokit.rewards``):
the completion text they grade is the model's final message; ``info`` of every step is kept.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from grpokit.envs.parsers import ParsedTurn
from grpokit.envs.tools import Tool, from_function, load_tool, run_call
from grpokit.records import Example


@dataclass
class Start:
    """An episode's first context: chat messages and the tool schemas shown to the model."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Step:
    """The environment's answer to one model turn.

    ``info`` counts what happened (``tool_calls``, ``tool_errors``, ``malformed_calls``) and may
    carry anything else the environment wants logged.
    """

    messages: list[dict[str, Any]]
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Environment(Protocol):
    def reset(self, example: Example) -> Start: ...

    def step(self, turn: ParsedTurn) -> Step: ...


def initial_messages(example: Example, question: str | None = None) -> list[dict[str, Any]]:
    """A conversational row's messages (``prompt`` or ``messages`` column), else one user message."""
    for key in ("prompt", "messages"):
        msgs = example.columns.get(key)
        if isinstance(msgs, list) and msgs and all(isinstance(m, dict) and "role" in m for m in msgs):
            return [dict(m) for m in msgs]
    return [{"role": "user", "content": question if question is not None else example.question}]


def answer_calls(turn: ParsedTurn, tools: dict[str, Tool]) -> Step:
    """Run a turn's tool calls; malformed calls and failing tools are answered with error messages."""
    msgs, errors = [], 0
    for bad in turn.errors:
        msgs.append({"role": "tool", "name": "error", "content": f"Error: {bad.message}"})
    for call in turn.calls:
        res = run_call(tools.get(call.name), call.name, call.arguments)
        errors += not res.ok
        msgs.append({"role": "tool", "name": call.name, "content": res.text})
    return Step(msgs, done=False, info={"tool_calls": len(turn.calls) + len(turn.errors), "malformed_calls": len(turn.errors),
                                        "tool_errors": errors + len(turn.errors)})


class ToolEnv:
    """Tool use: each turn's calls are run and answered; the episode ends when a turn calls no tool.

    Args:
        tools: the tools (``Tool`` objects, functions, or specs for :func:`grpokit.envs.tools.load_tool`).
            A row's ``tools`` column (a list of such specs) replaces them for that row.
        question: ``Example -> str``, the user message of a question/answer row (the task's
            ``question_text``); conversational rows bring their own messages.
        preamble: messages put before every episode's own (a system prompt, a worked example).
    """

    def __init__(self, tools: list, question: Callable[[Example], str] | None = None,
                 preamble: list[dict[str, Any]] | None = None):
        self.default_tools = [load_tool(t) for t in tools]
        self.question = question
        self.preamble = list(preamble or [])
        self.tools: dict[str, Tool] = {}

    def _row_tool(self, spec) -> Tool:
        if not isinstance(spec, dict):
            return load_tool(spec)
        # A function schema: shown as given, run by the tool of that name (the env's, or a built-in).
        name = spec.get("function", spec).get("name")
        known = {t.name: t for t in self.default_tools}
        base = known.get(name) or load_tool(name)
        return from_function(base.fn, schema=spec, timeout_s=base.timeout_s)

    def reset(self, example: Example) -> Start:
        row_tools = example.columns.get("tools")
        tools = [self._row_tool(t) for t in row_tools] if row_tools else self.default_tools
        self.tools = {t.name: t for t in tools}
        q = self.question(example) if self.question else None
        return Start([*self.preamble, *initial_messages(example, q)], [t.schema for t in tools])

    def step(self, turn: ParsedTurn) -> Step:
        if not turn.wants_tools:
            return Step([], done=True, info={"tool_calls": 0, "malformed_calls": 0, "tool_errors": 0})
        return answer_calls(turn, self.tools)


class TRLEnvironment:
    """Adapter for a TRL ``environment_factory`` class (see module docstring)."""

    def __init__(self, factory: Callable[[], Any], question: Callable[[Example], str] | None = None, timeout_s: float = 10.0):
        self.factory, self.question, self.timeout_s = factory, question, timeout_s
        self.tools: dict[str, Tool] = {}

    def reset(self, example: Example) -> Start:
        obj = self.factory()
        # As TRL: every public method but reset is a tool (its schema needs type hints and an Args: docstring).
        methods = [getattr(obj, n) for n in dir(obj) if not n.startswith("_") and n != "reset" and callable(getattr(obj, n))]
        self.tools = {t.name: t for t in (from_function(m, timeout_s=self.timeout_s) for m in methods)}
        messages = initial_messages(example, self.question(example) if self.question else None)
        obs = obj.reset(**{"question": example.question, **example.reward_columns()}) if hasattr(obj, "reset") else None
        if isinstance(obs, str) and obs:
            last = max(i for i, m in enumerate(messages) if m["role"] == "user")
            messages[last] = {**messages[last], "content": messages[last]["content"] + "\n\n" + obs}
        return Start(messages, [t.schema for t in self.tools.values()])

    def step(self, turn: ParsedTurn) -> Step:
        if not turn.wants_tools:
            return Step([], done=True, info={"tool_calls": 0, "malformed_calls": 0, "tool_errors": 0})
        return answer_calls(turn, self.tools)


def _sync(value):
    return asyncio.run(value) if inspect.isawaitable(value) else value


class VerifiersEnvironment:
    """Adapter for an environment with verifiers' ``MultiTurnEnv`` hooks (see module docstring).

    ``state`` is a dict per episode holding ``answer``, ``info`` (the row's columns) and ``turn``.
    """

    def __init__(self, env: Any, question: Callable[[Example], str] | None = None):
        self.env, self.question = env, question
        self.messages: list[dict] = []
        self.state: dict[str, Any] = {}

    def reset(self, example: Example) -> Start:
        self.messages = initial_messages(example, self.question(example) if self.question else None)
        self.state = {"answer": example.answer, "info": dict(example.columns), "turn": 0, "prompt": list(self.messages)}
        if hasattr(self.env, "setup_state"):
            self.state = _sync(self.env.setup_state(self.state)) or self.state
        tools = [from_function(f).schema for f in getattr(self.env, "tools", None) or []]
        return Start(list(self.messages), tools)

    def step(self, turn: ParsedTurn) -> Step:
        self.messages.append({"role": "assistant", "content": turn.text})
        self.state["turn"] += 1
        if _sync(self.env.is_completed(self.messages, self.state)):
            return Step([], done=True)
        out = _sync(self.env.env_response(self.messages, self.state))
        if isinstance(out, tuple):
            out, self.state = out
        new = [{"role": "user", "content": out}] if isinstance(out, str) else list(out)
        self.messages += new
        return Step(new, done=bool(_sync(self.env.is_completed(self.messages, self.state))))
