"""Training/inference mismatch: importance weights from the sampler's log-probs to the learner's.

A fast sampler (vLLM) and the learner's forward are different numerical programs (kernels,
precision, batching), so even with identical weights the tokens were drawn from ``pi_sampler``
while the loss is written for ``pi_learner``. Yao et al. 2025, "Your Efficient RL Framework
Secretly Brings You Off-Policy RL Training" (https://fengyao.notion.site/off-policy-rl), reweight
each token by ``pi_learner_old / pi_sampler``; Liu, Li et al. 2025, "When Speed Kills Stability"
(veRL's ``rollout_correction``) add masking (rejection) at token and sequence level. TRL exposes
the same four as ``vllm_importance_sampling_mode`` (``token_truncate``, ``token_mask``,
``sequence_truncate``, ``sequence_mask``).

Shapes: ``N`` sequences, ``T`` completion tokens; ``mask[n, t]`` is 1 on completion tokens.

    log r[n, t] = learner_logp[n, t] - sampler_logp[n, t]             (token level)
    log r[n]    = sum_t mask * (learner_logp - sampler_logp)          (sequence level: TRL's and veRL's
                                                                        ``sequence`` ratio, a product)
    log r[n]    = (1/|o_n|) sum_t mask * (learner_logp - sampler_logp) (``geometric``: veRL's geometric
                                                                        rejection, length-independent)
    TIS:  w = min(r, C)                                    (truncate; Yao et al.)
    MIS:  w = r * 1[1/C <= r <= C]                         (mask; the token or sequence leaves the loss)

The weight multiplies the per-token policy-gradient term (TRL: ``per_token_loss * is_ratio``);
the KL term is not reweighted. Where the two log-probs are equal ``r == 1`` exactly and every mode
returns weights of exactly 1 (tested), so the correction is a no-op for a sampler that agrees.

Truncated sampling (top-p / top-k) must be replayed on the learner's side: vLLM's
``processed_logprobs`` are renormalised over the tokens that survived truncation,
``log q(y) = log p(y) - log S`` with ``S`` the kept mass, so comparing them with full-vocabulary
learner log-probs multiplies every ratio by ``S`` (TRL issue 6789). :func:`truncated_logprobs`
gives the learner's log-probs under the same truncation.
"""

from __future__ import annotations

from typing import Callable

import torch

from grpokit.algo.kl import kl_k3

LEVELS = ("token", "sequence", "geometric")
MODES = ("tis", "mis")

CorrectionFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]

__all__ = [
    "CORRECTIONS",
    "get_correction",
    "mismatch_log_ratio",
    "mismatch_metrics",
    "rollout_correction",
    "truncated_logprobs",
]


def mismatch_log_ratio(learner_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                       level: str = "token") -> torch.Tensor:
    """``log(pi_learner / pi_sampler)`` at ``level``: ``[N, T]`` for ``token``, ``[N, 1]`` otherwise.

    ``token``: per token, 0 outside ``mask``. ``sequence``: the sum over the completion (the log of the
    product of token ratios; TRL ``sequence_*`` and veRL ``rollout_is: sequence``). ``geometric``: the
    mean over the completion's tokens (veRL ``rollout_rs: geometric``); 0 for an empty completion.
    """
    m = mask.to(learner_logp.dtype)
    diff = (learner_logp - sampler_logp) * m  # [N, T]
    if level == "token":
        return diff
    if level == "sequence":
        return diff.sum(-1, keepdim=True)  # [N, 1]
    if level == "geometric":
        return diff.sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1)  # [N, 1]
    raise ValueError(f"correction level must be one of {LEVELS}, got {level!r}")


