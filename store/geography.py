"""Writing a city plan into the store (idempotent, codes kept stable) and reading it back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from domain.city import (
    AreaFigures,
    CityPlan,
    ExistingGrid,
    GridLayout,
    GridLevel,
    Lattice,
    area_figures,
    reconcile_codes,
)
from domain.geo import LocalProjection
from domain.index import PointGridIndex
from store.models import Community, District, Grid, ResponsibilityArea, Street

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class SaveSummary:
    """What ``save_plan`` changed."""

    streets: int
    communities: int
    grids: int
    grids_new: int
    grids_kept: int
    grids_retired: int
    areas: int
    layout: GridLayout = GridLayout.LATTICE  # how the unit grids were drawn
    grid_areas: AreaFigures | None = None  # their area distribution (m²)


def geo_columns(
    geom_wgs84: BaseGeometry, area_m2: float | None = None, proj: LocalProjection | None = None
) -> dict[str, Any]:
    """GeoJSON, bbox, centroid and area columns of a WGS-84 geometry."""
    minx, miny, maxx, maxy = geom_wgs84.bounds
    c = geom_wgs84.centroid
    if area_m2 is None:
        p = proj or LocalProjection.for_geometry(geom_wgs84)
        area_m2 = float(p.to_metric(geom_wgs84).area)
    return {
        "geometry": mapping(geom_wgs84),
        "min_lon": minx,
        "min_lat": miny,
        "max_lon": maxx,
        "max_lat": maxy,
        "centroid_lon": c.x,
        "centroid_lat": c.y,
        "area_m2": round(float(area_m2), 1),
    }


def stored_lattice(session: Session, adcode: str) -> Lattice | None:
    """The lattice a district was first built on, if it is in the store."""
    d = session.get(District, adcode)
    if d is None:
        return None
    return Lattice(lon0=d.lattice_lon0, x0=d.lattice_x0, y0=d.lattice_y0, cell=d.cell_m)


def _existing_grids(session: Session, adcode: str) -> list[ExistingGrid]:
    rows = session.execute(
        select(Grid.code, Grid.community_code, Grid.geometry).where(Grid.code.startswith(adcode))
    ).all()
    return [ExistingGrid(code=r[0], community_code=r[1], geometry=shape(r[2])) for r in rows]


def _upsert(session: Session, model: Any, key: str, rows: list[dict[str, Any]], existing: set[str]) -> None:
    new = [r for r in rows if r[key] not in existing]
    old = [r for r in rows if r[key] in existing]
    if new:
        session.execute(insert(model), new)
    if old:
        session.execute(update(model), old)


def _codes(session: Session, column: Any, adcode: str) -> set[str]:
    return set(session.scalars(select(column).where(column.startswith(adcode))))


def save_plan(
    session: Session, plan: CityPlan, streets_source: str, progress: Progress = _no_progress
) -> SaveSummary:
    """Write a plan inside the caller's transaction; stored grid codes are kept, new ones appended."""
    adcode = plan.adcode
    proj = plan.lattice.projection
    old_grids = _codes(session, Grid.code, adcode)
    reconcile_codes(plan, _existing_grids(session, adcode))
    kept = sum(1 for g in plan.grids if g.code in old_grids)
    lat = plan.lattice
    district_row = {
        "adcode": adcode,
        "name": plan.name,
        "name_en": plan.name_en,
        "source": plan.source,
        "lattice_lon0": lat.lon0,
        "lattice_x0": lat.x0,
        "lattice_y0": lat.y0,
        "cell_m": lat.cell,
        "streets_source": streets_source,
        **geo_columns(plan.outline, proj=proj),
    }
    _upsert(session, District, "adcode", [district_row], _codes(session, District.adcode, adcode))
    progress("store", 1, 5)

    street_rows = [
        {
            "code": s.code,
            "district_adcode": adcode,
            "name": s.name,
            "name_en": s.name_en,
            "generated": s.generated,
            "active": True,
            **geo_columns(s.geometry, proj=proj),
        }
        for s in plan.streets
    ]
    old_streets = _codes(session, Street.code, adcode)
    _upsert(session, Street, "code", street_rows, old_streets)
    gone = old_streets - {s.code for s in plan.streets}
    if gone:
        session.execute(update(Street).where(Street.code.in_(gone)).values(active=False))
    progress("store", 2, 5)

    comm_rows = [
        {
            "code": c.code,
            "street_code": c.street_code,
            "name": c.name,
            "name_en": c.name_en,
            "generated": c.generated,
            "active": True,
            **geo_columns(c.geometry, proj=proj),
        }
        for c in plan.communities
    ]
    old_comms = _codes(session, Community.code, adcode)
    _upsert(session, Community, "code", comm_rows, old_comms)
    gone = old_comms - {c.code for c in plan.communities}
    if gone:
        session.execute(update(Community).where(Community.code.in_(gone)).values(active=False))
    progress("store", 3, 5)

    area_rows = [
        {"code": a.code, "street_code": a.street_code, "grid_count": len(a.grid_codes), "active": True}
        for a in plan.areas
    ]
    old_areas = _codes(session, ResponsibilityArea.code, adcode)
    _upsert(session, ResponsibilityArea, "code", area_rows, old_areas)
    gone = old_areas - {a.code for a in plan.areas}
    if gone:
        session.execute(
            update(ResponsibilityArea).where(ResponsibilityArea.code.in_(gone)).values(active=False)
        )
    progress("store", 4, 5)

    area_of = {code: a.code for a in plan.areas for code in a.grid_codes}
    geoms = np.asarray([g.geometry for g in plan.grids], dtype=object)
    bounds = shapely.bounds(geoms)
    cents = shapely.centroid(geoms)
    cx, cy = shapely.get_x(cents), shapely.get_y(cents)
    new_rows: list[dict[str, Any]] = []
    old_rows: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for i, g in enumerate(plan.grids):
        row = {
            "code": g.code,
            "community_code": g.community_code,
            "street_code": g.street_code,
            "area_code": area_of.get(g.code),
            "lattice_row": g.row,
            "lattice_col": g.col,
            "active": True,
            "geometry": mapping(g.geometry),
            "min_lon": float(bounds[i, 0]),
            "min_lat": float(bounds[i, 1]),
            "max_lon": float(bounds[i, 2]),
            "max_lat": float(bounds[i, 3]),
            "centroid_lon": float(cx[i]),
            "centroid_lat": float(cy[i]),
            "area_m2": g.area_m2,
        }
        if g.code not in old_grids:
            new_rows.append({**row, "level": (g.level or GridLevel.GENERAL).value})
        elif g.level is not None:
            old_rows[True].append({**row, "level": g.level.value})
        else:  # a rebuild keeps levels set earlier (import levels, surveyed grids)
            old_rows[False].append(row)
    if new_rows:
        session.execute(insert(Grid), new_rows)
    for rows in old_rows.values():
        if rows:
            session.execute(update(Grid), rows)
    still_active = set(
        session.scalars(select(Grid.code).where(Grid.code.startswith(adcode), Grid.active.is_(True)))
    )
    retired = (still_active & old_grids) - {g.code for g in plan.grids}
    if retired:
        session.execute(update(Grid).where(Grid.code.in_(retired)).values(active=False, area_code=None))
    progress("store", 5, 5)
    return SaveSummary(
        streets=len(plan.streets),
        communities=len(plan.communities),
        grids=len(plan.grids),
        grids_new=len(plan.grids) - kept,
        grids_kept=kept,
        grids_retired=len(retired),
        areas=len(plan.areas),
        layout=plan.layout,
        grid_areas=area_figures([g.area_m2 for g in plan.grids]),
    )


