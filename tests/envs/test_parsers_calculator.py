"""Tool-call parsing (every format, malformed input) and the exact calculator."""

from fractions import Fraction

import pytest

from grpokit.envs.calculator import CalcError, calculator, evaluate
from grpokit.envs.parsers import ToolCall, parse_turn


def test_hermes_call_with_text_around():
    t = parse_turn('Let me compute. <tool_call>{"name": "calculator", "arguments": {"expression": "12*34"}}</tool_call>')
    assert t.calls == [ToolCall("calculator", {"expression": "12*34"})]
    assert t.content == "Let me compute." and not t.errors and t.wants_tools


def test_smollm2_json_list_and_string_arguments():
    t = parse_turn('<tool_call>[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": "{\\"y\\": 2}"}]</tool_call>')
    assert t.calls == [ToolCall("a", {"x": 1}), ToolCall("b", {"y": 2})]


def test_two_hermes_tags_and_unclosed_tag():
    t = parse_turn('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}')
    assert [c.name for c in t.calls] == ["a", "b"]


@pytest.mark.parametrize("text", ["<tool_call>{bad json</tool_call>", '<tool_call>{"arguments": {}}</tool_call>',
                                  '<tool_call>{"name": "a", "arguments": [1]}</tool_call>', "<tool_call>[1, 2]</tool_call>",
                                  "<tool>no colon here</tool>"])
def test_malformed_calls_become_errors_not_exceptions(text):
    t = parse_turn(text)
    assert t.errors and not t.calls and t.wants_tools
    assert all(e.message for e in t.errors)


def test_plain_fallback_single_argument_and_json_arguments():
    assert parse_turn("<tool>calculator: 12*34</tool> done").calls == [ToolCall("calculator", {"__input__": "12*34"})]
    assert parse_turn('<tool>calculator: {"expression": "1+1"}</tool>').calls == [ToolCall("calculator", {"expression": "1+1"})]


def test_no_call_is_a_final_answer():
    t = parse_turn("The answer is 408.")
    assert not t.wants_tools and t.content == "The answer is 408."


def test_calculator_is_exact():
    assert evaluate("1/3*3") == 1
    assert evaluate("123456789123456789 * 987654321987654321") == 123456789123456789 * 987654321987654321
    assert evaluate("0.1 + 0.2") == Fraction(3, 10)
    assert evaluate("(1+2)^3") == 27 and evaluate("1,234 * 2") == 2468 and evaluate("-7 // 2") == -4
    assert calculator("10/4") == "5/2 = 2.5" and calculator("56088") == "56088"


@pytest.mark.parametrize("expr", ["__import__('os').system('true')", "x + 1", "[1] * 10", "2 ** 100000",
                                  "9 ** 9 ** 9", "1/0", "7 % 0", "2 ** 0.5", "(" * 300 + "1" + ")" * 300, "1 if 1 else 2",
                                  "'a' * 3", "1 << 4"])
def test_calculator_refuses_with_a_message(expr):
    out = calculator(expr)
    assert out.startswith("Error: ")
    with pytest.raises((CalcError, RecursionError)):
        evaluate(expr)
