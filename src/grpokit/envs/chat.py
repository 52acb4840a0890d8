"""Conversations as the model sees them: the chat template with ``tools=``, and the tokens between turns.

``render_start`` renders an episode's first context with ``apply_chat_template(messages,
tools=schemas, add_generation_prompt=True)``. Some templates ignore ``tools`` (SmolLM2-135M's does:
it renders exactly the same text with or without them); for those, the tool schemas and the call
format go into the system message (:func:`tool_system_prompt`), in the ``<tool_call>`` JSON format
that :mod:`grpokit.envs.parsers` reads (Hermes/Qwen style; SmolLM2's own function-calling prompt
uses the same tags with a JSON list, which the parser also reads).

``env_tail`` gives the text that follows a model turn: the end of the assistant message as the
template writes it, the environment's messages, and the next generation prompt. It is taken from
one render of the conversation with a sentinel in place of the model's text, so the model's
tokens are never decoded and re-encoded: the learner trains on exactly the ids the sampler drew.
"""

from __future__ import annotations

import json
from typing import Any

_SENTINEL = "\u2063GRPOKIT_TURN\u2063"


def tool_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The system text that teaches the ``<tool_call>`` format to a model whose template ignores tools."""
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    first = tools[0]["function"]
    arg = next(iter(first.get("parameters", {}).get("properties", {})), "input")
    return ("You can call these tools:\n<tools>\n" + lines + "\n</tools>\n\n"
            "To call a tool, reply with only a JSON object inside <tool_call></tool_call> tags, e.g.\n"
            '<tool_call>{"name": "' + first["name"] + '", "arguments": {"' + arg + '": "..."}}</tool_call>\n'
            "The result comes back in the next message. When you know the final answer, reply with it "
            "and no tool call.")


def template_handles_tools(tokenizer) -> bool:
    """True when the chat template renders tool schemas (it changes when ``tools=`` is passed)."""
    probe = [{"role": "user", "content": "hi"}]
    tool = [{"type": "function", "function": {"name": "probe_tool_x", "description": "d",
                                               "parameters": {"type": "object", "properties": {}}}}]
    try:
        with_tools = tokenizer.apply_chat_template(probe, tools=tool, tokenize=False, add_generation_prompt=True)
    except Exception:
        return False
    return "probe_tool_x" in with_tools


def with_tool_prompt(messages: list[dict], tools: list[dict], native: bool) -> list[dict]:
    """``messages`` with the tool instructions in the system message when the template cannot show tools."""
    if native or not tools:
        return messages
    text = tool_system_prompt(tools)
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": messages[0]["content"] + "\n\n" + text}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _render(tokenizer, messages, tools, native, add_generation_prompt):
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("multi-turn episodes need a chat template; this tokenizer has none")
    return tokenizer.apply_chat_template(with_tool_prompt(messages, tools, native), tools=(tools or None) if native else None,
                                         tokenize=False, add_generation_prompt=add_generation_prompt)


def render_start(tokenizer, messages: list[dict], tools: list[dict], native: bool) -> str:
    """The first context of an episode, ending with the generation prompt."""
    return _render(tokenizer, messages, tools, native, True)


def env_tail(tokenizer, history: list[dict], env_messages: list[dict], tools: list[dict], native: bool,
             stop_text: str) -> str:
    """The text after a model turn that ended with ``stop_text``: end of turn, env messages, next prompt.

    ``history`` is the conversation before the model turn. The template renders
    ``history + [assistant: SENTINEL] + env_messages`` with the generation prompt; what follows the
    sentinel, minus the stop text the model already produced, is the environment's span.
    """
    full = _render(tokenizer, [*history, {"role": "assistant", "content": _SENTINEL}, *env_messages], tools, native, True)
    at = full.rfind(_SENTINEL)
    if at < 0:
        raise ValueError("the chat template drops the assistant's text; cannot place the environment's tokens")
    tail = full[at + len(_SENTINEL):]
    if stop_text and tail.startswith(stop_text):
        tail = tail[len(stop_text):]
    return tail
