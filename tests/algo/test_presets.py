"""Every preset: loss via the registries == an independent, plain-Python evaluation of its formula.

A preset is a set of config values; ``ALGOS[name]`` is the algorithm a run of ``--algo name`` executes.
"""

import ast
import dataclasses
import inspect
import math
import statistics
import textwrap

import pytest
import torch

from grpokit.algo.algorithm import Algorithm
from grpokit.algo.kl import sequence_kl
from grpokit.algo.presets import PRESETS, Preset, get_preset
from grpokit.config import algo_preset, make

ALGOS = {name: algo_preset(make(overrides={"algo": name})) for name in PRESETS}

B, G, T = 3, 4, 6
N = B * G

# -- the reference: plain Python, one formula per paper, no grpokit code --------------------------


def _flat(xs):
    return len(xs) < 2 or all(x == xs[0] for x in xs)


def ref_grpo(groups, eps):
    return [[0.0] * len(g) if _flat(g) else [(r - statistics.mean(g)) / (statistics.stdev(g) + eps) for r in g]
            for g in groups]


def ref_dr_grpo(groups, eps):
    return [[0.0] * len(g) if _flat(g) else [r - statistics.mean(g) for r in g] for g in groups]


def ref_rloo(groups, eps):
    return [[0.0] * len(g) if _flat(g) else [r - (sum(g) - r) / (len(g) - 1) for r in g] for g in groups]


def ref_reinforce_pp(groups, eps):
    flat = [r for g in groups for r in g]
    mean, std = statistics.mean(flat), statistics.stdev(flat)
    return [[(r - mean) / (std + eps) for r in g] for g in groups]


def ref_reinforce_pp_baseline(groups, eps):
    centred = ref_dr_grpo(groups, eps)
    std = statistics.stdev([c for g in centred for c in g])
    return [[c / (std + eps) for c in g] for g in centred]


REF_ADVANTAGE = {
    "grpo": ref_grpo,
    "dr_grpo": ref_dr_grpo,
    "rloo": ref_rloo,
    "reinforce_pp": ref_reinforce_pp,
    "reinforce_pp_baseline": ref_reinforce_pp_baseline,
}
REF_KL = {
    "k1": lambda lp, rf: lp - rf,
    "k2": lambda lp, rf: 0.5 * (lp - rf) ** 2,
    "k3": lambda lp, rf: math.exp(rf - lp) - (rf - lp) - 1,
}


def clip(x, lo, hi):
    return min(max(x, lo), hi)


def ref_policy_loss(p, logp, old, ref, adv, lengths, beta):
    """``adv[n]`` is a number (outcome) or a list over tokens (critic)."""
    per_seq_token_losses = []
    for n, length in enumerate(lengths):
        tokens = range(length)
        if p.policy_loss == "gspo":
            s = math.exp(sum(logp[n][t] - old[n][t] for t in tokens) / length)
            a = adv[n]
            seq = -min(s * a, clip(s, 1 - p.eps_low, 1 + p.eps_high) * a)
            losses = [seq for _ in tokens]
        else:
            losses = []
            for t in tokens:
                rho = math.exp(logp[n][t] - old[n][t])
                a = adv[n][t] if isinstance(adv[n], list) else adv[n]
                losses.append(-min(rho * a, clip(rho, 1 - p.eps_low, 1 + p.eps_high) * a))
        if beta > 0:
            losses = [l + beta * REF_KL[p.kl_estimator](logp[n][t], ref[n][t]) for t, l in zip(tokens, losses)]
        per_seq_token_losses.append(losses)
    if p.aggregation == "seq-mean-token-mean":
        return sum(sum(ls) / len(ls) for ls in per_seq_token_losses) / len(lengths)
    total = sum(sum(ls) for ls in per_seq_token_losses)
    if p.aggregation == "token-mean":
        return total / sum(lengths)
    return total / (len(lengths) * T)  # constant: N * max_len


