"""A lean forward pass for Llama-family decoders with a preallocated KV cache.

Sampling is a loop of one-token forward passes; on a CPU the Hugging Face forward spends most of
each step on per-call overhead (mask construction, cache objects), not on arithmetic. This module
runs the same modules' weights (``q_proj``, ``mlp``, norms, the model's own rotary embedding) with
a static ``[N, H_kv, S, D]`` cache written in place, and nothing else. It is used only for
sampling; training goes through the model's own forward so autograd sees the real graph.

Supported: ``LlamaForCausalLM`` and architectures with the same layer layout (Qwen2, Mistral
without sliding window). Anything else falls back to the Hugging Face path (``supports``).
Equivalence with the Hugging Face forward is tested in tests/rollout/test_engine.py.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from grpokit import models


def supports(model) -> bool:
    cfg = model.config
    if getattr(cfg, "model_type", None) not in models.LLAMA_FAMILY:
        return False
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True) and cfg.model_type != "llama":
        return False
    layer = model.model.layers[0]
    return hasattr(layer, "self_attn") and hasattr(layer.self_attn, "q_proj") and not hasattr(layer.self_attn, "q_norm")


class StaticCache:
    """Keys and values of every layer, ``[N, H_kv, S, D]`` each, filled up to ``length``."""

    def __init__(self, model, batch: int, max_len: int, dtype, device):
        cfg = model.config
        h_kv = cfg.num_key_value_heads
        d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        n_layers = cfg.num_hidden_layers
        self.k = [torch.zeros(batch, h_kv, max_len, d, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(batch, h_kv, max_len, d, dtype=dtype, device=device) for _ in range(n_layers)]
        self.key_mask = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        self.length = 0

    def select(self, keep: torch.Tensor) -> None:
        """Keep only rows ``keep`` (finished sequences leave the decode batch)."""
        self.k = [t.index_select(0, keep) for t in self.k]
        self.v = [t.index_select(0, keep) for t in self.v]
        self.key_mask = self.key_mask.index_select(0, keep)

    def expand(self, index: torch.Tensor, max_len: int) -> "StaticCache":
        """A new cache whose row ``n`` copies row ``index[n]`` of this one (prompt shared by G samples)."""
        new = StaticCache.__new__(StaticCache)
        L = self.length

        def grow(t):
            out = t.new_zeros(len(index), t.shape[1], max_len, t.shape[3])
            out[:, :, :L] = t.index_select(0, index)[:, :, :L]
            return out

        new.k = [grow(t) for t in self.k]
        new.v = [grow(t) for t in self.v]
        new.key_mask = self.key_mask.new_zeros(len(index), max_len)
        new.key_mask[:, :L] = self.key_mask.index_select(0, index)[:, :L]
        new.length = L
        return new


def cast_weights(model, dtype: torch.dtype) -> dict:
    """The ``nn.Linear`` weights of ``model`` cast to ``dtype`` once, for :func:`forward`'s ``weights``.

    Under autocast (fp32 weights, bf16 compute) every product casts its weight again, and a decode
    step is one product per weight: on a CPU the casts cost more than the bf16 products (SmolLM2,
    16 rows: 60% of a decode step was weight copies). Casting once per :meth:`generate` gives the
    products the very same bf16 values, so the tokens do not change. Empty when the weights are
    already in ``dtype``. Every ``nn.Linear``, LoRA adapters included (:func:`_lora_linear` multiplies by them):
    with rank-16 adapters on every SmolLM2 layer, autocast's casts of their small weights at every
    step made bf16 decoding slower than fp32's.
    """
    return {m: m.weight.detach().to(dtype) for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m.weight.dtype != dtype}


def _base_linears(model) -> list:
    """The ``nn.Linear`` modules of ``model`` that :func:`_linear` multiplies by, i.e. all but LoRA's
    adapters (those are multiplied in :func:`_lora_linear`, after the base product)."""
    adapters = {id(m) for layer in model.modules() if _is_lora(layer)
                for d in (layer.lora_A, layer.lora_B) for m in d.values()}
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and id(m) not in adapters]


class Packed:
    """An fp32 ``nn.Linear`` weight packed once for MKL's sgemm (:func:`pack_weights`)."""

    __slots__ = ("packed", "weight")

    def __init__(self, weight: torch.Tensor, rows: int):
        self.weight = weight
        self.packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)


class Reordered:
    """An fp32 ``nn.Linear`` weight reordered once into oneDNN's layout for its inner product (:func:`pack_weights`)."""

    __slots__ = ("packed",)

    def __init__(self, weight: torch.Tensor, rows: int):
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)


def can_pack(model) -> bool:
    """True where :func:`pack_weights` applies: fp32 weights on a CPU that :func:`packing` has a layout for."""
    p = next(model.parameters())
    return p.device.type == "cpu" and p.dtype == torch.float32 and packing() is not None


