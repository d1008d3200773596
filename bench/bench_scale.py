"""Scale-out (issue 6): fixes through the ingest stream to walls on two web processes; one vs two consumers.

Setup: Chaoyang (``build_city(engine, BuildRequest(district="110105", area_size=5))``) in a fresh
PostgreSQL schema on 127.0.0.1:5432, one supervisor per area (``provision_embedded``), a gateway
token with scope ``*``; a fresh key prefix on the machine's Redis (database 14). The deployment is
the one README "Production" describes, as real processes (``python app.py run --role …``): one
aggregator, one ingest consumer, web processes A and B.

**Fan-out run.** 4 python-socketio gateway connections (this process, ``bench_fanout._gateways``)
send ``positions`` batches to web A — behind nginx ``ip_hash`` one gateway host lands on one web
process — at ``RATE`` fixes/s over ``SUPERVISORS`` supervisors; each fix's ``at`` is its send time.
50 raw Engine.IO ``/live`` clients in another process (``bench_fanout._screen``), alternately on A
and B, count bytes, check ``seq`` and note when a fix of a tagged supervisor (every 20th) first shows
in a tick. Latency = that receive time − the fix's send time: web A's append, the consumer's commit
and publish, the aggregator's tick, the message queue, web B's relay. CPU per process = its CPU
seconds over the sending window; Redis's from ``INFO cpu`` (the machine's Redis: others' work counts).

**Consumer run.** With the ingest consumers started and idle, ``CONSUMER_FIXES`` fixes (``positions``
entries of 25, as a gateway sends them) are appended to a fresh stream at once; sustained ingest =
fixes / time until the consumer group has no lag and nothing pending. Once with one ingest process,
once with two (fresh instants, so nothing is a duplicate).

**Daily counters** (``python -m bench.bench_scale counters``, not part of ``python -m bench scale``):
the aggregator's CJ/T 292 counters on a large case log — see :func:`counters`.

Everything shares the machine's 2 cores (PostgreSQL, Redis, 4–5 GridWall processes, the load).
``GW_BENCH_SCALE_RATE``, ``GW_BENCH_SCALE_SECONDS``, ``GW_BENCH_SCALE_FIXES`` scale the workload.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
from rich import box
from rich.table import Table

from bench import FAIL, INFO, PASS, ROOT, Result, console, judged
from bench._server import City, cpu_seconds, load_line, percentile, supervisor_points
from bench.bench_fanout import GATEWAYS, Screen, _gateways, _screen, tick_latencies

PG_BASE = os.environ.get("GW_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GW_BENCH_REDIS", "redis://127.0.0.1:6379/14")
SUPERVISORS = 10_000
RATE = int(os.environ.get("GW_BENCH_SCALE_RATE", "2000"))  # fixes/s offered by the gateways
SECONDS = float(os.environ.get("GW_BENCH_SCALE_SECONDS", "30"))
CONSUMER_FIXES = int(os.environ.get("GW_BENCH_SCALE_FIXES", "40000"))
CLIENTS = 50
TAG_EVERY = 20
AREA_SIZE = 5
TICK = 1.0
P50_TARGET, P99_TARGET = TICK + 0.15, 2.0


@dataclass(frozen=True)
class Workload:
    """What one scale-out run offers: the city, the fan-out load and the consumers' backlog."""

    district: str | None  # None: the built-in Dongcheng
    area_size: int
    supervisors: int
    rate: int
    clients: int
    tag_every: int
    seconds: float
    consumer_fixes: int

    @property
    def city(self) -> str:
        """The city's name in the table."""
        return "Chaoyang" if self.district == "110105" else (self.district or "built-in Dongcheng")


FULL = Workload("110105", AREA_SIZE, SUPERVISORS, RATE, CLIENTS, TAG_EVERY, SECONDS, CONSUMER_FIXES)
# the smoke run (python -m bench scale --smoke): the same processes, seconds of load
SMOKE = Workload(None, 8, 200, 80, 4, 4, 4.0, 1_000)


@dataclass
class Proc:
    """A GridWall process of the deployment."""

    role: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None


