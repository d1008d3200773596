"""The desk maps' 部件 layer (issue 18): the inventory as Mapbox vector tiles, clustered on the server.

``GET /components/tiles/<z>/<x>/<y>.pbf?v=<version>`` answers a gzip-compressed vector tile of the
objects that are not retired (``store.components.ComponentBook``), or 204 where the tile holds none.
Below zoom :data:`SINGLE_ZOOM` the tile holds clusters: the objects of each of its 8 × 8 cells as one
point at their mean position with their ``count`` (and a short ``label``), in source layers by size
(``cluster_s`` … ``cluster_xx``, one circle radius each) plus ``cluster_label`` for the counts; from
:data:`SINGLE_ZOOM` on, every object is a point with its ``id``, ``cls`` and ``state``, in a source
layer by major class (``obj_01`` … ``obj_06``, ``obj_other``), or ``obj_alert`` when it is not 完好.

The objects are kept sorted by their Morton code at 2**28 units per side, so the objects of any tile
are one slice found by two binary searches, and the cells of a cluster tile are runs of that slice.
Tiles are cached by the inventory's version, which the desk's tile URLs carry: an update changes the
URL, so a map shows the change at once and a browser may keep a tile for a day. The index is built
from the process's ``ComponentBook`` once; a newer version (named by a page, which reads it from the
store) is patched in from the objects changed since, without reloading the whole inventory.

``GET /components/glyphs/<fontstack>/<range>.pbf`` serves the digits of the counts as MapLibre's
signed-distance-field glyphs, drawn here with the labels' local font (the basemap style names it), so
no glyph server outside is asked. Who asks must be a desk session, a wall (kiosk token) or a paired
handset, as for the basemap's tiles.
"""

from __future__ import annotations

import functools
import gzip
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from store.components import RETIRED, ComponentBook, Loaded, inventory_version
from store.models import Component, ComponentHistory

LEVEL = 28  # world coordinates in integer units: 2**LEVEL per side (0.15 m at the equator)
EXTENT = 4096  # tile units per side
TILE_PX = 512  # MapLibre draws a vector tile 512 px wide at its own zoom
SINGLE_ZOOM = 16  # from this zoom every object is drawn; below it, clusters
CELL_BITS = 3  # a cluster tile has 2**3 × 2**3 cells
MAX_ZOOM = 22
EDGE = 30 * EXTENT // TILE_PX  # a cluster's circle and count stay this far inside its tile (30 px)
PATCH_MAX = 20_000  # objects changed since the tiles' version patched in; more: the whole inventory again
CACHE_TILES = 2048  # encoded tiles kept in memory (a few KB each)
TILE_MAX_AGE = 86_400  # the URL carries the inventory's version
MAX_VERSION_DIGITS = 18
INTACT = "完好"
GROUPS = ("01", "02", "03", "04", "05", "06")  # the standard's major classes of 部件
# (least count, source layer, circle radius px) of the cluster sizes, smallest first
CLUSTER_SIZES: tuple[tuple[int, str, float], ...] = (
    (1, "cluster_s", 9.0), (10, "cluster_m", 12.0), (100, "cluster_l", 15.0), (1_000, "cluster_x", 19.0),
    (10_000, "cluster_xx", 24.0),
)  # fmt: skip


def cluster_label(count: int) -> str:
    """A cluster's count as drawn: ``987``, ``9876``, ``12k`` (thousands from ten thousand on)."""
    return str(count) if count < 10_000 else f"{count // 1000}k"


def _spread(v: np.ndarray) -> np.ndarray:
    """The bits of 32-bit integers moved to the even bits of 64 (one half of a Morton code)."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):  # fmt: skip
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _spread_int(v: int) -> int:
    out = 0
    for bit in range(LEVEL):
        out |= ((v >> bit) & 1) << (2 * bit)
    return out


def world_xy(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 lon/lat (degrees) → integer Web Mercator world units at :data:`LEVEL` (y down)."""
    size = float(1 << LEVEL)
    lat_r = np.radians(np.clip(np.asarray(lat, dtype=np.float64), -85.05112878, 85.05112878))
    x = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0 * size
    y = (1.0 - np.arcsinh(np.tan(lat_r)) / math.pi) / 2.0 * size
    top = (1 << LEVEL) - 1
    return np.clip(x, 0, top).astype(np.int64), np.clip(y, 0, top).astype(np.int64)


