"""How the ranks hold the models: replicated (``--sharding ddp``, the default) or sharded with FSDP2.

    ddp    every rank holds the whole policy, its gradients and AdamW moments; gradients are summed
           once per optimizer step (:meth:`grpokit.train.dist.Dist.sum_grads`). 16 bytes per
           trainable parameter on every rank.
    fsdp   PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``, ZeRO-3): each decoder layer
           (``_no_split_modules``, what Accelerate's FSDP wraps) and then the whole model become
           FSDP units. A rank keeps 1/W of every fp32 weight, gradient and AdamW moment; a unit's
           weights are all-gathered for its forward and backward and freed after, its gradients
           reduce-scattered (summed: the loss is already divided by the global normaliser). The
           reference model (frozen) and PPO's critic (separate trunk) are sharded the same way.
           With a bf16/fp16 compute dtype (CUDA) ``MixedPrecisionPolicy`` all-gathers the weights
           in that dtype and reduces gradients in fp32, over fp32 master shards: the
           single-process path's precision.

Where FSDP needs care, and what this module does about it:

    sampling    the HF engine decodes with full weights: :func:`gathered` all-gathers every unit
                once (``unshard()``) and keeps it whole until sampling ends. Leaving the forward to
                FSDP's per-layer all-gather would not work: ranks decode different numbers of token
                steps (so their per-layer all-gathers would not pair up and the job would hang), and
                the fast decoder reads the layers' weights directly, bypassing the modules' forward
                hooks. The same holds for the no-gradient log-prob passes (their number of
                micro-batches differs between ranks) and rank 0's evaluation. Cost: one full copy
                of the weights (in the compute dtype) while it lasts, as in veRL's HF rollout.
    update      forward/backward under gradient run unit by unit with collectives, so every rank
                must run as many micro-steps, each one forward: :func:`pad_micro_steps` tops up the
                short ranks with a zero-loss pass, and the update computes every sequence whole (no
                shared-prompt pass, which is two forwards).
    clipping    ``clip_grad_norm_`` on DTensor gradients computes the global norm over all shards.
    checkpoints :func:`full_state_dict` gathers the full weights to rank 0's CPU
                (``get_model_state_dict(full_state_dict=True, cpu_offload=True)``) for an ordinary
                Hugging Face folder; :func:`optimizer_state` the full AdamW state, stored in the
                format ``optimizer.state_dict()`` of one unsharded process has, so a checkpoint does
                not depend on the number of ranks or on sharding and resumes either way
                (:func:`load_optimizer_state`). Saving is a collective: every rank calls it.

One process (no torchrun) never shards: there is nothing to shard over, and the run is the
single-process path.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def _fsdp():
    from torch.distributed import fsdp

    return fsdp


def is_sharded(model) -> bool:
    """True when ``model`` is an FSDP2 root (its parameters are DTensor shards)."""
    try:
        fsdp = _fsdp()
    except ImportError:  # a torch built without distributed support shards nothing
        return False
    return model is not None and isinstance(model, fsdp.FSDPModule)


def shard(model, compute_dtype: torch.dtype | None = None):
    """``model`` with each decoder layer and then the whole model wrapped by ``fully_shard`` (in place).

    ``compute_dtype`` below fp32 all-gathers weights in it (bf16 compute, fp32 master shards,
    fp32 gradient reduction). Gradients are summed over ranks, not averaged.
    """
    fsdp = _fsdp()
    mp = fsdp.MixedPrecisionPolicy()
    if compute_dtype is not None and compute_dtype != torch.float32:
        mp = fsdp.MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    names = {n for m in model.modules() for n in (getattr(m, "_no_split_modules", None) or ())}  # (a critic: its trunk's)
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"--sharding fsdp: {type(model).__name__} names no decoder layer class in _no_split_modules, "
                         "so there is nothing to shard layer by layer; use --sharding ddp")
    for layer in layers:
        fsdp.fully_shard(layer, mp_policy=mp)
    fsdp.fully_shard(model, mp_policy=mp)
    for m in model.modules():
        if isinstance(m, fsdp.FSDPModule):
            m.set_gradient_divide_factor(1.0)  # a sum: each rank's loss is already divided by the global normaliser
            m.set_force_sum_reduction_for_comms(True)  # ReduceOp.SUM (gloo has no PREMUL_SUM); factor 1: no division
    return model


def _units(*models) -> list:
    fsdp = _fsdp()
    return [m for model in models if model is not None for m in model.modules() if isinstance(m, fsdp.FSDPModule)]


def _reshards_after_forward(unit) -> bool:
    return any(g.post_forward_mesh_info is not None for g in unit._get_fsdp_state()._fsdp_param_groups)


@contextmanager
def gathered(*models):
    """Inside: every FSDP unit of ``models`` holds its full weights (one all-gather each, on entry),
    so forwards run without collectives, on any number of calls per rank. A no-op for unsharded models.
    Every rank must enter it (the all-gather); leaving it is local."""
    units = _units(*models)
    before = [_reshards_after_forward(u) for u in units]
    for u in units:
        u.set_reshard_after_forward(False, recurse=False)
        u.unshard()
    try:
        yield
    finally:
        for u, was in zip(units, before):
            u.reshard()
            u.set_reshard_after_forward(was, recurse=False)


def pad_micro_steps(chunks: list, d, model) -> list:
    """``chunks`` topped up with ``None`` (a zero-loss micro-step) to the most any rank has, when
    ``model`` is sharded: each forward/backward under gradient is a collective of every rank."""
    if not is_sharded(model):
        return chunks
    return chunks + [None] * (d.max(len(chunks)) - len(chunks))


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dict(model) -> dict | None:
    """The full weights on rank 0's CPU (other ranks: an empty dict); a collective. Tied weights
    (lm_head = embed_tokens) share one tensor again, so ``save_pretrained`` writes them once as an
    unsharded model does."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sd = get_model_state_dict(model, options=_options())
    if sd:
        first: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            if id(p) in first and name in sd and first[id(p)] in sd:
                sd[name] = sd[first[id(p)]]
            first.setdefault(id(p), name)
    return sd


