"""Serving the centre's basemap: the map style, its tiles, PMTiles by byte ranges, and label tiles.

Every map of GridWall (wall, desk, handset) takes its style from ``/basemap/style.json``: the dark
background, then the imported layers (``store.basemap``) in drawing order, then road and place names
as raster tiles drawn here with a font verified to cover every character (``dashboard.labels``), so
MapLibre needs no glyph server and no label is ever drawn as boxes. Without a basemap the style is the
background alone, as before. Nothing is requested from outside the server; who asks must be a desk
session, a wall (kiosk token) or a paired handset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Response, abort, request, send_file
from PIL import Image, ImageDraw, ImageFont

from dashboard.labels import cjk_font
from store.basemap import BasemapLayer, folder, load_layers
from store.tiles import EXTENT, TileError, TileSource, open_tiles

BG = "#0b1220"
LABEL_TILE_PX = 512  # label tiles are drawn at 512 px and declared so (one tile pixel, one screen pixel)
LABEL_MINZOOM = 14  # road names from this zoom (the wall's whole-district view stays clean)
PLACE_MINZOOM = 16
TILE_MAX_AGE = 86_400  # tile URLs carry the layer's version: a new import changes the URL
DRAWN_CACHE = 512  # label and raster tiles kept in memory (10–60 KB each)
RASTER_MINZOOM = 12  # the handset's drawn tiles (a street-level map)
MIME = {"pbf": "application/x-protobuf", "png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
MAIN_CLASSES = frozenset({"main", "motorway", "trunk", "primary", "secondary", "主干道", "快速路", "次干道"})

# the dark palette under grids, heat and markers (quiet: the case marks must stay the brightest things)
PALETTE: dict[str, dict[str, str]] = {
    "roads": {"minor": "#22324d", "main": "#3a5078"},
    "buildings": {"fill": "#131c2e", "line": "#1a2640"},
    "water": {"fill": "#0b2235", "line": "#0f2d46"},
    "green": {"fill": "#0d1f1a", "line": "#12291f"},
    "places": {"circle": "#4a5a78"},
    "other": {"fill": "#121a2a", "line": "#22304a", "circle": "#4a5a78"},
}


def _role_of_source_layer(layer: BasemapLayer, source_layer: str) -> str:
    """The role of one vector layer inside a tile set (OpenMapTiles-like names) or the layer's own."""
    if len(layer.source_layers) <= 1:
        return layer.role
    s = source_layer.lower()
    for role, words in (
        ("roads", ("transport", "road", "street", "highway")),
        ("buildings", ("building",)),
        ("water", ("water", "river")),
        ("green", ("park", "landcover", "landuse", "green")),
        ("places", ("place", "poi", "label", "housenumber")),
    ):
        if any(w in s for w in words):
            return role
    return "other"


def _vector_layers(layer: BasemapLayer, source: str) -> list[dict[str, Any]]:
    """MapLibre style layers drawing one imported vector layer by role."""
    out: list[dict[str, Any]] = []
    zoom = {"minzoom": layer.show_from, "maxzoom": max(layer.show_from + 1, layer.show_to)}
    for sl in layer.source_layers:
        role = _role_of_source_layer(layer, sl)
        base = {"source": source, "source-layer": sl, **zoom}
        lid = f"bm-{layer.name}-{sl}"
        if role == "roads":
            is_main: list[Any] = ["in", ["get", "class"], ["literal", sorted(MAIN_CLASSES)]]
            for kind, colour, widths in (
                ("minor", PALETTE["roads"]["minor"], (12, 0.4, 17, 5.0)),
                ("main", PALETTE["roads"]["main"], (10, 0.8, 17, 10.0)),
            ):
                out.append({
                    "id": f"{lid}-{kind}", "type": "line", **base,
                    "filter": ["all", ["==", ["geometry-type"], "LineString"],
                               is_main if kind == "main" else ["!", is_main]],
                    "layout": {"line-cap": "round", "line-join": "round"},
                    "paint": {"line-color": colour, "line-width": [
                        "interpolate", ["exponential", 1.6], ["zoom"], *widths]},
                })  # fmt: skip
        elif role in ("buildings", "water", "green", "other"):
            pal = PALETTE[role]
            out.append({
                "id": f"{lid}-fill", "type": "fill", **base,
                "filter": ["==", ["geometry-type"], "Polygon"],
                "paint": {"fill-color": pal["fill"], "fill-outline-color": pal["line"]},
            })  # fmt: skip
            out.append({
                "id": f"{lid}-line", "type": "line", **base,
                "filter": ["==", ["geometry-type"], "LineString"],
                "paint": {"line-color": pal["line"], "line-width": 1.2},
            })  # fmt: skip
        if role in ("places", "other"):
            out.append({
                "id": f"{lid}-point", "type": "circle", **base,
                "filter": ["==", ["geometry-type"], "Point"],
                "paint": {"circle-radius": 2.5, "circle-color": PALETTE["places"]["circle"]},
            })  # fmt: skip
    return out


