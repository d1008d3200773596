"""Unit grids that follow roads (GB/T 30428.1, CJ/T 213: grids drawn along streets, lanes and blocks).

Pure: WGS-84 road lines are read elsewhere; here everything is metric (the district's lattice
projection) and nothing is read or written.

* **Blocks.** A community is cut by the road centre lines: its border and the lines are noded and
  polygonized, so a block's edges run along road centre lines (each half of a road goes with the block
  on its side: the buffer of a road is split at its centre line). A dead end does not cut; a main road
  that ends inside a block is carried straight on to the next line (at most ``EXTEND_M``), so that its
  block is cut along it rather than crossed by it.
* **Grids.** Blocks over ``MAX_M2`` are split into parts of about ``TARGET_M2`` (the k-means/Voronoi
  splitter of ``domain.partition``); blocks under ``MIN_M2`` are merged, smallest first, with the
  neighbour sharing the longest border across a minor road (or no road). A main road is crossed only
  by a sliver (< ``SLIVER_M2``) with no other neighbour, preferably into a grid it already crosses.
* **Zones.** Generated streets and communities can follow the blocks too (:func:`snap_zones`): each
  block goes whole to the zone holding most of it; only blocks over ``WHOLE_BLOCK_M2`` (parks, large
  compounds) are cut where the zones meet.

Main roads: a class (``class``/``fclass``/``highway``/``等级`` …) when the file has one, else the
name: a road named …大街 or …路 (or a part of an ``A/B`` name so named) is a main road.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from domain.errors import GeoInputError
from domain.geo import LocalProjection, polygonal, polygons_of
from domain.partition import partition

TARGET_M2 = 10_000.0
MIN_M2 = 5_000.0
MAX_M2 = 20_000.0
SLIVER_M2 = 1_000.0
WHOLE_BLOCK_M2 = 40_000.0  # zones: a block up to this size goes whole to one generated zone
EXTEND_M = 150.0  # a main road ending inside a block is carried on this far at most
NEAR_M = 200.0  # roads this close to the district are kept
PRECISION_M = 1e-3  # linework is noded on a 1 mm grid (coincident borders and roads stay one edge)
_TOUCH_M = 0.5  # a border this close to a main road's centre line runs along it
_MAIN_BORDER_M = 2.0  # a shared border with more than this much main road is a main-road border
_DANGLE_M = 0.01  # an end with no other line this close is a dead end

MAIN_SUFFIXES = ("大街", "路")
MAIN_CLASSES = frozenset(
    {
        # OpenStreetMap highway=* (and Geofabrik's fclass)
        "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
        "secondary", "secondary_link",
        # Chinese road classes (CJJ 37 城市道路; 公路)
        "快速路", "城市快速路", "主干路", "主干道", "城市主干路", "次干路", "次干道", "城市次干路",
        "高速公路", "国道", "省道",
    }
)  # fmt: skip
_NAME_KEYS = ("name", "NAME", "Name", "名称", "路名", "name_zh")
_CLASS_KEYS = ("class", "fclass", "highway", "road_class", "roadclass", "CLASS", "等级", "道路等级")
_WIDTH_KEYS = ("width", "WIDTH", "宽度", "路宽")
MAIN_KEY = "gw_main"  # the remembered copy of a roads layer states each line's class with these keys
HALF_WIDTH_KEY = "gw_half_width"


@dataclass(frozen=True)
class Road:
    """A road centre line in WGS-84 with its name, whether it is a main road, and its half width (m)."""

    geometry: BaseGeometry
    name: str
    main: bool
    half_width: float = 0.0


def is_main_name(name: str) -> bool:
    """A main road by its name: …大街 or …路, or any part of an ``A/B`` name (二环路/建国门桥)."""
    return any(part.strip().endswith(MAIN_SUFFIXES) for part in str(name).split("/"))


def _first(props: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = props.get(k)
        if v not in (None, ""):
            return v
    return None


def _width(value: Any) -> float:
    try:
        w = float(str(value).strip().lower().removesuffix("m").strip())
    except ValueError:
        return 0.0
    return w if math.isfinite(w) and 0.0 < w < 200.0 else 0.0


def road_from_feature(geometry: BaseGeometry, props: Mapping[str, Any]) -> Road | None:
    """A road from one WGS-84 feature (None when it is not a line): name, class or name rule, width."""
    if geometry.is_empty or geometry.geom_type not in ("LineString", "MultiLineString"):
        return None
    name = str(_first(props, _NAME_KEYS) or "").strip()
    half = _width(_first(props, _WIDTH_KEYS)) / 2.0
    if MAIN_KEY in props:  # the remembered copy: the class as decided when it was first read
        main = props[MAIN_KEY] in (True, 1, "true", "1")
        half = _width(props.get(HALF_WIDTH_KEY))
    elif (cls := _first(props, _CLASS_KEYS)) is not None:
        main = str(cls).strip().lower() in MAIN_CLASSES
    else:
        main = is_main_name(name)
    return Road(geometry, name, main, half)


def roads_from_features(features: Iterable[tuple[BaseGeometry, Mapping[str, Any]]], label: str) -> list[Road]:
    """The line features of a roads layer as roads (other geometry types are left out)."""
    roads = [r for g, p in features if (r := road_from_feature(g, p)) is not None]
    if not roads:
        raise GeoInputError(f"{label}: no LineString or MultiLineString features: not a roads layer")
    return roads


def road_properties(road: Road) -> dict[str, Any]:
    """The properties that describe a road in the remembered copy (read back by ``road_from_feature``)."""
    return {"name": road.name, MAIN_KEY: road.main, HALF_WIDTH_KEY: road.half_width}


def roads_near(roads: Sequence[Road], outline_wgs84: BaseGeometry, margin_m: float = NEAR_M) -> list[Road]:
    """The roads within ``margin_m`` of a district, in their order (a per-road test: idempotent)."""
    if not roads:
        return []
    proj = LocalProjection.for_geometry(outline_wgs84)
    zone = shapely.buffer(proj.to_metric(outline_wgs84), margin_m)
    shapely.prepare(zone)
    keep = shapely.intersects(zone, proj.to_metric_many([r.geometry for r in roads]))
    return [r for r, k in zip(roads, keep, strict=True) if k]


def _line_parts(geoms: NDArray[np.object_]) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
    parts, index = shapely.get_parts(geoms, return_index=True)
    ok = ~shapely.is_empty(parts) & (shapely.length(parts) > 0)
    return parts[ok], index[ok]


def _extensions(
    lines: NDArray[np.object_], main: NDArray[np.bool_], tree: shapely.STRtree
) -> list[BaseGeometry]:
    """Straight continuations of main roads ending inside a block, up to the next line."""
    out: list[BaseGeometry] = []
    candidates = np.nonzero(main & ~shapely.is_closed(lines))[0]
    for which in (0, -1):
        ends = shapely.get_point(lines[candidates], which)
        a, _ = tree.query(ends, predicate="dwithin", distance=_DANGLE_M)
        alone = np.bincount(a, minlength=len(ends)) <= 1  # only the line itself
        for k in np.nonzero(alone)[0]:
            i = int(candidates[k])
            line = lines[i]
            length = float(line.length)
            back = line.interpolate(min(10.0, length) if which == 0 else max(0.0, length - 10.0))
            p = shapely.get_coordinates(ends[k])[0]
            d = p - shapely.get_coordinates(back)[0]
            norm = float(np.hypot(d[0], d[1]))
            if norm < 1e-6:
                continue
            ray = shapely.LineString([p, p + d / norm * EXTEND_M])
            reach = EXTEND_M
            for j in tree.query(ray, predicate="intersects"):
                if int(j) == i:
                    continue
                pts = shapely.get_coordinates(shapely.intersection(ray, lines[j]))
                if len(pts):
                    dist = np.hypot(pts[:, 0] - p[0], pts[:, 1] - p[1])
                    dist = dist[dist > _DANGLE_M]
                    if len(dist):
                        reach = min(reach, float(dist.min()))
            out.append(shapely.LineString([p, p + d / norm * reach]))
    return out


class RoadNetwork:
    """A district's road centre lines in metres, with main flags, main-road reach and an index."""

    def __init__(
        self,
        lines_m: Sequence[BaseGeometry] | NDArray[np.object_],
        main: Sequence[bool],
        half_width: Sequence[float],
        outline_m: BaseGeometry,
    ) -> None:
        geoms = np.asarray(list(lines_m), dtype=object)
        parts, index = _line_parts(geoms)
        zone = shapely.buffer(outline_m, NEAR_M)
        shapely.prepare(zone)
        near = shapely.intersects(zone, parts)
        parts, index = parts[near], index[near]
        is_main = np.asarray(main, dtype=bool)[index]
        reach = np.maximum(np.asarray(half_width, dtype=float)[index], _TOUCH_M)
        tree = shapely.STRtree(parts)
        ext = _extensions(parts, is_main, tree)
        self.lines = np.concatenate([parts, np.asarray(ext, dtype=object)]) if ext else parts
        self.main = np.concatenate([is_main, np.zeros(len(ext), dtype=bool)])
        self.reach = np.concatenate([reach, np.full(len(ext), _TOUCH_M)])
        self.extensions = len(ext)
        self.tree = shapely.STRtree(self.lines)

    @classmethod
    def from_roads(cls, roads: Sequence[Road], proj: LocalProjection, outline_m: BaseGeometry) -> RoadNetwork:
        """The network of WGS-84 roads in a district's projection."""
        metric = proj.to_metric_many([r.geometry for r in roads])
        return cls(metric, [r.main for r in roads], [r.half_width for r in roads], outline_m)

    def near(self, region: BaseGeometry) -> NDArray[np.int64]:
        """Indices of the lines meeting a region, in network order."""
        return np.sort(self.tree.query(region, predicate="intersects"))

    def main_zone(self, idx: NDArray[np.int64]) -> BaseGeometry | None:
        """The ground along the main roads among ``idx`` (their centre lines widened by their reach)."""
        sel = idx[self.main[idx]]
        if len(sel) == 0:
            return None
        return shapely.union_all(shapely.buffer(self.lines[sel], self.reach[sel], quad_segs=2))


