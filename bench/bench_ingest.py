"""Ingest (issue 4): fixes per second through ``/device`` into the ``positions`` table, end to end.

Setup: the built-in Dongcheng district (``build_city(engine, BuildRequest())``) in a SQLite file in
WAL mode in a temporary folder, accounts by ``provision_embedded`` (one supervisor ``sup-<area>``
per responsibility area) and a gateway token with scope ``*`` from ``issue_token``. Each
supervisor gets a point well inside the first grid of its area; every fix is that point plus a
jitter of a few metres, its instant an epoch-millisecond time in the last minutes, 200 ms after the
supervisor's previous one (no duplicates, speeds far below 200 km/h). Every fix must be accepted.

Modes, each with the same fixes (one server; the baselines on their own copy of the database):

* socket, ``positions`` batches of 100: a real server (``python -m bench._server``: the
  composition of ``app.py run --no-simulation`` served by Werkzeug's threaded server, a
  subprocess) and python-socketio ``AsyncClient`` gateways in this process, several calls in
  flight, each waiting for its acknowledgement (``client.call``);
* socket, single ``position`` events, 32 in flight over 16 connections (group commit batches them);
* in-process: ``core.pipeline.submit(...)`` from as many threads on ``gridwall.runtime.build`` (no socket);
* bare insert: ``connection.execute(insert(Position), rows)`` of the same rows, 100 per transaction.

Ack latency is send → acknowledgement per event. After each socket mode the ``positions`` row
count must equal the fixes accepted so far. Server, load generator and SQLite share the 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import socketio
from rich import box
from rich.table import Table

from bench import FAIL, INFO, PASS, Result, at_least, console
from bench._server import (
    copy_city,
    cpu_seconds,
    load_line,
    percentile,
    prepare_city,
    start_server,
    stop_server,
)

N_BATCHED = 200_000
BATCH = 100
N_SINGLE = 15_000
STEP_MS = 200
SEED = 20261127
BATCH_TARGET, SINGLE_TARGET = 20_000.0, 2_000.0
Event = tuple[str, dict[str, Any]]


@dataclass
class Run:
    """One mode's outcome."""

    mode: str
    fixes: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stored: int | None = None
    target: float | None = None
    notes: str = ""

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def count(self, ack: Any) -> None:
        if not isinstance(ack, dict):
            self.rejected["no_ack"] += 1
            return
        self.accepted += len(ack.get("accepted", ()))
        self.duplicates += len(ack.get("duplicates", ()))
        for r in ack.get("rejected", ()):
            self.rejected[str(r.get("reason"))] += 1


def make_fixes(
    points: dict[str, tuple[float, float, float, str]], n: int, start: int, base_ms: int
) -> list[dict]:
    """``n`` fixes round-robin over the supervisors; the k-th overall fix of a supervisor at base + k·step."""
    rng = np.random.default_rng(SEED + start)
    sups = sorted(points)
    jitter = rng.uniform(-1.0, 1.0, size=(n, 2))
    out = []
    for i in range(n):
        k = start + i
        sid = sups[k % len(sups)]
        lon, lat, r, _ = points[sid]
        out.append(
            {"supervisor": sid, "at": base_ms + (k // len(sups)) * STEP_MS,
             "lon": round(lon + r * jitter[i, 0], 7), "lat": round(lat + r * jitter[i, 1], 7)}
        )  # fmt: skip
    return out


def batched(fixes: list[dict]) -> list[Event]:
    return [("positions", {"fixes": fixes[i : i + BATCH]}) for i in range(0, len(fixes), BATCH)]


def singles(fixes: list[dict]) -> list[Event]:
    return [("position", f) for f in fixes]


# -- through the socket ------------------------------------------------------------------------------


async def _socket_load(url: str, token: str, events: list[Event], connections: int, inflight: int) -> Run:
    clients = []
    for _ in range(connections):
        c = socketio.AsyncClient(reconnection=False, request_timeout=120)
        await c.connect(url, namespaces=["/device"], auth={"token": token}, transports=["websocket"],
                        wait_timeout=30)  # fmt: skip
        clients.append(c)
    run = Run("", sum(len(p["fixes"]) if k == "positions" else 1 for k, p in events), 0.0)
    todo = iter(events)

    async def worker(c: socketio.AsyncClient) -> None:
        for kind, payload in todo:
            t = time.perf_counter()
            try:
                ack = await c.call(kind, payload, namespace="/device", timeout=120)
            except socketio.exceptions.TimeoutError:
                ack = None
            run.latencies_ms.append((time.perf_counter() - t) * 1000)
            run.count(ack)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients for _ in range(inflight)))
    run.seconds = time.perf_counter() - t0
    for c in clients:
        await c.disconnect()
    return run


