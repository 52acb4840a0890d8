"""Held-out accuracy: the task's correctness reward on greedy or sampled completions.

The same reward function that trains the model grades it here, so the reported number and the
trained signal cannot drift apart.
"""

from __future__ import annotations

import math

import torch

from grpokit import rewards as rw
from grpokit.records import Example
from grpokit.rollout import SamplingParams, render


def accuracy(engine, tokenizer, task, examples: list[Example], *, template: str = "chat", system: str = "",
             max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0, k: int = 1,
             batch_size: int = 64, seed: int = 0) -> dict:
    """Mean correctness over ``examples`` x ``k`` samples (``temperature 0`` = greedy, ``k`` must be 1).

    Returns ``{"acc", "stderr", "n", "k", "mean_length", "samples": [...]}``; ``stderr`` is the
    standard error over questions (per-question mean over ``k``).
    """
    if temperature == 0 and k != 1:
        raise ValueError("greedy decoding gives one answer per question: use k=1 or temperature > 0")
    grader = rw.resolve(task.correctness)
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    gen = torch.Generator().manual_seed(seed)
    per_q, samples, lengths = [], [], []
    for i in range(0, len(examples), max(1, batch_size // k)):
        chunk = examples[i:i + max(1, batch_size // k)]
        prompts = [render(tokenizer, task.question_text(ex), template, system or None) for ex in chunk]
        r = engine.generate(prompts, k, params, gen)
        cols = {key: [ex.reward_columns().get(key) for ex in chunk for _ in range(k)]
                for key in chunk[0].reward_columns()}
        scores = grader(r.prompts, r.completions, **cols)
        lengths += r.lengths.tolist()
        for j, ex in enumerate(chunk):
            s = [float(x or 0.0) for x in scores[j * k:(j + 1) * k]]
            per_q.append(sum(s) / k)
            samples.append({"id": ex.id, "question": ex.question, "answer": ex.answer,
                            "completions": r.completions[j * k:(j + 1) * k], "correct": s})
    n = len(per_q)
    acc = sum(per_q) / max(1, n)
    var = sum((x - acc) ** 2 for x in per_q) / max(1, n - 1)
    return {"acc": acc, "stderr": math.sqrt(var / max(1, n)), "n": n, "k": k,
            "mean_length": sum(lengths) / max(1, len(lengths)), "samples": samples}
