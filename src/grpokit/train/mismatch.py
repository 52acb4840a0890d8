"""The learner's side of the sampler/learner mismatch correction (``--correction``; math in ``algo.correction``).

The update hands every micro-batch's advantages through :meth:`Mismatch.reweight`: the importance
weight ``w`` (TIS/MIS of ``pi_learner_old / pi_sampler``) multiplies the advantage, which is the
same as multiplying the policy-gradient term of the per-token loss (``w >= 0`` passes through
the ``min`` of the clipped surrogate), and leaves the KL term alone, as TRL does.

``pi_learner_old`` is the policy at sampling time: the update's ``old_logp`` when it stores them
(``mu > 1`` or several mini-batches), else the micro-batch's own log-probs (same weights). With
top-p/top-k sampling and an engine whose log-probs are renormalised over the kept tokens (vLLM),
it is instead recomputed once, without gradient, under the same truncation
(``algo.truncated_logprobs``; TRL issue 6789).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grpokit.algo import get_correction, truncated_logprobs
from grpokit.models import precision
from grpokit.train.batch import TrainBatch, _inputs


SEQUENCE_LEVEL = ("seq_tis", "seq_mis", "geo_mis")


def resolve_correction(name: str, engine: str, policy_loss: str = "token_clip") -> str:
    """``auto`` -> ``tis`` with the vLLM engine (``seq_tis`` under GSPO, whose loss takes one weight per
    sequence), ``none`` with the HF engine; other names pass through, checked."""
    if name == "auto":
        if engine != "vllm":
            return "none"
        return "seq_tis" if policy_loss == "gspo" else "tis"
    get_correction(name)  # a clear error for an unknown name
    if policy_loss == "gspo" and name not in ("none", *SEQUENCE_LEVEL):
        raise ValueError(f"correction {name!r} weights tokens, but the gspo loss takes one advantage per sequence: "
                         f"use --correction one of {SEQUENCE_LEVEL} (or none)")
    return name


@dataclass
class Mismatch:
    """One step's correction state: the sampler's log-probs in, weights and ``mismatch/*`` metrics out."""

    name: str
    cap: float
    sample_logp: torch.Tensor  # [N, T] the sampler's log-probs of the sampled tokens
    temperature: float
    top_p: float = 1.0
    top_k: int = 0
    truncated_support: bool = False
    """The sampler's log-probs are renormalised over the top-p/top-k support (vLLM), so the learner replays it."""
    learner_logp: torch.Tensor | None = None  # [N, T] pi_learner_old, filled as rows are seen
    seen: torch.Tensor | None = None  # [N] bool
    _replayed: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        self.fn = get_correction(self.name)
        self.learner_logp = torch.zeros_like(self.sample_logp, dtype=torch.float32)
        self.seen = torch.zeros(self.sample_logp.shape[0], dtype=torch.bool)

    @property
    def replays_truncation(self) -> bool:
        return self.truncated_support and (self.top_p < 1.0 or self.top_k > 0)

    @torch.no_grad()
    def prepare(self, policy, batch: TrainBatch, chunks: list[list[int]]) -> None:
        """Before the first optimizer step: the learner's truncated log-probs of the rows in ``chunks`` (if needed)."""
        if not self.replays_truncation:
            return
        self._replayed = torch.zeros_like(self.learner_logp)
        device = next(policy.parameters()).device
        for rows in chunks:
            ids, attn, positions, t_len, _ = _inputs(batch, rows, device)
            with precision(policy):
                logits = policy(input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=t_len + 1,
                                use_cache=False).logits[:, :-1]  # [n, T, V]
            lp = truncated_logprobs(logits, ids[:, -t_len:], self.temperature, self.top_p, self.top_k)
            self._replayed[torch.tensor(rows), :t_len] = lp.float().cpu()

    def reweight(self, idx: torch.Tensor, adv: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``adv * w`` for the micro-batch rows ``idx`` (``adv`` ``[n]`` or ``[n, T]``; result ``[n, T]`` or ``[n, 1]``)."""
        if self.fn is None:
            return adv
        T = mask.shape[1]
        learner = self._replayed[idx, :T].to(old_logp.device) if self._replayed is not None else old_logp.detach().float()
        sampler = self.sample_logp[idx, :T].to(old_logp.device)
        w, _ = self.fn(learner, sampler, mask, cap=self.cap)  # [n, T] or [n, 1]
        new = ~self.seen[idx]
        self.learner_logp[idx[new], :T] = learner[new.to(learner.device)].cpu()
        self.seen[idx] = True
        a = adv.unsqueeze(-1) if adv.dim() == 1 else adv
        return a * w.to(a.dtype)

    def metrics(self, mask: torch.Tensor) -> dict[str, float | None]:
        """``mismatch/*`` over the sequences the update computed (None when it computed none)."""
        keys = ("kl", "ratio_mean", "ratio_max", "truncated_frac", "masked_frac")
        if self.fn is None or not bool(self.seen.any()):
            return {f"mismatch/{k}": None for k in keys}
        rows = self.seen
        learner, sampler, m = self.learner_logp[rows], self.sample_logp[rows].float(), mask[rows]
        T = min(learner.shape[1], sampler.shape[1], m.shape[1])
        learner, sampler, m = learner[:, :T], sampler[:, :T], m[:, :T]
        _, full = self.fn(learner, sampler, m, cap=self.cap)  # the ratios at the correction's own level
        return {f"mismatch/{k}": float(full[k]) for k in keys}
