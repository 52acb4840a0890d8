"""The mismatch correction inside the update (train.mismatch + the run_update hook), with the HF engine.

No vLLM needed: the sampler's log-probs are set by hand, so the expected update is known.
"""

import copy
import math

import torch

from grpokit import models
from grpokit.config import algo_preset, make
from grpokit.rollout import HFEngine, SamplingParams, render
from grpokit.train.batch import TrainBatch, sequence_logprobs
from grpokit.train.mismatch import Mismatch
from grpokit.train.update import Learner, run_update

G = 4
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])  # no flat group: every row is trained


def _setup(tiny_model):
    cfg = make(overrides=dict(model=tiny_model, group_size=G, micro_batch_size=G, temperature=1.0, max_new_tokens=6,
                              lr=1e-2, max_grad_norm=0.0, progress=False))  # no clipping: a scaled gradient stays scaled
    model, tok = models.load(tiny_model, device="cpu", dtype="fp32", train=True)
    prompts = [render(tok, q) for q in ("say 3", "say 7")]
    r = HFEngine(model, tok).generate(prompts, G, SamplingParams(1.0, 1.0, 6), torch.Generator().manual_seed(0))
    batch = TrainBatch.from_rollout(r)
    with torch.no_grad():
        learner, cm, _ = sequence_logprobs(model, batch, list(range(len(batch))), 1.0)
    full = torch.zeros(batch.completion_ids.shape)
    full[:, :learner.shape[1]] = learner * cm
    return cfg, model, r, full


def _update(cfg, model, r, mask=None, mismatch=None):
    m = copy.deepcopy(model)
    learner = Learner(m, torch.optim.SGD(m.parameters(), lr=1.0))  # SGD: the step is the gradient, compared as is
    batch = TrainBatch.from_rollout(r)
    if mask is not None:
        batch.completion_mask = mask
    res = run_update(cfg, algo_preset(cfg), learner, batch, REWARDS, torch.ones(len(REWARDS), dtype=torch.bool), G, 1,
                     mismatch=mismatch)
    return dict(m.named_parameters()), res


def _close(a, b):
    return all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_equal_log_probs_leave_the_update_unchanged(tiny_model):
    cfg, model, r, learner = _setup(tiny_model)
    plain, _ = _update(cfg, model, r)
    corrected, res = _update(cfg, model, r, mismatch=Mismatch("tis", 2.0, learner.clone(), 1.0))
    assert _close(plain, corrected)
    assert res.metrics["mismatch/kl"] < 1e-10 and abs(res.metrics["mismatch/ratio_mean"] - 1) < 1e-6
    moved, _ = _update(cfg, model, r, mismatch=Mismatch("tis", 2.0, learner - 0.5, 1.0))  # every weight e^0.5
    assert not _close(plain, moved)


def test_mis_drops_a_sequence_like_masking_it_out(tiny_model):
    """A sequence whose sampler log-prob is log 4 below the learner's on every token leaves the loss under
    token MIS (ratio 4 > C = 2): the update equals masking it out (seq-mean-token-mean keeps N in the normaliser)."""
    cfg, model, r, learner = _setup(tiny_model)
    sampler = learner.clone()
    sampler[0] -= math.log(4.0) * r.completion_mask[0]
    corrected, res = _update(cfg, model, r, mismatch=Mismatch("mis", 2.0, sampler, 1.0))
    mask = r.completion_mask.clone()
    mask[0] = 0
    masked, _ = _update(cfg, model, r, mask=mask)
    assert _close(corrected, masked)
    tokens = float(r.completion_mask.sum())
    assert abs(res.metrics["mismatch/masked_frac"] - float(r.completion_mask[0].sum()) / tokens) < 1e-6
    assert abs(res.metrics["mismatch/ratio_max"] - 4.0) < 1e-4


def test_top_p_sampler_log_probs_are_compared_under_the_same_truncation(tiny_model):
    """An engine whose log-probs are renormalised over the top-p nucleus (vLLM) is compared with the
    learner's log-probs under the same truncation (Mismatch.prepare); compared with full-vocabulary
    log-probs every ratio would be the kept mass S < 1 (TRL issue 6789)."""
    from grpokit.algo import truncated_logprobs
    from grpokit.train.batch import _inputs

    cfg, model, r, _ = _setup(tiny_model)
    batch = TrainBatch.from_rollout(r)
    rows = list(range(len(batch)))
    ids, attn, pos, T, cm = _inputs(batch, rows, "cpu")
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1).logits[:, :-1]
    sampler = torch.zeros(batch.completion_ids.shape)
    sampler[:, :T] = truncated_logprobs(logits, ids[:, -T:], 1.0, top_p=0.3) * cm  # what vLLM reports at top_p 0.3
    replayed = Mismatch("tis", 2.0, sampler, 1.0, top_p=0.3, truncated_support=True)
    _, res = _update(cfg, model, r, mismatch=replayed)
    assert res.metrics["mismatch/kl"] < 1e-8 and abs(res.metrics["mismatch/ratio_mean"] - 1) < 1e-5
    full = Mismatch("tis", 2.0, sampler, 1.0, top_p=0.3, truncated_support=False)  # the biased comparison
    _, res = _update(cfg, model, r, mismatch=full)
    assert res.metrics["mismatch/ratio_mean"] < 0.9
