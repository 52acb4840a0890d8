"""Config resolution: defaults < preset (only when `algo` is named) < base < YAML < --key overrides."""

import pytest

from grpokit.algo import PRESETS
from grpokit.config import TrainConfig, algo_preset, make, preset_values


def test_without_algo_the_defaults_hold_beta_zero_grpo():
    cfg = make()
    assert cfg == TrainConfig() and cfg.algo == "grpo" and cfg.beta == 0.0
    p = algo_preset(cfg)
    assert (p.advantage, p.policy_loss, p.beta, p.use_critic) == ("grpo", "token_clip", 0.0, False)


def test_naming_a_preset_fills_what_the_user_did_not_set():
    cfg = make(overrides={"algo": "grpo"})
    assert cfg.beta == 0.04  # DeepSeekMath
    assert cfg.lr == TrainConfig().lr  # the preset leaves lr to the run
    r1 = make(overrides={"algo": "r1_zero"})
    assert (r1.beta, r1.ref_reset_every, r1.group_size, r1.lr, r1.mini_batches) == (0.001, 400, 16, 3e-6, 16)
    dapo = make(overrides={"algo": "dapo"})
    assert (dapo.eps_high, dapo.aggregation, dapo.dynamic_sampling_max_rounds, dapo.overlong_filter,
            dapo.overlong_cache_frac) == (0.28, "token-mean", 10, True, 0.2)
    ppo = algo_preset(make(overrides={"algo": "ppo"}))
    assert ppo.use_critic and ppo.critic_lr == 1e-5 and ppo.kl_placement == "reward"


def test_yaml_beats_the_preset_and_overrides_beat_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("algo: grpo\nbeta: 0.01\neps_high: 0.3\n")
    cfg = make(yaml_path=str(y), overrides={"eps_high": "0.25"})
    assert (cfg.algo, cfg.beta, cfg.eps_high, cfg.aggregation) == ("grpo", 0.01, 0.25, "seq-mean-token-mean")
    # the algo named on the command line over a YAML without one; the YAML's own values still win
    y.write_text("beta: 0.0\n")
    cfg = make(yaml_path=str(y), overrides={"algo": "rloo"})
    assert (cfg.beta, cfg.aggregation) == (0.0, "constant")


def test_every_preset_round_trips_through_the_config():
    """algo_preset(make(algo=name)) is the registered preset: no constant is lost on the way."""
    for name, preset in PRESETS.items():
        got = algo_preset(make(overrides={"algo": name}))
        keep = {f: getattr(got, f) for f in ("temperature", "num_generations", "lr", "mini_batches", "critic_lr")}
        assert got == preset.replace(**keep), name
        assert set(preset_values(name)) >= {"beta", "eps_low", "eps_high", "aggregation"}


def test_bad_values_fail_with_the_fix_in_the_message():
    with pytest.raises(ValueError, match="unknown algorithm 'grpo2'; choose one of"):
        make(overrides={"algo": "grpo2"})
    with pytest.raises(ValueError, match="critic_trunk must be 'separate' or 'shared'"):
        algo_preset(make(overrides={"critic_trunk": "both"}))
    with pytest.raises(ValueError, match="use_critic needs advantage='gae'"):
        algo_preset(make(overrides={"algo": "ppo", "advantage": "grpo"}))
    with pytest.raises(ValueError, match="advantage 'nope' is not registered"):
        algo_preset(make(overrides={"advantage": "nope"}))
