"""Skip what cannot teach: with beta = 0 zero-advantage sequences get no passes and the update is unchanged;
with beta > 0 they are trained, because their KL term has a gradient."""

import torch

from grpokit.run_folder import RunReader
from tests.fixtures import adam_update_mismatch
from grpokit.train import update
from grpokit.train.loop import train
from tests.train.test_loop import _cfg, _final_params


def _run(tiny_model, tmp_path, name, beta):
    # answers 5-9 always score 0: those groups have zero advantage; lr high enough that step 1 moves the policy
    return train(_cfg(tiny_model, tmp_path, name, algo="grpo", beta=beta, steps=3, lr=1e-2, threads=1,
                      rewards={"tests.train.rewards_for_tests:digit_share_low_only": 1.0}))


def _same(a, b):
    return adam_update_mismatch(_final_params(a), _final_params(b)) is None


def test_beta_zero_skips_zero_advantage_sequences_without_changing_the_update(tiny_model, tmp_path, monkeypatch):
    skipping = _run(tiny_model, tmp_path, "skip", 0.0)
    skipped = [m["groups/skipped_sequences"] for m in RunReader(skipping).metrics()]
    assert sum(skipped) > 0
    monkeypatch.setattr(update, "skippable_sequences", lambda adv, mask, beta: torch.zeros(len(adv), dtype=torch.bool))
    everything = _run(tiny_model, tmp_path, "all", 0.0)
    assert sum(m["groups/skipped_sequences"] for m in RunReader(everything).metrics()) == 0
    assert _same(skipping, everything)


def test_beta_positive_trains_zero_advantage_sequences_for_their_kl_gradient(tiny_model, tmp_path, monkeypatch):
    kept = _run(tiny_model, tmp_path, "kept", 0.04)
    metrics = RunReader(kept).metrics()
    assert all(m["groups/skipped_sequences"] == 0 for m in metrics)
    assert any(m["groups/zero_std_frac"] > 0 for m in metrics)  # there were zero-advantage groups
    # skipping them anyway (same normaliser, same everything else) changes the result: their KL gradient counts
    monkeypatch.setattr(update, "skippable_sequences", lambda adv, mask, beta: adv == 0)
    dropped = _run(tiny_model, tmp_path, "dropped", 0.04)
    assert sum(m["groups/skipped_sequences"] for m in RunReader(dropped).metrics()) > 0
    assert not _same(kept, dropped)
