"""Whole episodes, token in / token out: the model acts, the environment answers, until the episode ends.

    for each of the B*G episodes: env = make_env(); start = env.reset(example); context = render(start)
    for turn in 1..max_turns:
        all live episodes generate their next assistant turn in ONE batched engine call (from token ids)
        each turn is parsed for tool calls; env.step(turn) answers (tool results / observations)
        the episode ends when: the model calls no tool (or the env says done), the turn was cut by
            the per-turn limit (max_new_tokens) or the episode budget (max_episode_tokens), or
            max_turns turns were taken; otherwise the env's tokens are appended and it goes on

The completion of an episode is every token after its first context, in order: the model's turns
and the environment's spans between them. ``completion_mask`` is 1 on the model's tokens (each turn
up to and including its stop token) and 0 on the environment's, so the loss and the KL see only what
the policy sampled while attention still sees everything (``train.batch`` computes log-probs over
the whole completion and masks afterwards). The model's ids are the sampler's ids, never decoded and
re-encoded; the environment's spans are encoded once from the chat template (``envs.chat.env_tail``).

The reward functions grade the model's final message (``Rollout.completions``, verifiers'
``completion[-1]`` convention); the whole conversation is in :attr:`EpisodeRollout.transcripts`.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from grpokit.envs.chat import env_tail, render_start, template_handles_tools
from grpokit.envs.parsers import parse_turn
from grpokit.records import Example, Rollout
from grpokit.rollout.base import SamplingParams

log = logging.getLogger(__name__)

ENDS = ("no_tool_call", "env_done", "max_turns", "max_episode_tokens", "turn_truncated", "env_error")
"""Why an episode ended (``Episode.end``)."""


@dataclass(frozen=True)
class EpisodeLimits:
    """How long an episode may run.

    Attributes:
        max_turns: model turns per episode (a turn that still calls a tool at the limit ends it).
        max_episode_tokens: completion tokens per episode, the model's and the environment's together;
            the per-turn cap is the sampling params' ``max_new_tokens``.
    """

    max_turns: int = 4
    max_episode_tokens: int = 512


@dataclass
class Episode:
    """One finished episode: the conversation, where each span sits in the completion, and counts."""

    messages: list[dict[str, Any]]
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    """``(kind, start, end)`` in completion token positions; kind ``model`` or ``env``."""
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    malformed_calls: int = 0
    end: str = ""
    final: str = ""
    """The model's last message (what the reward functions grade)."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "spans": [list(s) for s in self.spans], "turns": self.turns,
                "tool_calls": self.tool_calls, "tool_errors": self.tool_errors,
                "malformed_calls": self.malformed_calls, "end": self.end, "error": self.error}


@dataclass
class EpisodeRollout(Rollout):
    """A :class:`Rollout` of episodes: ``completion_mask`` has 0-holes on environment tokens."""

    episodes: list[Episode] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)


def episode_metrics(episodes: list[Episode], rewards: list[float] | None = None) -> dict[str, float]:
    """``episodes/...`` metrics: tool-call rate, tool-error rate, turns per episode, how episodes ended."""
    n = max(1, len(episodes))
    calls = sum(e.tool_calls for e in episodes)
    out = {"episodes/turns_mean": sum(e.turns for e in episodes) / n,
           "episodes/tool_call_rate": sum(e.tool_calls > 0 for e in episodes) / n,
           "episodes/tool_calls_mean": calls / n,
           "episodes/tool_error_rate": sum(e.tool_errors for e in episodes) / max(1, calls),
           "episodes/malformed_calls": float(sum(e.malformed_calls for e in episodes))}
    for end in ENDS:
        out[f"episodes/end/{end}"] = sum(e.end == end for e in episodes) / n
    if rewards is not None:
        by_turns: dict[int, list[float]] = {}
        for e, r in zip(episodes, rewards):
            by_turns.setdefault(e.turns, []).append(r)
        for t, rs in sorted(by_turns.items()):
            out[f"episodes/reward_at_turns/{t}"] = sum(rs) / len(rs)
    return out


class _Live:
    """The growing state of one episode."""

    def __init__(self, env, start, prompt_ids: list[int]):
        self.env, self.tools = env, start.tools
        self.history = list(start.messages)
        self.prompt_ids = prompt_ids
        self.ids: list[int] = []
        self.mask: list[int] = []
        self.logp: list[float] = []
        self.ep = Episode(messages=list(start.messages))
        self.truncated = False

    def add(self, kind: str, ids: list[int], logp: list[float] | None = None) -> None:
        start = len(self.ids)
        self.ids += ids
        self.mask += [1 if kind == "model" else 0] * len(ids)
        self.logp += logp if logp is not None else [0.0] * len(ids)
        self.ep.spans.append((kind, start, len(self.ids)))

    def finish(self, end: str) -> None:
        self.ep.end = end


