"""A centre's own basemap: layers imported into ``<data-dir>/basemap/`` and the list of them.

``app.py import basemap FILE`` takes MBTiles or PMTiles (vector or raster, in WGS-84 Web Mercator:
copied as they are) and GeoJSON/Shapefile layers of roads, buildings, water or places in any of the
three CRSs (converted to WGS-84 and cut into vector tiles once, here). ``layers.json`` lists the
layers in drawing order with their kind, zoom range and version; the web processes read it
(``dashboard.basemap``). Nothing is ever fetched from outside the server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from domain.crs import CRS, to_wgs84
from domain.errors import GeoInputError
from domain.geofile import crs_from_name, read_features
from store.tiles import (
    TileError,
    TileSetInfo,
    VectorLayer,
    cut_tiles,
    open_tiles,
    raster_tiles_moved,
    to_mercator,
    vector_layers_moved,
    write_mbtiles,
)  # fmt: skip

ROLES = ("roads", "buildings", "water", "green", "places", "raster", "other")
NAME_KEYS = ("name", "NAME", "名称", "name_zh", "name:zh", "Name")  # a feature's label text
CLASS_KEYS = ("class", "highway", "fclass", "type", "等级", "kind")  # a road's class, if the file has one
MANIFEST = "layers.json"
FIELDS = {"name": "String", "class": "String"}  # what a cut layer's features carry
ROAD_LINES = ".roads-wgs84.geojson"  # beside a road layer's tiles: its lines (WGS-84), for init --roads
DRAW_ORDER = ("raster", "green", "water", "buildings", "roads", "other", "places")  # bottom first
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class BasemapLayer:
    """One imported layer: its name, file under the basemap folder, role, tile format and zoom range."""

    name: str
    file: str
    role: str
    format: str  # pbf, png, jpg, webp
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float] | None
    source_layers: tuple[str, ...] = ()  # vector layer ids inside the tiles
    compression: str = "none"
    show_from: int = 0  # the style draws it from this zoom (its own minimum zoom by default) …
    show_to: int = 24  # … up to this one
    version: str = ""  # changes with every import (the tile URLs carry it, so caches stay right)
    features: int = 0
    tiles: int = 0
    crs: str = "wgs84"
    source: str = ""  # the file it came from

    @property
    def vector(self) -> bool:
        """Whether its tiles are vector tiles (else raster images)."""
        return self.format == "pbf"


@dataclass
class ImportSummary:
    """What an import did, printed by ``app.py import basemap``."""

    layer: BasemapLayer
    seconds: float
    notes: list[str] = field(default_factory=list)


def folder(data_dir: Path) -> Path:
    """The basemap folder of a data directory."""
    return data_dir / "basemap"


def load_layers(data_dir: Path) -> list[BasemapLayer]:
    """The imported layers in drawing order (bottom first); [] without a basemap."""
    path = folder(data_dir) / MANIFEST
    if not path.exists():
        return []
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for item in raw.get("layers", []):
        item["bounds"] = tuple(item["bounds"]) if item.get("bounds") else None
        item["source_layers"] = tuple(item.get("source_layers") or ())
        out.append(BasemapLayer(**item))
    return out


def _save_layers(data_dir: Path, layers: list[BasemapLayer]) -> None:
    path = folder(data_dir) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"layers": [asdict(x) for x in layers]}, ensure_ascii=False, indent=1), "utf-8")
    os.replace(tmp, path)  # readers see the old list or the new one, never half of one


def _role_of(name: str, given: str | None) -> str:
    if given:
        if given not in ROLES:
            raise GeoInputError(f"--role {given!r}: one of {', '.join(ROLES)}")
        return given
    for role, words in (
        ("roads", ("road", "street", "highway", "transport", "路")),
        ("buildings", ("building", "bldg", "建筑", "房屋")),
        ("water", ("water", "river", "lake", "水")),
        ("green", ("green", "park", "landuse", "绿")),
        ("places", ("poi", "place", "label", "地名")),
    ):
        if any(w in name.lower() for w in words):
            return role
    return "other"


def layer_name(path: Path, given: str | None) -> str:
    """The layer's name: ``--name`` or the file's stem, lower case, letters, digits, - and _ (≤ 40)."""
    name = (given or re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_")) or "layer"
    if not _NAME_RE.match(name):
        raise GeoInputError(f"layer name {name!r}: a-z, 0-9, - and _ (at most 40), starting with a letter")
    return name


def _props(props: dict[str, Any], role: str) -> dict[str, Any]:
    """The properties kept in the tiles: a name, and a road's class (main for …大街/…路 without one)."""
    out: dict[str, Any] = {}
    for k in NAME_KEYS:
        v = props.get(k)
        if isinstance(v, str) and v.strip():
            out["name"] = v.strip()[:60]
            break
    for k in CLASS_KEYS:
        v = props.get(k)
        if isinstance(v, str | int) and str(v).strip():
            out["class"] = str(v).strip()[:30]
            break
    if role == "roads" and "class" not in out:
        name = out.get("name", "")
        out["class"] = "main" if name.endswith(("大街", "路", "大道", "环路")) else "minor"
    return out


