"""Reward functions used by the loop tests through the 'module:function' form."""

import math


def crash_on_digits(prompts, completions, **_):
    out = []
    for c in completions:
        if any(ch.isdigit() for ch in c):
            raise RuntimeError("this reward cannot handle digits")
        out.append(0.0)
    return out


def first_char_is_answer(prompts, completions, answer, **_):
    return [float(c[:1] == a) for c, a in zip(completions, answer)]


def digit_share(prompts, completions, **_):
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def digit_share_low_only(prompts, completions, answer, **_):
    """Share of digits for questions whose answer is 0-4; questions answered 5-9 always score 0 (flat groups)."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) if int(a) < 5 else 0.0 for c, a in zip(completions, answer)]


def always_zero(prompts, completions, **_):
    return [0.0 for _ in completions]


def nan_every_other(prompts, completions, **_):
    """NaN for odd completions, inf for every fourth, else the share of digits: nothing non-finite may reach the weights."""
    return [float("inf") if i % 4 == 0 else float("nan") if i % 2 else sum(ch.isdigit() for ch in c) / max(1, len(c))
            for i, c in enumerate(completions)]


def breaks_the_contract(prompts, completions, **_):
    """Exits on a completion with a digit, scores NaN one with a space, and gives a batch one value too many."""
    if any(ch.isdigit() for c in completions for ch in c):
        raise SystemExit("a reward called sys.exit")
    values = [math.nan if " " in c else 1.0 for c in completions]
    return values + [0.0] if len(completions) > 1 else values
