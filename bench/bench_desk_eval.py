"""Evaluation pages (issue 8): a month's ranking page and CSV export from the stored daily aggregates.

Target: a month's evaluation page ≤ 2 s (server time: the ``daily_counters`` read, the CJ/T 292
table, the page layout serialised as Dash sends it). The stored month is the worst case for the
read: every object of every level has a row on every day of the month (5,593 unit grids × 30 days
= 167,790 grid rows), with plausible counts; a real month has rows only for objects with events.
Runs on SQLite (a file, WAL) and, when it answers, on the machine's PostgreSQL (a fresh schema).
Also timed, without a target: "who was where at T" (issue 8 item 8) over 10,000 supervisors.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import plotly
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from bench import INFO, SKIP, Result, at_most, print_table
from dashboard.evaluation_data import LEVELS, Period, export_csv, ranking, street_names
from dashboard.people_data import where_at
from domain.evaluation import COUNTER_NAMES, ObjectType, RowKey
from feeds.core import build_context
from layouts import evaluation
from store.accounts import provision_embedded
from store.build import BuildRequest, build_city
from store.counters import save_rows
from store.db import create_engine
from store.migrate import upgrade
from store.models import Community, Department, Grid, Person, Position, Street

PG_BASE = os.environ.get("GW_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
MONTH = Period("month", date(2026, 10, 1), date(2026, 10, 31))
NOW = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)  # the month is over: no live overdue count
REPEAT = 3


@dataclass(frozen=True)
class Workload:
    """The stored period, the people of "who was where at T" and the repeats of each timing."""

    period: Period
    people: int
    repeat: int


FULL = Workload(MONTH, 10_000, REPEAT)  # 10,000 people: WHERE_PEOPLE
# the smoke run (python -m bench desk_eval --smoke): the last two days of the month, 100 people, once
SMOKE = Workload(Period("month", date(2026, 10, 30), date(2026, 10, 31)), 100, 1)


def _counts(rng: random.Random, scale: float) -> dict[str, int]:
    """One object-day of plausible counts (each completion ≤ its obligation)."""
    n = max(1, int(rng.expovariate(1 / scale)) + 1)
    c = dict.fromkeys(COUNTER_NAMES, 0)
    c.update(reported=n, patrol_reported=int(n * 0.7), public_reported=n - int(n * 0.7))
    c.update(accepted=n, accepted_on_time=n - rng.randint(0, max(0, n // 10)), filed=int(n * 0.9))
    c.update(filed_on_time=c["filed"], valid_reported=int(c["patrol_reported"] * 0.9), voided=n - c["filed"])
    c.update(to_verify=int(n * 0.3), verified=int(n * 0.3), verified_on_time=int(n * 0.28))
    c.update(to_dispatch=c["filed"], dispatched=c["filed"], dispatched_on_time=c["filed"] - rng.randint(0, 1))
    c.update(handled=c["dispatched"], handled_on_time=int(c["dispatched"] * 0.92), reworked=rng.randint(0, 1))
    c.update(handled_overdue=c["handled"] - c["handled_on_time"], to_check=c["handled"])
    c.update(checked=c["handled"], checked_on_time=c["handled"], closed=c["handled"] - c["reworked"])
    c.update(closed_on_time=int(c["closed"] * 0.93), missed=rng.randint(0, 1))
    c.update(overdue_closed=c["closed"] - c["closed_on_time"], close_step_on_time=c["closed"])
    c["dispatched_on_time"] = max(0, c["dispatched_on_time"])
    return c


def _fill(engine: Engine, period: Period = MONTH) -> int:
    """Build Dongcheng with its people and store a full month of daily rows; returns rows stored."""
    upgrade(engine)
    build_city(engine, BuildRequest())
    provision_embedded(engine, kiosk_secret="bench-desk-eval-kiosk-0123456789abcdef")
    build_context(engine)  # the catalogue's departments
    sups = select(Person.id).where(Person.role == "supervisor")
    with engine.connect() as conn:
        objects: list[tuple[ObjectType, str, float]] = [
            *((ObjectType.STREET, c, 80.0) for c in conn.scalars(select(Street.code))),
            *((ObjectType.COMMUNITY, c, 8.0) for c in conn.scalars(select(Community.code))),
            *((ObjectType.GRID, c, 0.6) for c in conn.scalars(select(Grid.code))),
            *((ObjectType.DEPARTMENT, c, 30.0) for c in conn.scalars(select(Department.code))),
            *((ObjectType.SUPERVISOR, c, 4.0) for c in conn.scalars(sups)),
        ]  # fmt: skip
    objects += [(ObjectType.DISTRICT, "110101", 1300.0)]
    for kind in (ObjectType.ACCEPTOR, ObjectType.SHIFT_LEADER, ObjectType.DISPATCHER):
        objects += [(kind, f"{kind.value}-{i}", 300.0) for i in range(4)]
    rng = random.Random(20261127)
    rows: dict[RowKey, dict[str, int]] = {}
    for d in range(period.days):
        day = period.start + timedelta(days=d)
        for kind, oid, scale in objects:
            rows[(kind, oid, day)] = _counts(rng, scale)
    with engine.begin() as conn:
        save_rows(conn, rows, {}, 0)
    return len(rows)


def _page_seconds(
    engine: Engine, kind: ObjectType, within: str | None = None, w: Workload = FULL
) -> tuple[float, int, int]:
    """Server time of one page: ranking + layout + the JSON Dash sends (median of REPEAT runs)."""
    times: list[float] = []
    size = objects = 0
    for _ in range(w.repeat):
        t0 = time.perf_counter()
        r = ranking(engine, kind, w.period, now=NOW, within=within)
        page = evaluation.layout(r, lang="zh", streets=street_names(engine))
        body = json.dumps(page.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)
        times.append(time.perf_counter() - t0)
        size, objects = len(body), len(r.frame)
    return statistics.median(times), objects, size


def _csv_seconds(engine: Engine, kind: ObjectType, w: Workload = FULL) -> tuple[float, int]:
    times: list[float] = []
    size = 0
    for _ in range(w.repeat):
        t0 = time.perf_counter()
        body = export_csv(ranking(engine, kind, w.period, now=NOW))
        times.append(time.perf_counter() - t0)
        size = len(body)
    return statistics.median(times), size


WHERE_PEOPLE = 10_000
WHERE_T = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def _where_seconds(engine: Engine, w: Workload = FULL) -> tuple[float, int, int, int]:
    """ "Who was where at T" over 10,000 supervisors with a fix every 30 s for the 30 minutes around T."""
    with engine.connect() as conn:
        grids = conn.execute(select(Grid.code, Grid.area_code, Grid.centroid_lon, Grid.centroid_lat)).all()
    areas = [g for g in grids if g[1]]
    people = [
        {"id": f"w{i:05d}", "name": f"w{i:05d}", "role": "supervisor", "area_code": areas[i % len(areas)][1]}
        for i in range(w.people)
    ]
    fixes: list[dict[str, object]] = []
    for i, person in enumerate(people):
        code, _, lon, lat = areas[i % len(areas)]
        for k in range(-50, 10):  # 25 minutes before T to 5 minutes after, every 30 s
            at = WHERE_T + timedelta(seconds=30 * k + i % 30)
            fixes.append(
                {"supervisor_id": person["id"], "at": at, "received_at": at, "lon": lon + k * 1e-5,
                 "lat": lat, "grid_code": code}
            )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Person), people)
        for i in range(0, len(fixes), 20_000):
            conn.execute(insert(Position), fixes[i : i + 20_000])
    times: list[float] = []
    seen = 0
    for k in range(w.repeat):
        with engine.connect() as conn:
            t0 = time.perf_counter()
            rows = where_at(conn, WHERE_T + timedelta(minutes=k))
            times.append(time.perf_counter() - t0)
        seen = sum(1 for r in rows if r.at is not None)
    return statistics.median(times), len(rows), seen, len(fixes)


def _measure(backend: str, engine: Engine, w: Workload = FULL) -> list[Result]:
    t0 = time.perf_counter()
    stored = _fill(engine, w.period)
    setup = time.perf_counter() - t0
    out: list[Result] = []
    for kind in LEVELS:
        secs, objects, size = _page_seconds(engine, kind, None, w)
        out.append(
            Result(
                f"{backend}: month page, {kind.value}", objects, secs, "objects", "≤ 2 s", at_most(secs, 2.0),
                f"median of {w.repeat}; page JSON {size / 1e6:.2f} MB",
            )
        )  # fmt: skip
    street = min(street_names(engine))
    secs, objects, size = _page_seconds(engine, ObjectType.GRID, street, w)
    out.append(
        Result(
            f"{backend}: month page, grids of one street", objects, secs, "objects", "≤ 2 s",
            at_most(secs, 2.0), f"median of {w.repeat}; street {street}; page JSON {size / 1e6:.2f} MB",
        )
    )  # fmt: skip
    for kind in (ObjectType.STREET, ObjectType.GRID):
        secs, size = _csv_seconds(engine, kind, w)
        out.append(
            Result(
                f"{backend}: month CSV export, {kind.value}", None, secs, "", "", INFO,
                f"median of {w.repeat}; {size / 1e3:,.0f} kB",
            )
        )  # fmt: skip
    out[0].notes += f"; {stored:,} daily rows stored (setup {setup:.0f} s)"
    secs, people, seen, fixes = _where_seconds(engine, w)
    out.append(
        Result(
            f"{backend}: who was where at T", people, secs, "supervisors", "", INFO,
            f"median of {w.repeat}; {seen:,} with a fix at T; one query, {fixes:,} fixes stored",
        )
    )  # fmt: skip
    return out


def _with_pg(run: Callable[[Engine], list[Result]]) -> list[Result]:
    import sqlalchemy as sa

    schema = f"gw_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_BASE)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:  # no server: the SQLite figures stand alone
        return [
            Result("postgresql: month pages", None, None, "", "≤ 2 s", SKIP, f"PostgreSQL unavailable: {exc}")
        ]
    engine = create_engine(f"{PG_BASE}?options=-csearch_path%3D{schema}")
    try:
        return run(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def run(smoke: bool = False) -> list[Result]:
    """Run the evaluation-page benchmarks and print their table (``smoke``: two days, 100 people)."""
    w = SMOKE if smoke else FULL
    rows: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-eval-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'gw.db'}")
        rows += _measure("sqlite", engine, w)
        engine.dispose()
    rows += _with_pg(lambda e: _measure("postgresql", e, w))
    print_table("Evaluation pages (issue 8): a month from the daily aggregates", rows)
    return rows