def import_layer(
    data_dir: Path,
    file: Path,
    *,
    name: str | None = None,
    role: str | None = None,
    crs: str | None = None,
    minzoom: int | None = None,
    maxzoom: int | None = None,
) -> ImportSummary:
    """Import one basemap file into the data directory (replacing a layer of the same name)."""
    started = time.monotonic()
    if not file.is_file():
        raise GeoInputError(f"{file}: no such file")
    lname = layer_name(file, name)
    base = folder(data_dir)
    base.mkdir(parents=True, exist_ok=True)
    version = f"{int(time.time())}"
    suffix = file.suffix.lower()
    notes: list[str] = []
    moved = _moved_crs(file, crs) if suffix in (".mbtiles", ".pmtiles") else None
    if moved is not None:  # tiles cut on GCJ-02/BD-09: redrawn on WGS-84 into an MBTiles of our own
        return _import_moved_tiles(data_dir, file, lname, moved, role, minzoom, maxzoom, started)
    if suffix in (".mbtiles", ".pmtiles"):
        target = base / f"{lname}{suffix}"
        tmp = base / f".{lname}.tmp{suffix}"  # read by its suffix
        shutil.copyfile(file, tmp)
        try:
            info: TileSetInfo = open_tiles(tmp).info
        except TileError as exc:
            tmp.unlink(missing_ok=True)
            raise GeoInputError(str(exc)) from None
        os.replace(tmp, target)
        kind = "raster" if info.format != "pbf" else _role_of(lname, role)
        layer = BasemapLayer(
            name=lname, file=target.name, role=kind if info.format == "pbf" else "raster", format=info.format,
            minzoom=info.minzoom, maxzoom=info.maxzoom, bounds=info.bounds,
            source_layers=tuple(str(v.get("id")) for v in info.vector_layers if v.get("id")),
            compression=info.compression, show_from=info.minzoom if minzoom is None else minzoom,
            show_to=24 if maxzoom is None else maxzoom, version=version, source=file.name,
        )  # fmt: skip
        if layer.vector and not layer.source_layers:
            notes.append("the tiles list no vector_layers in their metadata: nothing of them can be styled")
    elif suffix in (".geojson", ".json", ".shp"):
        src_crs = crs or crs_from_name(file) or "wgs84"
        done = import_features(
            data_dir, lname, read_features(file, crs), role=_role_of(lname, role), minzoom=minzoom,
            maxzoom=maxzoom, crs=str(src_crs), source=file.name,
        )  # fmt: skip
        done.seconds = time.monotonic() - started
        return done
    else:
        raise GeoInputError(f"{file.name}: give .mbtiles, .pmtiles, .geojson or .shp")
    _register(data_dir, layer)
    return ImportSummary(layer, time.monotonic() - started, notes)


