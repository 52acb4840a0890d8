"""How a question becomes the text the model continues: its chat template, or a plain template."""

from __future__ import annotations

R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. User: {prompt}. Assistant:"
)
"""DeepSeek-R1-Zero's training template (R1 paper, Table 1); ``{prompt}`` is the question."""

PLAIN_TEMPLATES = {"r1_zero": R1_ZERO, "plain": "{prompt}", "qa": "Question: {prompt}\nAnswer:"}
TEMPLATES = ("chat", *PLAIN_TEMPLATES)


def render(tokenizer, question: str, template: str = "chat", system: str | None = None) -> str:
    """The prompt text for ``question``.

    ``chat`` uses the tokenizer's own chat template (with ``system`` as a system message when
    given) and adds the generation prompt; the other names are plain-text templates
    (``PLAIN_TEMPLATES``), or pass any string containing ``{prompt}``.
    """
    if template == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("this tokenizer has no chat template; use template 'plain', 'qa' or 'r1_zero'")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    fmt = PLAIN_TEMPLATES.get(template, template)
    if "{prompt}" not in fmt:
        raise ValueError(f"unknown template {template!r}: use one of {TEMPLATES} or a string containing '{{prompt}}'")
    return fmt.replace("{prompt}", question)
