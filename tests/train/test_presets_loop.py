"""Every preset trains 3 steps on the tiny model, and every optimizer step's loss equals its formula.

The loop hands each optimizer step's tensors to ``train(on_update=...)``. From the rewards in the
rollout dump and those tensors, plain Python (no grpokit code) recomputes the advantages, the
policy loss and, for PPO, GAE and the value loss.
"""

import math

import pytest

from grpokit.algo import PRESETS
from grpokit.config import algo_preset
from grpokit.run_folder import RunReader
from grpokit.train.loop import train
from tests.algo.test_presets import REF_ADVANTAGE, REF_KL, clip, ref_ppo
from tests.train.test_loop import _cfg

MAX_LEN = 6


def ref_loss(p, rows, L, O, R, A, lengths, max_len):
    """The preset's clipped surrogate (+ beta * k in the loss), aggregated over ``rows`` as the preset says."""
    per_row = []
    for n in rows:
        toks = range(lengths[n])
        if p.policy_loss == "gspo" and lengths[n]:
            s = math.exp(sum(L[n][t] - O[n][t] for t in toks) / lengths[n])
            losses = [-min(s * A[n], clip(s, 1 - p.eps_low, 1 + p.eps_high) * A[n])] * lengths[n]
        else:
            losses = []
            for t in toks:
                rho, a = math.exp(L[n][t] - O[n][t]), A[n][t] if isinstance(A[n], list) else A[n]
                losses.append(-min(rho * a, clip(rho, 1 - p.eps_low, 1 + p.eps_high) * a))
        if p.loss_beta > 0:
            losses = [x + p.loss_beta * REF_KL[p.kl_estimator](L[n][t], R[n][t]) for t, x in zip(toks, losses)]
        per_row.append(losses)
    if p.aggregation == "seq-mean-token-mean":
        return sum(sum(x) / len(x) for x in per_row if x) / len(rows)
    total = sum(sum(x) for x in per_row)
    if p.aggregation == "token-mean":
        return total / max(1, sum(lengths[n] for n in rows))
    return total / (len(rows) * max_len)


def ref_value_loss(rows, V, V_old, Ret, lengths, clip_eps):
    total = 0.0
    for n in rows:
        for t in range(lengths[n]):
            v_clip = V_old[n][t] + clip(V[n][t] - V_old[n][t], -clip_eps, clip_eps)
            total += 0.5 * max((V[n][t] - Ret[n][t]) ** 2, (v_clip - Ret[n][t]) ** 2)
    return total / max(1, sum(lengths[n] for n in rows))


