"""Pure math of GRPO and its relatives: tensors in, tensors out.

No I/O, no config objects (the resolved :class:`Algorithm` and the preset table are plain records), no
``.item()`` on hot paths, no distributed calls. Every choice on which implementations disagree is
an explicit argument with a documented default. Variants are registered functions looked up by
name: :data:`ADVANTAGE_ESTIMATORS`, :data:`POLICY_LOSSES`, :data:`KL_ESTIMATORS`, :data:`CORRECTIONS`, and the
preset table :data:`PRESETS` (named sets of config values).
"""

from grpokit.algo.advantages import (
    ADVANTAGE_ESTIMATORS,
    get_advantage_estimator,
    group_advantages,
    register_advantage,
)
from grpokit.algo.correction import (
    CORRECTIONS,
    get_correction,
    mismatch_log_ratio,
    mismatch_metrics,
    rollout_correction,
    truncated_logprobs,
)
from grpokit.algo.kl import KL_ESTIMATORS, kl_k1, kl_k2, sequence_kl
from grpokit.algo.logprobs import head_logprobs, selective_logprobs, token_entropy
from grpokit.algo.losses import (
    POLICY_LOSSES,
    aggregate,
    get_policy_loss,
    gspo_loss,
    kl_k3,
    policy_loss,
    register_policy_loss,
    step_normalizer,
)
from grpokit.algo.ppo import gae, masked_whiten, token_rewards, value_loss
from grpokit.algo.algorithm import Algorithm
from grpokit.algo.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset, register_preset
from grpokit.algo.process import process_advantages
from grpokit.algo.selection import informative_groups, skippable_sequences
from grpokit.algo.shaping import overlong_filter, overlong_penalty

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "CORRECTIONS",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "DEFAULT_PRESET",
    "PRESETS",
    "Algorithm",
    "Preset",
    "aggregate",
    "gae",
    "get_advantage_estimator",
    "get_correction",
    "get_policy_loss",
    "get_preset",
    "group_advantages",
    "gspo_loss",
    "head_logprobs",
    "informative_groups",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "masked_whiten",
    "mismatch_log_ratio",
    "mismatch_metrics",
    "overlong_filter",
    "overlong_penalty",
    "policy_loss",
    "process_advantages",
    "register_advantage",
    "register_policy_loss",
    "register_preset",
    "rollout_correction",
    "selective_logprobs",
    "sequence_kl",
    "skippable_sequences",
    "step_normalizer",
    "token_entropy",
    "token_rewards",
    "truncated_logprobs",
    "value_loss",
]
