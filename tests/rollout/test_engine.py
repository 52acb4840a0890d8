"""The rollout engine: exact against the Hugging Face forward, masks up to and including EOS."""

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpokit import models
from grpokit.rollout import HFEngine, SamplingParams, render
from grpokit.rollout import fast_decode
from grpokit.rollout.templates import R1_ZERO


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _decode_and_hf_logits(model, cache_dtype=torch.float32, weights=None):
    """Last-token logits of left-padded prompts and 3 decode steps, from the fast decoder and from the
    model's own forward, under :func:`models.precision` (pairs of ``[3, V]``)."""
    torch.manual_seed(0)
    ids = torch.randint(5, 60, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, :3] = 0
    mask[2, :1] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    nxt = torch.randint(5, 60, (3, 3))
    cache = fast_decode.StaticCache(model, 3, 10, cache_dtype, "cpu")
    pairs = []
    with models.precision(model), torch.no_grad():
        got = fast_decode.forward(model, ids, pos, mask.bool(), cache, weights)
        for t in range(4):
            if t:
                got = fast_decode.forward(model, nxt[:, t - 1:t], pos[:, -1:] + t, torch.ones(3, 1, dtype=torch.bool), cache, weights)
            full = torch.cat([ids, nxt[:, :t]], 1)
            fatt = torch.cat([mask, torch.ones(3, t, dtype=torch.long)], 1)
            pairs.append((got, model(input_ids=full, attention_mask=fatt, position_ids=(fatt.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]))
    return pairs


def test_fast_decode_matches_hf_forward(tiny_model):
    model, tok = _load(tiny_model)
    assert fast_decode.supports(model)
    for t, (got, want) in enumerate(_decode_and_hf_logits(model)):
        assert torch.allclose(got, want, atol=1e-4), t


def test_fast_decode_attends_in_fp32_like_the_model_under_cpu_mixed_precision(tiny_model):
    """A model trained on a CPU under bf16 autocast attends in fp32 (models.attends_in_fp32); the
    decoder with an fp32 cache (what HFEngine gives it then) computes the very same logits. (With a
    bf16 cache they differ by ~2e-3.)"""
    model, _ = models.load(tiny_model, device="cpu", dtype="bf16", train=True)
    assert models.attends_in_fp32(model)
    weights = fast_decode.cast_weights(model, torch.bfloat16)
    for t, (got, want) in enumerate(_decode_and_hf_logits(model, torch.float32, weights)):
        assert got.dtype == want.dtype == torch.bfloat16
        assert torch.equal(got, want), t


def _bf16_steps(model, ids, pos, weights):
    """Logits of a prefill of ``ids`` and one decode step under bf16 autocast, the products taking
    ``weights`` (:func:`fast_decode.cast_weights`; None: autocast casts at every product)."""
    n, p = ids.shape
    cache = fast_decode.StaticCache(model, n, p + 1, torch.bfloat16, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = [fast_decode.forward(model, ids, pos, torch.ones(n, p, dtype=torch.bool), cache, weights)]
        out.append(fast_decode.forward(model, ids[:, :1], pos[:, -1:] + 1, torch.ones(n, 1, dtype=torch.bool), cache, weights))
    return out


def test_weights_cast_once_give_the_autocast_logits(tiny_model):
    """Under bf16 autocast, weights cast once per generate call == autocast casting them at every product."""
    model, _ = _load(tiny_model)
    torch.manual_seed(0)
    ids, pos = torch.randint(5, 60, (4, 6)), torch.arange(6).repeat(4, 1)
    weights = fast_decode.cast_weights(model, torch.bfloat16)
    assert len(weights) == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert all(w.dtype == torch.bfloat16 for w in weights.values())
    for a, b in zip(_bf16_steps(model, ids, pos, None), _bf16_steps(model, ids, pos, weights)):
        assert torch.equal(a, b)
    assert fast_decode.cast_weights(model, torch.float32) == {}  # fp32 weights: nothing to cast


_LIBRARIES = {kind: fast_decode.library_available(kind) for kind in ("mkl", "onednn")}


@pytest.mark.parametrize("kind", ["mkl", "onednn"])
def test_packed_weights_give_the_same_logits_and_tokens(tiny_model, kind):
    """fp32 weights packed once per generate call for MKL or oneDNN: the decoder's logits equal the
    plain weights' (the same dot products), and generate samples the same tokens with and without."""
    if not _LIBRARIES[kind]:
        pytest.skip(f"torch here has no {kind} for this CPU")
    model, tok = _load(tiny_model)
    torch.manual_seed(0)
    ids, pos = torch.randint(5, 60, (4, 6)), torch.arange(6).repeat(4, 1)
    packed = fast_decode.pack_weights(model, 4, kind)
    assert len(packed) == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert all(isinstance(w, {"mkl": fast_decode.Packed, "onednn": fast_decode.Reordered}[kind]) for w in packed.values())
    got = []
    for w in (None, packed):
        cache = fast_decode.StaticCache(model, 4, 8, torch.float32, "cpu")
        out = [fast_decode.forward(model, ids, pos, torch.ones(4, 6, dtype=torch.bool), cache, w)]
        for t in range(2):
            out.append(fast_decode.forward(model, ids[:, t:t + 1], pos[:, -1:] + 1 + t, torch.ones(4, 1, dtype=torch.bool), cache, w))
        got.append(out)
    for a, b in zip(*got):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    prompts = [render(tok, "Calculate 1 + 2."), render(tok, "Hi")]
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    runs = []
    for pack in (False, kind):
        eng = HFEngine(model, tok)
        eng.pack = pack
        runs.append(eng.generate(prompts, 3, params, torch.Generator().manual_seed(3)))
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids)
    assert torch.allclose(runs[0].sample_logp, runs[1].sample_logp, atol=1e-5)
    assert fast_decode.can_pack(model)
    assert not fast_decode.can_pack(model.to(torch.bfloat16))  # bf16 weights: nothing to pack


def test_the_packing_library_follows_the_cpu_vendor(monkeypatch):
    """MKL picks its kernels by vendor: its packed products were faster on Intel CPUs and 1.32x
    slower per decode step on an AMD EPYC, where oneDNN's reordered weights were faster. So MKL
    packs on GenuineIntel, oneDNN on other x86 CPUs."""
    cases = (("GenuineIntel", "mkl" if _LIBRARIES["mkl"] else None),
             ("AuthenticAMD", "onednn" if _LIBRARIES["onednn"] else None),
             ("", "onednn" if _LIBRARIES["onednn"] else None))
    for vendor, want in cases:
        fast_decode.packing.cache_clear()
        monkeypatch.setattr(models, "cpu_vendor", lambda v=vendor: v)
        assert fast_decode.packing() == want, vendor
    fast_decode.packing.cache_clear()
    monkeypatch.undo()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            assert f"vendor_id\t: {models.cpu_vendor()}\n" in f.read()


def test_fast_and_hf_paths_sample_the_same_tokens(tiny_model):
    model, tok = _load(tiny_model)
    prompts = [render(tok, "Calculate 1 + 2."), render(tok, "Hi")]
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    a = HFEngine(model, tok, fast=True).generate(prompts, 3, params, torch.Generator().manual_seed(3))
    b = HFEngine(model, tok, fast=False).generate(prompts, 3, params, torch.Generator().manual_seed(3))
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert torch.allclose(a.sample_logp, b.sample_logp, atol=1e-4)


def test_masks_truncation_and_grouping(tiny_model):
    model, tok = _load(tiny_model)
    eos = tok.eos_token_id
    # make EOS very likely so some sequences end early and some do not
    with torch.no_grad():
        model.lm_head.weight[eos] *= 0
        model.model.embed_tokens.weight[eos] *= 0
    prompts = [render(tok, "a"), render(tok, "bb")]
    r = HFEngine(model, tok).generate(prompts, 4, SamplingParams(temperature=1.5, max_new_tokens=6), torch.Generator().manual_seed(0))
    N, T = r.completion_ids.shape
    assert N == 8 and T <= 6
    assert r.prompts[:4] == [prompts[0]] * 4 and r.prompts[4:] == [prompts[1]] * 4
    for i in range(N):
        row, m = r.completion_ids[i].tolist(), r.completion_mask[i].tolist()
        if eos in row:
            k = row.index(eos)
            assert m == [1] * (k + 1) + [0] * (T - k - 1), "mask covers tokens up to and including EOS"
            assert not r.truncated[i]
        else:
            assert all(m) and T == 6 and r.truncated[i]


def test_greedy_is_deterministic_and_templates(tiny_model):
    model, tok = _load(tiny_model)
    e = HFEngine(model, tok)
    p = SamplingParams(temperature=0.0, max_new_tokens=5)
    assert e.generate(["abc"], 2, p).completions == e.generate(["abc"], 2, p).completions
    text = render(tok, "What is 2+2?", "r1_zero")
    assert text == R1_ZERO.replace("{prompt}", "What is 2+2?") and text.endswith("Assistant:")
    assert render(tok, "q", "chat").endswith("<|im_start|>assistant\n")


def test_dropping_finished_rows_does_not_change_samples(tiny_model):
    model, tok = _load(tiny_model)
    prompts = [render(tok, "a"), render(tok, "bb"), render(tok, "ccc")]
    params = SamplingParams(temperature=1.3, top_p=0.9, max_new_tokens=10)
    fast, slow = HFEngine(model, tok, fast=True), HFEngine(model, tok, fast=False)
    # Many stop tokens: rows finish at different steps, so the fast path drops finished rows.
    fast.stop_ids = slow.stop_ids = list(range(4, 24))
    a = fast.generate(prompts, 4, params, torch.Generator().manual_seed(5))
    b = slow.generate(prompts, 4, params, torch.Generator().manual_seed(5))
    lengths = a.lengths.tolist()
    assert len(set(lengths)) > 2, "the test needs rows of different lengths"
    assert torch.equal(a.completion_ids, b.completion_ids) and a.completions == b.completions
    assert torch.allclose(a.sample_logp, b.sample_logp, atol=1e-4)


def _lora(path):
    """The tiny model with PEFT LoRA adapters (r=4) on every linear layer, B random (it starts at zero:
    this way the adapters change the outputs); the global generator left seeded at 0."""
    peft = pytest.importorskip("peft")
    model, tok = _load(path)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                        task_type="CAUSAL_LM")).get_base_model()
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    return model, tok


