"""Unit grids that follow roads (issue 17, Build item 3).

A synthetic square community cut by a cross of roads checks the rules one by one; the built-in
Dongcheng with the real road network of shared/data (GCJ-02, 15,542 lines, tests only) checks the
issue's bar: median grid area 8,000–12,000 m², none under 1,000 m², at most 3 % of grids crossed by a
main road (a road named …大街 or …路; each grid shrunk by 3 m first; the 100 m lattice: about 24 %),
grids tiling each community exactly, never crossing a community border, and codes kept on a re-run
(in the store, on SQLite and PostgreSQL). Areas and crossings are measured here with pyproj and the
roads file read with json, not with the product's helpers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.city import CityPlan, GridLayout, ImportedPolygon, Lattice, area_figures, plan_city
from domain.crs import gcj02_to_wgs84
from domain.district import DistrictOutline, load_district
from domain.errors import GeoInputError
from domain.geofile import read_features
from domain.roadgrid import (
    Road,
    RoadNetwork,
    is_main_name,
    road_from_feature,
    roads_from_features,
)
from store.build import BuildRequest, build_city, roads_copy
from store.db import create_engine, session_factory
from store.models import District, Grid
from tests.conftest import SHARED, require

ROADS_FILE = SHARED / "data" / "roads" / "dongcheng_roads_gcj02.geojson"
SHRINK_M = 3.0
LON0, Y0 = 116.4, 4_420_000.0


class Metric:
    """WGS-84 ↔ transverse Mercator metres (independent of domain.geo)."""

    def __init__(self, lon0: float) -> None:
        proj = f"+proj=tmerc +lat_0=0 +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
        self.fwd = pyproj.Transformer.from_crs("EPSG:4326", proj, always_xy=True)
        self.inv = pyproj.Transformer.from_crs(proj, "EPSG:4326", always_xy=True)

    def _map(self, geoms, tr: pyproj.Transformer) -> np.ndarray:
        def fn(coords: np.ndarray) -> np.ndarray:
            x, y = tr.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(np.asarray(geoms, dtype=object), fn)

    def __call__(self, geoms) -> np.ndarray:
        return self._map(geoms, self.fwd)

    def wgs84(self, geoms) -> np.ndarray:
        return self._map(geoms, self.inv)


def crossed_by(grids_m: np.ndarray, lines_m: np.ndarray) -> np.ndarray:
    """Which grids a line runs through, after shrinking each grid by SHRINK_M."""
    main = shapely.union_all(lines_m)
    shapely.prepare(main)
    return shapely.intersects(main, shapely.buffer(grids_m, -SHRINK_M))


# -- synthetic: a square community and a cross of roads -----------------------------------------


def square_district(side: float = 280.0) -> tuple[DistrictOutline, Lattice, Metric]:
    """A district that is one square (x, y ∈ [0, side] metres below Y0) in a known projection."""
    m = Metric(LON0)
    xs = np.linspace(0.0, side, 15)
    ring = (
        [(x, Y0 - side) for x in xs]
        + [(side, Y0 - side + x) for x in xs[1:]]
        + [(side - x, Y0) for x in xs[1:]]
        + [(0.0, Y0 - x) for x in xs[1:]]
    )
    geom = m.wgs84([shapely.Polygon(ring)])[0]
    district = DistrictOutline("110101", "测试区", "Test District", geom, "synthetic")
    return district, Lattice(lon0=LON0, x0=-100.0, y0=Y0 + 100.0), m


def road(m: Metric, coords: list[tuple[float, float]], name: str) -> Road:
    """A road given in metres relative to the square's north-west corner (y downwards from Y0)."""
    line = m.wgs84([shapely.LineString([(x, Y0 - y) for x, y in coords])])[0]
    return Road(line, name, is_main_name(name))


def synthetic_plan(roads: list[Road], side: float = 280.0) -> tuple[CityPlan, np.ndarray]:
    district, lattice, m = square_district(side)
    street = ImportedPolygon(code="001", name="试验街道", geometry=district.geometry, label="street")
    community = ImportedPolygon(code="001", name="试验社区", geometry=district.geometry, label="community")
    plan = plan_city(district, [street], [community], lattice=lattice, roads=roads)
    return plan, m([g.geometry for g in plan.grids])


