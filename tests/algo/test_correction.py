"""Mismatch correction (TIS / MIS at token, sequence and geometric level) against hand-computed numbers."""

import math

import pytest
import torch

from grpokit.algo import CORRECTIONS, get_correction, rollout_correction, selective_logprobs, truncated_logprobs
from grpokit.algo.correction import mismatch_log_ratio, mismatch_metrics
from grpokit.rollout.base import SamplingParams
from grpokit.rollout.hf import sample_next, uniforms

# Token ratios pi_learner / pi_sampler: row 0 = [3.0, 0.4, 1.25], row 1 = [1.0, 5.0, padding].
RATIOS = [[3.0, 0.4, 1.25], [1.0, 5.0, 1.0]]
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def _logps():
    sampler = torch.log(torch.tensor([[0.1, 0.5, 0.4], [0.3, 0.1, 0.2]], dtype=torch.float64))
    learner = sampler + torch.log(torch.tensor(RATIOS, dtype=torch.float64))
    learner[1, 2] = -7.0  # padding: whatever the learner says there must not matter
    return learner, sampler


def close(a, b):
    torch.testing.assert_close(a.double(), torch.as_tensor(b, dtype=torch.float64), rtol=1e-6, atol=1e-7)


def test_token_tis_truncates_above_cap():
    learner, sampler = _logps()
    w, _ = rollout_correction(learner, sampler, MASK, mode="tis", level="token", cap=2.0)
    close(w, [[2.0, 0.4, 1.25], [1.0, 2.0, 1.0]])  # padding gets ratio exp(0) = 1


def test_token_mis_drops_tokens_outside_the_band():
    learner, sampler = _logps()
    w, _ = rollout_correction(learner, sampler, MASK, mode="mis", level="token", cap=2.0)
    close(w, [[0.0, 0.0, 1.25], [1.0, 0.0, 1.0]])  # band [0.5, 2]: 3.0, 0.4 and 5.0 leave


def test_sequence_levels():
    learner, sampler = _logps()
    # products: 3 * 0.4 * 1.25 = 1.5 and 1 * 5 = 5; geometric means 1.5^(1/3) and sqrt(5)
    close(CORRECTIONS["seq_tis"](learner, sampler, MASK, cap=2.0)[0], [[1.5], [2.0]])
    close(CORRECTIONS["seq_mis"](learner, sampler, MASK, cap=2.0)[0], [[1.5], [0.0]])
    close(CORRECTIONS["geo_mis"](learner, sampler, MASK, cap=2.0)[0], [[1.5 ** (1 / 3)], [0.0]])
    close(mismatch_log_ratio(learner, sampler, MASK, "geometric"), [[math.log(1.5) / 3], [math.log(5) / 2]])


def test_metrics_by_hand():
    learner, sampler = _logps()
    r = [3.0, 0.4, 1.25, 1.0, 5.0]
    m = mismatch_metrics(learner, sampler, MASK, cap=2.0)
    # k3 with samples from the sampler: d = log r, exp(d) - d - 1 = r - log r - 1
    close(m["kl"], sum(x - math.log(x) - 1 for x in r) / 5)
    close(m["ratio_mean"], sum(r) / 5)
    close(m["ratio_max"], 5.0)
    close(m["truncated_frac"], 2 / 5)  # 3.0 and 5.0 above C
    close(m["masked_frac"], 3 / 5)  # and 0.4 below 1/C
    _, seq = CORRECTIONS["seq_tis"](learner, sampler, MASK, cap=2.0)
    close(seq["ratio_mean"], (1.5 + 5.0) / 2)  # sequence modes report their sequence ratios
    close(seq["truncated_frac"], 0.5)


@pytest.mark.parametrize("name", sorted(CORRECTIONS))
def test_exact_no_op_when_sampler_equals_learner(name):
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 7, generator=g) * 5
    mask = (torch.rand(4, 7, generator=g) > 0.3).long()
    w, m = get_correction(name)(logp, logp.clone(), mask, cap=2.0)
    assert torch.equal(w, torch.ones_like(w))
    assert float(m["kl"]) == 0.0 and float(m["ratio_mean"]) == 1.0 and float(m["masked_frac"]) == 0.0


