"""LoRA through PEFT: the tiny model learns, the reference is the base, checkpoints hold adapters
(and a merged model on request) that resume, evaluate and load; bad options fail clearly."""

import json

import pytest
import torch

pytest.importorskip("peft")

from grpokit import models  # noqa: E402
from grpokit.config import make  # noqa: E402
from grpokit.train.critic import count_params  # noqa: E402
from grpokit.train.loop import train  # noqa: E402
from grpokit.train.optim import adamw  # noqa: E402
from grpokit.train.policy import add_adapters, trainable  # noqa: E402
from grpokit.run_folder import RunReader  # noqa: E402
from tests.train.test_loop import _cfg  # noqa: E402

DIGITS = "tests.train.rewards_for_tests:digit_share"


def _lora(tiny_model, tmp_path, name, **kw):
    base = dict(lora_rank=4, lora_alpha=8.0, dtype="fp32", rewards={DIGITS: 1.0})
    return _cfg(tiny_model, tmp_path, name, **{**base, **kw})


@pytest.mark.slow
def test_tiny_model_learns_with_lora(tiny_model, tmp_path):
    """Reward (share of digits written) rises with adapters only. The tiny model's logits are the
    normed hidden state times 0.02-scale embeddings, so it learns through an adapter on the head."""
    run = train(_lora(tiny_model, tmp_path, "learn", steps=20, prompts_per_step=4, group_size=8, max_new_tokens=3,
                      lr=1e-2, lora_rank=8, lora_alpha=16.0, template="plain",
                      lora_target_modules="q_proj,v_proj,lm_head"))
    m = RunReader(run).metrics()
    rewards = [x["reward/mean"] for x in m]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.4, (first, last)
    # only the adapters train: 2 layers x (q: 64 -> 64, v: 64 -> 32) + the head (64 -> V), r (in + out) each
    from transformers import AutoConfig

    V = AutoConfig.from_pretrained(tiny_model).vocab_size
    assert m[0]["model/policy_params"] == 8 * (2 * ((64 + 64) + (64 + 32)) + (64 + V))


def test_reference_is_the_base_with_adapters_off(tiny_model, tmp_path):
    seen = []
    train(_lora(tiny_model, tmp_path, "kl", steps=2, beta=0.04, lr=1e-2), on_update=seen.append)
    first, second = seen
    m1, m2 = first.mask.bool(), second.mask.bool()
    # step 1: adapters start at B = 0, so the policy is the base: reference log-probs equal the policy's
    torch.testing.assert_close(first.ref_logp[m1], first.logp[m1], rtol=0, atol=1e-5)
    # step 2: the adapters moved, the reference did not
    assert (second.ref_logp[m2] - second.logp[m2]).abs().max() > 1e-4
    from grpokit.train import policy

    model, _ = policy.load_policy(_lora(tiny_model, tmp_path, "x"), None)
    ref = policy.reference(model, None)
    assert isinstance(ref, policy.AdaptersOff)
    assert {id(p) for p in ref.parameters()} <= {id(p) for p in model.parameters()}  # no second copy


def test_checkpoint_holds_adapters_and_a_merged_model_that_agree(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    run = train(_lora(tiny_model, tmp_path, "save", steps=2, lr=1e-2, lora_save_merged=True))
    ck = sorted((run / "checkpoints").glob("step_*"))[-1]
    assert (ck / "adapter_model.safetensors").exists() and not (ck / "model.safetensors").exists()
    assert json.loads((ck / "adapter_config.json").read_text())["r"] == 4
    merged = AutoModelForCausalLM.from_pretrained(ck / "merged")
    adapted, _ = models.load(str(ck), device="cpu", dtype="fp32")  # base + adapters, merged on load
    plain, _ = models.load(tiny_model, device="cpu", dtype="fp32")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        a, b, c = merged(ids).logits, adapted(ids).logits, plain(ids).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert (a - c).abs().max() > 1e-4  # training moved it away from the base


def test_eval_loads_a_lora_run(tiny_model, tmp_path, capsys):
    from grpokit.cli import main

    run = train(_lora(tiny_model, tmp_path, "ev", steps=1))
    assert main(["eval", "--model", str(run), "-n", "2", "--device", "cpu", "--dtype", "fp32"]) == 0
    assert "greedy" in capsys.readouterr().out.lower()


def test_a_resumed_lora_run_continues_identically(tiny_model, tmp_path):
    full = train(_lora(tiny_model, tmp_path, "full", steps=3, beta=0.04, lr=1e-2))
    part = _lora(tiny_model, tmp_path, "part", steps=3, beta=0.04, lr=1e-2, stop_after=2)
    train(part)
    train(_lora(tiny_model, tmp_path, "part", steps=3, beta=0.04, lr=1e-2, resume=True))
    want, got = RunReader(full).metrics(), RunReader(part.out).metrics()
    assert [m["step"] for m in got] == [1, 2, 3]
    for key in ("reward/mean", "loss/policy", "optim/grad_norm", "loss/kl"):
        assert got[2][key] == pytest.approx(want[2][key], rel=1e-5, abs=1e-7), key


def test_bad_lora_options_fail_clearly(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"no linear module named c_attn.*q_proj.*all-linear"):
        train(_lora(tiny_model, tmp_path, "bad", steps=1, lora_target_modules="c_attn,q_proj"))
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        train(_lora(tiny_model, tmp_path, "q4", steps=1, load_in_4bit=True, device="cpu"))
    with pytest.raises(ValueError, match="load_in_4bit trains nothing"):
        make(overrides={"load_in_4bit": True})
    with pytest.raises(ValueError, match="LoRA with a critic"):
        make(overrides={"lora_rank": 8, "algo": "ppo"})
    with pytest.raises(ValueError, match="lora_dropout must be in"):
        make(overrides={"lora_rank": 8, "lora_dropout": 1.0})


def test_smollm2_lora_trains_a_small_fraction_and_its_optimizer_state_shrinks():
    """SmolLM2-135M (30 layers, d 576, kv 192, ff 1536), rank 16 on every linear layer."""
    model, _ = models.load("smollm2-135m", device="cpu", dtype="fp32", train=True)
    full = count_params(model)
    model = add_adapters(model, rank=16, alpha=32.0, dropout=0.0, targets="all-linear")
    d, kv, ff, r = 576, 192, 1536, 16
    want = 30 * r * ((d + d) * 2 + (d + kv) * 2 + (d + ff) * 2 + (ff + d))
    assert count_params(model) == want  # 4.9M of 134.5M
    opt = adamw(trainable(model), lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)
    for p in trainable(model):
        p.grad = torch.ones_like(p)
    opt.step()
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if t.dim() > 0)
    assert state == 2 * 4 * want  # two fp32 moments per trainable parameter, none for the frozen base
    assert state / (2 * 4 * full) < 0.04
