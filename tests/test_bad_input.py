"""Every bad input of docs/bad-input.md, one case per row: it fails before any model loads, with a
message that names the problem and the fix. Through the real CLI (`grpokit train ...`) where cheap."""

import re
import shutil
from pathlib import Path

import pytest

from grpokit.cli import main
from grpokit.config import make
from grpokit.datagen.sample import SampleConfig
from grpokit.train.sft import SFTConfig


def _task(tmp_path: Path, text: bytes = b'{"question": "1+1?", "answer": "2"}\n' * 10) -> str:
    p = tmp_path / "t.jsonl"
    p.write_bytes(text)
    return str(p)


def _model_copy(tiny_model: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model, tmp_path / "copy"))


def _truncated(tiny_model, tmp_path):
    m = _model_copy(tiny_model, tmp_path)
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    return ["--model", str(m)]


def _no_tokenizer(tiny_model, tmp_path):
    m = _model_copy(tiny_model, tmp_path)
    for f in m.glob("tokenizer*"):
        f.unlink()
    return ["--model", str(m)]


def _mistyped_path(tiny_model, tmp_path):
    (tmp_path / "runs").mkdir()
    return ["--model", str(Path("runs") / "tyop")]  # relative: the test runs in tmp_path


def _yaml(text):
    def setup(tiny_model, tmp_path):
        y = tmp_path / "c.yaml"
        y.write_bytes(text)
        return ["--config", str(y)]
    return setup


def _task_file(text):
    return lambda tiny_model, tmp_path: ["--task", _task(tmp_path, text)]


def _task_dir(tiny_model, tmp_path):
    (tmp_path / "data.jsonl").mkdir()
    return ["--task", str(tmp_path / "data.jsonl")]


def _args(*argv):
    return lambda tiny_model, tmp_path: list(argv)


# (id, setup(tiny_model, tmp_path) -> extra argv, the message as a regex); ids are the rows of docs/bad-input.md
CLI_CASES = [
    ("group_size-0", _args("--group_size", "0"), r"group_size must be >= 1, got 0"),
    ("group_size-1", _args("--group_size", "1"), r"group_size = 1 gives every completion advantage 0.*group_size >= 2"),
    ("max_new_tokens-0", _args("--max_new_tokens", "0"), r"max_new_tokens must be >= 1, got 0"),
    ("temperature-0", _args("--temperature", "0"), r"temperature must be > 0, got 0.0; temperature 0 \(greedy\) is for evaluation"),
    ("temperature-negative", _args("--temperature", "-1"), r"temperature must be > 0, got -1.0"),
    ("steps-0", _args("--steps", "0"), r"steps must be >= 1, got 0"),
    ("top_p-above-1", _args("--top_p", "1.5"), r"top_p must be in \(0, 1\], got 1.5"),
    ("lr-nan", _args("--lr", "nan"), r"lr must be a finite number, got nan"),
    ("lr-0", _args("--lr", "0"), r"lr must be > 0, got 0.0"),
    ("adam_betas", _args("--adam_betas", "[1.0, 0.9]"), r"adam_betas must be two numbers in \[0, 1\)"),
    ("reward-weight", _args("--rewards", "{math: .nan}"), r"rewards: the weight of 'math' is nan"),
    ("int-not-a-number", _args("--steps", "many"), r"config 'steps': cannot use 'many' \(expected int\)"),
    ("bool-not-a-bool", _args("--progress", "maybe"), r"config 'progress': cannot use 'maybe' \(expected bool\)"),
    ("dtype-fp8", _args("--dtype", "fp8"), r"dtype must be 'auto', 'fp32'.* got 'fp8'"),
    ("device-tpu", _args("--device", "tpu"), r"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'"),
    ("algo-unknown", _args("--algo", "grpo2"), r"unknown algorithm 'grpo2'; choose one of"),
    ("advantage-unknown", _args("--advantage", "nope"), r"advantage 'nope' is not registered; choose one of"),
    ("critic_trunk", _args("--critic_trunk", "both"), r"critic_trunk must be 'separate' or 'shared', got 'both'"),
    ("sharding", _args("--sharding", "zero3"), r"sharding must be 'ddp' or 'fsdp', got 'zero3'"),
    ("template", _args("--template", "fancy"), r"template must be 'chat', 'r1_zero', 'plain' or 'qa' or a string containing \{prompt\}"),
    ("unknown-key", _yaml(b"steps: 3\nstepz: 4\n"), r"unknown config key\(s\) \['stepz'\]; known keys"),
    ("broken-yaml", _yaml(b"steps: 3\nlr: [1e-5\nbeta: 0\n"), r"c.yaml:\d+: not valid YAML"),
    ("yaml-not-utf8", _yaml(b"steps: 3\nsystem_prompt: caf\xe9\n"), r"c.yaml:2: not UTF-8 text"),
    ("task-option-unknown", _args("--task_options", "{trainsize: 10}"), r"task 'add2' has no option\(s\) \['trainsize'\]; its options are \['train_size'"),
    ("task-unknown", _args("--task", "add3"), r"unknown task 'add3': use one of"),
    ("task-file-missing", _args("--task", "nowhere.jsonl"), r"task file nowhere.jsonl does not exist"),
    ("task-file-directory", _task_dir, r"data.jsonl is a directory: point at a .jsonl"),
    ("task-file-not-utf8", _task_file(b'{"question": "1+1?", "answer": "2"}\n{"question": "caf\xe9", "answer": "1"}\n'),
     r"t.jsonl:2: not UTF-8 text \(byte 0xe9 at column \d+\)"),
    ("task-file-not-json", _task_file(b'{"question": "1+1?", "answer": "2"}\n{"question": \n'), r"t.jsonl:2: not valid JSON"),
    ("question-too-long", _task_file(b'{"question": "' + b"x" * 100_001 + b'", "answer": "2"}\n'),
     r"t.jsonl:1: the question has 100,001 characters, more than max_question_chars=100,000"),
    ("model-corrupt-safetensors", _truncated, r"model.safetensors is corrupt or truncated"),
    ("model-without-tokenizer", _no_tokenizer, r"holds a model but no tokenizer.*copy the tokenizer files"),
    ("model-mistyped-path", _mistyped_path, r"no model folder at 'runs/tyop': check the path"),
    ("model-offline-hub-id", _args("--model", "someone/no-such-model"),
     r"'someone/no-such-model' is neither a local folder nor an embedded model.*offline"),
]