def library_available(kind: str) -> bool:
    """Whether torch here multiplies by weights packed for ``kind``: ``"mkl"`` where it is built with
    MKL, ``"onednn"`` where it is built with oneDNN and runs its AVX2 or AVX-512 kernels."""
    if kind == "mkl":
        return torch.backends.mkl.is_available()
    if kind == "onednn":
        return torch.backends.mkldnn.is_available() and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    raise ValueError(f"unknown packing library {kind!r}: 'mkl' or 'onednn'")


@functools.cache
def packing() -> str | None:
    """The library that multiplies the decoder's fp32 weights on this CPU, packed into its own layout:
    ``"mkl"`` on Intel CPUs, ``"onednn"`` on other x86 CPUs, None where that one is not available
    (:func:`library_available`).

    MKL picks its kernels by CPU vendor, oneDNN by instruction set. On Intel CPUs MKL's packed
    products were 19-35% faster than its plain ones at 16-64 rows (AVX-512 and AVX2 kernels); on an
    AMD EPYC (Zen 3, AVX2) MKL's packing made a 16-row SmolLM2 decode step 1.32x *slower*, and
    oneDNN's reordered weights made it 0.882x the time of MKL's plain products
    (``bench/decode_packing.py`` and ``bench/generate_ab.py`` measure whole generate calls,
    ``bench/decode_products.py`` one step's products in each library).
    """
    kind = "mkl" if "GenuineIntel" in models.cpu_vendor() else "onednn"
    return kind if library_available(kind) else None


def pack_weights(model, rows: int, kind: str | None = None) -> dict:
    """The fp32 ``nn.Linear`` weights of ``model`` packed for this CPU's library, for :func:`forward`'s ``weights``.

    A decode step is one product per weight with a few rows, and a weight laid out in the
    library's own kernel layout multiplies faster at 16-64 rows (:func:`packing`: MKL's packed
    sgemm on Intel CPUs, oneDNN's reordered inner product elsewhere on x86). Packing costs about one
    pass over the weights, so it pays when a call decodes more than a few tokens; the weights change
    at every optimizer step, so :meth:`HFEngine.generate` packs once per call. The products are the
    same dot products summed in another order: the logits agree within fp32 rounding and the
    sampled tokens are the same (tests/rollout/test_engine.py; the benchmark checks the tokens on
    SmolLM2). ``rows`` is the library's hint for the batch it will see; ``kind`` overrides
    :func:`packing` (``"mkl"`` or ``"onednn"``). Empty where :func:`can_pack` is false.
    """
    if not can_pack(model):
        return {}
    layout = {"mkl": Packed, "onednn": Reordered}[kind or packing()]
    return {lin: layout(lin.weight.detach(), rows) for lin in _base_linears(model)}


def _is_lora(lin) -> bool:
    """A PEFT LoRA ``Linear`` wrapping an ``nn.Linear`` (``base_layer``) with ``lora_A``/``lora_B`` adapters."""
    return (hasattr(lin, "lora_A") and hasattr(lin, "lora_B") and isinstance(getattr(lin, "base_layer", None), torch.nn.Linear)
            and isinstance(getattr(lin, "lora_variant", None), dict))


def _lora_linear(x: torch.Tensor, lin, weights: dict | None) -> torch.Tensor:
    """PEFT's LoRA ``Linear.forward`` (peft 0.17-0.21) with the base product through :func:`_linear`:
    ``base(x) + sum over active adapters of B(A(dropout(x))) * scaling``, in the same order, the
    adapters' weights from ``weights`` where :func:`cast_weights` cast them.
    Variants (DoRA, ...) and mixed-adapter batches go through the module itself."""
    if lin.disable_adapters or lin.merged:
        return _linear(x, lin.base_layer, weights)
    active = [a for a in lin.active_adapters if a in lin.lora_A.keys()]
    if any(a in lin.lora_variant for a in active):
        return lin(x)
    result = _linear(x, lin.base_layer, weights)
    dtype = result.dtype
    for a in active:
        A, B = lin.lora_A[a], lin.lora_B[a]
        if weights and A in weights and B in weights:  # cast once (cast_weights): the values autocast gives each call
            result = result + F.linear(F.linear(lin.lora_dropout[a](x), weights[A], A.bias), weights[B], B.bias) * lin.scaling[a]
        else:
            x = lin._cast_input_dtype(x, A.weight.dtype)
            result = result + B(A(lin.lora_dropout[a](x))) * lin.scaling[a]
    return result.to(dtype)


# Below this many rows a CPU matmul is faster as ``W @ x.T`` than as ``x @ W.T`` (MKL picks a
# better kernel for a tall-thin product: 25 ms instead of 50 ms for SmolLM2's [49152, 576] head at
# 16 rows, 15% less for its layer weights). The products are the same dot products.
_THIN_ROWS = 64