# -- a minimal Mapbox vector tile writer (points only) --------------------------------------------------

_SMALL = [bytes([i]) if i < 0x80 else b"" for i in range(0x80)]


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_V = [_varint(i) for i in range(1 << 14)]  # every zigzagged tile coordinate and tag index


def _bytes_field(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + _varint(len(data)) + data


class _Layer:
    """One source layer of points being written: keys, values (deduplicated) and features."""

    def __init__(self, name: str, keys: Sequence[str]) -> None:
        self.name = name
        self.keys = list(keys)
        self.values: dict[str | int, int] = {}
        self.features: list[bytes] = []

    def value(self, v: str | int) -> int:
        got = self.values.get(v)
        if got is None:
            got = self.values[v] = len(self.values)
        return got

    def add(self, x: int, y: int, props: Sequence[str | int]) -> None:
        """A point at tile units (x, y) with one value per key (in the keys' order)."""
        tags = b"".join(_V[k] + _varint(self.value(v)) for k, v in enumerate(props))
        geom = b"\x09" + _varint((x << 1) ^ (x >> 31)) + _varint((y << 1) ^ (y >> 31))  # MoveTo(1)
        body = b"\x12" + _varint(len(tags)) + tags + b"\x18\x01" + b"\x22" + _varint(len(geom)) + geom
        self.features.append(b"\x12" + _varint(len(body)) + body)

    def encode(self) -> bytes:
        parts = [b"\x78\x02", _bytes_field(0x0A, self.name.encode()), *self.features]
        parts += [_bytes_field(0x1A, k.encode()) for k in self.keys]
        for v in self.values:
            inner = b"\x28" + _varint(v) if isinstance(v, int) else _bytes_field(0x0A, v.encode())
            parts.append(_bytes_field(0x22, inner))
        parts.append(b"\x28" + _varint(EXTENT))
        return b"".join(parts)


def _tile_bytes(layers: Iterable[_Layer]) -> bytes | None:
    out = [_bytes_field(0x1A, layer.encode()) for layer in layers if layer.features]
    return b"".join(out) if out else None


# -- the inventory as tiles -----------------------------------------------------------------------------

SINGLE_LAYERS = (*GROUPS, "other", "alert")  # obj_01 … obj_06, obj_other, obj_alert
_ID_VALUE = b"\x22\x12\x0a\x10"  # a layer's value message of a 16-character string, before the string


def _value(text: str) -> bytes:
    return _bytes_field(0x22, _bytes_field(0x0A, text.encode()))


SINGLE_KEYS = b"".join(_bytes_field(0x1A, k.encode()) for k in ("id", "cls", "state"))


@dataclass(frozen=True)
class ComponentTiles:
    """One version of the inventory, sorted by Morton code, cut into tiles on demand."""

    version: int
    codes: np.ndarray  # uint64 Morton codes, sorted
    wx: np.ndarray  # int64 world units (LEVEL), in the codes' order
    wy: np.ndarray
    ids: list[str]
    layer: np.ndarray  # each object's source layer (an index into SINGLE_LAYERS)
    tags: list[bytes]  # each object's cls and state tags (into the fixed values), written once
    id_values: list[bytes]  # each object's id as a layer's value message, written once
    fixed_values: bytes  # the value messages every single-object layer starts with: classes, states
    n_fixed: int  # how many those are
    classes: tuple[str, ...]  # the classes and states of those values, in order
    states: tuple[str, ...]

    @classmethod
    def of(
        cls,
        objects: Iterable[Loaded],
        version: int,
        classes: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
    ) -> ComponentTiles:
        """The tiles of these objects (any order); ``classes`` and ``states``: the values table to use
        (it must hold every object's; by default the objects' own, sorted)."""
        objs = list(objects)
        wx, wy = world_xy([o.lon for o in objs], [o.lat for o in objs])
        codes = _spread(wx) | (_spread(wy) << np.uint64(1))
        order = np.argsort(codes, kind="stable")
        ranked = [objs[i] for i in order.tolist()]
        classes = list(classes) if classes is not None else sorted({o.class_code for o in ranked})
        states = list(states) if states is not None else sorted({o.state for o in ranked})
        ci = {c: i for i, c in enumerate(classes)}
        si = {v: len(classes) + i for i, v in enumerate(states)}
        fixed = b"".join(_value(v) for v in (*classes, *states))
        where = {g: i for i, g in enumerate(SINGLE_LAYERS)}
        kinds: dict[tuple[str, str], tuple[int, bytes]] = {}  # (class, state) → layer, tags
        for c in classes:
            for v in states:
                k = where["alert"] if v != INTACT else where.get(c[:2], where["other"])
                kinds[(c, v)] = (k, b"\x01" + _varint(ci[c]) + b"\x02" + _varint(si[v]))
        kind = [kinds[(o.class_code, o.state)] for o in ranked]
        return cls(version, codes[order], wx[order], wy[order], [o.id for o in ranked],
                   np.asarray([k[0] for k in kind], dtype=np.int8), [k[1] for k in kind],
                   [_ID_VALUE + o.id.encode() if len(o.id) == 16 else _value(o.id) for o in ranked], fixed,
                   len(classes) + len(states), tuple(classes), tuple(states))  # fmt: skip

    def patched(self, changed: set[str], objects: Sequence[Loaded], version: int) -> ComponentTiles | None:
        """These tiles with the objects ``changed`` since their version taken out and ``objects`` (their
        current rows, retired ones left out) put in; None when a class or state is new (rebuild)."""
        if any(o.class_code not in self.classes or o.state not in self.states for o in objects):
            return None
        keep = np.fromiter((i not in changed for i in self.ids), dtype=bool, count=len(self.ids))
        add = ComponentTiles.of(objects, version, self.classes, self.states)
        codes = np.concatenate([self.codes[keep], add.codes])
        order = np.argsort(codes, kind="stable")
        kept = np.flatnonzero(keep).tolist()

        def merged(mine: list[Any], theirs: list[Any]) -> list[Any]:
            both = [mine[i] for i in kept] + theirs
            return [both[i] for i in order.tolist()]

        return ComponentTiles(
            version, codes[order], np.concatenate([self.wx[keep], add.wx])[order],
            np.concatenate([self.wy[keep], add.wy])[order], merged(self.ids, add.ids),
            np.concatenate([self.layer[keep], add.layer])[order], merged(self.tags, add.tags),
            merged(self.id_values, add.id_values), self.fixed_values, self.n_fixed, self.classes, self.states,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.ids)

    def _slice(self, z: int, x: int, y: int) -> tuple[int, int]:
        shift = 2 * (LEVEL - z)
        lo = (_spread_int(x) | (_spread_int(y) << 1)) << shift
        hi = lo + (1 << shift)
        i0 = int(np.searchsorted(self.codes, np.uint64(lo), side="left"))
        i1 = int(np.searchsorted(self.codes, np.uint64(hi), side="left")) if hi < (1 << 64) else len(self.ids)
        return i0, i1

    def _local(self, z: int, x: int, y: int, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        """The objects' positions in tile units (float: sub-unit at low zooms)."""
        scale = EXTENT / float(1 << (LEVEL - z))
        lx = (self.wx[i0:i1] - (x << (LEVEL - z))) * scale
        ly = (self.wy[i0:i1] - (y << (LEVEL - z))) * scale
        return lx, ly

    def count(self, z: int, x: int, y: int) -> int:
        """How many objects tile z/x/y covers."""
        i0, i1 = self._slice(z, x, y)
        return i1 - i0

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The uncompressed vector tile z/x/y (clusters below :data:`SINGLE_ZOOM`), None when empty."""
        i0, i1 = self._slice(z, x, y)
        if i1 <= i0:
            return None
        lx, ly = self._local(z, x, y, i0, i1)
        if z >= SINGLE_ZOOM:
            return self._singles(lx, ly, i0, i1)
        return self._clusters(z, lx, ly, i0, i1)

    def _singles(self, lx: np.ndarray, ly: np.ndarray, i0: int, i1: int) -> bytes | None:
        """Every object, in its layer: the id's value is the layer's next after the fixed ones, the
        class and state tags were written once, only the point is written here."""
        xs = (np.clip(lx, 0, EXTENT - 1).astype(np.int64) * 2).tolist()  # zigzag of a non-negative unit
        ys = (np.clip(ly, 0, EXTENT - 1).astype(np.int64) * 2).tolist()
        which = self.layer[i0:i1]
        n_fixed = self.n_fixed
        out = []
        for k, name in enumerate(SINGLE_LAYERS):
            picked = np.flatnonzero(which == k).tolist()
            if not picked:
                continue
            feats = []
            for j, p in enumerate(picked):
                tags = b"\x00" + _varint(n_fixed + j) + self.tags[i0 + p]
                geom = b"\x09" + _V[xs[p]] + _V[ys[p]]
                body = b"\x12" + _V[len(tags)] + tags + b"\x18\x01\x22" + _V[len(geom)] + geom
                feats.append(b"\x12" + _V[len(body)] + body)
            ids = [self.id_values[i0 + p] for p in picked]
            layer = b"".join([b"\x78\x02", _bytes_field(0x0A, f"obj_{name}".encode()), *feats, SINGLE_KEYS,
                              self.fixed_values, *ids, b"\x28" + _varint(EXTENT)])  # fmt: skip
            out.append(_bytes_field(0x1A, layer))
        return b"".join(out) or None

    def _clusters(self, z: int, lx: np.ndarray, ly: np.ndarray, i0: int, i1: int) -> bytes | None:
        cells = self.codes[i0:i1] >> np.uint64(2 * (LEVEL - z - CELL_BITS))
        starts = np.flatnonzero(np.concatenate(([True], cells[1:] != cells[:-1])))
        counts = np.diff(np.append(starts, i1 - i0))
        mx = np.clip(np.add.reduceat(lx, starts) / counts, EDGE, EXTENT - EDGE).round().astype(np.int64)
        my = np.clip(np.add.reduceat(ly, starts) / counts, EDGE, EXTENT - EDGE).round().astype(np.int64)
        sizes = [_Layer(name, ("count", "label")) for _, name, _ in CLUSTER_SIZES]
        labels = _Layer("cluster_label", ("count", "label"))
        least = np.asarray([c[0] for c in CLUSTER_SIZES])
        which = (np.searchsorted(least, counts, side="right") - 1).tolist()
        for cx, cy, n, k in zip(mx.tolist(), my.tolist(), counts.tolist(), which, strict=True):
            props = (int(n), cluster_label(int(n)))
            sizes[k].add(cx, cy, props)
            labels.add(cx, cy, props)
        return _tile_bytes([*sizes, labels])


# -- the counts' glyphs: signed-distance-field digits for MapLibre (no glyph server, nothing from outside)

GLYPH_CHARS = "0123456789k+"  # what a cluster's label uses
GLYPH_PX = 24  # MapLibre's glyphs are 24 px with a 3-px border; the SDF spans 8 px, its edge at 192
GLYPH_BORDER = 3
SDF_RADIUS = 8.0
SDF_CUTOFF = 0.25
MAX_FONTSTACK = 200


def _sdf(alpha: np.ndarray) -> np.ndarray:
    """The signed distance field (bytes, 192 on the outline) of a glyph's coverage with its border."""
    inside = np.pad(alpha, GLYPH_BORDER) >= 128
    h, w = inside.shape
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.column_stack([yy.ravel(), xx.ravel()]).astype(np.float64)
    ins, outs = pts[inside.ravel()], pts[~inside.ravel()]

    def nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(b) == 0:
            return np.full(len(a), SDF_RADIUS * 2)
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2).min(axis=1))

    dist = np.empty(len(pts))
    flat = inside.ravel()
    dist[~flat] = nearest(outs, ins) - 0.5
    dist[flat] = -(nearest(ins, outs) - 0.5)
    return np.clip(255 - 255 * (dist / SDF_RADIUS + SDF_CUTOFF), 0, 255).astype(np.uint8)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 31)


