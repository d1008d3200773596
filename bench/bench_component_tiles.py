"""``python -m bench component_tiles``: the desk maps' 部件 layer (issue 18) with 200,000 objects.

Target: a vector tile of the layer (``GET /components/tiles/<z>/<x>/<y>.pbf``, dashboard.component_tiles)
≤ 50 ms p95 COLD (nothing cached) with the inventory loaded from SQLite. The tiles are those a desk map
of 1600 × 900 px asks for (512-px vector tiles) at each zoom 11–18 over a pan grid of 5 × 5 centres
across the district; each is asked through the real Flask blueprint (test client, the session check
passing) once cold and once warm (the cache of encoded tiles). Also: bytes per tile (gzip), and what an
update costs: the tiles' index is built once from the book (which loads 200,000 rows from SQLite); after
a move it is patched with the changed objects read from the store.

The inventory is GENERATED (tests/component_inventory.py; no public one is at hand): objects of common
classes along the real Dongcheng roads of ``shared/data/roads/dongcheng_roads_gcj02.geojson``, imported
into a SQLite file of the built-in Dongcheng under a temporary folder.

``--smoke``: 2,000 objects and zooms 13, 16 and 18 over a 2 × 2 grid, same code.
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import FAIL, INFO, SKIP, Result, judged, print_table, shared_dir, stopwatch

N_FULL = 200_000
N_SMOKE = 2_000
TILE_TARGET_MS = 50.0
VIEW_PX = (1600, 900)


def _view_tiles(lon: float, lat: float, z: int) -> list[tuple[int, int]]:
    """The 512-px tiles of zoom ``z`` a 1600 × 900 map centred on (lon, lat) asks for."""
    n = 1 << z
    cx = (lon + 180.0) / 360.0 * n
    cy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    hx, hy = VIEW_PX[0] / 2 / 512, VIEW_PX[1] / 2 / 512
    xs = range(max(0, int(cx - hx)), min(n - 1, int(cx + hx)) + 1)
    ys = range(max(0, int(cy - hy)), min(n - 1, int(cy + hy)) + 1)
    return [(x, y) for x in xs for y in ys]


def _p95_ms(seconds: list[float]) -> float:
    return float(np.percentile(seconds, 95)) * 1000


def _after_a_move(
    engine: Any, index: Any, server: Any, client: Any, code: str, lon: float, lat: float
) -> list[Result]:
    """An object moved 50 m (the desk's 移动, through ``store.components.apply_update``): the page names
    the store's new version at once; the tiles are patched with the changed objects (no reload) and the
    tile at the new place holds the object there."""
    from dashboard.component_tiles import LEVEL, SINGLE_ZOOM, world_xy
    from store.components import apply_update, inventory_version

    lon2, lat2 = lon + 0.0005, lat + 0.0002
    hit = index.locate(lon2, lat2)
    geometry = json.dumps({"type": "Point", "coordinates": [lon2, lat2]})
    with engine.begin() as conn:
        apply_update(conn, {"id": code, "action": "move", "geometry": geometry, "lon": lon2, "lat": lat2,
                            "grid_code": hit.grid if hit else None}, datetime.now(UTC), "bench")  # fmt: skip
    with engine.connect() as conn:
        version = inventory_version(conn)
    with stopwatch() as t:
        server.current(version)
    wx, wy = world_xy([lon2], [lat2])
    z = SINGLE_ZOOM + 1
    x, y = int(wx[0]) >> (LEVEL - z), int(wy[0]) >> (LEVEL - z)
    with stopwatch() as t2:
        r = client.get(f"/components/tiles/{z}/{x}/{y}.pbf?v={version}")
    ok = r.status_code == 200 and code.encode() in gzip.decompress(r.get_data())
    return [Result("after a move: the tiles patched from the store (1 object changed)", 1, t[0], "updates",
                   status=INFO if ok else FAIL,
                   notes=f"then the tile at its new place, cold: {t2[0] * 1000:.1f} ms"
                   + ("" if ok else " — THE OBJECT IS NOT IN IT"))]  # fmt: skip


# the map inside the page's Plotly graph, and one view change timed until MapLibre is idle (every tile of
# the view loaded and drawn); frame intervals (requestAnimationFrame) while the map eases across a pan
MAP_JS = """() => document.querySelector('#gw-desk-map .js-plotly-plot')._fullLayout.map._subplot.map"""
VIEW_JS = f"""async ([lon, lat, z]) => {{ const m = ({MAP_JS})(); const t0 = performance.now();
  const idle = new Promise(r => m.once('idle', r)); m.jumpTo({{center: [lon, lat], zoom: z}});
  await idle; return performance.now() - t0; }}"""
EASE_JS = f"""async ([lon, lat]) => {{ const m = ({MAP_JS})(); const stamps = [];
  let on = true; const tick = (t) => {{ stamps.push(t); if (on) requestAnimationFrame(tick); }};
  requestAnimationFrame(tick); const done = new Promise(r => m.once('moveend', r));
  m.easeTo({{center: [lon, lat], duration: 1500}}); await done; on = false;
  await new Promise(r => m.once('idle', r));
  return stamps.slice(1).map((t, i) => t - stamps[i]); }}"""
SHOW_JS = f"""(show) => {{ const m = ({MAP_JS})();
  for (const l of m.getStyle().layers) if (l.id.startsWith('plotly-layout-layer-'))
    m.setLayoutProperty(l.id, 'visibility', show ? 'visible' : 'none');
  return new Promise(r => m.once('idle', r)); }}"""


def _browser(
    engine: Any, centres: list[tuple[float, float]], zooms: tuple[int, ...], grid: str
) -> list[Result]:
    """The grid page of a desk in headless Chromium (software GL): each view of the pan grid at each
    zoom timed until drawn, and the frame intervals of eased pans, with the 部件 layer shown and hidden."""
    import shutil
    import threading

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from gridwall.runtime import Seams, build
    from gridwall.settings import Settings
    from store.accounts import provision_embedded
    from tests.conftest import CHROMIUM_ARGS
    from tests.desk_login import add_desk_user, login_browser
    from tests.live_server import KIOSK_SECRET, QuietHandler, free_port

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return [Result("Chromium pan/zoom", None, None, status=SKIP, notes="no chromium")]
    provision_embedded(engine, kiosk_secret=KIOSK_SECRET)
    add_desk_user(engine, "bench-adm", "bench-password-0123", "admin")
    seams = Seams(engine=engine, patrol_every=timedelta(0), media=False, secret_key="bench-ctiles")
    core = build(Settings(Path("."), str(engine.url), interval=1.0), "embedded", seams).start()
    http = make_server("127.0.0.1", port := free_port(), core.web.server, threaded=True,
                       request_handler=QuietHandler)  # fmt: skip
    threading.Thread(target=http.serve_forever, daemon=True).start()
    rows: list[Result] = []
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = b.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            login_browser(page, f"http://127.0.0.1:{port}", "bench-adm", "bench-password-0123",
                          next_path=f"/grid/{grid}")  # fmt: skip
            page.wait_for_selector("#gw-desk-map .maplibregl-canvas", timeout=120_000)
            page.wait_for_function(f"() => ({MAP_JS})().loaded()", timeout=120_000)
            for shown in (True, False):
                page.evaluate(SHOW_JS, shown)
                label = "with the 部件 layer" if shown else "layer hidden (the map alone)"
                for z in zooms:
                    times = [float(page.evaluate(VIEW_JS, [c[0], c[1], z])) for c in centres]
                    p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
                    rows.append(Result(f"Chromium, z{z}, {label}: view change → drawn", len(times),
                                       sum(times) / 1000, "views",
                                       notes=f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"))  # fmt: skip
                page.evaluate(VIEW_JS, [centres[0][0], centres[0][1], 15])
                frames = [f for c in centres[1:4] for f in page.evaluate(EASE_JS, [c[0], c[1]])]
                rows.append(Result(
                    f"Chromium, z15, {label}: frame interval during eased pans", len(frames),
                    sum(frames) / 1000, "frames",
                    notes=f"p50 {np.percentile(frames, 50):.0f} ms, p95 {np.percentile(frames, 95):.0f} ms "
                    f"(software GL, headless)",
                ))  # fmt: skip
            b.close()
    finally:
        http.shutdown()
        core.stop()
    return rows


def run(smoke: bool = False, browser: bool = True) -> list[Result]:
    """Run the tile benchmark, print its table and return the rows."""
    from flask import Flask

    from bench.bench_components import _district
    from dashboard.component_tiles import SINGLE_ZOOM, component_tiles_blueprint
    from domain.catalogue import load_catalogue
    from store.components import ComponentBook, import_components
    from tests.component_inventory import ROADS, generate

    n = N_SMOKE if smoke else N_FULL
    shared = shared_dir()
    title = f"component tiles (issue 18): {n:,} generated objects"
    if not (shared / ROADS).exists():
        rows = [Result("component tiles", None, None, status=SKIP, notes=f"no {shared / ROADS}")]
        print_table(title, rows)
        return rows
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-ctiles-") as d:
        folder = Path(d)
        engine, index = _district(f"sqlite:///{folder / 'gridwall.db'}")
        try:
            inv = generate(shared, n, inside=lambda x, y: index.lookup_indices(x, y) >= 0)
            csv_path = inv.write_csv(folder / "inventory_gcj02.csv")
            with stopwatch() as t:
                s = import_components(engine, csv_path, index, load_catalogue("cjt214"), "110101")
            results.append(Result("import into SQLite (setup)", s.added, t[0], "objects",
                                  status=INFO if s.added == n else FAIL))  # fmt: skip
            book = ComponentBook(engine, check_every_s=3600.0)
            app = Flask("bench-component-tiles")
            bp = component_tiles_blueprint(lambda: book, lambda: True)
            app.register_blueprint(bp)
            server = bp.tile_server  # type: ignore[attr-defined]
            client = app.test_client()
            with stopwatch() as t:
                version = book.inventory().version
            with stopwatch() as t2:
                server.current(version)
            results.append(Result(
                "first use: the book loads the inventory from SQLite", n, t[0], "objects",
                notes="store.components.ComponentBook (shared with the nearest lookup)",
            ))  # fmt: skip
            results.append(Result(
                "first use: the tiles' index (Morton sort, per-object tags)", n, t2[0], "objects",
                notes="once; then patched per update (below)",
            ))  # fmt: skip
            x0, x1 = float(inv.lon.min()), float(inv.lon.max())
            y0, y1 = float(inv.lat.min()), float(inv.lat.max())
            steps = 2 if smoke else 5
            centres = [(x0 + (x1 - x0) * (i + 0.5) / steps, y0 + (y1 - y0) * (j + 0.5) / steps)
                       for i in range(steps) for j in range(steps)]  # fmt: skip
            zooms = (13, 16, 18) if smoke else tuple(range(11, 19))
            all_cold: list[float] = []
            all_cpu: list[float] = []
            for z in zooms:
                tiles = sorted({t for c in centres for t in _view_tiles(c[0], c[1], z)})
                cold: list[float] = []
                warm: list[float] = []
                cpu: list[float] = []  # the cold requests' CPU time (this thread): others' load left out
                sizes: list[int] = []
                empty = objects = 0
                for attempt in (cold, warm):
                    for x, y in tiles:
                        t0, c0 = time.perf_counter(), time.thread_time()
                        r = client.get(f"/components/tiles/{z}/{x}/{y}.pbf?v={version}")
                        body = r.get_data()
                        attempt.append(time.perf_counter() - t0)
                        if attempt is cold:
                            cpu.append(time.thread_time() - c0)
                        if attempt is cold:
                            if r.status_code == 204:
                                empty += 1
                            elif r.status_code == 200:
                                sizes.append(len(body))
                                objects += server.current().count(z, x, y)
                            else:
                                raise AssertionError(f"tile {z}/{x}/{y}: HTTP {r.status_code}")
                all_cold += cold
                all_cpu += cpu
                c50, c95 = (float(np.percentile(cold, q)) * 1000 for q in (50, 95))
                w50, w95 = (float(np.percentile(warm, q)) * 1000 for q in (50, 95))
                kind = "objects" if z >= SINGLE_ZOOM else "clusters"
                size = f"{np.mean(sizes) / 1024:.1f} KB mean, {max(sizes) / 1024:.1f} KB max" if sizes else ""
                results.append(Result(
                    f"z{z} ({kind}): {len(tiles)} tiles of a pan grid, cold", len(tiles), float(sum(cold)),
                    "tiles", f"p95 ≤ {TILE_TARGET_MS:g} ms", judged(c95 <= TILE_TARGET_MS),
                    f"cold p50 {c50:.1f} / p95 {c95:.1f} ms (CPU p95 {_p95_ms(cpu):.1f} ms); "
                    f"warm p50 {w50:.2f} / p95 {w95:.2f} ms; "
                    f"{size or '-'} gzip; {empty} empty (204); "
                    f"{objects / max(1, len(sizes)):,.0f} objects/tile",
                ))  # fmt: skip
            first = (inv.ids[0], float(inv.lon[0]), float(inv.lat[0]))
            results += _after_a_move(engine, index, server, client, *first)
            p95 = float(np.percentile(all_cold, 95)) * 1000
            results.append(Result(
                f"all zooms {zooms[0]}–{zooms[-1]}, cold", len(all_cold), float(sum(all_cold)), "tiles",
                f"p95 ≤ {TILE_TARGET_MS:g} ms", judged(p95 <= TILE_TARGET_MS),
                f"p50 {float(np.percentile(all_cold, 50)) * 1000:.1f} ms, p95 {p95:.1f} ms, "
                f"max {max(all_cold) * 1000:.1f} ms; CPU p95 {_p95_ms(all_cpu):.1f} ms",
            ))  # fmt: skip
            if browser:
                hit = index.locate(*centres[len(centres) // 2])
                views = (14, 16) if smoke else (12, 14, 16, 18)
                results += _browser(engine, centres, views, hit.grid) if hit else []
        finally:
            engine.dispose()
    print_table(title, results)
    return results
