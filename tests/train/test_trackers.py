"""--report-to: each tracker, in its local/offline mode, receives exactly the numbers of metrics.jsonl.

Each tracker's test reads the tracker's own files back (TensorBoard event files, the MLflow file
store, the wandb offline run, trackio's local database) and skips with a reason when its package is
not installed (``pip install -e '.[trackers]'``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import time
from pathlib import Path

import pytest

from grpokit.run_folder import trackers as tr
from grpokit.run_folder import RunReader, RunWriter

METRICS = [{"reward/mean": 0.25 * s, "loss/policy": -0.01 * s, "completions/max_length": 6 + s, "optim/lr": 1e-5,
            "flag": True, "note": "text", "bad": math.nan} for s in (1, 2, 3)]
EVAL = {"greedy_acc": 0.5, "pass@1": 0.375, "votes": [1, 2]}


def _installed(*modules: str) -> bool:
    return any(importlib.util.find_spec(m) is not None for m in modules)


def _skip_unless(*modules: str):
    return pytest.mark.skipif(not _installed(*modules), reason=f"{' or '.join(modules)} is not installed "
                                                               "(pip install -e '.[trackers]')")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """Every tracker local: wandb offline, MLflow's file store in the run, trackio's store in tmp."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def expected(run: Path) -> dict[str, dict[int, float]]:
    """``{key: {step: value}}`` from the run folder, the source of truth (evals as ``eval/<key>``)."""
    out: dict[str, dict[int, float]] = {}
    reader = RunReader(run)
    for rec in reader.metrics():
        for k, v in tr.numeric(rec).items():
            out.setdefault(k, {})[rec["step"]] = v
    for rec in reader.evals():
        for k, v in tr.numeric(rec).items():
            out.setdefault(f"eval/{k}", {})[rec["step"]] = v
    return out


def write_run(run: Path, report_to: str) -> Path:
    w = RunWriter(run, tr.open_trackers(report_to, run, {"model": "tiny", "lr": 1e-5, "task_options": {"n": 4}}))
    w.write_config({"model": "tiny"})
    w.log_eval(0, EVAL)
    for s, m in enumerate(METRICS, 1):
        w.log_metrics(s, m)
    w.log_eval(3, {**EVAL, "greedy_acc": 0.75})
    w.set_status("finished", step=3)
    return run


# ---- reading each tracker's own files back ------------------------------------------------------------
def read_tensorboard(run: Path) -> dict[str, dict[int, float]]:
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        from tensorboardX.proto import event_pb2
    out: dict[str, dict[int, float]] = {}
    files = sorted((run / "tensorboard").glob("events.out.tfevents.*"))
    assert files, f"no event file in {run / 'tensorboard'}"
    for f in files:
        data, pos = f.read_bytes(), 0
        while pos < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            ev = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in ev.summary.value:
                val = v.simple_value if v.HasField("simple_value") else v.tensor.float_val[0]
                out.setdefault(v.tag, {})[ev.step] = val
    return out


