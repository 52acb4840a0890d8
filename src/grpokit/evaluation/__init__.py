"""Evaluation: accuracy estimators with error bars, behaviour metrics, and scoring of sampled texts.

- :mod:`~grpokit.evaluation.estimators`: unbiased pass@k, pass@1 over k samples, maj@k / cons@k,
  standard errors and intervals (pure functions).
- :mod:`~grpokit.evaluation.behaviour`: length, reflective words, format, language mix, repetition,
  entropy and "aha" candidates of a batch of completions, as flat ``behaviour/*`` metrics.
- :mod:`~grpokit.evaluation.runner`: :func:`evaluate_samples` ties both together for ``grpokit eval``.
- :mod:`~grpokit.evaluation.answers`: per correctness reward, how to read a completion's answer (votes).
- :mod:`~grpokit.evaluation.command`: the ``grpokit eval`` command; generation and grading live in
  :mod:`grpokit.evaluation.accuracy`.
"""

R1_TEMPERATURE = 0.6
"""Sampling temperature of DeepSeek-R1's pass@1 evaluation (R1 paper, §3.1 "Evaluation Setup")."""
R1_TOP_P = 0.95
"""Nucleus mass of DeepSeek-R1's pass@1 evaluation (same section)."""