def ref_ppo(p, scores, values, old, ref, lengths):
    """Token rewards with k1 KL, GAE, token whitening: per-token advantages and returns."""
    advs, rets = [], []
    for n, length in enumerate(lengths):
        r = [-p.beta * REF_KL[p.kl_estimator](old[n][t], ref[n][t]) for t in range(length)]
        r[-1] += scores[n]
        a, nxt_v, nxt_a = [0.0] * length, 0.0, 0.0
        for t in reversed(range(length)):
            delta = r[t] + p.gamma * nxt_v - values[n][t]
            a[t] = delta + p.gamma * p.lam * nxt_a
            nxt_v, nxt_a = values[n][t], a[t]
        advs.append(a)
        rets.append([a[t] + values[n][t] for t in range(length)])
    flat = [x for a in advs for x in a]
    mean, std = statistics.mean(flat), statistics.stdev(flat)
    return [[(x - mean) / (std + 1e-8) for x in a] for a in advs], rets


# -- random batch ----------------------------------------------------------------------------------


def _batch(seed, step):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randint(0, 2, (B, G), generator=g).float()
    rewards[0] = 1.0  # one flat group
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    mask = (torch.arange(T) < lengths.unsqueeze(1)).long()
    old = -torch.rand(N, T, generator=g) * 3
    logp = old + step * torch.randn(N, T, generator=g)
    ref = old + 0.2 * torch.randn(N, T, generator=g)
    return rewards, lengths.tolist(), mask, old, logp, ref


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_preset_loss_matches_its_formula(name, seed):
    p = ALGOS[name]
    # GSPO's clip range is 4e-4: tiny policy moves so that some sequences clip and some do not
    step = 3e-4 if p.policy_loss == "gspo" else 0.3
    rewards, lengths, mask, old, logp, ref = _batch(seed, step)
    L = [row.tolist() for row in logp]
    O = [row.tolist() for row in old]
    R = [row.tolist() for row in ref]

    if p.use_critic:
        values = torch.randn(N, T, generator=torch.Generator().manual_seed(seed + 10))
        scores = rewards.reshape(-1)
        adv, returns = p.critic_advantages(scores, values, mask, token_kl=p.kl(old, ref))
        ref_adv, ref_ret = ref_ppo(p, scores.tolist(), values.tolist(), O, R, lengths)
        for n, length in enumerate(lengths):
            assert adv[n, :length].tolist() == pytest.approx(ref_adv[n], abs=1e-5)
            assert returns[n, :length].tolist() == pytest.approx(ref_ret[n], abs=1e-5)
        loss, _ = p.loss(logp, old, adv, mask, ref_logp=ref, max_len=T)
        expected = ref_policy_loss(p, L, O, R, ref_adv, lengths, p.loss_beta)
        v_loss, _ = p.critic_loss(values + 0.1, values, returns, mask)
        # 0.5 * max((V - R)^2, (V_clip - R)^2) with V - V_old = 0.1 inside the clip: both equal
        expected_v = sum(0.5 * (values[n, t].item() + 0.1 - ref_ret[n][t]) ** 2
                         for n, length in enumerate(lengths) for t in range(length)) / sum(lengths)
        assert v_loss.item() == pytest.approx(expected_v, rel=1e-5)
    else:
        groups = rewards.tolist()
        seq_kl = None
        if p.reward_beta > 0:
            seq_kl = sequence_kl(old, ref, mask, p.kl_estimator).reshape(B, G)
            kl_ref = [sum(REF_KL[p.kl_estimator](O[n][t], R[n][t]) for t in range(lengths[n])) for n in range(N)]
            groups = [[groups[b][g] - p.beta * kl_ref[b * G + g] for g in range(G)] for b in range(B)]
        adv = p.advantages(rewards, seq_kl=seq_kl)
        ref_adv = [a for g in REF_ADVANTAGE[p.advantage](groups, p.adv_eps) for a in g]
        assert adv.reshape(-1).tolist() == pytest.approx(ref_adv, abs=1e-5)
        loss, _ = p.loss(logp, old, adv.reshape(-1), mask, ref_logp=ref, max_len=T)
        expected = ref_policy_loss(p, L, O, R, ref_adv, lengths, p.loss_beta)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_gspo_preset_batch_has_both_clipped_and_unclipped_sequences():
    # guards the test above: with GSPO's tiny clip range both branches of min() are exercised
    rewards, lengths, mask, old, logp, ref = _batch(0, 3e-4)
    m = mask.float()
    s = torch.exp(((logp - old) * m).sum(-1) / m.sum(-1))
    outside = (s > 1 + 4e-4) | (s < 1 - 3e-4)
    assert outside.any() and (~outside).any()


