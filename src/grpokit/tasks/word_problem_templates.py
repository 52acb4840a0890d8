"""Templates of grade-school word problems: one and two steps of + - * /, over quantities, money and time.

A template is a function ``(rng, numbers) -> Problem``: it draws its own numbers within
``numbers``' range, a name, an item and a wording, and returns the question, the exact integer
answer and its *instance key* ``(template id, sorted numbers)``. The key is what the held-out split
reserves: a training question never repeats a held-out template with the same numbers, whatever
the names, items or wording around them. Pure Python, seeded, no I/O: the same seed gives the same
problems on every machine.

Distractors (``distractor_rate``) add one irrelevant sentence with a number, so "use every number
you see" is not a strategy that works.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

NAMES = ("Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Sara", "Ben", "Iris", "Tom",
         "Nadia", "Kofi", "Emma", "Jonas", "Priya", "Luis", "Hana", "Sam")
# (plural item, container) pairs: counted things and what they come packed in.
ITEMS = (("apples", "bags"), ("pencils", "boxes"), ("stickers", "sheets"), ("cookies", "trays"),
         ("marbles", "jars"), ("eggs", "cartons"), ("cards", "packs"), ("books", "shelves"),
         ("flowers", "bunches"), ("crayons", "boxes"), ("oranges", "crates"), ("beads", "strings"),
         ("muffins", "baskets"), ("shells", "buckets"), ("balloons", "bundles"))
# (singular, plural) of things bought.
THINGS = (("notebook", "notebooks"), ("toy car", "toy cars"), ("sandwich", "sandwiches"), ("ticket", "tickets"),
          ("plant", "plants"), ("ball", "balls"), ("puzzle", "puzzles"), ("scarf", "scarves"), ("lamp", "lamps"),
          ("mug", "mugs"))
ACTIVITIES = ("reads", "practices piano", "walks", "studies", "swims", "paints", "plays chess", "jogs")
DISTRACTORS = ("{name} is {d} years old.", "{friend} has {d} {other}.", "It rained on {d} days that month.",
               "The shop is {d} blocks from {name}'s house.", "{name}'s class has {d} students.")


@dataclass(frozen=True)
class Problem:
    """One generated word problem: ``answer`` is an exact integer; ``key`` identifies the template
    instance (template id and its numbers, not the names or wording)."""

    question: str
    answer: int
    key: tuple
    steps: int


@dataclass(frozen=True)
class Numbers:
    """Ranges the templates draw from: counts in ``[lo, hi]``, factors in ``[2, max_factor]``."""

    lo: int = 2
    hi: int = 20
    max_factor: int = 9


@dataclass(frozen=True)
class _Ctx:
    rng: random.Random
    num: Numbers

    def n(self, lo: int | None = None, hi: int | None = None) -> int:
        return self.rng.randint(self.num.lo if lo is None else lo, self.num.hi if hi is None else hi)

    def f(self) -> int:
        return self.rng.randint(2, self.num.max_factor)

    def pick(self, seq):
        return self.rng.choice(seq)

    def two_names(self) -> tuple[str, str]:
        a, b = self.rng.sample(NAMES, 2)
        return a, b


Template = Callable[[_Ctx], tuple[str, int, tuple]]
TEMPLATES: dict[str, tuple[int, Template]] = {}  # id -> (steps, template)


def template(tid: str, steps: int):
    def deco(fn: Template) -> Template:
        TEMPLATES[tid] = (steps, fn)
        return fn

    return deco


# --- one step ------------------------------------------------------------------------------

@template("add_more", 1)
def _add_more(c: _Ctx):
    name, _ = c.two_names()
    item, _ = c.pick(ITEMS)
    a, b = c.n(), c.n()
    q = c.pick((f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?",
                f"There are {a} {item} in a basket. {name} puts in {b} more {item}. How many {item} are in the basket?",
                f"{name} collected {a} {item} on Monday and {b} {item} on Tuesday. How many {item} did {name} collect in all?"))
    return q, a + b, (a, b)


@template("sub_left", 1)
def _sub_left(c: _Ctx):
    name, friend = c.two_names()
    item, _ = c.pick(ITEMS)
    b = c.n()
    a = b + c.n(1)
    q = c.pick((f"{name} had {a} {item} and gave {b} of them to {friend}. How many {item} does {name} have left?",
                f"A shop had {a} {item}. It sold {b} of them. How many {item} are left in the shop?",
                f"{name} has {a} {item}. {friend} has {b} {item}. How many more {item} does {name} have than {friend}?"))
    return q, a - b, (a, b)


@template("mul_groups", 1)
def _mul_groups(c: _Ctx):
    name, _ = c.two_names()
    item, box = c.pick(ITEMS)
    a, b = c.f(), c.f()
    q = c.pick((f"{name} buys {a} {box} of {item}. Each of the {box} holds {b} {item}. How many {item} does {name} buy?",
                f"There are {a} {box} with {b} {item} in each. How many {item} are there altogether?"))
    return q, a * b, (a, b)


@template("div_share", 1)
def _div_share(c: _Ctx):
    name, _ = c.two_names()
    item, box = c.pick(ITEMS)
    a, b = c.f(), c.f()
    q = c.pick((f"{name} shares {a * b} {item} equally among {a} friends. How many {item} does each friend get?",
                f"{name} puts {a * b} {item} into {a} {box}, the same number in each. How many {item} go in each of the {box}?"))
    return q, b, (a, b)


@template("money_total", 1)
def _money_total(c: _Ctx):
    name, _ = c.two_names()
    one, many = c.pick(THINGS)
    price, k = c.f(), c.f()
    q = c.pick((f"A {one} costs ${price}. {name} buys {k} of them. How many dollars does {name} spend?",
                f"{name} buys {k} {many} at ${price} each. What is the total cost in dollars?"))
    return q, price * k, (price, k)


@template("money_change", 1)
def _money_change(c: _Ctx):
    name, _ = c.two_names()
    one, many = c.pick(THINGS)
    cost = c.n()
    paid = cost + c.n(1)
    q = c.pick((f"{name} has ${paid} and spends ${cost} on a {one}. How many dollars does {name} have left?",
                f"A {one} costs ${cost}. {name} pays with ${paid}. How much change, in dollars, does {name} get?"))
    return q, paid - cost, (paid, cost)


@template("time_total", 1)
def _time_total(c: _Ctx):
    name, _ = c.two_names()
    act = c.pick(ACTIVITIES)
    mins, days = c.pick((10, 15, 20, 25, 30, 40, 45)), c.f()
    q = c.pick((f"{name} {act} for {mins} minutes every day. How many minutes does {name} spend on it in {days} days?",
                f"Each session, {name} {act} for {mins} minutes. {name} has {days} sessions this week. How many minutes is that in total?"))
    return q, mins * days, (mins, days)


# --- two steps -----------------------------------------------------------------------------

@template("add_sub", 2)
def _add_sub(c: _Ctx):
    name, friend = c.two_names()
    item, _ = c.pick(ITEMS)
    a, b = c.n(), c.n()
    g = c.n(1, a + b - 1)
    q = c.pick((f"{name} has {a} {item}. {name} buys {b} more and then gives {g} to {friend}. How many {item} does {name} have now?",
                f"A box holds {a} {item}. {name} adds {b} {item}, and later {friend} takes out {g}. How many {item} are in the box?"))
    return q, a + b - g, (a, b, g)


@template("mul_sub", 2)
def _mul_sub(c: _Ctx):
    name, _ = c.two_names()
    item, box = c.pick(ITEMS)
    a, b = c.f(), c.f()
    e = c.n(2, a * b - 1)
    q = c.pick((f"{name} has {a} {box} of {item} with {b} {item} in each. {name} uses {e} of them. How many {item} are left?",
                f"There are {a} {box} with {b} {item} in each. {e} {item} are given away. How many {item} remain?"))
    return q, a * b - e, (a, b, e)


@template("money_buy_change", 2)
def _money_buy_change(c: _Ctx):
    name, _ = c.two_names()
    one, many = c.pick(THINGS)
    price, k = c.f(), c.f()
    paid = price * k + c.n(1)
    q = c.pick((f"{name} buys {k} {many} that cost ${price} each and pays with ${paid}. How many dollars of change does {name} get?",
                f"{name} has ${paid}. {name} buys {k} {many} at ${price} each. How many dollars does {name} have left?"))
    return q, paid - price * k, (price, k, paid)


@template("two_buyers", 2)
def _two_buyers(c: _Ctx):
    name, friend = c.two_names()
    item, _ = c.pick(ITEMS)
    a, m = c.n(), c.n(1, 10)
    q = c.pick((f"{name} picks {a} {item}. {friend} picks {m} more {item} than {name}. How many {item} do they pick together?",
                f"{name} has {a} {item} and {friend} has {m} more than {name}. How many {item} do the two of them have in total?"))
    return q, a + (a + m), (a, m)


@template("hours_minutes", 2)
def _hours_minutes(c: _Ctx):
    name, _ = c.two_names()
    act = c.pick(ACTIVITIES)
    h, extra = c.rng.randint(1, 4), c.pick(tuple(range(5, 60, 5)))
    q = c.pick((f"{name} {act} for {h} hours and {extra} minutes. How many minutes is that in total?",
                f"On Saturday {name} {act} for {h} hours and then {extra} more minutes. How many minutes did {name} spend?"))
    return q, 60 * h + extra, (h, extra)


def template_pool(steps: tuple[int, ...] = (1, 2), templates: tuple[str, ...] | None = None) -> list[str]:
    """The template ids with ``steps`` (and, if given, named in ``templates``)."""
    pool = [t for t, (s, _) in TEMPLATES.items() if s in steps and (templates is None or t in templates)]
    if not pool:
        raise ValueError(f"no word-problem template has steps {steps} among {templates}; known: {sorted(TEMPLATES)}")
    return pool


def generate(rng: random.Random, numbers: Numbers, steps: tuple[int, ...] = (1, 2),
             distractor_rate: float = 0.3, templates: tuple[str, ...] | None = None,
             template_id: str | None = None) -> Problem:
    """One problem from ``template_id``, or from a template chosen uniformly among those with
    ``steps`` (or named in ``templates``)."""
    tid = template_id or rng.choice(template_pool(steps, templates))
    n_steps, fn = TEMPLATES[tid]
    c = _Ctx(rng, numbers)
    question, answer, nums = fn(c)
    if rng.random() < distractor_rate:
        name = next((n for n in NAMES if n in question), rng.choice(NAMES))
        friend = rng.choice([n for n in NAMES if n != name])
        other = rng.choice([it for it, _ in ITEMS if it not in question])
        extra = rng.choice(DISTRACTORS).format(name=name, friend=friend, d=rng.randint(3, 40), other=other)
        head, _, ask = question.rpartition(". ")
        question = f"{head}. {extra} {ask}"
    # Sorted: "3 mugs at $5" and "5 mugs at $3" are one instance (the same sum in other words).
    return Problem(question=question, answer=answer, key=(tid, tuple(sorted(nums))), steps=n_steps)
