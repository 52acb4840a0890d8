"""Pure math of GRPO and its relatives: tensors in, tensors out.

No I/O, no config objects, no ``.item()`` on hot paths, no distributed calls. Every choice on
which implementations disagree is an explicit argument with a documented default.
"""

from grpokit.algo.advantages import group_advantages
from grpokit.algo.logprobs import selective_logprobs, token_entropy
from grpokit.algo.losses import aggregate, kl_k3, policy_loss, step_normalizer

__all__ = [
    "aggregate",
    "group_advantages",
    "kl_k3",
    "policy_loss",
    "selective_logprobs",
    "step_normalizer",
    "token_entropy",
]