@functools.lru_cache(maxsize=1)
def _digit_glyphs() -> bytes:
    """The glyph messages of :data:`GLYPH_CHARS` (drawn once with the labels' font, or Pillow's own)."""
    from PIL import Image, ImageDraw, ImageFont

    from dashboard.labels import cjk_font

    face = cjk_font()
    font: Any = (ImageFont.truetype(face.path, GLYPH_PX, index=face.index) if face is not None
                 else ImageFont.load_default(size=GLYPH_PX))  # fmt: skip
    out = []
    for ch in GLYPH_CHARS:
        x0, y0, x1, y1 = (int(v) for v in font.getbbox(ch, anchor="ls"))
        w, h = max(1, x1 - x0), max(1, y1 - y0)
        img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(img).text((-x0, -y0), ch, font=font, fill=255, anchor="ls")
        bitmap = _sdf(np.asarray(img)).tobytes()
        msg = (b"\x08" + _varint(ord(ch)) + _bytes_field(0x12, bitmap) + b"\x18" + _varint(w)
               + b"\x20" + _varint(h) + b"\x28" + _varint(_zigzag(x0)) + b"\x30" + _varint(_zigzag(-y0 - 27))
               + b"\x38" + _varint(round(font.getlength(ch))))  # fmt: skip
        out.append(_bytes_field(0x1A, msg))
    return b"".join(out)


