"""DAPO in the loop: dynamic sampling refills the batch, overlong shaping and filtering are wired in."""

import pytest
import torch

from grpokit.records import Rollout, Scores
from grpokit.run_folder import RunReader
from grpokit.train.loop import train
from grpokit.train.sampling import add_overlong_penalty, concat_rollouts, select_rows
from tests.fixtures import assert_same_adam_update
from tests.train.test_loop import _cfg, _final_params

LOW_ONLY = "tests.train.rewards_for_tests:digit_share_low_only"


def _dapo(tiny_model, tmp_path, name, reward=LOW_ONLY, **kw):
    return _cfg(tiny_model, tmp_path, name, algo="dapo", threads=1, rewards={reward: 1.0}, **kw)


def _rollout(P, T, n, fill):
    return Rollout(prompt_ids=torch.full((n, P), fill), prompt_mask=torch.ones(n, P, dtype=torch.long),
                   completion_ids=torch.full((n, T), fill), completion_mask=torch.ones(n, T, dtype=torch.long),
                   truncated=torch.zeros(n, dtype=torch.bool), prompts=[f"p{fill}"] * n,
                   completions=[f"c{fill}"] * n, sample_logp=torch.zeros(n, T))


def test_concat_pads_prompts_left_and_completions_right_and_select_keeps_order():
    r = concat_rollouts([_rollout(2, 3, 2, 7), _rollout(4, 1, 1, 9)])
    assert r.prompt_ids.tolist() == [[0, 0, 7, 7], [0, 0, 7, 7], [9, 9, 9, 9]]
    assert r.prompt_mask.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]]
    assert r.completion_ids.tolist() == [[7, 7, 7], [7, 7, 7], [9, 0, 0]]
    assert r.completion_mask.tolist() == [[1, 1, 1], [1, 1, 1], [1, 0, 0]]
    assert r.completions == ["c7", "c7", "c9"] and r.sample_logp.shape == (3, 3)
    s = select_rows(r, [2, 0])
    assert s.completions == ["c9", "c7"] and s.prompt_ids[0].tolist() == [9, 9, 9, 9]


def test_overlong_penalty_is_a_reward_term_on_scorable_completions():
    scores = Scores(per_fn={"task": [1.0, 0.0, None]}, total=torch.tensor([1.0, 0.0, 0.0]),
                    valid=torch.tensor([True, True, False]))
    # max_len 10, cache 4: L_safe 6; lengths 6 -> 0, 8 -> (6 - 8) / 4 = -0.5, 10 -> -1 (but unscorable)
    out = add_overlong_penalty(scores, torch.tensor([6, 8, 10]), 10, 4)
    assert out.per_fn["overlong_penalty"] == pytest.approx([0.0, -0.5, -1.0])
    assert out.total.tolist() == pytest.approx([1.0, -0.5, 0.0])


def test_dynamic_sampling_trains_only_on_groups_that_can_teach(tiny_model, tmp_path):
    """Questions answered 5-9 always score 0: their groups are dropped and replaced by new prompts."""
    records = []
    cfg = _dapo(tiny_model, tmp_path, "dapo", steps=3)
    run = train(cfg, on_update=records.append)
    reader = RunReader(run)
    metrics = reader.metrics()
    B, G = cfg.prompts_per_step, cfg.group_size
    assert sum(m["groups/extra_generations"] for m in metrics) > 0  # the flat groups did occur and were refilled
    for m in metrics:
        groups = reader.groups(m["step"])
        assert len(groups) == B == m["groups/kept"]
        for g in groups:  # no zero-variance group reaches the loss
            task = [c["rewards"]["digit_share_low_only"] for c in g["completions"]]
            assert max(task) > min(task), g["question"]
            assert int(g["answer"]) < 5
            for c in g["completions"]:  # the soft overlong penalty is in the reward
                cache = round(0.2 * cfg.max_new_tokens)
                pen = min(0.0, (cfg.max_new_tokens - cache - c["length"]) / cache)
                assert c["rewards"]["overlong_penalty"] == pytest.approx(pen)
                assert c["reward"] == pytest.approx(c["rewards"]["digit_share_low_only"] + pen, abs=1e-6)
        # each refill round sampled exactly the groups still missing, so a full batch cost one group per drop
        assert m["groups/extra_generations"] == m["groups/dropped"] * G
        assert m["groups/zero_std_frac"] == 0.0
    for rec in records:  # overlong filtering: truncated completions carry no loss
        groups = reader.groups(rec.step)
        truncated = [c["truncated"] for g in groups for c in g["completions"]]
        assert [bool(rec.mask[i].sum() == 0) for i in range(len(truncated))] == truncated


def test_refill_limit_reached_trains_on_what_it_has(tiny_model, tmp_path):
    # Rewards 0 whatever the length: DAPO's soft overlong penalty off, or a sample near the cap would
    # give its group a reward spread (which the test once had only by luck of the draw).
    run = train(_dapo(tiny_model, tmp_path, "limit", reward="tests.train.rewards_for_tests:always_zero", steps=1,
                      dynamic_sampling_max_rounds=3, overlong_cache_frac=0.0))
    m = RunReader(run).metrics()[0]
    B, G = 2, 4
    assert (m["groups/sampling_rounds"], m["groups/extra_generations"]) == (3, 2 * B * G)
    assert m["groups/kept"] == B and m["groups/dropped"] == 2 * B  # the last round is kept, the two before dropped
    assert m["groups/skipped_sequences"] == B * G and m["optim/grad_norm"] == 0.0  # nothing to learn, nothing run


def test_dapo_micro_batch_split_does_not_change_the_update(tiny_model, tmp_path):
    # two optimizer steps per rollout batch, dynamic sampling, overlong filter and penalty
    a = train(_dapo(tiny_model, tmp_path, "a", steps=2, micro_batch_size=8, mini_batches=2))
    b = train(_dapo(tiny_model, tmp_path, "b", steps=2, micro_batch_size=1, mini_batches=2))
    assert_same_adam_update(_final_params(a), _final_params(b))
    assert [m["reward/mean"] for m in RunReader(a).metrics()] == [m["reward/mean"] for m in RunReader(b).metrics()]
