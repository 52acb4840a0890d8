"""The cold-start prompt: few-shot demonstrations of reasoning that checks and corrects itself.

DeepSeek-R1 (§2.3.1) built its cold-start set "using few-shot prompting with a long CoT as an
example, directly prompting models to generate detailed answers with reflection and verification",
then kept the readable, correct outputs. Without a bigger model we do the same with the model at
hand: the prompt shows a few solved questions in the target layout ::

    <think> work ... check ... (a mistake noticed and corrected) </think> <answer> result </answer>

followed by the real question. Kept samples are stored with the *bare* question as their prompt, so
SFT teaches the model to produce this layout without the demonstrations.

``DEMOS`` fit the arithmetic tasks (``add2``, ``arith``); for other tasks pass a JSONL file of
``{"question": ..., "response": ...}`` rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from grpokit.rollout import render

DEMOS: tuple[dict[str, str], ...] = (
    {"question": "Calculate 47 + 38.",
     "response": "<think> 47 + 38: first the tens, 40 + 30 = 70. Then the ones, 7 + 8 = 15. So 70 + 15 = 85. "
                 "Let me check by subtracting: 85 - 38 = 47. Correct. </think> <answer> 85 </answer>"},
    {"question": "Calculate 64 + 29.",
     "response": "<think> 64 + 29: 60 + 20 = 80, and 4 + 9 = 12, so 80 + 12 = 92. Wait, let me verify: "
                 "92 - 29 = 63, not 64, so there is a mistake. 4 + 9 is 13, not 12. So 80 + 13 = 93. "
                 "Verify again: 93 - 29 = 64. Correct. </think> <answer> 93 </answer>"},
    {"question": "Calculate 15 * 6 - 12.",
     "response": "<think> Multiplication first: 15 * 6 = 90. Then 90 - 12 = 78. Let me check: 78 + 12 = 90 and "
                 "90 / 6 = 15. Correct. </think> <answer> 78 </answer>"},
)
"""Built-in demonstrations (``few_shot='r1'``): plain work, a corrected mistake, and a check."""


def load_demos(spec: str, n: int = 0) -> list[dict[str, str]]:
    """``'r1'`` -> :data:`DEMOS`; a path -> its ``{"question", "response"}`` rows. The first ``n`` (0 = all)."""
    if spec == "r1":
        demos = [dict(d) for d in DEMOS]
    else:
        p = Path(spec)
        if not p.exists():
            raise FileNotFoundError(f"few-shot file {p} does not exist; use few_shot='r1' or a JSONL of "
                                    "{\"question\", \"response\"} rows")
        demos = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        for i, d in enumerate(demos):
            if not {"question", "response"} <= set(d):
                raise ValueError(f"{p} row {i + 1}: a demonstration needs 'question' and 'response', has {sorted(d)}")
    if not demos:
        raise ValueError(f"few-shot source {spec!r} holds no demonstrations")
    return demos[:n] if n else demos


def render_few_shot(tokenizer, demos: list[dict[str, str]], question: str, template: str = "chat",
                    system: str | None = None) -> str:
    """The prompt: each demo as a solved turn, then ``question`` ready for the model's answer.

    With ``chat`` the demos become earlier user/assistant turns of the conversation (so the model's
    own chat format is kept); with a plain template each demo is the template filled in and answered,
    separated by blank lines.
    """
    if template == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("this tokenizer has no chat template; use template 'plain', 'qa' or 'r1_zero'")
        messages = [{"role": "system", "content": system}] if system else []
        for d in demos:
            messages += [{"role": "user", "content": d["question"]}, {"role": "assistant", "content": d["response"]}]
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    shots = "".join(render(tokenizer, d["question"], template, system) + " " + d["response"] + "\n\n" for d in demos)
    return shots + render(tokenizer, question, template, system)