def basemap_style(layers: Sequence[BasemapLayer], base_url: str, *, labels: bool) -> dict[str, Any]:
    """The MapLibre style: background, each imported layer in order, and the label tiles on top.

    Tile URLs are absolute (MapLibre's workers resolve relative ones against a blob: URL) and carry
    each layer's version.
    """
    sources: dict[str, Any] = {}
    style_layers: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": BG}}
    ]
    for layer in layers:
        sid = f"bm-{layer.name}"
        url = f"{base_url}basemap/tiles/{layer.name}/{{z}}/{{x}}/{{y}}.{layer.format}?v={layer.version}"
        src: dict[str, Any] = {"type": "vector" if layer.vector else "raster", "tiles": [url],
                               "minzoom": layer.minzoom, "maxzoom": layer.maxzoom}  # fmt: skip
        if layer.bounds:
            src["bounds"] = list(layer.bounds)
        if not layer.vector:
            src["tileSize"] = 256
        sources[sid] = src
        if layer.vector:
            style_layers.extend(_vector_layers(layer, sid))
        else:  # a daylight image dimmed under the dark wall's marks
            style_layers.append({
                "id": sid, "type": "raster", "source": sid, "minzoom": layer.show_from,
                "paint": {"raster-opacity": 0.55, "raster-saturation": -0.5, "raster-brightness-max": 0.55},
            })  # fmt: skip
    if labels and any(x.vector for x in layers):
        version = "-".join(x.version for x in layers if x.vector)
        sources["bm-labels"] = {
            "type": "raster", "tileSize": LABEL_TILE_PX, "minzoom": LABEL_MINZOOM, "maxzoom": 20,
            "tiles": [f"{base_url}basemap/labels/{{z}}/{{x}}/{{y}}.png?v={version}"],
        }  # fmt: skip
        style_layers.append(
            {"id": "bm-labels", "type": "raster", "source": "bm-labels", "minzoom": LABEL_MINZOOM}
        )
    meta: dict[str, Any] = {}
    if any(x.vector for x in layers):  # the handset's canvas map takes the server's drawn tiles
        version = "-".join(x.version for x in layers if x.vector)
        meta = {"gridwall:raster": f"{base_url}basemap/raster/{{z}}/{{x}}/{{y}}.png?v={version}",
                "gridwall:raster-minzoom": RASTER_MINZOOM}  # fmt: skip
    # the 部件 layer's cluster counts (dashboard.component_tiles serves the digits; no glyph server outside)
    glyphs = f"{base_url}components/glyphs/{{fontstack}}/{{range}}.pbf"
    return {"version": 8, "name": "GridWall dark (offline)", "metadata": meta, "glyphs": glyphs,
            "sources": sources, "layers": style_layers}  # fmt: skip


# -- label tiles ---------------------------------------------------------------------------------------


def _decode(data: bytes, compression: str) -> dict[str, Any]:
    import mapbox_vector_tile

    raw = gzip.decompress(data) if compression == "gzip" or data[:2] == b"\x1f\x8b" else data
    decoded: dict[str, Any] = mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True})
    return decoded


def _lines_of(geom: dict[str, Any]) -> list[list[tuple[float, float]]]:
    t, c = geom.get("type"), geom.get("coordinates") or []
    if t == "LineString":
        return [c]
    if t == "MultiLineString":
        return list(c)
    return []


def _longest_run(
    line: Sequence[Sequence[float]], lo: float, hi: float
) -> tuple[float, tuple[float, float], float]:
    """Length, midpoint and angle (degrees) of a line's longest straight-ish run inside [lo, hi]²."""
    best = (0.0, (0.0, 0.0), 0.0)
    for (x0, y0), (x1, y1) in itertools.pairwise(line):
        if not (lo <= x0 <= hi and lo <= y0 <= hi and lo <= x1 <= hi and lo <= y1 <= hi):
            continue
        length = math.hypot(x1 - x0, y1 - y0)
        if length > best[0]:
            angle = math.degrees(math.atan2(-(y1 - y0), x1 - x0))  # counter-clockwise, y down
            if angle > 85:  # text reads left to right, and top to bottom on a north–south road
                angle -= 180
            elif angle < -95:
                angle += 180
            best = (length, ((x0 + x1) / 2, (y0 + y1) / 2), angle)
    return best