def _moved_crs(file: Path, crs: str | None) -> CRS | None:
    """The CRS a tile file was cut on when it is not WGS-84 (``--crs`` or a token in its name)."""
    try:
        named = CRS.parse(crs) if crs else crs_from_name(file)
    except ValueError as exc:
        raise GeoInputError(f"{file.name}: {exc}") from None
    return None if named in (None, CRS.WGS84) else named


def _import_moved_tiles(
    data_dir: Path, file: Path, lname: str, crs: CRS, role: str | None, minzoom: int | None,
    maxzoom: int | None, started: float,
) -> ImportSummary:  # fmt: skip
    """Tiles cut on GCJ-02 or BD-09 moved onto WGS-84: vector features re-cut, raster tiles warped."""
    base = folder(data_dir)
    try:
        src = open_tiles(file)
        info = src.info
        target, tmp = base / f"{lname}.mbtiles", base / f".{lname}.tmp.mbtiles"
        zooms = {"name": lname, "minzoom": str(info.minzoom), "maxzoom": str(info.maxzoom)}
        if info.format == "pbf":
            layers, bounds = vector_layers_moved(src, crs)
            fields = [{"id": v.name, "fields": {}} for v in layers]
            metadata = {**zooms, "format": "pbf", "bounds": ",".join(map(str, bounds)),
                        "json": json.dumps({"vector_layers": fields})}  # fmt: skip
            n = write_mbtiles(tmp, cut_tiles(layers, info.minzoom, info.maxzoom, bounds), metadata)
            features = sum(len(v.geoms) for v in layers)
        else:
            raster = {**zooms, "format": info.format}
            if info.bounds:
                lon, lat = to_wgs84([info.bounds[0], info.bounds[2]], [info.bounds[1], info.bounds[3]], crs)
                raster["bounds"] = f"{lon[0]},{lat[0]},{lon[1]},{lat[1]}"
            n = write_mbtiles(tmp, raster_tiles_moved(src, crs), raster)
            features = 0
    except TileError as exc:
        raise GeoInputError(str(exc) if file.name in str(exc) else f"{file.name}: {exc}") from None
    if n == 0:
        tmp.unlink(missing_ok=True)
        raise GeoInputError(f"{file.name}: no tiles left after moving them from {crs.value} to WGS-84")
    os.replace(tmp, target)
    out = open_tiles(target).info
    kind = _role_of(lname, role) if out.format == "pbf" else "raster"
    layer = BasemapLayer(
        name=lname, file=target.name, role=kind, format=out.format, minzoom=out.minzoom, maxzoom=out.maxzoom,
        bounds=out.bounds, source_layers=tuple(str(v.get("id")) for v in out.vector_layers if v.get("id")),
        compression=out.compression, show_from=out.minzoom if minzoom is None else minzoom,
        show_to=24 if maxzoom is None else maxzoom, version=f"{int(time.time())}", features=features, tiles=n,
        crs=crs.value, source=file.name,
    )  # fmt: skip
    _register(data_dir, layer)
    return ImportSummary(layer, time.monotonic() - started, [f"moved from {crs.value} to WGS-84"])


def _register(data_dir: Path, layer: BasemapLayer) -> None:
    """Put ``layer`` in the list (replacing one of its name, whose old file goes), in drawing order."""
    layers = [x for x in load_layers(data_dir) if x.name != layer.name]
    for old in folder(data_dir).glob(f"{layer.name}.*"):
        if old.name != layer.file and old.suffix in (".mbtiles", ".pmtiles"):
            old.unlink()
    layers.append(layer)
    order = {r: i for i, r in enumerate(DRAW_ORDER)}
    layers.sort(key=lambda x: order.get(x.role, 99))  # drawing order: images, areas, roads, places on top
    _save_layers(data_dir, layers)


