"""Reading boundary files (GeoJSON, Shapefile) into WGS-84 polygons with named rejections.

Every input names its CRS: ``--crs`` on the command line, else a GeoJSON ``crs`` member, else a
token in the file name (``_gcj02``, ``_wgs84``, ``_bd09``), else GeoJSON's own rule (RFC 7946:
WGS-84). A Shapefile without ``--crs`` needs a ``.prj`` naming WGS 84.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import shapely
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from domain.city import ImportedPolygon
from domain.crs import CRS
from domain.errors import GeoInputError
from domain.geo import geometry_to_wgs84, polygonal

_NAME_KEYS = ("name", "NAME", "名称", "name_zh", "Name")
_CODE_KEYS = ("code", "CODE", "编码", "adcode", "gridcode", "grid_code", "Code")
_LEVEL_KEYS = ("level", "LEVEL", "管理等级", "grade")


def crs_from_name(path: Path) -> CRS | None:
    """The CRS named by a token in the file name, if any."""
    m = re.search(r"(wgs-?84|gcj-?02|bd-?09)", path.name.lower())
    return CRS.parse(m.group(1)) if m else None


def _pick(props: dict[str, Any], keys: tuple[str, ...], field: str | None) -> Any:
    if field:
        return props.get(field)
    for k in keys:
        if k in props and props[k] not in (None, ""):
            return props[k]
    return None


def _features_geojson(path: Path) -> tuple[list[dict[str, Any]], CRS | None]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise GeoInputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise GeoInputError(f"{path}: malformed GeoJSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise GeoInputError(f"{path}: malformed GeoJSON: no top-level object with a 'type'")
    named: CRS | None = None
    crs_member = doc.get("crs")
    if isinstance(crs_member, dict):
        name = (crs_member.get("properties") or {}).get("name")
        if isinstance(name, str):
            try:
                named = CRS.parse(name)
            except ValueError:
                raise GeoInputError(f"{path}: unsupported CRS {name!r} (wgs84, gcj02 or bd09)") from None
    kind = doc["type"]
    if kind == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise GeoInputError(f"{path}: malformed GeoJSON: 'features' is not a list")
        return feats, named
    if kind == "Feature":
        return [doc], named
    if kind in ("Polygon", "MultiPolygon"):
        return [{"type": "Feature", "properties": {}, "geometry": doc}], named
    raise GeoInputError(f"{path}: malformed GeoJSON: expected polygons, got type {kind!r}")


def _features_shapefile(path: Path) -> tuple[list[dict[str, Any]], CRS | None]:
    import shapefile  # pyshp

    try:
        reader = shapefile.Reader(str(path), encoding="utf-8")
        feats = [
            {"type": "Feature", "properties": rec.as_dict(), "geometry": shp.__geo_interface__}
            for shp, rec in zip(reader.shapes(), reader.records(), strict=True)
        ]
    except (
        shapefile.ShapefileException,
        OSError,
        UnicodeDecodeError,
        struct.error,
        KeyError,
        ValueError,
    ) as exc:
        raise GeoInputError(f"{path}: unreadable Shapefile: {exc}") from None
    named: CRS | None = None
    prj = path.with_suffix(".prj")
    if prj.exists():
        text = prj.read_text(errors="replace")
        if "PROJCS" not in text and re.search(r"WGS[ _]?(19)?84", text):
            named = CRS.WGS84
        else:
            raise GeoInputError(f"{path}: the .prj is not geographic WGS 84; name the CRS with --crs")
    return feats, named


def read_polygons(
    path: str | Path,
    crs: str | CRS | None = None,
    *,
    name_field: str | None = None,
    code_field: str | None = None,
) -> list[ImportedPolygon]:
    """Read polygon features from a GeoJSON or Shapefile and convert them to WGS-84."""
    p = Path(path)
    if not p.exists():
        raise GeoInputError(f"{p}: no such file")
    if p.suffix.lower() == ".shp":
        feats, named = _features_shapefile(p)
        default = None
    else:
        feats, named = _features_geojson(p)
        default = CRS.WGS84
    if crs is not None:
        try:
            src = crs if isinstance(crs, CRS) else CRS.parse(str(crs))
        except ValueError as exc:
            raise GeoInputError(f"{p}: {exc}") from None
    else:
        src_opt = named or crs_from_name(p) or default
        if src_opt is None:
            raise GeoInputError(f"{p}: name its CRS with --crs wgs84|gcj02|bd09")
        src = src_opt
    out: list[ImportedPolygon] = []
    for i, feat in enumerate(feats, start=1):
        props = feat.get("properties") if isinstance(feat, dict) else None
        if not isinstance(props, dict):
            props = {}
        label_name = _pick(props, _NAME_KEYS, name_field)
        label = f"{p}: feature {i}" + (f" ({label_name})" if label_name else "")
        geom_doc = feat.get("geometry") if isinstance(feat, dict) else None
        if not geom_doc:
            raise GeoInputError(f"{label}: no geometry")
        try:
            geom: BaseGeometry = shape(geom_doc)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, ShapelyError) as exc:
            raise GeoInputError(f"{label}: malformed geometry ({exc})") from None
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise GeoInputError(f"{label}: expected a Polygon or MultiPolygon, got {geom.geom_type}")
        if geom.is_empty:
            raise GeoInputError(f"{label}: empty geometry")
        if not shapely.is_valid(geom):
            reason = shapely.is_valid_reason(geom)
            raise GeoInputError(f"{label}: invalid polygon: {reason}")
        wgs = polygonal(geometry_to_wgs84(geom, src))
        code = _pick(props, _CODE_KEYS, code_field)
        level = _pick(props, _LEVEL_KEYS, None)
        out.append(
            ImportedPolygon(
                code=None if code is None else str(code),
                name=str(label_name) if label_name else "",
                geometry=wgs,
                level=None if level is None else str(level),
                label=label,
            )
        )
    if not out:
        raise GeoInputError(f"{p}: no features")
    return out


def _source_crs(p: Path, named: CRS | None, default: CRS | None, crs: str | CRS | None) -> CRS:
    """The CRS of a file: ``crs`` given, else the file's own, else its name's token, else ``default``."""
    if crs is not None:
        try:
            return crs if isinstance(crs, CRS) else CRS.parse(str(crs))
        except ValueError as exc:
            raise GeoInputError(f"{p}: {exc}") from None
    src = named or crs_from_name(p) or default
    if src is None:
        raise GeoInputError(f"{p}: name its CRS with --crs wgs84|gcj02|bd09")
    return src


def read_features(
    path: str | Path, crs: str | CRS | None = None
) -> list[tuple[BaseGeometry, dict[str, Any]]]:
    """Every feature of a GeoJSON or Shapefile (any geometry type) in WGS-84, with its properties.

    Features without a geometry or with a malformed one are refused by name, as in ``read_polygons``.
    """
    p = Path(path)
    if not p.exists():
        raise GeoInputError(f"{p}: no such file")
    if p.suffix.lower() == ".shp":
        feats, named = _features_shapefile(p)
        src = _source_crs(p, named, None, crs)
    else:
        feats, named = _features_geojson(p)
        src = _source_crs(p, named, CRS.WGS84, crs)
    geoms: list[BaseGeometry] = []
    propss: list[dict[str, Any]] = []
    for i, feat in enumerate(feats, start=1):
        props = feat.get("properties") if isinstance(feat, dict) else None
        geom_doc = feat.get("geometry") if isinstance(feat, dict) else None
        if not geom_doc:
            raise GeoInputError(f"{p}: feature {i}: no geometry")
        try:
            geom: BaseGeometry = shape(geom_doc)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, ShapelyError) as exc:
            raise GeoInputError(f"{p}: feature {i}: malformed geometry ({exc})") from None
        if not geom.is_empty:
            geoms.append(geom)
            propss.append(props if isinstance(props, dict) else {})
    if not geoms:
        raise GeoInputError(f"{p}: no features")
    # one vectorised conversion of every coordinate of the file (a GCJ-02 road layer: ~10x faster)
    wgs = geometry_to_wgs84(shapely.GeometryCollection(geoms), src)
    return list(zip(shapely.get_parts(wgs).tolist(), propss, strict=True))