def _positions(db: Path) -> int:
    from sqlalchemy import func, select

    from store.db import create_engine
    from store.models import Position

    engine = create_engine(f"sqlite:///{db}", write=False)
    try:
        with engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(Position)) or 0)
    finally:
        engine.dispose()


# -- baselines -----------------------------------------------------------------------------------------


def _in_process(db: Path, gateway: str, modes: list[tuple[str, list[Event], int]]) -> list[Run]:
    """``core.pipeline.submit`` from threads on ``gridwall.runtime.build`` (app.py's parts, no socket)."""
    from gridwall.runtime import Seams, build
    from gridwall.settings import Settings
    from store.accounts import authenticate
    from store.db import create_engine

    engine = create_engine(f"sqlite:///{db}")
    seams = Seams(engine=engine, media=False, secret_key="bench")  # as app.py run composes it
    core = build(Settings(db.parent, f"sqlite:///{db}"), "embedded", seams).start()
    with engine.connect() as c:
        speaker = authenticate(c, gateway, ("gateway",))
    runs: list[Run] = []
    try:
        for mode, events, threads in modes:
            run = Run(mode, sum(len(p["fixes"]) if k == "positions" else 1 for k, p in events), 0.0)
            todo = iter(events)
            lock = threading.Lock()

            def worker(run: Run = run, todo: Any = todo, lock: threading.Lock = lock) -> None:
                while True:
                    with lock:
                        nxt = next(todo, None)
                    if nxt is None:
                        return
                    t = time.perf_counter()
                    ack = core.pipeline.submit(nxt[0], nxt[1], speaker, source="gateway:bench gateway")
                    with lock:
                        run.latencies_ms.append((time.perf_counter() - t) * 1000)
                        run.count(ack)

            pool = [threading.Thread(target=worker) for _ in range(threads)]
            t0 = time.perf_counter()
            for th in pool:
                th.start()
            for th in pool:
                th.join()
            run.seconds = time.perf_counter() - t0
            run.stored = _positions(db) - sum(r.accepted for r in runs)
            runs.append(run)
    finally:
        core.stop()
        engine.dispose()
    return runs


def _bare_insert(db: Path, fixes: list[dict], points: dict[str, tuple[float, float, float, str]]) -> Run:
    """The floor: SQLAlchemy executemany of the same rows, ``BATCH`` rows per transaction."""
    from sqlalchemy import insert

    from store.db import create_engine
    from store.models import Position

    now = datetime.now(UTC)
    rows = [
        {"supervisor_id": f["supervisor"], "at": datetime.fromtimestamp(f["at"] / 1000, UTC),
         "received_at": now, "lon": f["lon"], "lat": f["lat"], "accuracy": None, "speed": None,
         "grid_code": points[f["supervisor"]][3], "source": "device"}
        for f in fixes
    ]  # fmt: skip
    engine = create_engine(f"sqlite:///{db}")
    run = Run(f"bare insert(Position) executemany, {BATCH} rows per transaction", len(rows), 0.0)
    try:
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with engine.begin() as c:
                c.execute(insert(Position), rows[i : i + BATCH])
        run.seconds = time.perf_counter() - t0
    finally:
        engine.dispose()
    run.accepted = len(rows)
    run.stored = _positions(db)
    return run


# -- the benchmark -------------------------------------------------------------------------------------


def _table(runs: list[Run]) -> list[Result]:
    table = Table(
        title="ingest: fixes stored per second (Dongcheng built-in, SQLite WAL, embedded mode)",
        box=box.SIMPLE_HEAVY, title_justify="left",
    )  # fmt: skip
    for col, right in [("mode", False), ("fixes", True), ("accepted", True), ("seconds", True),
                       ("fixes/s", True), ("ack p50", True), ("ack p99", True), ("target", False),
                       ("pass/fail", False), ("notes", False)]:  # fmt: skip
        table.add_column(col, justify="right" if right else "left")
    results = []
    for r in runs:
        ok = r.accepted == r.fixes and (r.stored is None or r.stored == r.accepted)
        status = INFO if r.target is None else (at_least(r.rate, r.target) if ok else FAIL)
        lat = (f"{percentile(r.latencies_ms, 50):,.1f} ms", f"{percentile(r.latencies_ms, 99):,.1f} ms")
        notes = []
        if r.stored is not None:
            notes.append(f"rows stored {r.stored:,} {'=' if r.stored == r.accepted else '≠'} accepted")
        if r.duplicates or r.rejected:
            notes.append(f"duplicates {r.duplicates}, rejected {dict(r.rejected)}")
        if r.notes:
            notes.append(r.notes)
        colour = {PASS: "green", FAIL: "bold red"}.get(status)
        table.add_row(
            r.mode, f"{r.fixes:,}", f"{r.accepted:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f}",
            lat[0] if r.latencies_ms else "", lat[1] if r.latencies_ms else "",
            f"≥ {r.target:,.0f}/s" if r.target else "", f"[{colour}]{status}[/]" if colour else status,
            "; ".join(notes),
        )  # fmt: skip
        results.append(
            Result(f"ingest: {r.mode}", r.accepted, r.seconds, "fixes",
                   f"≥ {r.target:,.0f}/s" if r.target else "", status, "; ".join(notes))
        )  # fmt: skip
    console.print(table)
    return results


