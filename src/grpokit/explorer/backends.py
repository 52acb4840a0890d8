""""Try it" backends: sample a group of G completions from a run's checkpoint, now, and score it.

The server talks to any object that follows ``TryBackend``. ``LocalTryBackend`` is the real one:
it reads the run's own task and reward config, loads a checkpoint folder with ``transformers`` and
samples with ``generate``. Its two hooks let the trainer's rollout engine take over:

- ``generate``: ``(checkpoint_dir, prompt_text, G, temperature, max_new_tokens) -> list[Generation]``
  (default ``HFGenerator``: ``AutoModelForCausalLM`` + ``generate(num_return_sequences=G)``);
- ``render``: ``(checkpoint_dir, question_text, config) -> prompt_text`` (default: the tokenizer's
  chat template when it has one, else the text itself).

Advantages are NOT computed here: the server does that (``grpokit.explorer.scaling``) so the page
can switch the scaling without sampling again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from grpokit.explorer.runs import cfg_get
from grpokit.train.run_folder import RunReader


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


@dataclass(frozen=True)
class Generation:
    """One sampled completion: its text, its token count (up to and including EOS), and whether
    it hit ``max_new_tokens`` without EOS."""

    text: str
    length: int
    truncated: bool


GenerateFn = Callable[[Path, str, int, float, int], list[Generation]]
RenderFn = Callable[[Path, str, dict], str]


class HFGenerator:
    """Samples with ``transformers``; keeps the last loaded checkpoint in memory (one at a time)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._model = self._tok = None

    def load(self, ckpt: Path):
        key = (str(ckpt), (ckpt / "config.json").stat().st_mtime_ns)
        if key != self._key:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(ckpt)
            self._model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
            self._key = key
        return self._model, self._tok

    def render(self, ckpt: Path, question: str, config: dict) -> str:
        with self._lock:
            _, tok = self.load(ckpt)
            if getattr(tok, "chat_template", None):
                return tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                               add_generation_prompt=True)
            return question

    def __call__(self, ckpt: Path, prompt: str, G: int, temperature: float, max_new_tokens: int) -> list[Generation]:
        import torch

        with self._lock:
            model, tok = self.load(ckpt)
            enc = tok(prompt, return_tensors="pt", add_special_tokens=not getattr(tok, "chat_template", None))
            sampling = temperature > 0
            with torch.no_grad():
                # Temperature 0 is greedy: one sequence, repeated G times (generate refuses G > 1 greedy).
                out = model.generate(**enc, do_sample=sampling, temperature=temperature if sampling else None,
                                     top_p=1.0 if sampling else None, top_k=0 if sampling else None,
                                     num_return_sequences=G if sampling else 1, max_new_tokens=max_new_tokens,
                                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
            if not sampling:
                out = out.expand(G, -1)
            gen = out[:, enc["input_ids"].shape[1]:]  # [G, T]
            eos = tok.eos_token_id
            result = []
            for row in gen.tolist():
                n = row.index(eos) + 1 if eos in row else len(row)
                result.append(Generation(tok.decode(row[:n], skip_special_tokens=True), n, eos not in row))
            return result


class LocalTryBackend:
    """Samples from a run's own checkpoints and scores with the run's own task and rewards.

    Args:
        generate: sampler hook (see module docstring); default ``HFGenerator()``.
        render: prompt-template hook; default the generator's ``render`` (chat template).
        max_prompts: how many held-out prompts of the task to offer.
    """

    def __init__(self, generate: GenerateFn | None = None, render: RenderFn | None = None, max_prompts: int = 50):
        self._gen = generate or HFGenerator()
        self._render = render or getattr(self._gen, "render", None) or (lambda ckpt, q, cfg: q)
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
                from grpokit.tasks import load_task

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
        from grpokit.rewards import build

        spec = cfg_get(run.config(), "rewards/functions", "rewards")
        if spec is None:
            task = self._task(run)
            spec = task.rewards if task is not None else {"math": 1.0}
        return build(spec)

    def sample(self, run: RunReader, checkpoint: str, question: str, answer: str, G: int,
               temperature: float) -> list[dict[str, Any]]:
        from grpokit.rewards import score
        from grpokit.rewards.math import answer_region

        if checkpoint not in self.checkpoints(run):
            raise ValueError(f"unknown checkpoint {checkpoint!r}: choose one of {self.checkpoints(run)}")
        ckpt = run.dir / "checkpoints" / checkpoint
        cfg = run.config()
        task = self._task(run)
        text = f"{question} {task.instruction}".strip() if task is not None and task.instruction else question
        prompt = self._render(ckpt, text, cfg)
        max_new = int(cfg_get(cfg, "rollout/max_new_tokens", "max_new_tokens", default=256))
        gens = self._gen(ckpt, prompt, G, temperature, max_new)
        texts = [g.text for g in gens]
        # A prompt picked from the task brings its other columns (``data_source``, tests, ...).
        example = next((ex for ex in (task.heldout + task.train if task else []) if ex.question == question), None)
        extra = {k: v for k, v in example.columns.items()} if example is not None else {}
        cols = {**{k: [v] * len(gens) for k, v in extra.items()},
                "answer": [answer] * len(gens), "truncated": [g.truncated for g in gens]}
        s = score(self._specs(run), [prompt] * len(gens), texts, cols)
        region = str(cfg_get(cfg, "rewards/region", "answer_region", default="auto"))
        return [{"text": g.text, "length": g.length, "truncated": g.truncated,
                 "rewards": {k: v[i] for k, v in s.per_fn.items()},
                 "reward": float(s.total[i]) if bool(s.valid[i]) else None, "valid": bool(s.valid[i]),
                 "extracted": answer_region(g.text, region)} for i, g in enumerate(gens)]