def set_levels(session: Session, levels: dict[str, str]) -> int:
    """Set the management level of grids by code; returns how many rows changed."""
    rows = [{"code": code, "level": level} for code, level in levels.items()]
    known = set(session.scalars(select(Grid.code).where(Grid.code.in_(list(levels)))))
    unknown = sorted(set(levels) - known)
    if unknown:
        raise KeyError(unknown[0])
    if rows:
        session.execute(update(Grid), rows)
    return len(rows)


# -- read models --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistrictSummary:
    """Counts of one district's geography."""

    adcode: str
    name: str
    name_en: str
    streets: int
    communities: int
    grids: int
    areas: int
    bounds: tuple[float, float, float, float]
    centre: tuple[float, float]


def district_summary(session: Session, adcode: str | None = None) -> DistrictSummary | None:
    """The (first) district in the store with its counts, or None if none was built."""
    q = select(District).order_by(District.adcode)
    if adcode:
        q = q.where(District.adcode == adcode)
    d = session.scalars(q).first()
    if d is None:
        return None

    def count(model: Any, col: Any) -> int:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(col.startswith(d.adcode), model.active)
            )
            or 0
        )

    return DistrictSummary(
        adcode=d.adcode,
        name=d.name,
        name_en=d.name_en,
        streets=count(Street, Street.code),
        communities=count(Community, Community.code),
        grids=count(Grid, Grid.code),
        areas=count(ResponsibilityArea, ResponsibilityArea.code),
        bounds=(d.min_lon, d.min_lat, d.max_lon, d.max_lat),
        centre=(d.centroid_lon, d.centroid_lat),
    )


