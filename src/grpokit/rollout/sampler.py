"""``questions -> G completions each``: the rollout engine as a plain function, for tools.

Used by ``grpokit rewards check --model M``; renders each question with the chat template (or a
named template) exactly as training does.
"""

from __future__ import annotations

import torch

from grpokit.rollout.base import SamplingParams
from grpokit.rollout.hf import HFEngine
from grpokit.rollout.templates import render


def make_sampler(model_spec: str, g: int, *, template: str = "chat", system: str = "", temperature: float = 1.0,
                 max_new_tokens: int = 256, seed: int = 0, device: str = "auto"):
    from grpokit import models
    from grpokit.rewards.check import Sampled

    model, tok = models.load(model_spec, device=device)
    engine = HFEngine(model, tok)
    gen = torch.Generator().manual_seed(seed)
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)

    def sample(questions: list[str]) -> list[list[Sampled]]:
        prompts = [render(tok, q, template, system or None) for q in questions]
        r = engine.generate(prompts, g, params, gen)
        ids = r.token_ids()
        return [[Sampled(r.completions[i * g + j], ids[i * g + j], bool(r.truncated[i * g + j]), prompts[i])
                 for j in range(g)] for i in range(len(questions))]

    return sample
