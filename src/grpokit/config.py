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
class ComputeOptions:
    """Where and how a command computes: the fields every command's config shares."""

    device: str = "auto"
    """'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """'auto' (bf16 where the hardware multiplies it natively, else fp32), 'fp32', 'bf16'; training keeps fp32 weights and computes in this dtype."""
    threads: int = 0
    """CPU threads for torch (0 = automatic: one per available core; train and sft use 1 for models under 20M parameters)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass(frozen=True)
class TrainConfig(ComputeOptions):
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
    # --- algorithm: `algo` names a preset; naming it fills the fields below that you do not set ---
    algo: str = "grpo"
    """Algorithm preset: grpo, r1_zero, dr_grpo, dapo, rloo, reinforce_pp, reinforce_pp_baseline, gspo,
    ppo (critic on); see docs/algorithms.md. Named here or in YAML, it sets the preset's values (beta, clip,
    aggregation, ...) for every field you leave unset (preset < YAML < --key). Left unnamed: GRPO with the
    defaults below (beta 0)."""
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
    advantage: str = ""
    """Advantage estimator: '' (the preset's), grpo (group std), dr_grpo (no std), rloo, reinforce_pp, reinforce_pp_baseline."""
    adv_eps: float = 1e-4
    """Epsilon added to the std in the advantage."""
    eps_low: float = 0.2
    """Lower clip range of the ratio: 1 - eps_low."""
    eps_high: float = 0.2
    """Upper clip range of the ratio: 1 + eps_high (DAPO's clip-higher uses 0.28)."""
    beta: float = 0.0
    """KL coefficient (in the loss or the reward, as the preset places it); > 0 loads a frozen reference model."""
    ref_reset_every: int = 0
    """Reset the reference model to the policy every K steps (0 = never)."""
    aggregation: str = "seq-mean-token-mean"
    """Loss aggregation: 'seq-mean-token-mean' (GRPO paper), 'token-mean' (DAPO), 'constant' (Dr. GRPO)."""
    mu: int = 1
    """Policy updates (epochs) per batch of rollouts (mu > 1 stores old log-probs and makes clipping bind)."""
    mini_batches: int = 1
    """Optimizer steps per epoch: the N sequences are split into this many parts (at most N); > 1 makes later parts off-policy."""
    dynamic_sampling_max_rounds: int = 0
    """DAPO dynamic sampling: 0 = off; k >= 1 drops groups whose rewards are all equal and samples more
    prompts, at most k generation rounds per step, until B groups are kept."""
    overlong_filter: bool = False
    """DAPO: leave completions truncated at max_new_tokens out of the loss."""
    overlong_cache_frac: float = 0.0
    """DAPO soft overlong penalty: the last fraction of max_new_tokens where the reward falls linearly to -1 (0 = off; DAPO 0.2)."""
    # --- critic (PPO: --algo ppo) ---
    critic_lr: float = 1e-5
    """Value model learning rate (constant; TinyZero and verl use 1e-5)."""
    critic_trunk: str = "separate"
    """'separate' (a copy of the policy's trunk, the PPO baseline) or 'shared' (a scalar head on the policy's own trunk)."""
    gamma: float = 1.0
    """GAE discount."""
    lam: float = 0.95
    """GAE lambda."""
    value_clip: float = 0.5
    """Clip range of the value loss around the sampling-time values (0 = unclipped)."""
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
    """Sequences per forward/backward pass, in whole groups (at least one); gradients accumulate over the step, so the result does not depend on it."""
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
    """Continue the run in `out` from its latest checkpoint (the config must be the run's, see override)."""
    override: str = ""
    """With resume: comma-separated config keys allowed to differ from the run's (e.g. 'steps,lr'); recorded in config_history.jsonl."""
    stop_after: int = 0
    """Stop (with a checkpoint) after this step, as if interrupted (0 = off; for tests and scheduling)."""
    max_skipped_steps: int = 3
    """Stop the run (status failed) after this many optimizer steps in a row skipped for a non-finite loss or gradient norm."""
    seed: int = 0
    """Seed for data order, sampling and initialisation."""
    deterministic: bool = False
    """Bit-identical re-runs and resumes: one CPU thread, deterministic CUDA kernels (slower); see docs/reproducibility.md."""


