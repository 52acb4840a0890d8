"""Evaluation: accuracy estimators with error bars, behaviour metrics, and scoring of sampled texts.

- :mod:`~grpokit.evaluation.estimators`: unbiased pass@k, pass@1 over k samples, maj@k / cons@k,
  standard errors and intervals (pure functions).
- :mod:`~grpokit.evaluation.behaviour`: length, reflective words, format, language mix, repetition,
  entropy and "aha" candidates of a batch of completions, as flat ``behaviour/*`` metrics.
- :mod:`~grpokit.evaluation.runner`: :func:`evaluate_samples` ties both together for ``grpokit eval``.
"""
