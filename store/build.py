"""Building a city into the store: read inputs, plan (pure), write in one transaction.

Roads (``init --roads FILE``) are remembered for plain re-runs: the roads near the district, in
WGS-84, are copied to ``<data-dir>/roads/<adcode>_roads_wgs84.geojson`` after the build is committed,
and the district row's ``streets_source`` carries ``+roads`` (e.g. ``generated+roads``). A plain
re-run of a district so built reads that copy (the same lines, bit for bit, so the same grids); if the
copy is gone it refuses by name (give ``--roads FILE`` again, or ``--no-roads`` for the lattice).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from domain.city import (
    AREA_SIZE,
    CityPlan,
    GridLayout,
    GridLevel,
    ImportedPolygon,
    Progress,
    check_outline,
    check_within,
    plan_city,
    plan_from_grids,
)
from domain.crs import CRS
from domain.district import DistrictOutline, load_district
from domain.errors import GeoInputError
from domain.geofile import crs_from_name, read_features, read_polygons
from domain.roadgrid import Road, road_properties, roads_from_features, roads_near
from store.db import session_factory, transaction
from store.geography import SaveSummary, save_plan, set_levels, stored_lattice
from store.migrate import upgrade
from store.models import Community, District, Grid, Street


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class BuildRequest:
    """What ``init`` (or ``import``) was asked to build."""

    district: str | None = None
    streets: Path | None = None
    communities: Path | None = None
    grids: Path | None = None
    crs: str | None = None
    area_size: int = AREA_SIZE
    regenerate: bool = False  # ignore imported streets/communities already in the store
    roads: Path | None = None  # road centre lines: unit grids follow them
    roads_crs: str | None = None  # wgs84, gcj02, bd09 or cgcs2000 (default: from the file)
    no_roads: bool = False  # forget the roads a district was built along: back to the lattice
    data_dir: Path | None = None  # where the roads used are remembered


ROADS_SUFFIX = "+roads"  # streets_source of a district whose grids follow roads, e.g. generated+roads
# CGCS2000 (the national frame) and WGS-84 differ by centimetres: read as WGS-84
_CGCS2000 = ("cgcs2000", "cgcs-2000", "cgcs 2000", "epsg:4490", "china2000")


def roads_copy(data_dir: Path, adcode: str) -> Path:
    """Where the roads a district was built along are kept."""
    return data_dir / "roads" / f"{adcode}_roads_wgs84.geojson"


def _roads_crs(path: Path, crs: str | None) -> CRS | None:
    if crs is None or not crs.strip():
        return None
    if crs.strip().lower() in _CGCS2000:
        return CRS.WGS84
    try:
        return CRS.parse(crs)
    except ValueError:
        raise GeoInputError(f"{path}: unknown CRS {crs!r} (use wgs84, gcj02, bd09 or cgcs2000)") from None


def read_roads(path: Path, crs: str | None, district: DistrictOutline) -> list[Road]:
    """The roads of a GeoJSON/Shapefile layer near a district, in WGS-84 (lines only)."""
    roads = roads_from_features(read_features(path, _roads_crs(path, crs)), str(path))
    near = roads_near(roads, district.geometry)
    if not near:
        raise GeoInputError(
            f"{path}: none of its {len(roads):,} roads is near {district.name} ({district.adcode}): "
            "wrong district or wrong CRS (--roads-crs)"
        )
    return near


def write_roads(path: Path, roads: list[Road]) -> None:
    """Keep the roads used (WGS-84 GeoJSON; floats written exactly, so they read back the same)."""
    from shapely.geometry import mapping

    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": road_properties(r), "geometry": mapping(r.geometry)}
            for r in roads
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def stored_district(engine: Engine) -> str | None:
    """The adcode of the district in the store, if one was built."""
    with session_factory(engine)() as s:
        return s.scalars(select(District.adcode).order_by(District.built_at.desc())).first()


def _declared_crs(path: Path, crs: str | None) -> CRS:
    if crs:
        return CRS.parse(crs)
    return crs_from_name(path) or CRS.WGS84


def _same_roads(a: list[Road], b: list[Road]) -> bool:
    """Whether two road lists are the same lines, bit for bit, with the same names and classes."""
    if len(a) != len(b):
        return False
    same = shapely.equals_exact([r.geometry for r in a], [r.geometry for r in b], tolerance=0.0)
    return bool(same.all()) and all(
        (r.name, r.main, r.half_width) == (s.name, s.main, s.half_width) for r, s in zip(a, b, strict=True)
    )


def _stored_roads(
    engine: Engine, req: BuildRequest, district: DistrictOutline
) -> tuple[list[Road] | None, bool]:
    """The roads to build along (``--roads``, else those a district was built along) and whether the
    stored zones were already moved onto these very roads by the last build."""
    built_on_roads = _source(engine, district.adcode).endswith(ROADS_SUFFIX) and not req.regenerate
    path = roads_copy(req.data_dir, district.adcode) if req.data_dir is not None else None
    if req.roads is not None:
        if req.no_roads:
            raise GeoInputError("--roads and --no-roads: give one or the other")
        roads = read_roads(req.roads, req.roads_crs, district)
        if built_on_roads and path is not None and path.exists():
            return roads, _same_roads(roads, read_roads(path, "wgs84", district))
        return roads, False
    if req.no_roads or not built_on_roads:
        return None, False
    if path is None or not path.exists():
        raise GeoInputError(
            f"district {district.adcode} was built along roads (init --roads) and its roads copy "
            f"{path or '<data-dir>/roads/'} is missing: give --roads FILE again, or --no-roads to cut "
            "the 100 m lattice"
        )
    return read_roads(path, "wgs84", district), True


def plan_request(engine: Engine, req: BuildRequest, progress: Progress = _no_progress) -> CityPlan:
    """Read the inputs and compute the plan (nothing is written)."""
    return _plan(engine, req, progress)[0]


def _plan(engine: Engine, req: BuildRequest, progress: Progress) -> tuple[CityPlan, list[Road] | None]:
    """The plan and the roads it was drawn along (None: the lattice or surveyed grids)."""
    adcode = req.district or stored_district(engine)
    district: DistrictOutline = load_district(adcode)
    with session_factory(engine)() as s:
        lattice = stored_lattice(s, district.adcode)
    if req.grids is not None:
        if req.streets or req.communities:
            raise GeoInputError("--grids replaces --streets and --communities: give one or the other")
        if req.roads is not None:
            raise GeoInputError("--grids are surveyed unit grids: --roads does not apply to them")
        polys = read_polygons(req.grids, req.crs)
        check_outline(polys, district, str(req.grids), _declared_crs(req.grids, req.crs))
        plan = plan_from_grids(district, polys, lattice=lattice, area_size=req.area_size, progress=progress)
        return plan, None
    if not (req.streets or req.communities or req.regenerate) and _source(engine, district.adcode) == "grids":
        if req.roads is not None:
            raise GeoInputError(
                f"district {district.adcode} has surveyed unit grids (import grids), kept as surveyed: "
                "--roads draws new grids only with --regenerate (or --streets/--communities)"
            )
        with session_factory(engine)() as s:  # surveyed grids stay as surveyed on a plain re-run
            stored = _stored(s, Grid, Grid.code, district.adcode)
        assert stored is not None
        plan = plan_from_grids(district, stored, lattice=lattice, area_size=req.area_size, progress=progress)
        return plan, None
    streets = communities = None
    if req.streets is not None:
        streets = read_polygons(req.streets, req.crs)
        check_outline(streets, district, str(req.streets), _declared_crs(req.streets, req.crs))
    if req.communities is not None:
        communities = read_polygons(req.communities, req.crs)
    stored_streets = stored_communities = None
    if not req.regenerate:
        with session_factory(engine)() as s:
            stored_streets = _stored(s, Street, Street.district_adcode, district.adcode)
            stored_communities = _stored(s, Community, Community.code, district.adcode)
    if communities is None and streets is None:
        communities = stored_communities  # a plain re-run rebuilds on what is stored
    if req.communities is not None and communities is not None:
        declared = _declared_crs(req.communities, req.crs)
        only_generated = stored_streets is None or all(p.generated for p in stored_streets)
        if (
            streets is None
            and only_generated
            and (derived := _streets_from_codes(communities, district.adcode))
        ):
            check_outline(communities, district, str(req.communities), declared)
            streets = derived
        elif streets is None and stored_streets is None:
            check_outline(communities, district, str(req.communities), declared)
    if streets is None:
        streets = stored_streets
    if req.communities is not None and communities is not None and streets is not None:
        check_within(communities, streets, str(req.communities), _declared_crs(req.communities, req.crs))
    roads, zones_on_roads = _stored_roads(engine, req, district)
    plan = plan_city(
        district,
        streets,
        communities,
        lattice=lattice,
        area_size=req.area_size,
        progress=progress,
        roads=roads,
        zones_on_roads=zones_on_roads and not (req.streets or req.communities),
    )
    return plan, roads


def _source(engine: Engine, adcode: str) -> str:
    """The district row's ``streets_source`` ('' when not built), with its ``+roads`` if any."""
    with session_factory(engine)() as s:
        return s.scalar(select(District.streets_source).where(District.adcode == adcode)) or ""


