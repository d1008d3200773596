"""Building a city into the store: read inputs, plan (pure), write in one transaction."""

from __future__ import annotations

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
from domain.geofile import crs_from_name, read_polygons
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


def stored_district(engine: Engine) -> str | None:
    """The adcode of the district in the store, if one was built."""
    with session_factory(engine)() as s:
        return s.scalars(select(District.adcode).order_by(District.built_at.desc())).first()


def _declared_crs(path: Path, crs: str | None) -> CRS:
    if crs:
        return CRS.parse(crs)
    return crs_from_name(path) or CRS.WGS84


def plan_request(engine: Engine, req: BuildRequest, progress: Progress = _no_progress) -> CityPlan:
    """Read the inputs and compute the plan (nothing is written)."""
    adcode = req.district or stored_district(engine)
    district: DistrictOutline = load_district(adcode)
    with session_factory(engine)() as s:
        lattice = stored_lattice(s, district.adcode)
    if req.grids is not None:
        if req.streets or req.communities:
            raise GeoInputError("--grids replaces --streets and --communities: give one or the other")
        polys = read_polygons(req.grids, req.crs)
        check_outline(polys, district, str(req.grids), _declared_crs(req.grids, req.crs))
        return plan_from_grids(district, polys, lattice=lattice, area_size=req.area_size, progress=progress)
    if not (req.streets or req.communities or req.regenerate) and _source(engine, district.adcode) == "grids":
        with session_factory(engine)() as s:  # surveyed grids stay as surveyed on a plain re-run
            stored = _stored(s, Grid, Grid.code, district.adcode)
        assert stored is not None
        return plan_from_grids(district, stored, lattice=lattice, area_size=req.area_size, progress=progress)
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
    return plan_city(
        district, streets, communities, lattice=lattice, area_size=req.area_size, progress=progress
    )


def _source(engine: Engine, adcode: str) -> str | None:
    with session_factory(engine)() as s:
        return s.scalar(select(District.streets_source).where(District.adcode == adcode))


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
    """Migrate, plan and write one district in a single transaction (idempotent)."""
    upgrade(engine)
    plan = plan_request(engine, req, progress)
    if req.grids:
        source = "grids"
    elif req.streets or req.communities:
        source = "imported"
    elif req.regenerate:
        source = "generated"
    else:
        source = _source(engine, plan.adcode) or "generated"
    with transaction(engine) as session:
        return save_plan(session, plan, source, progress)


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
