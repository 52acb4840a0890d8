"""Sampling with a Hugging Face causal LM in the training process.

Two speed-ups over ``model.generate``, both exact (tested against the Hugging Face forward):
the prompt is prefilled once and its KV cache copied to its ``G`` samples, and for Llama-family
models the decode loop runs ``fast_decode``'s lean forward with a static cache. Other
architectures use the model's own forward with its dynamic cache.
"""

from __future__ import annotations

import torch

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


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits / T)`` restricted to the top-p nucleus. ``[N, V] -> [N]``."""
    if params.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)  # [N, V]
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < params.top_p  # always keeps the most likely token
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


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

    def sync_weights(self, model) -> None:
        self.model = model

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        return ids, mask

    @torch.inference_mode()
    def generate(self, prompts: list[str], n: int, params: SamplingParams, generator: torch.Generator | None = None) -> Rollout:
        model = self.model
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            ids, mask = self._tokenize(prompts)  # [B, P]
            ids, mask = ids.to(device), mask.to(device)
            index = torch.arange(len(prompts), device=device).repeat_interleave(n)  # [N]
            step = self._fast_steps if self.fast else self._hf_steps
            tokens, logps = step(ids, mask, index, params, generator)
        finally:
            model.train(was_training)
        return self._package(prompts, n, ids, mask, index, tokens, logps, params)

    def _loop(self, first_logits, advance, N, params, generator, device):
        """Shared sampling loop: ``advance(tokens [N], t) -> logits [N, V]``."""
        stop = torch.tensor(self.stop_ids, device=device)
        done = torch.zeros(N, dtype=torch.bool, device=device)
        tokens, logps = [], []
        logits = first_logits
        for t in range(params.max_new_tokens):
            nxt = sample_next(logits, params, generator)  # [N]
            temp = params.temperature if params.temperature > 0 else 1.0
            lp = torch.log_softmax(logits.float() / temp, -1).gather(-1, nxt[:, None]).squeeze(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            tokens.append(nxt)
            logps.append(torch.where(done, torch.zeros_like(lp), lp))
            done = done | torch.isin(nxt, stop)
            if bool(done.all()) or t == params.max_new_tokens - 1:
                break
            logits = advance(nxt, t)
        return torch.stack(tokens, 1), torch.stack(logps, 1)

    def _fast_steps(self, ids, mask, index, params, generator):
        B, P = ids.shape
        N = len(index)
        dtype = next(self.model.parameters()).dtype
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, P]
        prompt_cache = fast_decode.StaticCache(self.model, B, P, dtype, ids.device)
        logits = fast_decode.forward(self.model, ids, positions, mask.bool(), prompt_cache)  # [B, V]
        cache = prompt_cache.expand(index, P + params.max_new_tokens)
        del prompt_cache
        next_pos = positions[:, -1:].index_select(0, index) + 1  # [N, 1]
        ones = torch.ones(N, 1, dtype=torch.bool, device=ids.device)

        def advance(tok, t):
            return fast_decode.forward(self.model, tok[:, None], next_pos + t, ones, cache)

        return self._loop(logits.index_select(0, index), advance, N, params, generator, ids.device)

    def _hf_steps(self, ids, mask, index, params, generator):
        from transformers import DynamicCache

        N = len(index)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        cache.batch_repeat_interleave(N // ids.shape[0])
        attn = mask.index_select(0, index)
        next_pos = positions[:, -1:].index_select(0, index) + 1
        state = {"attn": attn}

        def advance(tok, t):
            state["attn"] = torch.cat([state["attn"], torch.ones_like(state["attn"][:, :1])], 1)
            o = self.model(input_ids=tok[:, None], attention_mask=state["attn"], position_ids=next_pos + t,
                           past_key_values=cache, use_cache=True)
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
