"""The desk maps' 部件 layer (issue 18): vector tiles of the inventory, clustered below zoom 16, on the
component and grid pages; an admin moves an object by clicking the component page's map, and the page's
history and the map's rendered features show it at its new place (real Chromium, SQLite and PostgreSQL).

The inventory is GENERATED here (tests/component_inventory.py): objects of common classes placed along
the real Dongcheng roads of ``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02), with
owners from the department list; no public inventory is at hand.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import numpy as np
import pytest
import requests
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from dashboard import ids
from dashboard.component_tiles import LEVEL, SINGLE_ZOOM, ComponentTiles, world_xy
from domain.catalogue import load_catalogue
from gridwall.runtime import Runtime, Seams, build
from gridwall.settings import Settings
from store.accounts import provision_embedded
from store.components import Loaded, import_components, inventory_version
from tests.component_inventory import ROADS, Generated, generate
from tests.conftest import ARTIFACTS, SHARED, require
from tests.desk_login import add_desk_user, login_browser, login_http
from tests.live_server import KIOSK_SECRET, QuietHandler, free_port
from tests.test_address_desk import _components, _page

PASSWORD = "desk-password-0123"
N = 600


@dataclass
class Desk:
    url: str
    core: Runtime
    inv: Generated
    engine: Engine


@pytest.fixture(scope="module")
def desk(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    if not (SHARED / ROADS).exists():
        require("../shared/data/roads/dongcheng_roads_gcj02.geojson (the Dongcheng roads)")
    provision_embedded(city_engine, kiosk_secret=KIOSK_SECRET)
    add_desk_user(city_engine, "adm-map", PASSWORD, "admin")
    seams = Seams(engine=city_engine, patrol_every=timedelta(0), media=False, secret_key="component-map")
    core = build(Settings(Path("."), str(city_engine.url), interval=0.2), "embedded", seams).start()
    port = free_port()
    http = make_server("127.0.0.1", port, core.web.server, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    index = core.pipeline.index
    inv = generate(
        SHARED, N, seed=31, inside=lambda x, y: np.asarray([g is not None for g in index.lookup(x, y)])
    )
    path = inv.write_csv(tmp_path_factory.mktemp("map_components") / "inventory_gcj02.csv")
    assert import_components(city_engine, path, index, load_catalogue("cjt214"), "110101").rejected_count == 0
    yield Desk(f"http://127.0.0.1:{port}", core, inv, city_engine)
    http.shutdown()
    thread.join(timeout=10)
    core.stop()


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    wx, wy = world_xy([lon], [lat])
    return int(wx[0]) >> (LEVEL - z), int(wy[0]) >> (LEVEL - z)


def _decode(data: bytes) -> dict[str, Any]:
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    out: dict[str, Any] = mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True})
    return out


def _layer_urls(figure: dict[str, Any]) -> list[str]:
    return [u for layer in figure["layout"]["map"].get("layers", []) for u in (layer.get("source") or [])
            if isinstance(u, str) and "/components/tiles/" in u]  # fmt: skip


def test_clusters_count_every_object_and_single_objects_sit_at_their_point() -> None:
    """Pure: the clusters of every tile covering the objects add up to all of them at each zoom below
    16, and from 16 every object is in its tile at its own point (within a tile unit)."""
    rng = np.random.default_rng(4)
    n = 5_000
    lon, lat = 116.39 + rng.random(n) * 0.05, 39.89 + rng.random(n) * 0.04
    states = ["完好", "破损"]
    objs = [Loaded(f"1101010102{i:06d}", "0102" if i % 2 else "0305", "", float(lon[i]), float(lat[i]), None,
                   states[int(i % 7 == 0)], {}) for i in range(n)]  # fmt: skip
    tiles = ComponentTiles.of(objs, 3)
    for z in (11, 13, 15):
        xs = {_tile_of(o.lon, o.lat, z) for o in objs}
        total = 0
        for x, y in xs:
            data = tiles.tile(z, x, y)
            assert data is not None
            got = _decode(data)
            sizes = [k for k in got if k.startswith("cluster_") and k != "cluster_label"]
            total += sum(f["properties"]["count"] for k in sizes for f in got[k]["features"])
            labels = got["cluster_label"]["features"]
            assert sum(len(got[k]["features"]) for k in sizes) == len(labels)
        assert total == n, (z, total)
    z = SINGLE_ZOOM + 1
    probe = objs[123]
    x, y = _tile_of(probe.lon, probe.lat, z)
    data = tiles.tile(z, x, y)
    assert data is not None
    feats = {f["properties"]["id"]: (k, f) for k, v in _decode(data).items() for f in v["features"]}
    layer, f = feats[probe.id]
    assert layer == ("obj_alert" if probe.state != "完好" else f"obj_{probe.class_code[:2]}")
    wx, wy = world_xy([probe.lon], [probe.lat])
    ux = (int(wx[0]) - (x << (LEVEL - z))) * 4096 / (1 << (LEVEL - z))
    uy = (int(wy[0]) - (y << (LEVEL - z))) * 4096 / (1 << (LEVEL - z))
    assert abs(f["geometry"]["coordinates"][0] - ux) <= 1 and abs(f["geometry"]["coordinates"][1] - uy) <= 1
    inside = sum(1 for o in objs if _tile_of(o.lon, o.lat, z) == (x, y))
    assert len(feats) == inside == tiles.count(z, x, y)
    assert tiles.tile(z, 0, 0) is None  # nothing there


def _features(tiles: ComponentTiles, z: int, x: int, y: int) -> set[tuple[str, str, int, int]]:
    data = tiles.tile(z, x, y)
    got = _decode(data) if data is not None else {}
    return {(k, str(f["properties"].get("id") or f["properties"].get("count")), *f["geometry"]["coordinates"])
            for k, v in got.items() for f in v["features"]}  # fmt: skip


def test_a_patch_of_changed_objects_draws_what_a_rebuild_draws() -> None:
    """Pure: tiles patched with moved, retired, added and re-stated objects hold the same features as
    tiles built anew from the changed inventory, at cluster and object zooms."""
    rng = np.random.default_rng(9)
    n = 3_000
    lon, lat = 116.40 + rng.random(n) * 0.03, 39.90 + rng.random(n) * 0.02
    codes = [f"1101010102{i:06d}" for i in range(n)]
    objs = {k: Loaded(k, "0102" if i % 3 else "0118", "", float(lon[i]), float(lat[i]), None,
                      "完好" if i % 5 else "破损", {}) for i, k in enumerate(codes)}  # fmt: skip
    before = ComponentTiles.of(objs.values(), 10)
    keys = list(objs)
    moved = {k: Loaded(k, objs[k].class_code, "", objs[k].lon + 0.003, objs[k].lat - 0.002, None, "完好", {})
             for k in keys[:40]}  # fmt: skip
    gone = set(keys[40:60])
    fresh = [f"1101010118{900000 + i:06d}" for i in range(30)]
    added = {k: Loaded(k, "0118", "", 116.41 + i * 1e-4, 39.91, None, "破损", {})
             for i, k in enumerate(fresh)}  # fmt: skip
    after = {k: o for k, o in objs.items() if k not in gone} | moved | added
    patched = before.patched(set(moved) | gone | set(added), [*moved.values(), *added.values()], 11)
    assert patched is not None and patched.version == 11 and len(patched) == len(after)
    rebuilt = ComponentTiles.of(after.values(), 11)
    for z in (12, 14, 16, 18):
        for o in list(moved.values())[:5] + list(added.values())[:5] + [objs[k] for k in list(gone)[:5]]:
            x, y = _tile_of(o.lon, o.lat, z)
            assert _features(patched, z, x, y) == _features(rebuilt, z, x, y), (z, o.id)
    x, y = _tile_of(moved[keys[0]].lon, moved[keys[0]].lat, 18)
    assert any(f[1] == keys[0] for f in _features(patched, 18, x, y))  # at its new place
    odd = Loaded("1101010101000001", "0101", "", 116.41, 39.91, None, "完好", {})
    assert before.patched({odd.id}, [odd], 12) is None  # a class the tiles never had: rebuilt instead


def test_the_tiles_refuse_an_anonymous_request_and_serve_a_desk_session(desk: Desk) -> None:
    d = desk
    i = 7
    lon, lat = float(d.inv.lon[i]), float(d.inv.lat[i])
    z = SINGLE_ZOOM
    x, y = _tile_of(lon, lat, z)
    url = f"{d.url}/components/tiles/{z}/{x}/{y}.pbf"
    anon = requests.get(url, timeout=10)
    assert anon.status_code == 401 and anon.json()["error"] == "login_required", anon.text
    assert requests.get(f"{d.url}/components/tiles/3/1/1.pbf?v=1", timeout=10).status_code == 401
    adm = login_http(d.url, "adm-map", PASSWORD)
    with d.engine.connect() as conn:
        version = inventory_version(conn)
    r = adm.get(url, params={"v": version}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip", r.status_code
    assert r.headers["Content-Type"] == "application/x-protobuf"
    got = {f["properties"]["id"] for v in _decode(r.content).values() for f in v["features"]}
    assert d.inv.ids[i] in got
    assert adm.get(f"{d.url}/components/tiles/{z}/0/0.pbf", timeout=10).status_code == 204  # empty
    bad = adm.get(f"{d.url}/components/tiles/{z}/{x}/{y}.pbf?v=abc", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_version"
    far = adm.get(f"{d.url}/components/tiles/2/9/0.pbf", timeout=10)
    assert far.status_code == 404 and far.json()["error"] == "bad_tile"
    # the component page's and the grid page's maps carry the layer at the inventory's version
    page = _page(adm, d.url, f"/component/{d.inv.ids[i]}")
    fig = next(c for c in _components(page) if c["props"].get("id") == ids.COMPONENT_MAP)["props"]["figure"]
    assert _layer_urls(fig) and all(u.endswith(f"?v={version}") for u in _layer_urls(fig))
    assert any(tr.get("uid") == "picked" for tr in fig["data"])  # an admin may click a new point
    grid = d.core.pipeline.index.locate(lon, lat)
    assert grid is not None
    gpage = _page(adm, d.url, f"/grid/{grid.grid}")
    gfig = next(c for c in _components(gpage) if c["props"].get("id") == ids.DESK_MAP)["props"]["figure"]
    assert _layer_urls(gfig)
    panel = next(c for c in _components(gpage) if c["props"].get("id") == ids.GRID_COMPONENTS)
    assert any(c["type"] == "Table" for c in _components(panel))  # the grid's objects are listed
    assert _nested_children(gpage) == []  # React error #31 in the browser otherwise
    for path in (f"/street/{grid.grid[:9]}", f"/community/{grid.grid[:12]}"):  # clustered, under the marks
        spage = _page(adm, d.url, path)
        sfig = next(c for c in _components(spage) if c["props"].get("id") == ids.DESK_MAP)["props"]["figure"]
        assert _layer_urls(sfig), path
        layers = [x for x in sfig["layout"]["map"]["layers"] if "/components/tiles/" in str(x.get("source"))]
        assert all(x["below"] == "plotly-trace-layer-desk-sups-fill" for x in layers)
        assert sfig["data"][1]["uid"] == "desk-sups"


def _nested_children(tree: Any) -> list[Any]:
    """Lists found directly inside a ``children`` list: Dash hands them to React as plain objects."""
    found: list[Any] = []
    for c in _components(tree):
        kids = c["props"].get("children")
        if isinstance(kids, list):
            found += [k for k in kids if isinstance(k, list)]
    return found


MAP_OF = """(id) => { const gd = document.querySelector('#' + id + ' .js-plotly-plot');
  return gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot
    ? gd._fullLayout.map._subplot.map : null; }"""
SETTLED = f"""(id) => {{ const m = ({MAP_OF})(id);
  return !!m && m.loaded() && !m.isMoving() && m.areTilesLoaded(); }}"""
# the rendered 部件 features of the map (id, lon, lat): what MapLibre drew from the vector tiles
RENDERED = f"""([id, code]) => {{ const m = ({MAP_OF})(id);
  if (!m) return [];
  return m.queryRenderedFeatures().filter(f => f.properties && f.properties.id === code)
    .map(f => [f.properties.id, f.geometry.coordinates[0], f.geometry.coordinates[1]]); }}"""
TILE_URLS = f"""(id) => {{ const m = ({MAP_OF})(id); const st = m && m.isStyleLoaded() ? m.getStyle() : null;
  return Object.values((st && st.sources) || {{}}).flatMap(v => v.tiles || [])
    .filter(u => u.includes('/components/tiles/')); }}"""


# the clusters MapLibre drew (their counts) and the count labels it drew (their text; a label that
# would overlap another is left out), or null
CLUSTERS = f"""(id) => {{ const m = ({MAP_OF})(id); if (!m) return null;
  const fs = m.queryRenderedFeatures().filter(f => f.sourceLayer && f.sourceLayer.startsWith('cluster_'));
  const circles = fs.filter(f => f.layer.type === 'circle').map(f => f.properties.count);
  const labels = fs.filter(f => f.layer.type === 'symbol').map(f => f.properties.label);
  return circles.length && labels.length ? [circles, labels] : null; }}"""


def _settle(page: Any, lon: float, lat: float, zoom: float = 17.0) -> None:
    page.evaluate(f"([id, lon, lat, z]) => ({MAP_OF})(id).jumpTo({{center: [lon, lat], zoom: z}})",
                  [ids.COMPONENT_MAP, lon, lat, zoom])  # fmt: skip
    page.wait_for_function(SETTLED, arg=ids.COMPONENT_MAP, timeout=60_000)


def test_an_admin_moves_an_object_by_clicking_the_map(desk: Desk, browser: Any) -> None:
    """The admin clicks the component page's map 40 px east of the object, presses 移动: the history
    shows the move, and MapLibre draws the object (from a new tile URL) where the click was."""
    d = desk
    i = next(i for i, c in enumerate(d.inv.classes) if c == "0118")  # a street light
    code, lon0, lat0 = d.inv.ids[i], float(d.inv.lon[i]), float(d.inv.lat[i])
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    try:
        login_browser(page, d.url, "adm-map", PASSWORD, next_path=f"/component/{code}")
        page.wait_for_selector(f"#{ids.COMPONENT_MAP} .maplibregl-canvas", timeout=60_000)
        page.wait_for_function(SETTLED, arg=ids.COMPONENT_MAP, timeout=60_000)
        _settle(page, lon0, lat0)
        page.wait_for_function(f"(a) => ({RENDERED})(a).length > 0", arg=[ids.COMPONENT_MAP, code],
                               timeout=30_000)  # fmt: skip
        before = page.evaluate(RENDERED, [ids.COMPONENT_MAP, code])
        assert abs(before[0][1] - lon0) < 2e-6 and abs(before[0][2] - lat0) < 2e-6, before
        urls_before = page.evaluate(TILE_URLS, ids.COMPONENT_MAP)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "component-map-before.png"), full_page=True)
        xy = page.evaluate(
            f"""([id, lon, lat]) => {{ const m = ({MAP_OF})(id), p = m.project([lon, lat]);
              const r = m.getCanvas().getBoundingClientRect();
              return [r.left + p.x + 40, r.top + p.y - 25]; }}""",
            [ids.COMPONENT_MAP, lon0, lat0],
        )  # fmt: skip
        page.mouse.click(xy[0], xy[1])
        box = f"#{ids.COMPONENT_UPDATE}"
        page.wait_for_function(f"() => document.querySelector('{box} input[name=lon]').value !== ''",
                               timeout=10_000)  # fmt: skip
        lon1 = float(page.input_value(f"{box} input[name=lon]"))
        lat1 = float(page.input_value(f"{box} input[name=lat]"))
        assert lon1 > lon0 and lat1 > lat0  # east and north of it, where the click was
        picked = page.evaluate(
            "(id) => { const gd = document.querySelector('#' + id + ' .js-plotly-plot');"
            " const tr = gd.data.find(t => t.uid === 'picked'); return [tr.lon[0], tr.lat[0]]; }",
            ids.COMPONENT_MAP,
        )
        assert picked == [lon1, lat1]  # a marker where the object will go
        page.fill("input[name=opinion]", "迁移路灯")
        page.click(f"{box} button[data-gw-action=component_move]")
        page.wait_for_function(  # the command's answer
            f"() => /act-(done|refused)/.test((document.getElementById('{ids.ACT_RESULT}') || {{}})"
            ".className)",
            timeout=30_000,
        )
        said = page.inner_text(f"#{ids.ACT_RESULT}")
        assert "已办理" in said, said
        page.wait_for_function(  # the history row of the move (its new lon, as the box had it)
            "([id, lon]) => (document.getElementById(id) || {}).textContent?.includes(lon)",
            arg=[ids.COMPONENT_HISTORY, repr(lon1)], timeout=30_000,
        )  # fmt: skip
        history = page.inner_text(f"#{ids.COMPONENT_HISTORY}")
        assert "迁移路灯" in history and "adm-map" in history
        page.wait_for_function(  # the map's layer now asks for the new version's tiles
            f"([id, old]) => ({TILE_URLS})(id).length > 0 && ({TILE_URLS})(id).every(u => !old.includes(u))",
            arg=[ids.COMPONENT_MAP, urls_before], timeout=30_000,
        )  # fmt: skip
        _settle(page, lon1, lat1)
        page.wait_for_function(
            f"""([id, code, lon, lat]) => ({RENDERED})([id, code]).some(
                  f => Math.abs(f[1] - lon) < 2e-6 && Math.abs(f[2] - lat) < 2e-6)""",
            arg=[ids.COMPONENT_MAP, code, lon1, lat1], timeout=30_000,
        )  # fmt: skip
        drawn = page.evaluate(RENDERED, [ids.COMPONENT_MAP, code])
        assert all(abs(f[1] - lon0) > 1e-5 for f in drawn), drawn  # not at its old point any more
        page.screenshot(path=str(ARTIFACTS / "component-map-moved.png"), full_page=True)
        assert not errors, errors[:5]  # the component page, its map and the move: no error in the console
        # the grid page's map: clusters with their counts when zoomed out, objects when zoomed in
        grid = d.core.pipeline.index.locate(lon1, lat1)
        assert grid is not None
        page.goto(f"{d.url}/grid/{grid.grid}")
        page.wait_for_selector(f"#{ids.DESK_MAP} .maplibregl-canvas", timeout=60_000)
        page.wait_for_function(SETTLED, arg=ids.DESK_MAP, timeout=60_000)
        page.evaluate(f"(id) => ({MAP_OF})(id).jumpTo({{zoom: 14.2}})", ids.DESK_MAP)
        page.wait_for_function(SETTLED, arg=ids.DESK_MAP, timeout=60_000)
        page.wait_for_function(CLUSTERS, arg=ids.DESK_MAP, timeout=30_000)
        circles, counts = page.evaluate(CLUSTERS, ids.DESK_MAP)
        assert sum(circles) > 0 and set(counts) <= {str(n) for n in circles}  # a circle's count drawn on it
        page.screenshot(path=str(ARTIFACTS / "component-map-grid-clusters.png"), full_page=True)
        assert not errors, errors[:5]  # the grid page, its 部件 panel and its map: no error in the console
    finally:
        context.close()
