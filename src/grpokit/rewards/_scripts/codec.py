"""Tagged JSON for Python values that tests compare: exact types, no pickling, no code.

``encode`` accepts only values whose ``type`` is exactly None, bool, int, float, str, list,
tuple, set, frozenset, dict or complex (a subclass, e.g. an ``int`` whose ``__eq__`` always says
True, is refused). JSON objects are always tags (``{"$tuple": [...]}``), so ``decode`` rebuilds
plain built-in values and nothing else. Shared by the in-sandbox harnesses (prepended to their
source) and the parent (imported), so both sides agree on one format.
"""

import math as _math

MAX_DEPTH = 50


class Unencodable(TypeError):
    pass


def encode(v, depth=0):
    if depth > MAX_DEPTH:
        raise Unencodable("nested too deeply")
    t = type(v)
    if v is None or t is bool or t is str or t is int:
        return v
    if t is float:
        return v if _math.isfinite(v) else {"$float": repr(v)}
    if t is list:
        return [encode(x, depth + 1) for x in v]
    if t is tuple:
        return {"$tuple": [encode(x, depth + 1) for x in v]}
    if t is set or t is frozenset:
        return {"$set" if t is set else "$frozenset": [encode(x, depth + 1) for x in v]}
    if t is dict:
        return {"$dict": [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in v.items()]}
    if t is complex:
        return {"$complex": [encode(v.real), encode(v.imag)]}
    raise Unencodable(f"cannot compare a value of type {t.__name__}")


def decode(v, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    t = type(v)
    if v is None or t in (bool, str, int, float):
        return v
    if t is list:
        return [decode(x, depth + 1) for x in v]
    if t is not dict or len(v) != 1:
        raise ValueError(f"not a tagged value: {str(v)[:80]}")
    (tag, body), = v.items()
    if tag == "$float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "$complex" and type(body) is list and len(body) == 2:
        return complex(decode(body[0], depth + 1), decode(body[1], depth + 1))
    if type(body) is not list:
        raise ValueError(f"bad tagged value: {str(v)[:80]}")
    items = [decode(x, depth + 1) for x in body]
    if tag == "$tuple":
        return tuple(items)
    if tag == "$set":
        return set(items)
    if tag == "$frozenset":
        return frozenset(items)
    if tag == "$dict" and all(type(p) is list and len(p) == 2 for p in items):
        return {k: x for k, x in items}
    raise ValueError(f"unknown tag {tag!r}")
