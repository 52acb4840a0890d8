"""Grade-school word problems: one and two steps of + - * / over quantities, money and time.

Generated offline by ``word_problem_templates`` (names, items, wordings and an optional
distractor sentence vary; numbers are drawn within ``hi`` / ``max_factor``). The held-out split is
generated with its own seed and reserves its *template instances* (template id and numbers):
training drops every problem that shares one, so a held-out question is never a re-worded
training question. Held-out instances are distinct; training may repeat an instance (in other words),
which keeps the template mix uniform. Graded by ``final_number`` (the last ``\\boxed{}`` or else the last number of the
completion, compared exactly; ``$1,200.``, ``12 apples.`` and ``= 12`` all read as the number).

``word_problems`` is the default mix (one and two steps); ``word_problems1`` is one step only.
"""

from __future__ import annotations

import random

from grpokit.records import Example
from grpokit.tasks import Task, register
from grpokit.tasks.word_problem_templates import TEMPLATES, Numbers, generate, template_pool

INSTRUCTION = "Think briefly, then give the final answer as a number."
HELDOUT_SEED_OFFSET = 1_000_003


def _draw(name: str, part: str, seed: int, size: int, numbers: Numbers, steps: tuple[int, ...],
          distractor_rate: float, templates: tuple[str, ...] | None, skip: set, distinct: bool,
          max_tries_per_item: int = 50) -> tuple[list[Example], set]:
    """``size`` problems whose instance keys are not in ``skip`` (and, if ``distinct``, not repeated);
    returns them and their keys. Without ``skip``, fewer than ``size`` when the templates' numbers run out.

    With a ``skip`` set (the training split) each problem's template is chosen first, uniformly, and
    only then an instance of it that ``skip`` leaves free: choosing freely and rejecting would starve
    the templates whose few instances the held-out split reserved (with counts up to 10 and factors
    up to 5, a 200-question held-out split left training without a single multiplication or division
    problem). A template with no free instance at all is an error that names the fix."""
    rng = random.Random(f"{name}/{part}/{seed}")
    pool = template_pool(steps, templates)
    out, keys = [], set()
    for _ in range(size * max_tries_per_item):
        if len(out) == size:
            break
        if skip:
            p = _free_instance(name, rng, rng.choice(pool), numbers, steps, distractor_rate, templates, skip)
        else:
            p = generate(rng, numbers, steps, distractor_rate, templates)
            if distinct and p.key in keys:
                continue
        keys.add(p.key)
        out.append(Example(id=f"{name}-{part}-{len(out)}", question=p.question, answer=str(p.answer),
                           columns={"data_source": "word_problems", "template": p.key[0], "steps": p.steps}))
    return out, keys


def _free_instance(name: str, rng: random.Random, tid: str, numbers: Numbers, steps: tuple[int, ...],
                   distractor_rate: float, templates: tuple[str, ...] | None, skip: set, tries: int = 1000):
    """A problem of template ``tid`` whose instance is not in ``skip`` (a template with few free
    instances still finds one within ``tries``); an error naming the fix when there is none."""
    for _ in range(tries):
        p = generate(rng, numbers, steps, distractor_rate, templates, template_id=tid)
        if p.key not in skip:
            return p
    raise ValueError(f"{name}: the held-out split reserved every instance of template {tid!r} "
                     f"(numbers {numbers.lo}..{numbers.hi}, factors 2..{numbers.max_factor}), so training has "
                     f"none: raise hi or max_factor, lower heldout_size, or leave {tid!r} out of templates")


def word_problem_task(name: str, train_size: int, heldout_size: int, seed: int, hi: int, max_factor: int,
                      steps: tuple[int, ...], distractor_rate: float, templates: tuple[str, ...] | None,
                      instruction: str) -> Task:
    numbers = Numbers(lo=2, hi=hi, max_factor=max_factor)
    heldout, reserved = _draw(name, "eval", seed + HELDOUT_SEED_OFFSET, heldout_size, numbers, steps,
                              distractor_rate, templates, skip=set(), distinct=True)
    train, _ = _draw(name, "train", seed, train_size, numbers, steps, distractor_rate, templates, skip=reserved,
                     distinct=False)
    return Task(name=name, train=train, heldout=heldout, rewards={"final_number": 1.0}, instruction=instruction,
                correctness="final_number",
                meta={"generator": "grpokit.tasks.word_problem_templates", "seed": seed, "hi": hi,
                      "max_factor": max_factor, "steps": list(steps), "distractor_rate": distractor_rate,
                      "templates": sorted(templates or TEMPLATES)})


def _templates(templates) -> tuple[str, ...] | None:
    if templates is None:
        return None
    names = tuple(templates.split(",")) if isinstance(templates, str) else tuple(templates)
    unknown = [t for t in names if t not in TEMPLATES]
    if unknown:
        raise ValueError(f"unknown word-problem templates {unknown}; known: {sorted(TEMPLATES)}")
    return names


@register("word_problems")
def word_problems(train_size: int = 4000, heldout_size: int = 200, seed: int = 0, hi: int = 20,
                  max_factor: int = 9, steps: tuple[int, ...] = (1, 2), distractor_rate: float = 0.3,
                  templates: str | list[str] | None = None, instruction: str = INSTRUCTION) -> Task:
    """One- and two-step word problems: ``Mia has 7 apples. Mia gets 5 more. ...`` -> ``12``."""
    return word_problem_task("word_problems", train_size, heldout_size, seed, hi, max_factor, tuple(steps),
                             distractor_rate, _templates(templates), instruction)


@register("word_problems1")
def word_problems1(train_size: int = 4000, heldout_size: int = 200, seed: int = 0, hi: int = 20,
                   max_factor: int = 9, distractor_rate: float = 0.0,
                   templates: str | list[str] | None = None, instruction: str = INSTRUCTION) -> Task:
    """One-step word problems without distractors (the easier rung)."""
    return word_problem_task("word_problems1", train_size, heldout_size, seed, hi, max_factor, (1,),
                             distractor_rate, _templates(templates), instruction)