def rollout_correction(learner_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, *,
                       mode: str = "tis", level: str = "token", cap: float = 2.0
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Importance weights that turn samples of ``pi_sampler`` into an estimate for ``pi_learner``.

    ``r = exp(mismatch_log_ratio(learner_logp, sampler_logp, mask, level))``;
    ``tis``: ``w = min(r, C)`` (Yao et al. 2025, truncated IS); ``mis``: ``w = r * 1[1/C <= r <= C]``
    (masked IS: veRL's rejection with its default lower bound ``1/C``; TRL's ``*_mask`` masks above
    ``C`` only).

    Args:
        learner_logp: ``[N, T]`` log-probs of the sampled tokens under the learner's weights at sampling
            time (``pi_learner_old``; no gradient), taken under the same top-p/top-k truncation as
            the sampler's (:func:`truncated_logprobs`).
        sampler_logp: ``[N, T]`` the sampler's own log-probs of the same tokens.
        mask: ``[N, T]`` completion mask.
        mode: ``tis`` (truncate) or ``mis`` (mask).
        level: ``token``, ``sequence`` (product of token ratios) or ``geometric`` (their geometric mean).
        cap: ``C > 1``.

    Returns:
        ``(weights, metrics)``: weights ``[N, T]`` (token level) or ``[N, 1]`` (sequence levels), no
        gradient, 1 outside ``mask`` at token level; metrics from :func:`mismatch_metrics`.
    """
    if mode not in MODES:
        raise ValueError(f"correction mode must be one of {MODES}, got {mode!r}")
    if not cap > 1.0:
        raise ValueError(f"the correction cap C must be > 1 (weights are kept within [1/C, C]), got {cap}")
    with torch.no_grad():
        log_r = mismatch_log_ratio(learner_logp.detach().float(), sampler_logp.float(), mask, level)
        ratio = torch.exp(log_r)  # [N, T] or [N, 1]
        if mode == "tis":
            weights = ratio.clamp(max=cap)
        else:
            keep = (log_r >= -torch.log(torch.tensor(cap))) & (log_r <= torch.log(torch.tensor(cap)))
            weights = torch.where(keep, ratio, torch.zeros_like(ratio))
        metrics = mismatch_metrics(learner_logp.detach(), sampler_logp, mask, ratio=ratio, cap=cap)
    return weights, metrics


def mismatch_metrics(learner_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, *,
                     ratio: torch.Tensor | None = None, cap: float = 2.0) -> dict[str, torch.Tensor]:
    """How far the sampler is from the learner, as 0-dim tensors (no ``.item()``).

    - ``kl``: mean over completion tokens of k3 with samples from the sampler,
      ``exp(d) - d - 1``, ``d = learner_logp - sampler_logp`` (Schulman's k3 of KL(sampler || learner));
    - ``ratio_mean``, ``ratio_max``: of ``ratio`` (default: token ratios) over completion tokens
      (or over non-empty sequences when ``ratio`` is ``[N, 1]``);
    - ``truncated_frac``: share of those ratios above ``C`` (what TIS truncates);
    - ``masked_frac``: share outside ``[1/C, C]`` (what MIS drops).
    """
    m = mask.bool()
    tokens = m.sum().clamp(min=1)
    k3 = kl_k3(sampler_logp.float(), learner_logp.float())  # [N, T]
    kl = (k3 * m).sum() / tokens
    if ratio is None:
        ratio = torch.exp((learner_logp.float() - sampler_logp.float()) * m)
    sel = m if ratio.shape[-1] == m.shape[-1] else m.any(-1, keepdim=True)  # which ratios count
    r = ratio[sel.expand_as(ratio)] if sel.any() else ratio.new_ones(1)
    return {
        "kl": kl,
        "ratio_mean": r.mean(),
        "ratio_max": r.max(),
        "truncated_frac": (r > cap).float().mean(),
        "masked_frac": ((r > cap) | (r < 1.0 / cap)).float().mean(),
    }


def truncated_logprobs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0,
                       top_p: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """Log-probs of the sampled tokens under the top-k/top-p truncated, renormalised distribution.

    ``z = logits / tau``; keep the ``top_k`` largest (``0`` = all), then the smallest set of the most
    likely tokens whose mass (under the top-k renormalised softmax) reaches ``top_p``, as vLLM's
    sampler and the HF engine (``rollout.hf.sample_next``) do; the sampled token itself is always
    kept (at the boundary the learner's and sampler's rankings can differ by rounding, and a token
    that was sampled has positive probability; prime-rl does the same);
    ``logp[n, t] = z[y] - logsumexp_{v kept} z[v]``.

    With ``top_p = 1`` and ``top_k = 0`` this is :func:`grpokit.algo.selective_logprobs` (tested equal).
    ``[N, T, V], [N, T] -> [N, T]`` float32, processed one row at a time (a ``[T, V]`` temporary).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    rows = []
    for row_logits, row_ids in zip(logits, token_ids):  # [T, V], [T]
        z = row_logits.float() / temperature
        if top_k and top_k < z.shape[-1]:
            kth = z.topk(top_k, dim=-1).values[:, -1:]  # [T, 1]
            z = z.masked_fill(z < kth, float("-inf"))
        if top_p < 1.0:
            sorted_p, order = torch.softmax(z, -1).sort(dim=-1, descending=True)
            outside = sorted_p.cumsum(-1) - sorted_p >= top_p  # mass strictly above already reaches top_p
            z = z.masked_fill(torch.zeros_like(outside).scatter_(-1, order, outside), float("-inf"))
        picked = row_logits.float().gather(-1, row_ids.unsqueeze(-1)) / temperature  # [T, 1]
        z = z.scatter(-1, row_ids.unsqueeze(-1), picked)  # the sampled token stays in the support
        rows.append(picked.squeeze(-1) - torch.logsumexp(z, dim=-1))
    return torch.stack(rows)


def _named(mode: str, level: str) -> CorrectionFn:
    def fn(learner_logp, sampler_logp, mask, *, cap: float = 2.0):
        return rollout_correction(learner_logp, sampler_logp, mask, mode=mode, level=level, cap=cap)

    fn.__name__ = f"{level}_{mode}"
    fn.__doc__ = f":func:`rollout_correction` with ``mode={mode!r}``, ``level={level!r}``."
    return fn


CORRECTIONS: dict[str, CorrectionFn] = {
    "tis": _named("tis", "token"),  # Yao et al. 2025; TRL token_truncate
    "mis": _named("mis", "token"),  # TRL token_mask (two-sided here)
    "seq_tis": _named("tis", "sequence"),  # TRL sequence_truncate; veRL rollout_is: sequence
    "seq_mis": _named("mis", "sequence"),  # TRL sequence_mask; veRL rollout_rs: sequence
    "geo_mis": _named("mis", "geometric"),  # veRL rollout_rs: geometric
}
"""Correction name -> ``fn(learner_logp, sampler_logp, mask, *, cap) -> (weights, metrics)``; ``none`` is off."""


def get_correction(name: str) -> CorrectionFn | None:
    """The correction registered under ``name``; ``None`` for ``none``; a clear error lists the names."""
    if name == "none":
        return None
    try:
        return CORRECTIONS[name]
    except KeyError:
        raise ValueError(f"unknown mismatch correction {name!r}; choose none or one of {sorted(CORRECTIONS)}") from None
