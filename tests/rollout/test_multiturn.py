"""Episodes token in / token out: exact masks, ids that round-trip, failures that cost only their episode."""

import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpokit.envs import ToolEnv, from_function
from grpokit.envs.chat import render_start
from grpokit.records import Example, Rollout
from grpokit.rollout.base import SamplingParams
from grpokit.rollout.hf import HFEngine
from grpokit.rollout.multiturn import EpisodeEngine, EpisodeLimits, episode_metrics, run_episodes


class Scripted:
    """An engine that answers each episode with pre-written turns (token ids), found by its question."""

    def __init__(self, tok, scripts: dict[str, list[list[int]]]):
        self.tok, self.scripts = tok, {k: list(v) for k, v in scripts.items()}
        self.stop_ids, self.pad_id = [tok.eos_token_id], tok.pad_token_id
        self.calls = []

    def generate_ids(self, rows, n, params, generator=None):
        self.calls.append([list(r) for r in rows])
        outs = []
        for r in rows:
            text = self.tok.decode(r)
            key = next(k for k in self.scripts if k in text)
            outs.append(self.scripts[key].pop(0)[:params.max_new_tokens])
        T = max(len(o) for o in outs)
        ids = torch.full((len(rows), T), self.pad_id)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for i, o in enumerate(outs):
            ids[i, :len(o)] = torch.tensor(o)
            mask[i, :len(o)] = 1
        trunc = torch.tensor([o[-1] not in self.stop_ids for o in outs])
        return Rollout(torch.zeros(len(rows), 1, dtype=torch.long), torch.ones(len(rows), 1, dtype=torch.long), ids, mask,
                       trunc, [""] * len(rows), [""] * len(rows), sample_logp=-mask.float())


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def tok(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def test_two_turn_episode_every_position(tok):
    eos = tok.eos_token_id
    call = _ids(tok, "<tool>calculator: 12*34</tool>") + [eos]
    answer = _ids(tok, "it is 408") + [eos]
    eng = Scripted(tok, {"what is 12*34": [call, answer]})
    ex = Example("q", "what is 12*34", "408")
    r = run_episodes(eng, tok, lambda: ToolEnv(["calculator"]), [ex], 1, SamplingParams(max_new_tokens=64),
                     EpisodeLimits(max_turns=4, max_episode_tokens=256))
    # The environment's span, written out by hand from the tiny ChatML template: the end of the
    # assistant message after the model's <|im_end|>, the tool message, the next generation prompt.
    env = _ids(tok, "\n<|im_start|>tool\n408<|im_end|>\n<|im_start|>assistant\n")
    want_ids = call + env + answer
    want_mask = [1] * len(call) + [0] * len(env) + [1] * len(answer)
    assert r.completion_ids[0].tolist() == want_ids
    assert r.completion_mask[0].tolist() == want_mask
    assert r.sample_logp[0].tolist() == [-float(m) for m in want_mask]  # the sampler's log-probs on model tokens, 0 on env
    start = render_start(tok, [{"role": "user", "content": "what is 12*34"}], ToolEnv(["calculator"]).reset(ex).tools, False)
    assert r.prompt_ids[0].tolist() == _ids(tok, start) and r.prompt_mask[0].all()
    # The second turn continued exactly prompt + turn 1 + env span.
    assert eng.calls[1][0] == _ids(tok, start) + call + env
    ep = r.episodes[0]
    assert (ep.turns, ep.tool_calls, ep.tool_errors, ep.end) == (2, 1, 0, "no_tool_call")
    assert ep.spans == [("model", 0, len(call)), ("env", len(call), len(call) + len(env)),
                        ("model", len(call) + len(env), len(want_ids))]
    assert r.completions == ["it is 408"] and not r.truncated[0]
    assert [m["role"] for m in ep.messages] == ["user", "assistant", "tool", "assistant"]


def test_model_ids_are_kept_not_retokenised(tok):
    """The model spells '<pad>' one character at a time: decoding and re-encoding would give one special id."""
    eos = tok.eos_token_id
    odd = _ids(tok, "<") + _ids(tok, "pad") + _ids(tok, ">") + [eos]
    assert _ids(tok, tok.decode(odd[:-1])) != odd[:-1]
    eng = Scripted(tok, {"spell": [odd]})
    r = run_episodes(eng, tok, lambda: ToolEnv(["calculator"]), [Example("s", "spell", "x")], 1, SamplingParams(max_new_tokens=16))
    assert r.completion_ids[0, :len(odd)].tolist() == odd and r.completion_mask[0].tolist() == [1] * len(odd)


def test_failures_cost_only_their_episode(tok):
    eos = tok.eos_token_id
    release = threading.Event()

    def boom(x: str) -> str:
        """Fails.

        Args:
            x: anything
        """
        raise RuntimeError("kaput")

    def hang(x: str) -> str:
        """Hangs.

        Args:
            x: anything
        """
        release.wait()
        return "late"

    tools = ["calculator", from_function(boom), from_function(hang, timeout_s=0.2)]
    done = _ids(tok, "ok") + [eos]
    scripts = {"alpha": [_ids(tok, "<tool>nonsense</tool>") + [eos], done],
               "bravo": [_ids(tok, "<tool>boom: 1</tool>") + [eos], done],
               "charlie": [_ids(tok, "<tool>hang: 1</tool>") + [eos], done],
               "delta": [_ids(tok, "<tool>calculator: 2*3</tool>") + [eos], done]}
    eng = Scripted(tok, scripts)
    exs = [Example(k, k, "1") for k in scripts]
    try:
        r = run_episodes(eng, tok, lambda: ToolEnv(tools), exs, 1, SamplingParams(max_new_tokens=64), EpisodeLimits(4, 512))
    finally:
        release.set()
    got = {ex.id: ep for ex, ep in zip(exs, r.episodes)}
    assert all(ep.end == "no_tool_call" and ep.turns == 2 for ep in got.values())
    assert (got["alpha"].malformed_calls, got["alpha"].tool_errors) == (1, 1)
    assert "RuntimeError: kaput" in got["bravo"].messages[2]["content"] and got["bravo"].tool_errors == 1
    assert "did not answer" in got["charlie"].messages[2]["content"] and got["charlie"].tool_errors == 1
    assert got["delta"].messages[2]["content"] == "6" and got["delta"].tool_errors == 0
    assert len(eng.calls[1]) == 4  # every episode's second turn went in one batched call
    m = episode_metrics(r.episodes)
    assert m["episodes/tool_call_rate"] == 1.0 and m["episodes/tool_error_rate"] == 0.75 and m["episodes/turns_mean"] == 2


def test_limits_end_episodes(tok):
    eos = tok.eos_token_id
    call = _ids(tok, "<tool>calculator: 1+1</tool>") + [eos]
    eng = Scripted(tok, {"loop": [call] * 5, "long": [_ids(tok, "a" * 60)]})
    exs = [Example("l", "loop", "2"), Example("g", "long", "2")]
    r = run_episodes(eng, tok, lambda: ToolEnv(["calculator"]), exs, 1, SamplingParams(max_new_tokens=40), EpisodeLimits(3, 512))
    assert (r.episodes[0].end, r.episodes[0].turns) == ("max_turns", 3)
    assert r.episodes[1].end == "turn_truncated" and bool(r.truncated[1]) and not bool(r.truncated[0])
    # A budget that the environment's reply would overflow ends the episode before that reply.
    eng = Scripted(tok, {"loop": [call] * 5})
    r = run_episodes(eng, tok, lambda: ToolEnv(["calculator"]), exs[:1], 1, SamplingParams(max_new_tokens=40), EpisodeLimits(5, 40))
    assert r.episodes[0].end == "max_episode_tokens" and r.completion_ids.shape[1] <= 40


def test_env_error_costs_the_episode(tok):
    class Broken(ToolEnv):
        def step(self, turn):
            raise ValueError("env bug")

    eos = tok.eos_token_id
    eng = Scripted(tok, {"x": [_ids(tok, "hi") + [eos]] * 2})
    r = run_episodes(eng, tok, lambda: Broken([]), [Example("x", "x", "1")], 2, SamplingParams(max_new_tokens=8))
    assert [e.end for e in r.episodes] == ["env_error", "env_error"] and "env bug" in r.episodes[0].error


def test_learner_logprobs_equal_the_samplers_on_real_episodes(tiny_model):
    """Token in / token out on the tiny model: the trainer's log-probs (attention over env tokens, loss
    mask with holes) equal the sampler's at every model token, in both the per-sequence and packed paths."""
    from grpokit.train.batch import TrainBatch, group_logprobs, sequence_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    eng = HFEngine(model, tok)
    eng.stop_ids = list(range(0, len(tok), 2))  # a random model rarely says <|im_end|>: end turns after ~2 tokens

    class Forced(ToolEnv):  # answers every turn with a tool result, so each episode has env spans
        def step(self, turn):
            from grpokit.envs.base import Step
            return Step([{"role": "tool", "name": "calculator", "content": "42"}], done=False)

    exs = [Example("a", "what is 6*7", "42"), Example("b", "1+1", "2")]
    r = run_episodes(eng, tok, lambda: Forced(["calculator"]), exs, 2, SamplingParams(temperature=1.0, max_new_tokens=6),
                     EpisodeLimits(max_turns=3, max_episode_tokens=200), torch.Generator().manual_seed(0))
    assert all(sum(k == "env" for k, _, _ in ep.spans) >= 1 for ep in r.episodes), "every episode has env spans inside"
    batch = TrainBatch.from_rollout(r)
    with torch.no_grad():
        seq, m, _ = sequence_logprobs(model, batch, [0, 1, 2, 3], 1.0)
        grp, m2, _ = group_logprobs(model, batch, [0, 1, 2, 3], 2, 1.0)
    T = seq.shape[1]
    want = r.sample_logp[:, :T]
    assert torch.equal(m, r.completion_mask[:, :T]) and torch.equal(m2, m)
    assert torch.allclose(seq * m, want, atol=1e-4) and torch.allclose(grp * m, want, atol=1e-4)
    assert (want != 0).sum() == m.sum()  # every model token was checked


@pytest.mark.parametrize("loss_name", ["token_clip", "gspo"])
def test_loss_and_kl_have_no_gradient_on_environment_tokens(loss_name):
    from grpokit.algo.losses import get_policy_loss

    mask = torch.tensor([[1, 1, 0, 0, 1, 1], [1, 0, 0, 1, 1, 0]], dtype=torch.long)  # holes = env tokens
    torch.manual_seed(0)
    logp = (torch.randn(2, 6) - 2).requires_grad_(True)
    old = logp.detach() + 0.1 * torch.randn(2, 6)
    ref = logp.detach() + 0.3 * torch.randn(2, 6)
    loss, _ = get_policy_loss(loss_name)(logp, old, torch.tensor([1.0, -0.5]), mask, beta=0.04, ref_logp=ref)
    loss.backward()
    assert (logp.grad[mask == 0] == 0).all() and (logp.grad[mask == 1] != 0).all()


def test_episode_engine_finds_rows_by_their_rendered_prompt(tok):
    eos = tok.eos_token_id
    exs = [Example("a", "alpha", "1"), Example("b", "bravo", "2")]
    eng = Scripted(tok, {"alpha": [_ids(tok, "one") + [eos]] * 2, "bravo": [_ids(tok, "two") + [eos]] * 2})
    ee = EpisodeEngine(eng, tok, lambda: ToolEnv(["calculator"]), exs, lambda ex: f"Q: {ex.question}")
    r = ee.generate(["Q: bravo", "Q: alpha"], 2, SamplingParams(max_new_tokens=8))
    assert r.completions == ["two", "two", "one", "one"]
    with pytest.raises(ValueError, match="matches no row"):
        ee.generate(["Q: charlie"], 1, SamplingParams(max_new_tokens=8))


def test_a_reset_that_varies_within_a_group_is_refused(tok):
    import itertools

    counter = itertools.count()

    class Moody(ToolEnv):
        def reset(self, example):
            start = super().reset(example)
            start.messages[-1]["content"] += f" ({next(counter)})"
            return start

    eng = Scripted(tok, {"q": [_ids(tok, "a") + [tok.eos_token_id]] * 2})
    with pytest.raises(ValueError, match="different first contexts"):
        run_episodes(eng, tok, lambda: Moody([]), [Example("q", "q", "1")], 2, SamplingParams(max_new_tokens=4))
