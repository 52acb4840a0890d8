"""Reward-model rewards: batched scores equal one-at-a-time forwards, the scored part, normalisation, routing."""

import pytest
import torch

from grpokit import rewards as rw
from grpokit.rewards.by_source import structured_spec, structured_specs
from grpokit.rewards.reward_model import NORMALIZERS, TARGETS, load_classifier


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from tests.fixtures import build_tiny_classifier

    return str(build_tiny_classifier(tmp_path_factory.mktemp("rm") / "rm"))


def _direct(path, text):
    """The classifier's logit for one unpadded text, straight from the Hugging Face forward."""
    model, tok = load_classifier(path)
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        return float(model(**ids).logits[0, 0])


def test_batched_scores_equal_single_forwards(classifier):
    prompts = ["Q: 2+2?\n", "Q: hi\n", "Q: a longer question here?\n"]
    completions = ["<think> 2 and 2 </think> <answer> 4 </answer>", "hello there", "x"]
    fn = rw.resolve(f"reward_model(path={classifier!r}, batch_size=2)")
    got = fn(prompts, completions)
    want = [_direct(classifier, p + c) for p, c in zip(prompts, completions)]
    assert got == pytest.approx(want, abs=1e-4)
    assert len(set(round(g, 3) for g in got)) == 3  # the texts really score differently


def test_answer_target_scores_only_the_final_answer(classifier):
    fn = rw.resolve(f"reward_model(path={classifier!r}, target='answer', include_prompt=False)")
    a = fn(["p"], ["<think> long reasoning one </think> <answer> 42 </answer>"])
    b = fn(["p"], ["<think> other reasoning </think> <answer> 42 </answer>"])
    assert a == pytest.approx(b, abs=1e-5)
    assert a[0] == pytest.approx(_direct(classifier, "42"), abs=1e-4)


@pytest.mark.parametrize("text, want", [
    ("<think> a </think> <answer> 7 </answer>", "7"),
    ("<think> a </think> The answer is 7.", "The answer is 7."),
    ("no tags at all", "no tags at all"),
    ("<answer> 1 </answer> then <answer> 2 </answer>", "2"),
])
def test_answer_part(text, want):
    assert TARGETS["answer"](text) == want
    assert TARGETS["response"](text) == text


def test_normalizers_by_hand():
    raw = torch.tensor([1.0, 3.0])
    assert NORMALIZERS["none"](raw, 1.0, 2.0).tolist() == [0.0, 1.0]
    assert NORMALIZERS["sigmoid"](raw, 1.0, 2.0).tolist() == pytest.approx([0.5, 1 / (1 + 2.718281828 ** -1)])
    # mean 2, Bessel std sqrt(2): z = -/+ 1/sqrt(2)
    assert NORMALIZERS["batch"](raw, 0.0, 1.0).tolist() == pytest.approx([-0.70710, 0.70710], abs=1e-4)
    assert NORMALIZERS["batch"](torch.tensor([5.0]), 0.0, 1.0).tolist() == [0.0]


def test_sigmoid_normalisation_of_real_scores(classifier):
    raw = rw.resolve(f"reward_model(path={classifier!r})")(["a", "b"], ["x", "yy"])
    sig = rw.resolve(f"reward_model(path={classifier!r}, normalize='sigmoid', shift=0.5)")(["a", "b"], ["x", "yy"])
    assert sig == pytest.approx([1 / (1 + torch.exp(torch.tensor(-(r - 0.5))).item()) for r in raw], abs=1e-5)


def test_bad_options_are_clear_errors(classifier, tmp_path):
    with pytest.raises(ValueError, match="target must be one of"):
        rw.resolve(f"reward_model(path={classifier!r}, target='summary')")
    with pytest.raises(ValueError, match="normalize must be one of"):
        rw.resolve(f"reward_model(path={classifier!r}, normalize='softmax')")
    with pytest.raises(ValueError, match="no config.json"):
        rw.resolve(f"reward_model(path={str(tmp_path)!r})")
    lazy = rw.resolve("reward_model(path='')")  # building is fine (a recipe without a classifier) ...
    with pytest.raises(ValueError, match="no classifier path"):  # ... scoring is not
        lazy(["p"], ["c"])


def test_structured_specs():
    assert structured_spec("math", 1) == ("math", 1.0)
    assert structured_spec("helpful", {"reward": "reward_model", "path": "rm", "target": "answer", "weight": 0.5}) == \
        ("reward_model(path='rm', target='answer')", 0.5)
    with pytest.raises(ValueError, match="listed twice"):
        structured_specs({"a": {"reward": "math"}, "math": 2.0})


def test_by_source_routes_each_row_to_its_rewards():
    fn = rw.resolve("by_source(math={'tests.pipeline.helpers:length_reward': 2.0, 'tests.pipeline.helpers:always_one': 1.0},"
                    " general={'tests.pipeline.helpers:always_one': 0.5})")
    out = fn(["p"] * 3, ["abc", "de", "f"], data_source=["math", "general", "math"], answer=["1", None, "2"])
    assert out == pytest.approx([2 * 3 + 1, 0.5, 2 * 1 + 1])
    with pytest.raises(ValueError, match="no rewards for data_source 'code'"):
        fn(["p"], ["x"], data_source=["code"], answer=[None])
    with pytest.raises(ValueError, match="no data_source column"):
        fn(["p"], ["x"], answer=[None])


def test_by_source_with_a_reward_model_route(classifier):
    spec = structured_specs({"by_source": {"math": {"tests.pipeline.helpers:always_one": 1.0},
                                           "general": {"h": {"reward": "reward_model", "path": classifier}}}})
    (fn,) = [s.fn for s in rw.build(spec)]
    got = fn(["p", "q"], ["aa", "bb"], data_source=["math", "general"])
    assert got == pytest.approx([1.0, _direct(classifier, "qbb")], abs=1e-4)
