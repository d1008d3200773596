"""Unit grids that follow roads (issue 17, Build item 3) against the 100 m lattice, on Dongcheng.

Roads: ``shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02, 15,542 lines, tests and
benchmarks only). For each layout: plan time (``domain.city.plan_city``, pure; wall and CPU time
with the load average, as the machine may be shared), the grid area distribution (median, under
1,000 and 5,000 m²) and the share of grids crossed by a main road (a road named …大街 or …路; each
grid shrunk by 3 m first). Targets from the issue: median 8,000–12,000
m², none under 1,000 m², at most 3 % crossed; the road build at most 60 s. A re-plan on the zones read
back from a WGS-84 round trip (what the store gives a plain re-run) must draw the very same grids.
The full run also times ``init --roads`` end to end (``store.build.build_city`` into a fresh SQLite
file, roads remembered in a temporary data folder) and a plain re-run (every code kept).

``--smoke``: a 1.6 km square of Dongcheng around its centre; only the correctness checks are judged.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import shapely
from shapely.geometry import mapping, shape

from bench import FAIL, INFO, PASS, SKIP, Result, at_most, console, print_table, shared_data, stopwatch
from domain.city import CityPlan, ImportedPolygon, area_figures, plan_city
from domain.district import DistrictOutline, load_district
from domain.geo import LocalProjection
from domain.geofile import read_features
from domain.roadgrid import Road, roads_from_features, roads_near

ROADS = "roads/dongcheng_roads_gcj02.geojson"
SHRINK_M = 3.0
PLAN_LIMIT_S = 60.0
SMOKE_HALF_M = 800.0


def _crossed(plan: CityPlan, main: list[Road]) -> float:
    """Share of grids a main road runs through (after shrinking each grid by SHRINK_M)."""
    proj = plan.lattice.projection
    lines = shapely.union_all(proj.to_metric_many([r.geometry for r in main]))
    shapely.prepare(lines)
    grids = shapely.buffer(proj.to_metric_many([g.geometry for g in plan.grids]), -SHRINK_M)
    return float(shapely.intersects(lines, grids).mean()) if len(grids) else 0.0


def _stats(plan: CityPlan, main: list[Road]) -> tuple[str, float]:
    figures = area_figures([g.area_m2 for g in plan.grids])
    crossed = _crossed(plan, main)
    note = (
        f"median {figures.median:,.0f} m², p10 {figures.p10:,.0f}, p90 {figures.p90:,.0f}, "
        f"{figures.under_1000} < 1,000, {figures.under_5000:,} < 5,000; crossed {crossed:.1%}"
    )
    return note, crossed


def _round_trip(plan: CityPlan) -> tuple[list[ImportedPolygon], list[ImportedPolygon]]:
    """The plan's streets and communities as a plain re-run reads them back from the store."""

    def back(geom: shapely.Geometry) -> shapely.Geometry:
        return shape(json.loads(json.dumps(mapping(geom))))

    streets = [
        ImportedPolygon(
            s.code, s.name, back(s.geometry), name_en=s.name_en, generated=s.generated, label=s.code
        )
        for s in plan.streets
    ]
    communities = [
        ImportedPolygon(
            c.code, c.name, back(c.geometry), name_en=c.name_en, generated=c.generated, label=c.code
        )
        for c in plan.communities
    ]
    return streets, communities


def _same(a: CityPlan, b: CityPlan) -> int:
    """How many grids of ``a`` have no grid of the same code and geometry (IoU > 0.999) in ``b``."""
    other = {g.code: g.geometry for g in b.grids}
    missing = 0
    for g in a.grids:
        o = other.get(g.code)
        if o is None or shapely.area(shapely.intersection(g.geometry, o)) < 0.999 * shapely.area(
            shapely.union(g.geometry, o)
        ):
            missing += 1
    return missing + abs(len(a.grids) - len(b.grids))


