"""A generated, plausible 部件 inventory for Dongcheng (tests and bench only; no public inventory is at
hand): objects of common classes (井盖, 路灯, 垃圾箱/果皮箱, 交通标志牌, 行道树) placed at random along
the real roads of ``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02), with 主管/权属/养护
units from the shipped department list. Every row says ``generated`` in its SetLoc attribute.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray

from domain.crs import from_wgs84
from domain.geofile import read_features

ROADS = Path("data") / "roads" / "dongcheng_roads_gcj02.geojson"

# class code → (name, weight, [(主管, 权属, 养护), ...]) from departments_110101.csv
CLASSES: dict[str, tuple[str, float, list[tuple[str, str, str]]]] = {
    "0101": ("上水井盖", 0.12, [("01", "10", "10")]),
    "0102": ("污水井盖", 0.14, [("01", "12", "12"), ("01", "12", "0102")]),
    "0103": ("雨水井盖", 0.12, [("01", "12", "0102")]),
    "0105": ("电力井盖", 0.08, [("01", "08", "08")]),
    "0118": ("路灯", 0.20, [("01", "0103", "0103")]),
    "0209": ("交通标志牌", 0.06, [("05", "06", "06")]),
    "0305": ("果皮箱", 0.18, [("01", "0101", "0101")]),
    "0402": ("行道树", 0.10, [("03", "0301", "0301")]),
}
HEADER = ["ObjID", "ObjName", "ObjState", "DeptCode1", "DeptCode2", "DeptCode3", "DataSource", "ORDate",
          "PointX", "PointY", "SetLoc"]  # fmt: skip


@dataclass(frozen=True)
class Generated:
    """The inventory as columns: identifiers, classes, WGS-84 and GCJ-02 points, units."""

    ids: list[str]
    classes: list[str]
    lon: NDArray[np.float64]  # WGS-84
    lat: NDArray[np.float64]
    units: list[tuple[str, str, str]]

    def gcj02(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The points in GCJ-02, as a surveyor's file on an Amap basemap would have them."""
        x, y = from_wgs84(self.lon, self.lat, "gcj02")
        return np.round(x, 7), np.round(y, 7)

    def write_csv(self, path: Path, crs: str = "gcj02") -> Path:
        """The inventory as a CSV in the standard's field names (PointX/PointY in ``crs``)."""
        x, y = self.gcj02() if crs == "gcj02" else (self.lon, self.lat)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            for i, code in enumerate(self.ids):
                u = self.units[i]
                name = CLASSES[self.classes[i]][0]
                w.writerow([code, name, "完好", u[0], u[1], u[2], "实测", "2024-05-01", f"{x[i]:.7f}",
                            f"{y[i]:.7f}", "generated"])  # fmt: skip
        return path


def generate(
    shared: Path,
    n: int,
    *,
    adcode: str = "110101",
    seed: int = 18,
    inside: Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]] | None = None,
) -> Generated:
    """``n`` objects along Dongcheng's roads (``inside``: keep only points the district's grids hold)."""
    rng = np.random.default_rng(seed)
    roads = np.asarray([g for g, _ in read_features(shared / ROADS)], dtype=object)
    roads = roads[np.isin(shapely.get_type_id(roads), (1, 5))]
    length = shapely.length(roads)
    p = length / length.sum()
    codes = list(CLASSES)
    weights = np.array([CLASSES[c][1] for c in codes])
    lon = np.empty(0)
    lat = np.empty(0)
    while len(lon) < n:
        m = int((n - len(lon)) * 1.3) + 16
        pick = rng.choice(len(roads), size=m, p=p)
        pts = shapely.line_interpolate_point(roads[pick], rng.random(m), normalized=True)
        xy = shapely.get_coordinates(pts)
        x = xy[:, 0] + rng.normal(0, 0.00004, m)  # a few metres off the centre line
        y = xy[:, 1] + rng.normal(0, 0.00003, m)
        if inside is not None:
            keep = inside(x, y)
            x, y = x[keep], y[keep]
        lon, lat = np.concatenate([lon, x]), np.concatenate([lat, y])
    lon, lat = np.round(lon[:n], 7), np.round(lat[:n], 7)
    cls = rng.choice(len(codes), size=n, p=weights / weights.sum())
    serial = dict.fromkeys(codes, 0)
    ids: list[str] = []
    classes: list[str] = []
    units: list[tuple[str, str, str]] = []
    for i in cls.tolist():
        code = codes[i]
        serial[code] += 1
        ids.append(f"{adcode}{code}{serial[code]:06d}")
        classes.append(code)
        owners = CLASSES[code][2]
        units.append(owners[serial[code] % len(owners)])
    return Generated(ids, classes, lon, lat, units)
