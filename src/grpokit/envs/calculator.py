"""A calculator tool: exact rational arithmetic over a whitelist of syntax, never ``eval``.

The expression is parsed with :mod:`ast` and walked; only numbers, ``+ - * / // % **``,
unary ``+ -`` and parentheses are accepted, and every value is a :class:`fractions.Fraction`, so
``1/3*3`` is exactly ``1`` and 30-digit products are not rounded. Powers are bounded (integer
exponents up to 1000 in size, results up to 2000 digits) so a call cannot hang the run.
"""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

MAX_DIGITS = 2000
MAX_EXPONENT = 1000
MAX_CHARS = 500

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


class CalcError(ValueError):
    """The expression is outside what the calculator accepts (the message says why)."""


def _size_ok(x: Fraction) -> Fraction:
    if max(len(str(abs(x.numerator))), len(str(x.denominator))) > MAX_DIGITS:
        raise CalcError(f"result has more than {MAX_DIGITS} digits")
    return x


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand)
        return v if isinstance(node.op, ast.UAdd) else -v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if b.denominator != 1:
                raise CalcError("only integer powers are exact; use an integer exponent")
            if abs(b.numerator) > MAX_EXPONENT:
                raise CalcError(f"exponent larger than {MAX_EXPONENT}")
            if a == 0 and b < 0:
                raise CalcError("division by zero")
            if a != 0 and abs(b.numerator) * max(len(str(abs(a.numerator))), len(str(a.denominator))) > MAX_DIGITS + 2:
                raise CalcError(f"result has more than {MAX_DIGITS} digits")
            return _size_ok(a ** int(b))
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise CalcError(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
            raise CalcError("division by zero")
        return _size_ok(Fraction(op(a, b)))
    raise CalcError(f"{type(node).__name__} is not allowed: use numbers, + - * / // % ** and parentheses")


def evaluate(expression: str) -> Fraction:
    """The exact value of ``expression`` (raises :class:`CalcError` with a readable message)."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if len(text) > MAX_CHARS:
        raise CalcError(f"expression longer than {MAX_CHARS} characters")
    text = text.replace(",", "")  # thousands separators: 1,234 -> 1234
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise CalcError(f"cannot read the expression ({e.msg})") from None
    return _eval(tree)


def format_value(x: Fraction) -> str:
    """``123`` for integers; ``7/3 = 2.333333`` otherwise."""
    if x.denominator == 1:
        return str(x.numerator)
    return f"{x.numerator}/{x.denominator} = {float(x):.6g}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly.

    Args:
        expression: numbers with + - * / // % ** and parentheses, e.g. "(12 + 3) * 456".
    """
    try:
        return format_value(evaluate(expression))
    except CalcError as e:
        return f"Error: {e}"
    except RecursionError:
        return "Error: the expression is nested too deeply"