def _round(geojson: dict[str, Any], digits: int) -> dict[str, Any]:
    geom = shapely.set_precision(shape(geojson), 10.0**-digits) if digits < 9 else shape(geojson)
    return dict(mapping(geom))


def feature_collection(
    rows: Iterable[Any], props: Callable[[Any], dict[str, Any]], digits: int = 6
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of rows with a ``geometry`` column (ids = codes)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": r.code, "properties": props(r), "geometry": _round(r.geometry, digits)}
            for r in rows
        ],
    }


def streets_geojson(session: Session, adcode: str) -> dict[str, Any]:
    """Active streets of a district as GeoJSON (for the browser; 6 decimals ≈ 0.1 m)."""
    rows = session.scalars(
        select(Street).where(Street.district_adcode == adcode, Street.active).order_by(Street.code)
    )
    return feature_collection(
        rows,
        lambda s: {
            "code": s.code,
            "name": s.name,
            "name_en": s.name_en,
            "generated": s.generated,
            "label_lon": s.centroid_lon,
            "label_lat": s.centroid_lat,
        },
    )


def grids_geojson(session: Session, adcode: str) -> dict[str, Any]:
    """Active unit grids of a district as GeoJSON (for the browser)."""
    rows = session.scalars(select(Grid).where(Grid.code.startswith(adcode), Grid.active).order_by(Grid.code))
    return feature_collection(
        rows,
        lambda g: {
            "code": g.code,
            "street": g.street_code,
            "community": g.community_code,
            "level": g.level,
            "area_m2": g.area_m2,
        },
    )


def street_rows(session: Session, adcode: str) -> list[Street]:
    """Active streets of a district ordered by code."""
    return list(
        session.scalars(
            select(Street).where(Street.district_adcode == adcode, Street.active).order_by(Street.code)
        )
    )


def grid_counts_by_street(session: Session, adcode: str) -> dict[str, int]:
    """Number of active unit grids per street code."""
    rows = session.execute(
        select(Grid.street_code, func.count())
        .where(Grid.code.startswith(adcode), Grid.active)
        .group_by(Grid.street_code)
    ).all()
    return {r[0]: int(r[1]) for r in rows}


def load_index(session: Session, adcode: str) -> PointGridIndex:
    """The point → grid index of a district's active grids."""
    lattice = stored_lattice(session, adcode)
    if lattice is None:
        raise LookupError(f"district {adcode} is not in the store; run: python app.py init")
    rows = session.execute(
        select(Grid.code, Grid.geometry).where(Grid.code.startswith(adcode), Grid.active).order_by(Grid.code)
    ).all()
    return PointGridIndex(lattice, [r[0] for r in rows], [shape(r[1]) for r in rows])