def import_features(
    data_dir: Path,
    name: str,
    feats: Sequence[tuple[BaseGeometry, dict[str, Any]]],
    *,
    role: str,
    minzoom: int | None = None,
    maxzoom: int | None = None,
    crs: str = "wgs84",
    source: str = "",
) -> ImportSummary:
    """Cut WGS-84 features into a vector MBTiles layer (z 10–16 unless told) and list it."""
    started = time.monotonic()
    if not feats:
        raise GeoInputError(f"{source or name}: no features")
    base = folder(data_dir)
    base.mkdir(parents=True, exist_ok=True)
    lo, hi = (10 if minzoom is None else minzoom), (16 if maxzoom is None else maxzoom)
    if not 0 <= lo <= hi <= 18:
        raise GeoInputError(f"zoom range {lo}–{hi}: give 0 ≤ --minzoom ≤ --maxzoom ≤ 18")
    geoms = to_mercator([g for g, _ in feats])
    props = [_props(p, role) for _, p in feats]
    minx, miny, maxx, maxy = shapely.GeometryCollection([g for g, _ in feats]).bounds
    target, tmp = base / f"{name}.mbtiles", base / f".{name}.tmp.mbtiles"
    metadata = {
        "name": name, "format": "pbf", "minzoom": str(lo), "maxzoom": str(hi),
        "bounds": f"{minx},{miny},{maxx},{maxy}", "type": "overlay",
        "json": json.dumps({"vector_layers": [{"id": name, "fields": FIELDS}]}),
    }  # fmt: skip
    n = write_mbtiles(
        tmp, cut_tiles([VectorLayer(name, geoms, props)], lo, hi, (minx, miny, maxx, maxy)), metadata
    )
    os.replace(tmp, target)
    layer = BasemapLayer(
        name=name, file=target.name, role=role, format="pbf", minzoom=lo, maxzoom=hi,
        bounds=(minx, miny, maxx, maxy), source_layers=(name,), compression="gzip", show_from=lo, show_to=24,
        version=f"{int(time.time())}", features=len(feats), tiles=n, crs=crs, source=source,
    )  # fmt: skip
    if role == "roads":  # kept as lines too: ``init --roads basemap:<name>`` cuts the grids along them
        doc = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": _props(p, role), "geometry": shapely.geometry.mapping(g)}
            for g, p in feats if g.geom_type in ("LineString", "MultiLineString")
        ]}  # fmt: skip
        tmp_lines = base / f".{name}.tmp.geojson"
        tmp_lines.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_lines, base / f"{name}{ROAD_LINES}")
    _register(data_dir, layer)
    return ImportSummary(layer, time.monotonic() - started)


def road_lines(data_dir: Path, ref: str) -> Path:
    """The WGS-84 lines of an imported road layer named by ``basemap:<name>`` (for ``init --roads``)."""
    name = ref.split(":", 1)[1] if ref.startswith("basemap:") else ref
    path = folder(data_dir) / f"{name}{ROAD_LINES}"
    if not _NAME_RE.match(name) or not path.exists():
        here = folder(data_dir)
        known = [x.name for x in load_layers(data_dir) if (here / f"{x.name}{ROAD_LINES}").exists()]
        raise GeoInputError(
            f"--roads {ref}: no imported road layer of that name (import one with: app.py import basemap "
            f"FILE --role roads); road layers here: {', '.join(known) or 'none'}"
        )
    return path


def remove_layer(data_dir: Path, name: str) -> bool:
    """Drop one layer (its file and its entry); whether it was there."""
    layers = load_layers(data_dir)
    keep = [x for x in layers if x.name != name]
    if len(keep) == len(layers):
        return False
    for x in layers:
        if x.name == name:
            (folder(data_dir) / x.file).unlink(missing_ok=True)
            (folder(data_dir) / f"{x.name}{ROAD_LINES}").unlink(missing_ok=True)
    _save_layers(data_dir, keep)
    return True
