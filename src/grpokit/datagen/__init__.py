"""Making SFT data with the model at hand: rejection sampling, filters, and few-shot cold-start prompts.

- :mod:`~grpokit.datagen.filters`: what a kept sample must pass (correct, format, language, length,
  repetition, duplicate), one function per filter in a registry.
- :mod:`~grpokit.datagen.fewshot`: the cold-start prompt, demonstrations of ``<think>`` reasoning
  that checks and corrects itself before ``<answer>``.
- :mod:`~grpokit.datagen.sample`: ``grpokit sample``, k completions per prompt from a checkpoint,
  verified, filtered and written as a JSONL dataset with provenance (also distillation data).
"""
