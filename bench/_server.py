"""A GridWall server for the socket benchmarks: ``python -m bench._server --db URL --kiosk SECRET``.

Builds the app as ``app.py run --no-simulation`` does (``gridwall.runtime.build``) and serves it
with the same production server (``gridwall.server``: gunicorn, one gthread worker) on a free loopback
port. The database must already hold a built district and provisioned accounts.

Bench-only additions, none in production code:

* ``GET /bench/stats``: pipeline and broadcaster counters and this process's CPU seconds.
* ``--naive-wall``: the wall baseline of ``bench_wall``, a ``dcc.Interval`` Dash page at ``/naive/``
  that re-sends the full figure and panels every second (``bench._naive_wall``).
* ``--naive``: the fan-out baseline. Ticks are stopped and every accepted fix is emitted as one
  ``fix`` event to room ``wall`` of ``/live`` (from one emitter thread fed after each commit).

Prints ``READY <port>`` on stdout when it accepts connections; stops on SIGTERM or SIGINT.

The functions above ``main`` are what the benchmarks (``bench_ingest``, ``bench_fanout``) share:
preparing a city with accounts, supervisor points inside their areas, starting and stopping this
server as a subprocess and reading its CPU time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from bench import ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class City:
    """A built district with accounts, ready to serve."""

    db: Path
    kiosk: str
    gateway: str
    # supervisor id → (lon, lat, jitter radius in degrees, grid code): a point well inside one of
    # the supervisor's grids and how far a fix may stray from it without leaving that grid
    points: dict[str, tuple[float, float, float, str]]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"


def prepare_city(db: Path, request: Any) -> City:
    """Build ``request`` into a new SQLite file, provision accounts, issue a gateway token (scope *)."""
    from store.accounts import issue_token, new_secret, provision_embedded
    from store.build import build_city
    from store.db import create_engine, transaction

    engine = create_engine(f"sqlite:///{db}")
    build_city(engine, request)
    kiosk = new_secret()
    provision_embedded(engine, kiosk_secret=kiosk)
    with transaction(engine) as s:
        _, gateway = issue_token(s, "gateway", "bench gateway", scope=["*"])
    points = supervisor_points(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL
    return City(db, kiosk, gateway, points)


def copy_city(city: City, db: Path) -> City:
    """The same city in another database file (with its WAL, if one is left)."""
    shutil.copyfile(city.db, db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
        if Path(f"{city.db}{suffix}").exists():
            shutil.copyfile(f"{city.db}{suffix}", f"{db}{suffix}")
    return City(db, city.kiosk, city.gateway, city.points)


def supervisor_points(engine: Any) -> dict[str, tuple[float, float, float, str]]:
    """Per active supervisor a point on the surface of the first grid of its area (and a safe radius)."""
    import shapely
    from shapely.geometry import shape
    from sqlalchemy import func, select

    from store.models import Grid, Person

    with engine.connect() as c:
        sups = c.execute(
            select(Person.id, Person.area_code).where(
                Person.role == "supervisor", Person.active, Person.area_code.is_not(None)
            )
        ).all()
        first = dict(c.execute(select(Grid.area_code, func.min(Grid.code)).group_by(Grid.area_code)).all())
        codes = sorted({first[a] for _, a in sups if a in first})
        geoms: dict[str, Any] = {}
        for i in range(0, len(codes), 500):
            rows = c.execute(select(Grid.code, Grid.geometry).where(Grid.code.in_(codes[i : i + 500])))
            geoms.update({code: shape(g) for code, g in rows})
    order = list(geoms)
    polys = np.array([geoms[k] for k in order])
    pts = shapely.point_on_surface(polys)
    room = shapely.distance(shapely.boundary(polys), pts)
    xy = shapely.get_coordinates(pts)
    at = {
        k: (float(xy[i, 0]), float(xy[i, 1]), float(min(3e-5, 0.4 * room[i])), k) for i, k in enumerate(order)
    }
    return {sid: at[first[area]] for sid, area in sorted(sups) if area in first and first[area] in at}


def start_server(
    city: City, *, naive: bool = False, log: Path | None = None, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], int]:
    """Start ``python -m bench._server`` on ``city``; returns the process and its port."""
    cmd = [sys.executable, "-m", "bench._server", f"--db={city.url}", f"--kiosk={city.kiosk}"]
    if naive:
        cmd.append("--naive")
    cmd += extra
    err: IO[str] | int = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            return proc, int(line.split()[1])
    proc.kill()
    raise RuntimeError(f"the bench server did not start (see {log})")


def stop_server(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then wait (kill after 30 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants, all their threads (``/proc``).

    A GridWall server is gunicorn's arbiter and the worker it forked: the work is in the worker.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ValueError):
            continue
    return total + sum(cpu_seconds(c) for c in children)


def server_stats(port: int) -> dict[str, Any]:
    """``GET /bench/stats`` of a bench server."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/stats", timeout=30) as r:
        return dict(json.loads(r.read()))


