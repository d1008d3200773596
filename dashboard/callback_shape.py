"""The shape of a ``/_dash-update-component`` request, checked before Dash runs (issue 20).

Dash trusts the browser: it indexes the body's ``outputs``, ``inputs`` and ``state`` as its own
renderer writes them, and hands the values to the callback as they come. A body written by hand
(or by a fuzzer) that names a callback but gives other slots, other ids, a number where a path is,
or JSON nested past the decoder's recursion limit fails inside Dash or inside the callback: an HTTP
500 and a traceback. :func:`refusal` checks the body against the app's own ``callback_map`` — the
output spec, each input and state slot's id and property in order, ``changedPropIds`` — and every
value against the type its property can have (:data:`VALUE_TYPES`), with a size and depth limit; a
body that fails is refused by name (400 ``malformed``) and never reaches Dash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flask import Request

MAX_DEPTH = 12  # nesting of any value (a map's clickData is 4 deep)
MAX_TEXT = 4096  # characters of a string value (a URL's path or query)
MAX_ITEMS = 200  # items of a list or keys of a dict value

Check = Callable[[Any], bool]


def _text(v: Any) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= MAX_TEXT)


def _scalar(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, bool) or v is None:
        return True
    if isinstance(v, int):
        return -(2**53) <= v <= 2**53
    return isinstance(v, str) and len(v) <= MAX_TEXT


def _value(v: Any) -> bool:
    """A dropdown / radio / checklist / input value: a scalar or a short list of scalars."""
    if isinstance(v, list):
        return len(v) <= MAX_ITEMS and all(_scalar(i) and not isinstance(i, bool | float) for i in v)
    return _scalar(v)


def _json(v: Any, depth: int = 0) -> bool:
    """Any JSON value Dash's renderer could send, bounded in depth, size and number range."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(v, dict):
        return len(v) <= MAX_ITEMS and all(
            isinstance(k, str) and len(k) <= MAX_TEXT and _json(x, depth + 1) for k, x in v.items()
        )
    if isinstance(v, list):
        return len(v) <= MAX_ITEMS and all(_json(x, depth + 1) for x in v)
    return _scalar(v)


def _event(v: Any) -> bool:
    """A graph's clickData: ``None`` or ``{"points": [{...}, ...]}``."""
    if v is None:
        return True
    if not isinstance(v, dict) or not _json(v):
        return False
    points = v.get("points", [])
    return isinstance(points, list) and all(isinstance(p, dict) for p in points)


# what each property of a callback's inputs and state may hold (a property missing here is refused)
VALUE_TYPES: Mapping[str, Check] = {
    "pathname": _text,
    "search": _text,
    "hash": _text,
    "href": _text,
    "children": _text,  # the pages keep ids (case, grid, role) as a hidden Div's text
    "start_date": _text,
    "end_date": _text,
    "value": _value,
    "data": _json,
    "clickData": _event,
    "n_clicks": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53),
}


def _slot(v: Any) -> tuple[str, str] | None:
    if isinstance(v, dict) and isinstance(v.get("id"), str) and isinstance(v.get("property"), str):
        return v["id"], v["property"]
    return None


def _spec(s: Any) -> tuple[str, str]:
    """(id, property) of a Dash dependency (Output, Input or State) or of a ``{"id", "property"}``."""
    if isinstance(s, dict):
        return str(s["id"]), str(s["property"])
    return str(s.component_id), str(s.component_property)


def _outputs_ok(given: Any, expected: Any) -> bool:
    if isinstance(expected, list | tuple):
        return (
            isinstance(given, list)
            and len(given) == len(expected)
            and all(_slot(g) == _spec(e) for g, e in zip(given, expected, strict=True))
        )
    return _slot(given) == _spec(expected)


def _slots_ok(given: Any, expected: list[Any]) -> str | None:
    if not isinstance(given, list) or len(given) != len(expected):
        return f"expected {len(expected)} slots"
    for g, e in zip(given, expected, strict=True):
        slot = _slot(g)
        if slot is None or slot != _spec(e):
            return f"slot {slot} is not {_spec(e)}"
        check = VALUE_TYPES.get(slot[1])
        if check is None or not check(g.get("value")):
            return f"{slot[0]}.{slot[1]} holds a value of the wrong kind"
    return None


def request_body(req: Request) -> Any:
    """The request's JSON body, or ``None`` when it is not JSON or nests past the decoder's limit."""
    try:
        return req.get_json(silent=True, cache=True)
    except RecursionError:  # not a ValueError: Flask's silent does not take it
        return None


def refusal(body: Any, callback_map: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why a ``/_dash-update-component`` body is not a call of this app Dash can run (``None``: it is)."""
    if not isinstance(body, dict):
        return "not a JSON object"
    output = body.get("output")
    cb = callback_map.get(output) if isinstance(output, str) else None
    if cb is None:
        return "no callback of this app has that output"
    if not _outputs_ok(body.get("outputs"), cb["output"]):
        return "outputs do not match the callback"
    for part in ("inputs", "state"):
        why = _slots_ok(body.get(part, []), list(cb.get(part) or []))
        if why is not None:
            return f"{part}: {why}"
    changed = body.get("changedPropIds", [])
    if not (isinstance(changed, list) and len(changed) <= MAX_ITEMS and all(_text(c) and c for c in changed)):
        return "changedPropIds is not a list of names"
    return None
