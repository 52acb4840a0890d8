"""Arithmetic the model cannot do in its head but can with a calculator: multi-turn, tool-using tasks.

``calculator_mul``: three-digit by three-digit multiplication (``Calculate 482 * 917.`` ->
``441994``), from ``reasoning-gym``'s generator as the other arithmetic tasks. SmolLM2-135M gets
almost none right unaided; with the ``calculator`` tool it needs two things it can learn by RL:
to write a ``<tool_call>`` with the expression, and to copy the result into its final answer.
Each prompt runs as an episode (``grpokit.rollout.multiturn``); the reward (``final_number``)
grades the model's final message, so the number in the tool's reply earns nothing unless the
model states it.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from grpokit.envs import ToolEnv
from grpokit.tasks import Task, register
from grpokit.tasks.arith import _split

INSTRUCTION = "Use the calculator tool, then give the final number."


def worked_example(instruction: str) -> list[dict]:
    """One finished episode shown before each question (a one-shot demonstration of the call format).

    SmolLM2-135M never writes a ``<tool_call>`` from the system prompt's description alone (measured:
    0 of 8 sampled episodes); a demonstration in the context is what small models copy.
    """
    call = '<tool_call>{"name": "calculator", "arguments": {"expression": "12 * 34"}}</tool_call>'
    return [{"role": "user", "content": f"Calculate 12 * 34. {instruction}".strip()},
            {"role": "assistant", "content": call},
            {"role": "tool", "name": "calculator", "content": "408"},
            {"role": "assistant", "content": "The answer is 408."}]


def _tool_task(name: str, cfg: dict, tools: list[str], train_size: int, heldout_size: int, seed: int,
               max_turns: int, max_episode_tokens: int, instruction: str, demo: bool) -> Task:
    task = _split(name, cfg, train_size, heldout_size, seed)

    def question(ex):
        return f"{ex.question} {instruction}".strip()

    preamble = worked_example(instruction) if demo else []
    return replace(task, instruction=instruction, env=partial(ToolEnv, tools, question=question, preamble=preamble),
                   meta={**task.meta, "tools": tools, "demo": demo,
                         "episode": {"max_turns": max_turns, "max_episode_tokens": max_episode_tokens}})


@register("calculator_mul")
def calculator_mul(train_size: int = 4000, heldout_size: int = 200, seed: int = 0, digits: int = 3,
                   max_turns: int = 3, max_episode_tokens: int = 256, instruction: str = INSTRUCTION,
                   demo: bool = True) -> Task:
    """``digits``-digit by ``digits``-digit multiplication with the ``calculator`` tool (multi-turn).

    ``demo`` shows one worked episode (12 * 34 with the calculator) before each question.
    """
    cfg = dict(min_terms=2, max_terms=2, min_digits=digits, max_digits=digits, operators=("*",),
               allow_parentheses=False, allow_negation=False)
    return _tool_task("calculator_mul", cfg, ["calculator"], train_size, heldout_size, seed, max_turns,
                      max_episode_tokens, instruction, demo)