def _plans(label: str, district: DistrictOutline, roads: list[Road], smoke: bool) -> list[Result]:
    main = [r for r in roads if r.name.endswith(("大街", "路"))]
    rows: list[Result] = []
    cpu = time.process_time()
    with stopwatch() as t:
        lattice = plan_city(district)
    cpu = time.process_time() - cpu
    note, lattice_crossed = _stats(lattice, main)
    note += f"; CPU {cpu:.1f} s, load {os.getloadavg()[0]:.1f}"
    rows.append(Result(f"{label}: lattice (100 m) plan", len(lattice.grids), t[0], "grids", notes=note))
    cpu = time.process_time()
    with stopwatch() as t:
        plan = plan_city(district, roads=roads)
    cpu = time.process_time() - cpu
    note, crossed = _stats(plan, main)
    note += f"; CPU {cpu:.1f} s, load {os.getloadavg()[0]:.1f}"
    limit = f"≤ {PLAN_LIMIT_S:.0f} s"
    rows.append(
        Result(
            f"{label}: roads plan", len(plan.grids), t[0], "grids", limit, at_most(t[0], PLAN_LIMIT_S), note
        )
    )
    figures = area_figures([g.area_m2 for g in plan.grids])
    judge = INFO if smoke else (PASS if 8_000 <= figures.median <= 12_000 else FAIL)
    lattice_median = area_figures([g.area_m2 for g in lattice.grids]).median
    note = f"{figures.median:,.0f} m² (lattice {lattice_median:,.0f})"
    rows.append(
        Result(f"{label}: roads median area", len(plan.grids), None, "", "8,000–12,000 m²", judge, note)
    )
    ok = PASS if figures.under_1000 == 0 else FAIL
    note = f"min {figures.min:,.0f} m²"
    rows.append(Result(f"{label}: roads grids under 1,000 m²", figures.under_1000, None, "", "0", ok, note))
    judge = INFO if smoke else (PASS if crossed <= 0.03 else FAIL)
    note = f"{crossed:.2%} (lattice {lattice_crossed:.2%}); main = …大街/…路, grid − 3 m"
    rows.append(
        Result(f"{label}: roads crossed by a main road", len(plan.grids), None, "", "≤ 3 %", judge, note)
    )
    proj = LocalProjection(plan.lattice.lon0)
    grids_m = proj.to_metric_many([g.geometry for g in plan.grids])
    comms_m = proj.to_metric_many([c.geometry for c in plan.communities])
    gap = abs(float(shapely.area(grids_m).sum()) - float(shapely.area(comms_m).sum())) / float(
        shapely.area(comms_m).sum()
    )
    ok = PASS if gap <= 1e-3 else FAIL
    note = f"area sums differ by {gap:.5%}"
    rows.append(
        Result(f"{label}: roads grids tile the communities", len(plan.grids), None, "", "≤ 0.1 %", ok, note)
    )
    streets, communities = _round_trip(plan)
    with stopwatch() as t:
        again = plan_city(
            district, streets, communities, lattice=plan.lattice, roads=roads, zones_on_roads=True
        )
    changed = _same(plan, again)
    ok = PASS if changed == 0 else FAIL
    rows.append(
        Result(
            f"{label}: re-plan on stored zones",
            len(again.grids),
            t[0],
            "grids",
            "same grids",
            ok,
            f"{changed} differ",
        )
    )
    return rows


def _init_end_to_end(roads_file: Path) -> list[Result]:
    """``init --roads`` into a fresh SQLite file, then a plain ``init`` (the remembered roads)."""
    from store.build import BuildRequest, build_city
    from store.db import create_engine

    with tempfile.TemporaryDirectory(prefix="gw-bench-roadgrid-") as d:
        engine = create_engine(f"sqlite:///{Path(d) / 'gw.db'}")
        try:
            with stopwatch() as t:
                first = build_city(engine, BuildRequest(roads=roads_file, data_dir=Path(d)))
            rows = [
                Result("Dongcheng: init --roads (migrate + read + plan + write)", first.grids, t[0], "grids")
            ]
            with stopwatch() as t:
                again = build_city(engine, BuildRequest(data_dir=Path(d)))
            kept = again.grids_kept == first.grids and again.grids_new == 0 and again.grids_retired == 0
            note = f"{again.grids_kept:,} kept, {again.grids_new} new, {again.grids_retired} retired"
            label = "Dongcheng: plain re-run (remembered roads)"
            ok = PASS if kept else FAIL
            rows.append(Result(label, again.grids, t[0], "grids", "every code kept", ok, note))
        finally:
            engine.dispose()
    return rows


def _smoke_district(district: DistrictOutline) -> DistrictOutline:
    """A 1.6 km square of the district around its centre (same adcode and projection)."""
    proj = LocalProjection.for_geometry(district.geometry)
    c = proj.to_metric(district.geometry).centroid
    square = proj.to_wgs84(
        shapely.box(c.x - SMOKE_HALF_M, c.y - SMOKE_HALF_M, c.x + SMOKE_HALF_M, c.y + SMOKE_HALF_M)
    )
    geom = shapely.intersection(district.geometry, square)
    return DistrictOutline(district.adcode, district.name, district.name_en, geom, district.source)


def run(smoke: bool = False) -> list[Result]:
    """Run the road-grid benchmark, print its table and return the rows."""
    path = shared_data() / ROADS
    if not path.exists():
        rows = [Result("roadgrid: all", None, None, status=SKIP, notes=f"missing {path}")]
        print_table("roadgrid: unit grids along roads vs the 100 m lattice", rows)
        return rows
    district = load_district()
    with stopwatch() as t:
        roads = roads_from_features(read_features(path), str(path))
    rows = [Result("read the roads file (GCJ-02 → WGS-84)", len(roads), t[0], "lines")]
    if smoke:
        district = _smoke_district(district)
        roads = roads_near(roads, district.geometry)
        console.print(
            f"[dim]roadgrid (smoke): a {2 * SMOKE_HALF_M / 1000:.1f} km square, {len(roads):,} roads …[/]"
        )
        rows += _plans("Dongcheng square", district, roads, smoke=True)
    else:
        console.print("[dim]roadgrid: Dongcheng, lattice and roads …[/]")
        rows += _plans("Dongcheng", district, roads, smoke=False)
        rows += _init_end_to_end(path)
    print_table("roadgrid: unit grids along roads vs the 100 m lattice", rows)
    return rows