def load_full_state_dict(model, sd: dict) -> None:
    """Load full (unsharded) weights ``sd`` into ``model``, sharded or not (every rank passes ``sd``)."""
    if not is_sharded(model):
        model.load_state_dict(sd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True))


def _names(model, optimizer) -> list[str]:
    """The parameter name of each optimizer slot, in ``optimizer.state_dict()``'s numbering."""
    name = {id(p): n for n, p in model.named_parameters()}
    return [name[id(p)] for group in optimizer.param_groups for p in group["params"]]


def optimizer_state(model, optimizer) -> dict:
    """``optimizer.state_dict()`` as one unsharded process would have it: the full AdamW moments on
    rank 0's CPU, numbered like the unsharded optimizer's slots (other ranks: {}). A collective."""
    if not is_sharded(model) or not optimizer.state:
        # (no state yet, before the first step: get_optimizer_state_dict would create it by a zero-lr
        # step(), which counts as AdamW's first step and shrinks the real first update ~0.74x;
        # pytorch/pytorch#164929, open)
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    full = get_optimizer_state_dict(model, optimizer, options=_options())
    if not full:
        return {}
    index = {n: i for i, n in enumerate(_names(model, optimizer))}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]
    return {"state": {index[n]: s for n, s in full["state"].items()}, "param_groups": groups}


def load_optimizer_state(model, optimizer, state: dict) -> None:
    """Load a state saved by :func:`optimizer_state` (or by an unsharded ``optimizer.state_dict()``)."""
    if not is_sharded(model) or not state["state"]:  # (an empty state: nothing to shard; see optimizer_state)
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _names(model, optimizer)
    full = {"state": {names[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, full, options=StateDictOptions(full_state_dict=True))
