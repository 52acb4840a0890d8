"""One rollout batch -> optimizer steps, for every preset (critic on or off) without branching on names.

    old_and_ref_logprobs  old_logp, ref_logp: forward passes without gradient, only where the preset needs them
    _advantages           preset.advantages(rewards), or old_values (critic) -> preset.critic_advantages
    rows                  all sequences but those that cannot teach (skippable_sequences; none with a critic)
    for mu epochs:
        for each of the mini_batches parts of the N sequences:        (one optimizer step each)
            for each micro-batch of its rows: _policy_micro_step (+ _critic_micro_step): loss, backward
            _optimizer_step: clip, step the policy (and the critic); skipped when anything is non-finite
    metrics               accumulate in _Sums (the last epoch's; entropy: the first)

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
from grpokit.algo.algorithm import Algorithm
from grpokit.train.dist import Dist
from grpokit.train.policy import is_checkpointing
from grpokit.train.sharding import gathered, is_sharded, pad_micro_steps
from grpokit.train.batch import TrainBatch, group_logprobs, micro_batches, sequence_logprobs, sequence_values


@dataclass
class Learner:
    """What a run trains: the policy and its optimizer, an optional frozen reference, an optional critic."""

    policy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ref: torch.nn.Module | None = None
    critic: torch.nn.Module | None = None
    critic_optimizer: torch.optim.Optimizer | None = None

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.critic_optimizer is not None:
            self.critic_optimizer.zero_grad(set_to_none=True)


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
    t_forward: float = 0.0
    """Seconds in the policy's forward passes and losses of the micro-steps (``t_logprobs`` excluded)."""
    t_backward: float = 0.0
    """Seconds in their backward passes."""
    stepped: list[bool] = field(default_factory=list)
    """Per optimizer step: taken (True) or skipped for a non-finite loss or gradient norm (False)."""
    nonfinite: list[dict] = field(default_factory=list)
    """What each skipped step saw (epoch, mini-batch, loss, grad norms)."""
    tokens: float = 0.0
    """Loss tokens of the trained sequences (last epoch): what the per-token metrics average over."""


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
    # The shared-prompt path keeps the prompt's KV cache in the graph; a checkpointed forward drops
    # caches, so it computes each sequence whole (same values and gradients, the prompt G times).
    # So does an FSDP-sharded policy under gradient: one forward per micro-step on every rank.
    one_pass = is_checkpointing(model) or (is_sharded(model) and torch.is_grad_enabled())
    with precision(model):
        if G > 1 and _is_groups(chunk, G) and not one_pass:
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


