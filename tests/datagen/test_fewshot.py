"""The cold-start prompt: demonstrations as earlier turns, then the real question."""

import json

import pytest

from grpokit.datagen.fewshot import DEMOS, load_demos, render_few_shot
from grpokit.rewards.arith import final_number
from grpokit.rewards.format import is_r1_format
from tests.fixtures import build_tokenizer


def test_builtin_demos_are_correct_and_in_the_r1_format():
    for d in DEMOS:
        assert is_r1_format(d["response"]), d
        expr = d["question"].removeprefix("Calculate ").rstrip(".")
        assert int(final_number(d["response"])) == eval(expr)  # noqa: S307 - our own constant strings
    assert any("wait" in d["response"].lower() for d in DEMOS)  # one demo corrects a mistake


def test_chat_render_puts_demos_before_the_question():
    tok = build_tokenizer()
    demos = load_demos("r1", 2)
    text = render_few_shot(tok, demos, "Calculate 1 + 2.", "chat", "sys")
    msgs = [{"role": "system", "content": "sys"}]
    for d in demos:
        msgs += [{"role": "user", "content": d["question"]}, {"role": "assistant", "content": d["response"]}]
    msgs.append({"role": "user", "content": "Calculate 1 + 2."})
    assert text == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


def test_plain_render_and_demo_files(tmp_path):
    p = tmp_path / "demos.jsonl"
    p.write_text(json.dumps({"question": "q1", "response": "r1"}) + "\n")
    text = render_few_shot(build_tokenizer(), load_demos(str(p)), "q2", "Question: {prompt}\nAnswer:")
    assert text == "Question: q1\nAnswer: r1\n\nQuestion: q2\nAnswer:"
    p.write_text(json.dumps({"question": "q1"}) + "\n")
    with pytest.raises(ValueError, match="needs 'question' and 'response'"):
        load_demos(str(p))
    with pytest.raises(FileNotFoundError, match="few_shot='r1'"):
        load_demos(str(tmp_path / "missing.jsonl"))
