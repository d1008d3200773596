"""Coordinate reference systems used in China: WGS-84 (canonical), GCJ-02 and BD-09.

GCJ-02 ("Mars coordinates", used by AMap/DataV/Tencent) and BD-09 (Baidu) are obfuscated datums
defined by published formulas, not by a PROJ definition, so they are implemented here with numpy
(vectorised; scalars work too). WGS-84 → GCJ-02 is the published forward formula on the Krasovsky
ellipsoid; GCJ-02 → WGS-84 inverts it by fixed-point iteration to well under a millimetre of the
formula. BD-09 adds Baidu's published rotation on top of GCJ-02. Outside China the GCJ shift is zero.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array: TypeAlias = NDArray[np.float64]

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


class CRS(StrEnum):
    """The coordinate systems GridWall accepts on input."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"

    @classmethod
    def parse(cls, value: str) -> CRS:
        """Parse a CRS name such as ``wgs84``, ``WGS-84``, ``EPSG:4326``, ``gcj-02`` or ``bd09``."""
        key = value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        aliases = {
            "wgs84": cls.WGS84,
            "epsg4326": cls.WGS84,
            "epsg:4326": cls.WGS84,
            "crs84": cls.WGS84,
            "urn:ogc:def:crs:ogc:1.3:crs84": cls.WGS84,
            "urn:ogc:def:crs:epsg::4326": cls.WGS84,
            "gcj02": cls.GCJ02,
            "gcj": cls.GCJ02,
            "mars": cls.GCJ02,
            "bd09": cls.BD09,
            "baidu": cls.BD09,
        }
        if key in aliases:
            return aliases[key]
        raise ValueError(f"unknown CRS {value!r} (use wgs84, gcj02 or bd09)")


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where the point lies in the rectangle where the GCJ-02 shift applies."""
    x, y = _arrays(lon, lat)
    return (x >= 72.004) & (x <= 137.8347) & (y >= 0.8293) & (y <= 55.8271)


def _delta(x: Array, y: Array) -> tuple[Array, Array]:
    """GCJ-02 offset (degrees) at WGS-84 point (x, y)."""
    dx = x - 105.0
    dy = y - 35.0
    sqrt_abs = np.sqrt(np.abs(dx))
    s6 = np.sin(6.0 * dx * np.pi)
    s2 = np.sin(2.0 * dx * np.pi)
    dlat = -100.0 + 2.0 * dx + 3.0 * dy + 0.2 * dy * dy + 0.1 * dx * dy + 0.2 * sqrt_abs
    dlat += (20.0 * s6 + 20.0 * s2) * 2.0 / 3.0
    dlat += (20.0 * np.sin(dy * np.pi) + 40.0 * np.sin(dy / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(dy / 12.0 * np.pi) + 320.0 * np.sin(dy * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + dx + 2.0 * dy + 0.1 * dx * dx + 0.1 * dx * dy + 0.1 * sqrt_abs
    dlon += (20.0 * s6 + 20.0 * s2) * 2.0 / 3.0
    dlon += (20.0 * np.sin(dx * np.pi) + 40.0 * np.sin(dx / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(dx / 12.0 * np.pi) + 300.0 * np.sin(dx / 30.0 * np.pi)) * 2.0 / 3.0
    rad = y / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    inside = in_china(x, y)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 lon/lat to GCJ-02 (published forward formula)."""
    x, y = _arrays(lon, lat)
    dlon, dlat = _delta(x, y)
    return x + dlon, y + dlat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike, iterations: int = 8) -> tuple[Array, Array]:
    """Convert GCJ-02 lon/lat to WGS-84 by inverting the forward formula iteratively."""
    gx, gy = _arrays(lon, lat)
    wx, wy = gx.copy(), gy.copy()
    for _ in range(iterations):
        fx, fy = wgs84_to_gcj02(wx, wy)
        wx = wx - (fx - gx)
        wy = wy - (fy - gy)
    return wx, wy


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 lon/lat to Baidu BD-09."""
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert Baidu BD-09 lon/lat to GCJ-02."""
    bx, by = _arrays(lon, lat)
    x = bx - 0.0065
    y = by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: CRS | str) -> tuple[Array, Array]:
    """Convert coordinates given in ``crs`` to WGS-84."""
    crs = CRS.parse(crs) if isinstance(crs, str) and not isinstance(crs, CRS) else CRS(crs)
    if crs is CRS.WGS84:
        return _arrays(lon, lat)
    if crs is CRS.GCJ02:
        return gcj02_to_wgs84(lon, lat)
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def from_wgs84(lon: ArrayLike, lat: ArrayLike, crs: CRS | str) -> tuple[Array, Array]:
    """Convert WGS-84 coordinates to ``crs``."""
    crs = CRS.parse(crs) if isinstance(crs, str) and not isinstance(crs, CRS) else CRS(crs)
    if crs is CRS.WGS84:
        return _arrays(lon, lat)
    if crs is CRS.GCJ02:
        return wgs84_to_gcj02(lon, lat)
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
