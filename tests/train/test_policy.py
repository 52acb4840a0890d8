"""Memory options of the policy: gradient checkpointing gives the same gradient and the same run."""

import pytest
import torch

from grpokit import models
from grpokit.train.batch import TrainBatch
from grpokit.train.policy import enable_checkpointing, is_checkpointing
from grpokit.train.update import _logprobs
from grpokit.run_folder import RunReader
from tests.train.test_loop import _cfg
from grpokit.train.loop import train

DIGITS = "tests.train.rewards_for_tests:digit_share"  # varies within a group: every step learns


def _batch(G=3, B=2, P=5, T=7, vocab=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    N = B * G
    prompt = torch.randint(4, vocab, (B, P), generator=g).repeat_interleave(G, 0)
    pm = torch.ones(B * G, P, dtype=torch.long)
    pm[:G, :2] = 0  # the first prompt is left-padded
    comp = torch.randint(4, vocab, (N, T), generator=g)
    cm = torch.ones(N, T, dtype=torch.long)
    for i, n in enumerate([7, 3, 5, 1, 6, 2]):
        cm[i, n:] = 0
    return TrainBatch(prompt, pm, comp, cm)


def _grads(model, batch, G):
    model.zero_grad(set_to_none=True)
    model.train()
    rows = list(range(len(batch)))
    logp, cm, _ = _logprobs(model, batch, rows, G, 1.0)
    w = torch.linspace(-1, 1, logp.numel()).view_as(logp)  # a loss that weighs every token differently
    ((logp * w * cm).sum()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointing_gives_the_same_gradient(tiny_model):
    plain, _ = models.load(tiny_model, device="cpu", dtype="fp32", train=True)
    ckpt, _ = models.load(tiny_model, device="cpu", dtype="fp32", train=True)
    enable_checkpointing(ckpt)
    ckpt.train()
    assert is_checkpointing(ckpt) and not is_checkpointing(plain)
    batch = _batch()
    want, got = _grads(plain, batch, 3), _grads(ckpt, batch, 3)
    assert want.keys() == got.keys() and len(want) > 0
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)


def test_a_checkpointed_run_computes_the_same_step(tiny_model, tmp_path):
    # One step through the real loop (the per-sequence path under checkpointing, the shared-prompt
    # path without): same loss and gradient norm. Weights after several steps are not compared:
    # AdamW turns fp32 rounding differences in near-zero gradients into lr-sized steps.
    kw = dict(steps=1, beta=0.04, rewards={DIGITS: 1.0}, dtype="fp32")  # bf16 would round the two paths apart
    a = RunReader(train(_cfg(tiny_model, tmp_path, "plain", **kw))).metrics()[0]
    b = RunReader(train(_cfg(tiny_model, tmp_path, "ckpt", gradient_checkpointing=True, **kw))).metrics()[0]
    assert a["reward/std"] > 0 and a["optim/grad_norm"] > 0  # the step had something to learn
    for key in ("reward/mean", "loss/policy", "optim/grad_norm", "policy/entropy"):
        assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