def run_episodes(engine, tokenizer, make_env: Callable[[], Any], examples: list[Example], n: int,
                 params: SamplingParams, limits: EpisodeLimits = EpisodeLimits(),
                 generator: torch.Generator | None = None) -> EpisodeRollout:
    """``n`` episodes per example (the ``n`` of an example adjacent), every turn batched over live episodes.

    Args:
        engine: has ``generate_ids(rows, n, params, generator) -> Rollout``, ``stop_ids`` and ``pad_id``
            (``grpokit.rollout.hf.HFEngine`` or ``grpokit.rollout.vllm.VLLMEngine``).
        make_env: a new environment per episode (``grpokit.envs.Environment``).
        params: sampling; ``max_new_tokens`` caps each turn.
    """
    native = template_handles_tools(tokenizer)
    stop_ids = set(engine.stop_ids)
    eps: list[_Live] = []
    for ex in examples:
        for _ in range(n):
            env = make_env()
            start = env.reset(ex)
            text = render_start(tokenizer, start.messages, start.tools, native)
            eps.append(_Live(env, start, tokenizer(text, add_special_tokens=False)["input_ids"]))
    for b in range(len(examples)):  # the trainer computes a group's shared prompt once (train.batch.group_logprobs)
        if any(eps[b * n + g].prompt_ids != eps[b * n].prompt_ids for g in range(1, n)):
            raise ValueError(f"the environment's reset gave the {n} episodes of example {examples[b].id!r} different "
                             "first contexts; GRPO compares episodes of one prompt, so reset must depend on the row only "
                             "(put what varies into the environment's first answer)")
    prompts = [tokenizer.decode(e.prompt_ids, skip_special_tokens=False) for e in eps]
    live = list(range(len(eps)))
    for turn in range(limits.max_turns):
        if not live:
            break
        budgets = [limits.max_episode_tokens - len(eps[i].ids) for i in live]
        cap = max(1, min(params.max_new_tokens, max(budgets)))
        r = engine.generate_ids([eps[i].prompt_ids + eps[i].ids for i in live], 1, replace(params, max_new_tokens=cap),
                                generator)
        still = []
        for j, i in enumerate(live):
            e = eps[i]
            m = r.completion_mask[j].bool()
            toks = r.completion_ids[j][m].tolist()
            lps = r.sample_logp[j][m].tolist() if r.sample_logp is not None else None
            cut = len(toks) > budgets[j]
            if cut:
                toks, lps = toks[:budgets[j]], None if lps is None else lps[:budgets[j]]
            e.add("model", toks, lps)
            text = tokenizer.decode(toks, skip_special_tokens=True)
            e.ep.turns += 1
            e.ep.final = text
            assistant = {"role": "assistant", "content": text}
            e.ep.messages.append(assistant)
            if cut or bool(r.truncated[j]):
                e.truncated = True
                e.finish("max_episode_tokens" if cut or len(e.ids) >= limits.max_episode_tokens else "turn_truncated")
                continue
            parsed = parse_turn(text)
            try:
                step = e.env.step(parsed)
            except Exception:  # an environment's failure costs its episode, never the run
                e.ep.error = traceback.format_exc(limit=3)
                log.warning("environment failed, episode ended: %s", e.ep.error.strip().splitlines()[-1])
                e.finish("env_error")
                continue
            for key in ("tool_calls", "tool_errors", "malformed_calls"):
                setattr(e.ep, key, getattr(e.ep, key) + int(step.info.get(key, 0)))
            if step.done:
                e.finish("env_done" if parsed.wants_tools or step.messages else "no_tool_call")
                continue
            if e.ep.turns >= limits.max_turns:
                e.finish("max_turns")
                continue
            stop_text = tokenizer.decode(toks[-1:], skip_special_tokens=False) if toks and toks[-1] in stop_ids else ""
            tail = env_tail(tokenizer, e.history, step.messages, e.tools, native, stop_text)
            tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
            if len(e.ids) + len(tail_ids) >= limits.max_episode_tokens:  # no room left for another model turn
                e.truncated = True
                e.finish("max_episode_tokens")
                continue
            e.add("env", tail_ids)
            e.ep.messages += step.messages  # only what the model will see
            e.history += [assistant, *step.messages]
            still.append(i)
        live = still
    return _package(eps, prompts, engine.pad_id, tokenizer)


