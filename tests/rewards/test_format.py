"""Format rewards: the R1 layout, partial tag credit, boxed answers, pre-filled templates."""

from __future__ import annotations

import pytest

from grpokit.rewards import resolve
from grpokit.rewards.format import is_r1_format, prompt_prefills_think, tag_count_score

GOOD = "<think>2+2 is 4</think>\n<answer>4</answer>"


@pytest.mark.parametrize("text,prefilled,ok", [
    (GOOD, False, True),
    ("  " + GOOD + "\n", False, True),
    (GOOD + " extra", False, False),                                  # nothing after </answer>
    ("<think>a</think><answer>1</answer><answer>2</answer>", False, False),
    ("<think>a</think><think>b</think><answer>1</answer>", False, False),
    ("<answer>4</answer><think>a</think>", False, False),            # wrong order
    ("<think>a</think> so <answer>4</answer>", False, False),          # text between the blocks
    ("preamble <think>a</think><answer>4</answer>", False, False),
    ("2+2 is 4</think><answer>4</answer>", True, True),               # template wrote <think>
    ("2+2 is 4</think><answer>4</answer>", False, False),
    (GOOD, True, False),                                              # a second <think> after the pre-fill
    ("<think>a</think>", False, False),
])
def test_is_r1_format(text, prefilled, ok):
    assert is_r1_format(text, prefilled) is ok


@pytest.mark.parametrize("text,prefilled,score", [
    (GOOD, False, 1.0), ("<think>a</think>", False, 0.5), ("<think>a<think>b</think>", False, 0.25),
    ("nothing", False, 0.0), ("a</think><answer>1</answer>", True, 1.0), ("a</think><answer>1", False, 0.5),
])
def test_tag_count(text, prefilled, score):
    assert tag_count_score(text, prefilled) == score


def test_prefill_is_read_from_the_prompt():
    prompts = ["<|im_start|>assistant\n<think>\n", "User: q. Assistant:"]
    completions = ["a</think><answer>1</answer>"] * 2
    assert prompt_prefills_think(prompts[0]) and not prompt_prefills_think(prompts[1])
    assert resolve("r1_format")(prompts, completions) == [1.0, 0.0]
    assert resolve("tag_count")(prompts, completions) == [1.0, 0.75]
    assert resolve("r1_format(think_prefilled=True)")(prompts, completions) == [1.0, 1.0]


def test_boxed_format():
    fn = resolve("boxed_format")
    assert fn([""] * 4, ["\\boxed{1}", "\\boxed{1} \\boxed{2}", "none", "\\boxed{unclosed"]) == [1.0, 0.0, 0.0, 0.0]