def blocks(
    region: BaseGeometry, network: RoadNetwork, cuts: Sequence[BaseGeometry] = ()
) -> list[BaseGeometry]:
    """The blocks a region is cut into by the roads (and ``cuts``): they tile it; north→south, west→east.

    All edges are noded in one pass on a 1 mm grid, so neighbouring blocks share their edges exactly.
    """
    idx = network.near(region)
    if len(idx) == 0 and not len(cuts):
        return polygons_of(region)
    lines = np.concatenate(
        [
            network.lines[idx],
            np.asarray(list(cuts), dtype=object),
            np.asarray([region.boundary], dtype=object),
        ]
    )
    edges = shapely.union_all(lines, grid_size=PRECISION_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    if len(faces) == 0:
        return polygons_of(region)
    pts = shapely.point_on_surface(faces)
    shapely.prepare(region)
    inside = shapely.contains(region, pts)
    # a hair-thin block along the border (its inner point within the 1 mm snap of it): by its area
    doubt = np.nonzero(~inside & shapely.intersects(region, faces))[0]
    if len(doubt):
        share = shapely.area(shapely.intersection(faces[doubt], region)) / shapely.area(faces[doubt])
        inside[doubt[share > 0.5]] = True
    faces, pts = faces[inside], pts[inside]
    xs, ys = shapely.get_x(pts), shapely.get_y(pts)
    order = sorted(range(len(faces)), key=lambda i: (-round(float(ys[i]), 3), round(float(xs[i]), 3), i))
    return [faces[i] for i in order]


class _Units:
    """Pieces of one community being merged: areas, shared border lengths, main-road border lengths."""

    def __init__(self, geoms: list[BaseGeometry], noded: list[bool], main_zone: BaseGeometry | None) -> None:
        self.parts: dict[int, list[BaseGeometry]] = {i: [g] for i, g in enumerate(geoms)}
        self.area: dict[int, float] = {i: float(g.area) for i, g in enumerate(geoms)}
        self.crossed: dict[int, bool] = dict.fromkeys(self.parts, False)
        self.noded: dict[int, bool] = dict(enumerate(noded))
        self.nb: dict[int, dict[int, tuple[float, float]]] = {i: {} for i in self.parts}
        self.next = len(geoms)
        if len(geoms) < 2:
            return
        arr = np.asarray(geoms, dtype=object)
        a, b = shapely.STRtree(arr).query(arr, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        bounds = shapely.boundary(arr)
        # blocks of one noding share their edges exactly; a split part's edge is only on its block's
        # edge up to rounding, so its borders are measured on the 1 mm grid (slower)
        exact = np.asarray(noded, dtype=bool)
        both = exact[a] & exact[b]
        shared = np.empty(len(a), dtype=object)
        shared[both] = shapely.intersection(bounds[a[both]], bounds[b[both]])
        shared[~both] = shapely.intersection(bounds[a[~both]], bounds[b[~both]], grid_size=PRECISION_M)
        length = shapely.length(shared)
        along = (
            shapely.length(shapely.intersection(shared, main_zone))
            if main_zone is not None
            else np.zeros(len(a))
        )
        for i, j, ln, m in zip(a.tolist(), b.tolist(), length.tolist(), along.tolist(), strict=True):
            if ln > 0.01:
                self.nb[i][j] = self.nb[j][i] = (ln, m)

    def merge(self, i: int, j: int, crossing: bool) -> int:
        """Merge unit ``i`` into ``j`` as a new unit; returns its id."""
        n = self.next
        self.next += 1
        self.parts[n] = self.parts.pop(j) + self.parts.pop(i)
        self.area[n] = self.area.pop(i) + self.area.pop(j)
        self.crossed[n] = self.crossed.pop(i) | self.crossed.pop(j) | crossing
        self.noded[n] = self.noded.pop(i) & self.noded.pop(j)
        joined: dict[int, tuple[float, float]] = {}
        for src in (i, j):
            for k, (ln, m) in self.nb.pop(src).items():
                if k in (i, j):
                    continue
                old = joined.get(k, (0.0, 0.0))
                joined[k] = (old[0] + ln, old[1] + m)
                del self.nb[k][src]
        self.nb[n] = joined
        for k, v in joined.items():
            self.nb[k][n] = v
        return n

    def absorb(self, below: float, main_below: float) -> None:
        """Merge every unit under ``below`` m², smallest first, into a neighbour across a minor road
        (largest shared border, staying under ``MAX_M2`` when it can); across a main road only under
        ``main_below`` m², preferring a neighbour the merge does not newly cross."""
        heap = [(a, i) for i, a in self.area.items() if a < below]
        heapq.heapify(heap)
        while heap:
            a, i = heapq.heappop(heap)
            if i not in self.area or self.area[i] != a:
                continue
            cands = self.nb[i]
            minor = [(j, ln) for j, (ln, m) in cands.items() if m <= _MAIN_BORDER_M]
            if minor:
                j = min(minor, key=lambda c: (self.area[c[0]] + a > MAX_M2, -c[1], c[0]))[0]
                crossing = False
            elif cands and a < main_below:
                j = min(
                    cands,
                    key=lambda k: (not (self.crossed[k] or self.crossed[i]), -(cands[k][0] - cands[k][1]), k),
                )
                crossing = True
            else:
                continue
            n = self.merge(i, j, crossing)
            if self.area[n] < below:
                heapq.heappush(heap, (self.area[n], n))

    def geometries(self) -> list[tuple[BaseGeometry, int, bool]]:
        """Each unit as one geometry, with the number of pieces it was made of and whether all were
        blocks of the noding (not split parts)."""
        out = []
        for i in sorted(self.parts):
            parts = self.parts[i]
            g = parts[0] if len(parts) == 1 else polygonal(shapely.union_all(parts))
            out.append((g, len(parts), self.noded[i]))
        return out


def _split(geom: BaseGeometry, seed: int) -> list[BaseGeometry]:
    """A block over ``MAX_M2`` in parts of about ``TARGET_M2``; others as they are."""
    if geom.area <= MAX_M2:
        return [geom]
    return partition(geom, max(2, round(geom.area / TARGET_M2)), seed=seed)


def road_grids(community: BaseGeometry, network: RoadNetwork, seed: int = 0) -> list[BaseGeometry]:
    """Unit grids of one community (metric) along the roads: they tile it, about ``TARGET_M2`` each."""
    units: list[BaseGeometry] = []
    noded: list[bool] = []
    for block in blocks(community, network):
        parts = _split(block, seed)
        units += parts
        noded += [len(parts) == 1] * len(parts)
    zone = network.main_zone(network.near(community))
    merged = _Units(units, noded, zone)
    merged.absorb(MIN_M2, SLIVER_M2)
    # a merge that went over the maximum is split again; then no sliver may stay
    units, noded = [], []
    for g, n, exact in merged.geometries():
        parts = _split(g, seed) if n > 1 else [g]
        units += parts
        noded += [exact and len(parts) == 1] * len(parts)
    final = _Units(units, noded, zone)
    final.absorb(SLIVER_M2, SLIVER_M2)
    return _lone_slivers([g for g, _, _ in final.geometries()])


def _lone_slivers(grids: list[BaseGeometry]) -> list[BaseGeometry]:
    """A sliver touching no other grid (a detached scrap of its community) joins the nearest grid."""
    if len(grids) < 2:
        return grids
    out = list(grids)
    small = [i for i, g in enumerate(out) if g.area < SLIVER_M2]
    for i in sorted(small, key=lambda k: (out[k].area, k)):
        others = [j for j, g in enumerate(out) if j != i and not g.is_empty]
        if not others:
            break
        j = min(others, key=lambda k: (float(shapely.distance(out[i], out[k])), k))
        out[j] = polygonal(shapely.union_all([out[j], out[i]]))
        out[i] = shapely.Polygon()
    return [g for g in out if not g.is_empty]


def snap_zones(
    zones: Sequence[BaseGeometry], region: BaseGeometry, network: RoadNetwork
) -> list[BaseGeometry] | None:
    """Generated zones (streets, communities) moved onto the road blocks of the region they tile.

    Each block up to ``WHOLE_BLOCK_M2`` goes whole to the zone holding most of it; larger blocks
    are cut where the zones meet. None (keep the zones) when a zone would lose half its area.
    """
    arr = np.asarray(list(zones), dtype=object)
    faces = np.asarray(blocks(region, network), dtype=object)
    if len(faces) == 0 or len(arr) < 2:
        return None
    tree = shapely.STRtree(arr)
    fi, zi = tree.query(faces, predicate="intersects")
    overlap = shapely.area(shapely.intersection(faces[fi], arr[zi]))
    owner: dict[int, int] = {}
    best: dict[int, float] = {}
    for f, z, a in zip(fi.tolist(), zi.tolist(), overlap.tolist(), strict=True):
        if a > best.get(f, 0.0):
            owner[f], best[f] = z, a
    for f in range(len(faces)):
        if f not in owner:  # a scrap of the region in no zone: the nearest one
            owner[f] = int(tree.nearest(faces[f]))
    big = [f for f in range(len(faces)) if faces[f].area > WHOLE_BLOCK_M2]
    pieces = faces
    if big:  # cut the large blocks where the zones meet, noded with everything else (exact tiling)
        borders = shapely.boundary(arr)
        bf, bz = tree.query(faces[big], predicate="intersects")
        cuts = shapely.intersection(borders[bz], faces[np.asarray(big)[bf]])
        # with the blocks' own edges: a cut ends exactly on them (not on a road line re-noded apart)
        edges = [*shapely.boundary(faces[big]), *(c for c in cuts if not c.is_empty)]
        pieces = np.asarray(blocks(region, network, edges), dtype=object)
    inner = shapely.point_on_surface(pieces)
    face_tree = shapely.STRtree(faces)
    pi, pf = face_tree.query(inner, predicate="within")
    face_of = dict(zip(pi.tolist()[::-1], pf.tolist()[::-1], strict=True))  # the first face holding it
    qi, qz = tree.query(inner, predicate="within")
    zone_of = dict(zip(qi.tolist()[::-1], qz.tolist()[::-1], strict=True))
    members: list[list[BaseGeometry]] = [[] for _ in range(len(arr))]
    for k, piece in enumerate(pieces):
        f = face_of.get(k)
        if f is None:
            f = int(face_tree.nearest(inner[k]))
        z = zone_of.get(k, owner[f]) if faces[f].area > WHOLE_BLOCK_M2 else owner[f]
        members[z].append(piece)
    # the pieces share their edges exactly (a coverage: its fast union), and the zones tile the region;
    # on the 1 mm grid (hair-thin scraps dropped) they read back from the store as they were made
    unions = [shapely.coverage_union_all(m) if m else shapely.Polygon() for m in members]
    out = [polygonal(shapely.set_precision(u, PRECISION_M)) for u in unions]
    for old, new in zip(arr, out, strict=True):
        if new.is_empty or abs(new.area - old.area) > 0.5 * old.area:
            return None
    return out