def _package(eps: list[_Live], prompts: list[str], pad_id: int, tokenizer) -> EpisodeRollout:
    width_p = max(len(e.prompt_ids) for e in eps)
    width_c = max(1, max(len(e.ids) for e in eps))
    N = len(eps)
    p_ids = torch.full((N, width_p), pad_id, dtype=torch.long)
    p_mask = torch.zeros(N, width_p, dtype=torch.long)
    c_ids = torch.full((N, width_c), pad_id, dtype=torch.long)
    c_mask = torch.zeros(N, width_c, dtype=torch.long)
    logp = torch.zeros(N, width_c)
    for i, e in enumerate(eps):
        P, T = len(e.prompt_ids), len(e.ids)
        p_ids[i, width_p - P:] = torch.tensor(e.prompt_ids, dtype=torch.long)
        p_mask[i, width_p - P:] = 1
        if T:
            c_ids[i, :T] = torch.tensor(e.ids, dtype=torch.long)
            c_mask[i, :T] = torch.tensor(e.mask, dtype=torch.long)
            logp[i, :T] = torch.tensor(e.logp)
    return EpisodeRollout(
        prompt_ids=p_ids, prompt_mask=p_mask, completion_ids=c_ids, completion_mask=c_mask,
        truncated=torch.tensor([e.truncated for e in eps]), prompts=prompts,
        completions=[e.ep.final for e in eps], sample_logp=logp, episodes=[e.ep for e in eps],
        transcripts=[tokenizer.decode(e.ids, skip_special_tokens=False) for e in eps])


class EpisodeEngine:
    """A rollout engine whose ``generate`` runs whole episodes: the training loop's and evaluation's hook.

    The loop and ``evaluation.accuracy`` hand an engine rendered prompts; this one finds the task
    row each prompt was rendered from (``prompt_text(example)``, the same function the loop uses)
    and runs that row's episode instead. Everything downstream (rewards, advantages, losses) sees an
    ordinary :class:`Rollout` whose mask has holes where the environment spoke.
    """

    def __init__(self, engine, tokenizer, make_env: Callable[[], Any], examples: list[Example],
                 prompt_text: Callable[[Example], str], limits: EpisodeLimits = EpisodeLimits()):
        self.engine, self.tokenizer, self.make_env, self.limits = engine, tokenizer, make_env, limits
        self.examples, self.prompt_text = examples, prompt_text
        self._by_prompt: dict[str, Example] | None = None
        self.last: EpisodeRollout | None = None

    @classmethod
    def for_task(cls, engine, tokenizer, task, prompt_text: Callable[[Example], str]) -> "EpisodeEngine":
        """The episode engine of a task with an ``env`` (limits from ``task.meta["episode"]``)."""
        limits = EpisodeLimits(**task.meta.get("episode", {}))
        return cls(engine, tokenizer, task.env, [*task.train, *task.heldout], prompt_text, limits)

    @property
    def stop_ids(self):
        return self.engine.stop_ids

    @property
    def pad_id(self):
        return self.engine.pad_id

    def sync_weights(self, model) -> None:
        self.engine.sync_weights(model)

    @property
    def last_sync_s(self):
        """The wrapped engine's last weight-sync time (vLLM; None for the HF engine, which shares the weights)."""
        return getattr(self.engine, "last_sync_s", None)

    @property
    def prefill_s(self):
        """The wrapped engine's prompt-forward clock (the HF engine's; None where an engine has none)."""
        return getattr(self.engine, "prefill_s", None)

    @property
    def logprobs_truncated(self) -> bool:
        """Whether the wrapped engine's log-probs are over the top-p/top-k support (vLLM's are)."""
        return getattr(self.engine, "logprobs_truncated", False)

    def _example(self, prompt: str) -> Example:
        if self._by_prompt is None:
            self._by_prompt = {self.prompt_text(ex): ex for ex in self.examples}
        ex = self._by_prompt.get(prompt)
        if ex is None:
            raise ValueError("a prompt handed to the episode engine matches no row of its task; render prompts "
                             "with the same template and system prompt the engine was built with")
        return ex

    def generate(self, prompts: list[str], n: int, params: SamplingParams,
                 generator: torch.Generator | None = None) -> EpisodeRollout:
        self.last = run_episodes(self.engine, self.tokenizer, self.make_env, [self._example(p) for p in prompts], n,
                                 params, self.limits, generator)
        return self.last


def attach_episodes(groups: list[dict], rollout: Rollout) -> list[dict]:
    """Add each completion's episode (messages, spans, counts) and transcript to the rollout dump's groups."""
    eps = getattr(rollout, "episodes", None)
    if not eps:
        return groups
    i = 0
    for g in groups:
        for c in g["completions"]:
            c["episode"] = {**eps[i].as_dict(), "transcript": rollout.transcripts[i]}
            i += 1
    return groups
