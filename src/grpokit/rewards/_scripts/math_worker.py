"""A math-verify worker process: JSON lines in on stdin, JSON lines out on stdout.

Started by ``grpokit.rewards.verify_pool`` as a script (it imports nothing from grpokit). It runs
math-verify in its own main thread, where math-verify's ``signal.alarm`` timeouts work, under an
address-space limit; the parent adds a hard wall-clock kill on top.

Model text never reaches Python's ``eval`` here either: only LaTeX extraction is enabled (the
ANTLR LaTeX parser, not ``sympy.parse_expr``), and sympy's one string-evaluation point
(``sympy.parsing.sympy_parser.eval_expr``, behind ``sympify`` / ``parse_expr``) is replaced by a
guard that only lets through the literal constructors the LaTeX parser emits
(``Integer (12 )``, ``Float ('1.5' )``, ``Symbol ('x' )``, ``E``).

Protocol: the worker prints ``{"ready": true}`` once imported, then for each request
``{"id": i, "gold": str, "pred": str}`` answers ``{"id": i, "ok": bool, "error": str | null}``.
It exits on end of input, and dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import sys

_SAFE_CALLS = {"Integer", "Float", "Rational", "Symbol"}
_SAFE_NAMES = _SAFE_CALLS | {"E", "I", "pi", "oo", "nan", "zoo"}


def _check_literal_code(code: str) -> None:
    """Raise unless ``code`` is a literal sympy constructor call such as ``Integer (12 )``."""
    tree = ast.parse(code.strip(), mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SAFE_CALLS) or node.keywords:
                raise ValueError(f"refusing to evaluate {code[:80]!r}")
            if not all(isinstance(a, (ast.Constant, ast.UnaryOp)) for a in node.args):
                raise ValueError(f"refusing to evaluate {code[:80]!r}")
        elif isinstance(node, ast.Name):
            if node.id not in _SAFE_NAMES:
                raise ValueError(f"refusing to evaluate {code[:80]!r}")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str)) or (isinstance(node.value, str) and len(node.value) > 200):
                raise ValueError(f"refusing to evaluate {code[:80]!r}")
        elif not isinstance(node, (ast.Expression, ast.Load, ast.UnaryOp, ast.USub, ast.UAdd)):
            raise ValueError(f"refusing to evaluate {code[:80]!r}")


def install_eval_guard() -> None:
    import sympy.parsing.sympy_parser as sp

    original = sp.eval_expr

    def guarded_eval_expr(code, local_dict, global_dict):
        _check_literal_code(code)
        return original(code, local_dict, global_dict)

    sp.eval_expr = guarded_eval_expr


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:  # the parent already died before prctl took effect
        os._exit(0)


def main() -> None:
    parent, memory_mb, inner_timeout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the trainer; it closes us
    import logging

    logging.disable(logging.CRITICAL)  # math-verify logs every timeout; the parent counts them
    install_eval_guard()
    from math_verify import LatexExtractionConfig, parse, verify
    from sympy import FiniteSet, Tuple

    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    config = [LatexExtractionConfig(boxed_match_priority=0)]

    def is_multi(parsed) -> bool:
        return bool(parsed) and isinstance(parsed[0], (FiniteSet, Tuple, list, tuple)) and len(parsed[0]) > 1

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        ok, err = False, None
        try:
            gold = parse(req["gold"], extraction_config=config, parsing_timeout=inner_timeout)
            pred = parse(req["pred"], extraction_config=config, parsing_timeout=inner_timeout)
            if not gold or not pred:
                err = "unparsed gold" if not gold else "unparsed answer"
            elif is_multi(pred) and not is_multi(gold):
                err = "several answers for a single gold"
            else:
                ok = bool(verify(gold, pred, timeout_seconds=inner_timeout))
        except BaseException as e:  # MemoryError, RecursionError, a sympy bug: the answer scores 0
            err = f"{type(e).__name__}: {str(e)[:200]}"
        out.write(json.dumps({"id": req["id"], "ok": ok, "error": err}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
