"""generate_and_score: the one generate -> reward columns -> rewards path, with a scripted engine."""

import pytest
import torch

from grpokit.records import Example, Rollout
from grpokit.rewards import RewardSpec, build, score
from grpokit.rewards.generate import generate_and_score
from grpokit.rollout import SamplingParams

EXAMPLES = [Example("a", "1+1", "2", {"data_source": "x"}), Example("b", "2+2", "4", {"data_source": "y"}),
            Example("c", "3+3", "6", {"data_source": "x"})]


class Scripted:
    """Completion ``j`` of prompt ``p`` is ``f"{p}:{j}"`` with ``j + 1`` tokens; the last of each group is truncated."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, n, params, generator=None):
        self.calls.append(list(prompts))
        texts = [f"{p}:{j}" for p in prompts for j in range(n)]
        N = len(texts)
        mask = torch.tensor([[1 if t <= j else 0 for t in range(n)] for _ in prompts for j in range(n)])
        return Rollout(prompt_ids=torch.zeros(N, 1, dtype=torch.long), prompt_mask=torch.ones(N, 1, dtype=torch.long),
                       completion_ids=torch.arange(N * n).view(N, n), completion_mask=mask,
                       truncated=torch.tensor([j == n - 1 for _ in prompts for j in range(n)]),
                       prompts=[p for p in prompts for _ in range(n)], completions=texts,
                       sample_logp=torch.full((N, n), -0.5))


def test_every_reward_sees_the_same_columns():
    seen = []

    def spy(prompts, completions, **cols):
        seen.append(cols)
        return [float(len(c)) for c in completions]

    got = generate_and_score(Scripted(), EXAMPLES[:2], 2, SamplingParams(1.0, 1.0, 7), [RewardSpec("spy", spy)],
                             lambda ex: ex.question)
    (cols,) = seen
    assert cols["answer"] == ["2", "2", "4", "4"] and cols["data_source"] == ["x", "x", "y", "y"]
    assert cols["completion_ids"] == [[0], [2, 3], [4], [6, 7]]  # unpadded, one list per completion
    assert cols["truncated"] == [False, True, False, True] and cols["max_new_tokens"] == [7] * 4
    assert got.texts == ["1+1:0", "1+1:1", "2+2:0", "2+2:1"] and got.n == 2
    assert got.rollout.lengths.tolist() == [1, 2, 1, 2] and got.rollout.sample_logp.shape == (4, 2)
    assert got.scores.per_fn["spy"] == [5.0] * 4 and got.per_example(got.texts)[1] == ["2+2:0", "2+2:1"]


def test_batches_are_whole_groups_and_give_one_record():
    def fails_on_c(prompts, completions, answer, **_):
        if "6" in answer:
            raise ValueError("no")
        return [1.0] * len(completions)

    eng = Scripted()
    specs = [RewardSpec("ok", fails_on_c)]
    got = generate_and_score(eng, EXAMPLES, 2, SamplingParams(), specs, lambda ex: ex.question, batch_size=4)
    assert eng.calls == [["1+1", "2+2"], ["3+3"]]  # 4 sequences per call = 2 groups of 2
    assert got.texts == [f"{q}:{j}" for q in ("1+1", "2+2", "3+3") for j in range(2)]
    assert got.scores.per_fn["ok"] == [1.0, 1.0, 1.0, 1.0, None, None]
    assert [e["index"] for e in got.scores.errors] == [4, 5]  # indices of the whole record
    one = generate_and_score(Scripted(), EXAMPLES, 2, SamplingParams(), specs, lambda ex: ex.question)
    assert one.scores.per_fn == got.scores.per_fn and one.texts == got.texts
    with pytest.raises(ValueError, match="no examples"):
        generate_and_score(eng, [], 2, SamplingParams(), specs, lambda ex: ex.question)


def test_by_source_logs_a_failing_route_reward_as_routed_does():
    specs = build(["by_source(x={'tests.train.rewards_for_tests:crash_on_digits': 1.0})"])
    s = score(specs, ["p", "p"], ["abc", "a1"], {"data_source": ["x", "x"]})
    assert s.per_fn[specs[0].name][0] is not None and s.per_fn[specs[0].name][1] is None
    assert len(s.errors) == 1 and s.errors[0]["index"] == 1  # was scored None without a trace
