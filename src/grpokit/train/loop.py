"""The GRPO training loop, written as if single-process, top to bottom.

    preset <- the algorithm's functions and constants (--algo; algo.get_preset, config.algo_preset)
    for step:
        prompts  <- B examples of the task (fixed, seeded order; resumable position)
        rollout  <- G completions per prompt; DAPO refills groups that cannot teach  (train.sampling)
        rewards  <- every reward function, weighted (+ the soft overlong penalty)   (rewards)
        adv      <- the preset's estimator, or GAE over the critic's values       (train.update)
        for mu epochs, mini-batches, micro-batches: preset.loss (+ value loss); backward; step
        log metrics and every group; checkpoint

Departures from the DeepSeekMath paper, all explicit config fields: without --algo, beta defaults
to 0 (no reference model; Dr. GRPO and DAPO found it unnecessary, and it halves memory), and the
learning rate and batch are sized for a 135M model on a laptop CPU. --algo grpo gives the paper's
beta 0.04.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import resource
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from grpokit import models, rewards as rw
from grpokit.evaluation.accuracy import EvalSettings, evaluate as evaluate_heldout
from grpokit.evaluation.answers import answer_extractor
from grpokit.algo import overlong_filter
from grpokit.config import TrainConfig, algo_preset, to_dict
from grpokit.evaluation.behaviour import behaviour_metrics, find_aha
from grpokit.rollout import HFEngine, SamplingParams, render
from grpokit.rollout import vllm as vllm_engine
from grpokit.rollout.multiturn import EpisodeEngine, attach_episodes, episode_metrics
from grpokit.tasks import load_task
from grpokit.algo.algorithm import Algorithm
from grpokit.records import Example, Scores
from grpokit.run_folder import RunWriter
from grpokit.run_folder import trackers
from grpokit.train import checkpoint as ckpt, determinism, dist, faults, policy, sharding
from grpokit.train.optim import adamw, check_schedule, lr_scheduler
from grpokit.train.batch import TrainBatch
from grpokit.train.critic import build_critic, count_params, load_critic
from grpokit.train.sampling import add_overlong_penalty, sample_groups
from grpokit.train.mismatch import Mismatch, resolve_correction
from grpokit.train.session import RunSession
from grpokit.train.update import Learner, UpdateRecord, run_update

log = logging.getLogger(__name__)


class DataStream:
    """Examples in a seeded order, epoch after epoch; ``state`` makes the position resumable."""

    def __init__(self, examples, seed: int):
        self.examples, self.seed, self.epoch, self.pos = examples, seed, 0, 0
        self._order()

    def _order(self):
        self.order = list(range(len(self.examples)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(self.order)

    def take(self, n: int):
        out = []
        while len(out) < n:
            if self.pos == len(self.order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order()
            out.append(self.examples[self.order[self.pos]])
            self.pos += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order()


def _mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    return m, (sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1)) ** 0.5


def peak_memory_mb(device: torch.device | None = None) -> float:
    """Peak memory of this process so far: CUDA allocations on a GPU, else the peak resident set size."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass
class StepContext:
    """What every step of a run uses, built once by :func:`train`."""

    cfg: TrainConfig
    preset: Algorithm
    learner: Learner
    engine: HFEngine
    scheduler: torch.optim.lr_scheduler.LRScheduler
    data: DataStream
    sampler: torch.Generator
    reward_specs: list
    params: SamplingParams
    prompt_text: Callable[[Example], str]
    session: RunSession
    correctness: str
    on_update: Callable[[UpdateRecord], None] | None = None
    correction: str = "none"
    """The sampler/learner mismatch correction (``tis``, ``mis``, ...; ``none`` when they agree)."""
    dist: dist.Dist = dataclasses.field(default_factory=dist.Dist)
    """This process's share of the step (data parallelism; one process: the whole step)."""
    skipped_in_a_row: int = 0
    """Optimizer steps skipped in a row for a non-finite loss or gradient norm."""

    @property
    def writer(self) -> RunWriter:
        return self.session.writer


