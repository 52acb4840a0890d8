"""Exact numbers from answer strings, in pure Python (no sympy, no ``eval``): the fast path.

Two readers, both returning a ``fractions.Fraction`` so ``72.0 == 72`` and ``1/2 == 0.5`` hold
exactly:

- ``plain_number`` is strict: the whole string must be one number (``-1,234.5``, ``$72``,
  ``\\frac{3}{4}``, ``3/4``). Used by the ``auto`` grading mode to skip math-verify when both sides
  are plain numbers, which is most arithmetic / GSM8K traffic. With ``units=True`` it also reads
  a *model's* answer the way a grade-school answer is written: one number with a currency sign
  (``£12``), markdown bold (``**12**``) or unit words after it (``12 apples.``, ``45 minutes``),
  never a magnitude word (``12 hundred``) or a second number.
- ``exact_number`` is GSM8K's lenient reading (the ``exact`` mode): strip ``$``, thousands
  separators, units and words, then require exactly one distinct number. Two different numbers
  (``5 or 6``) is a hedge and reads as ``AMBIGUOUS``.
"""

from __future__ import annotations

import re
from fractions import Fraction

# A decimal numeral: optional sign, digits with correct thousands grouping or none, optional
# fraction part, optional exponent-free. "1,000" is one number; "1,00" is not a numeral.
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_SIGN = r"[-+\u2212]?"
_PLAIN_RE = re.compile(rf"^(?P<sign>{_SIGN})(?P<num>{_NUM})$")
_FRAC_RE = re.compile(r"^(?P<sign>[-+\u2212]?)\\[dt]?frac\{\s*(?P<a>\d+)\s*\}\{\s*(?P<b>\d+)\s*\}$")
_FRAC_SHORT_RE = re.compile(r"^(?P<sign>[-+\u2212]?)\\[dt]?frac(?P<a>\d)(?P<b>\d)$")
_SLASH_RE = re.compile(r"^(?P<sign>[-+\u2212]?)(?P<a>\d+)\s*/\s*(?P<b>\d+)$")
_MAX_DIGITS = 400  # longer numerals are not "plain": they go to the capped, sandboxed path
_CURRENCY_RE = re.compile(r"^(?P<sign>[-+\u2212]?)\s*(?:[$\u00a3\u20ac\u00a5\u20b9]|usd|eur|gbp)\s*", re.IGNORECASE)
_EMPHASIS_RE = re.compile(r"^(\*\*|__|\*|_)(.+)\1$")
# Up to three unit words after the number ("12 apples", "45 minutes in total"), each of two or
# more letters: a single letter may be a variable ("12 x"), and no word may change the value.
_UNITS_RE = re.compile(r"^(?P<num>\S+?)\s+(?P<words>[A-Za-z][A-Za-z'-]+(?:\s+[A-Za-z][A-Za-z'-]+){0,2})$")
_NOT_UNITS = frozenset({"hundred", "hundreds", "thousand", "thousands", "million", "millions", "billion", "billions",
                        "trillion", "dozen", "dozens", "half", "halves", "third", "thirds", "quarter", "quarters",
                        "fourth", "fourths", "fifth", "fifths", "tenth", "tenths", "percent", "times", "plus", "minus",
                        "over", "divided", "squared", "cubed", "pi", "sqrt", "or", "and", "to", "point", "more",
                        "less", "fewer", "each", "per", "is", "are", "than"})

AMBIGUOUS = "ambiguous"


def _strip_wrappers(s: str) -> str:
    s = s.strip()
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    s = s.replace("\\$", "$").replace("\\left", "").replace("\\right", "")
    if s.startswith("$") and s.endswith("$") and len(s) >= 2 and s.count("$") in (2, 4):
        s = s.strip("$").strip()
    elif s.startswith("$") and s.count("$") == 1:  # currency sign: "$72"
        s = s[1:].strip()
    s = s.rstrip(".").strip()
    return s


