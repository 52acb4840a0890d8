"""Reward functions and files for the pipeline tests (used through the 'module:function' form)."""

import json

from grpokit.datagen.filters import language_share


def language_consistency(prompts, completions, **_):
    """Fallback for the `language_consistency` built-in of the verifiers branch: share of Latin-script words."""
    return [language_share(c) for c in completions]


def always_one(prompts, completions, **_):
    return [1.0] * len(completions)


def length_reward(prompts, completions, **_):
    return [float(len(c)) for c in completions]


def has_digit(prompts, completions, **_):
    return [float(any(ch.isdigit() for ch in c)) for c in completions]


def language_reward_name() -> str:
    """The built-in when it is registered, else the fallback above."""
    from grpokit import rewards as rw

    return "language_consistency" if "language_consistency" in rw.builtin_names() else \
        "tests.pipeline.helpers:language_consistency"


def toy_task(path, n=40):
    """A task file whose answer is the digit the question names (no reasoning_gym import: fast)."""
    rows = [{"question": f"say {d}", "answer": str(d), "data_source": "math"} for d in range(10) for _ in range(n // 10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
