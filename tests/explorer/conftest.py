"""Run folders for the explorer's tests.

``run_dir`` is the ONE place the browser test gets its run from. Today it is a synthetic 2-step
run written with ``RunWriter`` exactly as docs/run-format.md describes (the numbers in it are
computed, not typed: advantages come from ``group_advantages``, metrics from the groups). When the
trainer lands, swap the body of ``run_dir`` for a 2-step tiny-model training run, e.g.
``grpokit.train.main(["--out", str(out), "--steps", "2", ...])``, and every test keeps working.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from grpokit.algo.advantages import group_advantages
from grpokit.run_folder import RunWriter

G = 6
MAX_NEW = 64
QUESTIONS = [("Calculate 65 + 22.", "87"), ("Calculate 31 + 48.", "79"), ("Calculate 90 + 13.", "103"),
             ("Calculate 27 + 56.", "83"), ("Calculate 44 + 44.", "88"), ("Calculate 19 + 70.", "89")]
# Outcome of each completion of each group, per step: ok = right and boxed, wrong = boxed but
# wrong, nobox = right number without \boxed{}, trunc = rambles into max_new_tokens.
OUTCOMES = {
    1: ["ok wrong ok nobox ok wrong", "ok ok ok ok ok ok", "wrong trunc ok wrong nobox wrong", "ok ok wrong ok trunc ok"],
    2: ["ok ok wrong ok ok wrong", "wrong wrong wrong wrong wrong wrong", "ok nobox ok ok wrong ok", "ok ok ok trunc ok ok"],
}
WEIGHTS = {"math": 1.0, "boxed_format": 0.1}


def _completion(kind: str, q: str, a: str, i: int) -> dict:
    x, y = q.removeprefix("Calculate ").rstrip(".").split(" + ")
    wrong = str(int(a) + (10 if i % 2 else -1))
    text = {
        "ok": f"{x} + {y}: {x[0]}0 + {y[0]}0 = {int(x[0]) * 10 + int(y[0]) * 10}, plus {x[1]} + {y[1]}. "
              f"So {x} + {y} = {a}.\n\nThe final answer is \\boxed{{{a}}}.",
        "wrong": f"Adding {x} and {y} gives {wrong}.\n\\boxed{{{wrong}}}",
        "nobox": f"{x} + {y} = {a}. The answer is {a}.",
        "trunc": f"Let me think step by step. First {x} is a number and {y} is a number, and adding "
                 f"them means we count up from {x} by {y}, so {x}, {int(x) + 1}, {int(x) + 2}, {int(x) + 3}, "
                 f"{int(x) + 4}, {int(x) + 5}, {int(x) + 6}, {int(x) + 7}",
    }[kind]
    math_r = 1.0 if kind == "ok" else 0.0
    box_r = 1.0 if kind in ("ok", "wrong") else 0.0
    extracted = a if kind == "ok" else wrong if kind == "wrong" else None
    length = MAX_NEW if kind == "trunc" else 12 + len(text) // 6
    return {"text": text, "length": length, "truncated": kind == "trunc",
            "rewards": {"math": math_r, "boxed_format": box_r},
            "reward": WEIGHTS["math"] * math_r + WEIGHTS["boxed_format"] * box_r, "valid": True,
            "extracted": extracted}


def _groups(step: int, critic: bool) -> list[dict]:
    groups = []
    for b, pattern in enumerate(OUTCOMES[step]):
        q, a = QUESTIONS[(b + step) % len(QUESTIONS)]
        comps = [_completion(k, q, a, i) for i, k in enumerate(pattern.split())]
        r = torch.tensor([[c["reward"] for c in comps]])  # [1, G]
        if critic:
            # A value head that has learned a little: near the group's success rate, not equal to it.
            for i, c in enumerate(comps):
                c["value"] = round(0.15 + 0.5 * float(r.mean()) + 0.04 * (i % 3), 4)
                c["advantage"] = c["reward"] - c["value"]  # A(s_0) = R - V(s_0) with gamma = lambda = 1
        else:
            for c, adv in zip(comps, group_advantages(r, scale="group")[0].tolist()):
                c["advantage"] = adv
        groups.append({"prompt_id": f"add2-train-{17 * b + step}", "question": q,
                       "prompt": f"<|im_start|>user\n{q} Put the final answer in \\boxed{{}}.<|im_end|>\n"
                                 "<|im_start|>assistant\n",
                       "answer": a, "baseline": float(r.mean()), "reward_std": float(r.std()),
                       "scale": "critic" if critic else "group", "completions": comps})
    return groups


def _metrics(groups: list[dict], step: int, critic: bool) -> dict:
    comps = [c for g in groups for c in g["completions"]]
    rewards = [c["reward"] for c in comps]
    m = {"reward/mean": statistics.fmean(rewards), "reward/std": statistics.stdev(rewards)}
    for fn in WEIGHTS:
        v = [c["rewards"][fn] for c in comps]
        m[f"reward/{fn}/mean"], m[f"reward/{fn}/std"] = statistics.fmean(v), statistics.stdev(v)
    m |= {"reward/unscorable_frac": 0.0, "reward/errors": 0,
          "groups/zero_std_frac": sum(len({c["reward"] for c in g["completions"]}) == 1 for g in groups) / len(groups),
          "completions/mean_length": statistics.fmean(c["length"] for c in comps),
          "completions/max_length": max(c["length"] for c in comps),
          "completions/truncated_frac": sum(c["truncated"] for c in comps) / len(comps),
          "loss/policy": -0.012 * step, "loss/clip_low_frac": 0.0, "loss/clip_high_frac": 0.0,
          "loss/kl": 0.0004 * step * step, "loss/ratio": 1.0, "policy/entropy": 0.92 - 0.05 * step,
          "optim/grad_norm": 0.8 / step, "optim/lr": 1e-6,
          "time/generate": 3.1, "time/reward": 0.02, "time/update": 1.4 + (1.1 if critic else 0.0),
          "model/policy_params": 134_515_008, "memory/peak_mb": 2210.0 + (1150.0 if critic else 0.0) + 3 * step}
    if critic:
        m |= {"model/critic_params": 134_515_009, "time/critic": 1.1, "loss/value": 0.21 / step}
    m["time/step"] = m["time/generate"] + m["time/reward"] + m["time/update"]
    m["throughput/completions_per_s"] = len(comps) / m["time/step"]
    m["throughput/tokens_per_s"] = sum(c["length"] for c in comps) / m["time/step"]
    return m


def write_synthetic_run(out: Path, *, critic: bool = False, steps: int = 2, state: str = "finished") -> Path:
    """A 2-step run folder with the layout of docs/run-format.md (GRPO, or PPO with a critic)."""
    w = RunWriter(out)
    w.write_config({"model": {"name": "smollm2-135m-instruct"}, "task": {"name": "add2"},
                    "algo": {"name": "ppo" if critic else "grpo", "scale": "group", "beta": 0.04, "use_critic": critic},
                    "rollout": {"G": G, "B": len(OUTCOMES[1]), "temperature": 1.0, "max_new_tokens": MAX_NEW},
                    "optim": {"lr": 1e-6}, "train": {"steps": steps}, "rewards": dict(WEIGHTS)})
    w.set_status("running", step=0, total_steps=steps)
    w.log_eval(0, {"greedy_acc": 0.41, "sampled_acc": 0.33, "n": 200})
    for step in range(1, steps + 1):
        groups = _groups(step, critic)
        w.log_groups(step, groups)
        w.log_metrics(step, _metrics(groups, step, critic))
        w.set_status("running", step=step, total_steps=steps)
    w.log_eval(steps, {"greedy_acc": 0.47, "sampled_acc": 0.38, "n": 200})
    ckpt = out / "checkpoints" / f"step_{steps:06d}"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    w.set_status(state, step=steps, total_steps=steps)
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """The GRPO run the explorer tests read (swap for a real 2-step tiny-model run; see module doc)."""
    return write_synthetic_run(tmp_path_factory.mktemp("runs") / "grpo-add2")


@pytest.fixture(scope="session")
def ppo_run_dir(tmp_path_factory) -> Path:
    """A PPO-with-critic run: completions carry ``value``; metrics carry the critic's cost."""
    return write_synthetic_run(tmp_path_factory.mktemp("runs") / "ppo-add2", critic=True)


