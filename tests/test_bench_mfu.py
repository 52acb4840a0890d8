"""bench/mfu.py: FLOP counts against hand-computed numbers, and the phases of a real (tiny) run."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import mfu  # noqa: E402


SHAPE = mfu.Shape(L=2, C=4, H=2, H_kv=1, D=2, F=8, V=10)


def test_shape_of_config():
    cfg = SimpleNamespace(num_hidden_layers=2, hidden_size=4, num_attention_heads=2, num_key_value_heads=1,
                          head_dim=2, intermediate_size=8, vocab_size=10)
    assert mfu.Shape.of(cfg) == SHAPE


def test_phase_flops_by_hand():
    # linear per token: 2*L*(C*H*D + 2*C*H_kv*D + H*D*C + 3*C*F) = 4*(16 + 16 + 16 + 96) = 576
    assert SHAPE.linear() == 576
    # attention per key seen: 4*L*H*D = 32; lm_head per scored position: 2*C*V = 80
    assert SHAPE.attention(1) == 32 and SHAPE.lm_head() == 80
    # one group, prompt of 3 tokens, completions of 1 and 3 tokens, trained
    f = mfu.phase_flops(SHAPE, [{"P": 3, "lengths": [1, 3], "trained": True}])
    prompt = 3 * 576 + 32 * (1 + 2 + 3)  # token k of the prompt sees k keys
    assert f["prefill"] == prompt + 80  # logits at the last prompt position only
    # the 3-token completion feeds 2 tokens, seeing P+1 = 4 and 5 keys; the 1-token one feeds none
    body = 2 * 576 + 32 * (4 + 5)
    assert f["decode"] == body + 2 * 80
    assert f["learner_fwd"] == prompt + body + 3 * 80
    assert f["learner_bwd"] == 2 * f["learner_fwd"]
    untrained = mfu.phase_flops(SHAPE, [{"P": 3, "lengths": [1, 3], "trained": False}])
    assert untrained["learner_fwd"] == 0 and untrained["decode"] == f["decode"]


def test_run_mfu_reads_a_run(tiny_model, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    from grpokit.config import make
    from grpokit.train.loop import train

    out = tmp_path / "run"
    cfg = make(overrides=dict(model=tiny_model, task="add1", steps=2, prompts_per_step=2, group_size=4,
                              max_new_tokens=6, eval_size=0, out=str(out), progress=False, threads=1, lr=1e-2,
                              template="plain", dtype="fp32"))
    train(cfg)
    rows = mfu.run_mfu(str(out), mfu.Shape.of(AutoConfig.from_pretrained(tiny_model)),
                       AutoTokenizer.from_pretrained(tiny_model), peak=1e9)
    assert {"prefill", "decode"} <= set(rows)
    from grpokit.run_folder import RunReader

    later = RunReader(str(out)).metrics()[1:]  # step 1 (warm-up) is left out
    # prefill + decode are the logged generation time of the timed steps, split by the engine's prefill clock
    assert rows["prefill"]["seconds"] + rows["decode"]["seconds"] == pytest.approx(sum(m["time/generate"] for m in later))
    assert rows["prefill"]["seconds"] == pytest.approx(sum(m["time/prefill"] for m in later))
    for r in rows.values():
        assert r["seconds"] > 0 and r["gflop"] > 0 and r["mfu"] == pytest.approx(r["gflop"] / r["seconds"])


def test_lora_backward_is_one_forward():
    g = [{"P": 3, "lengths": [2, 3], "trained": True}]
    full, lora = mfu.phase_flops(SHAPE, g), mfu.phase_flops(SHAPE, g, lora=True)
    assert lora["learner_bwd"] == lora["learner_fwd"] == full["learner_fwd"]
