"""Half-precision training keeps fp32 master weights: small updates are not rounded away."""

import torch

from grpokit import models
from grpokit.rollout import HFEngine, SamplingParams
from grpokit.train.optim import adamw


def test_train_load_keeps_fp32_weights_and_computes_in_bf16(tiny_model):
    model, tok = models.load(tiny_model, device="cpu", dtype="bf16", train=True)
    assert next(model.parameters()).dtype == torch.float32
    assert models.compute_dtype(model) == torch.bfloat16
    ids = torch.tensor([[5, 6, 7]])
    with models.precision(model):
        assert model(input_ids=ids).logits.dtype == torch.bfloat16
    assert model(input_ids=ids).logits.dtype == torch.float32  # outside the context: plain fp32
    # Inference loads keep the weights in the compute dtype, and precision() is then a no-op.
    infer, _ = models.load(tiny_model, device="cpu", dtype="bf16")
    assert next(infer.parameters()).dtype == torch.bfloat16
    with models.precision(infer):
        assert not torch.is_autocast_enabled("cpu")


def test_a_small_update_survives_in_fp32_master_weights_but_not_in_bf16_weights(tiny_model):
    def step(model):
        before = [p.detach().clone() for p in model.parameters()]
        opt = adamw(model.parameters(), lr=1e-6, betas=(0.9, 0.999), weight_decay=0.0)
        with models.precision(model):
            loss = model(input_ids=torch.tensor([[5, 6, 7, 8]]), labels=torch.tensor([[5, 6, 7, 8]])).loss
        loss.backward()
        opt.step()
        return sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))

    mixed, _ = models.load(tiny_model, device="cpu", dtype="bf16", train=True)
    pure, _ = models.load(tiny_model, device="cpu", dtype="bf16")
    n = sum(p.numel() for p in mixed.parameters())
    assert step(mixed) > n // 2  # Adam moves every weight with a gradient by ~lr
    assert step(pure) < n // 20  # in bf16 a 1e-6 step is below the resolution of all but the tiniest weights


def test_sampling_under_mixed_precision_matches_the_hf_path(tiny_model):
    model, tok = models.load(tiny_model, device="cpu", dtype="bf16", train=True)
    params = SamplingParams(temperature=0.0, max_new_tokens=6)
    fast = HFEngine(model, tok).generate(["ab", "abc"], 2, params)
    slow = HFEngine(model, tok, fast=False).generate(["ab", "abc"], 2, params)
    assert fast.completion_ids.shape[0] == 4
    assert torch.equal(fast.completion_ids, slow.completion_ids)
    # the same logits, not just the same argmax: both attend in fp32 here (the decoder's cache is fp32)
    assert torch.equal(fast.sample_logp * fast.completion_mask, slow.sample_logp * slow.completion_mask)


def test_training_on_a_cpu_under_autocast_attends_in_fp32(tiny_model, monkeypatch, tmp_path):
    """bf16 autocast on a CPU: the products run in bf16 but attention in fp32 (the CPU's bf16
    flash-attention backward is slow); inference loads and fp32 training keep transformers' sdpa,
    and a saved checkpoint does not name grpokit's implementation."""
    model, _ = models.load(tiny_model, device="cpu", dtype="bf16", train=True)
    assert models.attends_in_fp32(model)
    assert not models.attends_in_fp32(models.load(tiny_model, device="cpu", dtype="fp32", train=True)[0])
    assert not models.attends_in_fp32(models.load(tiny_model, device="cpu", dtype="bf16")[0])

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    ids = torch.tensor([[5, 6, 7, 8]])
    with models.precision(model):
        out = model(input_ids=ids, labels=ids)
    assert out.logits.dtype == torch.bfloat16  # the products are still bf16
    assert seen and all(s == (torch.float32, torch.float32, torch.float32, False) for s in seen)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)

    model.save_pretrained(tmp_path)
    assert models.FP32_ATTENTION not in (tmp_path / "config.json").read_text()


def test_fp32_attention_runs_on_bf16_weights_without_autocast(tiny_model):
    """As under FSDP's bf16 all-gathers: bf16 weights, a bf16 additive 4D mask, no autocast. The
    output stays bf16 for the output projection, and equals the causal 2D-mask forward's."""
    model, _ = models.load(tiny_model, device="cpu", dtype="bf16", train=True)
    model.to(torch.bfloat16)
    ids = torch.tensor([[5, 6, 7, 8]])
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bfloat16).masked_fill_(~causal, torch.finfo(torch.bfloat16).min)
    logits = model(input_ids=ids, attention_mask=mask).logits
    assert logits.dtype == torch.bfloat16
    assert torch.equal(logits, model(input_ids=ids).logits)
