"""HTTP API (issue 5): batch positions through ``POST /api/v1/positions``, fixes stored per second.

Setup as ``bench_ingest``: the built-in Dongcheng district in a SQLite file (WAL) in a temporary
folder, one supervisor per responsibility area (``provision_embedded``), each fix that supervisor's
point plus a jitter of a few metres, 200 ms after its previous one (every fix must be accepted), and
an API key of role ``supervisor`` (``issue_token(..., "api", role="supervisor")``: it speaks for
every supervisor). Batches of 500 fixes.

Modes, each with its own fixes:

* HTTP: a real server (``python -m bench._server``: the composition of ``app.py run
  --no-simulation``, Werkzeug's threaded server, a subprocess) and N client threads in this
  process, each with a ``requests.Session``, posting orjson bodies with ``Authorization: Bearer``
  and waiting for each answer (closed loop). After each mode the ``positions`` row count must have
  grown by the accepted fixes.
* in-process baseline: ``core.pipeline.submit("positions", batch, ApiSpeaker)`` from as many threads
  on ``gridwall.runtime.build`` (no HTTP), on a copy of the database.

Server, load generator and SQLite share the machine's 2 cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
from rich import box
from rich.table import Table

from bench import FAIL, INFO, PASS, Result, at_least, console
from bench._server import (
    City,
    copy_city,
    cpu_seconds,
    load_line,
    percentile,
    prepare_city,
    start_server,
    stop_server,
)
from bench.bench_ingest import Run as IngestRun
from bench.bench_ingest import make_fixes

N_FIXES = 200_000
BATCH = 500
STEP_MS = 200
TARGET = 10_000.0
CLIENTS = (4, 8)


@dataclass
class Run(IngestRun):
    """One mode's outcome (the ingest benchmark's, with the HTTP status of every answer)."""

    statuses: Counter[int] = field(default_factory=Counter)


def _positions(db: Path) -> int:
    from bench.bench_ingest import _positions as count

    return count(db)


def _batches(fixes: list[dict[str, Any]]) -> list[bytes]:
    numpy = orjson.OPT_SERIALIZE_NUMPY  # make_fixes rounds numpy floats
    return [orjson.dumps({"fixes": fixes[i : i + BATCH]}, option=numpy) for i in range(0, len(fixes), BATCH)]


def _http(url: str, key: str, bodies: list[bytes], clients: int) -> Run:
    run = Run("", len(bodies) * BATCH, 0.0)
    todo = iter(bodies)
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def worker() -> None:
        with requests.Session() as s:
            while True:
                with lock:
                    body = next(todo, None)
                if body is None:
                    return
                t = time.perf_counter()
                r = s.post(f"{url}/api/v1/positions", data=body, headers=headers, timeout=120)
                ms = (time.perf_counter() - t) * 1000
                ack = (
                    orjson.loads(r.content)
                    if r.headers.get("Content-Type", "").startswith("application/json")
                    else None
                )
                with lock:
                    run.latencies_ms.append(ms)
                    run.statuses[r.status_code] += 1
                    run.count(ack)

    pool = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    run.seconds = time.perf_counter() - t0
    return run


def _in_process(db: Path, key: str, modes: list[tuple[str, list[bytes], int]]) -> list[Run]:
    """``core.pipeline.submit`` from threads on ``gridwall.runtime.build`` with the API key's speaker."""
    from feeds.api import ApiSpeaker
    from gridwall.runtime import Seams, build
    from gridwall.settings import Settings
    from store.accounts import authenticate
    from store.db import create_engine

    engine = create_engine(f"sqlite:///{db}")
    seams = Seams(engine=engine, media=False, secret_key="bench")  # as app.py run composes it
    core = build(Settings(db.parent, f"sqlite:///{db}"), "embedded", seams).start()
    with engine.connect() as c:
        speaker = ApiSpeaker.of(authenticate(c, key, ("api",)))
    runs: list[Run] = []
    try:
        for mode, bodies, threads in modes:
            run = Run(mode, len(bodies) * BATCH, 0.0)
            todo = iter(bodies)
            lock = threading.Lock()

            def worker(run: Run = run, todo: Any = todo, lock: threading.Lock = lock) -> None:
                while True:
                    with lock:
                        body = next(todo, None)
                    if body is None:
                        return
                    t = time.perf_counter()
                    ack = core.pipeline.submit("positions", orjson.loads(body), speaker, source="api:bench")
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