Pixel = tuple[float, float]
RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class TileTheme:
    """How a server-drawn tile looks: label colours and size, and (raster tiles) the map's colours."""

    text: RGBA
    halo: RGBA
    area_text: RGBA
    font_px: int
    fills: dict[str, RGBA] = field(default_factory=dict)
    roads: dict[str, tuple[RGBA, RGBA]] = field(default_factory=dict)  # (fill, casing) of main and minor


# the wall's and desk's label tiles (over the dark style) and the handset's daylight map
DARK = TileTheme((205, 218, 240, 255), (8, 14, 28, 235), (150, 200, 255, 255), 20)
LIGHT = TileTheme(
    (40, 48, 64, 255), (255, 255, 255, 235), (11, 61, 145, 255), 26,
    fills={"water": (190, 217, 240, 255), "green": (214, 234, 208, 255), "buildings": (222, 226, 233, 255),
           "other": (228, 231, 236, 255)},
    roads={"main": ((255, 233, 168, 255), (226, 190, 104, 255)),
           "minor": ((255, 255, 255, 255), (200, 207, 218, 255))},
)  # fmt: skip


def _tile_features(
    sources: Iterable[tuple[BasemapLayer, TileSource]], z: int, x: int, y: int, px: int
) -> Iterable[tuple[BasemapLayer, str, dict[str, Any], str, list[list[Pixel]]]]:
    """(layer, role, properties, geometry type, rings/lines/points in tile pixels) of every feature in
    XYZ tile z/x/y; a tile deeper than a layer's tiles reads its ancestor and keeps its part."""
    for layer, src in sources:
        dz = max(0, z - layer.maxzoom)
        pz, pxx, pyy = z - dz, x >> dz, y >> dz
        data = src.get(pz, pxx, pyy)
        if not data:
            continue
        scale = (1 << dz) * px / EXTENT
        offx, offy = (x - (pxx << dz)) * px, (y - (pyy << dz)) * px
        try:
            tile = _decode(data, layer.compression)
        except Exception:  # a damaged tile: nothing drawn there, never a failed map
            continue
        for source_layer, feats in tile.items():
            role = _role_of_source_layer(layer, source_layer)
            for f in feats.get("features", []):
                geom = f.get("geometry") or {}
                kind, coords = geom.get("type"), geom.get("coordinates") or []
                if kind == "Point":
                    parts = [[coords]]
                elif kind in ("LineString", "MultiPoint"):
                    parts = [coords]
                elif kind in ("MultiLineString", "Polygon"):
                    parts = list(coords)
                elif kind == "MultiPolygon":
                    parts = [ring for poly in coords for ring in poly]
                else:
                    continue
                pts = [[(a * scale - offx, b * scale - offy) for a, b in part] for part in parts]
                yield layer, role, f.get("properties") or {}, str(kind), pts


