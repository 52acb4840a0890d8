"""``grpokit explore [RUN_DIR ...]``: a local web page over run folders (standard library only).

The server knows a fixed list of run folders (given on the command line) and a fixed set of static
files (read once from ``static/``). Every URL names a run by index or sanitized name and a step by
number; no part of a URL is ever joined onto a file-system path, and every file read is resolved
and refused if a symlink leads it out of its run folder (:class:`grpokit.explorer.runs.ConfinedReader`).

JSON API (all GET unless marked)::

    /api/runs                          summaries of every run (status, config summary, steps, errors)
    /api/runs/<run>                    one summary
    /api/runs/<run>/series             numeric metrics.jsonl and eval.jsonl records (the curves)
    /api/runs/<run>/steps/<k>?offset=&limit=
                                       a page of the groups of step k, with the filter flags
                                       (default 0 and 50; ``total`` and ``next`` say what is left)
    /api/cost                          each run's own measurements of its cost (the critic panel)
    /api/runs/<run>/try                Try it: prompts, checkpoints, defaults
    POST /api/runs/<run>/try/sample    {checkpoint, question, answer, G, temperature} -> completions
    POST /api/advantages               {rewards: [r | null], scale} -> baselines and advantages
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from grpokit.explorer.backends import LocalTryBackend, TryBackend
from grpokit.explorer.runs import MAX_PAGE_GROUPS, PAGE_GROUPS, ConfinedReader, RunSet, expand_run_dirs
from grpokit.run_folder.config_keys import cfg_get
from grpokit.explorer.scaling import SCALINGS, scale_group
from grpokit.records import json_safe

STATIC_DIR = Path(__file__).with_name("static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_G, MAX_BODY = 64, 64_000


class BadRequest(ValueError):
    """Client error: answered with 400 and this message."""


def load_static() -> dict[str, tuple[bytes, str]]:
    """``{name: (bytes, content type)}`` for the page's own files; nothing else is ever served."""
    return {p.name: (p.read_bytes(), _TYPES[p.suffix]) for p in STATIC_DIR.iterdir()
            if p.is_file() and p.suffix in _TYPES and re.fullmatch(r"[a-z0-9_-]+\.[a-z]+", p.name)}


