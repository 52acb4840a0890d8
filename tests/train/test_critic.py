"""PPO's value model: built from the policy, values line up with tokens, saved, resumed, micro-batch invariant."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from grpokit.run_folder import RunReader
from grpokit.train.batch import TrainBatch, sequence_values
from grpokit.train.critic import build_critic, count_params, load_critic, save_critic
from grpokit.config import make
from grpokit.train.loop import train
from tests.train.test_loop import _cfg, _final_params


def _ppo(tiny_model, tmp_path, name, **kw):
    return _cfg(tiny_model, tmp_path, name, algo="ppo", threads=1,
                rewards={"tests.train.rewards_for_tests:digit_share": 1.0}, **kw)


def _critic_weights(run_dir):
    ckpt = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return load_file(str(ckpt / "critic" / "value_model.safetensors"))


def test_critic_is_a_copy_of_the_policy_trunk_with_a_zero_head(tiny_model):
    policy = AutoModelForCausalLM.from_pretrained(tiny_model)
    critic = build_critic(policy)
    trunk = dict(policy.model.named_parameters())
    for name, p in critic.trunk.named_parameters():
        assert torch.equal(p, trunk[name]) and p.data_ptr() != trunk[name].data_ptr(), name
    assert torch.count_nonzero(critic.head.weight) == 0 and float(critic.head.bias) == 0.0
    assert count_params(critic) == count_params(policy.model) + policy.config.hidden_size + 1
    shared = build_critic(policy, shared=True)
    assert count_params(shared) == policy.config.hidden_size + 1  # only the head is the critic's own
    assert set(shared.state_dict()) == {"head.weight", "head.bias"}


def test_first_value_depends_on_the_prompt_only(tiny_model):
    """V_0 is read where the first completion token is predicted: the G completions of a prompt share it."""
    policy = AutoModelForCausalLM.from_pretrained(tiny_model)
    critic = build_critic(policy)
    torch.nn.init.normal_(critic.head.weight, std=1.0)
    prompt = torch.tensor([[0, 5, 6, 7], [0, 5, 6, 7], [8, 9, 10, 11]])  # row 0, 1: same prompt, left pad 0
    pmask = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]])
    comp = torch.tensor([[12, 13, 14], [20, 21, 0], [12, 13, 14]])
    cmask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])
    batch = TrainBatch(prompt, pmask, comp, cmask)
    with torch.no_grad():
        values, mask = sequence_values(critic, batch, [0, 1, 2])
        alone, _ = sequence_values(critic, batch, [1])
    assert values.shape == (3, 3) and torch.equal(mask, cmask)
    assert values[0, 0] == pytest.approx(float(values[1, 0]), abs=1e-5)
    assert values[0, 1] != pytest.approx(float(values[1, 1]), abs=1e-5)  # after different tokens
    assert values[0, 0] != pytest.approx(float(values[2, 0]), abs=1e-5)  # another prompt
    # a single row gives the same values as the batch (trimming and padding do not leak)
    assert alone[0, :2].tolist() == pytest.approx(values[1, :2].tolist(), abs=1e-5)


def test_critic_save_load_round_trip_and_trunk_mismatch(tiny_model, tmp_path):
    policy = AutoModelForCausalLM.from_pretrained(tiny_model)
    critic = build_critic(policy)
    torch.nn.init.normal_(critic.head.weight)
    save_critic(critic, tmp_path)
    fresh = build_critic(policy)
    load_critic(fresh, tmp_path)
    for (k, a), (_, b) in zip(critic.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="--critic_trunk separate"):
        load_critic(build_critic(policy, shared=True), tmp_path)
    with pytest.raises(FileNotFoundError, match="without a critic"):
        load_critic(fresh, tmp_path / "nowhere")


def test_ppo_resume_gives_the_same_run(tiny_model, tmp_path):
    full = train(_ppo(tiny_model, tmp_path, "full", steps=4))
    part = _ppo(tiny_model, tmp_path, "part", steps=4, stop_after=2)
    train(part)
    ckpt = sorted((Path(part.out) / "checkpoints").glob("step_*"))[-1]
    assert (ckpt / "critic" / "value_model.safetensors").exists()
    assert "critic_optimizer" in torch.load(ckpt / "trainer_state.pt", weights_only=False)
    train(make(overrides={"algo": "ppo", "threads": 1, **{k: getattr(part, k) for k in (
        "model", "task", "out", "prompts_per_step", "group_size", "max_new_tokens", "eval_size", "progress", "lr",
        "rewards", "task_options")}, "steps": 4, "resume": True}))
    want, got = RunReader(full).metrics(), RunReader(part.out).metrics()
    assert [m["step"] for m in got] == [1, 2, 3, 4]
    for w, g in zip(want, got):
        for key in ("reward/mean", "loss/policy", "loss/value", "critic/value_mean", "critic/explained_var",
                    "optim/grad_norm", "critic/grad_norm"):
            assert w[key] == pytest.approx(g[key], abs=1e-6), (w["step"], key)
    a, b = _critic_weights(full), _critic_weights(Path(part.out))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_ppo_micro_batch_split_does_not_change_policy_or_critic(tiny_model, tmp_path):
    # fp32 pinned: the invariance is exact arithmetic; bf16 compute (dtype auto on CUDA) blurs it
    a = train(_ppo(tiny_model, tmp_path, "a", steps=2, micro_batch_size=8, dtype="fp32"))
    b = train(_ppo(tiny_model, tmp_path, "b", steps=2, micro_batch_size=3, dtype="fp32"))
    # From step 2 the advantages depend on critic values computed in differently padded chunks
    # (differences ~1e-7), which AdamW's normalisation can lift to ~1e-6 on single weights.
    for x, y in ((_final_params(a), _final_params(b)), (_critic_weights(a), _critic_weights(b))):
        for k in x:
            assert torch.allclose(x[k], y[k], atol=1e-5), k
    ma = RunReader(a).metrics()
    assert all(m["model/critic_params"] > m["model/policy_params"] * 0.9 for m in ma)
    assert all(m["loss/value"] > 0 and m["memory/peak_mb"] > 0 for m in ma)
    # the critic learned: its head left zero, so values are no longer all 0 by step 2
    assert ma[0]["critic/value_mean"] == 0.0 and ma[1]["critic/value_mean"] != 0.0


def test_shared_trunk_critic_trains_and_saves_only_its_head(tiny_model, tmp_path):
    run = train(_ppo(tiny_model, tmp_path, "shared", steps=2, critic_trunk="shared"))
    m = RunReader(run).metrics()
    assert m[-1]["model/critic_params"] == 65  # hidden 64 + bias
    assert set(_critic_weights(run)) == {"head.weight", "head.bias"}
    assert m[-1]["loss/value"] > 0


@pytest.mark.slow
def test_ppo_learns_the_toy_task(tiny_model, tmp_path):
    """As test_loop's GRPO learning run, with the critic on: catches sign errors in GAE and the critic path."""
    run = train(_cfg(tiny_model, tmp_path, "learn", algo="ppo", steps=40, prompts_per_step=4, group_size=8,
                     max_new_tokens=3, lr=3e-3, critic_lr=3e-3, template="plain", threads=1,
                     rewards={"tests.train.rewards_for_tests:digit_share": 1.0}))
    m = RunReader(run).metrics()
    rewards = [x["reward/mean"] for x in m]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.4, (first, last)
    # the critic learned the return: its values (0 at the start) now track the reward, its loss fell
    assert abs(m[-1]["critic/value_mean"] - m[-1]["reward/mean"]) < 0.15, (m[-1]["critic/value_mean"], m[-1]["reward/mean"])
    assert m[-1]["loss/value"] < m[0]["loss/value"]
