"""Configuration as data: one frozen dataclass, loadable from YAML, overridable with ``--key value``.

Every field has a docstring (the string right below it), which ``grpokit train --help`` prints,
so ``--help`` is the documentation. The resolved config is saved as ``config.yaml`` in the run.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TrainConfig:
    # --- what to train ---
    model: str = "smollm2-135m"
    """Model: 'smollm2-135m' (embedded, offline), a local Hugging Face model folder, or a hub id (online)."""
    task: str = "add2"
    """Task name (see `grpokit tasks`) or a .jsonl/.parquet file of {question, answer} rows."""
    task_options: dict = field(default_factory=dict)
    """Options passed to the task (e.g. {train_size: 4000, heldout_size: 200})."""
    template: str = "chat"
    """Prompt template: 'chat' (the tokenizer's chat template), 'r1_zero', 'plain', 'qa', or a string with {prompt}."""
    system_prompt: str = ""
    """System message for the chat template ('' = the template's own default)."""
    rewards: dict = field(default_factory=dict)
    """Reward functions, name -> weight; names are built-ins or 'module:function'. Empty = the task's default."""
    # --- GRPO ---
    steps: int = 60
    """Optimizer steps (each samples a fresh batch of prompts)."""
    prompts_per_step: int = 8
    """B: prompts per step."""
    group_size: int = 8
    """G: completions sampled per prompt; their mean reward is the baseline."""
    max_new_tokens: int = 64
    """Completion length cap in tokens; longer completions are truncated."""
    temperature: float = 1.0
    """Sampling temperature (training log-probs use the same temperature)."""
    top_p: float = 1.0
    """Nucleus sampling mass for training rollouts."""
    adv_scale: str = "group"
    """Advantage scaling: 'group' (divide by group std, GRPO), 'batch', 'none' (Dr. GRPO)."""
    adv_eps: float = 1e-4
    """Epsilon added to the std in the advantage."""
    eps_low: float = 0.2
    """Lower clip range of the ratio: 1 - eps_low."""
    eps_high: float = 0.2
    """Upper clip range of the ratio: 1 + eps_high (DAPO's clip-higher uses 0.28)."""
    beta: float = 0.0
    """KL coefficient (k3 estimator in the loss); > 0 loads a frozen reference model."""
    ref_reset_every: int = 0
    """Reset the reference model to the policy every K steps (0 = never)."""
    aggregation: str = "seq-mean-token-mean"
    """Loss aggregation: 'seq-mean-token-mean' (GRPO paper), 'token-mean' (DAPO), 'constant' (Dr. GRPO)."""
    mu: int = 1
    """Policy updates per batch of rollouts (mu > 1 stores old log-probs and makes clipping bind)."""
    # --- optimizer ---
    lr: float = 1e-5
    """AdamW learning rate (peak)."""
    lr_schedule: str = "constant"
    """After warmup: 'constant', 'linear' (decay to 0) or 'cosine'."""
    warmup_steps: int = 0
    """Linear warmup steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple = (0.9, 0.99)
    """AdamW betas."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0 = off)."""
    micro_batch_size: int = 16
    """Sequences per forward/backward pass; gradients accumulate over the step (result does not depend on it)."""
    # --- evaluation, logging, checkpoints ---
    eval_every: int = 0
    """Evaluate greedy accuracy on the held-out split every K steps (0 = only before and after)."""
    eval_size: int = 100
    """Held-out questions per evaluation (0 = no evaluation)."""
    eval_max_new_tokens: int = 0
    """Completion cap during evaluation (0 = same as max_new_tokens)."""
    eval_samples: int = 0
    """Sampled completions per held-out question at each evaluation, for pass@1 over k and cons@k (0 = greedy only, cheapest)."""
    eval_temperature: float = 0.6
    """Sampling temperature of the eval_samples (R1 evaluates at 0.6)."""
    eval_top_p: float = 0.95
    """Nucleus mass of the eval_samples (R1 evaluates at 0.95)."""
    save_every: int = 0
    """Save a checkpoint every K steps (0 = only at the end and on Ctrl-C)."""
    out: str = ""
    """Run folder ('' = runs/<task>-<date>-<time>)."""
    resume: bool = False
    """Continue the run in `out` from its latest checkpoint."""
    stop_after: int = 0
    """Stop (with a checkpoint) after this step, as if interrupted (0 = off; for tests and scheduling)."""
    seed: int = 0
    """Seed for data order, sampling and initialisation."""
    device: str = "auto"
    """'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """'auto' (bf16 where the hardware multiplies it natively, else fp32), 'fp32', 'bf16'."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    progress: bool = True
    """Show a progress bar."""


def field_docs(cls=TrainConfig) -> dict[str, str]:
    """Field name -> the docstring written under it."""
    src = inspect.getsource(cls)
    tree = ast.parse(src)
    docs, last = {}, None
    for node in tree.body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            last = node.target.id
        elif isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) and last:
            docs[last] = str(node.value.value)
            last = None
    return docs


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Turn a YAML/CLI value into the field's type, or raise a clear error."""
    origin = typing.get_origin(tp) or tp
    if isinstance(tp, str):
        origin = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict, "tuple": tuple}.get(tp, str)
    try:
        if origin is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return low in ("true", "1", "yes")
            return bool(value)
        if origin in (dict, tuple) and isinstance(value, str):
            value = yaml.safe_load(value)
        if origin is tuple:
            return tuple(value)
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if origin is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return origin(value)
    except (ValueError, TypeError):
        raise ValueError(f"config {name!r}: cannot use {value!r} (expected {getattr(origin, '__name__', origin)})") from None


def make(cls=TrainConfig, yaml_path: str | None = None, overrides: dict[str, Any] | None = None, base: dict | None = None):
    """Defaults <- ``base`` <- YAML file <- overrides; unknown keys are an error that lists the known ones."""
    values: dict[str, Any] = dict(base or {})
    if yaml_path:
        p = Path(yaml_path)
        if not p.exists():
            raise FileNotFoundError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{p}: a config file must be a mapping of key: value")
        values.update(loaded)
    values.update(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(fields)}")
    return cls(**{k: _coerce(k, fields[k].type, v) for k, v in values.items()})


def to_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
