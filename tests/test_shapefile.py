"""Shapefile import: real street polygons written as a Shapefile, read back with a named CRS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapefile  # pyshp
from shapely.geometry import shape

from domain.crs import CRS
from domain.errors import GeoInputError
from domain.geo import iou
from domain.geofile import read_polygons

WGS84_PRJ = (
    'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
    'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
)


def _write_streets_shp(src: Path, dest: Path) -> list[dict]:
    doc = json.loads(src.read_text(encoding="utf-8"))
    with shapefile.Writer(str(dest), shapeType=shapefile.POLYGON, encoding="utf-8") as w:
        w.field("name", "C", size=40)
        w.field("code", "C", size=12)
        for f in doc["features"]:
            geom = f["geometry"]
            rings = (
                geom["coordinates"]
                if geom["type"] == "Polygon"
                else [r for p in geom["coordinates"] for r in p]
            )
            # shapefile outer rings are clockwise
            w.poly([list(reversed(r)) for r in rings])
            w.record(f["properties"]["name"], f["properties"]["code"])
    return doc["features"]


def test_shapefile_streets_with_named_crs(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "boundaries" / "dongcheng_streets_gcj02.geojson"
    features = _write_streets_shp(src, tmp_path / "streets")
    shp = tmp_path / "streets.shp"
    with pytest.raises(GeoInputError, match="name its CRS"):
        read_polygons(shp)
    polys = read_polygons(shp, crs="gcj02")
    assert [p.code for p in polys] == [f["properties"]["code"] for f in features]
    assert polys[0].name == "东华门街道"
    from_geojson = read_polygons(src)  # CRS from the file name
    for a, b in zip(polys, from_geojson, strict=True):
        assert iou(a.geometry, b.geometry) > 0.999999
    # a .prj naming WGS 84 names the CRS by itself: coordinates are then taken as WGS-84
    (tmp_path / "streets.prj").write_text(WGS84_PRJ, encoding="utf-8")
    as_wgs = read_polygons(shp)
    raw = shape(features[0]["geometry"])
    assert iou(as_wgs[0].geometry, raw) > 0.999999
    assert iou(as_wgs[0].geometry, polys[0].geometry) < 0.95  # the GCJ shift is ~530 m
    assert CRS.parse("EPSG:4326") is CRS.WGS84


def test_projected_prj_needs_crs(tmp_path: Path) -> None:
    with shapefile.Writer(str(tmp_path / "x"), shapeType=shapefile.POLYGON) as w:
        w.field("name", "C")
        w.poly([[[116.40, 39.90], [116.40, 39.91], [116.41, 39.91], [116.41, 39.90], [116.40, 39.90]]])
        w.record("a")
    (tmp_path / "x.prj").write_text('PROJCS["Xian_1980_3_Degree_GK_CM_117E",GEOGCS["GCS_Xian_1980"]]')
    with pytest.raises(GeoInputError, match=r"x\.shp: the \.prj is not geographic WGS 84"):
        read_polygons(tmp_path / "x.shp")