def test_every_preset_is_documented():
    for name, p in PRESETS.items():
        assert p.name == name
        assert "arXiv" in p.paper and len(p.notes) > 100 and p.equations, name
    for cls in (Preset, Algorithm):
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        documented = {
            stmt.target.id
            for stmt, after in zip(body, body[1:])
            if isinstance(stmt, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value.value, str)
        }
        assert documented == {f.name for f in dataclasses.fields(cls)}  # a docstring under every field


def test_paper_values():
    assert (ALGOS["grpo"].beta, ALGOS["grpo"].kl_estimator, ALGOS["grpo"].kl_placement) == (0.04, "k3", "loss")
    r1 = make(overrides={"algo": "r1_zero"})
    assert (r1.beta, r1.ref_reset_every, r1.temperature, r1.group_size, r1.lr) == (0.001, 400, 1.0, 16, 3e-6)
    dapo, dapo_cfg = ALGOS["dapo"], make(overrides={"algo": "dapo"})
    assert (dapo.eps_low, dapo.eps_high, dapo.beta, dapo.aggregation) == (0.2, 0.28, 0.0, "token-mean")
    assert dapo_cfg.dynamic_sampling_max_rounds and dapo.overlong_filter and dapo.overlong_cache_tokens(20480) == 4096
    assert (ALGOS["gspo"].eps_low, ALGOS["gspo"].eps_high) == (3e-4, 4e-4)
    assert ALGOS["dr_grpo"].aggregation == "constant" and ALGOS["dr_grpo"].beta == 0
    ppo = ALGOS["ppo"]
    assert ppo.use_critic and (ppo.critic_lr, ppo.gamma, ppo.lam) == (1e-5, 1.0, 0.95)
    assert sum(p.use_critic for p in ALGOS.values()) == 1


def test_kl_placement_routes_beta():
    assert (ALGOS["grpo"].loss_beta, ALGOS["grpo"].reward_beta) == (0.04, 0.0)
    assert (ALGOS["rloo"].loss_beta, ALGOS["rloo"].reward_beta) == (0.0, 0.05)
    assert not ALGOS["dapo"].needs_reference and ALGOS["ppo"].needs_reference


def test_invalid_presets_fail_clearly():
    grpo = ALGOS["grpo"]
    with pytest.raises(ValueError, match="advantage 'gae' is not registered"):
        grpo.replace(advantage="gae")
    with pytest.raises(ValueError, match="use_critic needs advantage='gae'"):
        grpo.replace(use_critic=True, critic_lr=1e-5)
    with pytest.raises(ValueError, match="policy_loss must be one of"):
        grpo.replace(policy_loss="cispo")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        grpo.replace(aggregation="token-sum")
    with pytest.raises(ValueError, match="unknown algorithm 'grpo2'"):
        get_preset("grpo2")


def test_reward_kl_presets_demand_the_sequence_kl():
    with pytest.raises(ValueError, match="seq_kl"):
        ALGOS["rloo"].advantages(torch.ones(2, 2))
    with pytest.raises(ValueError, match="critic_advantages"):
        ALGOS["ppo"].advantages(torch.ones(2, 2))
    with pytest.raises(ValueError, match="token_kl"):
        ALGOS["ppo"].critic_advantages(torch.ones(2), torch.zeros(2, 3), torch.ones(2, 3))