def _table(runs: list[Run]) -> list[Result]:
    table = Table(
        title="HTTP API: batch positions stored per second (Dongcheng built-in, SQLite WAL, embedded mode)",
        box=box.SIMPLE_HEAVY, title_justify="left",
    )  # fmt: skip
    for col, right in [("mode", False), ("fixes", True), ("accepted", True), ("seconds", True),
                       ("fixes/s", True), ("answer p50", True), ("answer p99", True), ("target", False),
                       ("pass/fail", False), ("notes", False)]:  # fmt: skip
        table.add_column(col, justify="right" if right else "left")
    results = []
    for r in runs:
        ok = r.accepted == r.fixes and (r.stored is None or r.stored == r.accepted)
        status = INFO if r.target is None else (at_least(r.rate, r.target) if ok else FAIL)
        notes = []
        if r.stored is not None:
            notes.append(f"rows stored {r.stored:,} {'=' if r.stored == r.accepted else '≠'} accepted")
        if r.statuses and set(r.statuses) != {200}:
            notes.append(f"HTTP {dict(r.statuses)}")
        if r.duplicates or r.rejected:
            notes.append(f"duplicates {r.duplicates}, rejected {dict(r.rejected)}")
        if r.notes:
            notes.append(r.notes)
        colour = {PASS: "green", FAIL: "bold red"}.get(status)
        table.add_row(
            r.mode, f"{r.fixes:,}", f"{r.accepted:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f}",
            f"{percentile(r.latencies_ms, 50):,.1f} ms", f"{percentile(r.latencies_ms, 99):,.1f} ms",
            f"≥ {r.target:,.0f}/s" if r.target else "", f"[{colour}]{status}[/]" if colour else status,
            "; ".join(notes),
        )  # fmt: skip
        results.append(
            Result(f"api: {r.mode}", r.accepted, r.seconds, "fixes",
                   f"≥ {r.target:,.0f}/s" if r.target else "", status, "; ".join(notes))
        )  # fmt: skip
    console.print(table)
    return results


def _api_key(city: City) -> str:
    from store.accounts import issue_token
    from store.db import create_engine, transaction

    engine = create_engine(city.url)
    try:
        with transaction(engine) as s:
            return issue_token(s, "api", "bench api", role="supervisor")[1]
    finally:
        engine.dispose()


def run(n_fixes: int = N_FIXES) -> list[Result]:
    """Build, then each HTTP mode on one server, then the in-process baseline; print the table."""
    from store.build import BuildRequest

    def say(m: str) -> None:
        console.print(m, highlight=False)

    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-api-"))
    try:
        say(f"api: {load_line()}")
        say("api: building Dongcheng (built-in) and provisioning accounts …")
        city = prepare_city(tmp / "template.db", BuildRequest())
        key = _api_key(city)
        n_sup = len(city.points)
        n = n_fixes - n_fixes % BATCH
        starts = [k * (n + (-n) % n_sup) for k in range(len(CLIENTS) + 1)]
        base_ms = int(time.time() * 1000) - (starts[-1] // n_sup) * STEP_MS - 10_000
        bodies = [_batches(make_fixes(city.points, n, k, base_ms)) for k in starts[:-1]]

        say(f"api: in-process pipeline.submit (no HTTP), {n_sup} supervisors …")
        inproc = _in_process(
            copy_city(city, tmp / "inproc.db").db, key,
            [(f"in-process pipeline.submit, positions ×{BATCH}, {c} threads", b, c)
             for c, b in zip(CLIENTS, bodies, strict=True)],
        )  # fmt: skip

        served = copy_city(city, tmp / "server.db")
        proc, port = start_server(served, log=tmp / "server.log")
        http: list[Run] = []
        try:
            url = f"http://127.0.0.1:{port}"
            for c, b in zip(CLIENTS, bodies, strict=True):
                say(f"api: HTTP POST /api/v1/positions ×{BATCH}, {c} clients …")
                before = _positions(served.db)
                c0, u0 = cpu_seconds(proc.pid), _own_cpu()
                r = _http(url, key, b, c)
                server_cores = (cpu_seconds(proc.pid) - c0) / r.seconds
                client_cores = (_own_cpu() - u0) / r.seconds
                r.mode = f"HTTP POST /api/v1/positions ×{BATCH}, {c} clients"
                r.target, r.stored = TARGET, _positions(served.db) - before
                r.notes = f"server {server_cores:.2f} cores, load generator {client_cores:.2f} cores"
                http.append(r)
        finally:
            stop_server(proc)
        log = [ln for ln in (tmp / "server.log").read_text().splitlines() if ln.strip()]
        if log:
            say(f"server log: {len(log)} lines, last: {log[-1][:160]}")
        rows: list[Run] = []
        for h, i in zip(http, inproc, strict=True):
            rows += [h, i]
        say(f"api: {load_line()}")
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