class Deployment:
    """Aggregator, ingest consumers and web processes on one schema and one Redis prefix."""

    def __init__(self, db_url: str, prefix: str, data_dir: Path) -> None:
        self.db_url, self.prefix, self.data_dir = db_url, prefix, data_dir
        self.procs: list[Proc] = []

    def start(self, role: str, timeout: float = 300.0) -> Proc:
        """Start one role and wait until it is ready."""
        import urllib.request

        from tests.live_server import free_port

        port = free_port() if role == "web" else None
        log = self.data_dir / f"{role}-{len(self.procs)}.log"
        cmd = [sys.executable, str(ROOT / "app.py"), "run", "--role", role, "--redis", REDIS_URL,
               "--redis-prefix", self.prefix, "--db", self.db_url, "--data-dir", str(self.data_dir),
               "--no-simulation"] + (["--port", str(port)] if port else [])  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        p = Proc(role, proc, log, port)
        self.procs.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited: {log.read_text()[-2000:]}")
            if role != "web" and "standing by" in log.read_text(errors="replace"):
                return p
            if role == "web":
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                        return p
                except OSError:
                    pass
            time.sleep(0.3)
        raise RuntimeError(f"{role} not ready in {timeout:.0f} s (see {log})")

    def stop(self, role: str | None = None) -> None:
        """SIGTERM the processes (of one role), wait."""
        mine = [p for p in self.procs if role is None or p.role == role]
        for p in mine:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in mine:
            try:
                p.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
            self.procs.remove(p)


def _prepare(url: str, data_dir: Path, w: Workload = FULL) -> City:
    """Build the city into the schema, provision accounts, write the deployment's secrets."""
    from store.accounts import issue_token, new_secret, provision_embedded
    from store.build import BuildRequest, build_city
    from store.db import create_engine, transaction

    engine = create_engine(url)
    build_city(engine, BuildRequest(district=w.district, area_size=w.area_size))
    kiosk = new_secret()
    provision_embedded(engine, kiosk_secret=kiosk)
    with transaction(engine) as s:
        _, gateway = issue_token(s, "gateway", "bench gateway", scope=["*"])
    points = supervisor_points(engine)
    engine.dispose()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "secrets.json").write_text(json.dumps({"kiosk_token": kiosk, "secret_key": new_secret()}))
    return City(Path("-"), kiosk, gateway, points)


# -- the screens (a separate process), alternately on the web processes -----------------------------


async def _screens(
    ports: list[int],
    kiosk: str,
    tagged: frozenset[str],
    ready: Any,
    stop: Any,
    clients: int = CLIENTS,
    idle: Callable[[list[Screen]], None] | None = None,
) -> list[Screen]:
    """``clients`` screens in waves of 10; ``idle`` (if given) gets them every 0.2 s until ``stop``."""
    import aiohttp

    screens = [Screen() for _ in range(clients)]
    async with aiohttp.ClientSession() as session:
        tasks = []
        for i, st in enumerate(screens):
            tasks.append(asyncio.create_task(_screen(ports[i % len(ports)], kiosk, tagged, st, session)))
            if i % 10 == 9:
                while sum(s.snapshot_seq is not None or bool(s.closed) for s in screens[: i + 1]) < i + 1:
                    await asyncio.sleep(0.05)
        while not all(s.snapshot_seq is not None or s.closed for s in screens):
            await asyncio.sleep(0.05)
        ready.set()
        while not stop.is_set():
            if idle is not None:
                idle(screens)
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return screens


def _screens_main(ports: list[int], kiosk: str, tagged: list[str], ready: Any, stop: Any, out: Any,
                  clients: int = CLIENTS,
                  idle: Callable[[list[Screen]], None] | None = None) -> None:  # fmt: skip
    """Entry point of the screens process."""
    out.put(asyncio.run(_screens(ports, kiosk, frozenset(tagged), ready, stop, clients, idle)))


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Fanout:
    """The fan-out run's measurements."""

    sent: Any
    screens: list[Screen]
    cores: dict[str, float]
    latencies: list[float]
    expected: int
    backlog: dict[str, Any]
    persisted: int


