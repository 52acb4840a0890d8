"""Config resolution: defaults < preset < base < YAML < --key overrides; the default run is a preset."""

import dataclasses

import pytest
import yaml

from grpokit.algo import DEFAULT_PRESET, PRESETS, Algorithm
from grpokit.config import TrainConfig, algo_preset, make, to_dict
from grpokit.train.sft import SFTConfig


def test_without_algo_the_defaults_hold_beta_zero_grpo():
    cfg = make()
    assert cfg == TrainConfig() and cfg.algo == DEFAULT_PRESET and cfg.beta == 0.0
    p = algo_preset(cfg)
    assert (p.advantage, p.policy_loss, p.beta, p.use_critic) == ("grpo", "token_clip", 0.0, False)


def test_the_default_run_is_the_default_preset_named():
    """`--algo <default>` is the run that names nothing, field for field."""
    assert make(overrides={"algo": DEFAULT_PRESET}) == make() == TrainConfig()
    assert algo_preset(make(overrides={"algo": DEFAULT_PRESET})) == algo_preset(TrainConfig())
    # and naming the paper's GRPO is not the default: DeepSeekMath's beta 0.04
    assert make(overrides={"algo": "grpo"}).beta == 0.04 != make().beta


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


def test_precedence_defaults_preset_base_yaml_command_line(tmp_path):
    """Each layer wins over the one below it, for one field set in every layer."""
    y = tmp_path / "c.yaml"
    assert make(overrides={"algo": "dapo"}).eps_high == 0.28  # preset over the default 0.2
    assert make(base={"algo": "dapo", "eps_high": 0.25}).eps_high == 0.25  # base over preset
    y.write_text("eps_high: 0.26\n")
    assert make(yaml_path=str(y), base={"algo": "dapo", "eps_high": 0.25}).eps_high == 0.26  # YAML over base
    cfg = make(yaml_path=str(y), base={"algo": "dapo", "eps_high": 0.25}, overrides={"eps_high": "0.27"})
    assert cfg.eps_high == 0.27 and cfg.aggregation == "token-mean"  # --key over YAML; the rest from the preset
    # the default preset too: a YAML that names nothing keeps its values under the YAML's
    y.write_text("beta: 0.02\n")
    assert make(yaml_path=str(y)) == dataclasses.replace(TrainConfig(), beta=0.02)


def test_a_resume_takes_the_saved_config_of_its_run_as_the_base(tmp_path):
    """`--out RUN --resume true` alone continues RUN as it was configured, not with the defaults; the
    keys of one invocation (stop_after, ...) and keys a run writes besides its config are not taken."""
    run, sft_run = tmp_path / "run", tmp_path / "sft"
    for folder, cfg, extra in ((run, make(overrides={"algo": "dapo", "steps": 7, "eps_high": 0.3, "stop_after": 2}), {}),
                               (sft_run, make(SFTConfig, overrides={"data": "d.jsonl", "batch_size": 3}),
                                {"sft_examples": 5, "sft_total_steps": 4})):
        folder.mkdir()
        (folder / "config.yaml").write_text(yaml.safe_dump({**to_dict(cfg), "out": str(folder), **extra}))
    cfg = make(overrides={"out": str(run), "resume": "true", "lr": "2e-5"})
    assert (cfg.algo, cfg.steps, cfg.eps_high, cfg.aggregation, cfg.lr) == ("dapo", 7, 0.3, "token-mean", 2e-5)
    assert cfg.stop_after == 0 and cfg.resume
    y = tmp_path / "c.yaml"
    y.write_text("steps: 9\n")  # a --config file given with the resume still wins over the saved one
    assert make(yaml_path=str(y), overrides={"out": str(run), "resume": True}).steps == 9
    assert make(overrides={"out": str(run)}) == dataclasses.replace(TrainConfig(), out=str(run))  # not a resume
    sft = make(SFTConfig, overrides={"out": str(sft_run), "resume": True})
    assert (sft.data, sft.batch_size, sft.out) == ("d.jsonl", 3, str(sft_run))


def test_every_preset_round_trips_through_the_config():
    """Every value a preset sets reaches the config and the algorithm: no constant is lost on the way."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    algo_fields = {f.name for f in dataclasses.fields(Algorithm)} - {"name"}
    assert algo_fields <= fields  # the algorithm's fields are config fields of the same names
    for name, preset in PRESETS.items():
        assert set(preset.values) <= fields, name
        cfg = make(overrides={"algo": name})
        got = algo_preset(cfg)
        for key, value in preset.values.items():
            assert getattr(cfg, key) == value, (name, key)
            if key in algo_fields:
                assert getattr(got, key) == value, (name, key)
        assert set(preset.values) >= {"beta", "eps_low", "eps_high", "aggregation"}


def test_old_config_files_with_an_empty_advantage_still_load(tmp_path):
    y = tmp_path / "config.yaml"
    y.write_text("algo: grpo\nadvantage: ''\n")  # what runs of earlier versions saved
    assert make(yaml_path=str(y)).advantage == "grpo"


def test_bad_values_fail_with_the_fix_in_the_message():
    with pytest.raises(ValueError, match="unknown algorithm 'grpo2'; choose one of"):
        make(overrides={"algo": "grpo2"})
    with pytest.raises(ValueError, match="critic_trunk must be 'separate' or 'shared'"):
        algo_preset(make(overrides={"critic_trunk": "both"}))
    with pytest.raises(ValueError, match="use_critic needs advantage='gae'"):
        algo_preset(make(overrides={"algo": "ppo", "advantage": "grpo"}))
    with pytest.raises(ValueError, match="advantage 'nope' is not registered"):
        algo_preset(make(overrides={"advantage": "nope"}))
