"""Conversational rows: a message list (``prompt`` or ``messages``) with optional per-row ``tools``.

The row format of TRL's and verifiers' conversational datasets::

    {"prompt": [{"role": "system", "content": "..."}, {"role": "user", "content": "What is 123*45?"}],
     "answer": "5535", "tools": ["calculator"]}

``question`` (for logging and deduplication) is the last user message. ``tools`` entries are tool
specs (``calculator``, ``python``, ``module:function``) or OpenAI function schemas whose name is
such a tool. A task whose rows carry tools (or that is given ``tools=[...]``) runs each prompt as a
multi-turn episode (``grpokit.rollout.multiturn``) with a :class:`grpokit.envs.ToolEnv`.
"""

from __future__ import annotations

from typing import Any
from grpokit.envs import ToolEnv

MESSAGE_KEYS = ("prompt", "messages")
ROLES = ("system", "user", "assistant", "tool")


def messages_of(row: dict[str, Any]) -> list[dict] | None:
    for key in MESSAGE_KEYS:
        msgs = row.get(key)
        if isinstance(msgs, list) and msgs:
            return msgs
    return None


def check_conversation(row: dict[str, Any]) -> str | None:
    """Why a conversational row cannot be used, or None (rows without messages are not checked here)."""
    msgs = messages_of(row)
    if msgs is not None:
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                return (f"message {i} must be {{'role': one of {ROLES}, 'content': str}}, got {m!r:.80}")
        if not any(m["role"] == "user" for m in msgs):
            return "the message list has no user message"
    tools = row.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, str) or (isinstance(t, dict) and tool_name(t)) for t in tools):
            return "column 'tools' must be a list of tool names / 'module:function' specs or function schemas with a name"
    return None


def tool_name(schema: dict[str, Any]) -> str | None:
    fn = schema.get("function", schema)
    return fn.get("name") if isinstance(fn, dict) else None


def question_of(row: dict[str, Any]) -> str | None:
    """The last user message of a conversational row (None when the row has no message list)."""
    msgs = messages_of(row)
    if msgs is None:
        return None
    users = [m["content"] for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else None


def episode_env(examples, tools: list | None, instruction: str = ""):
    """A ToolEnv factory when the rows or the task use tools, else None (single-turn)."""
    if not tools and not any(ex.columns.get("tools") for ex in examples):
        return None
    from functools import partial


    def question(ex):
        return f"{ex.question} {instruction}".strip() if instruction else ex.question

    return partial(ToolEnv, list(tools or []), question=question)