def glyph_range(fontstack: str, start: int) -> bytes:
    """A MapLibre glyph range (``glyphs.proto``): the digits of the counts in the range 0–255, no glyph
    in any other range (those characters are not drawn)."""
    body = _bytes_field(0x0A, fontstack.encode()) + _bytes_field(0x12, f"{start}-{start + 255}".encode())
    if start == 0:
        body += _digit_glyphs()
    return _bytes_field(0x0A, body)


# -- the blueprint -------------------------------------------------------------------------------------


class TileServer:
    """The tiles of the current inventory of one book: the sorted index per version, and an LRU of
    encoded (gzip) tiles keyed by version and z/x/y."""

    def __init__(self, book: Callable[[], ComponentBook], cache_tiles: int = CACHE_TILES) -> None:
        self.book = book
        self.cache_tiles = cache_tiles
        self._tiles: ComponentTiles | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int, int, int], bytes | None] = OrderedDict()

    def current(self, wanted: int = 0) -> ComponentTiles:
        """The tiles of the newest inventory known: built from the book's once, then patched with the
        objects changed since (read from the store) when a page or the book names a newer version."""
        tiles = self._tiles
        if tiles is not None and wanted and wanted <= tiles.version:
            return tiles
        book = self.book()
        inv = book.inventory()
        newest = max(wanted, inv.version)
        if tiles is not None and newest <= tiles.version:
            return tiles
        with self._lock:
            tiles = self._tiles
            if tiles is not None and newest <= tiles.version:
                return tiles
            got = self._patched(tiles, book) if tiles is not None else None
            if got is None:  # first use, or too much changed: the book's whole inventory
                if wanted > inv.version:
                    book.expire()
                    inv = book.inventory()
                got = ComponentTiles.of(inv.by_id.values(), inv.version)
            self._tiles = got
            self._cache.clear()
            return got

    def _patched(self, tiles: ComponentTiles, book: ComponentBook) -> ComponentTiles | None:
        """``tiles`` with the objects changed since their version (None: more than PATCH_MAX changed)."""
        h, c = ComponentHistory.__table__.c, Component.__table__.c
        try:
            with book.engine.connect() as conn:
                version = inventory_version(conn)
                changed = set(conn.scalars(select(h.component_id).where(h.id > tiles.version).distinct()
                                           .limit(PATCH_MAX + 1)))  # fmt: skip
                if len(changed) > PATCH_MAX:
                    return None
                rows: list[Any] = []
                ordered = sorted(changed)
                cols = select(c.id, c.class_code, c.lon, c.lat, c.state)
                for at in range(0, len(ordered), 500):
                    part = ordered[at : at + 500]
                    rows += conn.execute(cols.where(c.id.in_(part), c.state != RETIRED)).all()
        except SQLAlchemyError:
            return tiles
        objs = [Loaded(r[0], r[1], "", float(r[2]), float(r[3]), None, r[4], {}) for r in rows]
        return tiles.patched(changed, objs, version)

    def get(self, z: int, x: int, y: int, wanted: int = 0) -> bytes | None:
        """The gzip-compressed tile z/x/y of the current inventory, or None (no object there)."""
        tiles = self.current(wanted)
        key = (tiles.version, z, x, y)
        with self._lock:
            hit = self._cache.get(key, b"")
            if hit != b"":
                self._cache.move_to_end(key)
                return hit
        raw = tiles.tile(z, x, y)
        data = None if raw is None else gzip.compress(raw, compresslevel=6, mtime=0)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.cache_tiles:
                self._cache.popitem(last=False)
        return data


