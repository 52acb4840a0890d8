"""Environments for multi-turn, tool-using episodes: the protocol, tools, tool-call parsers, chat rendering.

The episode driver that runs them on a rollout engine is ``grpokit.rollout.multiturn``.
"""

from grpokit.envs.base import Environment, Start, Step, ToolEnv, TRLEnvironment, VerifiersEnvironment, initial_messages
from grpokit.envs.parsers import CallError, ParsedTurn, ToolCall, parse_turn
from grpokit.envs.tools import Tool, from_function, load_tool, run_call

__all__ = ["Environment", "Start", "Step", "ToolEnv", "TRLEnvironment", "VerifiersEnvironment", "initial_messages",
           "CallError", "ParsedTurn", "ToolCall", "parse_turn", "Tool", "from_function", "load_tool", "run_call"]
