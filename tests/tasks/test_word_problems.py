"""Word problems: generated offline, deterministic, a held-out split that shares no template
instance with training, answers that the task's own reward grades as correct."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from grpokit.rewards import build, score
from grpokit.tasks import load_task, task_names
from grpokit.tasks.word_problem_templates import TEMPLATES, Numbers, generate


def test_registered_and_deterministic():
    assert {"word_problems", "word_problems1"} <= set(task_names())
    a = load_task("word_problems", train_size=200, heldout_size=50, seed=3)
    b = load_task("word_problems", train_size=200, heldout_size=50, seed=3)
    assert [(e.question, e.answer) for e in a.train + a.heldout] == [(e.question, e.answer) for e in b.train + b.heldout]
    assert len(a.train) == 200 and len(a.heldout) == 50
    c = load_task("word_problems", train_size=200, heldout_size=50, seed=4)
    assert [e.question for e in c.heldout] != [e.question for e in a.heldout]


def _instance(task, ex):
    """The template instance of ``ex``, recomputed from its text (no distractors): the template id
    and the numbers in the question, in any order."""
    return ex.columns["template"], tuple(sorted(int(x) for x in re.findall(r"\d+", ex.question)))


def test_heldout_shares_no_template_instance_with_training():
    t = load_task("word_problems", train_size=3000, heldout_size=200, seed=0, distractor_rate=0.0)
    held = {_instance(t, e) for e in t.heldout}
    assert len(held) == len(t.heldout)  # held-out instances are distinct
    assert not held & {_instance(t, e) for e in t.train}
    # the templates' numbers are small, so a split that did not reserve instances would collide often
    naive = load_task("word_problems", train_size=3000, heldout_size=0, seed=0, distractor_rate=0.0)
    assert held & {_instance(naive, e) for e in naive.train}


def test_every_template_appears_and_answers_are_whole_numbers():
    t = load_task("word_problems", train_size=1200, heldout_size=100, seed=1)
    assert set(Counter(e.columns["template"] for e in t.train)) == set(TEMPLATES)
    assert all(re.fullmatch(r"\d+", e.answer) for e in t.train + t.heldout)
    one = load_task("word_problems1", train_size=300, heldout_size=50, hi=10, max_factor=5)
    assert {e.columns["steps"] for e in one.train + one.heldout} == {1}
    assert max(int(n) for e in one.train for n in re.findall(r"\d+", e.question)) <= 60  # 5 * 10 at most


@pytest.mark.parametrize("tid", sorted(TEMPLATES))
def test_each_template_computes_its_answer(tid):
    # recompute the answer from the numbers in the question by the template's operation
    rng = random.Random(tid)
    for _ in range(30):
        p = generate(rng, Numbers(), steps=(1, 2), distractor_rate=0.0, templates=(tid,))
        nums = [int(x) for x in re.findall(r"\d+", p.question)]
        expect = {
            "add_more": lambda a, b: a + b, "sub_left": lambda a, b: a - b, "mul_groups": lambda a, b: a * b,
            "div_share": lambda t, k: t // k, "money_total": lambda a, b: a * b, "money_change": lambda a, b: abs(a - b),
            "time_total": lambda a, b: a * b, "add_sub": lambda a, b, g: a + b - g, "mul_sub": lambda a, b, e: a * b - e,
            "money_buy_change": None, "two_buyers": lambda a, m: 2 * a + m, "hours_minutes": lambda h, m: 60 * h + m,
        }[tid]
        if tid == "money_buy_change":  # two wordings order price, count and payment differently
            price, count, paid = sorted(nums)  # paid > price * count >= both
            assert p.answer == paid - price * count
        elif tid == "div_share" and "into" in p.question:
            assert p.answer == nums[0] // nums[1]
        else:
            assert p.answer == expect(*nums), p.question
        assert p.answer >= 0


def test_distractors_add_a_number_but_not_to_the_answer():
    t = load_task("word_problems", train_size=400, heldout_size=0, seed=2, distractor_rate=1.0, templates="add_more")
    for e in t.train:
        nums = [int(x) for x in re.findall(r"\d+", e.question)]
        assert len(nums) == 3 and int(e.answer) == nums[0] + nums[1]


def test_the_task_reward_grades_reference_answers_in_common_formats():
    t = load_task("word_problems1", train_size=10, heldout_size=3)
    assert t.rewards == {"final_number": 1.0} and "final answer as a number" in t.question_text(t.heldout[0])
    golds = [e.answer for e in t.heldout]
    completions = [f"So the answer is {golds[0]}.", f"**${golds[1]}**", f"{int(golds[2]) + 1} apples."]
    s = score(build(t.rewards), [""] * 3, completions, {"answer": golds})
    assert s.per_fn["final_number"] == [1.0, 1.0, 0.0]


def test_training_keeps_every_template_when_the_heldout_split_reserves_most_instances():
    # Counts 2..10 and factors 2..6: the held-out split reserves most multiplication and division
    # instances. Choosing the template first keeps the training mix uniform (choosing freely and
    # rejecting reserved instances left training 83% subtraction and without any x or / problem).
    t = load_task("word_problems1", hi=10, max_factor=6, heldout_size=100, train_size=1400)
    counts = Counter(e.columns["template"] for e in t.train)
    assert set(counts) == {tid for tid, (steps, _) in TEMPLATES.items() if steps == 1}
    assert max(counts.values()) < 1.5 * min(counts.values())


def test_a_template_the_heldout_split_exhausts_is_a_clear_error():
    # Factors 2..5 give 10 multiplication instances; a 100-question held-out split takes them all.
    with pytest.raises(ValueError, match="reserved every instance of template 'mul_groups'.*raise hi or max_factor"):
        load_task("word_problems1", hi=10, max_factor=5, heldout_size=100)


def test_unknown_template_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown word-problem templates"):
        load_task("word_problems", templates="add_more,nope")


@pytest.mark.parametrize("name", ["quickstart.yaml", "word_problems_long.yaml"])
def test_shipped_configs_load_and_name_this_task(name):
    from pathlib import Path

    from grpokit.config import make

    cfg = make(yaml_path=str(Path(__file__).parents[2] / "configs" / name))
    task = load_task(cfg.task, **{**cfg.task_options, "train_size": 50})
    assert task.name.startswith("word_problems") and len(task.heldout) >= cfg.eval_size > 0
