"""The real Try-it backend: the run's task, rewards and checkpoints; sampling with transformers."""

import json
from pathlib import Path

import pytest

from grpokit.explorer.backends import HFGenerator, LocalTryBackend, TryBackend
from grpokit.run_folder import RunReader, RunWriter

MAX_NEW = 8


def _task_file(d: Path) -> Path:
    p = d / "sums.jsonl"
    p.write_text("".join(json.dumps({"question": f"Calculate {a} + {a}.", "answer": str(2 * a)}) + "\n"
                         for a in range(10, 30)), encoding="utf-8")
    return p


def _run(d: Path, with_model: bool) -> RunReader:
    w = RunWriter(d / "run")
    w.write_config({"task": {"name": str(_task_file(d)), "heldout_size": 4, "instruction": "Box it."},
                    "rewards": {"math": 1.0, "boxed_format": 0.1}, "rollout": {"max_new_tokens": MAX_NEW}})
    w.log_groups(1, [{"prompt_id": "sums-3", "question": "Calculate 13 + 13.", "answer": "26", "completions": []}])
    ckpt = d / "run" / "checkpoints" / "step_000001"
    ckpt.mkdir(parents=True)
    if with_model:
        _tiny_model(ckpt)
    else:
        (ckpt / "config.json").write_text("{}", encoding="utf-8")
    (d / "run" / "checkpoints" / "step_000002").mkdir()  # being written: no config.json yet
    return RunReader(d / "run")


def _tiny_model(out: Path) -> None:
    """A 2-layer Llama with a character-level tokenizer, built here (nothing is downloaded)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    hf_tok.save_pretrained(out)
    import torch

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None)
    LlamaForCausalLM(cfg).save_pretrained(out)


def _rollout(prompt, texts, truncated):
    import torch

    from grpokit.records import Rollout

    N = len(texts)
    return Rollout(prompt_ids=torch.zeros(N, 1, dtype=torch.long), prompt_mask=torch.ones(N, 1, dtype=torch.long),
                   completion_ids=torch.ones(N, 5, dtype=torch.long), completion_mask=torch.ones(N, 5, dtype=torch.long),
                   truncated=torch.tensor(truncated), prompts=[prompt] * N, completions=texts)


def test_local_backend_reads_the_runs_task_rewards_and_checkpoints(tmp_path):
    run = _run(tmp_path, with_model=False)
    seen = []

    class Engine:  # the rollout engine hook: checkpoint -> engine
        def __init__(self, ckpt):
            self.ckpt = ckpt

        def generate(self, prompts, G, params, generator=None):
            seen.append((self.ckpt.name, prompts[0], G, params.temperature, params.max_new_tokens))
            texts = ["So 2 + 2 = 26. \\boxed{26}", "\\boxed{25}", "26", "x" * 40]
            return _rollout(prompts[0], [texts[i % 4] for i in range(G)], [i % 4 == 3 for i in range(G)])

    b = LocalTryBackend(engine=Engine, render=lambda ckpt, q, cfg: f"USER: {q}\nASSISTANT:")
    assert isinstance(b, TryBackend)
    assert b.checkpoints(run) == ["step_000001"]  # step_000002 has no config.json yet
    prompts = b.prompts(run)
    assert prompts[0] == {"id": "sums-3", "question": "Calculate 13 + 13.", "answer": "26", "source": "train, step 1"}
    assert [p["source"] for p in prompts[1:]] == ["held-out"] * 4
    out = b.sample(run, "step_000001", "Calculate 13 + 13.", "26", 4, 0.7)
    assert seen == [("step_000001", "USER: Calculate 13 + 13. Box it.\nASSISTANT:", 4, 0.7, MAX_NEW)]
    assert [c["rewards"] for c in out] == [{"math": 1.0, "boxed_format": 1.0}, {"math": 0.0, "boxed_format": 1.0},
                                           {"math": 0.0, "boxed_format": 0.0}, {"math": 0.0, "boxed_format": 0.0}]
    assert [c["reward"] for c in out] == pytest.approx([1.1, 0.1, 0.0, 0.0])
    assert [c["extracted"] for c in out] == ["26", "25", None, None]
    assert [c["truncated"] for c in out] == [False, False, False, True]
    with pytest.raises(ValueError, match="unknown checkpoint"):
        b.sample(run, "step_000002", "q", "1", 2, 1.0)


def test_hf_generator_samples_g_completions_from_a_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    run = _run(tmp_path, with_model=True)
    b = LocalTryBackend()  # the default: HFGenerator, no chat template -> the question as is
    import torch

    torch.manual_seed(0)
    out = b.sample(run, "step_000001", "Calculate 13 + 13.", "26", 3, 1.0)
    assert len(out) == 3
    for c in out:
        assert 1 <= c["length"] <= MAX_NEW and isinstance(c["text"], str)
        assert c["length"] == MAX_NEW if c["truncated"] else True
        assert not c["truncated"] if c["length"] < MAX_NEW else True
        assert set(c["rewards"]) == {"math", "boxed_format"} and c["valid"]
    from grpokit.rollout import SamplingParams

    greedy = HFGenerator().engine(run.dir / "checkpoints" / "step_000001").generate(
        ["Calculate 1 + 1."], 3, SamplingParams(0.0, 1.0, MAX_NEW)).completions
    assert len(set(greedy)) == 1  # temperature 0 is greedy: all G the same