def _backlog(r: redis.Redis, prefix: str) -> dict[str, Any]:
    try:
        groups = r.xinfo_groups(f"{prefix}:ingest")
    except redis.ResponseError:
        return {"lag": None, "pending": None}
    g = next((g for g in groups if g["name"] in (b"ingest", "ingest")), None)
    return {"lag": g.get("lag") if g else None, "pending": g.get("pending") if g else None}


def _fanout(dep: Deployment, city: City, w: Workload) -> Fanout:
    import sqlalchemy as sa

    from store.models import Position

    r = redis.Redis.from_url(REDIS_URL)
    web_a, web_b = [p for p in dep.procs if p.role == "web"]
    assert web_a.port and web_b.port
    sups = sorted(city.points)[: w.supervisors]
    tagged = frozenset(sups[:: w.tag_every])
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    screens_proc = ctx.Process(
        target=_screens_main,
        args=([web_a.port, web_b.port], city.kiosk, sorted(tagged), ready, stop, out, w.clients),
        name="bench-screens",
    )  # fmt: skip
    screens_proc.start()
    pids = {"web A": web_a.proc.pid, "web B": web_b.proc.pid}
    pids.update({p.role: p.proc.pid for p in dep.procs if p.role != "web"})
    try:
        if not ready.wait(timeout=300):
            raise RuntimeError("the /live screens did not all get a snapshot in 300 s")
        time.sleep(1.0)
        c0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        s0, g0, r0, t0 = cpu_seconds(screens_proc.pid or 0), _own_cpu(), _redis_cpu(r), time.time()
        sent = asyncio.run(_gateways(web_a.port, city, sups, tagged, w.seconds, w.rate))
        wall = time.time() - t0
        cores = {k: (cpu_seconds(pid) - c0[k]) / wall for k, pid in pids.items()}
        cores["redis (whole server)"] = (_redis_cpu(r) - r0) / wall
        cores["screens (load)"] = (cpu_seconds(screens_proc.pid or 0) - s0) / wall
        cores["gateways (load)"] = (_own_cpu() - g0) / wall
        backlog = _backlog(r, dep.prefix)
        deadline = time.time() + 120  # let the consumer finish what was appended, then one more tick
        while time.time() < deadline:
            b = _backlog(r, dep.prefix)
            if not b["lag"] and not b["pending"]:
                break
            time.sleep(0.5)
        time.sleep(TICK * 2.5)
        stop.set()
        screens: list[Screen] = out.get(timeout=120)
    finally:
        stop.set()
        screens_proc.join(timeout=30)
        if screens_proc.is_alive():
            screens_proc.kill()
    eng = sa.create_engine(dep.db_url)
    with eng.connect() as conn:
        persisted = int(conn.execute(sa.select(sa.func.count()).select_from(Position)).scalar_one())
    eng.dispose()
    lat = tick_latencies(sent, screens)
    return Fanout(sent, screens, cores, lat, sent.tagged_fixes * len(screens), backlog, persisted)