def test_a_cross_of_main_roads_cuts_a_square_community_into_its_four_blocks():
    """280 m square, a 大街 across and a 路 down its middle: four 140 m blocks of 19,600 m² (under
    20,000 m²: kept whole), numbered north→south, west→east, none crossed by a road."""
    _, _, m = square_district()
    roads = [road(m, [(-50, 140), (330, 140)], "测试大街"), road(m, [(140, -50), (140, 330)], "测试路")]
    plan, grids = synthetic_plan(roads)
    assert plan.layout is GridLayout.ROADS
    assert [g.code for g in plan.grids] == [f"110101001001{k:03d}" for k in range(1, 5)]
    assert shapely.area(grids) == pytest.approx([19_600.0] * 4, abs=0.5)
    quadrants = [(0, 140), (140, 140), (0, 280), (140, 280)]  # (west x, south y) of NW, NE, SW, SE
    for g, (x, y) in zip(grids, quadrants, strict=True):
        box = shapely.box(x, Y0 - y, x + 140, Y0 - y + 140)
        assert shapely.symmetric_difference(g, box).area < 0.5
    lines = m([r.geometry for r in roads])
    assert not crossed_by(grids, lines).any()


def test_large_blocks_are_split_and_small_ones_merge_across_minor_roads_not_main_ones():
    """400 m square: a 大街 across at y = 200 and two unnamed lanes 20 m apart down the north half
    (x = 90, 110). The 4,000 m² strip between the lanes (under 5,000 m²) joins a neighbour across a
    lane, never across the 大街; blocks over 20,000 m² are split into parts of about 10,000 m²."""
    _, _, m = square_district(400.0)
    main = road(m, [(-50, 200), (450, 200)], "测试大街")
    lanes = [road(m, [(x, -50), (x, 200)], "") for x in (90.0, 110.0)]
    _, grids = synthetic_plan([main, *lanes], side=400.0)
    areas = shapely.area(grids)
    assert areas.sum() == pytest.approx(160_000.0, rel=1e-6)
    assert areas.min() >= 5_000.0 and areas.max() <= 20_000.0
    assert not crossed_by(grids, m([main.geometry])).any()
    strip = shapely.box(90, Y0 - 200, 110, Y0)
    holders = [i for i, g in enumerate(grids) if shapely.intersection(g, strip).area > 1.0]
    assert len(holders) == 1  # merged whole into one grid
    assert grids[holders[0]].area > strip.area + 5_000.0
    assert float(np.median(areas)) == pytest.approx(10_000.0, rel=0.25)


def test_a_main_road_ending_inside_a_block_is_followed_not_crossed():
    """A 路 that enters a 280 m square from the west and stops 60 m short of the east side: the block
    is cut along it (carried straight on to the border), so no grid has it running through."""
    _, _, m = square_district()
    dead_end = road(m, [(-50, 140), (220, 140)], "测试路")
    _, grids = synthetic_plan([dead_end])
    assert not crossed_by(grids, m([dead_end.geometry])).any()
    assert shapely.area(grids).sum() == pytest.approx(280.0 * 280.0, rel=1e-6)


def test_a_sliver_between_main_roads_still_merges():
    """Two 大街 25 m apart and a 路 30 m from the east side leave a 25 m × 30 m sliver (750 m²) with
    main roads all round: it joins a neighbour across one (no other way); no grid under 1,000 m²."""
    _, _, m = square_district()
    roads = [
        road(m, [(-50, 100), (330, 100)], "甲大街"),
        road(m, [(-50, 125), (330, 125)], "乙大街"),
        road(m, [(250, -50), (250, 330)], "丙路"),
    ]
    _, grids = synthetic_plan(roads)
    assert shapely.area(grids).min() >= 1_000.0
    assert shapely.area(grids).sum() == pytest.approx(280.0 * 280.0, rel=1e-6)


def test_road_network_keeps_only_roads_near_the_district_and_classes_roads():
    outline = shapely.box(0, 0, 1000, 1000)
    lines = [shapely.LineString([(10, 10), (900, 10)]), shapely.LineString([(5000, 0), (6000, 0)])]
    net = RoadNetwork(lines, [True, False], [0.0, 0.0], outline)
    assert len(net.lines) == 1 + net.extensions
    assert list(net.main[:1]) == [True]
    assert is_main_name("东直门内大街") and is_main_name("二环路/建国门桥") and is_main_name("光明路")
    assert not is_main_name("东四十条/东四十条桥") and not is_main_name("史家胡同") and not is_main_name("")
    line = shapely.LineString([(116.40, 39.90), (116.41, 39.90)])
    assert road_from_feature(line, {"name": "史家胡同", "highway": "primary", "width": "24"}) == Road(
        line, "史家胡同", True, 12.0
    )
    assert road_from_feature(line, {"name": "东单北大街", "fclass": "residential"}) == Road(
        line, "东单北大街", False, 0.0
    )
    assert road_from_feature(shapely.Point(116.4, 39.9), {"name": "x"}) is None
    with pytest.raises(GeoInputError, match="not a roads layer"):
        roads_from_features([(shapely.box(0, 0, 1, 1), {})], "areas.geojson")


