"""The preset table: each algorithm of the family as a named set of config values (``--algo NAME``).

A preset is data: the :class:`grpokit.config.TrainConfig` values its paper prescribes, by field
name, with the paper and our deviations in its notes. ``grpokit.config.make`` lays them over the
config's defaults and under the YAML file and the command line (defaults < preset < YAML <
``--key``). Values a preset leaves out (lr, temperature, G, ...) keep the run's own setting, so
``--algo dapo`` on a tiny CPU model does not inherit a 32B model's learning rate; where a paper's
recipe depends on one of them (R1-Zero's G and lr; the mini-batches that make GSPO's and DAPO's
clip ranges bind) the preset sets it. The default run is the preset :data:`DEFAULT_PRESET`.

See ``docs/algorithms.md`` for the paper -> preset -> equation -> function -> test map; the
functions and constants a run executes are :class:`grpokit.algo.algorithm.Algorithm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from grpokit.algo.algorithm import Algorithm as AlgoPreset  # noqa: F401  train/update.py's annotation (old name)


@dataclass(frozen=True)
class Preset:
    """One algorithm's recipe: a name, its paper, its config values and notes."""

    name: str
    """Registry key, the value of ``--algo``."""
    paper: str
    """The paper the preset follows: authors, year, arXiv id, section or equation."""
    equations: str
    """The advantage and loss it computes, in one line (docs/algorithms.md has the full map)."""
    values: Mapping[str, Any]
    """``TrainConfig`` field -> value; fields not named keep the config's defaults."""
    notes: str = ""
    """The paper's hyperparameters and where this preset departs from them."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


PRESETS: dict[str, Preset] = {}
DEFAULT_PRESET = "grpo_no_kl"
"""The preset of a run that names none: TrainConfig's defaults."""


