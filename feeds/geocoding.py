"""Geocoding answers as the HTTP API and the desk show them (``GET /api/v1/geocode``, ``/reverse``).

The gazetteer is ``store.addresses.AddressBook`` (``domain.address`` does the matching); a candidate's
grid is the one its point lies in now (located with the district's grid index, as a report's point
is), not only the one it had when it was imported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from domain.address import MAX_QUERY, Address, Candidate, Geocoded
from domain.crs import to_wgs84
from domain.index import PointGridIndex
from feeds.intake import LOCATE
from feeds.schemas import Reason
from store.addresses import AddressBook

MAX_LIMIT = 20  # candidates one answer may hold
MAX_REVERSE_M = 5000.0  # the farthest a reverse lookup searches


class GeocodeRefusal(ValueError):
    """A geocoding request refused by name (the reason and the HTTP status)."""

    def __init__(self, reason: Reason, message: str, status: int) -> None:
        super().__init__(message)
        self.reason, self.status = reason, status

    def body(self) -> dict[str, str]:
        """The JSON body of the refusal."""
        return {"error": self.reason.value, "message": str(self)}


def address_json(a: Address, grid: str | None = None) -> dict[str, Any]:
    """One gazetteer entry as JSON (``grid``: where its point lies now, else its stored grid)."""
    return {
        "address_id": a.id,
        "address": a.text,
        "name": a.parsed.name,
        "number": a.parsed.door or None,
        "community": a.community,
        "lon": a.lon,
        "lat": a.lat,
        "grid": grid if grid is not None else a.grid,
    }


def _grids(index: PointGridIndex | None, addresses: list[Address]) -> list[str | None]:
    """The grid each address lies in now (one vectorised lookup on the locating thread)."""
    if index is None or not addresses:
        return [a.grid for a in addresses]
    lon = np.array([a.lon for a in addresses])
    lat = np.array([a.lat for a in addresses])
    codes = LOCATE.submit(index.lookup, lon, lat).result()
    return [None if c is None else str(c) for c in codes]


def candidate_json(c: Candidate, grid: str | None) -> dict[str, Any]:
    """A candidate: the address, its score (0–1) and whether it is the same name and 门牌."""
    return {**address_json(c.address, grid), "score": c.score, "exact": c.exact}


def geocoded_json(g: Geocoded, index: PointGridIndex | None) -> dict[str, Any]:
    """A geocoding answer: the parsed query, candidates best first and the one placed (or null)."""
    grids = _grids(index, [c.address for c in g.candidates])
    cands = [candidate_json(c, grid) for c, grid in zip(g.candidates, grids, strict=True)]
    placed = None
    if g.placed is not None:
        placed = next(x for x, c in zip(cands, g.candidates, strict=True) if c is g.placed)
        if placed["grid"] is None:  # outside today's grids: a report there would not be placed
            placed = None
    p = g.parsed
    return {
        "query": g.query,
        "parsed": {"name": p.name, "number": p.number, "qualifier": p.qualifier or None, "suffix": p.suffix},
        "threshold": g.threshold,
        "placed": placed,
        "candidates": cands,
    }


def geocode(book: AddressBook, index: PointGridIndex | None, q: str | None, limit: Any = 5) -> dict[str, Any]:
    """``GET /api/v1/geocode?q=…&limit=…`` (refusals: missing_field, too_large, wrong_type)."""
    if q is None or not q.strip():
        raise GeocodeRefusal(Reason.MISSING_FIELD, "q: the address to geocode is missing", 400)
    if len(q) > MAX_QUERY:
        raise GeocodeRefusal(Reason.TOO_LARGE, f"q: at most {MAX_QUERY} characters (got {len(q)})", 413)
    n = _int(limit, "limit", 1, MAX_LIMIT)
    return geocoded_json(book.geocode(q, limit=n), index)


def reverse(
    book: AddressBook, index: PointGridIndex | None, lon: Any, lat: Any, max_m: Any = 500, crs: Any = None
) -> dict[str, Any]:
    """``GET /api/v1/reverse?lon=…&lat=…[&max_m=…][&crs=…]``: the nearest address and its distance."""
    if lon is None or lat is None:
        raise GeocodeRefusal(Reason.MISSING_FIELD, "lon and lat are needed", 400)
    x, y = query_point(lon, lat)
    radius = query_number(max_m if max_m is not None else 500, "max_m")
    if not 0 < radius <= MAX_REVERSE_M:
        raise GeocodeRefusal(Reason.WRONG_TYPE, f"max_m: a distance in metres up to {MAX_REVERSE_M:g}", 400)
    x, y = in_wgs84(x, y, crs)
    hit = book.reverse(x, y, radius)
    out: dict[str, Any] = {"lon": x, "lat": y, "max_m": radius, "address": None, "distance_m": None}
    if hit is not None:
        a, metres = hit
        out["address"] = address_json(a, _grids(index, [a])[0])
        out["distance_m"] = round(metres, 1)
    return out


def query_point(lon: Any, lat: Any) -> tuple[float, float]:
    """A query's ``lon``/``lat`` as numbers on Earth, or a named refusal."""
    x, y = query_number(lon, "lon"), query_number(lat, "lat")
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise GeocodeRefusal(Reason.BAD_COORDINATES, f"{x},{y} is not a point on Earth", 422)
    return x, y


def in_wgs84(x: float, y: float, crs: Any) -> tuple[float, float]:
    """A query's point moved from its ``crs`` (none: WGS-84 already) to WGS-84, or a named refusal."""
    if not crs:
        return x, y
    try:
        wx, wy = to_wgs84(np.array([x]), np.array([y]), str(crs))
    except ValueError as exc:
        raise GeocodeRefusal(Reason.WRONG_TYPE, str(exc), 400) from None
    return float(wx[0]), float(wy[0])


def query_number(value: Any, name: str) -> float:
    """A query parameter as a finite number, or a named refusal."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise GeocodeRefusal(Reason.WRONG_TYPE, f"{name}: not a number: {str(value)[:40]!r}", 400) from None
    if not math.isfinite(x):
        raise GeocodeRefusal(Reason.BAD_COORDINATES, f"{name}: not a finite number", 422)
    return x


def _int(value: Any, name: str, low: int, high: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise GeocodeRefusal(
            Reason.WRONG_TYPE, f"{name}: not a whole number: {str(value)[:40]!r}", 400
        ) from None
    if not low <= n <= high:
        raise GeocodeRefusal(Reason.WRONG_TYPE, f"{name}: from {low} to {high}", 400)
    return n
