"""Reading tool calls out of a model turn: Hermes/Qwen JSON, SmolLM2's JSON list, and ``<tool>`` text.

Formats, tried in this order on the decoded text of one assistant turn:

- ``hermes`` (Hermes, Qwen2.5/3, and what grpokit asks of templates that ignore ``tools``):
  ``<tool_call>{"name": "calculator", "arguments": {"expression": "12*34"}}</tool_call>``, one tag
  per call. SmolLM2's function-calling format puts a JSON *list* of such objects in one tag
  (``<tool_call>[{...}, {...}]</tool_call>``); both are read.
- ``plain`` (a fallback for base models and tiny vocabularies): ``<tool>calculator: 12*34</tool>``,
  the text after the colon going to the tool's single string argument (or a JSON object of
  arguments: ``<tool>calculator: {"expression": "12*34"}</tool>``).

A tag that does not parse becomes a :class:`CallError` that the environment answers with a message
the model can read; it never raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_HERMES = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_PLAIN = re.compile(r"<tool>(.*?)(?:</tool>|$)", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for: the tool's name and its arguments (a JSON object)."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class CallError:
    """A call-shaped span that could not be read; ``message`` is what the model is told."""

    text: str
    message: str


@dataclass
class ParsedTurn:
    """An assistant turn: its raw ``text``, the text outside call tags (``content``), and its calls."""

    text: str
    content: str
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[CallError] = field(default_factory=list)

    @property
    def wants_tools(self) -> bool:
        """True when the turn tried to call a tool (well-formed or not)."""
        return bool(self.calls or self.errors)


def _from_json(obj: Any, raw: str) -> list[ToolCall | CallError]:
    items = obj if isinstance(obj, list) else [obj]
    out: list[ToolCall | CallError] = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("name"), str):
            out.append(CallError(raw, 'a tool call must be a JSON object {"name": ..., "arguments": {...}}'))
            continue
        args = it.get("arguments", it.get("parameters", {}))
        if isinstance(args, str):  # some models JSON-encode the arguments twice (OpenAI's wire format)
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass
        if not isinstance(args, dict):
            out.append(CallError(raw, f'the arguments of {it["name"]!r} must be a JSON object'))
            continue
        out.append(ToolCall(it["name"], args))
    return out


def _hermes(body: str) -> list[ToolCall | CallError]:
    body = body.strip()
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        return [CallError(body, f"the tool call is not valid JSON ({e.msg} at character {e.pos}); write "
                                '<tool_call>{"name": "...", "arguments": {...}}</tool_call>')]
    return _from_json(obj, body)


def _plain(body: str) -> list[ToolCall | CallError]:
    body = body.strip()
    name, sep, rest = body.partition(":")
    name, rest = name.strip(), rest.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
        return [CallError(body, "write a tool call as <tool>tool_name: input</tool>")]
    if rest.startswith("{"):
        try:
            args = json.loads(rest)
        except json.JSONDecodeError:
            args = None
        if isinstance(args, dict):
            return [ToolCall(name, args)]
    return [ToolCall(name, {"__input__": rest})]  # the tool's single argument (see tools.Tool.bind)


def parse_turn(text: str) -> ParsedTurn:
    """Split ``text`` (one decoded assistant turn) into content and tool calls (see module docstring)."""
    found: list[ToolCall | CallError] = []
    spans = list(_HERMES.finditer(text))
    for m in spans:
        found += _hermes(m.group(1))
    if not spans:
        spans = list(_PLAIN.finditer(text))
        for m in spans:
            found += _plain(m.group(1))
    content = text
    for m in reversed(spans):
        content = content[:m.start()] + content[m.end():]
    return ParsedTurn(text=text, content=content.strip(), calls=[c for c in found if isinstance(c, ToolCall)],
                      errors=[c for c in found if isinstance(c, CallError)])