def test_fast_decode_with_lora_adapters_matches_peft(tiny_model):
    """LoRA layers decode through the lean path (base product + adapters) with PEFT's values and tokens."""
    model, tok = _lora(tiny_model)
    assert any(fast_decode._is_lora(m) for m in model.modules())
    ids, pos = torch.randint(5, 60, (3, 6)), torch.arange(6).repeat(3, 1)
    cache = fast_decode.StaticCache(model, 3, 6, torch.float32, "cpu")
    got = fast_decode.forward(model, ids, pos, torch.ones(3, 6, dtype=torch.bool), cache)
    with torch.no_grad():
        want = model(input_ids=ids, position_ids=pos).logits[:, -1]
    assert torch.allclose(got, want, atol=1e-4)
    prompts = [render(tok, "Calculate 1 + 2."), render(tok, "Hi")]
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    a = HFEngine(model, tok, fast=True).generate(prompts, 3, params, torch.Generator().manual_seed(3))
    b = HFEngine(model, tok, fast=False).generate(prompts, 3, params, torch.Generator().manual_seed(3))
    assert torch.equal(a.completion_ids, b.completion_ids)


def test_lora_adapter_weights_cast_once_give_the_autocast_logits(tiny_model):
    """Under bf16 autocast, LoRA adapters' weights cast once per generate call (with the base weights)
    give the logits and tokens of autocast casting them at every product."""
    model, tok = _lora(tiny_model)
    weights = fast_decode.cast_weights(model, torch.bfloat16)
    adapters = [m for layer in model.modules() if fast_decode._is_lora(layer) for m in (*layer.lora_A.values(), *layer.lora_B.values())]
    assert adapters and all(weights[m].dtype == torch.bfloat16 for m in adapters)
    ids, pos = torch.randint(5, 60, (3, 6)), torch.arange(6).repeat(3, 1)
    for a, b in zip(_bf16_steps(model, ids, pos, None), _bf16_steps(model, ids, pos, weights)):
        assert torch.equal(a, b)
    # and through generate: the engine casts once per call under the model's bf16 compute dtype
    model.grpokit_compute_dtype = torch.bfloat16
    prompts = [render(tok, "Calculate 1 + 2."), render(tok, "Hi")]
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    a = HFEngine(model, tok).generate(prompts, 3, params, torch.Generator().manual_seed(3))
    b = HFEngine(model, tok, fast=False).generate(prompts, 3, params, torch.Generator().manual_seed(3))
    assert torch.equal(a.completion_ids, b.completion_ids)


