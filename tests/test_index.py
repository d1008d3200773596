"""Point → grid index against shapely point-in-polygon as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from domain.city import CityPlan, plan_city
from domain.district import load_district
from domain.index import GridHit, PointGridIndex

N_POINTS = 100_000


@pytest.fixture(scope="module")
def plan() -> CityPlan:
    return plan_city(load_district())


@pytest.fixture(scope="module")
def geoms(plan) -> np.ndarray:
    return np.asarray([g.geometry for g in plan.grids], dtype=object)


@pytest.fixture(scope="module")
def codes(plan) -> np.ndarray:
    return np.asarray([g.code for g in plan.grids], dtype=object)


@pytest.fixture(scope="module")
def index(plan, codes, geoms) -> PointGridIndex:
    return PointGridIndex(plan.lattice, list(codes), list(geoms))


def reference(geoms: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, dict[int, set[int]]]:
    """Index of the grid containing each point by shapely 'within' (-1 when none).

    Neighbouring grids may overlap by floating-point crumbs (millimetre-wide, far under the
    0.01 % tolerance of the plan); a point in such a crumb may answer either grid. Those points
    are returned separately with the set of acceptable answers.
    """
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(lon, lat), predicate="within")
    out = np.full(len(lon), -1, dtype=np.int64)
    out[pi] = gi
    uniq, counts = np.unique(pi, return_counts=True)
    ambiguous = {int(p): set(gi[pi == p].tolist()) for p in uniq[counts > 1]}
    assert len(ambiguous) <= max(2, len(lon) // 10_000), "grids overlap"
    return out, ambiguous


def assert_same(got: np.ndarray, expected: np.ndarray, ambiguous: dict[int, set[int]], lon, lat) -> None:
    bad = [
        i
        for i in np.nonzero(got != expected)[0]
        if not (int(i) in ambiguous and int(got[i]) in ambiguous[int(i)])
    ]
    assert not bad, [(lon[i], lat[i], got[i], expected[i]) for i in bad[:5]]


def test_random_points_over_the_bbox_match_shapely(plan, geoms, index):
    rng = np.random.default_rng(424242)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    pad = 0.002
    lon = rng.uniform(minx - pad, maxx + pad, N_POINTS)
    lat = rng.uniform(miny - pad, maxy + pad, N_POINTS)
    expected, ambiguous = reference(geoms, lon, lat)
    got = index.lookup_indices(lon, lat)
    assert_same(got, expected, ambiguous, lon, lat)
    # the sample is meaningful: many points inside, many outside the district
    assert 0.3 < np.mean(expected >= 0) < 0.9


def test_points_hugging_grid_borders_match_shapely(plan, geoms, index):
    """Points a few centimetres either side of grid boundaries: the exact-test path."""
    rng = np.random.default_rng(99)
    pick = rng.choice(len(geoms), 800, replace=False)
    rings = shapely.boundary(geoms[pick])
    frac = rng.uniform(0.0, 1.0, (len(pick), 25))
    pts = shapely.line_interpolate_point(rings[:, None], frac, normalized=True).ravel()
    xy = shapely.get_coordinates(pts)
    jitter = rng.normal(0.0, 3e-7, xy.shape)  # ~3 cm
    lon, lat = xy[:, 0] + jitter[:, 0], xy[:, 1] + jitter[:, 1]
    expected, ambiguous = reference(geoms, lon, lat)
    got = index.lookup_indices(lon, lat)
    assert_same(got, expected, ambiguous, lon, lat)
    # most jittered points land in some grid (outer borders send about half outside)
    assert (expected >= 0).mean() > 0.6


def test_lookup_returns_codes_and_none(index, codes, geoms):
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    lon = rng.uniform(minx, maxx, 5_000)
    lat = rng.uniform(miny, maxy, 5_000)
    expected, ambiguous = reference(geoms, lon, lat)
    got = index.lookup(lon, lat)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        allowed = {codes[k] for k in ambiguous.get(i, {e})} if e >= 0 else {None}
        assert g in allowed


def test_locate_agrees_with_lookup(plan, index, geoms):
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    lon = rng.uniform(minx, maxx, 3_000)
    lat = rng.uniform(miny, maxy, 3_000)
    codes = index.lookup(lon, lat)
    grid = {g.code: g for g in plan.grids}
    hits = 0
    for x, y, code in zip(lon, lat, codes, strict=True):
        hit = index.locate(float(x), float(y))
        if code is None:
            assert hit is None
            continue
        hits += 1
        assert isinstance(hit, GridHit)
        assert hit.grid == code
        assert hit.community == grid[code].community_code
        assert hit.street == grid[code].street_code
    assert hits > 1_000


def test_centre_of_every_grid_finds_that_grid(plan, index, geoms):
    pts = shapely.point_on_surface(geoms)
    xy = shapely.get_coordinates(pts)
    got = index.lookup(xy[:, 0], xy[:, 1])
    assert list(got) == [g.code for g in plan.grids]


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (0.0, 0.0),
        (-122.4194, 37.7749),
        (116.30, 39.99),  # Haidian, west of Dongcheng
        (116.40, 39.80),  # south of Dongcheng
        (180.0, 90.0),
        (-180.0, -90.0),
    ],
)
def test_outside_points_give_none(index, lon, lat):
    assert index.locate(lon, lat) is None
    assert index.lookup([lon], [lat])[0] is None
    assert index.lookup_indices([lon], [lat])[0] == -1


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(math.nan, math.nan), (math.nan, 39.9), (116.4, math.nan), (math.inf, 39.9), (116.4, -math.inf)],
)
def test_nan_and_inf_give_none(index, lon, lat):
    assert index.locate(lon, lat) is None
    assert index.lookup([lon], [lat])[0] is None


def test_nan_mixed_into_a_batch_does_not_disturb_the_others(index, geoms):
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms[:50]))
    lon = np.concatenate([xy[:, 0], [np.nan, 116.41]])
    lat = np.concatenate([xy[:, 1], [39.9, np.nan]])
    got = index.lookup_indices(lon, lat)
    assert list(got[:50]) == list(range(50))
    assert list(got[50:]) == [-1, -1]


def test_index_over_part_of_the_grids(plan, geoms, codes):
    """An index of one street answers None for points in the other streets."""
    street = plan.grids[0].street_code
    keep = np.array([g.street_code == street for g in plan.grids])
    sub = PointGridIndex(plan.lattice, list(codes[keep]), list(geoms[keep]))
    assert len(sub) == keep.sum()
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    got = sub.lookup(xy[:, 0], xy[:, 1])
    assert list(got[keep]) == list(codes[keep])
    assert all(c is None for c in got[~keep])


def test_empty_index(plan):
    empty = PointGridIndex(plan.lattice, [], [])
    assert len(empty) == 0
    assert list(empty.lookup_indices([116.41], [39.91])) == [-1]
    assert empty.locate(116.41, 39.91) is None


def test_vectorised_shapes(index):
    assert index.lookup_indices([], []).shape == (0,)
    assert index.lookup_indices(116.41, 39.91).shape == (1,)


def test_points_a_tenth_of_a_millimetre_from_cell_edges_match_shapely(plan, geoms, index):
    """Stored edges are straight in lon/lat while the lattice is straight in metres; mid-edge the two
    part by ~0.16 mm (100 m edge at 40°N). Points in that sliver must follow the stored polygons."""
    full = [
        i
        for i, g in enumerate(plan.grids)
        if abs(g.area_m2 - 10_000) < 1 and len(g.geometry.exterior.coords) == 5
    ]
    assert len(full) > 1_000
    xy = np.array([np.asarray(geoms[i].exterior.coords)[:4] for i in full])  # (n, 4, 2)
    order = np.argsort(xy[:, :, 1], axis=1)
    south = np.take_along_axis(xy, order[:, :2, None], axis=1).mean(axis=1)  # mid-point of south edge
    west = np.take_along_axis(xy, np.argsort(xy[:, :, 0], axis=1)[:, :2, None], axis=1).mean(axis=1)
    offsets = np.array([-3e-9, -1e-9, 1e-9, 3e-9])  # degrees: ±0.1 mm, ±0.3 mm
    lon = np.concatenate([np.repeat(south[:, 0], 4), (west[:, 0][:, None] + offsets).ravel()])
    lat = np.concatenate([(south[:, 1][:, None] + offsets).ravel(), np.repeat(west[:, 1], 4)])
    expected, ambiguous = reference(geoms, lon, lat)
    got = index.lookup_indices(lon, lat)
    assert_same(got, expected, ambiguous, lon, lat)
    sample = np.random.default_rng(3).choice(len(lon), 2_000, replace=False)
    for i in sample:
        hit = index.locate(float(lon[i]), float(lat[i]))
        assert (hit.grid if hit else None) == (plan.grids[got[i]].code if got[i] >= 0 else None)