def read_mlflow(run: Path) -> dict[str, dict[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED" and "model" in r.data.params  # the config as params
    return {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in r.data.metrics}


def _wandb_records(path: Path):
    """The protobuf records of a ``.wandb`` file: a 7-byte ``:W&B`` header, then LevelDB's log format
    (32 KiB blocks of chunks, each ``crc u32, length u16, type u8``: 1 full, 2 first, 3 middle, 4 last)."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", f"{path} is not a wandb data file"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + n > len(data):  # still being written
            return
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 2):
            buf = chunk
        elif kind in (3, 4):
            buf += chunk
        if kind in (1, 4):
            yield buf


def read_wandb(run: Path) -> dict[str, dict[int, float]]:
    from wandb.proto import wandb_internal_pb2

    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    # run.finish() can return before wandb's own process has written the file out (seen: only the
    # header there); wait for its last record, the run's exit, with a cap that only a broken wandb reaches.
    deadline = time.monotonic() + 120
    while True:
        records = [wandb_internal_pb2.Record.FromString(d) for d in _wandb_records(files[0])]
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out: dict[str, dict[int, float]] = {}
    for rec in records:
        if rec.WhichOneof("record_type") != "history":
            continue
        row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
        step = row.pop("_step", None)
        if step is None:
            step = rec.history.step.num
        for k, v in row.items():
            if not k.startswith("_"):
                out.setdefault(k, {})[step] = v
    return out


def read_trackio(run: Path) -> dict[str, dict[int, float]]:
    from trackio.sqlite_storage import SQLiteStorage

    out: dict[str, dict[int, float]] = {}
    for row in SQLiteStorage.get_logs(project="grpokit", run=run.name):
        step = row["step"]
        for k, v in row.items():
            if k not in ("step", "timestamp") and not k.startswith("_") and isinstance(v, (int, float)):
                out.setdefault(k, {})[step] = v
    return out


READERS = {"tensorboard": (read_tensorboard, ("tensorboard", "tensorboardX")), "mlflow": (read_mlflow, ("mlflow",)),
           "wandb": (read_wandb, ("wandb",)), "trackio": (read_trackio, ("trackio",))}


def _same(got: dict, want: dict, name: str, key=lambda k: k, rel: float = 0.0) -> None:
    want = {key(k): v for k, v in want.items()}
    assert sorted(got) == sorted(want), f"{name}: keys differ"
    for k in want:
        assert sorted(got[k]) == sorted(want[k]), f"{name} {k}: steps differ"
        for s, v in want[k].items():
            assert got[k][s] == pytest.approx(v, rel=rel, abs=0), f"{name} {k} step {s}"


@pytest.mark.parametrize("name", list(READERS))
def test_each_tracker_receives_the_metrics_of_the_run_folder(name, tmp_path):
    read, modules = READERS[name]
    if not _installed(*modules):
        pytest.skip(f"{' or '.join(modules)} is not installed (pip install -e '.[trackers]')")
    run = write_run(tmp_path / f"run-{name}", name)
    want = expected(run)
    assert "eval/pass@1" in want and "flag" not in want and "bad" not in want
    # TensorBoard stores 32-bit floats; neither MLflow keys nor TensorBoard tags can hold '@'.
    _same(read(run), want, name, key={"mlflow": tr.MLflow.key, "tensorboard": tr.TensorBoard.key}.get(name, lambda k: k),
          rel=1e-7 if name == "tensorboard" else 0.0)


@_skip_unless("tensorboardX")
@pytest.mark.parametrize("backend", ["torch", "tensorboardX"])
def test_tensorboard_through_either_writer(backend, tmp_path):
    if backend == "torch" and not _installed("tensorboard"):
        pytest.skip("tensorboard is not installed")
    run = tmp_path / backend
    w = RunWriter(run, [tr.TensorBoard(run, {}, backend=backend)])
    w.log_metrics(1, {"a/b": 1.5})
    w.log_metrics(2, {"a/b": 2.5})
    w.set_status("finished")
    assert read_tensorboard(run) == {"a/b": {1: 1.5, 2: 2.5}}


# ---- the wiring, without any tracker installed ------------------------------------------------------------
class Recorder:
    """TEST DOUBLE for a tracker: records what it is given."""

    name = "recorder"

    def __init__(self, fail_on: int | None = None):
        self.logged, self.closed, self.fail_on = [], 0, fail_on

    def log(self, metrics, step):
        if step == self.fail_on:
            raise RuntimeError("disk full")
        self.logged.append((step, metrics))

    def close(self):
        self.closed += 1


def test_the_writer_sends_each_record_once_and_closes_at_the_end(tmp_path):
    rec = Recorder()
    w = RunWriter(tmp_path / "run", [rec])
    w.log_eval(0, EVAL)
    w.log_metrics(1, METRICS[0])
    w.set_status("running", step=1)
    assert rec.closed == 0
    w.set_status("interrupted", step=1)
    assert rec.logged == [(0, {"eval/greedy_acc": 0.5, "eval/pass@1": 0.375}),
                          (1, {"reward/mean": 0.25, "loss/policy": -0.01, "completions/max_length": 7.0, "optim/lr": 1e-5})]
    assert rec.closed == 1


def test_a_failing_tracker_is_switched_off_not_the_run(tmp_path):
    bad, good = Recorder(fail_on=2), Recorder()
    w = RunWriter(tmp_path / "run", [bad, good])
    with pytest.warns(UserWarning, match="recorder failed to log .*disk full.*switched off"):
        for s, m in enumerate(METRICS, 1):
            w.log_metrics(s, m)
    w.set_status("finished")
    assert [s for s, _ in bad.logged] == [1] and bad.closed == 0
    assert [s for s, _ in good.logged] == [1, 2, 3] and good.closed == 1
    assert [r["step"] for r in RunReader(tmp_path / "run").metrics()] == [1, 2, 3]  # the source of truth is whole
    events = RunReader(tmp_path / "run").events()
    assert [e["kind"] for e in events] == ["tracker_error"] and "disk full" in events[0]["error"]


@pytest.mark.parametrize("spec,names", [("", []), ("none", []), (None, []), ("tensorboard", ["tensorboard"]),
                                        (" TensorBoard , wandb,wandb ", ["tensorboard", "wandb"]),
                                        (["mlflow", "trackio"], ["mlflow", "trackio"])])
def test_report_to_parses(spec, names):
    assert tr.parse_report_to(spec) == names


def test_report_to_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown tracker\(s\) \['comet'\].*tensorboard"):
        tr.parse_report_to("tensorboard,comet")


def test_a_missing_tracker_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "wandb" else real(m, *a))
    with pytest.raises(ImportError, match=r"--report-to wandb needs the wandb package: pip install wandb"):
        tr.check_installed("wandb")


@pytest.mark.slow
def test_training_reports_the_same_metrics_to_every_installed_tracker(tiny_model, tmp_path):
    """The real loop through --report-to: every tracker installed gets what metrics.jsonl and eval.jsonl hold."""
    from tests.train.test_loop import _cfg
    from grpokit.train.loop import train

    names = [n for n, (_, mods) in READERS.items() if _installed(*mods)]
    if not names:
        pytest.skip("no tracker is installed (pip install -e '.[trackers]')")
    run = train(_cfg(tiny_model, tmp_path, "tracked", steps=2, eval_size=4, report_to=",".join(names)))
    want = expected(run)
    assert "reward/mean" in want and "eval/greedy_acc" in want and sorted(want["reward/mean"]) == [1, 2]
    for name in names:
        _same(READERS[name][0](run), want, name, key=tr.MLflow.key if name == "mlflow" else (lambda k: k),
              rel=1e-7 if name == "tensorboard" else 0.0)
