"""Rollout: G completions per prompt, behind a small interface a vLLM engine can also implement."""

from grpokit.rollout.base import RolloutEngine, SamplingParams
from grpokit.rollout.hf import HFEngine
from grpokit.rollout.templates import R1_ZERO, TEMPLATES, render

__all__ = ["HFEngine", "R1_ZERO", "RolloutEngine", "SamplingParams", "TEMPLATES", "render"]