def _consumers(
    dep: Deployment, city: City, n: int, offset: timedelta, w: Workload = FULL
) -> tuple[float, int]:
    """Seconds for ``n`` ingest processes to drain ``w.consumer_fixes`` fixes appended at once."""
    from feeds.stream import speaker_json
    from store.accounts import authenticate
    from store.db import create_engine

    prefix = f"{dep.prefix}-c{n}"
    consumers = Deployment(dep.db_url, prefix, dep.data_dir)
    for _ in range(n):
        consumers.start("ingest")
    try:
        eng = create_engine(dep.db_url)
        with eng.connect() as conn:
            who = authenticate(conn, city.gateway, ("gateway",))
        eng.dispose()
        sp = speaker_json(who)
        sups = sorted(city.points)[: w.supervisors]
        base = datetime.now(UTC) - offset
        r = redis.Redis.from_url(REDIS_URL)
        key = f"{prefix}:ingest"
        pipe = r.pipeline(transaction=False)
        entries = 0
        for b in range(w.consumer_fixes // 25):
            fixes = []
            for j in range(25):
                i = b * 25 + j
                sid = sups[i % len(sups)]
                lon, lat, _, _ = city.points[sid]
                at = base + timedelta(seconds=5 * (i // len(sups)), milliseconds=i % 1000)
                fixes.append({"supervisor": sid, "at": at.isoformat(), "lon": lon, "lat": lat})
            fields: dict[Any, Any] = {"k": "positions", "raw": orjson.dumps({"fixes": fixes}), "sp": sp,
                                      "src": "gateway:bench gateway"}  # fmt: skip
            pipe.xadd(key, fields)
            entries += 1
        t0 = time.perf_counter()
        pipe.execute()
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            b2 = _backlog(r, prefix)
            if b2["lag"] == 0 and b2["pending"] == 0:
                break
            time.sleep(0.1)
        took = time.perf_counter() - t0
        keys = list(r.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            r.delete(*keys)
        return took, entries
    finally:
        consumers.stop()


def run(seconds: float = SECONDS, smoke: bool = False) -> list[Result]:
    """Build the city on PostgreSQL, run the deployment, print the tables (``smoke``: :data:`SMOKE`)."""
    w = SMOKE if smoke else FULL
    if seconds != SECONDS and not smoke:
        w = Workload(w.district, w.area_size, w.supervisors, w.rate, w.clients, w.tag_every, seconds,
                     w.consumer_fixes)  # fmt: skip

    def say(m: str) -> None:
        console.print(m, highlight=False)

    results: list[Result] = []
    with deployed(w, "scale") as (dep, city):
        say(f"scale: fan-out: {w.supervisors:,} supervisors at {w.rate:,} fixes/s through the stream, "
            f"{w.clients} screens on 2 web processes, {w.seconds:.0f} s …")  # fmt: skip
        fo = _fanout(dep, city, w)
        say(f"scale: {load_line()}")
        dep.stop()
        say(f"scale: consumers: {w.consumer_fixes:,} fixes appended at once, 1 then 2 ingest processes …")
        one, entries = _consumers(dep, city, 1, timedelta(minutes=30), w)
        two, _ = _consumers(dep, city, 2, timedelta(minutes=20), w)
        say(f"scale: {load_line()}")
        results += _report(fo, w, one, two, entries)
        if not fo.latencies:  # a broken measurement, not a missed target
            raise RuntimeError("scale measured nothing usable: no tagged fix was recognised on any screen")
        return results


@contextmanager
def deployed(
    w: Workload, name: str = "scale", setup: Callable[[str, Path, City], None] | None = None
) -> Iterator[tuple[Deployment, City]]:
    """The city of ``w`` in a fresh PostgreSQL schema and Redis prefix, with an aggregator, an ingest
    consumer and web processes A and B running; everything stopped and dropped afterwards.

    ``setup(db_url, data_dir, city)`` runs after the city is built, before the processes start."""
    import sqlalchemy as sa

    def say(m: str) -> None:
        console.print(m, highlight=False)

    tmp = Path(tempfile.mkdtemp(prefix=f"gw-bench-{name}-"))
    schema = f"gw_bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    prefix = f"gwbench-{uuid.uuid4().hex[:8]}"
    dep = Deployment(url, prefix, tmp)
    try:
        say(f"{name}: {load_line()}")
        say(f"{name}: building {w.city} (area_size={w.area_size}) in PostgreSQL schema {schema} …")
        t = time.perf_counter()
        city = _prepare(url, tmp, w)
        say(f"{name}: {len(city.points):,} supervisors ready in {time.perf_counter() - t:.0f} s")
        if setup is not None:
            setup(url, tmp, city)
        for role in ("aggregator", "ingest", "web", "web"):
            dep.start(role)
        yield dep, city
    finally:
        dep.stop()
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{prefix}*", count=1000))
        if keys:
            r.delete(*keys)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
        if not os.environ.get("GW_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


def _report(fo: Fanout, w: Workload, one: float, two: float, entries: int) -> list[Result]:
    seconds = w.seconds
    s = fo.sent
    window = range(int(s.started) + 1, int(s.ended))
    bps = [sum(st.bytes_by_second[t] for t in window) / max(1, len(window)) for st in fo.screens]
    gaps = sum(st.gaps for st in fo.screens)
    closed = [st.closed for st in fo.screens if st.closed and not st.closed.startswith("error: Cancelled")]
    p50, p99 = percentile(fo.latencies, 50), percentile(fo.latencies, 99)
    delivered = len(fo.latencies) / fo.expected if fo.expected else 0.0
    last = {st.last_seq for st in fo.screens}
    scaled = w.rate != 2000 or seconds < 30
    # every screen got every tick and every tagged fix: correctness, judged in a smoke run too
    complete = gaps == 0 and len(last) == 1 and delivered >= 0.999
    status = judged(p50 <= P50_TARGET and p99 <= P99_TARGET) if complete else FAIL
    target = f"p50 ≤ {P50_TARGET:.2f} s, p99 ≤ {P99_TARGET:.1f} s" + (" (scaled load)" if scaled else "")
    table = Table(
        title=f"scale: {w.city}, {w.supervisors:,} supervisors at {w.rate:,} fixes/s via the stream → "
        f"{w.clients} "
        f"/live screens on 2 web processes, {seconds:.0f} s",
        box=box.SIMPLE_HEAVY, title_justify="left",
    )  # fmt: skip
    for col in ("fixes/s acked", "persisted", "seq gaps", "latency p50", "latency p99", "tagged seen",
                "KiB/screen/s", "target", "pass/fail"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("target", "pass/fail") else "right")
    colour = "green" if status == PASS else "bold red"
    table.add_row(
        f"{s.accepted / seconds:,.0f}", f"{fo.persisted:,}", f"{gaps:,}", f"{p50:.3f} s", f"{p99:.3f} s",
        f"{delivered:.1%}", f"{np.mean(bps) / 1024:,.1f}", target, f"[{colour}]{status}[/]",
    )  # fmt: skip
    console.print(table)
    cpu = Table(title="scale: CPU per process over the sending window (cores)", box=box.SIMPLE_HEAVY,
                title_justify="left")  # fmt: skip
    for name in fo.cores:
        cpu.add_column(name, justify="right")
    cpu.add_row(*(f"{v:.2f}" for v in fo.cores.values()))
    console.print(cpu)
    rate1, rate2 = w.consumer_fixes / one, w.consumer_fixes / two
    ing = Table(title=f"scale: sustained ingest, {w.consumer_fixes:,} fixes ({entries:,} entries of 25)",
                box=box.SIMPLE_HEAVY, title_justify="left")  # fmt: skip
    for col in ("consumers", "seconds", "fixes/s", "ratio"):
        ing.add_column(col, justify="right")
    ing.add_row("1", f"{one:.1f}", f"{rate1:,.0f}", "1.00")
    ing.add_row("2", f"{two:.1f}", f"{rate2:,.0f}", f"{rate2 / rate1:.2f}")
    console.print(ing)
    notes = [
        f"accepted {s.accepted:,} of {s.fixes:,} sent"
        + (f", rejected {dict(s.rejected)}" if s.rejected else ""),
        f"gateway ack p50 {percentile(s.ack_ms, 50):,.0f} ms (after the append)",
        f"stream backlog when sending stopped: {fo.backlog}",
        f"screens' last seq {sorted(last, key=str)}",
    ]
    if closed:
        notes.append(f"{len(closed)} screens closed: {Counter(closed).most_common(2)}")
    for line in notes:
        console.print(f"scale: {line}", highlight=False)
    summary = f"p50 {p50:.3f} s, p99 {p99:.3f} s, gaps {gaps}, {GATEWAYS} gateways on web A"
    return [
        Result("scale: stream → 2 web processes", s.accepted, seconds, "fixes", target, status, summary),
        Result("scale: ingest, 1 consumer", w.consumer_fixes, one, "fixes", "", INFO, ""),
        Result(
            "scale: ingest, 2 consumers",
            w.consumer_fixes,
            two,
            "fixes",
            "",
            INFO,
            f"ratio {rate2 / rate1:.2f}",
        ),
    ]


COUNTER_SOURCE = os.environ.get(
    "GW_BENCH_COUNTERS_DB", "postgresql+psycopg://root@127.0.0.1:5432/gw_bench_pages"
)
COUNTER_EVENTS = int(os.environ.get("GW_BENCH_COUNTERS_EVENTS", "1000000"))


def _copy_log(src: Any, dst: Any, first_case: str | None, cases: int, id_offset: int) -> tuple[int, str]:
    """Copy the logs of ``cases`` cases after ``first_case`` (by id) from ``src`` to ``dst`` with event
    ids renumbered from ``id_offset + 1`` (each case's events in order); (events copied, last case id)."""
    after = "WHERE id > %(first)s" if first_case else ""
    picked = f"SELECT id, grid_code FROM cases {after} ORDER BY id LIMIT {int(cases)}"
    with src.cursor() as cur:
        cur.execute(f"SELECT max(id) FROM ({picked}) p", {"first": first_case})
        last = cur.fetchone()[0]
    bound = {"first": first_case or "", "last": last}
    plan = [
        ("COPY (SELECT id, grid_code FROM cases WHERE id > %(first)s AND id <= %(last)s) TO STDOUT",
         "COPY cases (id, grid_code) FROM STDIN"),
        (f"COPY (SELECT {int(id_offset)} + row_number() OVER (ORDER BY e.case_id, e.seq), e.case_id, e.seq, "
         "e.action, e.actor, e.role, e.opinion, e.data, e.key, e.at FROM case_events e "
         "WHERE e.case_id > %(first)s AND e.case_id <= %(last)s) TO STDOUT",
         "COPY case_events (id, case_id, seq, action, actor, role, opinion, data, key, at) FROM STDIN"),
    ]  # fmt: skip
    with src.cursor() as out_cur, dst.cursor() as in_cur:
        for query_out, query_in in plan:
            with out_cur.copy(query_out, bound) as cout, in_cur.copy(query_in) as cin:
                for block in cout:
                    cin.write(block)
        in_cur.execute("SELECT count(*) FROM case_events WHERE id > %s", (id_offset,))
        copied = int(in_cur.fetchone()[0])
    dst.commit()
    return copied, str(last)


def counters() -> list[Result]:
    """Daily counters of the scale-out aggregator on a large case log: the full rebuild the aggregator
    did every 5 minutes before, and the incremental steps of ``feeds.counters.LogFollower``.

    The log: the first ``COUNTER_EVENTS`` (≈, whole cases) real lifecycle events of the ``desk_pages``
    benchmark's PostgreSQL database (``GW_BENCH_COUNTERS_DB``, read only), copied into a fresh schema
    of the test database with only the columns the counters read (cases: id, grid; case_events).
    """
    import psycopg
    import sqlalchemy as sa

    from domain.catalogue import load_catalogue
    from domain.lifecycle import Context
    from domain.workcalendar import load_calendar
    from feeds.counters import LogFollower
    from store.counters import MARK, load_or_rebuild
    from store.db import create_engine
    from store.models import CounterMark, DailyCounter

    def say(m: str) -> None:
        console.print(m, highlight=False)

    libpq = COUNTER_SOURCE.replace("postgresql+psycopg://", "postgresql://")
    try:
        src = psycopg.connect(libpq)
    except psycopg.OperationalError as exc:
        say(f"counters: no source database ({exc}); run python -m bench desk_pages first")
        return []
    schema = f"gw_bench_counters_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    engine = create_engine(url)
    dst = psycopg.connect(
        PG_BASE.replace("postgresql+psycopg://", "postgresql://"), options=f"-csearch_path={schema}"
    )
    try:
        with dst.cursor() as cur:
            cur.execute(
                "CREATE TABLE cases (id varchar(32) PRIMARY KEY, grid_code varchar(15));"
                "CREATE TABLE case_events (id bigint PRIMARY KEY, case_id varchar(32) NOT NULL,"
                " seq int NOT NULL, action varchar(24) NOT NULL, actor varchar(64) NOT NULL,"
                " role varchar(16) NOT NULL, opinion varchar(1000) NOT NULL, data jsonb NOT NULL,"
                " key varchar(128), at timestamptz NOT NULL);"
                "CREATE UNIQUE INDEX ix_case_events_case_seq ON case_events (case_id, seq)"
            )  # fmt: skip
        dst.commit()
        CounterMark.__table__.create(engine)  # type: ignore[attr-defined]
        DailyCounter.__table__.create(engine)  # type: ignore[attr-defined]
        with src.cursor() as cur:
            cur.execute("SELECT code, area_code FROM grids WHERE area_code IS NOT NULL")
            responsible = {g: f"sup-{a}" for g, a in cur.fetchall()}
        say(f"counters: {load_line()}")
        t = time.perf_counter()
        n, cases, last = 0, 0, None
        while n < COUNTER_EVENTS:  # whole cases, 10,000 at a time
            added, last = _copy_log(src, dst, last, 10_000, n)
            n, cases = n + added, cases + 10_000
        say(f"counters: copied {n:,} events of {cases:,} cases from {COUNTER_SOURCE.rsplit('/', 1)[1]} "
            f"in {time.perf_counter() - t:.0f} s")  # fmt: skip
        with dst.cursor() as cur:
            cur.execute("ANALYZE cases; ANALYZE case_events")
        dst.commit()
        ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
        rows: list[tuple[str, str, float, str]] = []
        # before: every 5 minutes the aggregator found the mark behind and rebuilt everything
        with engine.begin() as conn:
            conn.execute(sa.insert(CounterMark), {"name": MARK, "event_id": 0, "data": {}})
        t = time.perf_counter()
        load_or_rebuild(engine, ctx, responsible)
        old = time.perf_counter() - t
        rows.append(("before: full rebuild (load_or_rebuild, every 5 min)", f"{n:,}", old, "every 5 min"))
        follower = LogFollower(engine, ctx, responsible)
        t = time.perf_counter()
        follower.rebuild()
        rows.append(("LogFollower.rebuild (first start / heal)", f"{n:,}", time.perf_counter() - t, "rare"))
        t = time.perf_counter()
        follower.check()
        rows.append(("LogFollower.check (count ≤ mark)", f"{n:,}", time.perf_counter() - t, "every 5 min"))
        offset = follower.mark
        for more in (20, 200, 2000):  # new cases (whole logs) committed since the last step
            added, last = _copy_log(src, dst, last, more, offset)
            offset += added
            t = time.perf_counter()
            counted = follower.follow()
            took = time.perf_counter() - t
            assert counted == added, (counted, added)
            rows.append((f"LogFollower.follow: {more:,} new cases", f"{added:,}", took, "every 5 s"))
        fresh = LogFollower(engine, ctx, responsible)
        t = time.perf_counter()
        fresh.start()
        rows.append(("LogFollower.start (takeover: load saved rows)", f"{len(fresh.aggregates):,} rows",
                     time.perf_counter() - t, "per takeover"))  # fmt: skip
        same = fresh.aggregates.as_dict() == follower.aggregates.as_dict()
        table = Table(title=f"counters: CJ/T 292 daily counters from a {n:,}-event case log (PostgreSQL)",
                      box=box.SIMPLE_HEAVY, title_justify="left")  # fmt: skip
        for col in ("step", "events", "seconds", "how often"):
            table.add_column(col, justify="left" if col in ("step", "how often") else "right")
        for name, size, secs, often in rows:
            table.add_row(name, size, f"{secs:.2f}", often)
        console.print(table)
        say(f"counters: {load_line()}; reloaded rows equal the followed ones: {same}")
        status = PASS if same else FAIL
        return [Result("counters: full rebuild (before)", n, old, "events", "", INFO, ""),
                Result("counters: reload equals follow", 1, 0.0, "check", "equal", status, "")]  # fmt: skip
    finally:
        src.close()
        dst.close()
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    results = counters() if sys.argv[1:] == ["counters"] else run()
    sys.exit(1 if any(r.status == FAIL for r in results) else 0)
