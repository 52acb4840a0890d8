"""One rollout batch -> optimizer steps, for every preset (critic on or off) without branching on names.

    old_logp, ref_logp  <- forward passes without gradient, only where the preset needs them
    old_values          <- the critic's values at sampling time                 (critic only)
    adv                 <- preset.advantages(rewards)  or  preset.critic_advantages(scores, old_values)
    rows                <- all sequences but those that cannot teach (skippable_sequences; none with a critic)
    for mu epochs:
        for each of the mini_batches parts of the N sequences:      (one optimizer step each)
            for each micro-batch of its rows: policy loss (+ value loss) -> backward
            clip, step the policy (and the critic)

The loss normaliser of an optimizer step counts every sequence of its part, skipped ones included
(``step_normalizer`` on the part's full mask), so neither skipping nor the micro-batch split
changes the gradient.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from grpokit.models import precision
from grpokit.algo import sequence_kl, skippable_sequences, step_normalizer
from grpokit.algo.presets import AlgoPreset
from grpokit.train.batch import TrainBatch, group_logprobs, micro_batches, sequence_logprobs, sequence_values


@dataclass
class Learner:
    """What a run trains: the policy and its optimizer, an optional frozen reference, an optional critic."""

    policy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ref: torch.nn.Module | None = None
    critic: torch.nn.Module | None = None
    critic_optimizer: torch.optim.Optimizer | None = None


@dataclass
class UpdateRecord:
    """What one optimizer step saw: enough to recompute its loss from the formula (``train(on_update=...)``).

    Tensors cover all ``N`` sequences of the rollout batch, on the CPU. ``logp`` holds the
    current policy's log-probs for the ``trained`` rows and ``old_logp`` elsewhere (ratio 1; those
    rows have zero advantage and no KL term in the loss, so any value gives them zero loss).
    """

    step: int
    epoch: int
    mini_batch: int
    rows: list[int]
    """The sequences of this optimizer step; its normaliser counts all of them."""
    trained: list[int]
    """Those that got forward/backward passes."""
    rewards: torch.Tensor  # [N] total reward after shaping
    valid: torch.Tensor  # [N] bool
    mask: torch.Tensor  # [N, T] loss mask
    advantages: torch.Tensor  # [N] or [N, T]
    logp: torch.Tensor  # [N, T]
    old_logp: torch.Tensor  # [N, T]
    ref_logp: torch.Tensor | None  # [N, T]
    normalizer: float
    loss: float
    """The policy loss of this optimizer step (sum of its micro-batch losses)."""
    values: torch.Tensor | None = None  # [N, T] critic values (current for trained rows)
    old_values: torch.Tensor | None = None  # [N, T]
    returns: torch.Tensor | None = None  # [N, T]
    value_loss: float | None = None


@dataclass
class UpdateResult:
    advantages: torch.Tensor  # [N] or [N, T]
    skipped: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    t_logprobs: float = 0.0
    t_critic: float = 0.0
    stepped: list[bool] = field(default_factory=list)
    """Per optimizer step: taken (True) or skipped for a non-finite loss or gradient norm (False)."""
    nonfinite: list[dict] = field(default_factory=list)
    """What each skipped step saw (epoch, mini-batch, loss, grad norms)."""


@torch.no_grad()
def _table(fn, batch: TrainBatch, chunks: list[list[int]]) -> torch.Tensor:
    """``[N, T]`` float32 of ``fn(rows) -> [n, T']`` over the selected rows (others stay 0)."""
    out = torch.zeros(batch.completion_ids.shape, dtype=torch.float32)
    for chunk in chunks:
        x = fn(chunk)
        out[torch.tensor(chunk), :x.shape[1]] = x.float().cpu()
    return out


def _chunks(rows: list[int], mask: torch.Tensor, G: int, size: int) -> list[list[int]]:
    """Micro-batches of ``rows``: whole groups together where ``rows`` hold whole groups (their
    shared prompt is then computed once, see ``group_logprobs``), the remaining rows by length."""
    present = set(rows)
    whole = sorted({r // G for r in rows if all(r // G * G + j in present for j in range(G))})
    in_whole = set(whole)
    per = max(1, size // G)
    out = [[g * G + j for g in whole[i:i + per] for j in range(G)] for i in range(0, len(whole), per)]
    return out + micro_batches(_by_length([r for r in rows if r // G not in in_whole], mask), size)


def _is_groups(chunk: list[int], G: int) -> bool:
    return len(chunk) % G == 0 and all(chunk[i:i + G] == list(range(chunk[i], chunk[i] + G)) and chunk[i] % G == 0
                                       for i in range(0, len(chunk), G))


def _logprobs(model, batch: TrainBatch, chunk: list[int], G: int, temp: float, entropy: bool = False):
    with precision(model):
        if G > 1 and _is_groups(chunk, G):
            return group_logprobs(model, batch, chunk, G, temp, entropy=entropy)
        return sequence_logprobs(model, batch, chunk, temp, entropy=entropy)


def _by_length(rows: list[int], mask: torch.Tensor) -> list[int]:
    lengths = mask.sum(-1).tolist()
    return sorted(rows, key=lambda i: -lengths[i])  # similar lengths share a micro-batch: less padding


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> float:
    m = m.float()
    return float((x * m).sum() / m.sum().clamp(min=1))


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float | None:
    """``1 - Var(R - V) / Var(R)`` over the masked tokens (None when the returns do not vary)."""
    m = mask.bool()
    r, v = returns[m].double(), values[m].double()
    if r.numel() < 2 or float(r.var()) == 0.0:
        return None
    return float(1 - (r - v).var() / r.var())


def run_update(cfg, preset: AlgoPreset, learner: Learner, batch: TrainBatch, rewards: torch.Tensor,
               valid: torch.Tensor, G: int, step: int,
               on_update: Callable[[UpdateRecord], None] | None = None) -> UpdateResult:
    """Advantages and every optimizer step of one rollout batch; see the module docstring.

    ``batch.completion_mask`` must already be the loss mask. ``cfg`` supplies ``mu``,
    ``micro_batch_size``, ``temperature``, ``max_new_tokens`` and ``max_grad_norm``.
    """
    policy, critic = learner.policy, learner.critic
    N = len(batch)
    mask = batch.completion_mask
    every = _chunks(list(range(N)), mask, G, cfg.micro_batch_size)
    temp = cfg.temperature
    res = UpdateResult(advantages=torch.zeros(N), skipped=0)

    def logps(model):
        return lambda rows: _logprobs(model, batch, rows, G, temp)[0]

    t0 = time.time()
    if preset.reward_beta > 0:  # the KL is part of the reward: needed for every sequence, before advantages
        batch.old_logp = _table(logps(policy), batch, every)
        batch.ref_logp = _table(logps(learner.ref), batch, every)
    res.t_logprobs += time.time() - t0

    if critic is not None:
        t0 = time.time()
        with precision(policy):
            batch.old_values = _table(lambda rows: sequence_values(critic, batch, rows)[0], batch, every)  # [N, T]
        res.t_critic += time.time() - t0
        token_kl = preset.kl(batch.old_logp, batch.ref_logp) if preset.reward_beta > 0 else None
        adv, batch.returns = preset.critic_advantages(rewards, batch.old_values, mask, token_kl=token_kl)  # [N, T]
        skip = mask.sum(-1) == 0  # the value model learns from every sequence: skip only empty ones
    else:
        seq_kl = None
        if preset.reward_beta > 0:
            seq_kl = sequence_kl(batch.old_logp, batch.ref_logp, mask, preset.kl_estimator).view(-1, G)
        adv = preset.advantages(rewards.view(-1, G), valid.view(-1, G), seq_kl=seq_kl).view(-1)  # [N]
        skip = skippable_sequences(adv, mask, preset.loss_beta) | (mask.sum(-1) == 0)
    batch.advantages = res.advantages = adv
    rows_all = [i for i in range(N) if not skip[i]]
    res.skipped = N - len(rows_all)

    parts = [p.tolist() for p in torch.arange(N).tensor_split(max(1, min(preset.mini_batches or 1, N)))]
    trained_chunks = _chunks(rows_all, mask, G, cfg.micro_batch_size)
    t0 = time.time()
    if rows_all and batch.old_logp is None and (cfg.mu > 1 or len(parts) > 1):  # the policy moves between steps
        batch.old_logp = _table(logps(policy), batch, trained_chunks)
    if rows_all and batch.ref_logp is None and preset.loss_beta > 0:
        batch.ref_logp = _table(logps(learner.ref), batch, trained_chunks)
    res.t_logprobs += time.time() - t0

    sums = {"clip_low_frac": 0.0, "clip_high_frac": 0.0, "kl": 0.0, "ratio": 0.0, "tokens": 0.0, "entropy": 0.0}
    losses, v_losses, grad_norms, c_grad_norms, vf_clip = [], [], [], [], []
    for epoch in range(cfg.mu):
        last = epoch == cfg.mu - 1
        for mi, part in enumerate(parts):
            rows = [r for r in _by_length(part, mask) if not skip[r]]
            norm = step_normalizer(mask[part], preset.aggregation, cfg.max_new_tokens)
            learner.optimizer.zero_grad(set_to_none=True)
            if critic is not None:
                learner.critic_optimizer.zero_grad(set_to_none=True)
            rec = _Recorder(batch, N) if on_update else None
            loss_sum, v_sum, v_clip_tok = 0.0, 0.0, 0.0
            for chunk in _chunks(rows, mask, G, cfg.micro_batch_size):
                idx = torch.tensor(chunk)
                logp, cm, ent = _logprobs(policy, batch, chunk, G, temp, entropy=epoch == 0)
                T = logp.shape[1]
                dev = logp.device
                old = batch.old_logp[idx, :T].to(dev) if batch.old_logp is not None else logp.detach()
                ref = batch.ref_logp[idx, :T].to(dev) if batch.ref_logp is not None else None
                a = (adv[idx] if adv.dim() == 1 else adv[idx, :T]).to(dev)
                loss, m = preset.loss(logp, old, a, cm, ref_logp=ref, max_len=cfg.max_new_tokens, normalizer=norm)
                loss.backward()
                loss_sum += float(loss.detach())
                if last:
                    tok = float(m["tokens"])
                    for k in ("clip_low_frac", "clip_high_frac", "kl", "ratio"):
                        sums[k] += float(m[k]) * tok
                    sums["tokens"] += tok
                if ent is not None:
                    sums["entropy"] += float((ent * cm).sum())
                values = None
                if critic is not None:
                    tc = time.time()
                    with precision(policy):
                        values, _ = sequence_values(critic, batch, chunk)  # [n, T]
                    old_v, ret = batch.old_values[idx, :T].to(dev), batch.returns[idx, :T].to(dev)
                    v_loss, vm = preset.critic_loss(values, old_v, ret, cm, max_len=cfg.max_new_tokens, normalizer=norm)
                    v_loss.backward()
                    v_sum += float(v_loss.detach())
                    v_clip_tok += float(vm["vf_clip_frac"]) * float(cm.sum())
                    res.t_critic += time.time() - tc
                if rec is not None:
                    rec.add(idx, logp.detach(), old, values)
            if not rows:  # the gradient is exactly 0; AdamW still steps on it (momentum), as without skipping
                _zero_grads(policy, critic)
            gn = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm or float("inf"))
            cgn = None
            if critic is not None:
                cgn = torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.max_grad_norm or float("inf"))
            finite = all(math.isfinite(float(x)) for x in (loss_sum, gn, v_sum, 0.0 if cgn is None else cgn))
            res.stepped.append(finite)
            if finite:
                learner.optimizer.step()
                if critic is not None:
                    tc = time.time()
                    learner.critic_optimizer.step()
                    res.t_critic += time.time() - tc
            else:  # nothing non-finite reaches the weights (or the optimizer's moments)
                learner.optimizer.zero_grad(set_to_none=True)
                if critic is not None:
                    learner.critic_optimizer.zero_grad(set_to_none=True)
                res.nonfinite.append({"epoch": epoch, "mini_batch": mi, "loss": repr(loss_sum), "grad_norm": repr(float(gn)),
                                      **({"value_loss": repr(v_sum), "critic_grad_norm": repr(float(cgn))} if critic else {})})
            if last:
                grad_norms.append(float(gn))
                if critic is not None:
                    c_grad_norms.append(float(cgn))
            if last:
                losses.append(loss_sum)
                if critic is not None:
                    v_losses.append(v_sum)
                    vf_clip.append(v_clip_tok / max(1.0, float(mask[part].sum())))
            if rec is not None:
                on_update(rec.record(step, epoch, mi, part, rows, rewards, valid, norm, loss_sum,
                                     v_sum if critic is not None else None))

    tok_total = max(1.0, sums["tokens"])
    res.metrics = {
        "loss/policy": sum(losses) / len(losses), "loss/clip_low_frac": sums["clip_low_frac"] / tok_total,
        "loss/clip_high_frac": sums["clip_high_frac"] / tok_total, "loss/kl": sums["kl"] / tok_total,
        "loss/ratio": sums["ratio"] / tok_total if rows_all else 1.0,
        "policy/entropy": sums["entropy"] / tok_total if rows_all else None,
        "optim/grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
        "optim/skipped_steps": res.stepped.count(False),
    }
    if critic is not None:
        res.metrics.update({
            "loss/value": sum(v_losses) / len(v_losses),
            "critic/value_mean": _masked_mean(batch.old_values, mask),
            "critic/return_mean": _masked_mean(batch.returns, mask),
            "critic/explained_var": explained_variance(batch.old_values, batch.returns, mask),
            "critic/clip_frac": sum(vf_clip) / len(vf_clip),
            "critic/grad_norm": sum(c_grad_norms) / len(c_grad_norms) if c_grad_norms else 0.0,
        })
    return res


def _zero_grads(*modules) -> None:
    for module in modules:
        for p in module.parameters() if module is not None else ():
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)


class _Recorder:
    """Collects the current log-probs (and values) of one optimizer step for :class:`UpdateRecord`."""

    def __init__(self, batch: TrainBatch, N: int):
        self.batch = batch
        base = batch.old_logp.clone() if batch.old_logp is not None else torch.zeros(batch.completion_ids.shape)
        self.old, self.logp = base, base.clone()
        self.values = batch.old_values.clone() if batch.old_values is not None else None

    def add(self, idx, logp, old, values) -> None:
        T = logp.shape[1]
        self.old[idx, :T] = old.float().cpu()
        self.logp[idx, :T] = logp.float().cpu()
        if values is not None:
            self.values[idx, :T] = values.detach().float().cpu()

    def record(self, step, epoch, mi, part, rows, rewards, valid, norm, loss, v_loss) -> UpdateRecord:
        b = self.batch
        untrained = torch.ones(len(b), dtype=torch.bool)
        untrained[torch.tensor(rows, dtype=torch.long)] = False
        self.logp[untrained] = self.old[untrained]
        return UpdateRecord(step=step, epoch=epoch, mini_batch=mi, rows=list(part), trained=list(rows),
                            rewards=rewards.clone(), valid=valid.clone(), mask=b.completion_mask.clone(),
                            advantages=b.advantages.clone(), logp=self.logp, old_logp=self.old,
                            ref_logp=None if b.ref_logp is None else b.ref_logp.clone(), normalizer=norm, loss=loss,
                            values=self.values, old_values=None if b.old_values is None else b.old_values.clone(),
                            returns=None if b.returns is None else b.returns.clone(), value_loss=v_loss)
