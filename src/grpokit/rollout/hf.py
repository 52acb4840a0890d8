"""Sampling with a Hugging Face causal LM in the training process.

Two speed-ups over ``model.generate``, both exact (tested against the Hugging Face forward):
the prompt is prefilled once and its KV cache copied to its ``G`` samples, and for Llama-family
models the decode loop runs ``fast_decode``'s lean forward with a static cache. Other
architectures use the model's own forward with its dynamic cache.
"""

from __future__ import annotations

import time

import torch

from grpokit import models
from grpokit.records import Rollout
from grpokit.rollout import fast_decode
from grpokit.rollout.base import SamplingParams


def stop_token_ids(tokenizer, model) -> list[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), model.config, tokenizer):
        eos = getattr(src, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(e) for e in eos)
    if not ids:
        raise ValueError("the model and tokenizer define no eos_token_id: completions could never end")
    return sorted(ids)


def sample_next(logits: torch.Tensor, params: SamplingParams, u: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row from ``softmax(logits / T)`` restricted to the top-p nucleus, and its
    log-prob under the untruncated ``softmax(logits / T)`` (``log_softmax(logits)`` when greedy).
    ``[N, V], [N] -> [N], [N]``.

    Sampling inverts the CDF: token ``i`` is drawn when ``c[i-1] <= u * c[V-1] < c[i]`` for the
    running sum ``c`` of ``exp(z - max z)``, so a row needs one uniform ``u`` in [0, 1) per step
    instead of ``V`` Gumbel draws (SmolLM2, 16 rows: 1.0-1.4 ms instead of 6.6-11 ms a step on 2 cores,
    and 64 floats instead of 12 MB to send to a GPU). The running sum is fp32: a token's chance is
    resolved to the rounding of that sum (~6e-8 of the row's mass, as fine as the old Gumbel noise's
    clamp). ``u`` per original row at every step (:meth:`HFEngine._noise`) makes a row's samples
    independent of which other rows are still being decoded. Greedy (``T = 0``) needs no ``u``.
    """
    if params.temperature == 0:
        return logits.argmax(-1), torch.log_softmax(logits.float(), -1).max(-1).values
    z = logits.float() / params.temperature  # [N, V]
    m = z.amax(-1, keepdim=True)
    e = torch.exp(z - m)
    if params.top_p < 1.0:
        full = e.sum(-1, keepdim=True)
        sorted_e, order = e.sort(dim=-1, descending=True)
        # the most likely token always stays
        outside = sorted_e.cumsum(-1) - sorted_e >= params.top_p * full
        e = e.masked_fill(torch.zeros_like(outside).scatter_(-1, order, outside), 0.0)
    c = e.cumsum_(-1)  # e is ours: the running sum in place
    # u < 1 in fp32 (at most 1 - 2**-24), so u * c[-1] < c[-1] after rounding and the search lands
    # on a token whose c rose above its predecessor's, i.e. one with mass > 0.
    nxt = torch.searchsorted(c, u.to(c.dtype)[:, None] * c[:, -1:], right=True).squeeze(-1)  # [N]
    total = full if params.top_p < 1.0 else c[:, -1:]
    logp = z.gather(-1, nxt[:, None]) - m - total.log()
    return nxt, logp.squeeze(-1)


def uniforms(n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """``[n]`` draws from U[0, 1) on the generator's device (the CPU's when there is none), sent to ``device``."""
    gen_device = "cpu" if generator is None or generator.device.type == "cpu" else device
    return torch.rand(n, generator=generator, device=gen_device).to(device)


class HFEngine:
    """Rollout engine over a Hugging Face causal LM held in this process.

    Args:
        model: the policy (shared with the trainer: ``sync_weights`` is a no-op).
        tokenizer: its tokenizer; prompts are tokenized without adding special tokens (the
            rendered template already holds them).
        fast: use the static-cache decoder when the architecture supports it.
    """

    def __init__(self, model, tokenizer, fast: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.fast = fast and fast_decode.supports(model)
        self.pack: bool | str = True
        """Pack fp32 CPU weights once per :meth:`generate` into the layout of the library that
        multiplies them fastest here (``fast_decode.pack_weights``: MKL's on Intel CPUs, oneDNN's
        on other x86 CPUs); ``"mkl"`` or ``"onednn"`` picks the library, False packs nothing."""
        self.noise_rows: tuple[int, int] | None = None
        """``(first, total)``: draw the sampling noise of ``total`` rows and use rows ``first...``
        (data parallelism: a rank's share of the noise one process would draw for the whole batch)."""
        self.draws = 0
        """Noise blocks drawn by the last :meth:`generate` (one per decoded token position)."""
        self.prefill_s = 0.0
        """Seconds spent so far on the prompts' forward passes (the rest of generating is decoding)."""

    def sync_weights(self, model) -> None:
        self.model = model

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._left_pad([self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts])

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        return ids, mask

    def generate(self, prompts: list[str], n: int, params: SamplingParams, generator: torch.Generator | None = None) -> Rollout:
        return self._generate(*self._tokenize(prompts), prompts, n, params, generator)

    def generate_ids(self, rows: list[list[int]], n: int, params: SamplingParams,
                     generator: torch.Generator | None = None) -> Rollout:
        """As :meth:`generate`, continuing token ids as they are (no re-tokenising of decoded text).

        Multi-turn episodes (``grpokit.rollout.multiturn``) use it so that each turn continues
        exactly the ids sampled so far; ``Rollout.prompts`` holds the decoded contexts.
        """
        prompts = self.tokenizer.batch_decode(rows, skip_special_tokens=False)
        return self._generate(*self._left_pad(rows), prompts, n, params, generator)

    @torch.inference_mode()
    def _generate(self, ids, mask, prompts, n, params, generator) -> Rollout:
        model = self.model
        self.draws = 0
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            ids, mask = ids.to(device), mask.to(device)
            index = torch.arange(len(prompts), device=device).repeat_interleave(n)  # [N]
            step = self._fast_steps if self.fast else self._hf_steps
            with models.precision(model):
                tokens, logps = step(ids, mask, index, params, generator)
        finally:
            model.train(was_training)
        return self._package(prompts, n, ids, mask, index, tokens, logps, params)

    def _loop(self, first_logits, advance, N, params, generator, device, compact=None):
        """Shared sampling loop. ``advance(tokens [n], t) -> logits [n, V]`` for the rows still decoded.

        With ``compact(keep)``, rows that finished are dropped from the decode batch once a quarter
        of it has finished (decoding is compute-bound, so finished rows would cost as much as live
        ones). Returns ``[N, T]`` tokens (pad after the stop token) and their sampling log-probs.
        """
        stop = torch.tensor(self.stop_ids, device=device)
        T = params.max_new_tokens
        tokens = torch.full((N, T), self.pad_id, dtype=torch.long, device=device)
        logps = torch.zeros(N, T, device=device)
        rows = torch.arange(N, device=device)  # original row of each decoded row
        done = torch.zeros(N, dtype=torch.bool, device=device)  # per decoded row
        logits = first_logits
        last = 0
        for t in range(T):
            u = self._noise(N, generator, device).index_select(0, rows) if params.temperature > 0 else None
            nxt, lp = sample_next(logits, params, u)  # [n], [n]
            live = ~done
            tokens[rows[live], t] = nxt[live]
            logps[rows[live], t] = lp[live]
            last = t + 1
            done = done | torch.isin(nxt, stop)
            if bool(done.all()) or t == T - 1:
                break
            if compact is not None and int(done.sum()) * 4 >= len(rows):
                keep = (~done).nonzero().flatten()
                compact(keep)
                rows, nxt, done = rows[keep], nxt[keep], done[keep]
            logits = advance(nxt, t)
        return tokens[:, :last], logps[:, :last]

    def _noise(self, n: int, generator, device) -> torch.Tensor:
        """One uniform per original row for this step (:func:`sample_next`)."""
        self.draws += 1
        if self.noise_rows is None:
            return uniforms(n, generator, device)
        first, total = self.noise_rows
        return uniforms(total, generator, device)[first:first + n]

    def draw_noise(self, generator) -> None:
        """Advance ``generator`` by one step's noise of the whole batch (``noise_rows``), discarding it."""
        if self.noise_rows:
            uniforms(self.noise_rows[1], generator, "cpu")

    def _fast_steps(self, ids, mask, index, params, generator):
        B, P = ids.shape
        N = len(index)
        dtype = models.compute_dtype(self.model)
        # Under autocast, weights cast once here instead of at every product of every decode step;
        # fp32 weights on a CPU are packed once here for MKL or oneDNN (faster products, same dot products).
        if torch.is_autocast_enabled(ids.device.type):
            weights = fast_decode.cast_weights(self.model, dtype)
        else:
            kind = None if self.pack is True else self.pack
            weights = fast_decode.pack_weights(self.model, len(index), kind) if self.pack else None
        t0 = time.perf_counter()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, P]
        cache_dtype = torch.float32 if models.attends_in_fp32(self.model) else dtype  # attention's dtype
        prompt_cache = fast_decode.StaticCache(self.model, B, P, cache_dtype, ids.device)
        logits = fast_decode.forward(self.model, ids, positions, mask.bool(), prompt_cache, weights)  # [B, V]
        cache = prompt_cache.expand(index, P + params.max_new_tokens)
        del prompt_cache
        self.prefill_s += time.perf_counter() - t0
        state = {"pos": positions[:, -1:].index_select(0, index) + 1}  # [n, 1] next rotary position

        def advance(tok, t):
            ones = torch.ones(len(tok), 1, dtype=torch.bool, device=tok.device)
            return fast_decode.forward(self.model, tok[:, None], state["pos"] + t, ones, cache, weights)

        def compact(keep):
            cache.select(keep)
            state["pos"] = state["pos"].index_select(0, keep)

        return self._loop(logits.index_select(0, index), advance, N, params, generator, ids.device, compact)

    def _hf_steps(self, ids, mask, index, params, generator):
        from transformers import DynamicCache

        N = len(index)
        t0 = time.perf_counter()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        kw = models.cache_kwarg(self.model)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{kw: cache})
        cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else cache
        cache.batch_repeat_interleave(N // ids.shape[0])
        self.prefill_s += time.perf_counter() - t0
        attn = mask.index_select(0, index)
        next_pos = positions[:, -1:].index_select(0, index) + 1
        state = {"attn": attn}

        def advance(tok, t):
            state["attn"] = torch.cat([state["attn"], torch.ones_like(state["attn"][:, :1])], 1)
            o = self.model(input_ids=tok[:, None], attention_mask=state["attn"], position_ids=next_pos + t,
                           use_cache=True, **{kw: cache})
            return o.logits[:, -1]

        return self._loop(out.logits[:, -1].index_select(0, index), advance, N, params, generator, ids.device)

    def _package(self, prompts, n, ids, mask, index, tokens, logps, params) -> Rollout:
        stop = torch.tensor(self.stop_ids, device=tokens.device)
        is_stop = torch.isin(tokens, stop)
        # Mask: tokens up to and including the first stop token.
        after_stop = (is_stop.cumsum(-1) - is_stop.long()) > 0  # [N, T]
        cmask = (~after_stop).long()
        ended = is_stop.any(-1)
        truncated = ~ended
        tokens = torch.where(cmask.bool(), tokens, torch.full_like(tokens, self.pad_id))
        texts = self.tokenizer.batch_decode([row[m.bool()].tolist() for row, m in zip(tokens, cmask)], skip_special_tokens=True)
        return Rollout(
            prompt_ids=ids.index_select(0, index).cpu(),
            prompt_mask=mask.index_select(0, index).cpu(),
            completion_ids=tokens.cpu(),
            completion_mask=cmask.cpu(),
            truncated=truncated.cpu(),
            prompts=[prompts[i] for i in index.tolist()],
            completions=texts,
            sample_logp=(logps * cmask).cpu(),
        )
