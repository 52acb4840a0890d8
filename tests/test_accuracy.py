"""grpokit.evaluation.accuracy.evaluate: generation + the task's correctness reward + evaluate_samples.

A scripted engine returns fixed completions, so every number below is computed by hand; one test
runs the real HF engine on the tiny model and checks the records against an independent re-grading.
"""

import json

import pytest
import torch

from grpokit.evaluation.accuracy import EvalSettings, default_k_values, evaluate
from grpokit.records import Example, Rollout
from grpokit.tasks import Task


class ScriptedEngine:
    """Greedy -> ``greedy[question]``; sampling -> the next ``n`` of ``samples[question]``."""

    def __init__(self, greedy, samples):
        self.greedy, self.samples, self.calls = greedy, samples, []

    def generate(self, prompts, n, params, generator=None):
        self.calls.append((len(prompts), n, params.temperature))
        texts = []
        for p in prompts:
            q = p.split("|")[0]
            texts += [self.greedy[q]] * n if params.temperature == 0 else self.samples[q][:n]
        N, T = len(texts), max(len(t) for t in texts)
        mask = torch.zeros(N, T, dtype=torch.long)
        for i, t in enumerate(texts):
            mask[i, :len(t)] = 1
        return Rollout(prompt_ids=torch.zeros(N, 1, dtype=torch.long), prompt_mask=torch.ones(N, 1, dtype=torch.long),
                       completion_ids=torch.ones(N, T, dtype=torch.long), completion_mask=mask,
                       truncated=torch.tensor([t.endswith("...") for t in texts]),
                       prompts=[prompts[i // n] for i in range(N)], completions=texts)


class PlainTokenizer:
    pass


def _render_plain(monkeypatch):
    # The scripted engine keys on the question; render "question|template".
    monkeypatch.setattr("grpokit.evaluation.accuracy.render", lambda tok, q, template, system: f"{q}|{template}")


EXAMPLES = [Example("a", "3 + 4", "7"), Example("b", "2 + 8", "10"), Example("c", "5 + 5", "10", {"target": "x"})]
TASK = Task(name="toy", train=[], heldout=EXAMPLES, rewards={"final_number": 1.0}, correctness="final_number")
GREEDY = {"3 + 4": "7", "2 + 8": "The answer is 11", "5 + 5": "10"}
SAMPLES = {
    "3 + 4": ["7", "7.0", "5", "no idea"],          # c=2; votes {7: 2, 5: 1} -> 7, correct
    "2 + 8": ["12", "10", "12", "ten..."],          # c=1; votes {12: 2, 10: 1} -> 12, wrong
    "5 + 5": ["+10", "9", "9", "10"],               # c=2; votes {10: 2, 9: 2}: tie, +10 first -> correct
}


def test_numbers_by_hand(monkeypatch):
    _render_plain(monkeypatch)
    eng = ScriptedEngine(GREEDY, SAMPLES)
    res = evaluate(eng, PlainTokenizer(), TASK, EXAMPLES, EvalSettings(k=4, batch_size=8))
    s = res.summary
    assert s["greedy_acc"] == pytest.approx(2 / 3)
    assert s["pass@1"] == pytest.approx((2 / 4 + 1 / 4 + 2 / 4) / 3)
    # pass@2, n=4: c=2 -> 1 - C(2,2)/C(4,2) = 5/6; c=1 -> 1 - C(3,2)/C(4,2) = 1/2
    assert s["pass@2"] == pytest.approx((5 / 6 + 1 / 2 + 5 / 6) / 3)
    assert s["pass@4"] == pytest.approx(1.0)
    assert s["cons@4"] == pytest.approx(2 / 3) and s["cons@4_tie_frac"] == pytest.approx(1 / 3)
    assert s["cons@1"] == pytest.approx(2 / 3)  # first samples 7 (ok), 12 (wrong), +10 (ok)
    assert s["extract_rate"] == pytest.approx(10 / 12)  # "no idea" and "ten..." state no number
    assert s["truncated_frac"] == pytest.approx(1 / 15)  # "ten..." of 3 greedy + 12 sampled
    assert s["votes"] == "grpokit.rewards.arith.final_number" and s["unscored"] == 0
    assert s["k"] == 4 and s["temperature"] == 0.6 and s["top_p"] == 0.95
    assert "3 questions" in s["note"]
    q = {r["id"]: r for r in res.per_question}
    assert q["a"]["votes"] == [["7", 2], ["5", 1]]  # "7" and "7.0" pooled by the reader's equivalence
    assert q["c"]["cons@4"]["tie"] and q["c"]["cons@4"]["correct"]
    assert q["b"]["greedy_correct"] is False and q["b"]["greedy_extracted"] == "11"
    assert len(res.per_sample) == 12 and res.per_sample[-1]["truncated"] is False
    assert [r["correct"] for r in res.per_sample[:4]] == [True, True, False, False]
    # batch_size 8 with k=4: two questions per sampling call; greedy: all three in one call
    assert eng.calls == [(3, 1, 0.0), (2, 4, 0.6), (1, 4, 0.6)]


def test_greedy_only_is_what_the_trainer_logs(monkeypatch):
    _render_plain(monkeypatch)
    res = evaluate(ScriptedEngine(GREEDY, SAMPLES), PlainTokenizer(), TASK, EXAMPLES, EvalSettings(k=0))
    s = res.summary
    assert s["greedy_acc"] == pytest.approx(2 / 3) and s["behaviour_of"] == "greedy"
    assert not any(key.startswith(("pass@", "cons@")) for key in s)
    assert s["behaviour/length_mean"] == pytest.approx((1 + 16 + 2) / 3)
    assert res.per_sample == [] and res.per_question[1]["greedy_text"] == "The answer is 11"


def test_a_reward_without_reader_still_gets_pass_at_k(monkeypatch):
    # first_char_is_answer sees the dataset column `answer`; it has no answer reader -> no votes.
    _render_plain(monkeypatch)
    res = evaluate(ScriptedEngine(GREEDY, SAMPLES), PlainTokenizer(), TASK, EXAMPLES, EvalSettings(k=2),
                   correctness="tests.train.rewards_for_tests:first_char_is_answer")
    s = res.summary
    assert s["pass@1"] == pytest.approx((2 / 2 + 0 / 2 + 0 / 2) / 3)  # "7","7.0" | "12","10" | "+10","9"
    assert not any(key.startswith("cons@") for key in s) and "no answer reader" in s["votes"]
    assert "extract_rate" not in s


def test_settings_errors():
    with pytest.raises(ValueError, match=r"\[8\] need 1 <= k"):
        EvalSettings(k=4, k_values=(1, 8)).ks()
    with pytest.raises(ValueError, match="no questions"):
        evaluate(None, None, TASK, [], EvalSettings())
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(None, None, TASK, EXAMPLES, EvalSettings(k=0, greedy=False))
    with pytest.raises(ValueError, match="unknown reward"):
        evaluate(None, None, TASK, EXAMPLES, EvalSettings(), correctness="no_such_reward")
    assert default_k_values(8) == (1, 2, 4, 8) and default_k_values(6) == (1, 2, 4, 6) and default_k_values(1) == (1,)


def test_real_engine_records_match_an_independent_grading(tiny_model, tmp_path):
    from grpokit import models
    from grpokit.rewards.arith import final_number_reward
    from grpokit.rollout import HFEngine, SamplingParams, render

    model, tok = models.load(tiny_model, device="cpu", dtype="fp32")
    eng = HFEngine(model, tok)
    examples = [Example(f"q{d}", f"say {d}", str(d)) for d in range(3)]
    task = Task(name="say", train=[], heldout=examples, rewards={"final_number": 1.0}, correctness="final_number")
    settings = EvalSettings(k=3, max_new_tokens=5, seed=1)
    a = evaluate(eng, tok, task, examples, settings)
    b = evaluate(eng, tok, task, examples, settings)
    assert [r["text"] for r in a.per_sample] == [r["text"] for r in b.per_sample]  # seeded: reproducible
    texts = [r["text"] for r in a.per_sample]
    want = final_number_reward(None, texts, answer=[ex.answer for ex in examples for _ in range(3)])
    assert [r["correct"] for r in a.per_sample] == [w == 1.0 for w in want]
    assert a.summary["pass@1"] == pytest.approx(sum(want) / len(want))
    greedy = eng.generate([render(tok, "say 1", "chat", None)], 1, SamplingParams(0.0, 1.0, 5)).completions[0]
    assert a.per_question[1]["greedy_text"] == greedy
    paths = a.write(tmp_path / "out")
    assert len(paths["per_sample.jsonl"].read_text().splitlines()) == 9
    assert json.loads(paths["summary.json"].read_text())["pass@1"] == pytest.approx(a.summary["pass@1"])
