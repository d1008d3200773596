"""Geometry helpers: a local metric projection, CRS conversion of shapely geometries, IoU."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyproj
import shapely
import shapely.ops
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from domain.crs import CRS, to_wgs84


def map_coords(
    geom: BaseGeometry, fn: Callable[[NDArray[np.float64], NDArray[np.float64]], tuple[Any, Any]]
) -> BaseGeometry:
    """Apply a vectorised ``fn(x, y) -> (x', y')`` to every coordinate of ``geom``."""

    def _apply(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = fn(coords[:, 0], coords[:, 1])
        return np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])

    return shapely.transform(geom, _apply)


def geometry_to_wgs84(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    """Convert a lon/lat geometry given in ``crs`` to WGS-84."""
    if crs is CRS.WGS84:
        return geom
    return map_coords(geom, lambda x, y: to_wgs84(x, y, crs))


@dataclass(frozen=True)
class LocalProjection:
    """A transverse Mercator projection centred on a district (metres, metric lattice)."""

    lon0: float
    lat0: float = 0.0

    @classmethod
    def for_geometry(cls, geom_wgs84: BaseGeometry) -> LocalProjection:
        """Projection centred on the geometry (central meridian rounded to 0.01°)."""
        c = geom_wgs84.centroid
        return cls(lon0=round(c.x, 2), lat0=0.0)

    @property
    def proj4(self) -> str:
        """The PROJ string of this projection."""
        return (
            f"+proj=tmerc +lat_0={self.lat0} +lon_0={self.lon0} +k=1 +x_0=0 +y_0=0 "
            "+ellps=WGS84 +units=m +no_defs"
        )

    @cached_property
    def _forward(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs("EPSG:4326", self.proj4, always_xy=True)

    @cached_property
    def _inverse(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs(self.proj4, "EPSG:4326", always_xy=True)

    def forward(self, lon: Any, lat: Any) -> tuple[Any, Any]:
        """WGS-84 lon/lat → projected x/y in metres."""
        return self._forward.transform(lon, lat)

    def inverse(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Projected x/y in metres → WGS-84 lon/lat."""
        return self._inverse.transform(x, y)

    def to_metric(self, geom: BaseGeometry) -> BaseGeometry:
        """Project a WGS-84 geometry to metres."""
        return map_coords(geom, self.forward)

    def to_wgs84(self, geom: BaseGeometry) -> BaseGeometry:
        """Unproject a metric geometry to WGS-84."""
        return map_coords(geom, self.inverse)

    def to_metric_many(self, geoms: Sequence[BaseGeometry]) -> NDArray[np.object_]:
        """Project many WGS-84 geometries at once (one PROJ call for all coordinates)."""
        return _map_many(geoms, self.forward)

    def to_wgs84_many(self, geoms: Sequence[BaseGeometry]) -> NDArray[np.object_]:
        """Unproject many metric geometries at once."""
        return _map_many(geoms, self.inverse)


def _map_many(
    geoms: Sequence[BaseGeometry], fn: Callable[[Any, Any], tuple[Any, Any]]
) -> NDArray[np.object_]:
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    if len(arr) == 0:
        return arr
    return np.asarray(map_coords(arr, fn), dtype=object)


def iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """Intersection over union of two polygonal geometries (0 when both are empty)."""
    try:
        inter = shapely.intersection(a, b).area
    except shapely.errors.GEOSException:  # repair invalid input (e.g. a ring touching itself)
        a, b = shapely.make_valid(a), shapely.make_valid(b)
        inter = shapely.intersection(a, b).area
    union = a.area + b.area - inter
    if union <= 0:
        return 0.0
    return float(inter / union)


def polygons_of(geom: BaseGeometry) -> list[shapely.Polygon]:
    """The polygon parts of any geometry (collections are flattened, lines and points dropped)."""
    parts = shapely.get_parts(geom)
    out: list[shapely.Polygon] = []
    for p in parts:
        if isinstance(p, shapely.Polygon):
            if not p.is_empty and p.area > 0:
                out.append(p)
        elif isinstance(p, shapely.MultiPolygon | shapely.GeometryCollection):
            out.extend(polygons_of(p))
    return out


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygonal part of a geometry (a Polygon or MultiPolygon, maybe empty)."""
    parts = polygons_of(geom)
    if not parts:
        return shapely.Polygon()
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(parts)


def spot_point(geom: BaseGeometry, spot: tuple[float, float]) -> tuple[float, float]:
    """The point at fractions ``spot`` (u east, v north, 0–1) of a polygon's bounding box, moved onto
    the polygon when it falls outside (a generated report's place in its grid)."""
    x0, y0, x1, y1 = geom.bounds
    p = shapely.Point(x0 + spot[0] * (x1 - x0), y0 + spot[1] * (y1 - y0))
    if not geom.covers(p):
        p = shapely.ops.nearest_points(geom, p)[0]
    return float(p.x), float(p.y)