class FixedTryBackend:
    """TEST DOUBLE for ``TryBackend``: returns fixed, pre-scored completions; no model involved."""

    REWARDS = [1.1, 0.1, 1.1, 0.0, 1.1, 0.1, 1.1, 0.1]

    def __init__(self):
        self.calls: list[tuple] = []

    def prompts(self, run):
        return [{"id": "p0", "question": "Calculate 65 + 22.", "answer": "87", "source": "held-out"}]

    def checkpoints(self, run):
        return [p.name for p in run.checkpoints()]

    def sample(self, run, checkpoint, question, answer, G, temperature):
        self.calls.append((checkpoint, question, answer, G, temperature))
        out = []
        for i in range(G):
            r = self.REWARDS[i % len(self.REWARDS)]
            ok = r >= 1.0
            text = f"The answer is \\boxed{{{answer if ok else 'x'}}}." if r >= 0.1 else "no idea"
            out.append({"text": text, "length": 9, "truncated": False,
                        "rewards": {"math": 1.0 if ok else 0.0, "boxed_format": 1.0 if r >= 0.1 else 0.0},
                        "reward": r, "valid": True, "extracted": (answer if ok else "x") if r >= 0.1 else None})
        return out


@pytest.fixture
def fixed_backend() -> FixedTryBackend:
    return FixedTryBackend()


@pytest.fixture(scope="module")
def module_backend() -> FixedTryBackend:
    """One test double shared by a module's tests (they clear ``calls`` themselves)."""
    return FixedTryBackend()
