"""The centre's basemap (issue 17 item 1): import of tiles and layers, and serving them over HTTP.

Fixtures are made here from ../shared/data's Dongcheng roads (GCJ-02, no licence: tests only): the
roads are cut into an MBTiles file by the import itself, converted into PMTiles with the ``pmtiles``
library, and a raster MBTiles of PNG tiles is drawn with Pillow. Nothing of them is committed.
"""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pytest
import requests
import shapely
from flask import Flask
from PIL import Image
from werkzeug.serving import make_server

from dashboard.basemap import basemap_blueprint, basemap_style
from domain.crs import CRS
from domain.errors import GeoInputError
from domain.geofile import read_features
from store.basemap import import_layer, load_layers, remove_layer
from store.tiles import open_tiles, tile_lonlat_bounds, tiles_covering, write_mbtiles
from tests.conftest import SHARED, require
from tests.live_server import free_port

ROADS = SHARED / "data" / "roads" / "dongcheng_roads_gcj02.geojson"
NAMED_ROAD = "东四北大街"


def _roads() -> Path:
    if not ROADS.exists():
        require(f"the Dongcheng roads file {ROADS}")
    return ROADS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the roads imported as a vector layer (z 12–15: a quick cut)."""
    folder = tmp_path_factory.mktemp("basemap")
    import_layer(folder, _roads(), name="roads", minzoom=12, maxzoom=15)
    return folder


class Served:
    """The basemap blueprint on a real port; ``allow`` says whether the caller is let in."""

    def __init__(self, data_dir: Path) -> None:
        self.allow = True
        app = Flask("basemap-test")
        app.register_blueprint(basemap_blueprint(data_dir, lambda: self.allow))
        port = free_port()
        self.http = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def served(data_dir: Path) -> Iterator[Served]:
    s = Served(data_dir)
    yield s
    s.http.shutdown()


def _road_tile(
    layer_bounds: tuple[float, float, float, float], z: int, data_dir: Path
) -> tuple[int, int, bytes]:
    src = open_tiles(data_dir / "basemap" / "roads.mbtiles")
    for x, y in tiles_covering(layer_bounds, z):
        data = src.get(z, x, y)
        if data:
            return x, y, data
    raise AssertionError("no tile")


def test_a_gcj02_road_layer_is_converted_and_cut_into_vector_tiles(data_dir: Path) -> None:
    (layer,) = load_layers(data_dir)
    assert layer.role == "roads" and layer.vector and layer.crs == CRS.GCJ02
    assert layer.features > 15_000 and layer.tiles > 50
    gcj = shapely.GeometryCollection([g for g, _ in read_features(_roads(), CRS.WGS84)])  # as stored
    wgs = shapely.GeometryCollection([g for g, _ in read_features(_roads())])  # converted
    assert layer.bounds is not None and layer.bounds == pytest.approx(wgs.bounds, abs=1e-9)
    assert abs(layer.bounds[0] - gcj.bounds[0]) > 0.004  # GCJ-02 lies ~500 m off; it was moved
    # a named road's tile at z15 holds it, with its name and a class (…大街: main)
    road = shapely.union_all([g for g, p in read_features(_roads()) if p.get("name") == NAMED_ROAD])
    mid = road.interpolate(0.5, normalized=True)
    z = 15
    (x, y), *_ = tiles_covering((mid.x, mid.y, mid.x, mid.y), z)
    data = open_tiles(data_dir / "basemap" / "roads.mbtiles").get(z, x, y)
    assert data is not None and data[:2] == b"\x1f\x8b"
    feats = mapbox_vector_tile.decode(gzip.decompress(data))["roads"]["features"]
    named = [f for f in feats if f["properties"].get("name") == NAMED_ROAD]
    assert named and named[0]["properties"]["class"] == "main"
    w, s, e, n = tile_lonlat_bounds(z, x, y)
    assert w <= mid.x <= e and s <= mid.y <= n


def test_tiles_are_served_with_their_encoding_caching_and_a_named_refusal(
    data_dir: Path, served: Served
) -> None:
    (layer,) = load_layers(data_dir)
    x, y, data = _road_tile(layer.bounds or (0, 0, 0, 0), 14, data_dir)
    url = f"{served.url}/basemap/tiles/roads/14/{x}/{y}.pbf?v={layer.version}"
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert r.content == gzip.decompress(data)  # requests undid the gzip
    assert "max-age=86400" in r.headers["Cache-Control"]
    assert requests.get(f"{served.url}/basemap/tiles/roads/14/0/0.pbf", timeout=5).status_code == 204
    assert requests.get(f"{served.url}/basemap/tiles/roads/14/{x}/{y}.png", timeout=5).status_code == 404
    assert requests.get(f"{served.url}/basemap/tiles/nope/14/{x}/{y}.pbf", timeout=5).status_code == 404
    assert requests.get(f"{served.url}/basemap/tiles/roads/14/99999/0.pbf", timeout=5).status_code == 404
    served.allow = False
    try:
        refused = requests.get(url, timeout=5)
        assert refused.status_code == 401 and refused.json() == {"error": "login_required"}
        assert requests.get(f"{served.url}/basemap/style.json", timeout=5).status_code == 401
    finally:
        served.allow = True


def test_the_style_puts_the_layers_under_everything_and_names_no_outside_server(
    data_dir: Path, served: Served
) -> None:
    r = requests.get(f"{served.url}/basemap/style.json", timeout=5)
    style = r.json()
    assert style["layers"][0] == {
        "id": "background",
        "type": "background",
        "paint": {"background-color": "#0b1220"},
    }
    ids = [x["id"] for x in style["layers"]]
    assert any(i.startswith("bm-roads-roads-main") for i in ids) and ids[-1] == "bm-labels"
    urls = [u for s in style["sources"].values() for u in s["tiles"]]
    assert urls and all(u.startswith(served.url + "/basemap/") for u in urls)
    assert "sprite" not in style  # MapLibre draws no text but the 部件 counts: labels are tiles
    assert style["glyphs"].startswith(served.url + "/components/glyphs/")  # the counts' digits, ours
    again = requests.get(
        f"{served.url}/basemap/style.json", headers={"If-None-Match": r.headers["ETag"]}, timeout=5
    )
    assert again.status_code == 304
    assert (
        basemap_style([], "http://h/", labels=True)["layers"] == style["layers"][:1]
    )  # no basemap: as before


def test_label_tiles_draw_road_names_and_nothing_where_there_are_none(data_dir: Path, served: Served) -> None:
    road = shapely.union_all([g for g, p in read_features(_roads()) if p.get("name") == NAMED_ROAD])
    mid = road.interpolate(0.5, normalized=True)
    (x, y), *_ = tiles_covering((mid.x, mid.y, mid.x, mid.y), 16)  # deeper than the tiles (15): read up
    r = requests.get(f"{served.url}/basemap/labels/16/{x}/{y}.png", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (512, 512) and img.getbbox() is not None
    assert requests.get(f"{served.url}/basemap/labels/16/0/0.png", timeout=5).status_code == 204
    assert requests.get(f"{served.url}/basemap/labels/12/{x >> 4}/{y >> 4}.png", timeout=5).status_code == 204


def test_the_handset_gets_drawn_daylight_tiles_named_in_the_style(data_dir: Path, served: Served) -> None:
    style = requests.get(f"{served.url}/basemap/style.json", timeout=5).json()
    template = style["metadata"]["gridwall:raster"]
    assert template.startswith(served.url + "/basemap/raster/{z}/{x}/{y}.png?v=")
    road = shapely.union_all([g for g, p in read_features(_roads()) if p.get("name") == NAMED_ROAD])
    mid = road.interpolate(0.5, normalized=True)
    (x, y), *_ = tiles_covering((mid.x, mid.y, mid.x, mid.y), 16)
    r = requests.get(template.format(z=16, x=x, y=y), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    white = int(((rgba[..., 3] == 255) & (rgba[..., :3] == 255).all(axis=-1)).sum())
    assert white > 500  # minor roads drawn white on the handset's light map
    assert requests.get(template.format(z=16, x=0, y=0), timeout=5).status_code == 204
    assert requests.get(template.format(z=10, x=x >> 6, y=y >> 6), timeout=5).status_code == 204  # far out


def test_pmtiles_and_raster_mbtiles_import_and_serve_with_ranged_reads(
    data_dir: Path, served: Served, tmp_path: Path
) -> None:
    from pmtiles.convert import mbtiles_to_pmtiles

    pm = tmp_path / "roads-pm.pmtiles"
    mbtiles_to_pmtiles(str(data_dir / "basemap" / "roads.mbtiles"), str(pm), 15)
    done = import_layer(data_dir, pm, name="roadspm")
    assert done.layer.vector and done.layer.source_layers == ("roads",) and done.layer.maxzoom == 15
    (layer,) = [x for x in load_layers(data_dir) if x.name == "roads"]
    x, y, data = _road_tile(layer.bounds or (0, 0, 0, 0), 15, data_dir)
    r = requests.get(f"{served.url}/basemap/tiles/roadspm/15/{x}/{y}.pbf", timeout=10)
    assert r.status_code == 200 and r.content == gzip.decompress(data)  # the same tile through PMTiles
    part = requests.get(
        f"{served.url}/basemap/files/roadspm.pmtiles", headers={"Range": "bytes=0-126"}, timeout=5
    )
    assert part.status_code == 206 and part.content[:7] == b"PMTiles" and len(part.content) == 127
    # a raster set: PNG tiles drawn here
    tiles = []
    for tx, ty in tiles_covering((116.40, 39.90, 116.42, 39.92), 13):
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (200, 180, 150)).save(buf, format="PNG")
        tiles.append((13, tx, ty, buf.getvalue()))
    raster = tmp_path / "ortho.mbtiles"
    write_mbtiles(raster, tiles, {"name": "ortho", "format": "png", "bounds": "116.40,39.90,116.42,39.92"})
    done = import_layer(data_dir, raster, name="ortho")
    assert done.layer.role == "raster" and not done.layer.vector
    style = requests.get(f"{served.url}/basemap/style.json", timeout=5).json()
    assert [x["id"] for x in style["layers"]][1] == "bm-ortho"  # images at the bottom
    tx, ty = tiles[0][1], tiles[0][2]
    r = requests.get(f"{served.url}/basemap/tiles/ortho/13/{tx}/{ty}.png", timeout=5)
    assert r.status_code == 200 and "Content-Encoding" not in r.headers and r.content[:4] == b"\x89PNG"
    assert remove_layer(data_dir, "ortho") and remove_layer(data_dir, "roadspm")
    assert [x.name for x in load_layers(data_dir)] == ["roads"]
    assert requests.get(f"{served.url}/basemap/tiles/ortho/13/{tx}/{ty}.png", timeout=5).status_code == 404


def test_files_that_are_not_a_basemap_get_a_named_refusal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mbtiles"
    bad.write_text("not sqlite at all")
    with pytest.raises(GeoInputError, match="not an MBTiles file"):
        import_layer(tmp_path, bad)
    empty = tmp_path / "empty.mbtiles"
    db = sqlite3.connect(empty)
    db.executescript(
        "CREATE TABLE metadata (name, value);"
        "CREATE TABLE tiles (zoom_level, tile_column, tile_row, tile_data);"
    )
    db.close()
    with pytest.raises(GeoInputError, match="no tiles"):
        import_layer(tmp_path, empty)
    junk = tmp_path / "junk.pmtiles"
    junk.write_bytes(b"\0" * 200)
    with pytest.raises(GeoInputError, match="not a PMTiles v3 file"):
        import_layer(tmp_path, junk)
    with pytest.raises(GeoInputError, match=r"^junk\.pmtiles: not a PMTiles v3 file"):
        import_layer(tmp_path, junk, crs="gcj02")  # to be moved onto WGS-84, but not tiles at all
    with pytest.raises(GeoInputError, match=r"junk\.pmtiles: .*mercator"):
        import_layer(tmp_path, junk, crs="mercator")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(GeoInputError, match=r"give \.mbtiles"):
        import_layer(tmp_path, tmp_path / "x.txt")
    with pytest.raises(GeoInputError, match="layer name"):
        import_layer(tmp_path, _roads(), name="../etc")
    assert load_layers(tmp_path) == []  # nothing half-imported
    points = tmp_path / "p.geojson"
    bell = {"type": "Point", "coordinates": [116.41, 39.94]}
    points.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "钟楼"}, "geometry": bell}
    ]}))  # fmt: skip
    done = import_layer(tmp_path, points, role="places", minzoom=14, maxzoom=14)
    assert done.layer.role == "places" and done.layer.tiles == 1
    assert done.layer.bounds is not None and np.isclose(done.layer.bounds[0], 116.41)


def test_tiles_cut_on_gcj02_are_moved_onto_wgs84(data_dir: Path, tmp_path: Path) -> None:
    """A vector set cut on GCJ-02 (the roads' own coordinates, not converted) and a raster set with a
    mark drawn at a known place's GCJ-02 position both land where WGS-84 puts them."""
    from domain.crs import wgs84_to_gcj02
    from store.basemap import import_features

    raw = read_features(_roads(), CRS.WGS84)  # the file's GCJ-02 numbers taken as they are
    cut = tmp_path / "cut"
    import_features(cut, "gcjroads", raw, role="roads", minzoom=13, maxzoom=15)
    gcj_file = tmp_path / "roads_gcj02.mbtiles"  # its CRS named in its name, as for every input
    (cut / "basemap" / "gcjroads.mbtiles").rename(gcj_file)
    moved = import_layer(tmp_path / "moved", gcj_file, name="roads")
    assert moved.layer.crs == "gcj02" and moved.notes == ["moved from gcj02 to WGS-84"]
    (direct,) = load_layers(data_dir)  # the same roads converted from the GeoJSON
    assert moved.layer.bounds is not None and direct.bounds is not None
    assert moved.layer.bounds == pytest.approx(direct.bounds, abs=2e-5)  # within ~2 m (tile units)
    # a named road's middle is in the same z15 tile, with its name, in both
    road = shapely.union_all([g for g, p in read_features(_roads()) if p.get("name") == NAMED_ROAD])
    mid = road.interpolate(0.5, normalized=True)
    (x, y), *_ = tiles_covering((mid.x, mid.y, mid.x, mid.y), 15)
    tile = open_tiles(tmp_path / "moved" / "basemap" / "roads.mbtiles").get(15, x, y)
    assert tile is not None
    names = {
        f["properties"].get("name")
        for f in mapbox_vector_tile.decode(gzip.decompress(tile))["gcjroads"]["features"]
    }
    assert NAMED_ROAD in names
    # raster: a red square at the GCJ-02 position of a WGS-84 point, drawn into z16 tiles
    lon, lat = 116.4170, 39.9280
    glon, glat = (float(v[0]) for v in wgs84_to_gcj02([lon], [lat]))
    z = 16
    tiles = []
    for tx, ty in tiles_covering((glon - 0.01, glat - 0.01, glon + 0.01, glat + 0.01), z):
        img = Image.new("RGB", (256, 256), (30, 30, 30))
        n = 1 << z
        px = ((glon + 180) / 360 * n - tx) * 256
        py = ((1 - np.arcsinh(np.tan(np.radians(glat))) / np.pi) / 2 * n - ty) * 256
        if 0 <= px < 256 and 0 <= py < 256:
            img.paste((255, 0, 0), (int(px) - 3, int(py) - 3, int(px) + 4, int(py) + 4))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        tiles.append((z, tx, ty, buf.getvalue()))
    raster = tmp_path / "ortho.mbtiles"
    box = f"{glon - 0.01},{glat - 0.01},{glon + 0.01},{glat + 0.01}"
    write_mbtiles(raster, tiles, {"name": "o", "format": "png", "bounds": box})
    done = import_layer(tmp_path / "moved", raster, name="ortho", crs="gcj02")
    assert done.layer.role == "raster" and done.layer.crs == "gcj02"
    (tx, ty), *_ = tiles_covering((lon, lat, lon, lat), z)
    out = open_tiles(tmp_path / "moved" / "basemap" / "ortho.mbtiles").get(z, tx, ty)
    assert out is not None
    rgba = np.asarray(Image.open(io.BytesIO(out)).convert("RGB")).astype(int)
    red = np.argwhere((rgba[..., 0] > 200) & (rgba[..., 1] < 80))
    n = 1 << z
    want = (
        ((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n - ty) * 256,
        ((lon + 180) / 360 * n - tx) * 256,
    )
    assert len(red) and np.abs(red.mean(axis=0) - np.array(want)).max() < 2.5  # where WGS-84 puts it (±2 px)


def test_the_app_lets_a_wall_read_its_map_until_its_kiosk_token_is_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the whole web app: the kiosk token opens the map style; once revoked it does not (the
    trust window is set to nothing here; it is a few seconds in a running server)."""
    from gridwall import web
    from store.accounts import issue_token, revoke_token
    from store.db import create_engine, transaction
    from store.migrate import upgrade

    monkeypatch.setattr(web, "KIOSK_TRUST_S", 0.0)
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    upgrade(engine)
    with transaction(engine) as s:
        kiosk, secret = issue_token(s, "kiosk", "lobby")
    app = web.create_web_app(engine, secret_key="basemap-tests", data_dir=tmp_path)
    client = app.server.test_client()
    assert client.get("/basemap/style.json").status_code == 401
    assert client.get(f"/basemap/style.json?token={secret}").status_code == 200
    with transaction(engine) as s:
        revoke_token(s, kiosk.id)
    assert client.get(f"/basemap/style.json?token={secret}").status_code == 401
    engine.dispose()


def test_an_imported_road_layer_can_cut_the_grids(data_dir: Path) -> None:
    """``init --roads basemap:roads`` (issue 17 item 3 with an imported layer): the layer's lines are
    kept in WGS-84 beside its tiles, with their names and classes; an unknown layer is refused by name."""
    import app
    from store.basemap import road_lines

    path = app._roads_path("basemap:roads", data_dir)
    assert path == road_lines(data_dir, "basemap:roads") and path.exists()
    lines = read_features(path)
    source = read_features(_roads())  # converted from GCJ-02 on import, as the tiles were
    assert len(lines) == len(source)
    assert lines[0][0].equals_exact(source[0][0], 1e-9)
    assert {p.get("class") for _, p in lines} == {"main", "minor"}
    with pytest.raises(GeoInputError, match="road layers here: roads"):
        road_lines(data_dir, "basemap:nope")
    assert app._roads_path("roads.geojson", data_dir) == Path("roads.geojson")