def _signed(sign: str, value: Fraction) -> Fraction:
    return -value if sign in ("-", "\u2212") else value


def _numeral(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _strip_units(s: str) -> str:
    """``**£1,200** dollars.`` -> ``1,200``: emphasis, a currency sign or code, then unit words."""
    if m := _EMPHASIS_RE.match(s):
        s = m.group(2).strip()
    if m := _UNITS_RE.match(s):
        if not any(w.lower() in _NOT_UNITS for w in m["words"].split()):
            s = m["num"]
    if m := _EMPHASIS_RE.match(s):
        s = m.group(2).strip()
    if m := _CURRENCY_RE.match(s):
        s = m["sign"] + s[m.end():]
    return _strip_wrappers(s)


def plain_number(s: str, units: bool = False) -> Fraction | None:
    """The value of ``s`` if the whole string is one plain number, else None.

    Accepts ``72``, ``-3.5``, ``1,234``, ``$72``, ``\\$72``, ``$\\frac{3}{4}$``, ``\\dfrac34``,
    ``3/4``, ``72.`` (a sentence's full stop). Anything else (units, words, symbols) is None,
    unless ``units``: then ``**72**``, ``£72``, ``USD 72``, ``72 apples.`` and ``72 minutes`` are 72
    too (unit words of two or more letters, at most three, none that changes the value:
    ``72 hundred``, ``72 x`` and ``72 or 73`` stay None). Units are not converted: the question
    names the unit it asks for, and ``2 hours`` reads as 2.
    """
    if not isinstance(s, str) or len(s) > _MAX_DIGITS:
        return None
    s = _strip_wrappers(s)
    if units:
        s = _strip_units(s)
    if m := _PLAIN_RE.match(s):
        return _signed(m["sign"], _numeral(m["num"]))
    for rx in (_FRAC_RE, _FRAC_SHORT_RE, _SLASH_RE):
        if (m := rx.match(s)) and int(m["b"]) != 0:
            return _signed(m["sign"], Fraction(int(m["a"]), int(m["b"])))
    return None


# --- the lenient GSM8K reading -------------------------------------------------------------

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm|operatorname)\s*\{([^{}]*)\}")
_LATEX_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_ANY_NUM_RE = re.compile(rf"(?<![\w.])(?P<sign>[-\u2212]?)(?P<num>{_NUM})(?:\s*/\s*(?P<den>\d+))?(?![\w])")


def _lenient_text(s: str) -> str:
    if "####" in s:  # GSM8K's own answer marker: the number follows the last one
        s = s.rsplit("####", 1)[1]
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    s = _TEXT_CMD_RE.sub(lambda m: f" {m.group(1)} ", s)
    s = _LATEX_FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    s = s.replace("\\$", " ").replace("$", " ").replace("\\%", "%").replace("\\boxed", " ")
    # "7 1/2" style mixed numbers are rare in answers; a space-separated digit pair stays two numbers.
    return s


def exact_number(s: str) -> Fraction | str | None:
    """GSM8K-style reading of an answer: the single number it states.

    Returns the value as a Fraction; ``AMBIGUOUS`` when the text states two or more different
    numbers (``5 or 6``, ``3 apples and 4 pears``); None when it states none. Units, currency,
    ``%`` and words around the number are ignored (``$1,234.00 dollars`` -> 1234).
    """
    if not isinstance(s, str):
        s = str(s)
    if len(s) > 10_000:
        return None
    values: list[Fraction] = []
    for m in _ANY_NUM_RE.finditer(_lenient_text(s)):
        if len(m["num"]) > _MAX_DIGITS:
            return None
        v = _numeral(m["num"])
        if m["den"] is not None:
            if int(m["den"]) == 0:
                return None
            v = v / int(m["den"])
        v = _signed(m["sign"], v)
        if v not in values:
            values.append(v)
    if not values:
        return None
    return values[0] if len(values) == 1 else AMBIGUOUS
