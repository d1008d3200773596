"""``python -m bench components``: the 部件 inventory (issue 18) at 200,000 objects.

Targets: ``app.py import components`` of 200,000 objects ≤ 60 s on SQLite and on PostgreSQL (one
transaction, grids located, history written); the nearest objects of a class around a point p95 ≤ 5 ms
with 200,000 objects loaded (``store.components.Inventory.nearest``: a shapely STRtree per class).

The inventory is GENERATED (tests/component_inventory.py; no public one is at hand): objects of common
classes along the real Dongcheng roads of ``shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02),
written as a CSV in the standard's field names and imported with ``--crs gcj02``. The district is the
built-in Dongcheng (``app.py init``), in a SQLite file under a temporary folder and in a private
PostgreSQL database (``gw_bench_components`` on ``$GW_BENCH_PG``, dropped afterwards).

Statistics (issue 18 item 6): with the objects imported, 100,000 cases naming them over 180 days (a
fifth of them on 2 % of the objects, so that some recur) are written straight into the case table
(with their 处置 timers); then the recurring objects (≥ 3 cases in 90 days, the desk page's and the
wall's query, ``store.component_stats.recurring``) and the month's evaluation of the units by their
objects (``owner_evaluation``), each ≤ 1 s.

``--smoke``: 2,000 objects, 1,000 cases and 300 lookups, same code.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine

from bench import FAIL, INFO, SKIP, Result, at_most, console, judged, print_table, shared_dir, stopwatch
from domain.index import PointGridIndex

N_FULL = 200_000
N_SMOKE = 2_000
CASES_FULL = 100_000
CASES_SMOKE = 1_000
STATS_TARGET_S = 1.0  # a desk page's query (recurring objects, the owners' month)
IMPORT_TARGET_S = 60.0
NEAREST_TARGET_MS = 5.0
PG_ADMIN = os.environ.get("GW_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
PG_DB = "gw_bench_components"


def _pg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN).set(database=database, query={}).render_as_string(hide_password=False)


def _district(url: str) -> tuple[Engine, PointGridIndex]:
    """An engine on ``url`` with the built-in Dongcheng and the catalogue's departments, and its index."""
    from domain.catalogue import load_catalogue
    from store.build import BuildRequest, build_city
    from store.cases import sync_departments
    from store.db import create_engine, session_factory, transaction
    from store.geography import load_index

    engine = create_engine(url)
    build_city(engine, BuildRequest())
    with transaction(engine) as s:
        sync_departments(s, load_catalogue("cjt214"))
    with session_factory(engine)() as s:
        index = load_index(s, "110101")
    return engine, index


def _backend(label: str, url: str, csv_path: Path, n: int) -> list[Result]:
    from domain.catalogue import load_catalogue
    from store.components import import_components, load_inventory

    rows: list[Result] = []
    engine, index = _district(url)
    try:
        cat = load_catalogue("cjt214")
        with stopwatch() as t:
            s = import_components(engine, csv_path, index, cat, "110101")
        ok = s.added == n and s.rejected_count == 0
        rows.append(Result(
            f"{label}: import components (CSV, GCJ-02)", n, t[0], "objects", f"≤ {IMPORT_TARGET_S:.0f} s",
            at_most(t[0], IMPORT_TARGET_S) if ok else FAIL,
            f"{s.added:,} added, {s.rejected_count} rejected" + ("" if ok else " — NOT ALL ADDED"),
        ))  # fmt: skip
        with stopwatch() as t:
            again = import_components(engine, csv_path, index, cat, "110101")
        same = again.unchanged == n and again.added == again.changed == again.retired == 0
        rows.append(Result(f"{label}: re-import, nothing changed", n, t[0], "objects",
                           status=INFO if same else FAIL, notes=f"{again.unchanged:,} same"))  # fmt: skip
        with engine.connect() as conn, stopwatch() as t:
            inv = load_inventory(conn)
        loaded = len(inv.by_id)
        rows.append(Result(f"{label}: load the inventory + per-class STRtrees", loaded, t[0], "objects",
                           status=INFO if loaded == n else FAIL))  # fmt: skip
        rows += _statistics(label, engine, CASES_SMOKE if n <= N_SMOKE else CASES_FULL)
    finally:
        engine.dispose()
    return rows


