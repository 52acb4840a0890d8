""""Try it" backends: sample a group of G completions from a run's checkpoint, now, and score it.

The server talks to any object that follows ``TryBackend``. ``LocalTryBackend`` is the real one:
it reads the run's own task and reward config, loads a checkpoint folder and samples and scores
with :func:`grpokit.rewards.generate.generate_and_score`, the path training uses (same reward
columns, the reward's own answer extractor). Its two hooks:

- ``engine``: ``checkpoint_dir -> RolloutEngine`` (default ``HFGenerator().engine``: the
  checkpoint in an :class:`grpokit.rollout.HFEngine`, the last one kept in memory);
- ``render``: ``(checkpoint_dir, question_text, config) -> prompt_text`` (default: the tokenizer's
  chat template when it has one, else the text itself).

Advantages are NOT computed here: the server does that (``grpokit.explorer.scaling``) so the page
can switch the scaling without sampling again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from grpokit.evaluation.answers import answer_extractor
from grpokit.run_folder.config_keys import cfg_get
from grpokit.records import Example
from grpokit.rewards.generate import generate_and_score
from grpokit.rollout import HFEngine, RolloutEngine, SamplingParams
from grpokit.run_folder import RunReader
from grpokit.tasks import load_task
from grpokit.rewards import build


@runtime_checkable
class TryBackend(Protocol):
    """What the "Try it" view needs. ``run`` is the ``RunReader`` of a run the server was given.

    - ``prompts(run)``: ``[{"id", "question", "answer", "source"}]`` to pick from.
    - ``checkpoints(run)``: checkpoint names the user may choose (newest first).
    - ``sample(run, checkpoint, question, answer, G, temperature)``: ``G`` completion dicts, each
      ``{"text": str, "rewards": {fn: float | None}, "reward": float | None, "valid": bool,
      "extracted": str | None, "length": int, "truncated": bool}``. ``checkpoint`` is one of
      ``checkpoints(run)`` (the server checks); raise ``ValueError`` with a fix for bad input.
    """

    def prompts(self, run: RunReader) -> list[dict[str, Any]]: ...

    def checkpoints(self, run: RunReader) -> list[str]: ...

    def sample(self, run: RunReader, checkpoint: str, question: str, answer: str, G: int,
               temperature: float) -> list[dict[str, Any]]: ...


EngineFn = Callable[[Path], RolloutEngine]
RenderFn = Callable[[Path, str, dict], str]


class HFGenerator:
    """Loads a checkpoint with ``transformers`` into an :class:`HFEngine`; keeps the last one in memory
    (not thread-safe: ``LocalTryBackend`` samples one request at a time)."""

    def __init__(self):
        self._key: tuple | None = None
        self._engine: HFEngine | None = None

    def engine(self, ckpt: Path) -> HFEngine:
        key = (str(ckpt), (ckpt / "config.json").stat().st_mtime_ns)
        if key != self._key:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(ckpt)
            self._engine = HFEngine(AutoModelForCausalLM.from_pretrained(ckpt).eval(), tok)
            self._key = key
        return self._engine

    def render(self, ckpt: Path, question: str, config: dict) -> str:
        tok = self.engine(ckpt).tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
        return question


class LocalTryBackend:
    """Samples from a run's own checkpoints and scores with the run's own task and rewards.

    Args:
        engine: ``checkpoint_dir -> RolloutEngine`` (see module docstring); default ``HFGenerator().engine``.
        render: prompt-template hook; default ``HFGenerator().render`` (chat template), or the text
            itself when ``engine`` is given without ``render``.
        max_prompts: how many held-out prompts of the task to offer.
    """

    def __init__(self, engine: EngineFn | None = None, render: RenderFn | None = None, max_prompts: int = 50):
        hf = HFGenerator() if engine is None else None
        self._engine = engine or hf.engine
        self._render = render or (hf.render if hf is not None else (lambda ckpt, q, cfg: q))
        self.max_prompts = max_prompts
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _task(self, run: RunReader):
        """The run's task (cached), or ``None`` when its config names none."""
        cfg = run.config()
        spec = cfg_get(cfg, "task")
        if spec is None:
            return None
        name = (spec.get("name") or spec.get("path")) if isinstance(spec, dict) else str(spec)
        opts = {k: v for k, v in spec.items() if k not in ("name", "path")} if isinstance(spec, dict) else {}
        key = f"{name}:{sorted(opts.items())!r}"
        with self._lock:
            if key not in self._tasks:
                try:
                    self._tasks[key] = load_task(name, **opts)
                except TypeError:  # config carries options the task factory does not take
                    self._tasks[key] = load_task(name)
            return self._tasks[key]

    def prompts(self, run: RunReader) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        steps = run.steps()
        if steps:  # the prompts of the latest step, as the model saw them in training
            for g in run.groups(steps[-1]):
                if isinstance(g, dict) and g.get("question") is not None:
                    out.append({"id": g.get("prompt_id"), "question": g["question"],
                                "answer": str(g.get("answer")), "source": f"train, step {steps[-1]}"})
        task = self._task(run)
        if task is not None:
            out += [{"id": ex.id, "question": ex.question, "answer": str(ex.answer), "source": "held-out"}
                    for ex in task.heldout[: self.max_prompts]]
        return out

    def checkpoints(self, run: RunReader) -> list[str]:
        return [p.name for p in reversed(list(run.checkpoints())) if (p / "config.json").exists()]

    def _specs(self, run: RunReader):
        spec = cfg_get(run.config(), "rewards/functions", "rewards")
        if spec is None:
            task = self._task(run)
            spec = task.rewards if task is not None else {"math": 1.0}
        return build(spec)

    def sample(self, run: RunReader, checkpoint: str, question: str, answer: str, G: int,
               temperature: float) -> list[dict[str, Any]]:
        if checkpoint not in self.checkpoints(run):
            raise ValueError(f"unknown checkpoint {checkpoint!r}: choose one of {self.checkpoints(run)}")
        ckpt = run.dir / "checkpoints" / checkpoint
        cfg = run.config()
        task = self._task(run)
        text = f"{question} {task.instruction}".strip() if task is not None and task.instruction else question
        max_new = int(cfg_get(cfg, "rollout/max_new_tokens", "max_new_tokens", default=256))
        # A prompt picked from the task brings its other columns (``data_source``, tests, ...).
        known = next((ex for ex in (task.heldout + task.train if task else []) if ex.question == question), None)
        example = Example(known.id if known else "try", question, answer, dict(known.columns) if known else {})
        specs = self._specs(run)
        with self._lock:  # one request at a time: they share the loaded model
            prompt = self._render(ckpt, text, cfg)
            got = generate_and_score(self._engine(ckpt), [example], G, SamplingParams(temperature, 1.0, max_new),
                                     specs, lambda ex: prompt)
        extract = answer_extractor(specs, task.correctness if task is not None else None)
        s, r = got.scores, got.rollout
        return [{"text": text, "length": int(r.lengths[i]), "truncated": bool(r.truncated[i]),
                 "rewards": {k: v[i] for k, v in s.per_fn.items()},
                 "reward": float(s.total[i]) if bool(s.valid[i]) else None, "valid": bool(s.valid[i]),
                 "extracted": extract(text) if extract else None} for i, text in enumerate(got.texts)]
