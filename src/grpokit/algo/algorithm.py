"""The algorithm a run executes: which functions (estimator, loss, KL) and which constants.

An :class:`Algorithm` is what the training loop calls: :meth:`Algorithm.advantages` (or
:meth:`Algorithm.critic_advantages` when ``use_critic``), :meth:`Algorithm.loss` and
:meth:`Algorithm.critic_loss`; it never branches on an algorithm's name. Its fields carry the same
names as the :class:`grpokit.config.TrainConfig` fields they come from (``grpokit.config.algo_preset``
copies them over one to one), and 0 means "off" wherever a number can switch a part off.
The named presets (``--algo NAME``) are sets of config values in :mod:`grpokit.algo.presets`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from grpokit.algo.advantages import ADVANTAGE_ESTIMATORS, get_advantage_estimator
from grpokit.algo.kl import KL_ESTIMATORS, get_kl_estimator
from grpokit.algo.losses import AGGREGATIONS, POLICY_LOSSES, get_policy_loss
from grpokit.algo.ppo import gae, masked_whiten, token_rewards, value_loss

KL_PLACEMENTS = ("loss", "reward")
CRITIC_ADVANTAGE = "gae"


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of the GRPO family, resolved: which functions and which constants.

    Every field comes from the run's config (no defaults here, so no second set of defaults);
    build variants with ``algorithm.replace(beta=0.0)``. Every instance is validated.
    """

    name: str
    """The preset it was resolved from (``--algo``), for messages."""
    advantage: str
    """Outcome estimator name in ``ADVANTAGE_ESTIMATORS`` (``grpo``, ``dr_grpo``, ``rloo``,
    ``reinforce_pp``, ``reinforce_pp_baseline``), or ``"gae"`` when ``use_critic``."""
    policy_loss: str
    """Loss name in ``POLICY_LOSSES``: ``token_clip`` (per-token ratio) or ``gspo`` (per sequence)."""
    eps_low: float
    """Lower clip range: the ratio is clipped at ``1 - eps_low``."""
    eps_high: float
    """Upper clip range: ``1 + eps_high`` (DAPO's clip-higher raises it to 0.28)."""
    beta: float
    """KL coefficient; where it applies is ``kl_placement``. 0 loads no reference model."""
    kl_estimator: str
    """Per-token KL estimator in ``KL_ESTIMATORS``: ``k1``, ``k2`` or ``k3`` (see ``grpokit.algo.kl``)."""
    kl_placement: str
    """``"loss"``: ``beta * kl`` is added to the per-token loss (GRPO). ``"reward"``: subtracted from
    the reward at sampling time: per token before GAE with a critic, summed over the sequence
    before the outcome estimator without one (RLOO, REINFORCE++)."""
    aggregation: str
    """How per-token losses are averaged: ``seq-mean-token-mean`` (GRPO), ``token-mean`` (DAPO) or
    ``constant`` (Dr. GRPO; the loop passes the generation budget as ``max_len``)."""
    adv_eps: float
    """Added to the std in the advantage estimators (TRL's 1e-4)."""
    use_critic: bool
    """PPO's value model on: advantages from GAE, value loss, a second optimizer. The toggle."""
    critic_lr: float
    """Learning rate of the value model (only with ``use_critic``)."""
    gamma: float
    """GAE discount (critic only)."""
    lam: float
    """GAE lambda (critic only)."""
    value_clip: float
    """Value-loss clip range around the sampling-time values; 0 = unclipped (critic only)."""
    whiten_advantages: bool
    """Normalise GAE advantages over all completion tokens of the batch (critic only)."""
    overlong_filter: bool
    """DAPO: mask the loss of completions truncated at the length limit."""
    overlong_cache_frac: float
    """DAPO's soft overlong punishment: the soft zone as a fraction of the generation budget
    (DAPO: 4096 / 20480 = 0.2); 0 = no penalty."""
    mini_batches: int
    """Optimizer steps per rollout batch (the batch split in this many parts, one epoch).
    More than 1 makes later updates off-policy (ratio != 1)."""

    def __post_init__(self) -> None:
        where = f"algorithm {self.name!r}"
        if self.use_critic:
            if self.advantage != CRITIC_ADVANTAGE:
                raise ValueError(f"{where}: use_critic needs advantage={CRITIC_ADVANTAGE!r}, got {self.advantage!r}")
        elif self.advantage not in ADVANTAGE_ESTIMATORS:
            raise ValueError(
                f"{where}: advantage {self.advantage!r} is not registered; choose one of "
                f"{sorted(ADVANTAGE_ESTIMATORS)} (or set use_critic=True for 'gae')"
            )
        checks = [
            (self.policy_loss in POLICY_LOSSES, f"policy_loss must be one of {sorted(POLICY_LOSSES)}"),
            (self.kl_estimator in KL_ESTIMATORS, f"kl_estimator must be one of {sorted(KL_ESTIMATORS)}"),
            (self.kl_placement in KL_PLACEMENTS, f"kl_placement must be one of {KL_PLACEMENTS}"),
            (self.aggregation in AGGREGATIONS, f"aggregation must be one of {AGGREGATIONS}"),
            (self.beta >= 0, "beta must be >= 0"),
            (self.eps_low >= 0 and self.eps_high >= 0, "eps_low and eps_high must be >= 0"),
            (self.critic_lr > 0, "critic_lr must be > 0"),
            (self.value_clip >= 0, "value_clip must be >= 0 (0 = unclipped)"),
            (0 <= self.overlong_cache_frac <= 1, "overlong_cache_frac must be in [0, 1] (0 = off)"),
            (self.mini_batches >= 1, "mini_batches must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{where}: {message}")

    # -- where beta goes ------------------------------------------------------------------------

    @property
    def loss_beta(self) -> float:
        """The KL coefficient the policy loss sees (0 when the KL is in the reward)."""
        return self.beta if self.kl_placement == "loss" else 0.0

    @property
    def reward_beta(self) -> float:
        """The KL coefficient subtracted from the reward (0 when the KL is in the loss)."""
        return self.beta if self.kl_placement == "reward" else 0.0

    @property
    def needs_reference(self) -> bool:
        """Whether the loop must keep a frozen reference model."""
        return self.beta > 0

    def kl(self, logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
        """The algorithm's per-token KL estimate, ``[N, T] -> [N, T]``."""
        return get_kl_estimator(self.kl_estimator)(logp, ref_logp)

    def overlong_cache_tokens(self, max_len: int) -> int | None:
        """``L_cache`` in tokens for a generation budget of ``max_len`` (None when off)."""
        if not self.overlong_cache_frac:
            return None
        return max(1, round(self.overlong_cache_frac * max_len))

    # -- advantages -----------------------------------------------------------------------------

    def advantages(
        self,
        rewards: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        seq_kl: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Outcome advantages ``[B, G] -> [B, G]`` (critic-free presets).

        With ``kl_placement == "reward"`` and ``beta > 0``, ``seq_kl`` (``[B, G]``, from
        :func:`grpokit.algo.kl.sequence_kl` on ``old_logp``) is subtracted first:
        ``r' = r - beta * seq_kl`` (RLOO as in TRL; a sequence-level form of REINFORCE++'s
        per-token penalty).
        """
        if self.use_critic:
            raise ValueError(f"algorithm {self.name!r} has a critic: use critic_advantages(scores, values, mask)")
        if self.reward_beta > 0:
            if seq_kl is None:
                raise ValueError(
                    f"algorithm {self.name!r} puts the KL in the reward: pass seq_kl=sequence_kl(old_logp, "
                    f"ref_logp, mask, {self.kl_estimator!r}) reshaped to [B, G]"
                )
            rewards = rewards.float() - self.reward_beta * seq_kl.float()
        return get_advantage_estimator(self.advantage)(rewards, mask, eps=self.adv_eps)

    def critic_advantages(
        self,
        scores: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        *,
        token_kl: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PPO: ``(advantages [N, T], returns [N, T])`` from scalar scores ``[N]`` and values ``[N, T]``.

        Per-token rewards (score at the last token, ``-reward_beta * token_kl`` on each token), then
        GAE with ``gamma``/``lam``, then whitening if ``whiten_advantages``. ``token_kl`` is
        ``self.kl(old_logp, ref_logp)``, needed when the KL is in the reward.
        """
        if not self.use_critic:
            raise ValueError(f"algorithm {self.name!r} has no critic: use advantages(rewards)")
        if self.reward_beta > 0 and token_kl is None:
            raise ValueError(
                f"algorithm {self.name!r} puts the KL in the reward: pass token_kl=algorithm.kl(old_logp, ref_logp)"
            )
        rewards = token_rewards(scores, mask, kl=token_kl, beta=self.reward_beta)  # [N, T]
        adv, returns = gae(rewards, values, mask, gamma=self.gamma, lam=self.lam)  # [N, T] each
        if self.whiten_advantages:
            adv = masked_whiten(adv, mask)
        return adv, returns

    # -- losses ---------------------------------------------------------------------------------

    def loss(
        self,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        adv: torch.Tensor,
        mask: torch.Tensor,
        *,
        ref_logp: torch.Tensor | None = None,
        max_len: int | None = None,
        normalizer: float | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The algorithm's policy loss on one (micro-)batch; arguments as ``policy_loss``."""
        return get_policy_loss(self.policy_loss)(
            logp,
            old_logp,
            adv,
            mask,
            eps_low=self.eps_low,
            eps_high=self.eps_high,
            beta=self.loss_beta,
            ref_logp=ref_logp,
            kl_estimator=self.kl_estimator,
            aggregation=self.aggregation,
            max_len=max_len,
            normalizer=normalizer,
        )

    def critic_loss(
        self,
        values: torch.Tensor,
        old_values: torch.Tensor,
        returns: torch.Tensor,
        mask: torch.Tensor,
        *,
        max_len: int | None = None,
        normalizer: float | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clipped value loss with the algorithm's ``value_clip`` and ``aggregation``."""
        return value_loss(
            values, old_values, returns, mask,
            clip_eps=self.value_clip or None, aggregation=self.aggregation, max_len=max_len, normalizer=normalizer,
        )

    def replace(self, **changes) -> "Algorithm":
        """A validated copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)