def _stored(session: Session, model: Any, key: Any, adcode: str) -> list[ImportedPolygon] | None:
    """The streets, communities or grids already in the store, to build on."""
    rows = session.scalars(
        select(model).where(key.startswith(adcode), model.active).order_by(model.code)
    ).all()
    if not rows:
        return None
    return [
        ImportedPolygon(
            code=r.code,
            name=getattr(r, "name", ""),
            name_en=getattr(r, "name_en", ""),
            geometry=shape(r.geometry),
            generated=getattr(r, "generated", False),
            label=f"stored {r.code}",
        )
        for r in rows
    ]


def _streets_from_codes(communities: list[ImportedPolygon], adcode: str) -> list[ImportedPolygon] | None:
    """Streets as the union of communities by the street part of their 12-digit codes, if all have one."""
    groups: dict[str, list[Any]] = {}
    for c in communities:
        digits = "".join(ch for ch in str(c.code or "") if ch.isdigit())
        if len(digits) < 12 or not digits.startswith(adcode):
            return None
        groups.setdefault(digits[:9], []).append(c.geometry)
    return [
        ImportedPolygon(
            code=code, name=f"街道{code[-3:]}", geometry=shapely.union_all(gs), label=f"street {code}"
        )
        for code, gs in sorted(groups.items())
    ]