def _statistics(label: str, engine: Engine, cases: int) -> list[Result]:
    """Write ``cases`` cases naming objects over 180 days, then time the recurring objects and the owners'
    month (the desk pages' and the wall's queries)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from domain.lifecycle import T_HANDLE
    from store.component_stats import RecurringRule, owner_evaluation, recurring, wall_recurring
    from store.components import bulk_insert
    from store.models import Case, Component, Grid, StageTimerRow

    now = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    with engine.connect() as conn:
        c = Component.__table__.c
        objs = conn.execute(
            select(c.id, c.class_code, c.grid_code, c.lon, c.lat, c.unit_care).order_by(c.id)
        ).all()
        streets = dict(conn.execute(select(Grid.code, Grid.street_code)).all())
    rng = np.random.default_rng(18)
    hot = rng.choice(len(objs), size=max(1, len(objs) // 50), replace=False)
    pick = np.where(rng.random(cases) < 0.2, hot[rng.integers(0, len(hot), cases)],
                    rng.integers(0, len(objs), cases))  # fmt: skip
    ages = rng.random(cases) * 180 * 86400
    case_rows, timers = [], []
    with stopwatch() as t:
        for j, (i, age) in enumerate(zip(pick.tolist(), ages.tolist(), strict=True)):
            o = objs[i]
            at = now - timedelta(seconds=age)
            cid = f"B{j:011d}"
            handled = age > 86400 * 3
            case_rows.append({
                "id": cid, "kind": "component", "class_code": o[1], "condition_code": "01",
                "source": "supervisor",
                "status": "closed" if handled else "handling", "stage": None if handled else "handle",
                "open": not handled, "emergency": False, "grid_code": o[2], "community_code": o[2][:12],
                "street_code": streets.get(o[2]), "lon": o[3], "lat": o[4], "department_code": o[5],
                "reporter": "bench", "description": "", "reported_at": at, "updated_at": at,
                "closed_at": at + timedelta(days=1) if handled else None, "deadline": None, "archive": None,
                "reworks": 0, "returns": 0, "urges": 0, "version": 1, "state": {}, "origin": "simulation",
                "needs_location": False, "address": None, "component_id": o[0],
            })  # fmt: skip
            if handled:
                timers.append({
                    "case_id": cid, "stage": T_HANDLE, "limit_value": 2.0, "limit_unit": "work_days",
                    "started_at": at, "deadline": at + timedelta(days=2), "paused_since": None,
                    "paused_seconds": 0.0, "ended_at": at + timedelta(days=1 + j % 3), "overdue": j % 3 == 2,
                })  # fmt: skip
        with engine.begin() as conn:
            bulk_insert(conn, Case.__table__, case_rows)  # type: ignore[arg-type]
            bulk_insert(conn, StageTimerRow.__table__, timers)  # type: ignore[arg-type]
    rows = [Result(f"{label}: write cases naming objects (180 days)", cases, t[0], "cases", status=INFO)]
    rule = RecurringRule(3, 90)
    with engine.connect() as conn:
        recurring(conn, now, rule)  # warm the caches once, as a running desk has them
        with stopwatch() as t:
            got = recurring(conn, now, rule, limit=200)
        rows.append(Result(
            f"{label}: recurring objects (≥ 3 in 90 days, first 200)", cases, t[0], "cases",
            f"≤ {STATS_TARGET_S:g} s", at_most(t[0], STATS_TARGET_S) if got.total else FAIL,
            f"{got.total:,} recurring objects of {len(objs):,}",
        ))  # fmt: skip
        with stopwatch() as t:
            wall = wall_recurring(conn, now, rule)
        rows.append(Result(f"{label}: the wall's recurring scene (top 8)", cases, t[0], "cases",
                           f"≤ {STATS_TARGET_S:g} s", at_most(t[0], STATS_TARGET_S),
                           f"top: {wall['top'][0]['n'] if wall['top'] else 0} cases"))  # fmt: skip
        for view in ("first view: counts the objects held", "next view: held objects kept per version"):
            with stopwatch() as t:
                month = owner_evaluation(conn, now - timedelta(days=30), now, rule, recurring_at=now)
            rows.append(Result(
                f"{label}: owners' month, {view}", cases, t[0], "cases",
                f"≤ {STATS_TARGET_S:g} s", at_most(t[0], STATS_TARGET_S) if len(month) else FAIL,
                f"{len(month)} unit rows, {int(month['cases'].sum()):,} case charges; {len(objs):,} objects",
            ))  # fmt: skip
    return rows


def _nearest(
    inv_ids: list[str], classes: list[str], lon: np.ndarray, lat: np.ndarray, calls: int
) -> list[Result]:
    from domain.component import ComponentIndex

    with stopwatch() as t:
        idx = ComponentIndex(inv_ids, classes, lon, lat)
    rows = [Result("nearest: build the index (in memory)", len(inv_ids), t[0], "objects")]
    rng = np.random.default_rng(5)
    pick = rng.integers(0, len(inv_ids), calls)
    qx = lon[pick] + rng.normal(0, 0.0005, calls)  # about 50 m around an object
    qy = lat[pick] + rng.normal(0, 0.0004, calls)
    codes = [classes[i] for i in pick.tolist()]
    times = np.empty(calls)
    found = 0
    for j in range(calls):
        t0 = time.perf_counter()
        hits = idx.nearest(codes[j], float(qx[j]), float(qy[j]), k=5, max_m=500.0)
        times[j] = time.perf_counter() - t0
        found += bool(hits)
    p50, p95 = (float(np.percentile(times, q)) * 1000 for q in (50, 95))
    rows.append(Result(
        f"nearest: 5 objects of a class within 500 m ({len(inv_ids):,} objects)", calls, float(times.sum()),
        "calls", f"p95 ≤ {NEAREST_TARGET_MS:g} ms", judged(p95 <= NEAREST_TARGET_MS) if found else FAIL,
        f"p50 {p50:.2f} ms, p95 {p95:.2f} ms; {found}/{calls} found objects",
    ))  # fmt: skip
    return rows


def run(smoke: bool = False) -> list[Result]:
    """Run the component benchmarks, print their table and return the rows."""
    from tests.component_inventory import ROADS, generate

    n = N_SMOKE if smoke else N_FULL
    shared = shared_dir()
    if not (shared / ROADS).exists():
        rows = [Result("components", None, None, status=SKIP, notes=f"no {shared / ROADS}")]
        print_table("components (issue 18)", rows)
        return rows
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-components-") as d:
        folder = Path(d)
        console.print(f"[dim]components: generating {n:,} objects along the Dongcheng roads …[/]")
        _, index = _district(f"sqlite:///{folder / 'grid.db'}")
        with stopwatch() as t:
            inv = generate(shared, n, inside=lambda x, y: index.lookup_indices(x, y) >= 0)
            csv_path = inv.write_csv(folder / "inventory_gcj02.csv")
        results.append(
            Result("generate + write the CSV", n, t[0], "objects", notes="generated, not surveyed")
        )
        console.print("[dim]components: SQLite …[/]")
        results += _backend("SQLite", f"sqlite:///{folder / 'gridwall.db'}", csv_path, n)
        console.print("[dim]components: PostgreSQL …[/]")
        try:
            import sqlalchemy as sa

            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
                conn.exec_driver_sql(f'CREATE DATABASE "{PG_DB}"')
        except Exception as exc:
            results.append(Result("PostgreSQL", None, None, status=SKIP, notes=f"unreachable: {exc!s:.80}"))
        else:
            try:
                results += _backend("PostgreSQL", _pg_url(PG_DB), csv_path, n)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
                admin.dispose()
        results += _nearest(inv.ids, inv.classes, inv.lon, inv.lat, 300 if smoke else 5_000)
    print_table(f"components (issue 18): {n:,} generated objects", results)
    return results
