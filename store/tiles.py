"""Map tiles on disk: reading MBTiles and PMTiles, and cutting vector layers into an MBTiles file.

A centre's basemap arrives as MBTiles (SQLite, TMS rows), PMTiles (one file of clustered tiles read by
byte ranges) or plain GeoJSON/Shapefile layers. The first two are read as they are (``pmtiles`` reads
PMTiles headers and directories); the layers are cut into Mapbox vector tiles (``mapbox-vector-tile``
encodes them) and written to an MBTiles file once, at import, so every layer is served the same way.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import mmap
import sqlite3
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

EARTH = 6378137.0  # Web Mercator sphere (EPSG:3857)
HALF = math.pi * EARTH
EXTENT = 4096  # vector tile units per side
MAX_ZOOM = 22


class TileError(ValueError):
    """A basemap file that cannot be read as tiles (the import names it)."""


@dataclass(frozen=True)
class TileSetInfo:
    """What a tile file says about itself."""

    format: str  # pbf, png, jpg, webp
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float] | None  # WGS-84 lon/lat
    vector_layers: tuple[dict[str, Any], ...] = ()  # id and geometry hints of each vector layer
    compression: str = "none"  # how stored tile bytes are encoded (gzip for most vector tiles)


class TileSource(Protocol):
    """Something that answers z/x/y (XYZ rows, y down) with the stored bytes, or None."""

    info: TileSetInfo

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """The tile's stored bytes (maybe gzip-compressed) or None where there is no tile."""
        ...

    def at_zoom(self, z: int) -> Iterator[tuple[int, int]]:
        """(x, y) of every stored tile of zoom ``z`` (XYZ)."""
        ...


def mercator(lon: Any, lat: Any) -> tuple[Any, Any]:
    """WGS-84 lon/lat (degrees, arrays) → Web Mercator metres."""
    lat = np.clip(np.asarray(lat, dtype=np.float64), -85.05112878, 85.05112878)
    x = np.radians(np.asarray(lon, dtype=np.float64)) * EARTH
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * EARTH
    return x, y


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Web Mercator bounds (minx, miny, maxx, maxy) of XYZ tile z/x/y."""
    size = 2 * HALF / (1 << z)
    minx = -HALF + x * size
    maxy = HALF - y * size
    return minx, maxy - size, minx + size, maxy


def tile_lonlat_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """WGS-84 bounds of XYZ tile z/x/y."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)

    def lat(m: float) -> float:
        return math.degrees(2 * math.atan(math.exp(m / EARTH)) - math.pi / 2)

    return math.degrees(minx / EARTH), lat(miny), math.degrees(maxx / EARTH), lat(maxy)


