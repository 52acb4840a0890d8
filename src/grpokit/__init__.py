"""grpokit: GRPO and the DeepSeek-R1 recipes, correct, fast and transparent.

The data flows one way, and the package follows it:

    tasks -> rollout (G completions per prompt) -> rewards (verifiers) -> algo (advantages,
    losses, KL) -> train (the loop, optimizer, checkpoints) -> eval / tracking / explorer

Nothing runs at import time; import the submodule you need.
"""

__version__ = "0.1.0"
