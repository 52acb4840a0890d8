"""cons@k votes on exactly what the correctness reward grades, with the reward's own options."""

import pytest
import torch

from grpokit.evaluation.accuracy import EvalSettings, evaluate
from grpokit.evaluation.answers import reader_for
from grpokit.records import Example, Rollout
from grpokit.rewards import resolve
from grpokit.tasks import Task

QUESTION = Example("q", "3 + 4", "7")
# Under math(region='answer') only the third sample states an answer the reward reads: two different
# <answer> blocks are a hedge, and a boxed answer or text after </think> lies outside the region.
# answer_region (the old vote reader) saw "8", "8", "7" and "\boxed{8}": a wrong majority for 8.
SAMPLES = ["<answer>7</answer> <answer>8</answer>", "\\boxed{8}", "<answer>7</answer>", "<think>hm</think> \\boxed{8}"]


class Scripted:
    def generate(self, prompts, n, params, generator=None):
        texts = [SAMPLES[i % len(SAMPLES)] for i in range(len(prompts) * n)]
        N, T = len(texts), 4
        return Rollout(prompt_ids=torch.zeros(N, 1, dtype=torch.long), prompt_mask=torch.ones(N, 1, dtype=torch.long),
                       completion_ids=torch.ones(N, T, dtype=torch.long), completion_mask=torch.ones(N, T, dtype=torch.long),
                       truncated=torch.zeros(N, dtype=torch.bool), prompts=[prompts[i // n] for i in range(N)],
                       completions=texts)


@pytest.mark.parametrize("spec", ["math(region='answer')", "math(region='answer', mode='exact')"])
def test_cons_at_k_votes_on_what_math_with_region_grades(monkeypatch, spec):
    monkeypatch.setattr("grpokit.evaluation.accuracy.render", lambda tok, q, template, system: q)
    task = Task(name="toy", train=[], heldout=[QUESTION], rewards={spec: 1.0}, correctness=spec)
    res = evaluate(Scripted(), None, task, [QUESTION], EvalSettings(k=4, k_values=(4,), greedy=False))
    reward = resolve(spec)
    graded = reward([""] * 4, SAMPLES, answer=["7"] * 4)
    assert graded == [0.0, 0.0, 1.0, 0.0]
    assert [r["extracted"] for r in res.per_sample] == [reward.extract(t) for t in SAMPLES] == [None, None, "7", None]
    assert [r["correct"] for r in res.per_sample] == [g == 1.0 for g in graded]
    q = res.per_question[0]
    assert q["votes"] == [["7", 1]] and q["cons@4"]["answer"] == "7" and q["cons@4"]["correct"]
    assert res.summary["cons@4"] == 1.0 and res.summary["extract_rate"] == 0.25
    assert "region='answer'" in res.summary["votes"]


def test_the_reader_is_the_rewards_own_extractor_and_comparison():
    for spec in ("math", "math(region='think')", "math(region='boxed', max_chars=5)", "final_number"):
        fn, r = resolve(spec), reader_for(spec)  # a spec with options resolves to a new function each time
        assert r.extract.__qualname__ == fn.extract.__qualname__ and r.equivalent.__qualname__ == fn.equivalent.__qualname__
    think = reader_for("math(region='think')")
    assert think.extract("<answer>3</answer></think> 4") == "4" and think.extract("\\boxed{4}") is None
    assert reader_for("math(region='boxed', max_chars=5)").extract("\\boxed{123456}") is None  # too long: not graded
    exact = reader_for("math(mode='exact')")
    assert exact.equivalent("1,000", "1000") and not exact.equivalent("x", "x")  # non-numbers never pool
