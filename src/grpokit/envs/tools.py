"""Tools an episode can call: a Python function with a JSON schema, run so that it cannot cost the run.

A :class:`Tool` is ``fn(**arguments) -> str`` plus the OpenAI-style schema the chat template shows
the model (``{"type": "function", "function": {"name", "description", "parameters"}}``). The schema
is read from the function's type hints and Google-style docstring (``transformers``'
``get_json_schema``, the same reader TRL and the chat templates use), or given explicitly.

``run_call`` executes one call on a daemon thread with a wall-clock limit: a tool that raises, hangs
or returns something odd gives the model an error message and marks the call failed; the episode
goes on (or ends, as the environment decides) and the training run never sees the exception. A
hung Python function cannot be killed from another thread, so its thread is abandoned (daemon,
so it never blocks exit); tools that run untrusted code use the sandbox (``python`` below), whose
programs are killed on their own wall clock.

Built-ins: ``calculator`` (exact rational arithmetic, :mod:`grpokit.envs.calculator`) and
``python`` (a program run in :class:`grpokit.envs.sandbox.Sandbox`, printing its stdout).
Users add a tool as ``module:function`` (optionally ``module:function=schema.json``).
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grpokit.envs.calculator import calculator
from grpokit.envs.sandbox import Limits, Sandbox

MAX_RESULT_CHARS = 2000


@dataclass(frozen=True)
class Tool:
    """A callable the model may use. ``schema`` is the OpenAI function schema shown to the model."""

    name: str
    fn: Callable[..., Any]
    schema: dict[str, Any]
    timeout_s: float = 10.0

    @property
    def required(self) -> list[str]:
        return list(self.schema.get("function", {}).get("parameters", {}).get("required", []))

    @property
    def parameters(self) -> list[str]:
        return list(self.schema.get("function", {}).get("parameters", {}).get("properties", {}))

    def bind(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of a call; the ``<tool>name: text</tool>`` form fills the single parameter."""
        if set(arguments) == {"__input__"}:
            params = self.required or self.parameters
            if len(params) != 1:
                raise ValueError(f"tool {self.name!r} takes {len(self.parameters)} arguments; pass them as JSON")
            return {params[0]: arguments["__input__"]}
        return arguments


@dataclass
class CallResult:
    """What a tool call returned (``text``, shown to the model) and whether it failed."""

    name: str
    text: str
    ok: bool
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def from_function(fn: Callable[..., Any], *, name: str | None = None, schema: dict[str, Any] | None = None,
                  timeout_s: float = 10.0) -> Tool:
    """A tool from a plain function; its schema from type hints + docstring unless ``schema`` is given."""
    if schema is None:
        from transformers.utils import get_json_schema

        try:
            schema = get_json_schema(fn)
        except Exception as e:  # transformers raises its own DocstringParsingException / TypeHintParsingException
            raise ValueError(f"tool {getattr(fn, '__name__', fn)!r}: cannot build its JSON schema ({e}); give every "
                             "argument a type hint and an 'Args:' docstring line, or pass schema=...") from e
        schema.get("function", {}).pop("return", None)
    if "function" not in schema:  # a bare {"name", "description", "parameters"} object
        schema = {"type": "function", "function": schema}
    schema = json.loads(json.dumps(schema))  # a private, JSON-clean copy
    if name:
        schema["function"]["name"] = name
    return Tool(name=schema["function"]["name"], fn=fn, schema=schema, timeout_s=timeout_s)


def load_tool(spec: str | Tool | Callable[..., Any]) -> Tool:
    """A built-in name (``calculator``, ``python``), ``module:function`` or ``module:function=schema.json``."""
    if isinstance(spec, Tool):
        return spec
    if callable(spec):
        return from_function(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]()
    target, _, schema_path = spec.partition("=")
    mod_name, sep, attr = target.partition(":")
    if not sep:
        raise ValueError(f"unknown tool {spec!r}: use one of {sorted(BUILTIN)} or 'module:function'")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"tool {spec!r}: cannot import module {mod_name!r} ({e}); is it on PYTHONPATH?") from e
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ValueError(f"tool {spec!r}: {mod_name!r} has no callable {attr!r}")
    schema = json.loads(Path(schema_path).read_text()) if schema_path else None
    return from_function(fn, schema=schema)


def run_call(tool: Tool | None, name: str, arguments: dict[str, Any]) -> CallResult:
    """Run one call with the tool's wall-clock limit; every failure becomes a message, never an exception."""
    if tool is None:
        return CallResult(name, f"Error: there is no tool named {name!r}.", ok=False, error="unknown_tool")
    try:
        kwargs = tool.bind(arguments)
    except ValueError as e:
        return CallResult(name, f"Error: {e}", ok=False, error="bad_arguments")
    missing = [p for p in tool.required if p not in kwargs]
    unknown = [a for a in kwargs if tool.parameters and a not in tool.parameters]
    if missing or unknown:
        what = (f"missing {missing}" if missing else "") + (" and " if missing and unknown else "") + (
            f"unknown {unknown}" if unknown else "")
        return CallResult(name, f"Error: {name} got {what} arguments; it takes {tool.parameters}.", ok=False,
                          error="bad_arguments")
    box: dict[str, Any] = {}

    def work():
        try:
            box["value"] = tool.fn(**kwargs)
        except BaseException as e:  # noqa: BLE001 - a tool's failure is reported to the model, never raised
            box["error"] = f"{type(e).__name__}: {e}"

    th = threading.Thread(target=work, name=f"tool-{name}", daemon=True)
    th.start()
    th.join(tool.timeout_s)
    if th.is_alive():
        return CallResult(name, f"Error: {name} did not answer within {tool.timeout_s:g} s.", ok=False, error="timeout")
    if "error" in box:
        return CallResult(name, f"Error: {name} failed: {box['error'][:300]}", ok=False, error="raised")
    value = box.get("value")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + " ...[truncated]"
    failed = text.startswith("Error:")  # built-ins answer a bad input with "Error: ..."
    return CallResult(name, text, ok=not failed, error="tool_error" if failed else None)


def calculator_tool() -> Tool:
    return from_function(calculator, timeout_s=5.0)


def python_tool(wall_s: float = 5.0, memory_mb: int = 512) -> Tool:
    """Run a Python program in the bubblewrap sandbox (grpokit.envs.sandbox, same guarantees)."""
    box: dict[str, Sandbox] = {}

    def python(code: str) -> str:
        """Run a Python program and return what it prints.

        Args:
            code: a complete Python program; print() the values you need.
        """
        if "sandbox" not in box:  # built on first use: the self-test starts one sandboxed run
            box["sandbox"] = Sandbox(limits=Limits(wall_s=wall_s, cpu_s=max(1, int(wall_s)), memory_mb=memory_mb))
        res = box["sandbox"].run_python(code)
        out = res.stdout.decode("utf-8", "replace")
        if res.timed_out:
            return f"Error: the program ran longer than {wall_s:g} s and was stopped.\n{out}"[:MAX_RESULT_CHARS]
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            return ("Error: " + "\n".join(err) + ("\n" + out if out else ""))[:MAX_RESULT_CHARS]
        return out.rstrip("\n") or "(the program printed nothing)"

    # The sandbox has its own wall clock; the thread limit is only a backstop above it.
    return from_function(python, timeout_s=wall_s + 30.0)


BUILTIN: dict[str, Callable[[], Tool]] = {"calculator": calculator_tool, "python": python_tool}
