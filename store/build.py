"""Building a city into the store: read inputs, plan (pure), write in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.city import (
    AREA_SIZE,
    CityPlan,
    GridLevel,
    Progress,
    check_outline,
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
from store.models import District


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
    streets = communities = None
    if req.streets is not None:
        streets = read_polygons(req.streets, req.crs)
        check_outline(streets, district, str(req.streets), _declared_crs(req.streets, req.crs))
    if req.communities is not None:
        communities = read_polygons(req.communities, req.crs)
        if streets is None:
            check_outline(
                communities, district, str(req.communities), _declared_crs(req.communities, req.crs)
            )
    return plan_city(
        district, streets, communities, lattice=lattice, area_size=req.area_size, progress=progress
    )


def build_city(engine: Engine, req: BuildRequest, progress: Progress = _no_progress) -> SaveSummary:
    """Migrate, plan and write one district in a single transaction (idempotent)."""
    upgrade(engine)
    plan = plan_request(engine, req, progress)
    source = "grids" if req.grids else ("imported" if req.streets or req.communities else "generated")
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
