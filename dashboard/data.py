"""Read models the pages need, loaded once per built district and cached (read-only)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import orjson
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.engine import Engine

from dashboard.figures import StreetShape
from dashboard.labels import label_png
from domain.geo import polygons_of
from store.db import session_factory
from store.geography import (
    DistrictSummary,
    district_summary,
    grid_counts_by_street,
    grids_geojson,
    street_rows,
)
from store.models import District


@dataclass(frozen=True)
class Overview:
    """Everything the overview page shows of one district."""

    summary: DistrictSummary
    generated: bool
    streets: tuple[StreetShape, ...]
    grid_codes: tuple[str, ...]
    grid_street: tuple[int, ...]
    grids_json: bytes
    labels_png: bytes


def _street_shape(row: object, grids: int) -> StreetShape:
    geom = shape(row.geometry)  # type: ignore[attr-defined]
    rings = tuple(tuple((float(x), float(y)) for x, y in poly.exterior.coords) for poly in polygons_of(geom))
    label = geom.representative_point() if geom.centroid.within(geom) is False else geom.centroid
    return StreetShape(
        code=row.code,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        rings=rings,
        label=(float(label.x), float(label.y)),
        grids=grids,
    )


class OverviewCache:
    """Loads the overview of the newest built district; reloads when it is rebuilt."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._key: tuple[str, datetime] | None = None
        self._value: Overview | None = None

    def current(self) -> Overview | None:
        """The overview (None when no district is built)."""
        with session_factory(self.engine)() as s:
            row = s.execute(
                select(District.adcode, District.built_at).order_by(District.built_at.desc())
            ).first()
        if row is None:
            return None
        key = (row[0], row[1])
        with self._lock:
            if self._key != key or self._value is None:
                self._value = self._load(row[0])
                self._key = key
            return self._value

    def _load(self, adcode: str) -> Overview:
        with session_factory(self.engine)() as s:
            summary = district_summary(s, adcode)
            assert summary is not None
            counts = grid_counts_by_street(s, adcode)
            rows = street_rows(s, adcode)
            streets = tuple(_street_shape(r, counts.get(r.code, 0)) for r in rows)
            generated = any(r.generated for r in rows)
            fc = grids_geojson(s, adcode)
        ordinal = {st.code: i for i, st in enumerate(streets)}
        codes = tuple(f["id"] for f in fc["features"])
        street_of = tuple(ordinal.get(f["properties"]["street"], 0) for f in fc["features"])
        labels = [(st.name, st.label[0], st.label[1]) for st in streets]
        return Overview(
            summary=summary,
            generated=generated,
            streets=streets,
            grid_codes=codes,
            grid_street=street_of,
            grids_json=orjson.dumps(fc),
            labels_png=label_png(labels, summary.bounds, width=1200, font_px=46),
        )
