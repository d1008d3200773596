"""Basemap tiles from one process (issue 17): vector tiles from MBTiles and PMTiles, and label tiles.

Setup: the built-in Dongcheng district in a SQLite file, and a data folder whose basemap is the
Dongcheng roads of ``../shared/data/roads`` (GCJ-02, converted on import, cut into vector tiles z10–16
by ``app.py import basemap``'s own code) and the same tiles converted to PMTiles by the ``pmtiles``
library. The server is ``python -m bench._server --data-dir`` (gunicorn, one gthread worker: one
process). Client processes (aiohttp, a light client: keep-alive connections with the wall's kiosk
cookie, as a wall's browser asks) fetch tiles that exist, in random order, for a fixed time.

Measured: tiles per second and latency (p50/p95) per source; CPU cores of the server and so the tiles
per server CPU-second (what one process can give when its clients are not starved of CPU, as they are
on a loaded 2-core machine). Target: ≥ 500 tiles/s from one process for the vector tiles. Label tiles
are drawn by the server (a font, a PNG): their first drawing and their cached answers, no target.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import INFO, SKIP, Result, at_least, console, print_table, shared_data
from bench._server import cpu_seconds, load_line, percentile, prepare_city, start_server, stop_server

TARGET_TILES_S = 500.0
SECONDS, SMOKE_SECONDS = 20.0, 2.0
PROCS, THREADS = 2, 8  # client processes × connections each


def say(m: str) -> None:
    console.print(m, highlight=False)


def _client(base: str, kiosk: str, urls: list[str], seconds: float, conns: int, out: Any) -> None:
    """One client process: ``conns`` keep-alive connections (aiohttp) fetching ``urls`` at random until
    time is up, with the wall's kiosk cookie. A light client, so that the server is what is measured."""
    import asyncio

    import aiohttp

    async def main() -> tuple[list[float], int]:
        lat: list[float] = []
        bad = 0
        end = time.monotonic() + seconds
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        limits = aiohttp.TCPConnector(limit=conns)
        async with aiohttp.ClientSession(cookie_jar=jar, connector=limits) as s:
            async with s.get(f"{base}/wall?token={kiosk}") as r:  # the kiosk cookie, as a wall has it
                await r.read()

            async def work(seed: int) -> None:
                nonlocal bad
                rnd = random.Random(seed)
                while time.monotonic() < end:
                    t0 = time.perf_counter()
                    async with s.get(rnd.choice(urls)) as r:
                        body = await r.read()
                    lat.append(time.perf_counter() - t0)
                    bad += r.status != 200 or not body

            await asyncio.gather(*(work(i) for i in range(conns)))
        return lat, bad

    out.put(asyncio.run(main()))


def _hammer(
    base: str, kiosk: str, urls: list[str], seconds: float, procs: int, threads: int
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=_client, args=(base, kiosk, urls, seconds, threads, q)) for _ in range(procs)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    lat: list[float] = []
    bad = 0
    for _ in ps:
        got, b = q.get(timeout=seconds + 120)
        lat += got
        bad += b
    for p in ps:
        p.join()
    return {"n": len(lat), "bad": bad, "seconds": time.monotonic() - t0, "lat": lat}


def run(smoke: bool = False) -> list[Result]:
    """Import the basemap, serve it from one process, fetch tiles for a while; print the table."""
    from pmtiles.convert import mbtiles_to_pmtiles

    from store.basemap import import_layer
    from store.build import BuildRequest

    roads = shared_data() / "roads" / "dongcheng_roads_gcj02.geojson"
    if not roads.exists():
        return [Result("tiles", None, None, status=SKIP, notes=f"no {roads}")]
    seconds = SMOKE_SECONDS if smoke else SECONDS
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-tiles-"))
    proc = None
    try:
        say(f"tiles: {load_line()}")
        data = tmp / "var"
        t = time.perf_counter()
        done = import_layer(data, roads, name="roads", minzoom=10, maxzoom=16 if not smoke else 13)
        import_s = time.perf_counter() - t
        say(f"tiles: roads cut into {done.layer.tiles:,} vector tiles in {import_s:.1f} s")
        mbt = data / "basemap" / "roads.mbtiles"
        mbtiles_to_pmtiles(str(mbt), str(tmp / "roadspm.pmtiles"), done.layer.maxzoom)
        import_layer(data, tmp / "roadspm.pmtiles", name="roadspm")
        with sqlite3.connect(mbt) as db:
            rows = db.execute(
                "SELECT zoom_level, tile_column, tile_row FROM tiles WHERE zoom_level >= 12"
            ).fetchall()
        xyz = [(z, x, (1 << z) - 1 - r) for z, x, r in rows]
        city = prepare_city(tmp / "tiles.db", BuildRequest())
        proc, port = start_server(city, log=tmp / "server.log", extra=(f"--data-dir={data}",))
        base = f"http://127.0.0.1:{port}"
        results: list[Result] = [
            Result("tiles: import roads (GeoJSON → vector MBTiles)", done.layer.tiles, import_s, "tiles",
                   notes=f"{done.layer.features:,} roads, z10–{done.layer.maxzoom}"),
        ]  # fmt: skip
        for label, name in (("MBTiles", "roads"), ("PMTiles", "roadspm")):
            urls = [f"{base}/basemap/tiles/{name}/{z}/{x}/{y}.pbf" for z, x, y in xyz]
            c0 = cpu_seconds(proc.pid)
            got = _hammer(base, city.kiosk, urls, seconds, PROCS, THREADS)
            cores = (cpu_seconds(proc.pid) - c0) / got["seconds"]
            rate = got["n"] / got["seconds"]
            lat = got["lat"]
            results.append(Result(
                f"tiles: vector tiles, {label}", got["n"], got["seconds"], "tiles",
                f"≥ {TARGET_TILES_S:.0f} tiles/s", "FAIL" if got["bad"] else at_least(rate, TARGET_TILES_S),
                f"p50 {percentile(lat, 50) * 1e3:.1f} ms, p95 {percentile(lat, 95) * 1e3:.1f} ms; "
                f"server {cores:.2f} cores ({got['n'] / max(cores * got['seconds'], 1e-9):,.0f} tiles per "
                f"server CPU-second); {got['bad']} not 200; {PROCS}×{THREADS} connections",
            ))  # fmt: skip
        # label tiles: first drawings (z16 tiles over the roads), then the same again (cached)
        import requests

        s = requests.Session()
        s.get(f"{base}/wall?token={city.kiosk}", timeout=30)
        z16 = [(z, x, y) for z, x, y in xyz if z == 16][: (20 if smoke else 200)] or [
            (16, x << (16 - z), y << (16 - z)) for z, x, y in xyz[:20]
        ]
        for what in ("first drawing", "cached"):
            times, drawn = [], 0
            for z, x, y in z16:
                t0 = time.perf_counter()
                r = s.get(f"{base}/basemap/labels/{z}/{x}/{y}.png", timeout=30)
                times.append(time.perf_counter() - t0)
                drawn += r.status_code == 200
            results.append(Result(
                f"tiles: label tiles z16, {what}", len(times), sum(times), "tiles", "", INFO,
                f"p50 {statistics.median(times) * 1e3:.1f} ms, p95 {percentile(times, 95) * 1e3:.1f} ms; "
                f"{drawn} with names, {len(times) - drawn} empty (204)",
            ))  # fmt: skip
        print_table("Basemap tiles from one process (issue 17)", results)
        return results
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
