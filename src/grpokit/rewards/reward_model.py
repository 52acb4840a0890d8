"""Reward models as reward functions: a local Hugging Face sequence classifier scores completions.

DeepSeek-R1 (Guo et al. 2025, §2.3.4 "Reinforcement Learning for all Scenarios") trains its final
stage with rule rewards on reasoning prompts and reward models on general prompts: for
*helpfulness* the reward model sees only the final summary, for *harmlessness* the whole response
(reasoning and summary). ``target`` picks which part is scored:

- ``answer``: the inside of the last ``<answer>...</answer>``; else the text after the last
  ``</think>``; else the whole completion (a reply without reasoning tags is all answer);
- ``response``: the whole completion.

Configured as a reward spec (``name(key=value, ...)``)::

    reward_model(path='models/rm', target='answer', batch_size=16, normalize='sigmoid')

The classifier reads ``prompt + scored text`` (``include_prompt=True``, the prompt as the policy
saw it) or the scored text alone, truncated from the left to ``max_length`` tokens so the end of
the response is always seen. It runs batched (texts sorted by length, so a batch pads little) on
``device`` (``auto`` = CUDA when present, the trainer's default too), under ``inference_mode``.
The raw score is the logit of output ``label``; ``normalize`` maps it (see :data:`NORMALIZERS`).

The model loads on the first call, not when the spec is built, and two specs with the same path,
device and dtype (helpfulness and harmlessness from one classifier) share one loaded copy.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable

import torch

from grpokit.rewards import register_factory
from grpokit.models import pick_device, pick_dtype

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _answer_part(text: str) -> str:
    tags = _ANSWER_RE.findall(text)
    if tags:
        return tags[-1].strip()
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    return text


TARGETS: dict[str, Callable[[str], str]] = {"answer": _answer_part, "response": lambda text: text}
"""What part of a completion the classifier scores (module docstring)."""


def _affine(raw: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    return (raw - shift) / scale


def _sigmoid(raw: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    return torch.sigmoid((raw - shift) / scale)


def _batch(raw: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    if raw.numel() < 2:
        return torch.zeros_like(raw)
    return (raw - raw.mean()) / (raw.std() + 1e-6)


NORMALIZERS: dict[str, Callable[[torch.Tensor, float, float], torch.Tensor]] = {
    "none": _affine,  # (r - shift) / scale; the defaults leave the logit as it is
    "sigmoid": _sigmoid,  # sigmoid((r - shift) / scale): a score in (0, 1), comparable with 0/1 rule rewards
    "batch": _batch,  # z-score over the call's completions (Bessel std); shift/scale are ignored
}
"""``normalize`` options: ``fn(raw [N], shift, scale) -> [N]``."""


@functools.lru_cache(maxsize=4)
def load_classifier(path: str, device: str = "auto", dtype: str = "auto"):
    """``(model, tokenizer)`` of a local sequence-classification model, eval mode, on ``device``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer


    dev = pick_device(device)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=pick_dtype(dtype, dev))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:  # the classifier finds each row's last token by its padding
        model.config.pad_token_id = tok.pad_token_id
    tok.padding_side, tok.truncation_side = "right", "left"
    return model.to(dev).eval().requires_grad_(False), tok


class RewardModel:
    """Raw classifier scores of texts, batched. ``scores(texts) -> [N]`` float32 on the CPU."""

    def __init__(self, path: str, batch_size: int = 16, max_length: int = 1024, label: int = 0,
                 device: str = "auto", dtype: str = "auto"):
        self.path, self.batch_size, self.max_length, self.label = path, batch_size, max_length, label
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def scores(self, texts: list[str]) -> torch.Tensor:
        if not self.path:
            raise ValueError("reward_model: no classifier path was given; pass path='FOLDER' (a local Hugging Face "
                             "sequence-classification model), e.g. the recipe variable reward_model=FOLDER")
        model, tok = load_classifier(self.path, self.device, self.dtype)
        if self.label >= model.config.num_labels:
            raise ValueError(f"reward_model: label={self.label} but {self.path} has {model.config.num_labels} outputs")
        device = next(model.parameters()).device
        lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])  # similar lengths share a batch
        out = torch.empty(len(texts), dtype=torch.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=self.max_length).to(device)
            logits = model(**enc).logits  # [b, num_labels]
            out[torch.tensor(idx)] = logits[:, self.label].float().cpu()
        return out


@register_factory("reward_model")
def reward_model(path: str = "", target: str = "response", batch_size: int = 16, normalize: str = "none",
                 shift: float = 0.0, scale: float = 1.0, label: int = 0, include_prompt: bool = True,
                 max_length: int = 1024, device: str = "auto", dtype: str = "auto"):
    """A reward function scoring completions with the classifier at ``path`` (module docstring).

    Args:
        path: local folder of a Hugging Face sequence-classification model.
        target: ``answer`` (helpfulness: the final summary) or ``response`` (harmlessness: all of it).
        batch_size: texts per classifier forward.
        normalize: ``none`` | ``sigmoid`` | ``batch`` (:data:`NORMALIZERS`), with ``shift``/``scale``.
        label: which output logit is the score (for classifiers with several outputs).
        include_prompt: prepend the policy's prompt to the scored text.
        max_length: token cap of the classifier input (left-truncated).
        device, dtype: where and in what precision the classifier runs.
    """
    if target not in TARGETS:
        raise ValueError(f"reward_model: target must be one of {sorted(TARGETS)}, got {target!r}")
    if normalize not in NORMALIZERS:
        raise ValueError(f"reward_model: normalize must be one of {sorted(NORMALIZERS)}, got {normalize!r}")
    if batch_size < 1 or max_length < 1:
        raise ValueError("reward_model: batch_size and max_length must be >= 1")
    if scale == 0:
        raise ValueError("reward_model: scale must not be 0")
    if path and not (Path(path) / "config.json").exists():
        raise ValueError(f"reward_model: {path!r} is not a local Hugging Face model folder (no config.json); "
                         "point path= at a folder holding a sequence-classification model")
    rm = RewardModel(path, batch_size, max_length, label, device, dtype)
    part, norm = TARGETS[target], NORMALIZERS[normalize]

    def score(prompts, completions, **_) -> list[float]:
        texts = [(p if include_prompt else "") + part(c) for p, c in zip(prompts, completions)]
        return norm(rm.scores(texts), shift, scale).tolist()

    score.__name__ = f"reward_model_{target}"
    return score