def _check_advantages(p, rec, groups, G):
    rewards = [c["reward"] for g in groups for c in g["completions"]]
    dumped = [c["advantage"] for g in groups for c in g["completions"]]
    assert rec.rewards.tolist() == pytest.approx(rewards, abs=1e-6)
    lengths = rec.mask.sum(-1).tolist()
    O, R = rec.old_logp.tolist(), None if rec.ref_logp is None else rec.ref_logp.tolist()
    if p.use_critic:
        V_old = rec.old_values.tolist()
        want_adv, want_ret = ref_ppo(p, rewards, V_old, O, R, lengths)
        for n, length in enumerate(lengths):
            assert rec.advantages[n, :length].tolist() == pytest.approx(want_adv[n], abs=1e-4)
            assert rec.returns[n, :length].tolist() == pytest.approx(want_ret[n], abs=1e-5)
            assert dumped[n] == pytest.approx(sum(want_adv[n]) / length, abs=1e-4)
            assert groups[n // G]["completions"][n % G]["value"] == pytest.approx(V_old[n][0], abs=1e-6)
        return want_adv
    shaped = list(rewards)
    if p.reward_beta > 0:
        shaped = [r - p.reward_beta * sum(REF_KL[p.kl_estimator](O[n][t], R[n][t]) for t in range(lengths[n]))
                  for n, r in enumerate(rewards)]
    want = [a for g in REF_ADVANTAGE[p.advantage]([shaped[i:i + G] for i in range(0, len(shaped), G)], p.adv_eps)
            for a in g]
    assert rec.advantages.tolist() == pytest.approx(want, abs=1e-4)
    assert dumped == pytest.approx(want, abs=1e-4)
    return want


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_and_each_step_loss_matches_its_formula(tiny_model, tmp_path, name):
    cfg = _cfg(tiny_model, tmp_path, name, algo=name, max_new_tokens=MAX_LEN, threads=1, lr=1e-2 if name == "gspo" else 1e-3,
               rewards={"tests.train.rewards_for_tests:digit_share": 1.0})
    p = algo_preset(cfg)
    records = []
    run = train(cfg, on_update=records.append)
    reader = RunReader(run)
    metrics = reader.metrics()
    assert [m["step"] for m in metrics] == [1, 2, 3]
    parts = min(p.mini_batches or 1, cfg.prompts_per_step * cfg.group_size)
    assert len(records) == 3 * cfg.mu * parts
    ratio_moved = False
    for rec in records:
        groups = reader.groups(rec.step)
        A = _check_advantages(p, rec, groups, cfg.group_size)
        lengths = rec.mask.sum(-1).tolist()
        L, O = rec.logp.tolist(), rec.old_logp.tolist()
        R = None if rec.ref_logp is None else rec.ref_logp.tolist()
        want = ref_loss(p, rec.rows, L, O, R, A, lengths, MAX_LEN)
        assert rec.loss == pytest.approx(want, rel=1e-4, abs=1e-6), (rec.step, rec.mini_batch)
        ratio_moved |= any(abs(L[n][t] - O[n][t]) > 1e-4 for n in rec.trained for t in range(lengths[n]))
        if p.use_critic:
            want_v = ref_value_loss(rec.rows, rec.values.tolist(), rec.old_values.tolist(), rec.returns.tolist(),
                                    lengths, p.value_clip)
            assert rec.value_loss == pytest.approx(want_v, rel=1e-4, abs=1e-7)
    for m in metrics:  # the logged loss is the mean over the step's optimizer steps
        losses = [r.loss for r in records if r.step == m["step"]]
        assert m["loss/policy"] == pytest.approx(sum(losses) / len(losses), rel=1e-5, abs=1e-7)
    # with several optimizer steps per rollout, later ones are off-policy: the ratio term is exercised
    # (when an earlier optimizer step of the same rollout actually trained something)
    def moved_before(rec):
        return any(r.trained for r in records if r.step == rec.step and (r.epoch, r.mini_batch) < (rec.epoch, rec.mini_batch))
    off_policy = any(rec.trained and moved_before(rec) for rec in records)
    if parts == 1 and cfg.mu == 1:
        assert not ratio_moved
    elif off_policy:
        assert ratio_moved


def test_the_cli_toggle_switches_the_critic_on_and_off(tiny_model, tmp_path):
    from grpokit.cli import main

    cfg = _cfg(tiny_model, tmp_path, "unused")
    for algo in ("grpo", "ppo"):
        out = tmp_path / algo
        rc = main(["train", "--algo", algo, "--model", tiny_model, "--task", cfg.task, "--out", str(out),
                   "--steps", "1", "--prompts_per_step", "2", "--group_size", "4", "--max_new_tokens", "4",
                   "--eval_size", "0", "--progress", "false", "--threads", "1", "--task_options", "{heldout_size: 4}"])
        assert rc == 0
        reader = RunReader(out)
        m = reader.metrics()[0]
        assert reader.config()["algo"] == algo
        assert (m["model/critic_params"] > 0) == (algo == "ppo") and ("loss/value" in m) == (algo == "ppo")
        assert reader.config()["beta"] == {"grpo": 0.04, "ppo": 0.001}[algo]  # the preset's paper value
        ckpt = next((out / "checkpoints").glob("step_*"))
        assert (ckpt / "critic").exists() == (algo == "ppo")