def test_sampler_draws_the_softmax_and_returns_its_log_probs():
    """Inverse-CDF sampling: frequencies follow softmax(logits / T); the log-prob is that of the
    untruncated softmax; a token without mass (-inf logit, outside top-p) is never drawn, not
    even at the extreme uniforms 0 and 1 - 2**-24."""
    from grpokit.rollout.hf import sample_next, uniforms

    logits = torch.tensor([[2.0, float("-inf"), 1.0, 0.0, -1.0, float("-inf")]])
    params = SamplingParams(temperature=0.7)
    n = 40000
    toks, lp = sample_next(logits.expand(n, 6), params, uniforms(n, torch.Generator().manual_seed(0), "cpu"))
    p = torch.softmax(logits[0] / 0.7, -1)
    freq = torch.bincount(toks, minlength=6).float() / n
    torch.testing.assert_close(freq, p, atol=0.01, rtol=0)
    assert freq[1] == 0 and freq[5] == 0
    torch.testing.assert_close(lp, torch.log(p)[toks], atol=1e-6, rtol=0)

    edges = torch.tensor([0.0, 1 - 2 ** -24])
    toks, _ = sample_next(logits.expand(2, 6), params, edges)
    assert toks.tolist() == [0, 4], "u = 0 draws the first token with mass, u -> 1 the last"
    nucleus = SamplingParams(temperature=0.7, top_p=0.8)  # keeps tokens 0 and 2 (p = .77, .18)
    toks, lp = sample_next(logits.expand(2, 6), nucleus, edges)
    assert toks.tolist() == [0, 2]
    torch.testing.assert_close(lp, torch.log(p)[toks], atol=1e-6, rtol=0)

    greedy, glp = sample_next(logits, SamplingParams(temperature=0.0), None)
    assert greedy.tolist() == [0]
    torch.testing.assert_close(glp, torch.log_softmax(logits, -1)[:, 0])
