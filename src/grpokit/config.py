"""Configuration as data: one frozen dataclass, loadable from YAML, overridable with ``--key value``.

Every field has a docstring (the string right below it), which ``grpokit train --help`` prints,
so ``--help`` is the documentation. The resolved config is saved as ``config.yaml`` in the run.

One source: an algorithm preset (``--algo``) is a named set of values of these same fields
(:mod:`grpokit.algo.presets`), laid over the defaults: defaults < preset < YAML < ``--key``. The
default run is the preset ``grpo_no_kl``. 0 is the one way to write "off" for a number.

Every value is checked when a config is built (:func:`check_values`): ranges for numbers, choices
for names, with a message that names the field, the allowed values and what the field means.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from grpokit.algo.algorithm import Algorithm
from grpokit.algo.correction import CORRECTIONS
from grpokit.algo.presets import DEFAULT_PRESET, get_preset
from grpokit.models import DTYPES
from grpokit.rollout.templates import TEMPLATES


@dataclass(frozen=True)
class ComputeOptions:
    """Where and how a command computes: the fields every command's config shares."""

    BLOCK: ClassVar[str] = "compute: where and how"
    """The title of these fields' group in ``--help``."""

    device: str = "auto"
    """'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """'auto' (bf16 where the hardware multiplies it natively, else fp32), 'fp32', 'bf16'; training keeps fp32 weights and computes in this dtype."""
    threads: int = 0
    """CPU threads for torch (0 = automatic: one per available core; train and sft use 1 for models under 20M parameters)."""
    progress: bool = True
    """Show a progress bar."""

    RULES: ClassVar[dict[str, str]] = {}
    """Per-class exceptions to :data:`RANGES` (e.g. training's temperature must be > 0)."""

    def __post_init__(self) -> None:
        check_values(self)


@dataclass(frozen=True)
class OptimizerOptions:
    """The optimizer every trainer shares (AdamW, a warmup + decay schedule, gradient clipping); a
    trainer's config may give other defaults (SFT: 2e-5, cosine, betas 0.9/0.95)."""

    BLOCK: ClassVar[str] = "optimizer"

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


@dataclass(frozen=True)
class RunOptions:
    """A training run in its folder, the same for GRPO and SFT: checkpoints, resume, seed, stops.
    Resuming: :func:`make` (the saved config is the base) and :mod:`grpokit.train.session`."""

    BLOCK: ClassVar[str] = "run folder: checkpoints, resume, seed"

    save_every: int = 0
    """Save a checkpoint every K steps (0 = only at the end and on Ctrl-C)."""
    out: str = ""
    """Run folder ('' = runs/<task>-<date>-<time>, for sft runs/sft-<date>-<time>)."""
    resume: bool = False
    """Continue the run in `out` from its latest checkpoint, its saved config.yaml as the config (keys given with it must keep their values, see override)."""
    override: str = ""
    """With resume: comma-separated config keys allowed to differ from the run's (e.g. 'steps,lr'); recorded in config_history.jsonl."""
    stop_after: int = 0
    """Stop (with a checkpoint) after this step, as if interrupted (0 = off; for tests and scheduling)."""
    max_skipped_steps: int = 3
    """Stop the run (status failed) after this many optimizer steps in a row skipped for a non-finite loss or gradient norm."""
    seed: int = 0
    """Seed for data order, and for sampling and initialisation where the trainer has them."""
    deterministic: bool = False
    """Bit-identical re-runs and resumes: one CPU thread, deterministic CUDA kernels (slower); see docs/reproducibility.md."""

    FIXED_ON_RESUME: ClassVar[dict[str, str]] = {}
    """Keys a resumed run cannot change, even with ``--override``, and why (each trainer's config lists its own)."""


@dataclass(frozen=True)
class TrainConfig(RunOptions, OptimizerOptions, ComputeOptions):
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
    reward_timeout: float = 300.0
    """Seconds one call of a reward function may take; past it the call is stopped and its completions score None, logged (0 = no limit)."""
    # --- algorithm: `algo` names a preset, which sets the fields below that you do not set ---
    algo: str = DEFAULT_PRESET
    """Algorithm preset: grpo_no_kl (the default: GRPO with beta 0), grpo (DeepSeekMath, beta 0.04), r1_zero,
    dr_grpo, dapo, rloo, reinforce_pp, reinforce_pp_baseline, gspo, ppo (critic on); see docs/algorithms.md.
    It sets the preset's values (beta, clip, aggregation, ...) for every field you leave unset
    (defaults < preset < YAML < --key)."""
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
    advantage: str = "grpo"
    """Advantage estimator: grpo (group std), dr_grpo (no std), rloo, reinforce_pp, reinforce_pp_baseline; gae with use_critic."""
    policy_loss: str = "token_clip"
    """Policy loss: 'token_clip' (PPO's clipped surrogate per token) or 'gspo' (one clipped ratio per sequence)."""
    adv_eps: float = 1e-4
    """Epsilon added to the std in the advantage."""
    eps_low: float = 0.2
    """Lower clip range of the ratio: 1 - eps_low."""
    eps_high: float = 0.2
    """Upper clip range of the ratio: 1 + eps_high (DAPO's clip-higher uses 0.28)."""
    beta: float = 0.0
    """KL coefficient (where kl_placement puts it); > 0 loads a frozen reference model."""
    kl_estimator: str = "k3"
    """Per-token KL estimator: k1 (log-ratio), k2 (half its square) or k3 (Schulman's unbiased, GRPO's)."""
    kl_placement: str = "loss"
    """'loss' (beta * KL added to the per-token loss, GRPO) or 'reward' (subtracted from the reward, RLOO, PPO)."""
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
    # --- rollout engine and the sampler/learner mismatch (docs/algorithms.md) ---
    engine: str = "auto"
    """Rollout engine: 'hf' (the policy samples itself), 'vllm' (vLLM in this process, weights synced in place
    before every rollout; install: see README), 'auto' (vllm on CUDA when it is installed, else hf)."""
    correction: str = "auto"
    """Sampler/learner mismatch correction: 'none', 'tis' (token truncated IS), 'mis' (token masked IS), 'seq_tis',
    'seq_mis', 'geo_mis'; 'auto' = tis with the vllm engine, none with hf (whose sampler is the learner itself)."""
    correction_cap: float = 2.0
    """C of the correction: TIS weights are min(ratio, C); MIS keeps ratios within [1/C, C]."""
    vllm_gpu_memory_utilization: float = 0.3
    """Share of the GPU vLLM may take for its weights and KV cache (CUDA with --engine vllm)."""
    # --- critic (PPO: --algo ppo) ---
    use_critic: bool = False
    """PPO's value model: advantages from GAE over its per-token values (needs advantage gae)."""
    whiten_advantages: bool = False
    """Normalise the GAE advantages over all completion tokens of the batch (critic only)."""
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
    # --- the optimizer's micro-batches (lr, schedule, AdamW, clipping: OptimizerOptions) ---
    micro_batch_size: int = 16
    """Sequences per forward/backward pass, in whole groups (at least one); gradients accumulate over the step, so the result does not depend on it."""
    # --- memory: sharding over processes (FSDP2), activation checkpointing, LoRA / QLoRA (PEFT) ---
    sharding: str = "ddp"
    """With several processes (--nproc, torchrun): 'ddp' (every rank holds the whole model, gradients summed) or 'fsdp' (FSDP2 fully_shard: weights, gradients and AdamW state split over the ranks; ~1/N of the 16 bytes per parameter). Ignored by one process; checkpoints are the same either way."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them: less memory, ~1/3 more compute, the same gradient."""
    lora_rank: int = 0
    """LoRA: train rank-r adapters on the frozen base instead of every weight (0 = off, full fine-tuning; needs peft)."""
    lora_alpha: float = 32.0
    """LoRA scale numerator: adapters add (lora_alpha / lora_rank) * B A to each target weight."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA adapters' input."""
    lora_target_modules: str = "all-linear"
    """Modules that get adapters: 'all-linear' (every linear layer but the head) or names, e.g. 'q_proj,v_proj'."""
    lora_save_merged: bool = False
    """LoRA: checkpoints also hold the merged full model in merged/ (the adapters are always saved)."""
    load_in_4bit: bool = False
    """QLoRA: a 4-bit NF4 base under the LoRA adapters (bitsandbytes, CUDA only; needs lora_rank > 0)."""
    # --- evaluation and logging (checkpoints, resume, seed: RunOptions) ---
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
    report_to: str = ""
    """Also send metrics.jsonl's records to these trackers: a comma-separated list of tensorboard, wandb, mlflow, trackio ('' or none = only the run folder). Local/offline by default; see docs/run-format.md."""

    RULES: ClassVar[dict[str, str]] = {"temperature": "> 0"}
    FIXED_ON_RESUME: ClassVar[dict[str, str]] = {
        "model": "the checkpoint holds this model's weights, and the reference model is this model",
        "task": "the saved data position counts rows of this task's training split",
        "task_options": "the saved data position counts rows of the training split these options built",
        "seed": "the data order and the sampler were seeded with it",
        "group_size": "every step so far compared G completions of a prompt, and the sampler's state follows G",
        "algo": "the preset's values were laid under the run's config when it started",
        "use_critic": "the checkpoint holds (or lacks) the value model and its optimizer",
        "critic_trunk": "the checkpoint holds the value model in this form",
        "lora_rank": "the checkpoint holds LoRA adapters of this rank (or full weights)",
        "lora_alpha": "the adapters were trained at this scale",
        "lora_target_modules": "the checkpoint holds adapters on these modules",
        "load_in_4bit": "the adapters were trained on this base",
    }
    """Keys a resumed run cannot change, even with ``--override``, and why (see :func:`make`)."""

    def __post_init__(self) -> None:
        check_values(self)
        algorithm = algo_preset(self)  # the function names and their combination
        if self.sharding == "fsdp" and self.lora_rank:
            raise ValueError("--sharding fsdp with LoRA is not supported yet (the adapters are a few percent of the "
                             "weights; the frozen base is what FSDP would split): use --sharding ddp with --lora-rank")
        if self.load_in_4bit and not self.lora_rank:
            raise ValueError("load_in_4bit trains nothing on its own (a 4-bit base cannot be fine-tuned): add "
                             "--lora-rank 16 (QLoRA), or drop --load-in-4bit")
        if self.lora_rank and algorithm.use_critic:
            raise ValueError("LoRA with a critic (--algo ppo / use_critic) is not supported: the critic copies the "
                             "policy's trunk. Use --lora-rank 0 for PPO, or a critic-free preset with LoRA")
        if self.lora_rank and self.ref_reset_every:
            raise ValueError("ref_reset_every with LoRA is not supported: the reference is the base with the adapters "
                             "off, which cannot move to the policy. Use --ref-reset-every 0, or --lora-rank 0")
        if self.group_size == 1 and not algorithm.use_critic and self.advantage in GROUP_BASELINES:
            raise ValueError(f"group_size = 1 gives every completion advantage 0 with advantage {self.advantage!r} "
                             f"(the baseline is its own group): use group_size >= 2, or an estimator without a "
                             f"group baseline (reinforce_pp, or --algo ppo)")


def field_blocks(cls) -> list[tuple[type, list[dataclasses.Field]]]:
    """The fields of ``cls`` by the class that declares them: its own first, then each shared block
    (:class:`RunOptions`, :class:`OptimizerOptions`, :class:`ComputeOptions`, ...) in base order.
    A field a class redeclares (SFT's own ``lr`` default) stays in its block. The order of ``--help``
    and of ``config.yaml``: what a run trains comes before how it runs."""
    bases = [k for k in cls.__mro__[1:] if dataclasses.is_dataclass(k)]
    blocks: dict[type, list[dataclasses.Field]] = {k: [] for k in [cls, *bases]}
    for f in dataclasses.fields(cls):
        blocks[next((k for k in reversed(bases) if f.name in k.__dataclass_fields__), cls)].append(f)
    return [(k, fs) for k, fs in blocks.items() if fs]


def add_config_args(parser: argparse.ArgumentParser, cls=TrainConfig) -> None:
    """One ``--name`` (and ``--dashed-name``) option per field of ``cls``, its docstring as the help,
    in one group per block (:func:`field_blocks`)."""
    docs = field_docs(cls)
    for klass, fields in field_blocks(cls):
        title = "config" if klass is cls else getattr(klass, "BLOCK", klass.__name__)
        group = parser.add_argument_group(f"{title} (each also settable in the YAML file)")
        for f in fields:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
            group.add_argument(*flags, dest=f.name, default=None, metavar=type(default).__name__.upper(),
                               help=f"{docs.get(f.name, '')} (default: {default!r})")


def overrides_from(args: argparse.Namespace, cls=TrainConfig) -> dict:
    """The fields of ``cls`` given on the command line (those :func:`add_config_args` left at None are absent)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


@functools.lru_cache(maxsize=None)
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


GROUP_BASELINES = ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline")
"""Advantage estimators whose baseline is the prompt's own group: with G = 1 every advantage is 0."""

RANGES: dict[str, str] = {
    # every config: where to compute
    "threads": ">= 0",
    # generation
    "steps": ">= 1", "prompts_per_step": ">= 1", "group_size": ">= 1", "max_new_tokens": ">= 1",
    "temperature": ">= 0", "top_p": "(0, 1]",
    # algorithm
    "adv_eps": ">= 0", "eps_low": ">= 0", "eps_high": ">= 0", "beta": ">= 0", "ref_reset_every": ">= 0",
    "mu": ">= 1", "mini_batches": ">= 1", "dynamic_sampling_max_rounds": ">= 0", "overlong_cache_frac": "[0, 1]",
    "critic_lr": "> 0", "gamma": "[0, 1]", "lam": "[0, 1]", "value_clip": ">= 0",
    # rollout engine and mismatch correction
    "correction_cap": "> 1", "vllm_gpu_memory_utilization": "(0, 1]",
    # optimizer
    "lr": "> 0", "warmup_steps": ">= 0",
    "lora_rank": ">= 0", "lora_alpha": "> 0", "lora_dropout": "[0, 1)", "weight_decay": ">= 0", "max_grad_norm": ">= 0", "micro_batch_size": ">= 1",
    # evaluation, logging, checkpoints
    "eval_every": ">= 0", "eval_size": ">= 0", "eval_max_new_tokens": ">= 0", "eval_samples": ">= 0",
    "eval_temperature": ">= 0", "eval_top_p": "(0, 1]", "save_every": ">= 0", "stop_after": ">= 0", "seed": "any",
    "max_skipped_steps": ">= 1",
    # rewards
    "reward_timeout": ">= 0",
    # SFT
    "epochs": ">= 1", "max_steps": ">= 0", "batch_size": ">= 1", "max_length": ">= 1", "bucket_window": ">= 1",
    # evaluation and rejection sampling
    "n": ">= 0", "k": ">= 1", "prompts_per_batch": ">= 1", "n_prompts": ">= 0", "n_shots": ">= 0",
    "min_reward": "any", "min_tokens": ">= 0", "max_tokens": ">= 0", "max_repetition": "[0, 1]",
    "min_language_share": "[0, 1]", "max_per_prompt": ">= 0", "target_size": ">= 0",
}
"""Allowed range of every number in every config, by field name; a class narrows one with ``RULES``.
0 means "off" or "all" where a field's docstring says so; temperature 0 is greedy (not for training)."""

HINTS = {
    "temperature": "temperature 0 (greedy) is for evaluation only: training needs G different completions",
    "group_size": "GRPO's baseline is the mean of G >= 2 completions of the same prompt",
    "steps": "a run of 0 steps learns nothing",
    "max_new_tokens": "a completion needs at least one token",
}
"""What a rejected value would have done, added to the message."""

CHOICES: dict[str, tuple[str, ...]] = {
    "dtype": DTYPES,
    "critic_trunk": ("separate", "shared"),
    "lr_schedule": ("constant", "linear", "cosine"),
    "split": ("train", "heldout"),
    "engine": ("auto", "hf", "vllm"),
    "correction": ("auto", "none", *CORRECTIONS),
    "sharding": ("ddp", "fsdp"),
}
"""Allowed values of every named choice that is not a registry name."""

REGISTRY_NAMES = ("algo", "advantage", "policy_loss", "kl_estimator", "kl_placement", "aggregation")
"""Names looked up in a registry (presets, estimators, losses), checked by :func:`get_preset` and
:class:`grpokit.algo.Algorithm`, so a newly registered one is accepted."""

FREE_TEXT = ("model", "task", "system_prompt", "out", "data", "prompt_key", "response_key", "correctness",
             "verifier", "few_shot", "script", "report_to", "override", "lora_target_modules")
"""String fields checked where they are used (a model or task name, a path, a reward spec)."""

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _either(options) -> str:
    quoted = [repr(o) for o in options]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _in_range(value: float, rule: str) -> bool:
    if rule == "any":
        return True
    if rule.startswith((">", "<")):
        op, bound = rule.split()
        bound = float(bound)
        return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[op]
    lo, hi = (float(x) for x in rule[1:-1].split(","))
    return (lo <= value if rule[0] == "[" else lo < value) and (value <= hi if rule[-1] == "]" else value < hi)


def check_values(cfg) -> None:
    """Raise a ``ValueError`` naming the first field of ``cfg`` whose value is out of range or not a choice.

    The message gives the field, the value, what is allowed and the field's own docstring.
    """
    rules = {**RANGES, **type(cfg).RULES}
    for f in dataclasses.fields(cfg):
        name, value = f.name, getattr(cfg, f.name)

        def bad(allowed: str) -> ValueError:
            doc = field_docs(type(cfg)).get(name, "").split("\n")[0]
            hint = f"; {HINTS[name]}" if name in HINTS else ""
            return ValueError(f"{name} must be {allowed}, got {value!r}{hint} ({name}: {doc})")

        kind = _kind(f.type)
        if kind is bool:
            if not isinstance(value, bool):
                raise bad("true or false")
        elif kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise bad(f"a{'n integer' if kind is int else ' number'}")
            if not math.isfinite(value):
                raise bad("a finite number")
            rule = rules.get(name)
            if rule is None:
                raise TypeError(f"{type(cfg).__name__}.{name} has no entry in grpokit.config.RANGES")
            if not _in_range(value, rule):
                raise bad(rule if rule[0] in "<>" else f"in {rule}")
        elif kind is str:
            if not isinstance(value, str):
                raise bad("a string")
            if name == "device":
                if not _DEVICE.fullmatch(value):
                    raise bad("'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
            elif name == "template":
                if value not in TEMPLATES and "{prompt}" not in value:
                    raise bad(f"{_either(TEMPLATES)} or a string containing {{prompt}}")
            elif name in CHOICES:
                if value not in CHOICES[name]:
                    raise bad(_either(CHOICES[name]))
            elif name == "algo":
                get_preset(value)
            elif name not in FREE_TEXT + REGISTRY_NAMES:
                raise TypeError(f"{type(cfg).__name__}.{name} is in neither grpokit.config.CHOICES nor FREE_TEXT")
        elif kind is dict and not isinstance(value, dict):
            raise bad("a mapping, e.g. {key: value}")
    if "adam_betas" in {f.name for f in dataclasses.fields(cfg)}:
        betas = cfg.adam_betas
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), e.g. [0.9, 0.99], got {list(betas)!r}")
    if "rewards" in {f.name for f in dataclasses.fields(cfg)}:
        for spec, weight in cfg.rewards.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise ValueError(f"rewards: the weight of {spec!r} is {weight!r}; use a finite number, "
                                 f"e.g. {{{spec}: 1.0}}")


def _kind(tp: Any) -> Any:
    if isinstance(tp, str):
        return {"int": int, "float": float, "str": str, "bool": bool, "dict": dict, "tuple": tuple}.get(tp, object)
    return typing.get_origin(tp) or tp


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Turn a YAML/CLI value into the field's type, or raise a clear error."""
    origin = _kind(tp)
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
    except (ValueError, TypeError, yaml.YAMLError):
        raise ValueError(f"config {name!r}: cannot use {value!r} (expected {getattr(origin, '__name__', origin)})") from None


def read_yaml(path: str | Path) -> dict:
    """A YAML file of ``key: value``; a broken file is a ``ValueError`` naming ``file:line``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file {p} does not exist")
    if p.is_dir():
        raise ValueError(f"config file {p} is a directory: pass a YAML file, e.g. configs/quickstart.yaml")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{p}:{line}: not UTF-8 text (byte {raw[e.start]:#04x}); save the file as UTF-8") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{where}: not valid YAML ({what}); fix that line (a config is lines of key: value)") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{p}: a config file must be a mapping of key: value")
    return loaded


RUN_INVOCATION = ("out", "resume", "override", "stop_after")
"""Keys of one invocation of a run, not of the run: a resumed run does not take them from its config.yaml."""


def resumed_config(cls, given: dict[str, Any]) -> dict[str, Any]:
    """The saved ``config.yaml`` of the run that ``given`` resumes (``resume`` true, ``out`` a run
    folder), without :data:`RUN_INVOCATION` keys and keys ``cls`` no longer has; ``{}`` otherwise.

    Only for the configs of run folders (:class:`RunOptions`): ``grpokit train --out RUN
    --resume true`` continues RUN as it was configured, whatever the defaults are.
    """
    if not issubclass(cls, RunOptions) or not given.get("out"):
        return {}
    if not _coerce("resume", bool, given.get("resume", False)):
        return {}
    saved = Path(given["out"]) / "config.yaml"
    if not saved.is_file():
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in read_yaml(saved).items() if k in names and k not in RUN_INVOCATION}


def make(cls=TrainConfig, yaml_path: str | None = None, overrides: dict[str, Any] | None = None, base: dict | None = None):
    """Defaults <- preset <- ``base`` <- the resumed run's config.yaml <- YAML file <- overrides;
    unknown keys are an error that lists the known ones.

    With ``resume`` true and ``out`` a run folder, that run's saved config is the base
    (:func:`resumed_config`), so a resume needs no config beyond ``--out``; what the YAML file and
    overrides change is then checked against the run's (``override``, ``FIXED_ON_RESUME``) when
    the run opens (:func:`grpokit.train.session.check_config`).
    For :class:`TrainConfig` the preset is the one ``algo`` names (in ``base``, YAML or
    overrides), else :data:`DEFAULT_PRESET`: it fills every field it sets that was not given.
    """
    given: dict[str, Any] = read_yaml(yaml_path) if yaml_path else {}
    given.update(overrides or {})
    values: dict[str, Any] = {**(base or {}), **resumed_config(cls, given), **given}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(fields)}")
    if cls is TrainConfig:
        if values.get("advantage") == "":  # config.yaml files of earlier versions: '' meant "the preset's"
            del values["advantage"]
        values = {**get_preset(str(values.get("algo", DEFAULT_PRESET))).values, **values}
    return cls(**{k: _coerce(k, fields[k].type, v) for k, v in values.items()})


def to_dict(cfg) -> dict:
    """The config as plain data (what config.yaml holds), in :func:`field_blocks` order."""
    d = dataclasses.asdict(cfg)
    return {f.name: list(d[f.name]) if isinstance(d[f.name], tuple) else d[f.name]
            for _, fields in field_blocks(type(cfg)) for f in fields}


def algo_preset(cfg: TrainConfig) -> Algorithm:
    """The :class:`grpokit.algo.Algorithm` a run executes: the config's fields of the same names.

    :func:`make` already laid ``cfg.algo``'s preset under the user's values, so this is a plain
    copy (no renaming, no second set of defaults). Raises a clear ``ValueError`` for a bad combination.
    """
    names = [f.name for f in dataclasses.fields(Algorithm) if f.name != "name"]
    return Algorithm(name=cfg.algo, **{n: getattr(cfg, n) for n in names})