def _draw_labels(
    img: Image.Image,
    feats: Sequence[tuple[BasemapLayer, str, dict[str, Any], str, list[list[Pixel]]]],
    z: int,
    x: int,
    y: int,
    theme: TileTheme,
    extra: Sequence[tuple[str, float, float, int]],
) -> int:
    """Draw the names of ``feats`` (and ``extra`` area names) onto ``img``; how many were drawn."""
    face = cjk_font()
    if face is None:
        return 0
    px = img.width
    items: list[tuple[int, str, Pixel, float, float]] = []  # (rank, text, at, angle, length)
    seen: dict[str, tuple[float, Pixel, float]] = {}
    for _layer, _role, props, kind, parts in feats:
        name = props.get("name") or props.get("name:zh") or props.get("name_zh")
        if not isinstance(name, str) or not name.strip() or not face.covers(name):
            continue
        if kind == "Point":
            at = parts[0][0]
            if z >= PLACE_MINZOOM and 0 <= at[0] < px and 0 <= at[1] < px:
                items.append((2, name, at, 0.0, 0.0))
            continue
        if kind not in ("LineString", "MultiLineString"):
            continue
        for line in parts:
            length, mid, angle = _longest_run(line, 0, px)
            if length > seen.get(name, (0.0, (0.0, 0.0), 0.0))[0]:
                seen[name] = (length, mid, angle)
    for name, (length, mid, angle) in seen.items():
        items.append((0 if name.endswith(("大街", "路", "大道")) else 1, name, mid, angle, length))
    for text, lon, lat, minzoom in extra:
        n = 1 << z
        gx = (lon + 180) / 360 * n * px - x * px
        gy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n * px - y * px
        if z >= minzoom and 0 <= gx < px and 0 <= gy < px and face.covers(text):
            items.append((-1, text, (gx, gy), 0.0, 0.0))
    font = ImageFont.truetype(face.path, theme.font_px, index=face.index)
    big = ImageFont.truetype(face.path, round(theme.font_px * 1.3), index=face.index)
    taken: list[tuple[float, float, float, float]] = []
    for rank, text, (cx, cy), angle, length in sorted(items, key=lambda i: (i[0], -i[4])):
        f = big if rank < 0 else font
        w = f.getlength(text)
        if rank in (0, 1) and length < w * 0.6:
            continue  # the road is too short here for its name
        label = Image.new("RGBA", (int(w) + 12, int(f.size) + 14), (0, 0, 0, 0))
        ImageDraw.Draw(label).text(
            (label.width / 2, label.height / 2), text, font=f, anchor="mm",
            fill=theme.text if rank >= 0 else theme.area_text, stroke_width=3, stroke_fill=theme.halo,
        )  # fmt: skip
        if abs(angle) > 2:
            label = label.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
        box = (cx - label.width / 2, cy - label.height / 2, cx + label.width / 2, cy + label.height / 2)
        if box[0] < 0 or box[1] < 0 or box[2] > px or box[3] > px:
            continue  # would be cut by the tile's edge
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            continue
        taken.append(box)
        img.alpha_composite(label, (int(box[0]), int(box[1])))
    return len(taken)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def label_tile(
    sources: Iterable[tuple[BasemapLayer, TileSource]],
    z: int,
    x: int,
    y: int,
    extra: Sequence[tuple[str, float, float, int]] = (),
    theme: TileTheme = DARK,
) -> bytes | None:
    """A transparent PNG of the names in XYZ tile z/x/y (roads along their longest run, places at
    their point), or None when there is nothing to draw. Labels never cross the tile's edge (no half
    names), never overlap, and are drawn only with a font that has every one of their characters.
    """
    px = LABEL_TILE_PX
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    drawn = _draw_labels(img, list(_tile_features(sources, z, x, y, px)), z, x, y, theme, extra)
    return _png(img) if drawn else None


def raster_tile(
    sources: Iterable[tuple[BasemapLayer, TileSource]],
    z: int,
    x: int,
    y: int,
    theme: TileTheme = LIGHT,
) -> bytes | None:
    """A transparent 512-px PNG of the vector layers drawn in ``theme`` (areas, roads, then names) for a
    map without MapLibre (the handset's canvas), or None when the tile has nothing."""
    px = LABEL_TILE_PX
    feats = list(_tile_features(sources, z, x, y, px))
    if not feats:
        return None
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _layer, role, _props, kind, parts in feats:
        if kind in ("Polygon", "MultiPolygon"):
            fill = theme.fills.get(role, theme.fills.get("other"))
            for ring in parts:
                if len(ring) >= 3 and fill:
                    draw.polygon(ring, fill=fill)
    width = max(1.0, 2.0 ** (z - 13))  # a minor road's width in tile pixels, doubling with each zoom
    for casing in (True, False):
        for _layer, role, props, kind, parts in feats:
            if kind not in ("LineString", "MultiLineString"):
                continue
            main = str(props.get("class", "")) in MAIN_CLASSES
            colours = theme.roads.get("main" if main else "minor") if role == "roads" else None
            if colours is None:
                continue
            w = min(40.0, width * (2.2 if main else 1.0))
            for line in parts:
                if len(line) >= 2:
                    fill = colours[1] if casing else colours[0]
                    draw.line(line, fill=fill, width=round(w + (3 if casing else 0)), joint="curve")
    if z >= LABEL_MINZOOM:
        _draw_labels(img, feats, z, x, y, theme, ())
    return _png(img)


# -- the blueprint -------------------------------------------------------------------------------------