def build_city(engine: Engine, req: BuildRequest, progress: Progress = _no_progress) -> SaveSummary:
    """Migrate, plan and write one district in a single transaction (idempotent).

    Roads given with ``req.roads`` are kept under ``req.data_dir`` once the build is committed.
    """
    upgrade(engine)
    plan, roads = _plan(engine, req, progress)
    if req.grids:
        source = "grids"
    elif req.streets or req.communities:
        source = "imported"
    elif req.regenerate:
        source = "generated"
    else:
        source = _source(engine, plan.adcode).removesuffix(ROADS_SUFFIX) or "generated"
    if plan.layout is GridLayout.ROADS:
        source += ROADS_SUFFIX
    with transaction(engine) as session:
        summary = save_plan(session, plan, source, progress)
    if req.data_dir is not None:
        copy = roads_copy(req.data_dir, plan.adcode)
        if req.roads is not None and roads is not None:
            write_roads(copy, roads)
        elif plan.layout is not GridLayout.ROADS and copy.exists():
            copy.unlink()  # built without roads (--no-roads, surveyed grids): nothing to remember
    return summary


def import_levels(engine: Engine, path: Path) -> int:
    """Set management levels from a CSV with columns ``code`` and ``level`` (一般/重点/综合治理)."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise GeoInputError(f"{path}: unreadable CSV: {exc}") from None
    missing = {"code", "level"} - set(df.columns)
    if missing:
        raise GeoInputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    levels: dict[str, str] = {}
    for line, (code, level) in enumerate(zip(df["code"], df["level"], strict=True), start=2):
        try:
            levels[code.strip()] = GridLevel.parse(level).value
        except ValueError as exc:
            raise GeoInputError(f"{path}: line {line}: {exc}") from None
    with transaction(engine) as session:
        try:
            return set_levels(session, levels)
        except KeyError as exc:
            raise GeoInputError(f"{path}: unknown grid code {exc.args[0]}") from None