class Explorer:
    """The state behind the handler: the runs, the static files and the Try-it backend."""

    def __init__(self, run_dirs: list, backend: TryBackend | None = None, host: str = "127.0.0.1"):
        self.runs = RunSet(run_dirs)
        self.static = load_static()
        self.backend = backend
        self.host = host

    def run_or_404(self, ref: str):
        run = self.runs.get(ref)
        if run is None:
            raise LookupError(f"no run {ref!r}: this explorer serves runs 0..{len(self.runs.runs) - 1} "
                              f"({', '.join(r.name for r in self.runs.runs)})")
        return run

    # ---- Try it ------------------------------------------------------------------------------
    def try_info(self, run) -> dict[str, Any]:
        if self.backend is None:
            return {"available": False, "error": "Try it is off (the explorer was started with --no-try)."}
        reader = ConfinedReader(run.path)
        cfg = reader.config() or {}
        ckpts = self.backend.checkpoints(reader)
        try:
            prompts, prompt_error = self.backend.prompts(reader), None
        except Exception as e:  # noqa: BLE001 - e.g. the run's task cannot be loaded: typing a prompt still works
            prompts, prompt_error = [], f"cannot list the task's prompts ({type(e).__name__}: {e}); type one instead"
        info = {"available": bool(ckpts), "checkpoints": ckpts, "prompts": prompts, "prompt_error": prompt_error,
                "scales": sorted(SCALINGS),
                "defaults": {"G": int(cfg_get(cfg, "rollout/G", "rollout/num_generations", "algo/G", "G", default=8)),
                             "temperature": float(cfg_get(cfg, "rollout/temperature", "temperature", default=1.0)),
                             "scale": str(cfg_get(cfg, "algo/scale", "scale", default="group"))}}
        if not ckpts:
            info["error"] = "This run has no checkpoint yet: Try it samples from a saved checkpoint (checkpoints/step_*)."
        return info

    def try_sample(self, run, body: dict) -> dict[str, Any]:
        if self.backend is None:
            raise BadRequest("Try it is off (the explorer was started with --no-try)")
        question, answer = body.get("question"), body.get("answer", "")
        if not isinstance(question, str) or not question.strip() or len(question) > 8000:
            raise BadRequest("'question' must be a non-empty string of at most 8000 characters")
        if not isinstance(answer, str) or len(answer) > 2000:
            raise BadRequest("'answer' must be a string of at most 2000 characters")
        G, temp = body.get("G"), body.get("temperature")
        if not isinstance(G, int) or isinstance(G, bool) or not 1 <= G <= MAX_G:
            raise BadRequest(f"'G' must be an integer from 1 to {MAX_G}, got {G!r}")
        if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0 <= temp <= 2:
            raise BadRequest(f"'temperature' must be a number from 0 to 2, got {temp!r}")
        reader = ConfinedReader(run.path)
        ckpt = body.get("checkpoint")
        allowed = self.backend.checkpoints(reader)
        if ckpt not in allowed:
            raise BadRequest(f"unknown checkpoint {ckpt!r}: choose one of {allowed}")
        try:
            comps = self.backend.sample(reader, ckpt, question, answer, G, float(temp))
        except ValueError as e:
            raise BadRequest(str(e)) from e
        return {"completions": comps}

    @staticmethod
    def advantages(body: dict) -> dict[str, Any]:
        rewards, scale = body.get("rewards"), body.get("scale", "group")
        if not isinstance(rewards, list) or not rewards or len(rewards) > MAX_G or not all(
                r is None or (isinstance(r, (int, float)) and not isinstance(r, bool)) for r in rewards):
            raise BadRequest(f"'rewards' must be a list of 1..{MAX_G} numbers or nulls")
        if scale not in SCALINGS:
            raise BadRequest(f"unknown scale {scale!r}: use one of {sorted(SCALINGS)}")
        s = scale_group(rewards, scale)
        return {"scale": scale, "advantages": s.advantages, "baselines": s.baselines, "mean": s.mean, "std": s.std}

    # ---- routing -------------------------------------------------------------------------------
    def get(self, parts: list[str], query: dict[str, list[str]] | None = None) -> Any:
        query = query or {}
        match parts:
            case ["runs"]:
                return [self.runs.summary(r) for r in self.runs.runs]
            case ["cost"]:
                return [{"id": r.index, "name": r.name, "use_critic": self.runs.summary(r).get("use_critic", False),
                         **self.runs.cost(r)} for r in self.runs.runs]
            case ["runs", ref]:
                return self.runs.summary(self.run_or_404(ref))
            case ["runs", ref, "series"]:
                return self.runs.series(self.run_or_404(ref))
            case ["runs", ref, "steps", k] if re.fullmatch(r"[0-9]{1,9}", k):
                return self.runs.step(self.run_or_404(ref), int(k), _int_arg(query, "offset", 0, 0, 10**9),
                                      _int_arg(query, "limit", PAGE_GROUPS, 1, MAX_PAGE_GROUPS))
            case ["runs", ref, "try"]:
                return self.try_info(self.run_or_404(ref))
        raise LookupError("no such API endpoint: see the list in grpokit/explorer/server.py")

    def post(self, parts: list[str], body: dict) -> Any:
        match parts:
            case ["advantages"]:
                return self.advantages(body)
            case ["runs", ref, "try", "sample"]:
                return self.try_sample(self.run_or_404(ref), body)
        raise LookupError("no such API endpoint")


def _int_arg(query: dict[str, list[str]], name: str, default: int, lo: int, hi: int) -> int:
    values = query.get(name)
    if not values:
        return default
    if len(values) != 1 or not re.fullmatch(r"[0-9]{1,10}", values[0]) or not lo <= int(values[0]) <= hi:
        raise BadRequest(f"{name!r} must be one integer from {lo} to {hi}, got {values!r}")
    return int(values[0])


