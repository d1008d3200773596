"""Patrol generator (``feeds.sources.patrol.Patrol``) on 270 and 10,000 synthetic supervisors.

The areas are Dongcheng-sized (≈ 0.14 km²: blocks of 4 × 4 unit grids of 95 m, half of them
L-shaped) laid out side by side near Beijing. Reported per size:

* inspection-point graphs (built once per ``Patrol``), and one day's routes of all supervisors
  (target: 270 supervisors well under a second);
* the live simulator's call, ``fixes_between(t, t + 1 s)`` every simulated second of a shift
  hour (fixes generated per second, mean and worst latency per call) and the same through
  ``fix_arrays_between`` (numpy arrays, no ``Fix`` objects);
* a bulk hour in one ``fix_arrays_between`` call.

Run: ``python -m bench patrol`` or ``python -m bench.bench_patrol [--supervisors 270 10000] [--seconds 300]``.
"""

from __future__ import annotations

import argparse
import sys
import time as clock
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from bench import INFO, Result, at_least, at_most, console, print_table, stopwatch
from domain.geo import LocalProjection
from feeds.sources.patrol import Patrol

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2025, 3, 10)  # a Monday
CELL = 95.0
SEED = 20250310


def synthetic_areas(n: int, seed: int = SEED) -> dict[str, shapely.Geometry]:
    """``n`` blocks of 4 × 4 cells (half with a 2 × 2 corner cut off) near 116.4° E, 39.9° N."""
    proj = LocalProjection(lon0=116.4)
    x0, y0 = proj.forward(116.4, 39.9)
    side = int(np.ceil(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    size = 4 * CELL
    geoms = []
    for i in range(n):
        bx, by = x0 + (i % side) * size, y0 + (i // side) * size
        block = shapely.box(bx, by, bx + size, by + size)
        if rng.random() < 0.5:
            cx = bx + (0 if rng.random() < 0.5 else 2 * CELL)
            cy = by + (0 if rng.random() < 0.5 else 2 * CELL)
            block = block.difference(shapely.box(cx, cy, cx + 2 * CELL, cy + 2 * CELL))
        geoms.append(block)
    return {f"sup-{i:05d}": g for i, g in enumerate(proj.to_wgs84_many(geoms))}


def _size(n: int, seconds: int) -> list[Result]:
    label = f"{n:,} supervisors"
    areas = synthetic_areas(n)
    patrol = Patrol(areas, TZ, seed=SEED)
    rows: list[Result] = []

    with stopwatch() as t:
        graph = patrol._graph
    nodes = len(graph.x)
    rows.append(
        Result(f"{label}: inspection-point graphs (once)", n, t[0], "supervisors", notes=f"{nodes:,} points")
    )

    with stopwatch() as t:
        day = patrol._day(DAY)
    target = "< 1 s for 270" if n <= 270 else ""
    status = at_most(t[0], 1.0) if n <= 270 else INFO
    rows.append(
        Result(
            f"{label}: one day's routes",
            n,
            t[0],
            "routes",
            target,
            status,
            f"{len(day.keys):,} knots, {day.nbytes / 2**20:.1f} MiB cached",
        )
    )

    start = datetime.combine(DAY, time(9), tzinfo=TZ)
    for name, call in (
        ("fixes_between", patrol.fixes_between),
        ("fix_arrays_between", patrol.fix_arrays_between),
    ):
        total = 0
        worst = 0.0
        began = clock.perf_counter()
        for k in range(seconds):
            a = start + timedelta(seconds=k)
            t0 = clock.perf_counter()
            total += len(call(a, a + timedelta(seconds=1)))
            worst = max(worst, clock.perf_counter() - t0)
        elapsed = clock.perf_counter() - began
        rows.append(
            Result(
                f"{label}: {name}(t, t+1 s) × {seconds}",
                total,
                elapsed,
                "fixes",
                "≥ real time",
                at_least(seconds / elapsed, 1.0),
                f"{elapsed / seconds * 1e3:.2f} ms/call mean, {worst * 1e3:.2f} ms worst, "
                f"{seconds / elapsed:,.0f}× real time",
            )
        )

    with stopwatch() as t:
        bulk = patrol.fix_arrays_between(start, start + timedelta(hours=1))
    rows.append(Result(f"{label}: fix_arrays_between, one hour", len(bulk), t[0], "fixes"))
    return rows


SIZES = (270, 10_000)
SECONDS = 300


def run(sizes: tuple[int, ...] = SIZES, seconds: int = SECONDS, smoke: bool = False) -> list[Result]:
    """Run the patrol benchmark and print its table (``smoke``: 270 supervisors, 10 windows)."""
    if smoke:
        sizes, seconds = (270,), 10
    results: list[Result] = []
    for n in sizes:
        results += _size(n, seconds)
    print_table("Patrol generator (feeds.sources.patrol)", results)
    console.print(
        "interval 10 s, walk 0.9–1.5 m/s, stops 30–300 s, shifts 07:30–11:30 and 13:30–17:30; "
        "windows start 09:00 local on a Monday",
        highlight=False,
    )
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.bench_patrol``: run the patrol benchmark; 1 when a target fails."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_patrol", description=__doc__)
    parser.add_argument("--supervisors", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seconds", type=int, default=SECONDS, help="1 s windows per size (default 300)")
    args = parser.parse_args(argv)
    results = run(tuple(args.supervisors), args.seconds)
    return 1 if any(r.status == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
