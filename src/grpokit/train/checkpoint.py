"""Checkpoints: a Hugging Face model folder plus the trainer's state, enough to resume exactly.

``checkpoints/step_000005/`` holds ``model.safetensors`` + ``config.json`` + tokenizer files
(``from_pretrained`` loads it as any model) and ``trainer_state.pt``: optimizer, scheduler, the
sampling generator, Python/torch RNG states, data position and step. PPO runs add ``critic/`` (the
value model's weights, see :mod:`grpokit.train.critic`) and the critic's optimizer state inside
``trainer_state.pt``. LoRA runs hold the adapters instead of ``model.safetensors`` (PEFT's
``adapter_config.json`` + ``adapter_model.safetensors``), and with ``--lora-save-merged`` the
merged full model in ``merged/``. A checkpoint is written to a
temporary folder, its files and the folder are flushed to disk (fsync), and only then renamed, so a
crash, a power cut or a full disk mid-save never leaves a half checkpoint that ``--resume`` would
pick.

A new run saves ``step_000000`` (the starting weights) before its first step, so a stop at any
moment leaves a resumable folder; it is removed when a later checkpoint exists.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from grpokit.train import faults
from grpokit.run_folder import CHECKPOINT_DIR, checkpoint_path, latest  # noqa: F401 (re-exported)
from grpokit.train.critic import save_critic
from grpokit.train.policy import MERGED_DIR, save_merged


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from (``resume``), or None for a new run; a clear error when
    ``--resume`` finds no checkpoint or a new run would write into an existing run's folder."""
    found = latest(run_dir) if resume else None
    if resume and found is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; start without --resume")
    if not resume and ((run_dir / "metrics.jsonl").exists() or latest(run_dir) is not None):
        raise FileExistsError(f"{run_dir} already holds a run: pass --resume true to continue it, or another --out")
    return found


def save(run_dir: Path, step: int, model, tokenizer, state: dict[str, Any], ref_state: dict | None = None, critic=None,
         merged: bool = False, weights: dict | None = None, critic_state: dict | None = None) -> Path:
    """Write checkpoint ``step`` atomically; ``merged``: a LoRA policy also as a full model in ``merged/``.

    ``weights``: the model's full state dict when ``model`` itself holds only shards (FSDP, see
    :mod:`grpokit.train.sharding`), and ``critic_state`` the critic's; ``ref_state``: the reference
    model's, when it moved (ref_reset_every).
    """
    final = checkpoint_path(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, **({"state_dict": weights} if weights is not None else {}))
        tokenizer.save_pretrained(tmp)
        if critic is not None:
            save_critic(critic, tmp, critic_state)
        if merged:
            save_merged(model, tokenizer, tmp / MERGED_DIR)
        full = {**state, "python_rng": random.getstate(), "torch_rng": torch.get_rng_state()}
        if ref_state is not None:
            full["ref_model"] = ref_state
        torch.save(full, tmp / "trainer_state.pt")
        _fsync_tree(tmp)
        faults.point("checkpointing", step)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        _fsync(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove(run_dir: Path, step: int) -> None:
    """Delete the checkpoint of ``step`` if there is one."""
    shutil.rmtree(checkpoint_path(run_dir, step), ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, then the folders themselves (their entries), to disk."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


def load_state(path: Path) -> dict[str, Any]:
    state = torch.load(Path(path) / "trainer_state.pt", weights_only=False)
    random.setstate(state["python_rng"])
    torch.set_rng_state(state["torch_rng"])
    return state