def tiles_covering(bounds: tuple[float, float, float, float], z: int) -> Iterator[tuple[int, int]]:
    """(x, y) of the XYZ tiles of zoom ``z`` that cover WGS-84 ``bounds``."""
    (x0, x1), (y0, y1) = mercator([bounds[0], bounds[2]], [bounds[1], bounds[3]])
    size = 2 * HALF / (1 << z)
    n = (1 << z) - 1
    tx0, tx1 = max(0, int((x0 + HALF) // size)), min(n, int((x1 + HALF) // size))
    ty0, ty1 = max(0, int((HALF - y1) // size)), min(n, int((HALF - y0) // size))
    for tx in range(tx0, tx1 + 1):
        for ty in range(ty0, ty1 + 1):
            yield tx, ty


# -- MBTiles -------------------------------------------------------------------------------------------


def _format_of(value: str | None) -> str:
    fmt = (value or "").lower().strip()
    return {"jpeg": "jpg", "mvt": "pbf", "": "pbf"}.get(fmt, fmt)


class MBTiles:
    """An MBTiles file opened read-only (one SQLite connection per thread; rows are TMS, y up)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            meta = dict(self._db().execute("SELECT name, value FROM metadata").fetchall())
            self._db().execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise TileError(f"{path.name}: not an MBTiles file ({exc})") from None
        fmt = _format_of(meta.get("format"))
        if fmt not in ("pbf", "png", "jpg", "webp"):
            raise TileError(f"{path.name}: tile format {meta.get('format')!r} (pbf, png, jpg or webp)")
        zooms = self._db().execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        if zooms[0] is None:
            raise TileError(f"{path.name}: no tiles")
        bounds = None
        if meta.get("bounds"):
            try:
                b = tuple(float(v) for v in str(meta["bounds"]).split(","))
                bounds = (b[0], b[1], b[2], b[3]) if len(b) == 4 else None
            except ValueError:
                bounds = None
        layers: tuple[dict[str, Any], ...] = ()
        if meta.get("json"):
            try:
                layers = tuple(json.loads(meta["json"]).get("vector_layers") or ())
            except (ValueError, AttributeError):
                layers = ()
        first = self._db().execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()[0]
        gz = bytes(first[:2]) == b"\x1f\x8b"
        self.info = TileSetInfo(fmt, int(zooms[0]), int(zooms[1]), bounds, layers, "gzip" if gz else "none")

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            self._local.db = db
        return db

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """The stored bytes of XYZ tile z/x/y."""
        row = (
            self._db()
            .execute(
                "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                (z, x, (1 << z) - 1 - y),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def at_zoom(self, z: int) -> Iterator[tuple[int, int]]:
        """(x, y) of every stored tile of zoom ``z`` (XYZ)."""
        rows = self._db().execute("SELECT tile_column, tile_row FROM tiles WHERE zoom_level=?", (z,))
        for x, row in rows.fetchall():
            yield int(x), (1 << z) - 1 - int(row)


def write_mbtiles(path: Path, tiles: Iterable[tuple[int, int, int, bytes]], metadata: dict[str, str]) -> int:
    """Write XYZ tiles (z, x, y, bytes) and metadata to a new MBTiles file; the number of tiles."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.executescript(
            "CREATE TABLE metadata (name TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);"
            "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
        )
        n = 0
        with db:
            db.executemany("INSERT INTO metadata VALUES (?, ?)", sorted(metadata.items()))
            for z, x, y, data in tiles:
                db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, data))
                n += 1
        return n
    finally:
        db.close()


# -- PMTiles -------------------------------------------------------------------------------------------


class PMTiles:
    """A PMTiles v3 file read through a memory map; header and directories parsed once (``pmtiles``)."""

    def __init__(self, path: Path) -> None:
        from pmtiles.reader import deserialize_header
        from pmtiles.tile import Compression, TileType

        self.path = path
        self._fh = path.open("rb")
        try:
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            self.header = deserialize_header(self._map[0:127])
        except Exception as exc:  # the library's own errors (MagicNumberNotFound …) and short files
            self._fh.close()
            raise TileError(f"{path.name}: not a PMTiles v3 file ({type(exc).__name__})") from None
        if self._map[0:7] != b"PMTiles" or self.header.get("version") != 3:
            raise TileError(f"{path.name}: not a PMTiles v3 file")
        kinds = {TileType.MVT: "pbf", TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp"}
        fmt = kinds.get(self.header["tile_type"])
        if fmt is None:
            raise TileError(f"{path.name}: tile type {self.header['tile_type']!r} (mvt, png, jpg or webp)")
        h = self.header
        bounds = (h["min_lon_e7"] / 1e7, h["min_lat_e7"] / 1e7, h["max_lon_e7"] / 1e7, h["max_lat_e7"] / 1e7)
        layers: tuple[dict[str, Any], ...] = ()
        try:
            meta = self._bytes(h["metadata_offset"], h["metadata_length"])
            if h["internal_compression"] == Compression.GZIP:
                meta = gzip.decompress(meta)
            doc = json.loads(meta)
            if "vector_layers" not in doc and isinstance(doc.get("json"), str):  # converted from MBTiles
                doc = json.loads(doc["json"])
            layers = tuple(doc.get("vector_layers") or ())
        except (ValueError, OSError, AttributeError):
            layers = ()
        gz = h["tile_compression"] == Compression.GZIP
        zooms = int(h["min_zoom"]), int(h["max_zoom"])
        self.info = TileSetInfo(fmt, *zooms, bounds, layers, "gzip" if gz else "none")
        self._gz_dirs = h["internal_compression"] == Compression.GZIP
        self._dir = lru_cache(maxsize=256)(self._directory)

    def _bytes(self, offset: int, length: int) -> bytes:
        return self._map[offset : offset + length]

    def _directory(self, offset: int, length: int) -> list[Any]:
        from pmtiles.reader import deserialize_directory

        return list(deserialize_directory(self._bytes(offset, length)))

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """The stored bytes of XYZ tile z/x/y (directories cached, so a read is a few lookups)."""
        from pmtiles.reader import find_tile
        from pmtiles.tile import zxy_to_tileid

        if not 0 <= z <= MAX_ZOOM:
            return None
        tile_id = zxy_to_tileid(z, x, y)
        h = self.header
        offset, length = h["root_offset"], h["root_length"]
        for _depth in range(4):
            entry = find_tile(self._dir(offset, length), tile_id)
            if entry is None:
                return None
            if entry.run_length > 0:
                return self._bytes(h["tile_data_offset"] + entry.offset, entry.length)
            offset, length = h["leaf_directory_offset"] + entry.offset, entry.length
        return None

    def at_zoom(self, z: int) -> Iterator[tuple[int, int]]:
        """(x, y) of every stored tile of zoom ``z`` (walks the directories once)."""
        from pmtiles.reader import tileid_to_zxy, zxy_to_tileid

        lo, hi = zxy_to_tileid(z, 0, 0), zxy_to_tileid(z + 1, 0, 0)
        h = self.header

        def walk(offset: int, length: int) -> Iterator[tuple[int, int]]:
            for e in self._dir(offset, length):
                if e.run_length == 0:
                    yield from walk(h["leaf_directory_offset"] + e.offset, e.length)
                    continue
                for tid in range(max(e.tile_id, lo), min(e.tile_id + e.run_length, hi)):
                    _, x, y = tileid_to_zxy(tid)
                    yield x, y

        yield from walk(h["root_offset"], h["root_length"])


def open_tiles(path: Path) -> TileSource:
    """An MBTiles or PMTiles file by its extension (named refusal otherwise)."""
    suffix = path.suffix.lower()
    if suffix == ".mbtiles":
        return MBTiles(path)
    if suffix == ".pmtiles":
        return PMTiles(path)
    raise TileError(f"{path.name}: not a tile file (.mbtiles or .pmtiles)")


# -- cutting vector layers into tiles ------------------------------------------------------------------


@dataclass
class VectorLayer:
    """Features of one layer in Web Mercator, with the properties kept for the tiles."""

    name: str
    geoms: list[BaseGeometry]
    props: list[dict[str, Any]]
    tree: shapely.STRtree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geoms)


def to_mercator(geoms: Sequence[BaseGeometry]) -> list[BaseGeometry]:
    """WGS-84 geometries → Web Mercator (one vectorised pass)."""

    def fn(c: np.ndarray) -> np.ndarray:
        x, y = mercator(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    return list(shapely.transform(np.asarray(geoms, dtype=object), fn))


def cut_tiles(
    layers: Sequence[VectorLayer], minzoom: int, maxzoom: int, bounds: tuple[float, float, float, float]
) -> Iterator[tuple[int, int, int, bytes]]:
    """Gzip-compressed Mapbox vector tiles (z, x, y, bytes) of ``layers`` over WGS-84 ``bounds``.

    Each feature is clipped to its tile and a 64-unit buffer, simplified to one tile unit, and
    quantised to 4096 units per side (``mapbox_vector_tile.encode``).
    """
    import mapbox_vector_tile

    for z in range(minzoom, maxzoom + 1):
        for x, y in tiles_covering(bounds, z):
            minx, miny, maxx, maxy = tile_bounds(z, x, y)
            unit = (maxx - minx) / EXTENT
            pad = 64 * unit
            box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
            out = []
            for layer in layers:
                idx = layer.tree.query(shapely.box(*box))
                feats = []
                for i in sorted(idx.tolist()):
                    g = shapely.clip_by_rect(layer.geoms[i], *box)
                    if z < maxzoom:
                        g = shapely.simplify(g, unit, preserve_topology=True)
                    if g.is_empty:
                        continue
                    feats.append({"geometry": g, "properties": layer.props[i]})
                if feats:
                    out.append({"name": layer.name, "features": feats})
            if not out:
                continue
            with warnings.catch_warnings():  # its use of shapely.ops.transform (deprecated in shapely 2.1)
                warnings.simplefilter("ignore", DeprecationWarning)
                data = mapbox_vector_tile.encode(
                    out,
                    default_options={"quantize_bounds": (minx, miny, maxx, maxy), "extents": EXTENT},
                )
            yield z, x, y, gzip.compress(data, compresslevel=6, mtime=0)


# -- tiles cut on GCJ-02 (a Chinese web map's datum) moved onto WGS-84 -----------------------------------


def _lonlat_of_mercator(x: Any, y: Any) -> tuple[Any, Any]:
    lon = np.degrees(np.asarray(x) / EARTH)
    lat = np.degrees(2 * np.arctan(np.exp(np.asarray(y) / EARTH)) - np.pi / 2)
    return lon, lat


def vector_layers_moved(
    src: TileSource, crs: str
) -> tuple[list[VectorLayer], tuple[float, float, float, float]]:
    """The features of a vector tile set's deepest zoom, each clipped to its own tile, moved from
    ``crs`` (GCJ-02 or BD-09) to WGS-84, in Web Mercator by source layer; and their WGS-84 bounds."""
    import mapbox_vector_tile
    from shapely import affinity
    from shapely.geometry import shape

    from domain.crs import to_wgs84

    z = src.info.maxzoom
    geoms: dict[str, list[BaseGeometry]] = {}
    props: dict[str, list[dict[str, Any]]] = {}

    def move(coords: np.ndarray) -> np.ndarray:
        lon, lat = _lonlat_of_mercator(coords[:, 0], coords[:, 1])
        wlon, wlat = to_wgs84(lon, lat, crs)
        mx, my = mercator(wlon, wlat)
        return np.column_stack([mx, my])

    for x, y in src.at_zoom(z):
        data = src.get(z, x, y)
        if not data:
            continue
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        size = maxx - minx
        tile = mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True})
        for name, layer in tile.items():
            extent = layer.get("extent", EXTENT)
            for f in layer.get("features", []):
                try:
                    g = shape(f["geometry"])
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue
                unit = size / extent  # tile units (y down) → mercator metres
                g = affinity.affine_transform(g, [unit, 0, 0, -unit, minx, maxy])
                g = shapely.clip_by_rect(g, minx, miny, maxx, maxy)  # its own tile's part only
                if g.is_empty:
                    continue
                geoms.setdefault(name, []).append(shapely.transform(g, move))
                props.setdefault(name, []).append(dict(f.get("properties") or {}))
    if not geoms:
        raise TileError("no vector features at the deepest zoom")
    layers = [VectorLayer(n, geoms[n], props[n]) for n in sorted(geoms)]
    allg = shapely.GeometryCollection([g for v in layers for g in v.geoms])
    bx0, by0, bx1, by1 = allg.bounds
    lon, lat = _lonlat_of_mercator([bx0, bx1], [by0, by1])
    return layers, (float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1]))


