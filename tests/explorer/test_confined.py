"""The explorer stays inside its run folders (symlinks out are refused) and pages large rollout dumps."""

from __future__ import annotations

import json
import shutil

import pytest

from grpokit.explorer import server as srv
from grpokit.explorer.runs import MAX_PAGE_BYTES, RunSet, expand_run_dirs, read_page
from grpokit.run_folder import RunReader
from tests.explorer.test_server import _servers, _stop


@pytest.fixture
def serve():
    start, servers = _servers()
    yield start
    _stop(servers)


def _secret_dump(dest, run_dir):
    """A file outside the run that looks like a rollout dump, with a marker that must never be served."""
    groups = RunReader(run_dir).groups(1)
    groups[0]["question"] = "SECRET-OUTSIDE"
    dest.write_text("".join(json.dumps(g) + "\n" for g in groups), encoding="utf-8")
    return dest


def test_symlinks_out_of_a_run_folder_are_refused(serve, run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    dump = _secret_dump(outside / "dump.jsonl", run_dir)
    (outside / "metrics.jsonl").write_text('{"step": 1, "secret/value": 42}\n', encoding="utf-8")
    (outside / "ckpt").mkdir()
    (run / "rollouts" / "step_000001.jsonl").unlink()
    (run / "rollouts" / "step_000001.jsonl").symlink_to(dump)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(outside / "metrics.jsonl")
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "step_000009").symlink_to(outside / "ckpt")
    (run / "checkpoints" / "step_000001").mkdir()
    # A symlink that stays inside the run folder is fine.
    (run / "rollouts" / "step_000002.jsonl").rename(run / "dump2.jsonl")
    (run / "rollouts" / "step_000002.jsonl").symlink_to(run / "dump2.jsonl")

    req = serve([run])
    status, body, _ = req("GET", "/api/runs/0/steps/1")
    assert status == 200
    assert body["groups"] == [] and "outside the run folder" in body["errors"][0]
    assert "SECRET" not in json.dumps(body)
    status, series, _ = req("GET", "/api/runs/0/series")
    assert series["metrics"] == [] and "outside the run folder" in series["errors"][0]
    status, summary, _ = req("GET", "/api/runs/0")
    assert "step_000001" in summary["checkpoints"] and "step_000009" not in summary["checkpoints"]
    assert any("step_000009" in e and "outside the run folder" in e for e in summary["errors"])
    status, step2, _ = req("GET", "/api/runs/0/steps/2")
    assert len(step2["groups"]) == 4 and step2["errors"] == []


