"""Configured built-ins: ``name(key=value)`` specs resolve through registered factories."""

from __future__ import annotations

import pytest

from grpokit.rewards import build, builtin_names, factory_names, resolve


def test_every_builtin_module_registers():
    names = set(builtin_names())
    assert {"math", "math_exact", "r1_format", "tag_count", "boxed_format", "language_consistency", "overlong",
            "repetition", "code_tests", "countdown", "exact_answer", "routed"} <= names
    assert {"math", "overlong", "repetition", "code_tests", "countdown", "routed"} <= set(factory_names())


def test_configured_spec_and_display_name():
    (spec,) = build({"math(region='answer', mode='exact')": 2.0})
    assert spec.name == "math(region='answer', mode='exact')" and spec.weight == 2.0
    assert spec.fn([""], ["<answer>$72.00</answer>"], answer=["72"]) == [1.0]


@pytest.mark.parametrize("spec,msg", [
    ("boxed_format(x=1)", "takes no options"),
    ("math('answer')", "options must be named"),
    ("math(region=foo())", "must be literals"),
    ("math(region='nowhere')", "region must be one of"),
    ("math(colour='red')", "unexpected keyword"),
    ("math(region=", "unknown reward"),
])
def test_bad_specs_say_what_is_wrong(spec, msg):
    with pytest.raises(ValueError, match=msg):
        resolve(spec)
