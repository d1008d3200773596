"""The 部件 inventory as the HTTP API shows it (issue 18): ``GET /api/v1/components/nearest`` (the
objects of a class around a point, to pick the one a report names) and ``GET /api/v1/components/<id>``.

The inventory is ``store.components.ComponentBook`` (reloaded when an import or update changed it).
"""

from __future__ import annotations

from typing import Any

from feeds.geocoding import GeocodeRefusal, in_wgs84, query_number, query_point
from feeds.schemas import Reason
from store.components import ComponentBook, Loaded

MAX_K = 50  # objects one answer may hold
MAX_NEAREST_M = 2000.0  # the farthest a lookup searches


def component_json(book: ComponentBook, obj: Loaded) -> dict[str, Any]:
    """One object as JSON: identifier, class, name, point, grid, state, units and who handles reports."""
    return {
        "id": obj.id, "class_code": obj.class_code, "name": obj.name, "lon": obj.lon, "lat": obj.lat,
        "grid": obj.grid_code, "state": obj.state,
        "units": {role.value: unit for role, unit in obj.units.items()},
        "handler": book.handler(obj),
    }  # fmt: skip


def nearest(
    book: ComponentBook, class_code: Any, lon: Any, lat: Any, k: Any = 5, max_m: Any = 500, crs: Any = None
) -> dict[str, Any]:
    """``GET /api/v1/components/nearest?class=…&lon=…&lat=…[&k=5][&max_m=500][&crs=wgs84]``."""
    if not class_code or lon is None or lat is None:
        raise GeocodeRefusal(Reason.MISSING_FIELD, "class, lon and lat are needed", 400)
    code = str(class_code).strip()
    if len(code) != 4 or not code.isdigit():
        raise GeocodeRefusal(Reason.WRONG_TYPE, f"class: a 4-digit 部件 class code, not {code[:20]!r}", 400)
    x, y = query_point(lon, lat)
    n = query_number(k if k is not None else 5, "k")
    if not (n.is_integer() and 1 <= n <= MAX_K):
        raise GeocodeRefusal(Reason.WRONG_TYPE, f"k: a whole number from 1 to {MAX_K}", 400)
    radius = query_number(max_m if max_m is not None else 500, "max_m")
    if not 0 < radius <= MAX_NEAREST_M:
        raise GeocodeRefusal(Reason.WRONG_TYPE, f"max_m: a distance in metres up to {MAX_NEAREST_M:g}", 400)
    x, y = in_wgs84(x, y, crs)
    inv = book.inventory()
    out = []
    for hit in inv.nearest(code, x, y, k=int(n), max_m=radius):
        obj = inv.get(hit.id)
        if obj is not None:
            out.append({**component_json(book, obj), "distance_m": hit.distance_m})
    return {"class": code, "lon": x, "lat": y, "max_m": radius, "components": out}


def component(book: ComponentBook, code: str) -> dict[str, Any]:
    """``GET /api/v1/components/<id>`` (404 unknown_component: not in the inventory or retired)."""
    obj = book.get(code)
    if obj is None:
        raise GeocodeRefusal(Reason.UNKNOWN_COMPONENT, f"no component {code[:32]!r} in the inventory", 404)
    return component_json(book, obj)