class Basemap:
    """The imported layers of a data directory, reopened when ``layers.json`` changes."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self.layers: list[BasemapLayer] = []
        self.sources: dict[str, TileSource] = {}

    def current(self) -> Basemap:
        """Itself, with the layer list re-read if the manifest changed since the last look."""
        if self.data_dir is None:
            return self
        manifest = folder(self.data_dir) / "layers.json"
        try:
            stamp = manifest.stat().st_mtime
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    layers = load_layers(self.data_dir)
                    sources: dict[str, TileSource] = {}
                    for layer in layers:
                        try:
                            sources[layer.name] = open_tiles(folder(self.data_dir) / layer.file)
                        except (TileError, OSError):
                            continue
                    self.layers = [x for x in layers if x.name in sources]
                    self.sources, self._stamp = sources, stamp
        return self

    def layer(self, name: str) -> BasemapLayer | None:
        """An imported layer by name."""
        return next((x for x in self.layers if x.name == name), None)


def basemap_blueprint(
    data_dir: Path | None,
    allowed: Callable[[], bool],
    extra_labels: Callable[[], Sequence[tuple[str, float, float, int]]] = lambda: (),
) -> Blueprint:
    """``/basemap/style.json``, ``/basemap/tiles/<layer>/<z>/<x>/<y>.<ext>``, ``/basemap/labels/…``,
    ``/basemap/raster/…`` (drawn for the handset) and ``/basemap/files/<file>`` (PMTiles by byte
    ranges), each for a desk session, wall or handset only.
    """
    bp = Blueprint("basemap", __name__)
    maps = Basemap(data_dir)
    drawn_cache: OrderedDict[tuple[str, int, int, int, str], bytes | None] = OrderedDict()
    drawn_lock = threading.Lock()

    @bp.before_request
    def who() -> Response | None:
        if not allowed():
            body = orjson.dumps({"error": "login_required"})
            return Response(body, status=401, mimetype="application/json")
        return None

    @bp.get("/basemap/style.json")
    def style() -> Response:
        bm = maps.current()
        body = orjson.dumps(basemap_style(bm.layers, request.host_url, labels=cjk_font() is not None))
        resp = Response(body, mimetype="application/json")
        resp.set_etag(hashlib.sha256(body).hexdigest()[:32])
        resp.cache_control.no_cache = True  # revalidated (304) on every page load: a new import shows
        resp.make_conditional(request)
        return resp

    def zxy(z: int, x: int, y: int) -> None:
        if not (0 <= z <= 22 and 0 <= x < (1 << z) and 0 <= y < (1 << z)):
            abort(404)

    @bp.get("/basemap/tiles/<name>/<int:z>/<int:x>/<int:y>.<ext>")
    def tile(name: str, z: int, x: int, y: int, ext: str) -> Response:
        zxy(z, x, y)
        bm = maps.current()
        layer, src = bm.layer(name), bm.sources.get(name)
        if layer is None or src is None or ext != layer.format:
            abort(404)
        data = src.get(z, x, y)
        if not data:
            return Response(status=204)  # no tile here: MapLibre draws nothing, asks nothing more
        resp = Response(data, mimetype=MIME[layer.format])
        if layer.vector and data[:2] == b"\x1f\x8b":
            resp.headers["Content-Encoding"] = "gzip"
        resp.cache_control.max_age = TILE_MAX_AGE
        resp.cache_control.public = False
        resp.cache_control.private = True
        return resp

    def drawn(kind: str, z: int, x: int, y: int) -> Response:
        """A tile the server draws (``labels`` over the dark style, ``raster`` for the handset), cached."""
        zxy(z, x, y)
        bm = maps.current()
        vector = [(layer, bm.sources[layer.name]) for layer in bm.layers if layer.vector]
        key = (kind, z, x, y, "-".join(layer.version for layer, _ in vector))
        with drawn_lock:
            hit = drawn_cache.get(key, b"")
            if hit != b"":
                drawn_cache.move_to_end(key)
        if hit == b"":
            if kind == "labels":
                hit = label_tile(vector, z, x, y, extra_labels()) if z >= LABEL_MINZOOM else None
            else:
                hit = raster_tile(vector, z, x, y) if z >= RASTER_MINZOOM else None
            with drawn_lock:
                drawn_cache[key] = hit
                while len(drawn_cache) > DRAWN_CACHE:
                    drawn_cache.popitem(last=False)
        if hit is None:
            return Response(status=204)
        resp = Response(hit, mimetype="image/png")
        resp.cache_control.max_age = TILE_MAX_AGE
        resp.cache_control.private = True
        return resp

    @bp.get("/basemap/labels/<int:z>/<int:x>/<int:y>.png")
    def labels(z: int, x: int, y: int) -> Response:
        return drawn("labels", z, x, y)

    @bp.get("/basemap/raster/<int:z>/<int:x>/<int:y>.png")
    def raster(z: int, x: int, y: int) -> Response:
        return drawn("raster", z, x, y)

    @bp.get("/basemap/files/<name>.pmtiles")
    def pmtiles_file(name: str) -> Response:
        bm = maps.current()
        layer = bm.layer(name)
        if layer is None or not layer.file.endswith(".pmtiles") or data_dir is None:
            abort(404)
        resp = send_file(folder(data_dir) / layer.file, mimetype="application/octet-stream", conditional=True)
        resp.cache_control.private = True
        return resp  # ranged reads (206) for a PMTiles reader in a browser or another server

    return bp