@pytest.mark.parametrize("case,setup,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_input_fails_before_loading_with_a_clear_message(case, setup, message, tiny_model, tmp_path,
                                                              monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["train", "--model", tiny_model, "--steps", "1", "--prompts_per_step", "1", "--group_size", "2",
            "--max_new_tokens", "2", "--eval_size", "0", "--progress", "false", "--out", str(tmp_path / "run")]
    argv += setup(tiny_model, tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err, re.S), err
    assert err.startswith("grpokit train: error: ")
    assert not (tmp_path / "run").exists()  # failed before the run started


# Fields the SFT, eval and sample configs share with training are held to the same ranges.
SHARED_CASES = [
    ("sft-lr-0", SFTConfig, {"lr": 0}, r"lr must be > 0, got 0"),
    ("sft-batch_size-0", SFTConfig, {"batch_size": 0}, r"batch_size must be >= 1, got 0"),
    ("sft-dtype-fp8", SFTConfig, {"dtype": "fp8"}, r"dtype must be 'auto'"),
    ("sample-temperature-negative", SampleConfig, {"temperature": -0.5}, r"temperature must be >= 0, got -0.5"),
    ("sample-k-0", SampleConfig, {"k": 0}, r"k must be >= 1, got 0"),
    ("sample-split", SampleConfig, {"split": "test"}, r"split must be 'train' or 'heldout', got 'test'"),
]


@pytest.mark.parametrize("case,cls,values,message", SHARED_CASES, ids=[c[0] for c in SHARED_CASES])
def test_shared_fields_are_checked_in_every_config(case, cls, values, message):
    with pytest.raises(ValueError, match=message):
        make(cls, overrides=values)


def test_greedy_is_fine_where_nothing_is_trained():
    assert make(SampleConfig, overrides={"temperature": 0}).temperature == 0.0


def test_every_case_is_a_row_of_the_table():
    table = (Path(__file__).parents[1] / "docs" / "bad-input.md").read_text()
    rows = set(re.findall(r"^\| `([\w.-]+)` \|", table, re.M))
    assert rows == {c[0] for c in CLI_CASES} | {c[0] for c in SHARED_CASES}


def test_every_number_and_name_of_every_config_has_a_rule():
    """A new field cannot slip past validation: check_values raises TypeError for a field without a rule."""
    from grpokit.config import TrainConfig
    from grpokit.pipeline.evaluate import EvalConfig

    for cls in (TrainConfig, SFTConfig, SampleConfig, EvalConfig):
        cls()  # the defaults pass, and every field has a range, a choice list or is free text
