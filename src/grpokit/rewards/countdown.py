"""Countdown (TinyZero's task): reach ``target`` with ``+ - * /`` over the given numbers.

The checker never evaluates model text as Python. A small tokenizer and a recursive-descent
parser read the grammar::

    expr   := term (('+' | '-') term)*
    term   := factor (('*' | '/') factor)*
    factor := NUMBER | '(' expr ')'

with exact rational arithmetic (``fractions.Fraction``), each given number used at most once
(``use_all=True``: exactly once, TinyZero's rule), and caps on length, nesting and digits.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

from grpokit.rewards import register, register_factory
from grpokit.rewards.math import extract_answer

MAX_CHARS = 200
MAX_DEPTH = 20
MAX_DIGITS = 6
_TOKEN_RE = re.compile(r"\s*(?:(\d+)|([-+*/()]))")
_TRAILING_EQ_RE = re.compile(r"=\s*-?\d+(?:\.\d+)?\s*$")


class ExprError(ValueError):
    """The answer is not a valid countdown expression (the message says why)."""


def tokenize(expr: str) -> list[str]:
    expr = expr.replace("\u00d7", "*").replace("\u00f7", "/").replace("\u2212", "-").replace("\\times", "*") \
               .replace("\\div", "/").replace("\\cdot", "*")
    if len(expr) > MAX_CHARS:
        raise ExprError(f"longer than {MAX_CHARS} characters")
    tokens, pos, end = [], 0, len(expr.rstrip())
    while pos < end:
        m = _TOKEN_RE.match(expr, pos)
        if not m:
            raise ExprError(f"unexpected character {expr[pos:].strip()[:1]!r}")
        if m.group(1) is not None and len(m.group(1)) > MAX_DIGITS:
            raise ExprError(f"a number longer than {MAX_DIGITS} digits")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    if not tokens:
        raise ExprError("empty expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i, self.used = tokens, 0, Counter()

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ExprError("the expression ends too early")
        self.i += 1
        return tok

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth: int) -> Fraction:
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.factor(depth)
            if op == "/" and rhs == 0:
                raise ExprError("division by zero")
            value = value * rhs if op == "*" else value / rhs
        return value

    def factor(self, depth: int) -> Fraction:
        tok = self.take()
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise ExprError(f"parentheses nested deeper than {MAX_DEPTH}")
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise ExprError("a '(' is not closed")
            return value
        if tok.isdigit():
            self.used[int(tok)] += 1
            return Fraction(int(tok))
        raise ExprError(f"expected a number or '(', got {tok!r}")


def evaluate(expr: str, numbers: list[int], use_all: bool = False) -> Fraction:
    """The exact value of ``expr``; raises ``ExprError`` when it is malformed or misuses ``numbers``.

    A trailing ``= N`` (the model restating the target) is ignored.
    """
    expr = _TRAILING_EQ_RE.sub("", expr)
    p = _Parser(tokenize(expr))
    value = p.expr(0)
    if p.peek() is not None:
        raise ExprError(f"unexpected {p.peek()!r} after a complete expression")
    have = Counter(int(n) for n in numbers)
    extra = p.used - have
    if extra:
        raise ExprError(f"uses {sorted(extra.elements())} more often than given ({sorted(have.elements())})")
    if use_all and p.used != have:
        raise ExprError(f"does not use all of {sorted(have.elements())}")
    return value


def countdown_score(text: str, numbers: list[int], target: int, use_all: bool = False,
                    region: str = "auto") -> float:
    """1.0 when the completion's single final answer is an expression equal to ``target``."""
    ex = extract_answer(text, region)
    if ex.answer is None:
        return 0.0
    try:
        return float(evaluate(ex.answer, numbers, use_all) == Fraction(target))
    except ExprError:
        return 0.0


@register_factory("countdown")
def countdown_reward(use_all: bool = False, region: str = "auto"):
    """``countdown(use_all=True)``: TinyZero's rule that every number is used exactly once."""

    def countdown(prompts, completions, numbers, target, **_) -> list[float | None]:
        """1.0 for a valid expression over ``numbers`` equal to ``target``; None without them."""
        return [None if ns is None or t is None else countdown_score(c, list(ns), int(t), use_all, region)
                for c, ns, t in zip(completions, numbers, target)]

    return countdown


countdown = register("countdown")(countdown_reward())
