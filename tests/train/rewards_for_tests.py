"""Reward functions used by the loop tests through the 'module:function' form."""


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
