"""A run's config read by key path: ``"a/b"`` is ``cfg["a"]["b"]`` (nested configs, as other trainers
write them) or a flat ``"a/b"`` / ``"a.b"`` key. One reader for the explorer and the trackers."""

from __future__ import annotations

from typing import Any


def cfg_get(cfg: Any, *paths: str, default: Any = None) -> Any:
    """The first of ``paths`` ("a/b" = ``cfg["a"]["b"]``, or a flat ``"a/b"``/``"a.b"`` key) present in ``cfg``."""
    if not isinstance(cfg, dict):
        return default
    for path in paths:
        for flat in (path, path.replace("/", ".")):
            if flat in cfg:
                return cfg[flat]
        node: Any = cfg
        for part in path.split("/"):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return node
    return default


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"a/b": value}`` (an empty mapping stays a value), for display and trackers' params."""
    if not isinstance(cfg, dict):
        return {prefix or "config": cfg}
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out
