"""PPO's value model: a decoder trunk with a scalar head, initialised from the policy.

This is the model GRPO deletes. By default it is a full copy of the policy's trunk (the
``AutoModelForCausalLM``'s ``base_model``, everything but the LM head) plus ``nn.Linear(hidden, 1)``:
a second model of the policy's size with its own gradients and AdamW state, as in verl, TinyZero
and OpenRLHF. ``shared=True`` puts the head on the policy's own trunk instead (the older
``ValueHead`` design of TRL): one trunk, the value loss flows into the policy's weights, and only
the head is the critic's own.

The head starts at zero, so at the first step every value is 0 and GAE's advantages are the
returns; the head learns first, the trunk follows from the second update.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

CRITIC_DIR = "critic"
_WEIGHTS = "value_model.safetensors"
_META = "critic.json"


class ValueModel(nn.Module):
    """``V``: hidden states of a causal decoder trunk -> one scalar per position.

    Args:
        trunk: the decoder without its LM head (``policy.base_model``), called with
            ``input_ids``, ``attention_mask``, ``position_ids`` and returning ``last_hidden_state``.
        hidden_size: width of the trunk's hidden states.
        shared: ``True`` when ``trunk`` is the policy's own: it is then not registered as a
            submodule, so ``parameters()``, ``state_dict()`` and the critic's optimizer hold the
            head only.
    """

    def __init__(self, trunk: nn.Module, hidden_size: int, *, shared: bool = False):
        super().__init__()
        self.shared = shared
        if shared:
            self._shared_trunk = (trunk,)  # a tuple hides it from nn.Module registration
        else:
            self.trunk = trunk
        p = next(trunk.parameters())
        self.head = nn.Linear(hidden_size, 1, device=p.device, dtype=p.dtype)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def body(self) -> nn.Module:
        return self._shared_trunk[0] if self.shared else self.trunk

    def forward(self, input_ids, attention_mask, position_ids, keep: int) -> torch.Tensor:
        """Values of the last ``keep`` positions, ``[n, keep]`` float32."""
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        hidden = out.last_hidden_state[:, -keep:]  # [n, keep, H]
        return self.head(hidden).squeeze(-1).float()


def _hidden_size(policy) -> int:
    cfg = policy.config.get_text_config() if hasattr(policy.config, "get_text_config") else policy.config
    return int(cfg.hidden_size)


def build_critic(policy: nn.Module, *, shared: bool = False) -> ValueModel:
    """A value model initialised from ``policy`` (a copy of its trunk, or its own trunk when ``shared``)."""
    trunk = policy.base_model
    if trunk is policy:
        raise ValueError(f"{type(policy).__name__} exposes no separate trunk (base_model); a critic needs a "
                         "Hugging Face *ForCausalLM model")
    if not shared:
        trunk = copy.deepcopy(trunk)
    critic = ValueModel(trunk, _hidden_size(policy), shared=shared)
    return critic.train()


def count_params(module: nn.Module | None) -> int:
    """Trainable parameters (each shared tensor once); 0 for ``None``."""
    if module is None:
        return 0
    return sum(p.numel() for p in {id(p): p for p in module.parameters() if p.requires_grad}.values())


def save_critic(critic: ValueModel, folder: Path, state: dict | None = None) -> Path:
    """Write ``folder/critic/`` (weights as safetensors + which trunk kind); returns that folder.
    ``state``: the full weights when ``critic`` holds only shards (FSDP)."""
    from safetensors.torch import save_file

    out = Path(folder) / CRITIC_DIR
    out.mkdir(parents=True, exist_ok=True)
    state = critic.state_dict() if state is None else state
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(out / _WEIGHTS))
    (out / _META).write_text(json.dumps({"trunk": "shared" if critic.shared else "separate"}) + "\n")
    return out


def load_critic(critic: ValueModel, folder: Path) -> None:
    """Load the weights saved by :func:`save_critic` under ``folder/critic/`` into ``critic``."""
    from safetensors.torch import load_file

    src = Path(folder) / CRITIC_DIR
    if not (src / _WEIGHTS).exists():
        raise FileNotFoundError(f"{src / _WEIGHTS} is missing: this checkpoint was saved without a critic; resume "
                                "it with the algorithm it was trained with (e.g. --algo grpo)")
    kind = json.loads((src / _META).read_text())["trunk"]
    mine = "shared" if critic.shared else "separate"
    if kind != mine:
        raise ValueError(f"the checkpoint's critic has a {kind} trunk but this run asks for {mine}: "
                         f"resume with --critic_trunk {kind}")
    device = next(critic.parameters()).device
    critic.load_state_dict(load_file(str(src / _WEIGHTS), device=str(device)))