def register_preset(preset: Preset) -> Preset:
    """Add a preset to :data:`PRESETS` under ``preset.name``."""
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    """The preset registered under ``name``; a clear error lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(PRESETS)}") from None


register_preset(Preset(
    name="grpo_no_kl",
    paper="Shao et al. 2024, DeepSeekMath, arXiv 2402.03300 (GRPO: §4.1, eq. 3), without the KL term",
    equations=("A_i = (r_i - mean_g r) / (std_g r + eps); l = -min(rho A, clip(rho, 1-eps, 1+eps) A); "
               "seq-mean-token-mean; no KL"),
    values=dict(advantage="grpo", policy_loss="token_clip", eps_low=0.2, eps_high=0.2, beta=0.0,
                aggregation="seq-mean-token-mean", mini_batches=1),
    notes=(
        "The default run: GRPO's group-normalised advantage, per-token clipped surrogate and "
        "seq-mean-token-mean aggregation with beta = 0, so no reference model is loaded (half the "
        "memory and one forward pass less per step). DAPO, Dr. GRPO and GSPO drop the KL term too; "
        "the paper's beta 0.04 is --algo grpo. Everything else as the grpo preset."
    ),
))

register_preset(Preset(
    name="grpo",
    paper="Shao et al. 2024, DeepSeekMath, arXiv 2402.03300 (GRPO: §4.1, eq. 3)",
    equations=("A_i = (r_i - mean_g r) / (std_g r + eps); "
               "l = -min(rho A, clip(rho, 1-eps, 1+eps) A) + beta k3; seq-mean-token-mean"),
    values=dict(advantage="grpo", policy_loss="token_clip", eps_low=0.2, eps_high=0.2, beta=0.04,
                kl_estimator="k3", kl_placement="loss", aggregation="seq-mean-token-mean", mini_batches=1),
    notes=(
        "Paper (§4.2): lr 1e-6, beta 0.04, G = 64 outputs per question, max length 1024, batch 1024, "
        "one policy update per exploration stage (mu = 1). Outcome advantage (r - mean)/std, k3 KL in "
        "the loss, seq-mean-token-mean. Ours: clip eps 0.2 (PPO's and TRL's default; not quoted "
        "from the paper); sample std (Bessel) + 1e-4 as TRL; lr, G, length and batch are left to the run."
    ),
))

register_preset(Preset(
    name="r1_zero",
    paper="DeepSeek-AI 2025, DeepSeek-R1, arXiv 2501.12948 (revised version), §2.1",
    equations="as grpo; pi_ref <- pi every 400 steps",
    values=dict(advantage="grpo", policy_loss="token_clip", eps_low=10.0, eps_high=10.0, beta=0.001,
                kl_estimator="k3", kl_placement="loss", aggregation="seq-mean-token-mean", ref_reset_every=400,
                temperature=1.0, group_size=16, lr=3e-6, mini_batches=16),
    notes=(
        "Paper: lr 3e-6, KL coefficient 0.001, temperature 1, 16 outputs per question, max length "
        "32,768 (65,536 after step 8.2k), 32 questions per step (batch 512), the reference replaced "
        "by the policy every 400 steps, each rollout of 8,192 outputs split into 16 mini-batches for "
        "one inner epoch. The R1-Zero paragraph gives no clip ratio; R1's first RL stage (§3.2.1), "
        "otherwise identical, sets eps = 10 because a small clip truncates the gradient of many "
        "tokens in long responses: we use 10 for both sides. Eq. 1 writes whole-sequence ratios; we "
        "use DeepSeekMath's per-token form (every implementation does). Prompts per step and max "
        "length are left to the run."
    ),
))

register_preset(Preset(
    name="dr_grpo",
    paper="Liu et al. 2025, Understanding R1-Zero-Like Training (Dr. GRPO), arXiv 2503.20783",
    equations="A_i = r_i - mean_g r; loss = sum_{i,t} l m / (N * max_len)",
    values=dict(advantage="dr_grpo", policy_loss="token_clip", eps_low=0.2, eps_high=0.2, beta=0.0,
                aggregation="constant"),
    notes=(
        "Paper: A = r - mean (no std: removes the question-difficulty bias); per-token losses summed "
        "and divided by a constant, the generation budget, instead of |o_i| (removes the length bias "
        "that lets wrong answers grow); beta = 0. Oat-Zero-7B: AIME24 43.3 in 27 h on 8xA100. Ours: "
        "the constant is N * max_len, the loop passing its max_new_tokens as max_len; lr, G and "
        "temperature are left to the run."
    ),
))

register_preset(Preset(
    name="dapo",
    paper="Yu et al. 2025, DAPO, arXiv 2503.14476",
    equations=("as grpo with clip [1-0.2, 1+0.28]; token-mean; keep groups with 0 < acc < 1; R_len (eq. 13); "
               "truncated masked"),
    values=dict(advantage="grpo", policy_loss="token_clip", eps_low=0.2, eps_high=0.28, beta=0.0,
                aggregation="token-mean", dynamic_sampling_max_rounds=10, overlong_filter=True,
                overlong_cache_frac=0.2, mini_batches=16),
    notes=(
        "Paper §4.1: AdamW, constant lr 1e-6 with 20 warm-up rollout steps; 512 prompts x 16 "
        "responses per rollout; mini-batch 512 (16 gradient updates per rollout step); expected "
        "length 16,384 + 4,096 soft punish cache = 20,480 generation budget; eps_low 0.2, eps_high "
        "0.28; no KL; group-normalised advantages; token-level loss; dynamic sampling keeps groups "
        "with 0 < accuracy < 1 and samples until the batch is full. Ablation (Qwen2.5-32B, AIME24 "
        "avg@32): naive GRPO 30 -> +overlong filtering 36 -> +clip-higher 38 -> +soft overlong "
        "punishment 41 -> +token-level loss 42 -> +dynamic sampling 50. Ours: the soft zone is 0.2 "
        "of the run's budget (4096 / 20480); at most 10 generation rounds per step (our limit; the "
        "paper gives none); 'all rewards equal' replaces 'accuracy 0 or 1' for graded rewards."
    ),
))

register_preset(Preset(
    name="rloo",
    paper="Ahmadian et al. 2024, Back to Basics (RLOO), arXiv 2402.14740; Kool et al. 2019",
    equations="A_i = r_i' - (1/(G-1)) sum_{j!=i} r_j', r' = r - beta sum_t k1",
    values=dict(advantage="rloo", policy_loss="token_clip", eps_low=0.2, eps_high=0.2, beta=0.05,
                kl_estimator="k1", kl_placement="reward", aggregation="constant"),
    notes=(
        "Paper: REINFORCE on whole sequences with the leave-one-out baseline "
        "A_i = r_i - mean_{j != i} r_j and a sequence-level KL penalty in the reward. Ours: the "
        "penalty is k1 summed over the sequence, r - beta * KL, as TRL's RLOOTrainer; beta 0.05 is "
        "TRL's default (not checked against the paper). The 'constant' aggregation makes the "
        "gradient A_i * sum_t grad logp, the sequence-level REINFORCE gradient up to a constant "
        "factor; the PPO clip only acts when the run takes several mini-batches per rollout."
    ),
))

register_preset(Preset(
    name="reinforce_pp",
    paper="Hu et al. 2025, REINFORCE++, arXiv 2501.03262",
    equations="A = (r' - mean_batch r') / (std_batch r' + eps), r' = r - beta sum_t k1",
    values=dict(advantage="reinforce_pp", policy_loss="token_clip", eps_low=0.2, eps_high=0.2, beta=0.01,
                kl_estimator="k1", kl_placement="reward", aggregation="token-mean"),
    notes=(
        "Paper: PPO's clipped loss without a critic; k1 KL penalty in the per-token reward, "
        "return-to-go with gamma = 1, advantages normalised by the mean and std of the whole batch "
        "rather than per prompt. Ours: the KL penalty is summed over the sequence and subtracted "
        "from the scalar reward before the batch normalisation, so every token of a completion "
        "gets the same advantage (the paper's tokens each see their own return-to-go; that form is "
        "gae(token_rewards(...), zeros, mask, gamma=1, lam=1) then masked_whiten). beta 0.01 (k1, "
        "in the reward) as slime documents for REINFORCE++; token-mean is our choice."
    ),
))

register_preset(Preset(
    name="reinforce_pp_baseline",
    paper="Hu et al. 2025, REINFORCE++ (the -baseline variant), arXiv 2501.03262",
    equations="c = r - mean_g r; A = c / (std_batch c + eps); + beta k2 in the loss",
    values=dict(advantage="reinforce_pp_baseline", policy_loss="token_clip", eps_low=0.2, eps_high=0.2,
                beta=0.01, kl_estimator="k2", kl_placement="loss", aggregation="token-mean"),
    notes=(
        "Paper: for G > 1 samples per prompt (reasoning, agents): subtract the group mean, then "
        "divide by the std of the centred rewards over the whole batch; the KL as a k2 loss term. "
        "Ours: beta 0.01 with k2 in the loss as slime documents for REINFORCE++-baseline; "
        "token-mean is our choice."
    ),
))

register_preset(Preset(
    name="gspo",
    paper="Zheng et al. 2025, Group Sequence Policy Optimization, arXiv 2507.18071",
    equations="s_i = exp((1/|o_i|) sum_t (logp - old_logp)); l_i = -min(s_i A_i, clip(s_i, 1-3e-4, 1+4e-4) A_i)",
    values=dict(advantage="grpo", policy_loss="gspo", eps_low=3e-4, eps_high=4e-4, beta=0.0,
                aggregation="seq-mean-token-mean", mini_batches=4),
    notes=(
        "Paper: sequence-level length-normalised ratio s_i = exp(mean_t log(pi/pi_old)), clipped "
        "per sequence with left/right ranges 3e-4 / 4e-4; group-normalised advantages; each "
        "rollout batch split into 4 mini-batches; no KL term (TRL's paper index: the authors set it "
        "to 0). On-policy (one mini-batch) s_i = 1 and GSPO's gradient equals GRPO's, so the "
        "4 mini-batches are part of the recipe. lr, G and lengths are left to the run."
    ),
))

register_preset(Preset(
    name="ppo",
    paper="Schulman et al. 2017, PPO, arXiv 1707.06347, with GAE (arXiv 1506.02438), RLHF form of "
    "Ouyang et al. 2022; settings of verl's PPO example and TinyZero",
    equations=("r_t = -beta k1_t + [t = last] r; A_t = delta_t + gamma lam A_{t+1}, "
               "delta_t = r_t + gamma V_{t+1} - V_t; value loss 0.5 max((V-R)^2, (V_clip-R)^2)"),
    values=dict(advantage="gae", policy_loss="token_clip", eps_low=0.2, eps_high=0.2, beta=0.001,
                kl_estimator="k1", kl_placement="reward", aggregation="token-mean", use_critic=True,
                critic_lr=1e-5, gamma=1.0, lam=0.95, value_clip=0.5, whiten_advantages=True),
    notes=(
        "The baseline GRPO removes: a value model (a copy of the policy with a scalar head) predicts "
        "the return at every token. verl's GSM8K PPO example and TinyZero's Countdown script: actor "
        "lr 1e-6, critic lr 1e-5, kl_coef 0.001 with the k1 KL in the per-token reward, gamma 1. "
        "lam 0.95 is PPO's usual value and the one R1's revised paper found clearly worse than GRPO "
        "(lam = 1 came close but needed tuning). GAE advantages whitened over the batch's tokens and "
        "value clip 0.5, as verl. The policy lr is left to the run."
    ),
))