def load_line() -> str:
    """The machine's load averages (the benchmarks share 2 cores with whatever else runs)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"


def percentile(values: Any, q: float) -> float:
    """The q-th percentile (NaN when there are no values)."""
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def _naive_emitter(core: Any, socketio: Any) -> dict[str, int]:
    """Replace ticks by one ``fix`` event per accepted fix to room ``wall`` (baseline)."""
    core.broadcaster.stop()
    counts = {"emitted": 0}
    q: queue.Queue[list[Any]] = queue.Queue()
    original = core.live.apply_fixes

    def apply_fixes(fixes: Any) -> None:
        original(fixes)
        q.put(list(fixes))

    core.live.apply_fixes = apply_fixes  # the pipeline calls it after each commit

    def run() -> None:
        seq = 0
        while True:
            fixes = q.get()
            for f in fixes:
                seq += 1
                socketio.emit(
                    "fix",
                    {"seq": seq, "id": f.supervisor, "at": round(f.at.timestamp() * 1000),
                     "lon": round(f.lon, 5), "lat": round(f.lat, 5), "grid": f.grid},
                    namespace="/live", to="wall",
                )  # fmt: skip
            counts["emitted"] = seq

    threading.Thread(target=run, name="bench-naive-emitter", daemon=True).start()
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._server")
    p.add_argument("--db", required=True)
    p.add_argument("--kiosk", required=True, help="the embedded kiosk token secret")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--naive", action="store_true", help="fan-out baseline: one event per fix, no ticks")
    p.add_argument("--naive-wall", action="store_true", help="wall baseline: a dcc.Interval page at /naive/")
    p.add_argument("--data-dir", default=".", help="the data folder (a basemap under it is served)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")

    from flask import jsonify

    from gridwall.runtime import Seams, build
    from gridwall.server import Served, serve
    from gridwall.settings import Settings

    def make() -> Served:  # in the server's worker process, as app.py run builds its own
        settings = Settings(Path(args.data_dir), args.db)
        core = build(settings, "embedded", Seams(media=False, secret_key="bench")).start()
        web = core.web
        web.cache.current()  # as app.py does: the page data is warm before the URLs are announced
        naive = _naive_emitter(core, web.socketio) if args.naive else {}
        if args.naive_wall:
            from bench._naive_wall import register

            register(web, core, args.kiosk)

        @web.server.get("/bench/stats")
        def stats() -> Any:
            t = os.times()
            return jsonify(
                pipeline=core.pipeline.stats,
                ticks=core.broadcaster.ticks,
                dropped=core.broadcaster.dropped,
                naive=naive,
                cpu=t.user + t.system,
                wall=time.monotonic(),
            )

        return Served(web.server, core.stop, lambda port: print(f"READY {port}", flush=True))

    return serve(make, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    sys.exit(main())