def _refuse(status: int, error: str, message: str) -> Response:
    body = orjson.dumps({"error": error, "message": message})
    return Response(body, status=status, mimetype="application/json")


def component_tiles_blueprint(book: Callable[[], ComponentBook], allowed: Callable[[], bool]) -> Blueprint:
    """``/components/tiles/<z>/<x>/<y>.pbf?v=<version>`` for a desk session, wall or handset only."""
    bp = Blueprint("component_tiles", __name__)
    server = TileServer(book)
    bp.tile_server = server  # type: ignore[attr-defined]  # the bench reads its cache
    threading.Thread(target=_digit_glyphs, name="gw-glyphs", daemon=True).start()  # drawn before asked for

    @bp.before_request
    def who() -> Response | None:
        if not allowed():
            return _refuse(401, "login_required", "a desk session, kiosk token or paired handset")
        return None

    @bp.get("/components/tiles/<int:z>/<int:x>/<int:y>.pbf")
    def tile(z: int, x: int, y: int) -> Response:
        if not (0 <= z <= MAX_ZOOM and 0 <= x < (1 << z) and 0 <= y < (1 << z)):
            return _refuse(404, "bad_tile", f"z 0–{MAX_ZOOM}, x and y 0 … 2**z − 1")
        v = request.args.get("v", "0")
        if not v.isdigit() or len(v) > MAX_VERSION_DIGITS:
            return _refuse(400, "bad_version", f"v: the inventory's version (digits, ≤ {MAX_VERSION_DIGITS})")
        data = server.get(z, x, y, int(v))
        if data is None:
            return Response(status=204)
        resp = Response(data, mimetype="application/x-protobuf")
        resp.headers["Content-Encoding"] = "gzip"
        resp.cache_control.max_age = TILE_MAX_AGE
        resp.cache_control.private = True
        return resp

    @bp.get("/components/glyphs/<fontstack>/<int:start>-<int:end>.pbf")
    def glyphs(fontstack: str, start: int, end: int) -> Response:
        if len(fontstack) > MAX_FONTSTACK:
            return _refuse(400, "bad_fontstack", f"a font stack of at most {MAX_FONTSTACK} characters")
        if start % 256 or end != start + 255 or start > 65_280:
            return _refuse(404, "bad_range", "a glyph range is 256 characters from a multiple of 256")
        resp = Response(glyph_range(fontstack, start), mimetype="application/x-protobuf")
        resp.cache_control.max_age = TILE_MAX_AGE
        resp.cache_control.private = True
        return resp

    return bp