def train(cfg: TrainConfig, *, on_update=None) -> Path:
    """Run the configured algorithm (``cfg.algo``); returns the run folder.

    ``on_update``, if given, receives a :class:`grpokit.train.update.UpdateRecord` after every
    optimizer step (the tensors its loss was computed from), for checks and debugging.
    """
    preset = algo_preset(cfg)  # a bad algorithm name or value fails before anything loads
    check_schedule(cfg.lr_schedule)
    trackers.check_installed(cfg.report_to)  # so does --report-to naming a tracker that is not installed
    d = dist.setup(cfg.device)  # under torchrun: this rank's place; else one process
    try:
        dist.check_supported(cfg, d)
        run_dir = Path(d.broadcast(cfg.out or f"runs/{Path(cfg.task).stem}-{time.strftime('%Y%m%d-%H%M%S')}"))
        session = dist.open_session(d, lambda: RunSession(run_dir, to_dict(cfg), resume=cfg.resume, override=cfg.override,
                                                          command="grpokit train", fixed=cfg.FIXED_ON_RESUME), run_dir)
        with session:  # any stop in here: the last completed step saved, a true status, the lock released
            _train(cfg, preset, session, on_update, d)
        # No rank tears the process group down while another still writes its last checkpoint: a
        # rank that left early once aborted at exit ("terminate called without an active exception").
        d.barrier()
    finally:
        dist.teardown(d)
    return run_dir