def run_update(cfg, preset: Algorithm, learner: Learner, batch: TrainBatch, rewards: torch.Tensor,
               valid: torch.Tensor, G: int, step: int,
               on_update: Callable[[UpdateRecord], None] | None = None, mismatch=None,
               dist: Dist | None = None) -> UpdateResult:
    """Advantages and every optimizer step of one rollout batch; see the module docstring.

    ``batch.completion_mask`` must already be the loss mask. ``cfg`` supplies ``mu``,
    ``micro_batch_size``, ``temperature``, ``max_new_tokens`` and ``max_grad_norm``.
    ``mismatch`` (a :class:`grpokit.train.mismatch.Mismatch`, vLLM's default) reweights each
    micro-batch's advantages by the sampler/learner importance weight and adds ``mismatch/*`` metrics.
    With ``dist`` (data parallelism) the batch is this rank's share: advantages, normalisers,
    gradients and losses cover every rank's (:mod:`grpokit.train.dist`).
    """
    d = dist or Dist()
    u = _Update(cfg, preset, learner, batch, G, UpdateResult(advantages=torch.zeros(len(batch)), skipped=0), d,
                mismatch)
    N, mask, size = len(batch), batch.completion_mask, cfg.micro_batch_size
    if preset.reward_beta > 0:  # the KL is part of the reward: needed for every sequence, before advantages
        old_and_ref_logprobs(u, _chunks(list(range(N)), mask, G, size), old=True, ref=True)
    skip = _advantages(u, rewards, valid)
    trained = [i for i in range(N) if not skip[i]]
    u.res.skipped = N - len(trained)
    parts = _parts(N, preset.mini_batches or 1, d)
    if trained or is_sharded(learner.policy):  # (FSDP: every rank joins the all-gathers, rows or not)
        old_and_ref_logprobs(u, _chunks(trained, mask, G, size), old=cfg.mu > 1 or len(parts) > 1,  # the policy moves
                             ref=preset.loss_beta > 0)
        if mismatch is not None:  # learner log-probs under the sampler's top-p/top-k, if it truncates
            mismatch.prepare(learner.policy, batch, _chunks(trained, mask, G, size))

    sums = _Sums()
    for epoch in range(cfg.mu):
        last = epoch == cfg.mu - 1  # metrics describe the last epoch (entropy: the first)
        for mi, part in enumerate(parts):
            rows = [r for r in _by_length(part, mask) if not skip[r]]
            norm = _normalizer(mask[part], preset.aggregation, cfg.max_new_tokens, d)
            learner.zero_grad()
            rec = _Recorder(batch, N) if on_update else None
            loss, v_loss, v_clip_tok = 0.0, 0.0, 0.0
            for chunk in pad_micro_steps(_chunks(rows, mask, G, size), d, learner.policy):
                if chunk is None:  # FSDP: this rank has fewer micro-batches than another; it joins with a zero loss
                    _idle_micro_step(u)
                    continue
                mb = _policy_micro_step(u, chunk, norm, entropy=epoch == 0)
                loss += mb.loss
                sums.add_micro(mb, last)
                values = None
                if learner.critic is not None:
                    values, vl, vc = _critic_micro_step(u, mb, norm)
                    v_loss, v_clip_tok = v_loss + vl, v_clip_tok + vc
                if rec is not None:
                    rec.add(mb.idx, mb.logp, mb.old, values)
            gn, cgn = _optimizer_step(u, rows, loss, v_loss, epoch, mi)
            if last:
                sums.add_step(loss, gn, v_loss, cgn, v_clip_tok / max(1.0, float(mask[part].sum())))
            if rec is not None:
                on_update(rec.record(step, epoch, mi, part, rows, rewards, valid, norm, loss,
                                     v_loss if learner.critic is not None else None))
    u.res.metrics = sums.metrics(bool(trained), batch if learner.critic is not None else None,
                                 u.res.stepped.count(False))
    u.res.tokens = sums.tokens
    if mismatch is not None:
        u.res.metrics.update(mismatch.metrics(mask))
    return u.res


@dataclass
class _Update:
    """The fixed inputs of one :func:`run_update` call, shared by its micro-steps."""

    cfg: object
    preset: Algorithm
    learner: Learner
    batch: TrainBatch
    G: int
    res: UpdateResult
    dist: Dist
    mismatch: object = None
    """A :class:`grpokit.train.mismatch.Mismatch` (TIS/MIS weights), or None."""


def _parts(N: int, k: int, d: Dist) -> list[list[int]]:
    """This rank's rows of each of the ``k`` mini-batches of the whole batch (``W * N`` rows,
    rank-major), so a mini-batch is the same set of sequences on any number of ranks."""
    total = N * d.world
    first = d.rank * N
    return [[r - first for r in p.tolist() if first <= r < first + N]
            for p in torch.arange(total).tensor_split(max(1, min(k, total)))]


def _normalizer(mask: torch.Tensor, aggregation: str, max_len: int, d: Dist) -> float:
    """:func:`step_normalizer` of the mini-batch's rows on every rank together."""
    if not d.active:
        return step_normalizer(mask, aggregation, max_len)
    n, tokens = d.sum(float(mask.shape[0])), d.sum(float(mask.sum()))
    return step_normalizer(torch.ones(int(n), 1) if aggregation != "token-mean" else
                           torch.full((1, 1), max(1.0, tokens)), aggregation, max_len)


