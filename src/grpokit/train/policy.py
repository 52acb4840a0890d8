"""What the loop trains and how it is held in memory: gradient checkpointing, LoRA adapters (PEFT).

    checkpointing   Hugging Face's per-layer activation checkpointing (``--gradient-checkpointing``):
                    activations of each decoder layer are recomputed in the backward pass instead of
                    kept, for about a third more compute. The gradient is the same.
    LoRA            ``--lora-rank r > 0``: the base weights are frozen and low-rank adapters
                    ``W + (alpha / r) * B A`` are trained (Hu et al. 2021, arXiv 2106.09685) through
                    PEFT. The reference model of a KL term is the same module with its adapters
                    disabled (no second copy); the rollout engine samples from the adapted module
                    itself. QLoRA (Dettmers et al. 2023, arXiv 2305.14314) adds a 4-bit NF4 base
                    (``--load-in-4bit``, bitsandbytes, CUDA only).

A LoRA checkpoint holds the adapters (``adapter_config.json`` + ``adapter_model.safetensors``,
PEFT's format, which ``transformers`` loads when ``peft`` is installed) and, with
``--lora-save-merged``, a full merged model in ``merged/``; ``grpokit eval`` loads either.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from grpokit import models

MERGED_DIR = "merged"


def enable_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant ``torch.utils.checkpoint``)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"{type(model).__name__} does not support gradient checkpointing in transformers: "
                         "drop --gradient-checkpointing")
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.grpokit_checkpointing = True


def is_checkpointing(model) -> bool:
    """True when ``model``'s forward under autograd recomputes its layers (and so drops a KV cache)."""
    return bool(getattr(model, "grpokit_checkpointing", False)) and model.training and torch.is_grad_enabled()


# --- LoRA ---

def _require_peft():
    try:
        import peft
    except ImportError:
        raise ValueError("--lora-rank needs the PyPI package 'peft': pip install 'grpokit[lora]' "
                         "(or pip install peft), or train without LoRA (--lora-rank 0)") from None
    return peft


def linear_module_names(model) -> list[str]:
    """The distinct last names of the model's ``nn.Linear`` modules (q_proj, ..., lm_head)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and name})


def target_modules(spec: str, model) -> str | list[str]:
    """``--lora-target-modules`` -> PEFT's ``target_modules``: 'all-linear' or names that exist in ``model``."""
    spec = spec.strip()
    if spec == "all-linear":
        return spec
    names = [s.strip() for s in spec.split(",") if s.strip()]
    have = linear_module_names(model)
    missing = [n for n in names if n not in have]
    if not names or missing:
        raise ValueError(f"lora_target_modules {spec!r}: {type(model).__name__} has no linear module named "
                         f"{', '.join(missing) or '(none given)'}; its linear modules are {', '.join(have) or 'none'} "
                         f"(or use 'all-linear')")
    return names


def add_adapters(model, *, rank: int, alpha: float, dropout: float, targets: str):
    """Freeze ``model`` and wrap it in a PEFT ``PeftModel`` with fresh LoRA adapters (B = 0: the
    wrapped model computes exactly what ``model`` did)."""
    peft = _require_peft()
    compute = getattr(model, "grpokit_compute_dtype", None)
    cfg = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules(targets, model),
                          task_type="CAUSAL_LM", bias="none")
    wrapped = peft.get_peft_model(model, cfg)
    if compute is not None:
        wrapped.base_model.model.grpokit_compute_dtype = compute
    return wrapped


def load_adapters(model, folder: Path, *, trainable: bool):
    """``model`` (the base) with the adapters saved in ``folder``."""
    peft = _require_peft()
    compute = getattr(model, "grpokit_compute_dtype", None)
    wrapped = peft.PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    if compute is not None:
        wrapped.base_model.model.grpokit_compute_dtype = compute
    return wrapped


def is_lora(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def engine_module(model):
    """The module a rollout engine samples from: for LoRA the adapted base model (adapters live in
    its layers, so no copy and no merge), else ``model`` itself."""
    return model.get_base_model() if is_lora(model) else model


class AdaptersOff(torch.nn.Module):
    """The frozen reference of a LoRA policy: the same module with its adapters disabled, no copy.

    Calls go to the base model inside ``disable_adapter()``; attributes (``config``, ...) and
    ``forward``'s signature are the base model's.
    """

    def __init__(self, peft_model):
        super().__init__()
        base = peft_model.get_base_model()
        object.__setattr__(self, "_base", base)  # not a submodule: its parameters stay the policy's

        @functools.wraps(base.forward)
        def forward(*args, **kwargs):
            with peft_model.disable_adapter():
                return base(*args, **kwargs)

        object.__setattr__(self, "forward", forward)

    def parameters(self, recurse: bool = True):
        return self._base.parameters(recurse)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._base, name)

    def train(self, mode: bool = True):  # the policy's train/eval mode is the policy's to set
        return self

    def requires_grad_(self, requires_grad: bool = True):
        return self


def save_merged(model, tokenizer, folder: Path) -> None:
    """A full Hugging Face model folder of the adapted weights (``W + (alpha / r) B A``) at ``folder``."""
    import copy

    merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def quantization(load_in_4bit: bool, device: torch.device):
    """The ``from_pretrained`` quantization config of QLoRA's 4-bit NF4 base, or None."""
    if not load_in_4bit:
        return None
    if device.type != "cuda":
        raise ValueError(f"--load-in-4bit (QLoRA) needs a CUDA GPU (bitsandbytes' 4-bit kernels); this run is on "
                         f"{device.type}. Train LoRA on a full-precision base instead: drop --load-in-4bit")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError("--load-in-4bit needs the PyPI package 'bitsandbytes': pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_policy(cfg, resume_from: Path | None):
    """``(model, tokenizer)`` to train: the checkpoint ``resume_from`` or ``cfg.model``, with LoRA
    adapters (new, or the checkpoint's) when ``cfg.lora_rank > 0``, checkpointing when asked."""
    if cfg.lora_rank:
        quant = quantization(cfg.load_in_4bit, models.pick_device(cfg.device))
        model, tok = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype, train=True, quantization_config=quant)
        if quant is not None:
            _require_peft().prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        if resume_from is not None:
            model = load_adapters(model, resume_from, trainable=True)
        else:
            model = add_adapters(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                 targets=cfg.lora_target_modules)
    else:
        model, tok = models.load(str(resume_from) if resume_from else cfg.model, device=cfg.device, dtype=cfg.dtype,
                                 train=True)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    return model, tok


def reference(model, cfg):
    """The frozen reference of a KL term: the LoRA policy with adapters off, else a copy of the starting model."""
    import copy

    if is_lora(model):
        return AdaptersOff(model)
    return copy.deepcopy(model).eval().requires_grad_(False)


def trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
