"""Point → unit grid lookup: lattice arithmetic for most points, exact tests only near borders.

The district's metric lattice is refined into sub-cells (``cell / refine``). A sub-cell lying wholly
inside one grid answers by array indexing; a sub-cell crossed by a border keeps its few candidate
grids, tested exactly with ``shapely.contains_xy`` on the stored WGS-84 polygons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry.base import BaseGeometry

from domain.city import Lattice

OUTSIDE = -1
_EPS = 1e-5  # metres: sub-cells shrink by this margin, far above projection round-trip error
# Stored grid edges are straight in lon/lat, the table's sub-cells straight in metres: the two part by
# up to L²·tan(lat)/8R (0.2 mm for a 100 m edge at 40°N). Points this close to a sub-cell line are
# answered by an exact test on the WGS-84 polygons instead of the table.
_EDGE = 0.01  # metres


@dataclass(frozen=True)
class GridHit:
    """The grid, community and street codes of one point."""

    grid: str
    community: str
    street: str


class PointGridIndex:
    """Vectorised point → grid lookup for one district."""

    def __init__(
        self,
        lattice: Lattice,
        codes: Sequence[str],
        geometries_wgs84: Sequence[BaseGeometry],
        refine: int = 4,
    ) -> None:
        self.lattice = lattice
        self.codes = np.asarray(codes, dtype=object)
        self.street_of = np.asarray([c[:9] for c in codes], dtype=object)
        self.community_of = np.asarray([c[:12] for c in codes], dtype=object)
        self.geoms = np.asarray(geometries_wgs84, dtype=object)
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        self.proj = lattice.projection
        self.sub = lattice.cell / refine
        metric = self.proj.to_metric_many(geometries_wgs84)
        if len(metric) == 0:
            self.x0 = self.y0 = 0.0
            self.table = np.full((1, 1), OUTSIDE, dtype=np.int32)
            self._cand_start = np.zeros(1, dtype=np.int64)
            self._cand = np.zeros(0, dtype=np.int32)
            return
        minx, miny, maxx, maxy = shapely.total_bounds(metric)
        s = self.sub
        self.x0 = math.floor(minx / s) * s
        self.y0 = math.ceil(maxy / s) * s
        ncols = math.floor((maxx - self.x0) / s) + 1
        nrows = math.floor((self.y0 - miny) / s) + 1
        table = np.full((nrows, ncols), OUTSIDE, dtype=np.int32)
        # candidate sub-cells per grid: those its (metric) bounds touch
        tree = shapely.STRtree(metric)
        mcols, mrows = np.meshgrid(np.arange(ncols), np.arange(nrows))
        cols, rows = mcols.ravel(), mrows.ravel()
        boxes = shapely.box(
            self.x0 + cols * s + _EPS,
            self.y0 - (rows + 1) * s + _EPS,
            self.x0 + (cols + 1) * s - _EPS,
            self.y0 - rows * s - _EPS,
        )
        box_i, grid_i = tree.query(boxes, predicate="intersects")
        counts = np.bincount(box_i, minlength=len(boxes))
        single = counts[box_i] == 1
        inside = np.zeros(len(box_i), dtype=bool)
        if single.any():
            shapely.prepare(metric)
            inside[single] = shapely.contains_properly(metric[grid_i[single]], boxes[box_i[single]])
        pure_box = box_i[inside]
        table.ravel()[pure_box] = grid_i[inside]
        mixed = ~inside
        mixed_boxes = np.unique(box_i[mixed])
        # CSR list of candidates for mixed sub-cells; table holds -(slot + 2)
        order = np.argsort(box_i[mixed], kind="stable")
        mb = box_i[mixed][order]
        mg = grid_i[mixed][order]
        starts = np.searchsorted(mb, mixed_boxes)
        self._cand_start = np.append(starts, len(mb)).astype(np.int64)
        self._cand = mg.astype(np.int32)
        table.ravel()[mixed_boxes] = -(np.arange(len(mixed_boxes), dtype=np.int32) + 2)
        self.table = table

    def __len__(self) -> int:
        return len(self.codes)

    def lookup_indices(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int32]:
        """Index of the grid holding each WGS-84 point, or -1 (outside)."""
        lon_a = np.asarray(lon, dtype=np.float64).ravel()
        lat_a = np.asarray(lat, dtype=np.float64).ravel()
        out = np.full(lon_a.shape, OUTSIDE, dtype=np.int32)
        if len(self.codes) == 0 or len(lon_a) == 0:
            return out
        finite = np.isfinite(lon_a) & np.isfinite(lat_a)
        x, y = self.proj.forward(np.where(finite, lon_a, 0.0), np.where(finite, lat_a, 0.0))
        fx = (np.asarray(x) - self.x0) / self.sub
        fy = (self.y0 - np.asarray(y)) / self.sub
        col = np.floor(fx).astype(np.int64)
        row = np.floor(fy).astype(np.int64)
        nrows, ncols = self.table.shape
        ok = finite & (col >= 0) & (col < ncols) & (row >= 0) & (row < nrows)
        entry = np.full(lon_a.shape, OUTSIDE, dtype=np.int32)
        entry[ok] = self.table[row[ok], col[ok]]
        pure = entry >= 0
        out[pure] = entry[pure]
        mixed = np.nonzero(entry <= -2)[0]
        if len(mixed):
            slot = -entry[mixed] - 2
            start = self._cand_start[slot]
            count = self._cand_start[slot + 1] - start
            pts = np.repeat(mixed, count)
            offs = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
            cand = self._cand[np.repeat(start, count) + offs]
            hit = shapely.contains_xy(self.geoms[cand], lon_a[pts], lat_a[pts])
            # first hit per point (pairs are grouped by point in order)
            hp, hc = pts[hit], cand[hit]
            first = np.unique(hp, return_index=True)[1]
            out[hp[first]] = hc[first]
        m = _EDGE / self.sub
        near = np.nonzero(finite & ((np.abs(fx - np.rint(fx)) < m) | (np.abs(fy - np.rint(fy)) < m)))[0]
        if len(near):
            out[near] = self._exact(lon_a[near], lat_a[near])
        return out

    def _exact(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int32]:
        """Point-in-polygon on the WGS-84 grids (lowest grid index wins a shared crumb)."""
        out = np.full(lon.shape, OUTSIDE, dtype=np.int32)
        pi, gi = self.tree.query(shapely.points(lon, lat), predicate="within")
        order = np.lexsort((gi, pi))
        pi, gi = pi[order], gi[order]
        first = np.unique(pi, return_index=True)[1]
        out[pi[first]] = gi[first]
        return out

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.object_]:
        """Grid code of each WGS-84 point, or None where it lies outside every grid."""
        idx = self.lookup_indices(lon, lat)
        codes = np.full(idx.shape, None, dtype=object)
        inside = idx >= 0
        codes[inside] = self.codes[idx[inside]]
        return codes

    def lookup_hierarchy(
        self, lon: ArrayLike, lat: ArrayLike
    ) -> tuple[NDArray[np.object_], NDArray[np.object_], NDArray[np.object_]]:
        """Grid, community and street code arrays of WGS-84 points (None where outside)."""
        idx = self.lookup_indices(lon, lat)
        inside = idx >= 0
        out = []
        for table in (self.codes, self.community_of, self.street_of):
            col = np.full(idx.shape, None, dtype=object)
            col[inside] = table[idx[inside]]
            out.append(col)
        return out[0], out[1], out[2]

    def locate(self, lon: float, lat: float) -> GridHit | None:
        """Grid, community and street codes of one point (None = outside the district's grids)."""
        x, y = self.proj.forward(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        fx = (x - self.x0) / self.sub
        fy = (self.y0 - y) / self.sub
        m = _EDGE / self.sub
        if len(self.codes) and (abs(fx - round(fx)) < m or abs(fy - round(fy)) < m):
            hit = int(self._exact(np.array([lon], dtype=np.float64), np.array([lat], dtype=np.float64))[0])
            if hit == OUTSIDE:
                return None
            code = str(self.codes[hit])
            return GridHit(grid=code, community=code[:12], street=code[:9])
        col = math.floor(fx)
        row = math.floor(fy)
        nrows, ncols = self.table.shape
        if not (0 <= row < nrows and 0 <= col < ncols):
            return None
        entry = int(self.table[row, col])
        if entry == OUTSIDE:
            return None
        if entry <= -2:
            slot = -entry - 2
            found = -1
            for k in range(int(self._cand_start[slot]), int(self._cand_start[slot + 1])):
                g = int(self._cand[k])
                if shapely.contains_xy(self.geoms[g], lon, lat):
                    found = g
                    break
            if found < 0:
                return None
            entry = found
        code = str(self.codes[entry])
        return GridHit(grid=code, community=code[:12], street=code[:9])