def raster_tiles_moved(src: TileSource, crs: str) -> Iterator[tuple[int, int, int, bytes]]:
    """Raster tiles of ``src`` (cut on ``crs``) redrawn on WGS-84: each output tile's corners are
    looked up in the source pyramid (a GCJ-02 offset changes little within a tile) and the source
    pixels warped onto it (Pillow's quad transform)."""
    from PIL import Image

    from domain.crs import from_wgs84, to_wgs84

    info = src.info
    if info.bounds is None:
        raise TileError("a raster tile set without bounds cannot be moved to WGS-84")
    b = info.bounds
    wlon, wlat = to_wgs84(np.array([b[0], b[2]]), np.array([b[1], b[3]]), crs)
    wgs_bounds = (float(wlon[0]), float(wlat[0]), float(wlon[1]), float(wlat[1]))
    fmt = "JPEG" if info.format == "jpg" else info.format.upper()
    for z in range(info.minzoom, info.maxzoom + 1):
        cache: dict[tuple[int, int], Image.Image | None] = {}  # the source tiles of this zoom, read once
        tile_px = 256
        for x, y in tiles_covering(wgs_bounds, z):
            w, s_, e, n = tile_lonlat_bounds(z, x, y)
            clon, clat = from_wgs84(np.array([w, w, e, e]), np.array([n, s_, s_, n]), crs)  # UL LL LR UR
            scale = (1 << z) / 360.0
            gx = (clon + 180) * scale
            gy = (1 - np.arcsinh(np.tan(np.radians(clat))) / np.pi) / 2 * (1 << z)
            tx0, tx1 = int(np.floor(gx.min())), int(np.floor(gx.max()))
            ty0, ty1 = int(np.floor(gy.min())), int(np.floor(gy.max()))
            for tx in range(tx0, tx1 + 1):
                for ty in range(ty0, ty1 + 1):
                    if (tx, ty) not in cache:
                        data = src.get(z, tx, ty)
                        cache[(tx, ty)] = Image.open(io.BytesIO(data)).convert("RGBA") if data else None
                        if len(cache) > 512:  # a band of source tiles is enough: output goes column by column
                            del cache[next(iter(cache))]
            parts = {(tx, ty): cache[(tx, ty)] for tx in range(tx0, tx1 + 1) for ty in range(ty0, ty1 + 1)}
            if not any(parts.values()):
                continue
            tile_px = next(im.width for im in parts.values() if im is not None)
            mosaic = Image.new("RGBA", ((tx1 - tx0 + 1) * tile_px, (ty1 - ty0 + 1) * tile_px), (0, 0, 0, 0))
            for (tx, ty), im in parts.items():
                if im is not None:
                    mosaic.paste(im, ((tx - tx0) * tile_px, (ty - ty0) * tile_px))
            quad = [v for i in range(4) for v in ((gx[i] - tx0) * tile_px, (gy[i] - ty0) * tile_px)]
            out = mosaic.transform((tile_px, tile_px), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            (out.convert("RGB") if fmt == "JPEG" else out).save(buf, format=fmt)
            yield z, x, y, buf.getvalue()