def field_docs(cls=TrainConfig) -> dict[str, str]:
    """Field name -> the docstring written under it (base classes' fields included)."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        last = None
        for node in ast.parse(inspect.getsource(klass)).body[0].body:
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
    """Defaults <- preset <- ``base`` <- YAML file <- overrides; unknown keys are an error that lists the known ones.

    The preset layer exists only when ``algo`` is given (in ``base``, YAML or overrides): then
    :func:`preset_values` fills every field it maps that was not given explicitly.
    """
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
    if cls is TrainConfig and "algo" in values:  # preset < base < YAML < overrides
        values = {**preset_values(str(values["algo"])), **values}
    return cls(**{k: _coerce(k, fields[k].type, v) for k, v in values.items()})


def to_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def preset_values(name: str) -> dict[str, Any]:
    """The :class:`TrainConfig` values that algorithm preset ``name`` sets, in config terms.

    Preset fields left ``None`` (the run's own lr, temperature, G, ...) are absent, so they keep
    the config's defaults.
    """
    from grpokit.algo import get_preset

    p = get_preset(name)
    values: dict[str, Any] = {
        "eps_low": p.eps_low, "eps_high": p.eps_high, "beta": p.beta, "aggregation": p.aggregation,
        "adv_eps": p.adv_eps, "ref_reset_every": p.ref_reset_every or 0, "gamma": p.gamma, "lam": p.lam,
        "value_clip": p.value_clip or 0.0, "dynamic_sampling_max_rounds": p.max_sampling_rounds if p.dynamic_sampling else 0,
        "overlong_filter": p.overlong_filter, "overlong_cache_frac": p.overlong_cache_frac or 0.0,
    }
    optional = {"temperature": p.temperature, "group_size": p.num_generations, "lr": p.lr,
                "mini_batches": p.mini_batches, "critic_lr": p.critic_lr}
    values.update({k: v for k, v in optional.items() if v is not None})
    return values


def algo_preset(cfg: TrainConfig):
    """The :class:`grpokit.algo.AlgoPreset` a run executes: ``cfg.algo``'s preset with the config's values.

    The function names (estimator, loss, KL estimator and placement, critic on/off) come from the
    preset; every constant comes from ``cfg``, which :func:`make` already filled from the preset
    where the user set nothing. Raises a clear ``ValueError`` for an unknown name or a bad value.
    """
    from grpokit.algo import get_preset

    if cfg.critic_trunk not in ("separate", "shared"):
        raise ValueError(f"critic_trunk must be 'separate' or 'shared', got {cfg.critic_trunk!r}")
    if cfg.mini_batches < 1 or cfg.mu < 1:
        raise ValueError(f"mu and mini_batches must be >= 1, got mu={cfg.mu}, mini_batches={cfg.mini_batches}")
    if cfg.dynamic_sampling_max_rounds < 0:
        raise ValueError(f"dynamic_sampling_max_rounds must be >= 0 (0 = off), got {cfg.dynamic_sampling_max_rounds}")
    p = get_preset(cfg.algo)
    return p.replace(
        advantage=cfg.advantage or p.advantage, eps_low=cfg.eps_low, eps_high=cfg.eps_high, beta=cfg.beta,
        aggregation=cfg.aggregation, adv_eps=cfg.adv_eps, ref_reset_every=cfg.ref_reset_every or None,
        temperature=cfg.temperature, num_generations=cfg.group_size, lr=cfg.lr, mini_batches=cfg.mini_batches,
        critic_lr=cfg.critic_lr, gamma=cfg.gamma, lam=cfg.lam, value_clip=cfg.value_clip or None,
        dynamic_sampling=cfg.dynamic_sampling_max_rounds > 0, max_sampling_rounds=max(1, cfg.dynamic_sampling_max_rounds),
        overlong_filter=cfg.overlong_filter, overlong_cache_frac=cfg.overlong_cache_frac or None,
    )
