"""Map tiles on disk: reading MBTiles and PMTiles, and cutting vector layers into an MBTiles file.

A centre's basemap arrives as MBTiles (SQLite, TMS rows), PMTiles (one file of clustered tiles read by
byte ranges) or plain GeoJSON/Shapefile layers. The first two are read as they are (``pmtiles`` reads
PMTiles headers and directories); the layers are cut into Mapbox vector tiles (``mapbox-vector-tile``
encodes them) and written to an MBTiles file once, at import, so every layer is served the same way.
"""

from __future__ import annotations

import gzip
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
