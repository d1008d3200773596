"""Components (部件, issue 18): the surveyed objects of the 部件 classes, their owners, and the nearest
objects of a class around a point.

A component's identifier (标识码) is 16 digits: the county's adcode (6), the class code (4: 2-digit
大类 + 2-digit 小类) and a serial (6), domain.md §1.2. Each object has up to three responsible units
(DeptCode1..3): 主管 (the competent authority), 权属 (the owner) and 养护 (the maintainer). A report
that names an object goes, by default, to the unit of the first role in the handling order that the
object has (default 养护, then 权属, then 主管), falling back to the class's default department.

Pure: no I/O. :class:`ComponentIndex` is built from arrays the store loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import shapely
from numpy.typing import ArrayLike

from domain.catalogue import CaseKind, Catalogue, CatalogueError, parse_component_instance_code

EARTH_M = 6_371_008.8
DEFAULT_ORDER = ("养护", "权属", "主管")


class ComponentState(StrEnum):
    """The state of an object (ObjState)."""

    INTACT = "完好"
    DAMAGED = "破损"
    LOST = "丢失"
    OCCUPIED = "占用"
    RETIRED = "废弃"
    OTHER = "其他"

    @classmethod
    def parse(cls, text: object) -> ComponentState:
        """完好/破损/丢失/占用/废弃/其他, or intact/damaged/lost/occupied/retired/other; empty is 完好."""
        key = str(text if text is not None else "").strip()
        if not key:
            return cls.INTACT
        for s in cls:
            if key == s.value or key.lower() == s.name.lower():
                return s
        raise ValueError(f"unknown state {text!r}; use 完好, 破损, 丢失, 占用, 废弃 or 其他")


class Role(StrEnum):
    """The role of a responsible unit (DeptCode1..3 in that order)."""

    MAIN = "主管"
    OWNER = "权属"
    CARE = "养护"

    @property
    def column(self) -> str:
        """The store's column of this role's unit."""
        return {"主管": "unit_main", "权属": "unit_owner", "养护": "unit_care"}[self.value]

    @classmethod
    def parse(cls, text: str) -> Role:
        """主管/权属/养护 or main/owner/care."""
        key = text.strip()
        for r in cls:
            if key == r.value or key.lower() == r.name.lower():
                return r
        raise ValueError(f"unknown role {text!r}; use 主管, 权属 or 养护")


class Source(StrEnum):
    """Where a record comes from (DataSource): a survey or an update."""

    SURVEYED = "实测"
    UPDATED = "更新"

    @classmethod
    def parse(cls, text: object) -> Source:
        """实测/更新 or surveyed/updated; empty is 实测."""
        key = str(text if text is not None else "").strip()
        if not key:
            return cls.SURVEYED
        for s in cls:
            if key == s.value or key.lower() == s.name.lower():
                return s
        raise ValueError(f"unknown source {text!r}; use 实测 or 更新")


def handling_order(spec: str | None) -> tuple[Role, ...]:
    """The roles whose unit handles a report, first found first: ``"养护,权属,主管"`` (the default)."""
    if not spec or not spec.strip():
        return tuple(Role(r) for r in DEFAULT_ORDER)
    roles = tuple(Role.parse(p) for p in spec.replace("，", ",").split(",") if p.strip())
    if len(set(roles)) != len(roles):
        raise ValueError(f"handling order {spec!r} names a role twice")
    return roles


def handling_unit(units: Mapping[Role, str | None], order: Sequence[Role] = ()) -> str | None:
    """The unit that handles a report of the object: the first role of ``order`` it has a unit for."""
    for role in order or handling_order(None):
        unit = units.get(role)
        if unit:
            return unit
    return None


def check_identifier(code: str, adcode: str, catalogue: Catalogue) -> tuple[str | None, str]:
    """A named refusal (``bad_identifier``, ``wrong_county``, ``unknown_class``) and its message for a
    component identifier of this district, or ``(None, class code)``."""
    try:
        county, major, minor, _ = parse_component_instance_code(code)
    except CatalogueError as exc:
        return "bad_identifier", str(exc)
    if county != adcode:
        return "wrong_county", f"{code}: county {county} is not the district's {adcode}"
    try:
        catalogue.minor(CaseKind.COMPONENT, major + minor)
    except CatalogueError as exc:
        return "unknown_class", f"{code}: {exc}"
    return None, major + minor


@dataclass(frozen=True)
class Nearby:
    """One object near a point: its identifier, class and distance in metres."""

    id: str
    class_code: str
    distance_m: float
    lon: float
    lat: float


class ComponentIndex:
    """The nearest objects of a class around a point: one shapely STRtree per class over the objects'
    representative points (WGS-84); distances in metres on the local tangent plane."""

    def __init__(self, ids: Sequence[str], classes: Sequence[str], lon: ArrayLike, lat: ArrayLike) -> None:
        ids_a = np.asarray(ids, dtype=object)
        cls_a = np.asarray(classes, dtype=object)
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        self._by_class: dict[str, tuple[shapely.STRtree, np.ndarray, np.ndarray, np.ndarray]] = {}
        for code in sorted(set(cls_a.tolist())):
            sel = np.flatnonzero(cls_a == code)
            pts = shapely.points(x[sel], y[sel])
            self._by_class[code] = (shapely.STRtree(pts), ids_a[sel], x[sel], y[sel])
        self.size = len(ids_a)

    def __len__(self) -> int:
        return self.size

    def classes(self) -> list[str]:
        """The class codes that have objects."""
        return list(self._by_class)

    def nearest(
        self, class_code: str, lon: float, lat: float, *, k: int = 5, max_m: float = 500.0
    ) -> list[Nearby]:
        """Up to ``k`` objects of a class within ``max_m`` metres of a WGS-84 point, nearest first."""
        found = self._by_class.get(class_code)
        if found is None or k <= 0:
            return []
        tree, ids, xs, ys = found
        kx = math.cos(math.radians(lat)) * math.pi * EARTH_M / 180.0  # metres per degree of longitude
        ky = math.pi * EARTH_M / 180.0
        radius = min(max_m, 50.0)
        while True:  # grow the box until k objects lie within the radius (points outside are farther)
            dx, dy = radius / kx, radius / ky
            hits = tree.query(shapely.box(lon - dx, lat - dy, lon + dx, lat + dy))
            d = np.hypot((xs[hits] - lon) * kx, (ys[hits] - lat) * ky)
            keep = d <= radius
            if int(keep.sum()) >= k or radius >= max_m:
                break
            radius = min(max_m, radius * 4)
        hits, d = hits[keep], d[keep]
        order = np.argsort(d, kind="stable")[:k]
        return [
            Nearby(
                str(ids[hits[i]]), class_code, round(float(d[i]), 1), float(xs[hits[i]]), float(ys[hits[i]])
            )
            for i in order
        ]