def old_and_ref_logprobs(u: _Update, chunks: list[list[int]], *, old: bool, ref: bool) -> None:
    """Fill ``batch.old_logp`` (the policy before this update) and ``batch.ref_logp`` (the frozen
    reference), each ``[N, T]`` over the rows of ``chunks``, where asked for and not there yet.

    ``old_logp`` is needed when the KL is a reward term (every row, before the advantages) and when
    the policy moves within the update (``mu > 1`` or several mini-batches: the ratio's denominator);
    otherwise the loss uses the current log-probs, detached. ``ref_logp`` is needed for any KL term.
    """
    t0 = time.time()
    b, learner = u.batch, u.learner
    for wanted, name, model in ((old, "old_logp", learner.policy), (ref, "ref_logp", learner.ref)):
        if wanted and getattr(b, name) is None:
            with gathered(model):  # FSDP: full weights for any number of passes (see train.sharding)
                setattr(b, name, _table(lambda rows, m=model: _logprobs(m, b, rows, u.G, u.cfg.temperature)[0], b,
                                        chunks))
    u.res.t_logprobs += time.time() - t0


def _advantages(u: _Update, rewards: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``batch.advantages`` (``[N]``, or ``[N, T]`` with a critic, which also fills ``old_values``
    and ``returns``); returns the ``[N]`` bool mask of sequences that cannot teach (not trained)."""
    preset, batch, G, critic = u.preset, u.batch, u.G, u.learner.critic
    mask = batch.completion_mask
    if critic is not None:
        t0 = time.time()
        every = _chunks(list(range(len(batch))), mask, G, u.cfg.micro_batch_size)
        with precision(u.learner.policy), gathered(critic):
            batch.old_values = _table(lambda rows: sequence_values(critic, batch, rows)[0], batch, every)  # [N, T]
        u.res.t_critic += time.time() - t0
        token_kl = preset.kl(batch.old_logp, batch.ref_logp) if preset.reward_beta > 0 else None
        adv, batch.returns = critic_advantages_of_all_ranks(preset, u.dist, rewards, batch.old_values, mask,
                                                            token_kl)  # [N, T] each
        skip = mask.sum(-1) == 0  # the value model learns from every sequence: skip only empty ones
    else:
        seq_kl = None
        if preset.reward_beta > 0:
            seq_kl = sequence_kl(batch.old_logp, batch.ref_logp, mask, preset.kl_estimator).view(-1, G)
        d = u.dist  # the estimator sees every rank's groups (batch statistics), then keeps this rank's rows
        everyone = (d.cat(rewards.view(-1, G)), d.cat(valid.view(-1, G)), None if seq_kl is None else d.cat(seq_kl))
        N = len(batch)
        adv = preset.advantages(everyone[0], everyone[1], seq_kl=everyone[2]).reshape(-1)[d.rank * N:(d.rank + 1) * N]
        skip = skippable_sequences(adv, mask, preset.loss_beta) | (mask.sum(-1) == 0)
    batch.advantages = u.res.advantages = adv
    return skip


def critic_advantages_of_all_ranks(preset: Algorithm, d: Dist, rewards: torch.Tensor, values: torch.Tensor,
                                   mask: torch.Tensor, token_kl: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``preset.critic_advantages`` over every rank's sequences, this rank's rows back: the whitening
    of GAE's advantages is a statistic of the whole batch. Each rank's ``[N, T]`` tensors are padded
    to the longest ``T`` of any rank first (masked positions: GAE and whitening ignore them)."""
    if not d.active:
        return preset.critic_advantages(rewards, values, mask, token_kl=token_kl)
    N, T = mask.shape
    Tmax = d.max(T)

    def everyone(x):  # [N, T] -> [W*N, Tmax]
        return None if x is None else d.cat(torch.cat([x, x.new_zeros(N, Tmax - T)], 1))

    adv, returns = preset.critic_advantages(d.cat(rewards), everyone(values), everyone(mask), token_kl=everyone(token_kl))
    rows = slice(d.rank * N, (d.rank + 1) * N)
    return adv[rows, :T], returns[rows, :T]


@dataclass
class _Micro:
    """One policy micro-step: its rows, detached log-probs, the loss terms' inputs and outputs."""

    idx: torch.Tensor  # [n]
    logp: torch.Tensor  # [n, T] detached
    old: torch.Tensor  # [n, T]
    mask: torch.Tensor  # [n, T]
    loss: float
    stats: dict
    entropy: float | None


def _policy_micro_step(u: _Update, chunk: list[int], norm: float, *, entropy: bool) -> _Micro:
    """The preset's policy loss on the rows of ``chunk``; backward (gradients accumulate)."""
    b, cfg = u.batch, u.cfg
    t0 = time.perf_counter()
    idx = torch.tensor(chunk)
    logp, cm, ent = _logprobs(u.learner.policy, b, chunk, u.G, cfg.temperature, entropy=entropy)
    T, dev = logp.shape[1], logp.device
    old = b.old_logp[idx, :T].to(dev) if b.old_logp is not None else logp.detach()
    ref = b.ref_logp[idx, :T].to(dev) if b.ref_logp is not None else None
    adv = b.advantages
    a = (adv[idx] if adv.dim() == 1 else adv[idx, :T]).to(dev)
    if u.mismatch is not None:  # importance weight pi_learner_old / pi_sampler (TIS/MIS)
        a = u.mismatch.reweight(idx, a, old, cm)
    loss, m = u.preset.loss(logp, old, a, cm, ref_logp=ref, max_len=cfg.max_new_tokens, normalizer=norm)
    t1 = time.perf_counter()
    loss.backward()
    u.res.t_forward += t1 - t0
    u.res.t_backward += time.perf_counter() - t1
    return _Micro(idx, logp.detach(), old, cm, float(loss.detach()), m,
                  float((ent * cm).sum()) if ent is not None else None)


def _idle_micro_step(u: _Update) -> None:
    """A forward/backward with zero loss (one sequence): an FSDP rank with fewer micro-batches than
    another still takes part in every all-gather and reduce-scatter; its gradient gains exactly 0."""
    logp, _, _ = _logprobs(u.learner.policy, u.batch, [0], u.G, u.cfg.temperature)
    (logp.sum() * 0.0).backward()
    if u.learner.critic is not None:
        with precision(u.learner.policy):
            values, _ = sequence_values(u.learner.critic, u.batch, [0])
        (values.sum() * 0.0).backward()


def _critic_micro_step(u: _Update, mb: _Micro, norm: float) -> tuple[torch.Tensor, float, float]:
    """The preset's value loss on the rows of ``mb``; backward. Returns the values ``[n, T]``, the
    loss and the number of tokens whose value was clipped."""
    t0 = time.time()
    b = u.batch
    with precision(u.learner.policy):
        values, _ = sequence_values(u.learner.critic, b, mb.idx.tolist())  # [n, T]
    T, dev = mb.logp.shape[1], mb.logp.device
    old_v, ret = b.old_values[mb.idx, :T].to(dev), b.returns[mb.idx, :T].to(dev)
    v_loss, vm = u.preset.critic_loss(values, old_v, ret, mb.mask, max_len=u.cfg.max_new_tokens, normalizer=norm)
    v_loss.backward()
    u.res.t_critic += time.time() - t0
    return values, float(v_loss.detach()), float(vm["vf_clip_frac"]) * float(mb.mask.sum())


def _optimizer_step(u: _Update, rows: list[int], loss: float, v_loss: float, epoch: int, mi: int):
    """Clip and step the policy (and the critic); skip both when anything is non-finite, so no NaN
    or inf reaches the weights or the optimizer's moments. Returns the grad norms."""
    learner, max_norm = u.learner, u.cfg.max_grad_norm or float("inf")
    critic = learner.critic
    if not rows:  # the gradient is exactly 0; AdamW still steps on it (momentum), as without skipping
        _zero_grads(learner.policy, critic)
    if not is_sharded(learner.policy):  # (FSDP reduce-scattered the gradients in backward)
        u.dist.sum_grads(learner.policy.parameters())  # every rank's loss was divided by the global normaliser
    if critic is not None and not is_sharded(critic):
        u.dist.sum_grads(critic.parameters())
    loss, v_loss = u.dist.sum(loss), u.dist.sum(v_loss)
    gn = _full(torch.nn.utils.clip_grad_norm_(learner.policy.parameters(), max_norm))  # FSDP: over all shards
    cgn = _full(torch.nn.utils.clip_grad_norm_(critic.parameters(), max_norm)) if critic is not None else None
    finite = all(math.isfinite(float(x)) for x in (loss, gn, v_loss, 0.0 if cgn is None else cgn))
    u.res.stepped.append(finite)
    if finite:
        learner.optimizer.step()
        if critic is not None:
            t0 = time.time()
            learner.critic_optimizer.step()
            u.res.t_critic += time.time() - t0
    else:
        learner.zero_grad()
        seen = {"epoch": epoch, "mini_batch": mi, "loss": repr(loss), "grad_norm": repr(float(gn))}
        if critic is not None:
            seen.update(value_loss=repr(v_loss), critic_grad_norm=repr(float(cgn)))
        u.res.nonfinite.append(seen)
    return float(gn), None if cgn is None else float(cgn)


def _full(norm: torch.Tensor) -> torch.Tensor:
    """A gradient norm as a plain tensor (FSDP returns a replicated DTensor)."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


@dataclass
class _Sums:
    """The metrics of one update as they accumulate: token-weighted loss statistics of the last
    epoch, the entropy of the first, one loss and grad norm per optimizer step of the last epoch."""

    clip_low_frac: float = 0.0
    clip_high_frac: float = 0.0
    kl: float = 0.0
    ratio: float = 0.0
    tokens: float = 0.0
    entropy: float = 0.0
    losses: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    v_losses: list = field(default_factory=list)
    c_grad_norms: list = field(default_factory=list)
    vf_clip: list = field(default_factory=list)

    def add_micro(self, mb: _Micro, last: bool) -> None:
        if last:
            tok = float(mb.stats["tokens"])
            for k in ("clip_low_frac", "clip_high_frac", "kl", "ratio"):
                setattr(self, k, getattr(self, k) + float(mb.stats[k]) * tok)
            self.tokens += tok
        if mb.entropy is not None:
            self.entropy += mb.entropy

    def add_step(self, loss: float, gn: float, v_loss: float, cgn: float | None, vf_clip: float) -> None:
        self.grad_norms.append(gn)
        self.losses.append(loss)
        if cgn is not None:
            self.c_grad_norms.append(cgn)
            self.v_losses.append(v_loss)
            self.vf_clip.append(vf_clip)

    def metrics(self, trained: bool, critic_batch: TrainBatch | None, skipped_steps: int) -> dict:
        tok = max(1.0, self.tokens)
        out = {
            "loss/policy": sum(self.losses) / len(self.losses), "loss/clip_low_frac": self.clip_low_frac / tok,
            "loss/clip_high_frac": self.clip_high_frac / tok, "loss/kl": self.kl / tok,
            "loss/ratio": self.ratio / tok if trained else 1.0,
            "policy/entropy": self.entropy / tok if trained else None,
            "optim/grad_norm": sum(self.grad_norms) / len(self.grad_norms) if self.grad_norms else 0.0,
            "optim/skipped_steps": skipped_steps,
        }
        if critic_batch is not None:
            b, mask = critic_batch, critic_batch.completion_mask
            out.update({
                "loss/value": sum(self.v_losses) / len(self.v_losses),
                "critic/value_mean": _masked_mean(b.old_values, mask),
                "critic/return_mean": _masked_mean(b.returns, mask),
                "critic/explained_var": explained_variance(b.old_values, b.returns, mask),
                "critic/clip_frac": sum(self.vf_clip) / len(self.vf_clip),
                "critic/grad_norm": sum(self.c_grad_norms) / len(self.c_grad_norms) if self.c_grad_norms else 0.0,
            })
        return out


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
