"""``grpokit pipeline RECIPE``: multi-stage recipes (R1-Zero, R1, distillation) in one resumable run folder.

- :mod:`~grpokit.pipeline.recipe`: reading a recipe YAML, ``${var}`` / ``${stage.output}``
  references, command-line overrides.
- :mod:`~grpokit.pipeline.stages`: the stage kinds (``rl``, ``sft``, ``sample``, ``mix``, ``eval``),
  one function each in a registry.
- :mod:`~grpokit.pipeline.runner`: runs the stages in order with atomic manifests; skips finished
  stages, resumes an interrupted one, stops cleanly on a failure.
- :mod:`~grpokit.pipeline.evaluate`: the held-out evaluation stage and the side-by-side comparison.
"""

from grpokit.pipeline.runner import main  # noqa: F401  (`grpokit pipeline` calls grpokit.pipeline.main)