def test_plan_with_roads_is_deterministic():
    _, _, m = square_district(400.0)
    roads = [road(m, [(-50, 180), (450, 230)], "测试大街"), road(m, [(90, -50), (130, 450)], "")]
    a, _ = synthetic_plan(roads, side=400.0)
    b, _ = synthetic_plan(roads, side=400.0)
    assert [(g.code, shapely.to_wkb(g.geometry)) for g in a.grids] == [
        (g.code, shapely.to_wkb(g.geometry)) for g in b.grids
    ]


# -- Dongcheng with its real roads --------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_roads() -> tuple[list[shapely.LineString], list[str]]:
    """The roads file read with json, GCJ-02 → WGS-84 with the published formula (one vectorised pass)."""
    if not ROADS_FILE.exists():
        require(f"roads file {ROADS_FILE}")
    doc = json.loads(ROADS_FILE.read_text(encoding="utf-8"))
    parts = [np.asarray(f["geometry"]["coordinates"], dtype=float) for f in doc["features"]]
    xy = np.concatenate(parts)
    lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
    ends = np.cumsum([len(p) for p in parts])[:-1]
    lines = [
        shapely.LineString(np.column_stack(c))
        for c in zip(np.split(lon, ends), np.split(lat, ends), strict=True)
    ]
    names = [f["properties"].get("name") or "" for f in doc["features"]]
    return lines, names


def test_read_roads_file_agrees_with_the_hand_reading(hand_roads):
    lines, names = hand_roads
    roads = roads_from_features(read_features(ROADS_FILE), str(ROADS_FILE))
    assert len(roads) == len(lines) == 15_542
    assert [r.name for r in roads] == names
    far = max(
        shapely.hausdorff_distance(r.geometry, g) for r, g in zip(roads[:500], lines[:500], strict=True)
    )
    assert far < 1e-7  # degrees (~1 cm)


class Built:
    """The Dongcheng plan on roads, its lattice plan, and what the test measures of them."""

    def __init__(self, lines: list[shapely.LineString], names: list[str]) -> None:
        district = load_district()
        roads = roads_from_features(read_features(ROADS_FILE), str(ROADS_FILE))
        t0 = time.perf_counter()
        self.plan = plan_city(district, roads=roads)
        self.seconds = time.perf_counter() - t0
        self.lattice_plan = plan_city(district)
        self.metric = Metric(self.plan.lattice.lon0)
        self.grids_m = self.metric([g.geometry for g in self.plan.grids])
        self.lattice_m = self.metric([g.geometry for g in self.lattice_plan.grids])
        self.communities_m = self.metric([c.geometry for c in self.plan.communities])
        self.streets_m = self.metric([s.geometry for s in self.plan.streets])
        self.outline_m = self.metric([district.geometry])[0]
        main = [g for g, n in zip(lines, names, strict=True) if n.endswith(("大街", "路"))]
        self.main_m = self.metric(main)


@pytest.fixture(scope="module")
def built(hand_roads) -> Built:
    return Built(*hand_roads)


def test_dongcheng_grids_meet_the_issue_bar(built: Built):
    areas = shapely.area(built.grids_m)
    crossed = crossed_by(built.grids_m, built.main_m)
    lattice_crossed = crossed_by(built.lattice_m, built.main_m)
    print(
        f"\nroads: {area_figures(areas).line()}; crossed by a main road {crossed.mean():.2%}; "
        f"plan {built.seconds:.1f} s\nlattice: {area_figures(shapely.area(built.lattice_m)).line()}; "
        f"crossed {lattice_crossed.mean():.2%}"
    )
    assert built.plan.layout is GridLayout.ROADS
    assert 8_000.0 <= float(np.median(areas)) <= 12_000.0
    assert areas.min() >= 1_000.0
    assert float(np.percentile(areas, 90)) <= 20_000.0 and areas.max() <= 25_000.0
    assert crossed.mean() <= 0.03, f"{crossed.sum()} of {len(crossed)} grids crossed by a main road"
    assert lattice_crossed.mean() > 0.15  # the measure is not trivially met: the lattice fails it
    stored = np.asarray([g.area_m2 for g in built.plan.grids])
    assert np.abs(stored - areas).max() < 0.5