def test_a_symlinked_rollouts_folder_is_refused(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    shutil.move(run / "rollouts", tmp_path / "elsewhere")
    (run / "rollouts").symlink_to(tmp_path / "elsewhere")
    rs = RunSet([run])
    assert rs.step(rs.runs[0], 1)["groups"] == []
    assert "outside the run folder" in rs.summary(rs.runs[0])["errors"][0]


def test_a_folder_of_runs_skips_symlinks_that_leave_it(run_dir, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(run_dir, runs / "a")
    (runs / "b").symlink_to(runs / "a")  # stays inside: kept
    (runs / "c").symlink_to(run_dir)  # leads out: skipped
    assert [p.name for p in expand_run_dirs([runs])] == ["a", "b"]


def _group(i: int, text_len: int = 40) -> dict:
    return {"prompt_id": f"p{i}", "question": f"q{i}", "answer": "1",
            "completions": [{"text": f"{i}:" + "x" * text_len, "reward": 1.0, "rewards": {"math": 1.0}, "valid": True},
                            {"text": "y", "reward": 0.0, "rewards": {"math": 0.0}, "valid": True}]}


def _dump(run, groups, tail: str = ""):
    (run / "rollouts").mkdir(parents=True, exist_ok=True)
    (run / "status.json").write_text('{"state": "running"}', encoding="utf-8")
    (run / "rollouts" / "step_000001.jsonl").write_text(
        "".join(json.dumps(g) + "\n" for g in groups) + tail, encoding="utf-8")


def test_steps_are_paged(serve, tmp_path):
    run = tmp_path / "run"
    _dump(run, [_group(i) for i in range(120)], tail='{"partial line still being wri')
    req = serve([run])
    _, first, _ = req("GET", "/api/runs/0/steps/1")
    assert [g["index"] for g in first["groups"]] == list(range(50))
    assert first["total"] == 120 and first["next"] == 50 and first["offset"] == 0  # the partial line is not a group
    assert first["groups"][7]["question"] == "q7"
    _, last, _ = req("GET", "/api/runs/0/steps/1?offset=100&limit=50")
    assert [g["index"] for g in last["groups"]] == list(range(100, 120)) and last["next"] is None
    _, one, _ = req("GET", "/api/runs/0/steps/1?offset=64&limit=1")
    assert [g["question"] for g in one["groups"]] == ["q64"] and one["next"] == 65
    _, past, _ = req("GET", "/api/runs/0/steps/1?offset=500")
    assert past["groups"] == [] and past["total"] == 120
    for bad in ("offset=-1", "limit=0", "limit=100000", "offset=x", "offset=1&offset=2"):
        status, body, _ = req("GET", f"/api/runs/0/steps/1?{bad}")
        assert status == 400 and "must be one integer" in body["error"], bad


def test_a_large_dump_is_never_served_whole(serve, tmp_path):
    run = tmp_path / "run"
    n, text = 200, 60_000  # ~12 MB of groups
    _dump(run, [_group(i, text) for i in range(n)])
    size = (run / "rollouts" / "step_000001.jsonl").stat().st_size
    assert size > 2 * MAX_PAGE_BYTES
    req = serve([run])
    status, page, _ = req("GET", "/api/runs/0/steps/1?limit=500")
    sent = len(json.dumps(page))
    assert status == 200 and page["total"] == n and page["next"] == len(page["groups"])
    assert sent < MAX_PAGE_BYTES + 2 * text + 10_000 < size  # one page, bounded by bytes, not the file
    pages, offset = 1, page["next"]
    while offset is not None:  # the pages together hold every group exactly once
        _, p, _ = req("GET", f"/api/runs/0/steps/1?offset={offset}&limit=500")
        assert p["groups"][0]["index"] == offset
        offset, pages = p["next"], pages + 1
    assert pages >= size // MAX_PAGE_BYTES


def test_read_page_skips_an_oversized_line_without_holding_it(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"a": 1}\n' + b'"' + b"z" * 5_000_000 + b'"\n' + b'{"a": 3}\n' + b'{"a"')
    page, total = read_page(p, 0, 10, max_line=1000)
    assert total == 3
    assert [(i, line) for i, line, _ in page] == [(0, b'{"a": 1}\n'), (1, None), (2, b'{"a": 3}\n')]
    assert page[1][2] == 5_000_003
    small, _ = read_page(p, 0, 10, max_bytes=5, max_line=1000)
    assert [i for i, _, _ in small] == [0]  # the byte budget ends the page, after at least one line


def test_an_oversized_group_is_named_not_sent(tmp_path, monkeypatch):
    import grpokit.explorer.runs as runs

    run = tmp_path / "run"
    _dump(run, [_group(0), _group(1, 3000), _group(2)])
    monkeypatch.setattr(runs, "read_page", lambda path, o, l: read_page(path, o, l, max_line=2000))
    rs = RunSet([run])
    groups = rs.step(rs.runs[0], 1)["groups"]
    assert "error" not in groups[0] and "error" not in groups[2]
    assert "more than the explorer shows" in groups[1]["error"] and "line 2" in groups[1]["error"]


def test_page_offsets_reach_the_server(serve, run_dir):
    req = serve([run_dir])
    _, body, _ = req("GET", "/api/runs/0/steps/1?offset=2&limit=1")
    assert [g["index"] for g in body["groups"]] == [2] and body["total"] == 4 and body["next"] == 3
    assert srv.PAGE_GROUPS == 50