class Handler(BaseHTTPRequestHandler):
    server_version = "grpokit-explore"
    explorer: Explorer  # set on the subclass that make_server builds
    quiet = True

    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(json_safe(obj), allow_nan=False, default=str).encode(), "application/json")

    def _host_ok(self) -> bool:
        """Refuse other Host names on loopback (a DNS-rebinding page cannot read local runs)."""
        if self.explorer.host not in _LOOPBACK:
            return True
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in _LOOPBACK

    def _api_parts(self) -> list[str] | None:
        path = urlsplit(self.path).path
        if not path.startswith("/api/"):
            return None
        return [unquote(p) for p in path[len("/api/"):].strip("/").split("/")]

    def _handle(self, method: str) -> None:
        try:
            if not self._host_ok():
                return self._json(HTTPStatus.FORBIDDEN, {"error": "unexpected Host header; open the page via 127.0.0.1"})
            parts = self._api_parts()
            if parts is None:
                if method != "GET":
                    return self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "only the API takes POST"})
                return self._static()
            if method == "GET":
                return self._json(HTTPStatus.OK, self.explorer.get(parts, parse_qs(urlsplit(self.path).query)))
            return self._json(HTTPStatus.OK, self.explorer.post(parts, self._body()))
        except BadRequest as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except LookupError as e:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(e.args[0]) if e.args else "not found"})
        except Exception as e:  # noqa: BLE001 - one bad request must not stop the server
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"})

    def _body(self) -> dict:
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            raise BadRequest("POST bodies must be JSON (Content-Type: application/json)")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise BadRequest(f"request body too large ({n} bytes > {MAX_BODY})")
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"request body is not valid JSON: {e}") from e
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body

    def _static(self) -> None:
        path = urlsplit(self.path).path
        name = "index.html" if path == "/" else path.removeprefix("/static/") if path.startswith("/static/") else None
        if name is None or name not in self.explorer.static:
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})
        body, ctype = self.explorer.static[name]
        self._send(HTTPStatus.OK, body, ctype)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


def make_server(run_dirs: list, host: str = "127.0.0.1", port: int = 0, backend: TryBackend | None = None,
                quiet: bool = True) -> ThreadingHTTPServer:
    """A ready (not yet serving) server; ``port=0`` picks a free port (``server.server_address``)."""
    explorer = Explorer(run_dirs, backend, host)
    handler = type("ExplorerHandler", (Handler,), {"explorer": explorer, "quiet": quiet})
    cls = ThreadingHTTPServer
    if ":" in host:  # an IPv6 address such as ::1
        cls = type("ExplorerServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = cls((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer, poll_interval: float = 0.05) -> threading.Thread:
    """Serve in a daemon thread (tests, notebooks); ``server.shutdown()`` stops it within ``poll_interval``."""
    t = threading.Thread(target=server.serve_forever, args=(poll_interval,), name="grpokit-explore", daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="grpokit explore", description=(
        "Serve a local page over training runs: curves, the step browser (groups, rewards, the "
        "group-mean baseline, advantages), Try it, and the critic comparison."))
    ap.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                    help="run folders written by `grpokit train`, or a folder of runs (default: ./runs)")
    ap.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default 8765)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: only this machine can connect)")
    ap.add_argument("--no-try", action="store_true", help="disable Try it (never loads a model)")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    given = args.run_dirs or (["runs"] if Path("runs").is_dir() else [])
    if not given:
        print("grpokit explore: no run folders. Pass RUN_DIR ... (a folder written by `grpokit train`), "
              "or start it where ./runs exists.", file=sys.stderr)
        return 2
    dirs = expand_run_dirs(given)
    for d in dirs:
        if not d.is_dir():
            print(f"grpokit explore: warning: {d} does not exist (yet); it will show as missing", file=sys.stderr)
    if args.host not in _LOOPBACK:
        print(f"grpokit explore: warning: listening on {args.host}: anyone who can reach this address "
              "can read these runs and sample from their checkpoints", file=sys.stderr)
    try:
        server = make_server(dirs, args.host, args.port, None if args.no_try else LocalTryBackend(),
                             quiet=not args.verbose)
    except OSError as e:
        print(f"grpokit explore: cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
              "pass --port with another number, or --port 0 for any free port", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"grpokit explore: {len(dirs)} run(s) at http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