def _linear(x: torch.Tensor, lin, weights: dict | None = None) -> torch.Tensor:
    """``lin(x)`` for an ``nn.Linear``, through the faster product for a few rows on a CPU, with
    its weight from ``weights`` (:func:`cast_weights`, :func:`pack_weights`) where it has one."""
    if not isinstance(lin, torch.nn.Linear):
        return _lora_linear(x, lin, weights) if _is_lora(lin) else lin(x)
    w = weights.get(lin, lin.weight) if weights else lin.weight
    rows = x.numel() // x.shape[-1]
    if not isinstance(w, (Packed, Reordered)) and (x.device.type != "cpu" or rows > _THIN_ROWS):
        return F.linear(x, w, lin.bias)
    y = product(x.reshape(rows, -1), w, lin.bias)
    return y.reshape(*x.shape[:-1], y.shape[-1])


def product(x: torch.Tensor, w, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ W.T + bias`` for a few ``[rows, in]`` rows on a CPU, ``w`` a plain ``[out, in]`` weight
    (multiplied as ``W @ x.T``, see ``_THIN_ROWS``), :class:`Packed` or :class:`Reordered`."""
    if isinstance(w, Packed):
        return torch.ops.mkl._mkl_linear(x, w.packed, w.weight, bias, x.shape[0])
    if isinstance(w, Reordered):
        return torch.ops.mkldnn._linear_pointwise(x, w.packed, bias, "none", [], "")
    y = (w @ x.t()).t().contiguous()
    return y if bias is None else y + bias


def _mlp(mlp, x: torch.Tensor, w: dict | None) -> torch.Tensor:
    """The gated MLP ``down(act(gate(x)) * up(x))`` of Llama/Qwen2/Mistral with :func:`_linear`."""
    if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")):
        return mlp(x)
    return _linear(mlp.act_fn(_linear(x, mlp.gate_proj, w)) * _linear(x, mlp.up_proj, w), mlp.down_proj, w)


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


@torch.inference_mode()
def forward(model, input_ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: StaticCache,
            weights: dict | None = None) -> torch.Tensor:
    """Run ``L`` new tokens per row through the model, appending their keys/values to ``cache``.

    Args:
        input_ids: ``[N, L]`` new tokens (left padding allowed in the first call).
        positions: ``[N, L]`` rotary positions of those tokens.
        valid: ``[N, L]`` bool, False for padding (never attended to).
        cache: written in place at ``[cache.length, cache.length + L)``.
        weights: :func:`cast_weights` of the model under autocast (same values, cast once), or
            :func:`pack_weights` of an fp32 model on a CPU.

    Returns:
        ``[N, V]`` logits of the last new token of each row.
    """
    cfg = model.config
    inner = model.model
    n, L = input_ids.shape
    h = cfg.num_attention_heads
    h_kv = cfg.num_key_value_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // h
    start, end = cache.length, cache.length + L
    cache.key_mask[:, start:end] = valid
    x = inner.embed_tokens(input_ids)  # [N, L, C]
    cos, sin = inner.rotary_emb(x, positions)  # [N, L, D]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    # Query i may see key j when j is a real token and j <= i (keys past `end` are still empty).
    causal = torch.ones(L, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
    mask = cache.key_mask[:, None, None, :end] & causal[None, None]  # [N, 1, L, end]
    # Every query also sees itself, so a padding row never attends to nothing (softmax of all -inf
    # is NaN, and 0 * NaN in the value sum would poison real rows).
    mask[..., start:end] |= torch.eye(L, dtype=torch.bool, device=x.device)
    for i, layer in enumerate(inner.layers):
        attn = layer.self_attn
        y = layer.input_layernorm(x)
        q = _linear(y, attn.q_proj, weights).view(n, L, h, d).transpose(1, 2)
        k = _linear(y, attn.k_proj, weights).view(n, L, h_kv, d).transpose(1, 2)
        v = _linear(y, attn.v_proj, weights).view(n, L, h_kv, d).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        cache.k[i][:, :, start:end] = k
        cache.v[i][:, :, start:end] = v
        # Attention runs in the cache's dtype, autocast off: bf16, or fp32 where the model's own
        # attention is fp32 (models.attends_in_fp32). Under autocast q comes out in fp32 (rotary tables).
        with torch.autocast(x.device.type, enabled=False):
            o = F.scaled_dot_product_attention(q.to(cache.k[i].dtype), cache.k[i][:, :, :end], cache.v[i][:, :, :end],
                                               attn_mask=mask, scale=attn.scaling, enable_gqa=h != h_kv).to(q.dtype)
        x = x + _linear(o.transpose(1, 2).reshape(n, L, h * d), attn.o_proj, weights)
        x = x + _mlp(layer.mlp, layer.post_attention_layernorm(x), weights)
    cache.length = end
    last = inner.norm(x[:, -1])  # [N, C]
    return _linear(last, model.lm_head, weights)