@dataclass(frozen=True)
class Mode:
    """One way of sending: kind, the connections (threads in process) and the calls in flight on each."""

    label: str
    single: bool
    connections: int
    inflight: int
    target: float


MODES = (
    Mode(f"positions ×{BATCH}", False, 4, 4, BATCH_TARGET),
    Mode("single position", True, 16, 2, SINGLE_TARGET),
    Mode("single position", True, 32, 4, SINGLE_TARGET),
)


def run(n_batched: int = N_BATCHED, n_single: int = N_SINGLE) -> list[Result]:
    """Build, then each mode in process and through the socket, then the bare insert; print the table."""
    from store.build import BuildRequest

    def say(m: str) -> None:
        console.print(m, highlight=False)

    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-ingest-"))
    try:
        say(f"ingest: {load_line()}")
        say("ingest: building Dongcheng (built-in) and provisioning accounts …")
        city = prepare_city(tmp / "template.db", BuildRequest())
        n_sup = len(city.points)
        sizes = [n_single if m.single else n_batched for m in MODES]
        starts = [0]
        for n in sizes:  # each mode's fixes start on a new round of the supervisors
            starts.append(starts[-1] + n + (-n) % n_sup)
        base_ms = int(time.time() * 1000) - (starts[-1] // n_sup) * STEP_MS - 10_000
        fixes = [make_fixes(city.points, n, k, base_ms) for n, k in zip(sizes, starts, strict=False)]
        events = [singles(f) if m.single else batched(f) for m, f in zip(MODES, fixes, strict=True)]
        rows: list[Run] = []

        say("ingest: in-process pipeline (no socket) …")
        inproc = _in_process(
            copy_city(city, tmp / "inproc.db").db, city.gateway,
            [(f"in-process pipeline.submit, {m.label}, {m.connections * m.inflight} threads", ev,
              m.connections * m.inflight) for m, ev in zip(MODES, events, strict=True)],
        )  # fmt: skip

        say(f"ingest: socket server, {n_sup} supervisors …")
        served = copy_city(city, tmp / "server.db")
        proc, port = start_server(served, log=tmp / "server.log")
        sock: list[Run] = []
        try:
            url = f"http://127.0.0.1:{port}"
            for m, ev in zip(MODES, events, strict=True):
                say(f"ingest: socket, {m.label}, {m.connections} connections × {m.inflight} in flight …")
                before = _positions(served.db)
                c0, u0 = cpu_seconds(proc.pid), _own_cpu()
                r = asyncio.run(_socket_load(url, city.gateway, ev, m.connections, m.inflight))
                server_cores = (cpu_seconds(proc.pid) - c0) / r.seconds
                client_cores = (_own_cpu() - u0) / r.seconds
                r.mode = f"socket /device {m.label}, {m.connections} connections × {m.inflight} in flight"
                r.target, r.stored = m.target, _positions(served.db) - before
                r.notes = f"server {server_cores:.2f} cores, load generator {client_cores:.2f} cores"
                sock.append(r)
        finally:
            stop_server(proc)
        log = [ln for ln in (tmp / "server.log").read_text().splitlines() if ln.strip()]
        if log:
            say(f"server log: {len(log)} lines, last: {log[-1][:160]}")

        say(f"ingest: bare insert of {n_batched:,} rows …")
        bare = _bare_insert(copy_city(city, tmp / "bare.db").db, fixes[0], city.points)
        for s_run, i_run in zip(sock, inproc, strict=True):
            rows += [s_run, i_run]
        rows.append(bare)
        say(f"ingest: {load_line()}")
        return _table(rows)
    finally:
        if not os.environ.get("GW_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


if __name__ == "__main__":
    import sys

    results = run()
    sys.exit(1 if any(r.status == FAIL for r in results) else 0)