def test_none_and_errors():
    assert get_correction("none") is None
    with pytest.raises(ValueError, match="choose none or one of"):
        get_correction("tiss")
    learner, sampler = _logps()
    with pytest.raises(ValueError, match="must be > 1"):
        rollout_correction(learner, sampler, MASK, cap=1.0)


def _probs_logits():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    return torch.log(p).view(1, 1, 4)


def test_truncated_logprobs_by_hand():
    logits = _probs_logits()
    tok = lambda i: torch.tensor([[i]])  # noqa: E731
    # top_p 0.75 keeps {0, 1} (mass above token 2 is 0.8 >= 0.75): S = 0.8
    close(truncated_logprobs(logits, tok(1), top_p=0.75), [[math.log(0.3 / 0.8)]])
    close(truncated_logprobs(logits, tok(0), top_k=1), [[0.0]])
    close(truncated_logprobs(logits, tok(1), top_k=3, top_p=0.6), [[math.log(0.3 / 0.8)]])  # top-k 3: 0.95 left
    # a sampled token outside the learner's support stays in it (rounding at the boundary)
    close(truncated_logprobs(logits, tok(3), top_p=0.75), [[math.log(0.05 / 0.85)]])
    # temperature 0.5 squares the probabilities before truncating: 0.25, 0.09, ... (sum 0.3650)
    q = torch.tensor([0.5, 0.3, 0.15, 0.05]) ** 2
    q = q / q.sum()
    close(truncated_logprobs(logits, tok(1), temperature=0.5, top_p=0.8), [[math.log(q[1] / (q[0] + q[1]))]])


def test_untruncated_equals_selective_logprobs_exactly():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 11, generator=g)
    ids = torch.randint(0, 11, (3, 5), generator=g)
    for tau in (1.0, 0.7):
        assert torch.equal(truncated_logprobs(logits, ids, tau), selective_logprobs(logits, ids, tau))


def test_truncation_replayed_by_the_learner_removes_the_top_p_bias():
    """TRL issue 6789: a truncating sampler reports log(p / S); full-vocabulary learner log-probs then make
    every ratio S, the kept mass. Replaying the truncation gives ratio 1."""
    logits = _probs_logits().expand(1, 2, 4)
    ids = torch.tensor([[0, 1]])
    mask = torch.ones(1, 2)
    sampler = torch.log(torch.tensor([[0.5 / 0.8, 0.3 / 0.8]]))  # vLLM processed_logprobs at top_p 0.75
    full = selective_logprobs(logits, ids)
    w_full, _ = rollout_correction(full, sampler, mask, mode="tis")
    close(w_full, [[0.8, 0.8]])
    w_trunc, m = rollout_correction(truncated_logprobs(logits, ids, top_p=0.75), sampler, mask, mode="tis")
    close(w_trunc, [[1.0, 1.0]])
    close(m["kl"], 0.0)


def test_truncation_matches_the_hf_engine_sampler():
    """The HF engine's top-p sampler draws each token with probability exp(truncated_logprobs)."""
    g = torch.Generator().manual_seed(2)
    logits = torch.log(torch.tensor([[0.3, 0.25, 0.2, 0.12, 0.08, 0.05]]))
    params = SamplingParams(temperature=0.8, top_p=0.7)
    n = 20000
    draws, _ = sample_next(logits.expand(n, 6), params, uniforms(n, g, "cpu"))
    freq = torch.bincount(draws, minlength=6).float() / n
    ids = torch.arange(6).view(1, 6)
    q = torch.exp(truncated_logprobs(logits.expand(6, 6).unsqueeze(0), ids, 0.8, top_p=0.7))[0]
    p = torch.softmax(logits[0] / 0.8, -1)
    top = int(p.argmax())
    kept_mass = p[top] / q[top]  # S: the most likely token is always in the nucleus
    inside = torch.isclose(q * kept_mass, p, rtol=1e-5)  # outside tokens get p / (S + p) instead
    assert 1 < int(inside.sum()) < 6  # the test must truncate something
    expected = torch.where(inside, q, torch.zeros_like(q))
    assert expected.sum() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)
