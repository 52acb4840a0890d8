"""The explorer's HTTP server: API, static files, path traversal, bad input, and the CLI entry."""

import http.client
import json
import shutil
import subprocess
import sys
import os
from pathlib import Path

import pytest

from grpokit.explorer import server as srv
from grpokit.explorer.scaling import scale_group
from grpokit.run_folder import RunReader


def _servers():
    """``(start, servers)``: ``start(run_dirs, backend) -> request(method, path, body=None, headers=None)``."""
    servers = []

    def start(run_dirs, backend=None):
        s = srv.make_server(run_dirs, port=0, backend=backend)
        srv.serve_in_thread(s)
        servers.append(s)
        port = s.server_address[1]

        def request(method, path, body=None, headers=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=json.dumps(body) if isinstance(body, (dict, list)) else body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            conn.close()
            ctype = r.getheader("Content-Type") or ""
            return r.status, json.loads(data) if ctype.startswith("application/json") else data, r

        return request

    return start, servers


def _stop(servers):
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def serve():
    start, servers = _servers()
    yield start
    _stop(servers)


@pytest.fixture(scope="module")
def shared(run_dir):
    """One server over the (read-only) synthetic run for the many traversal cases."""
    start, servers = _servers()
    yield start([run_dir])
    _stop(servers)


def test_page_and_assets_are_served_locally_with_a_strict_csp(serve, run_dir):
    req = serve([run_dir])
    status, body, r = req("GET", "/")
    assert status == 200 and b"<script src=\"/static/app.js\">" in body
    assert "default-src 'none'" in r.getheader("Content-Security-Policy")
    assert b"http://" not in body and b"https://" not in body  # no CDN
    for name in ("app.js", "util.js", "group.js", "style.css"):
        status, body, r = req("GET", f"/static/{name}")
        assert status == 200 and body and (b"https://" not in body), name
    assert req("GET", "/static/app.js")[2].getheader("Content-Type").startswith("text/javascript")


TRAVERSALS = [
    "/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/....//etc/passwd",
    "/../../etc/passwd", "/etc/passwd", "//etc/passwd", "/static//etc/passwd", "/static/%2Fetc%2Fpasswd",
    "/api/runs/..%2F..%2Fetc", "/api/runs/%2Fetc%2Fpasswd", "/api/runs/../../etc/passwd", "/api/runs/%2e%2e",
    "/api/runs/0/steps/..%2F..%2Fconfig.yaml", "/api/runs/0/steps/-1", "/api/runs/0/steps/1%2F..%2F..%2Fstatus.json",
    "/api/runs/0/../../../etc/passwd", "/api/runs/0/steps/%31%2e%2e", "/api/runs/0/steps/1/../../series/..",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_from_the_client_reaches_the_disk(shared, path):
    status, body, _ = shared("GET", path)
    assert status == 404, (path, body)
    text = json.dumps(body) if isinstance(body, (dict, list)) else body.decode()
    assert "root:" not in text and "def main" not in text and "model:" not in text


def test_absolute_paths_and_names_of_runs_not_given_are_refused(serve, run_dir, ppo_run_dir):
    req = serve([run_dir])
    for ref in (str(ppo_run_dir).replace("/", "%2F"), ppo_run_dir.name, "1"):
        status, body, _ = req("GET", f"/api/runs/{ref}")
        assert status == 404 and "serves runs 0..0" in body["error"]


def test_foreign_host_header_is_refused(serve, run_dir):
    req = serve([run_dir])
    status, body, _ = req("GET", "/api/runs", headers={"Host": "evil.example:8765"})
    assert status == 403 and "Host" in body["error"]
    assert req("GET", "/api/runs", headers={"Host": "localhost:1"})[0] == 200


def test_step_api_returns_the_dump_advantages(serve, run_dir):
    req = serve([run_dir])
    status, runs, _ = req("GET", "/api/runs")
    assert status == 200 and runs[0]["status"]["state"] == "finished"
    status, step, _ = req("GET", "/api/runs/grpo-add2/steps/2")
    assert status == 200
    dump = RunReader(run_dir).groups(2)
    assert [[c["advantage"] for c in g["completions"]] for g in step["groups"]] == \
        [[c["advantage"] for c in g["completions"]] for g in dump]
    status, series, _ = req("GET", "/api/runs/0/series")
    assert [r["step"] for r in series["metrics"]] == [1, 2] and [r["step"] for r in series["evals"]] == [0, 2]


def test_broken_and_deleted_runs_do_not_break_the_others(serve, run_dir, tmp_path):
    broken = shutil.copytree(run_dir, tmp_path / "broken")
    gone = shutil.copytree(run_dir, tmp_path / "gone")
    (broken / "status.json").write_text("{", encoding="utf-8")
    (broken / "rollouts" / "step_000001.jsonl").write_text("{\"completions\": 3}\nnot json\n", encoding="utf-8")
    req = serve([run_dir, broken, gone, tmp_path / "never-written"])
    shutil.rmtree(gone)  # deleted while serving
    status, runs, _ = req("GET", "/api/runs")
    assert status == 200
    assert [r["status"]["state"] for r in runs] == ["finished", "unknown", "missing", "missing"]
    assert runs[0]["errors"] == [] and runs[2]["errors"]
    status, step, _ = req("GET", "/api/runs/1/steps/1")
    assert status == 200 and len(step["groups"]) == 2  # line i is group i: a corrupt line keeps its place
    assert all("malformed" in g["error"] for g in step["groups"])
    for path in ("/api/runs/2/steps/1", "/api/runs/2/series", "/api/cost", "/api/runs/3"):
        assert req("GET", path)[0] == 200, path


def test_advantages_api_recomputes_each_scaling(serve, run_dir):
    req = serve([run_dir])
    rewards = [1.1, 0.1, None, 0.0]
    for scale in ("group", "none", "rloo"):
        status, body, _ = req("POST", "/api/advantages", {"rewards": rewards, "scale": scale})
        assert status == 200 and body["advantages"] == pytest.approx(scale_group(rewards, scale).advantages)
    for bad, msg in ([{"rewards": [1.0], "scale": "batchnorm"}, "unknown scale"], [{"rewards": "x"}, "rewards"],
                     [{"rewards": [True, 1.0]}, "rewards"], [{"rewards": [0.0] * 65}, "rewards"]):
        status, body, _ = req("POST", "/api/advantages", bad)
        assert status == 400 and msg in body["error"]
    status, body, _ = req("POST", "/api/advantages", "rewards=1", headers={"Content-Type": "text/plain"})
    assert status == 400 and "JSON" in body["error"]
    assert req("POST", "/api/advantages", "{oops")[0] == 400


def test_try_api_validates_before_calling_the_backend(serve, run_dir, fixed_backend):
    req = serve([run_dir], backend=fixed_backend)
    status, info, _ = req("GET", "/api/runs/0/try")
    assert status == 200 and info["available"] and info["checkpoints"] == ["step_000002"]
    assert info["defaults"] == {"G": 6, "temperature": 1.0, "scale": "group"}
    ok = {"checkpoint": "step_000002", "question": "Calculate 1 + 2.", "answer": "3", "G": 5, "temperature": 0.7}
    status, body, _ = req("POST", "/api/runs/0/try/sample", ok)
    assert status == 200 and len(body["completions"]) == 5
    assert fixed_backend.calls == [("step_000002", "Calculate 1 + 2.", "3", 5, 0.7)]
    for bad, msg in (({"checkpoint": "../../etc"}, "unknown checkpoint"), ({"G": 0}, "'G'"), ({"G": 65}, "'G'"),
                     ({"G": 2.5}, "'G'"), ({"temperature": -1}, "temperature"), ({"question": ""}, "question")):
        status, body, _ = req("POST", "/api/runs/0/try/sample", {**ok, **bad})
        assert status == 400 and msg in body["error"], bad
    assert len(fixed_backend.calls) == 1


def test_try_lists_no_prompts_when_the_task_cannot_load(serve, run_dir, fixed_backend):
    def broken(run):
        raise ValueError("unknown task 'nope'")

    fixed_backend.prompts = broken
    status, info, _ = serve([run_dir], backend=fixed_backend)("GET", "/api/runs/0/try")
    assert status == 200 and info["available"] and info["prompts"] == [] and "unknown task 'nope'" in info["prompt_error"]


def test_try_without_a_backend_or_checkpoints_says_why(serve, run_dir, tmp_path, fixed_backend):
    req = serve([run_dir])
    status, info, _ = req("GET", "/api/runs/0/try")
    assert status == 200 and not info["available"] and "--no-try" in info["error"]
    bare = shutil.copytree(run_dir, tmp_path / "bare", ignore=shutil.ignore_patterns("checkpoints"))
    req = serve([bare], backend=fixed_backend)
    status, info, _ = req("GET", "/api/runs/0/try")
    assert not info["available"] and "no checkpoint" in info["error"]


def test_main_explains_missing_runs_and_busy_ports(tmp_path, monkeypatch, capsys, run_dir):
    monkeypatch.chdir(tmp_path)
    assert srv.main([]) == 2 and "no run folders" in capsys.readouterr().err
    s = srv.make_server([run_dir], port=0)
    try:
        assert srv.main([str(run_dir), "--port", str(s.server_address[1]), "--no-try"]) == 2
        assert "--port 0" in capsys.readouterr().err
    finally:
        s.server_close()


def test_cli_serves_until_stopped(run_dir):
    env = {**os.environ, "PYTHONPATH": str(Path(srv.__file__).parents[2])}
    p = subprocess.Popen([sys.executable, "-m", "grpokit.explorer.server", str(run_dir), "--port", "0", "--no-try"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert "1 run(s) at http://127.0.0.1:" in line, (line, p.stderr.read() if p.poll() is not None else "")
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/runs")
        assert json.loads(conn.getresponse().read())[0]["name"] == "grpo-add2"
    finally:
        p.terminate()
        p.wait(timeout=10)