def test_dongcheng_grids_tile_each_community_and_never_cross_its_border(built: Built):
    plan = built.plan
    index = {c.code: i for i, c in enumerate(plan.communities)}
    by_comm: dict[str, list[int]] = {}
    for i, g in enumerate(plan.grids):
        assert re.fullmatch(rf"{g.community_code}\d{{3}}", g.code)
        by_comm.setdefault(g.community_code, []).append(i)
    assert set(by_comm) == set(index)
    for code, members in by_comm.items():
        comm = built.communities_m[index[code]]
        grids = built.grids_m[members]
        total = float(shapely.area(grids).sum())
        union = shapely.union_all(grids)
        assert abs(total - comm.area) / comm.area <= 1e-3, code  # tile: area sums equal within 0.1 %
        assert (total - union.area) / union.area <= 1e-4, code  # no overlaps
        assert float(shapely.area(shapely.difference(grids, comm)).max()) < 0.5, code  # inside
        serials = sorted(int(plan.grids[i].code[12:]) for i in members)
        assert serials == list(range(1, len(members) + 1)), code
        keys = [
            (plan.grids[i].row, plan.grids[i].col) for i in sorted(members, key=lambda i: plan.grids[i].code)
        ]
        assert keys == sorted(keys), code
    # communities tile the streets, streets the district (generated zones moved onto the road blocks)
    outline = built.outline_m
    for geoms in (built.communities_m, built.streets_m):
        union = shapely.union_all(geoms)
        assert shapely.symmetric_difference(union, outline).area / outline.area <= 1e-4
        assert (float(shapely.area(geoms).sum()) - union.area) / union.area <= 1e-4
    assert len(plan.streets) == 17 and len(plan.communities) == len(built.lattice_plan.communities)
    assert [c.code for c in plan.communities] == [c.code for c in built.lattice_plan.communities]


# -- in the store: roads remembered, codes kept -------------------------------------------------


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


def grid_rows(engine: Engine) -> dict[str, shapely.Geometry]:
    from shapely.geometry import shape

    with session_factory(engine)() as s:
        return {g.code: shape(g.geometry) for g in s.scalars(select(Grid).where(Grid.active))}


def streets_source(engine: Engine) -> str:
    with session_factory(engine)() as s:
        district = s.get(District, "110101")
        assert district is not None
        return district.streets_source


def same_grids(before: dict[str, shapely.Geometry], after: dict[str, shapely.Geometry]) -> None:
    assert set(after) == set(before)
    codes = sorted(before)
    a = np.asarray([before[c] for c in codes], dtype=object)
    b = np.asarray([after[c] for c in codes], dtype=object)
    iou = shapely.area(shapely.intersection(a, b)) / shapely.area(shapely.union(a, b))
    assert iou.min() > 0.999


def test_store_remembers_the_roads_and_a_rerun_keeps_every_grid(engine: Engine, db_url: str, tmp_path: Path):
    """init --roads, then again: the same grids under the same codes — on SQLite a plain init (from
    the remembered copy), on PostgreSQL --roads with the same file. On SQLite also: without the copy a
    plain re-run refuses by name, and --no-roads cuts the lattice again."""
    if not ROADS_FILE.exists():
        require(f"roads file {ROADS_FILE}")
    data = tmp_path / "data"
    first = build_city(engine, BuildRequest(roads=ROADS_FILE, data_dir=data))
    assert first.layout is GridLayout.ROADS and first.grid_areas is not None
    assert first.grid_areas.count == first.grids and first.grid_areas.under_1000 == 0
    assert 8_000 <= first.grid_areas.median <= 12_000
    copy = roads_copy(data, "110101")
    assert copy.exists()
    assert streets_source(engine) == "generated+roads"
    before = grid_rows(engine)
    sqlite = db_url.startswith("sqlite")
    rerun = (
        BuildRequest(data_dir=data)
        if sqlite
        else BuildRequest(roads=ROADS_FILE, roads_crs="gcj02", data_dir=data)
    )
    again = build_city(engine, rerun)
    assert (again.grids_new, again.grids_retired, again.grids_kept) == (0, 0, first.grids)
    same_grids(before, grid_rows(engine))
    if not sqlite:
        return
    copy.unlink()
    with pytest.raises(GeoInputError, match=r"built along roads .* missing: give --roads FILE again"):
        build_city(engine, BuildRequest(data_dir=data))
    lattice = build_city(engine, BuildRequest(data_dir=data, no_roads=True))
    assert lattice.layout is GridLayout.LATTICE
    assert streets_source(engine) == "generated"