def _train(cfg: TrainConfig, preset: Algorithm, session: RunSession, on_update, d: dist.Dist) -> None:
    resume_from, run_dir = session.resume_from, session.dir
    if d.active:  # each rank on its own GPU; the saved config keeps the device the user gave
        cfg = dataclasses.replace(cfg, device=d.device(cfg.device))
    determinism.setup(threads=cfg.threads, deterministic=cfg.deterministic, seed=cfg.seed, device=cfg.device)

    task = load_task(cfg.task, **cfg.task_options)
    reward_specs = rw.build(cfg.rewards or task.rewards, timeout=cfg.reward_timeout)
    model, tokenizer = policy.load_policy(cfg, resume_from)  # + LoRA adapters, gradient checkpointing
    if not cfg.threads and not cfg.deterministic:
        determinism.auto_threads(model)
        if d.active and not cfg.device.startswith("cuda"):  # the ranks on this node share its cores
            torch.set_num_threads(max(1, torch.get_num_threads() // d.local_world))
    fsdp = d.active and cfg.sharding == "fsdp"
    compute = models.compute_dtype(model)

    def place(m):  # FSDP2: this rank keeps its shard of every weight (reference: frozen, sharded too)
        return sharding.shard(m, compute) if fsdp and m is not None else m

    # Each copy is sharded as soon as it exists, so at most one extra whole copy is held at a time.
    ref_model = place(policy.reference(model, cfg)) if preset.needs_reference else None  # LoRA: adapters off, no copy
    critic = None
    if preset.use_critic:  # PPO: the value model GRPO removes (a copy of the trunk: made before the policy is sharded)
        critic = build_critic(model, shared=cfg.critic_trunk == "shared")
        if resume_from:
            load_critic(critic, resume_from)
        critic = place(critic)
    model = place(model)
    engine_name = vllm_engine.resolve_engine(cfg.engine, next(model.parameters()).device)
    correction = resolve_correction(cfg.correction, engine_name, preset.policy_loss)
    if engine_name == "vllm" and (cfg.lora_rank or d.active):
        raise ValueError("--engine vllm does not yet take LoRA adapters or several processes (its weight sync "
                         "copies the full policy in one process): use --engine hf with --lora-rank or --nproc")
    if engine_name == "vllm":  # vLLM in this process, built from the model folder, filled from the policy
        engine = vllm_engine.VLLMEngine(model, tokenizer, str(resume_from) if resume_from else models.resolve(cfg.model),
                                        gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, seed=cfg.seed)
    else:
        engine = HFEngine(policy.engine_module(model), tokenizer)  # shares the policy's weights (adapters included)
    optimizer = adamw(policy.trainable(model), lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
    critic_optimizer = None
    if critic is not None:  # with its own optimizer and learning rate
        critic_optimizer = adamw(critic.parameters(), lr=preset.critic_lr, betas=cfg.adam_betas,
                                 weight_decay=cfg.weight_decay)
    scheduler = lr_scheduler(optimizer, cfg.steps, cfg.warmup_steps, cfg.lr_schedule)
    data = DataStream(task.train, cfg.seed)
    sampler = torch.Generator().manual_seed(cfg.seed)
    start_step = 0
    if resume_from:
        state = ckpt.load_state(resume_from)
        sharding.load_optimizer_state(model, optimizer, state["optimizer"])
        if critic_optimizer is not None:
            sharding.load_optimizer_state(critic, critic_optimizer, state["critic_optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.set_state(state["sampler"])
        data.load(state["data"])
        if ref_model is not None:
            if "ref_model" in state:  # the reference was reset to a later policy
                sharding.load_full_state_dict(ref_model, state["ref_model"])
            elif not policy.is_lora(model):  # the reference is still the starting model, not the checkpoint's
                ref_model = place(models.load(cfg.model, device=cfg.device, dtype=cfg.dtype, train=True)[0].eval()
                                  .requires_grad_(False))
        start_step = state["step"]

    def position() -> dict:  # where the run is besides weights and optimizer; sampling the next step moves it
        return {"sampler": sampler.get_state(), "data": data.state()}

    def save(step: int, at: dict | None) -> Path | None:
        """Rank 0 writes the checkpoint; under FSDP every rank calls this (gathering the full state is a collective)."""
        weights = sharding.full_state_dict(model) if fsdp else None  # None: save_pretrained reads the model
        opt_state = sharding.optimizer_state(model, optimizer)
        keep_ref = None
        if ref_model is not None and cfg.ref_reset_every:
            keep_ref = sharding.full_state_dict(ref_model) if fsdp else ref_model.state_dict()
        critic_weights = sharding.full_state_dict(critic) if fsdp and critic is not None else None
        critic_opt = sharding.optimizer_state(critic, critic_optimizer) if critic is not None else None
        if not d.main:
            return None
        state = {"step": step, "optimizer": opt_state, "scheduler": scheduler.state_dict(), **at}
        if critic_opt is not None:
            state["critic_optimizer"] = critic_opt
        return ckpt.save(run_dir, step, model, tokenizer, state, keep_ref, critic=critic,
                         merged=cfg.lora_rank > 0 and cfg.lora_save_merged, weights=weights,
                         critic_state=critic_weights)

    session.begin(start_step, cfg.steps, save, position,  # trackers: rank 0's, which logs for all
                  trackers=trackers.open_trackers(cfg.report_to, run_dir, to_dict(cfg)) if d.main else None,
                  save_is_collective=fsdp)
    writer = session.writer
    params = SamplingParams(cfg.temperature, cfg.top_p, cfg.max_new_tokens)

    def prompt_text(ex):
        return render(tokenizer, task.question_text(ex), cfg.template, cfg.system_prompt or None)

    if task.env is not None:  # a multi-turn task: each prompt runs as an episode with its environment
        engine = EpisodeEngine.for_task(engine, tokenizer, task, prompt_text)

    # k_values=(k,): pass@1, pass@k and cons@k at the full k; cons@1 and the small k add panels, not information.
    eval_settings = EvalSettings(k=cfg.eval_samples, k_values=(cfg.eval_samples,) if cfg.eval_samples > 0 else (),
                                 temperature=cfg.eval_temperature, top_p=cfg.eval_top_p,
                                 max_new_tokens=cfg.eval_max_new_tokens or cfg.max_new_tokens, template=cfg.template,
                                 system=cfg.system_prompt, seed=cfg.seed)
    eval_clock = {"start": time.time(), "spent": 0.0}  # eval_share = spent / wall time of this process

    def evaluate(step):
        """Held-out evaluation (greedy; plus pass@1 / cons@k over eval_samples), one eval.jsonl line (rank 0)."""
        if cfg.eval_size <= 0:
            return None
        with sharding.gathered(model):  # FSDP: every rank joins the all-gather; rank 0 evaluates alone
            if not d.main:
                return None
            t0 = time.time()
            engine.sync_weights(model)  # a separate sampler (vLLM) must see the latest optimizer step
            res = evaluate_heldout(engine, tokenizer, task, task.heldout[:cfg.eval_size], eval_settings)
            spent = time.time() - t0
        eval_clock["spent"] += spent
        rec = {**res.summary, "time/eval": spent, "eval_share": eval_clock["spent"] / (time.time() - eval_clock["start"])}
        writer.log_eval(step, rec)
        sampled = (f", pass@1 {rec['pass@1']:.1%} ± {rec['pass@1_se']:.1%}, cons@{cfg.eval_samples} "
                   f"{rec.get(f'cons@{cfg.eval_samples}', float('nan')):.1%}" if cfg.eval_samples else "")
        print(f"[eval] step {step}: held-out greedy accuracy {rec['greedy_acc']:.1%} ± {rec['greedy_acc_se']:.1%}"
              f"{sampled} (n={rec['n_questions']}, {spent:.0f}s" + (f", {rec['eval_share']:.0%} of the time so far)"
                                                                   if step > start_step else ")"), flush=True)
        return rec

    first_eval = evaluate(0) if start_step == 0 else None
    bar = None
    if cfg.progress and d.main:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start_step, desc=cfg.algo, dynamic_ncols=True)
    ctx = StepContext(cfg, preset, Learner(model, optimizer, ref_model, critic, critic_optimizer), engine, scheduler,
                      data, sampler, reward_specs, params, prompt_text, session, task.correctness, on_update,
                      correction=correction, dist=d)
    if d.active:  # this rank's rows of the noise one process would draw for the whole batch
        start, _ = d.share(cfg.prompts_per_step)
        engine.noise_rows = (start * cfg.group_size, cfg.prompts_per_step * cfg.group_size)
    try:
        while session.step < cfg.steps:
            step = session.step + 1
            metrics = one_step(ctx, step)  # the step is complete (weights, optimizer, data position) when it returns
            faults.point("updated", step)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                ev = evaluate(step)
                if ev:  # logged with the step so `grpokit report` shows eval time beside the phases
                    metrics["time/eval"] = ev["time/eval"]
            session.log(step, metrics)
            faults.point("logged", step)
            if ctx.skipped_in_a_row >= cfg.max_skipped_steps:
                raise NonFiniteUpdates(f"{ctx.skipped_in_a_row} optimizer steps in a row had a non-finite loss or "
                                       f"gradient norm and were skipped (max_skipped_steps={cfg.max_skipped_steps}); "
                                       f"see the nonfinite_update events in {run_dir / 'events.log'}. Lower the lr, "
                                       "check the rewards, or raise max_skipped_steps")
            if cfg.save_every and step % cfg.save_every == 0:
                session.save(step)
                faults.point("saved", step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward/mean']:.2f}", acc=f"{metrics['reward/correct_frac']:.2f}",
                                len=f"{metrics['completions/mean_length']:.0f}", s=f"{metrics['time/step']:.1f}")
            if d.max(int(session.should_stop(cfg.stop_after))):  # every rank stops at the same step
                break
    finally:
        if bar is not None:
            bar.close()
    if not session.end():
        return
    final_eval = evaluate(session.step)
    session.finished()
    if first_eval and final_eval:
        sampled = (f"; pass@1 over {cfg.eval_samples} samples: {first_eval['pass@1']:.1%} before -> "
                   f"{final_eval['pass@1']:.1%} after" if "pass@1" in first_eval and "pass@1" in final_eval else "")
        print(f"Held-out greedy accuracy: {first_eval['greedy_acc']:.1%} before -> {final_eval['greedy_acc']:.1%} after"
              f"{sampled} ({session.step} steps; evaluation took {final_eval['eval_share']:.0%} of the run's time). "
              f"Run folder: {run_dir}")


SUMMED_METRICS = ("loss/policy", "loss/value", "groups/skipped_sequences", "throughput/tokens_per_s", "throughput/completions_per_s")
"""Metrics of a rank's share that add up over ranks (the losses are already divided by the global normaliser)."""
MAXED_METRICS = ("memory/peak_mb", "time/step", "time/generate", "time/reward", "time/update", "time/logprobs",
                 "time/critic", "time/weight_sync", "time/prefill", "time/forward", "time/backward", "mismatch/ratio_max")
"""Metrics whose rank maximum is the step's (the slowest rank sets the pace)."""
SAME_METRICS = ("optim/lr", "optim/grad_norm", "optim/skipped_steps", "model/policy_params", "model/critic_params")
"""Metrics every rank computes alike (the gradients are summed before the norm is taken): rank 0's."""


class NonFiniteUpdates(RuntimeError):
    """Too many optimizer steps in a row were skipped for a non-finite loss or gradient norm."""


def one_step(ctx: StepContext, step: int) -> dict:
    """Sample and score, then (a block Ctrl-C does not cut) update, log the groups, and mark the step complete."""
    cfg, preset, learner, writer, d = ctx.cfg, ctx.preset, ctx.learner, ctx.writer, ctx.dist
    B, G = cfg.prompts_per_step // d.world, cfg.group_size  # this rank's share of the step's prompts
    t0 = time.time()
    prefill0 = getattr(ctx.engine, "prefill_s", None)  # the HF engine counts its prompts' forward time
    ctx.engine.sync_weights(policy.engine_module(learner.policy))
    data = dist.ShareOfStream(ctx.data, d) if d.active else ctx.data
    with sharding.gathered(learner.policy):  # FSDP: the engine decodes with the full weights (see train.sharding)
        got = sample_groups(ctx.engine, data, ctx.prompt_text, ctx.reward_specs, ctx.params, ctx.sampler, B, G,
                            max_rounds=cfg.dynamic_sampling_max_rounds)  # B' <= B groups, N = B'*G sequences
    if d.active:
        dist.catch_up_noise(d, ctx.engine, ctx.sampler)
    examples, rollout = got.examples, got.rollout
    scores = got.scores  # the reward contract made every NaN/inf unscorable (rewards.score)
    t_prefill = None if prefill0 is None else ctx.engine.prefill_s - prefill0
    cache = preset.overlong_cache_tokens(cfg.max_new_tokens)
    if cache is not None:  # DAPO's soft overlong punishment: one more reward term
        scores = add_overlong_penalty(scores, rollout.lengths, cfg.max_new_tokens, cache)
    t_rew = time.time()
    whole = dist.whole_step(d, got, scores)  # every rank's groups (one process: its own), for events and metrics
    for err in whole.errors:
        writer.log_event("reward_error", step=step, **err)
    nonfinite = {(e.get("round", 0), e["index"]) for e in whole.errors if e["problem"] == "non_finite"}
    if nonfinite and d.main:
        print(f"step {step}: {len(nonfinite)} non-finite reward(s) (NaN/inf) treated as unscorable; see events.log",
              file=sys.stderr, flush=True)
    faults.point("sampled", step)

    with ctx.session.critical():
        batch = TrainBatch.from_rollout(rollout)
        if preset.overlong_filter:  # DAPO: truncated completions leave the loss
            batch.completion_mask = overlong_filter(batch.completion_mask, rollout.truncated)
        if preset.use_critic:  # an unscorable completion has no return to regress on
            batch.completion_mask = batch.completion_mask * scores.valid.unsqueeze(-1).to(batch.completion_mask.dtype)
        learner.policy.train()
        mismatch = None
        if ctx.correction != "none" and rollout.sample_logp is not None:  # TIS/MIS of pi_learner_old / pi_sampler
            mismatch = Mismatch(ctx.correction, cfg.correction_cap, rollout.sample_logp, cfg.temperature, cfg.top_p,
                                truncated_support=getattr(ctx.engine, "logprobs_truncated", False))
        upd = run_update(cfg, preset, learner, batch, scores.total, scores.valid, G, step, ctx.on_update,
                         mismatch=mismatch, dist=d)
        lr = ctx.scheduler.get_last_lr()[0]
        with warnings.catch_warnings():  # the schedule follows training steps, also those with nothing to learn
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            ctx.scheduler.step()
        t_upd = time.time()
        if cfg.ref_reset_every and learner.ref is not None and step % cfg.ref_reset_every == 0:
            learner.ref.load_state_dict(learner.policy.state_dict())
        for rec in upd.nonfinite:
            writer.log_event("nonfinite_update", step=step, **rec)
            print(f"step {step}: non-finite loss or gradient norm ({rec}); optimizer step skipped", file=sys.stderr,
                  flush=True)
        for stepped in upd.stepped:
            ctx.skipped_in_a_row = 0 if stepped else ctx.skipped_in_a_row + 1

        # the step's metrics as one process computes them: the rollouts' from every rank's groups, the
        # update's per-token means weighted by each rank's loss tokens, the costs the slowest rank's
        update_costs = _update_and_cost_metrics(ctx, got, batch, upd, lr, t0, t_rew, t_upd, t_prefill)
        if d.active:
            update_costs = d.reduce_metrics(update_costs, upd.tokens, summed=SUMMED_METRICS, maxed=MAXED_METRICS,
                                            same=SAME_METRICS)
        metrics = {**_rollout_metrics(ctx, whole), **update_costs, "reward/nonfinite": len(nonfinite)}
        correct = _correct(whole.scores, ctx.reward_specs, ctx.correctness)
        is_correct = [v == 1.0 for v in correct] if correct is not None else None
        metrics.update(behaviour_metrics(whole.rollout.completions, lengths=whole.rollout.lengths.tolist(),
                                         correct=is_correct))
        for aha in find_aha(whole.rollout.completions, is_correct) if is_correct else []:
            writer.log_event("aha", step=step, **aha.as_dict())
        if getattr(whole.rollout, "episodes", None):  # multi-turn: tool-call and tool-error rates, turns, endings
            metrics.update(episode_metrics(whole.rollout.episodes, whole.scores.total.tolist()))
        groups = attach_episodes(_groups(examples, rollout, scores, batch, len(examples), G, preset.advantage,
                                         answer_extractor(ctx.reward_specs, ctx.correctness)), rollout)
        if d.active:  # every rank's groups, written by rank 0
            groups = [g for part in d.gather(groups) for g in part]
        writer.log_groups(step, groups)
        ctx.session.completed(step, metrics)
    return metrics


def _correct(scores: Scores, reward_specs, correctness: str):
    return scores.per_fn.get(correctness, scores.per_fn.get(reward_specs[0].name) if reward_specs else None)


def _rollout_metrics(ctx: StepContext, whole) -> dict:
    """Rewards, groups and completions of the step's whole batch (``whole``: every rank's groups)."""
    cfg, rollout, scores = ctx.cfg, whole.rollout, whole.scores
    G, Bk = cfg.group_size, len(whole.examples)
    lengths = rollout.lengths.float()
    zero_std = (scores.total.view(Bk, G).std(1) == 0) if G > 1 else torch.ones(Bk, dtype=torch.bool)
    correct = _correct(scores, ctx.reward_specs, ctx.correctness)
    metrics = {
        "reward/mean": float(scores.total.mean()), "reward/std": float(scores.total.std()) if len(scores.total) > 1 else 0.0,
        "reward/unscorable_frac": float((~scores.valid).float().mean()), "reward/errors": len(whole.errors),
        "reward/correct_frac": float(sum(1 for v in (correct or []) if v == 1.0) / max(1, len(correct or []))),
        "groups/zero_std_frac": float(zero_std.float().mean()),
        "completions/mean_length": float(lengths.mean()), "completions/max_length": int(lengths.max()),
        "completions/truncated_frac": float(rollout.truncated.float().mean()),
    }
    if cfg.dynamic_sampling_max_rounds:
        metrics.update({"groups/kept": Bk, "groups/dropped": whole.dropped, "groups/sampling_rounds": whole.rounds,
                        "groups/extra_generations": whole.generated - cfg.prompts_per_step * G})
    for name, vals in scores.per_fn.items():
        m_, s_ = _mean_std(vals)
        metrics[f"reward/{name}/mean"], metrics[f"reward/{name}/std"] = m_, s_
    return metrics


def _update_and_cost_metrics(ctx: StepContext, got, batch: TrainBatch, upd, lr: float, t0: float, t_rew: float,
                             t_upd: float, t_prefill: float | None) -> dict:
    """The update's metrics and this process's costs (its time, throughput and memory)."""
    learner = ctx.learner
    return {
        "groups/skipped_sequences": upd.skipped, **upd.metrics, "optim/lr": lr,
        "time/generate": got.t_generate, "time/reward": got.t_reward, "time/update": t_upd - t_rew,
        "time/prefill": t_prefill,  # part of time/generate (None: the engine does not report it)
        "time/logprobs": upd.t_logprobs, "time/weight_sync": getattr(ctx.engine, "last_sync_s", None),  # None: HF shares the weights
        "time/critic": upd.t_critic, "time/step": t_upd - t0,
        "time/forward": upd.t_forward, "time/backward": upd.t_backward,  # the policy's, part of time/update
        "throughput/tokens_per_s": float(got.rollout.lengths.float().sum()) / (t_upd - t0),
        "throughput/completions_per_s": len(batch) / (t_upd - t0),
        "model/policy_params": count_params(learner.policy), "model/critic_params": count_params(learner.critic),
        "memory/peak_mb": peak_memory_mb(next(learner.policy.parameters()).device),
    }


def _groups(examples, rollout, scores, batch, B, G, estimator, extract=None) -> list[dict]:
    adv = batch.advantages
    if adv.dim() == 2:  # per-token (critic): one number per completion, the mean over its loss tokens
        m = batch.completion_mask.float()
        adv = (adv * m).sum(-1) / m.sum(-1).clamp(min=1)
    groups = []
    for b, ex in enumerate(examples):
        rows = range(b * G, (b + 1) * G)
        totals = [float(scores.total[i]) for i in rows]
        valid = [bool(scores.valid[i]) for i in rows]
        vt = [t for t, v in zip(totals, valid) if v]
        mean, std = _mean_std(vt)
        groups.append({
            "prompt_id": ex.id, "question": ex.question, "prompt": rollout.prompts[b * G], "answer": ex.answer,
            "baseline": mean, "reward_std": std, "estimator": estimator,
            "completions": [{
                "text": rollout.completions[i], "length": int(rollout.lengths[i]), "truncated": bool(rollout.truncated[i]),
                "rewards": {name: vals[i] for name, vals in scores.per_fn.items()}, "reward": totals[i - b * G],
                "valid": valid[i - b * G], "advantage": float(adv[i]),
                "extracted": extract(rollout.completions[i]) if extract else None,
                **({"value": float(batch.old_values[i, 0])} if batch.old_values is not None else {}),
            } for i in rows],
        })
    return groups
