"""SFT: response-only loss by hand, bucketing, micro-batch invariance, exact resume, learning."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpokit.config import make
from grpokit.pipeline.runner import model_hash
from grpokit.train.sft import SFTConfig, encode, lr_factor, main, plan_batches, read_pairs, response_nll, train_sft
from grpokit.run_folder import RunReader
from tests.fixtures import assert_same_adam_update
from grpokit.train import checkpoint as ckpt


def _data(tmp_path, n=12):
    rows = [{"prompt": f"say {i % 10}", "response": f"<answer> {i % 10} </answer>" + " ok" * (i % 4)} for i in range(n)]
    p = tmp_path / "sft.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


def _cfg(tiny_model, tmp_path, name, **kw):
    base = dict(model=tiny_model, data=_data(tmp_path), out=str(tmp_path / name), epochs=2, batch_size=4,
                micro_batch_size=4, lr=1e-3, progress=False, template="chat")
    base.update(kw)
    return make(SFTConfig, overrides=base)


def test_loss_covers_response_tokens_only(tiny_model):
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    (seq, p), = encode(tok, [("say 3", "<answer> 3 </answer>")], "chat", "", 512)
    prompt_ids = tok(tok.apply_chat_template([{"role": "user", "content": "say 3"}], tokenize=False,
                                             add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert seq[:p] == prompt_ids and seq[-1] == tok.eos_token_id
    nll, n = response_nll(model, [(seq, p)], tok.pad_token_id, "cpu")
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), -1)
    want = -sum(float(logp[t - 1, seq[t]]) for t in range(p, len(seq)))  # token t is predicted at t-1
    assert n == len(seq) - p
    assert float(nll) == pytest.approx(want, rel=1e-5)
    # padding a second, shorter row beside it changes nothing for the first
    (short, q), = encode(tok, [("x", "y")], "chat", "", 512)
    nll2, n2 = response_nll(model, [(seq, p), (short, q)], tok.pad_token_id, "cpu")
    nll_short, _ = response_nll(model, [(short, q)], tok.pad_token_id, "cpu")
    assert float(nll2) == pytest.approx(float(nll) + float(nll_short), rel=1e-5) and n2 == n + len(short) - q


def test_plan_batches_cover_each_example_once_and_bucket_lengths():
    lengths = [(i * 37) % 50 for i in range(40)]
    plan = plan_batches(lengths, 4, seed=1, epoch=0, bucketing=True, window=5)
    assert sorted(i for b in plan for i in b) == list(range(40))
    assert plan == plan_batches(lengths, 4, seed=1, epoch=0, bucketing=True, window=5)
    assert plan != plan_batches(lengths, 4, seed=1, epoch=1, bucketing=True, window=5)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plan)
    flat = plan_batches(lengths, 4, seed=1, epoch=0, bucketing=False)
    assert spread < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in flat)


def test_lr_schedule_by_hand():
    assert [lr_factor(s, 10, 2, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(6, 10, 2, "linear") == pytest.approx(0.5)
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(2, 10, 2, "cosine") == pytest.approx(1.0)


def test_micro_batch_split_does_not_change_the_update(tiny_model, tmp_path):
    # fp32 pinned: the invariance is exact arithmetic; bf16 compute (dtype auto on CUDA) blurs it
    a = train_sft(_cfg(tiny_model, tmp_path, "a", micro_batch_size=4, epochs=1, dtype="fp32"))
    b = train_sft(_cfg(tiny_model, tmp_path, "b", micro_batch_size=3, epochs=1, dtype="fp32"))
    pa = AutoModelForCausalLM.from_pretrained(ckpt.latest(a)).state_dict()
    pb = AutoModelForCausalLM.from_pretrained(ckpt.latest(b)).state_dict()
    assert_same_adam_update(pa, pb)


def test_resume_gives_the_same_weights_and_metrics(tiny_model, tmp_path):
    full = train_sft(_cfg(tiny_model, tmp_path, "full"))
    part = _cfg(tiny_model, tmp_path, "part", stop_after=4)
    train_sft(part)
    assert RunReader(part.out).status()["state"] == "interrupted"
    train_sft(_cfg(tiny_model, tmp_path, "part", resume=True))
    assert RunReader(part.out).status()["state"] == "finished"
    assert model_hash(ckpt.latest(full)) == model_hash(ckpt.latest(part.out))
    want, got = RunReader(full).metrics(), RunReader(part.out).metrics()
    assert [m["step"] for m in got] == [1, 2, 3, 4, 5, 6]
    assert [m["loss/sft"] for m in got] == pytest.approx([m["loss/sft"] for m in want], abs=1e-6)


def test_loss_falls_when_the_data_repeats(tiny_model, tmp_path):
    run = train_sft(_cfg(tiny_model, tmp_path, "learn", max_steps=15, lr=3e-3, lr_schedule="constant"))
    losses = [m["loss/sft"] for m in RunReader(run).metrics()]
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0], losses


def test_bad_data_is_a_clear_error(tiny_model, tmp_path, capsys):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"question": "q", "response": "r"}) + "\n")
    with pytest.raises(ValueError, match="needs 'prompt' and 'response'"):
        read_pairs(str(p))
    assert read_pairs(str(p), prompt_key="question") == [("q", "r")]
    assert main(["--model", tiny_model, "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
