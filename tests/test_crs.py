"""CRS conversions: published test vectors, round trips inside China, no shift outside."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from domain.crs import (
    CRS,
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_gcj02,
)

GEOD = pyproj.Geod(ellps="WGS84")
N_RANDOM = 50_000


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in metres between two sets of lon/lat points."""
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist)


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    """Random WGS-84 points over mainland China's extent (seeded, reproducible)."""
    rng = np.random.default_rng(20240611)
    return rng.uniform(73.6, 134.7, N_RANDOM), rng.uniform(18.2, 53.5, N_RANDOM)


# -- published reference values -----------------------------------------------------------------
# The widely published GCJ-02 / BD-09 formulas; test vectors from the README of wandergis/coordTransform
# (also used by eviltransform and many ports): input (116.404, 39.915).


def test_wgs84_to_gcj02_matches_published_vector():
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert float(lon) == pytest.approx(116.41024449916938, abs=1e-9)
    assert float(lat) == pytest.approx(39.91640428150164, abs=1e-9)


def test_gcj02_to_bd09_matches_published_vector():
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert float(lon) == pytest.approx(116.41036949371029, abs=1e-9)
    assert float(lat) == pytest.approx(39.92133699351021, abs=1e-9)


def test_bd09_to_gcj02_matches_published_vector():
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    assert float(lon) == pytest.approx(116.39762729119315, abs=1e-9)
    assert float(lat) == pytest.approx(39.90865673957631, abs=1e-9)


def test_wgs84_to_bd09_matches_published_vector():
    lon, lat = from_wgs84(116.404, 39.915, CRS.BD09)
    assert float(lon) == pytest.approx(116.41662724378733, abs=1e-9)
    assert float(lat) == pytest.approx(39.922699552216216, abs=1e-9)


def test_known_offset_in_dongcheng():
    """shared/data/README: in Dongcheng GCJ-02 = WGS-84 + about (+0.0062°, +0.0014°)."""
    rng = np.random.default_rng(7)
    lon = rng.uniform(116.375, 116.445, 500)
    lat = rng.uniform(39.86, 39.97, 500)
    glon, glat = wgs84_to_gcj02(lon, lat)
    dlon, dlat = glon - lon, glat - lat
    assert np.all(np.abs(dlon - 0.0062) < 0.0003), (dlon.min(), dlon.max())
    assert np.all(np.abs(dlat - 0.0014) < 0.0003), (dlat.min(), dlat.max())
    # ≈ 530 m east and 155 m north
    east = _metres(lon, lat, glon, lat)
    north = _metres(lon, lat, lon, glat)
    assert np.all((east > 480) & (east < 580))
    assert np.all((north > 120) & (north < 190))


# -- round trips --------------------------------------------------------------------------------


def test_gcj02_round_trip_under_one_metre(china_points):
    lon, lat = china_points
    glon, glat = wgs84_to_gcj02(lon, lat)
    # the shift is real (a no-op converter would pass a pure round trip)
    shift = _metres(lon, lat, glon, glat)
    assert shift.min() > 1.0
    assert shift.max() < 1_000.0
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    err = _metres(lon, lat, back_lon, back_lat)
    assert err.max() < 1.0, err.max()


def test_bd09_round_trip_under_one_metre(china_points):
    lon, lat = china_points
    blon, blat = from_wgs84(lon, lat, "bd09")
    shift = _metres(lon, lat, blon, blat)
    assert shift.min() > 100.0
    back_lon, back_lat = to_wgs84(blon, blat, "bd09")
    err = _metres(lon, lat, back_lon, back_lat)
    assert err.max() < 1.0, err.max()


def test_gcj02_inverse_is_a_right_inverse_too(china_points):
    """GCJ → WGS → GCJ lands on the starting GCJ point (the inverse solves the forward formula)."""
    lon, lat = china_points
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    glon, glat = wgs84_to_gcj02(wlon, wlat)
    assert _metres(lon, lat, glon, glat).max() < 0.01


@pytest.mark.parametrize("crs", [CRS.WGS84, CRS.GCJ02, CRS.BD09])
def test_to_and_from_wgs84_are_inverse(crs):
    lon = np.array([116.4, 121.47, 113.26, 104.07])
    lat = np.array([39.9, 31.23, 23.13, 30.67])
    x, y = from_wgs84(lon, lat, crs)
    back_lon, back_lat = to_wgs84(x, y, crs)
    assert _metres(lon, lat, back_lon, back_lat).max() < 1.0
    if crs is CRS.WGS84:
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)


# -- outside China -----------------------------------------------------------------------------

OUTSIDE = [
    (-122.4194, 37.7749),  # San Francisco
    (2.3522, 48.8566),  # Paris
    (151.2093, -33.8688),  # Sydney
    (-0.1246, 51.5007),  # London
    (37.6173, 55.7558),  # Moscow
    (-74.006, 40.7128),  # New York
]


@pytest.mark.parametrize(("lon", "lat"), OUTSIDE)
def test_no_gcj_shift_outside_china(lon, lat):
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert float(glon) == lon
    assert float(glat) == lat
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    assert float(wlon) == lon
    assert float(wlat) == lat


def test_vectorised_mixed_inside_and_outside():
    lon = np.array([116.404, -122.4194, 121.47])
    lat = np.array([39.915, 37.7749, 31.23])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon.shape == (3,)
    assert glon[1] == lon[1] and glat[1] == lat[1]
    assert glon[0] != lon[0] and glon[2] != lon[2]
    # same as converting one by one
    for i in range(3):
        one = wgs84_to_gcj02(lon[i], lat[i])
        assert float(one[0]) == glon[i]
        assert float(one[1]) == glat[i]


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wgs84", CRS.WGS84),
        ("WGS-84", CRS.WGS84),
        ("EPSG:4326", CRS.WGS84),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", CRS.WGS84),
        ("gcj-02", CRS.GCJ02),
        ("GCJ02", CRS.GCJ02),
        ("bd09", CRS.BD09),
        ("BD-09", CRS.BD09),
    ],
)
def test_crs_parse(text, expected):
    assert CRS.parse(text) is expected


@pytest.mark.parametrize("text", ["EPSG:3857", "utm50n", "", "cgcs2000"])
def test_crs_parse_rejects_unknown(text):
    with pytest.raises(ValueError, match="unknown CRS"):
        CRS.parse(text)


def test_to_wgs84_accepts_names():
    a = to_wgs84(116.41, 39.92, "GCJ-02")
    b = gcj02_to_wgs84(116.41, 39.92)
    assert float(a[0]) == float(b[0])
    assert float(a[1]) == float(b[1])
