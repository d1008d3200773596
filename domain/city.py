"""The city plan: district → streets → communities → unit grids → responsibility areas.

``plan_city`` is pure: it takes a district outline and optional imported polygons (all WGS-84) and
returns every polygon with its code. Codes follow Beijing DB11/T 2157-2023: 6-digit district +
3-digit street + 3-digit community + 3-digit grid serial. Generated streets and communities take codes
in the reserved 9xx range and are named ``片区NN（生成）`` / ``Zone NN (generated)``.

Unit grids are the cells of a 100 m lattice clipped to their community, or, given a roads layer, the
road blocks of their community split or merged to about 10,000 m² (``domain.roadgrid``); generated
streets and communities then follow the road blocks too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from domain.crs import CRS, from_wgs84, to_wgs84
from domain.district import DistrictOutline
from domain.errors import GeoInputError
from domain.geo import LocalProjection, iou, map_coords, polygonal, polygons_of
from domain.partition import order_north_west, partition
from domain.roadgrid import PRECISION_M as ROAD_PRECISION_M
from domain.roadgrid import Road, RoadNetwork, road_grids, snap_zones

CELL_M = 100.0
SLIVER_M2 = 1_000.0
AREA_SIZE = 18
MAX_SERIAL = 999
GENERATED_BASE = 900
MAX_COMMUNITY_M2 = 5_000_000.0

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


class GridLevel(StrEnum):
    """Management level of a unit grid (管理等级)."""

    GENERAL = "general"  # 一般
    KEY = "key"  # 重点
    COMPREHENSIVE = "comprehensive"  # 综合治理

    @classmethod
    def parse(cls, value: str | None) -> GridLevel:
        """Parse a level given as code or Chinese label; empty means 一般."""
        if value is None or str(value).strip() == "":
            return cls.GENERAL
        v = str(value).strip().lower()
        labels = {"一般": cls.GENERAL, "重点": cls.KEY, "综合治理": cls.COMPREHENSIVE}
        if v in labels:
            return labels[v]
        try:
            return cls(v)
        except ValueError:
            raise ValueError(f"unknown management level {value!r} (一般, 重点 or 综合治理)") from None


@dataclass(frozen=True)
class Lattice:
    """The metric lattice of unit-grid cells: row 0 is the northmost, column 0 the westmost."""

    lon0: float
    x0: float
    y0: float
    cell: float = CELL_M

    @property
    def projection(self) -> LocalProjection:
        """The local projection the lattice lives in."""
        return LocalProjection(self.lon0)

    @classmethod
    def for_outline(cls, outline: BaseGeometry, cell: float = CELL_M) -> Lattice:
        """A lattice anchored on whole cells around a WGS-84 outline."""
        proj = LocalProjection.for_geometry(outline)
        minx, _miny, _maxx, maxy = proj.to_metric(outline).bounds
        return cls(
            lon0=proj.lon0,
            x0=math.floor(minx / cell) * cell - cell,
            y0=math.ceil(maxy / cell) * cell + cell,
            cell=cell,
        )


@dataclass
class StreetPlan:
    """A street (街道): 9-digit code = district + 3 digits."""

    code: str
    name: str
    name_en: str
    geometry: BaseGeometry
    generated: bool


@dataclass
class CommunityPlan:
    """A community (社区): 12-digit code = street + 3 digits."""

    code: str
    street_code: str
    name: str
    name_en: str
    geometry: BaseGeometry
    generated: bool


@dataclass
class GridPlan:
    """A unit grid (单元网格): 15-digit code = community + 3-digit serial."""

    code: str
    community_code: str
    street_code: str
    geometry: BaseGeometry
    area_m2: float
    row: int
    col: int
    level: GridLevel | None = None  # None: keep the stored level (一般 for a new grid)


@dataclass
class AreaPlan:
    """A responsibility area (责任网格): contiguous unit grids of one street, one supervisor."""

    code: str
    street_code: str
    grid_codes: list[str]


class GridLayout(StrEnum):
    """How the unit grids of a plan were drawn."""

    LATTICE = "lattice"  # 100 m lattice cells clipped to communities
    ROADS = "roads"  # road blocks split or merged to about 10,000 m²
    SURVEYED = "surveyed"  # imported with their own codes


@dataclass
class CityPlan:
    """Everything ``init`` writes for one district."""

    adcode: str
    name: str
    name_en: str
    outline: BaseGeometry
    source: str
    lattice: Lattice
    streets: list[StreetPlan] = field(default_factory=list)
    communities: list[CommunityPlan] = field(default_factory=list)
    grids: list[GridPlan] = field(default_factory=list)
    areas: list[AreaPlan] = field(default_factory=list)
    layout: GridLayout = GridLayout.LATTICE


@dataclass(frozen=True)
class AreaFigures:
    """The distribution of unit-grid areas (m²) reported by ``init``."""

    count: int
    min: float
    p10: float
    median: float
    p90: float
    max: float
    under_5000: int
    under_1000: int

    def line(self) -> str:
        """One line for the ``init`` summary."""
        if not self.count:
            return "no unit grids"
        return (
            f"{self.count:,} grids, area m² min {self.min:,.0f} · p10 {self.p10:,.0f} · "
            f"median {self.median:,.0f} · p90 {self.p90:,.0f} · max {self.max:,.0f}; "
            f"{self.under_5000:,} under 5,000 m², {self.under_1000:,} under 1,000 m²"
        )


def area_figures(areas_m2: Sequence[float]) -> AreaFigures:
    """Count, min, p10, median, p90, max and the grids under 5,000 and 1,000 m² of some grid areas."""
    a = np.asarray(areas_m2, dtype=float)
    if len(a) == 0:
        return AreaFigures(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
    p10, med, p90 = (float(v) for v in np.percentile(a, [10, 50, 90]))
    return AreaFigures(
        count=len(a),
        min=float(a.min()),
        p10=p10,
        median=med,
        p90=p90,
        max=float(a.max()),
        under_5000=int((a < 5_000.0).sum()),
        under_1000=int((a < 1_000.0).sum()),
    )


@dataclass
class ImportedPolygon:
    """A polygon read from an import file, already in WGS-84."""

    code: str | None
    name: str
    geometry: BaseGeometry
    level: str | None = None
    label: str = ""
    name_en: str = ""
    generated: bool = False  # a stored generated zone being rebuilt on


def street_count(area_km2: float) -> int:
    """Realistic number of streets for a district of this size (Dongcheng 41.8 km² → 17)."""
    return max(1, min(99, round(2.63 * math.sqrt(area_km2))))


def community_count(area_km2: float) -> int:
    """Realistic number of communities for a district of this size (Dongcheng → about 180)."""
    return max(1, round(28.0 * math.sqrt(area_km2)))


def generated_name(n: int) -> tuple[str, str]:
    """Chinese and English names of the n-th generated street or community."""
    return f"片区{n:02d}（生成）", f"Zone {n:02d} (generated)"


def _apportion(total: int, weights: Sequence[float], minimum: Sequence[int]) -> list[int]:
    """Largest-remainder split of ``total`` by ``weights`` with per-item minimums."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.maximum(np.floor(raw).astype(int), np.asarray(minimum, dtype=int))
    rest = total - int(out.sum())
    if rest > 0:
        order = np.argsort(-(raw - np.floor(raw)))
        for i in order[:rest]:
            out[i] += 1
    return [int(min(v, MAX_SERIAL - GENERATED_BASE)) for v in out]


def _street_code3(adcode: str, code: str | None, label: str) -> str | None:
    if code is None or str(code).strip() == "":
        return None
    digits = "".join(ch for ch in str(code) if ch.isdigit())
    if len(digits) == 3:
        return digits
    if len(digits) >= 9 and digits.startswith(adcode):
        return digits[6:9]
    raise GeoInputError(f"{label}: street code {code!r} is not 3 digits or {adcode}+3 digits")


def _community_code(street_code: str, code: str | None, label: str) -> str | None:
    if code is None or str(code).strip() == "":
        return None
    digits = "".join(ch for ch in str(code) if ch.isdigit())
    if len(digits) == 3:
        return street_code + digits
    if len(digits) >= 12 and digits[:9] == street_code:
        return digits[:12]
    raise GeoInputError(f"{label}: community code {code!r} does not belong to street {street_code}")


def _disjoint(geoms: list[BaseGeometry]) -> list[BaseGeometry]:
    """Make polygons pairwise disjoint: an overlap stays with the earlier polygon."""
    out: list[BaseGeometry] = []
    taken: BaseGeometry | None = None
    for g in geoms:
        g2 = g if taken is None else polygonal(shapely.difference(g, taken))
        out.append(g2)
        taken = g if taken is None else shapely.union(taken, g)
    return out


class _Builder:
    def __init__(
        self,
        district: DistrictOutline,
        lattice: Lattice | None,
        cell: float,
        progress: Progress,
        roads: Sequence[Road] | None = None,
        zones_on_roads: bool = False,
    ) -> None:
        self.district = district
        self.zones_on_roads = zones_on_roads
        self.lattice = lattice or Lattice.for_outline(district.geometry, cell)
        self.proj = self.lattice.projection
        self.progress = progress
        self.network = RoadNetwork.from_roads(roads, self.proj, self.m(district.geometry)) if roads else None

    def m(self, geom: BaseGeometry) -> BaseGeometry:
        return self.proj.to_metric(geom)

    def mi(self, geom: BaseGeometry) -> BaseGeometry:
        """An imported or stored polygon in metres; along roads on the blocks' 1 mm grid, so that zones
        read back from the store (a WGS-84 round trip from what was written) are what was built."""
        metric = self.proj.to_metric(geom)
        return shapely.set_precision(metric, ROAD_PRECISION_M) if self.network is not None else metric

    def w(self, geom: BaseGeometry) -> BaseGeometry:
        return self.proj.to_wgs84(geom)

    # -- streets --------------------------------------------------------------------------------
    def streets(self, imported: list[ImportedPolygon] | None) -> list[tuple[StreetPlan, BaseGeometry]]:
        adcode = self.district.adcode
        if not imported:
            outline_m = polygonal(shapely.make_valid(self.m(self.district.geometry)))
            n = street_count(outline_m.area / 1e6)
            parts = partition(outline_m, n, seed=int(adcode))
            out = []
            for k, idx in enumerate(order_north_west(parts, band=1000.0), start=1):
                name, name_en = generated_name(k)
                code = f"{adcode}{GENERATED_BASE + k:03d}"
                out.append((StreetPlan(code, name, name_en, parts[idx], True), parts[idx]))
            return out
        metric = [polygonal(self.mi(p.geometry)) for p in imported]
        codes = [_street_code3(adcode, p.code, p.label) for p in imported]
        order = sorted(range(len(imported)), key=lambda i: (codes[i] is None, codes[i] or "", i))
        geoms = _disjoint([metric[i] for i in order])
        seen: set[str] = set()
        out = []
        gen = 0
        for i, g in zip(order, geoms, strict=True):
            c3 = codes[i]
            if c3 is None:
                gen += 1
                c3 = f"{GENERATED_BASE + gen:03d}"
            if c3 in seen:
                raise GeoInputError(f"{imported[i].label}: street code {adcode}{c3} appears twice")
            seen.add(c3)
            if g.is_empty:
                continue
            name = imported[i].name
            p = imported[i]
            out.append((StreetPlan(f"{adcode}{c3}", name, p.name_en or name, g, p.generated), g))
        return out

    # -- communities ----------------------------------------------------------------------------
    def communities(
        self,
        streets: list[tuple[StreetPlan, BaseGeometry]],
        imported: list[ImportedPolygon] | None,
    ) -> list[tuple[CommunityPlan, BaseGeometry]]:
        out: list[tuple[CommunityPlan, BaseGeometry]] = []
        if imported:
            return self._imported_communities(streets, imported)
        total_area = sum(g.area for _, g in streets) / 1e6
        total = max(len(streets), community_count(total_area))
        minimum = [max(1, math.ceil(g.area / MAX_COMMUNITY_M2)) for _, g in streets]
        counts = _apportion(total, [g.area for _, g in streets], minimum)
        for si, ((street, geom), n) in enumerate(zip(streets, counts, strict=True)):
            self.progress("communities", si, len(streets))
            out.extend(self._generate_communities(street, geom, n, seed=int(street.code)))
        return out

    def _generate_communities(
        self, street: StreetPlan, geom: BaseGeometry, n: int, seed: int, start: int = 1
    ) -> list[tuple[CommunityPlan, BaseGeometry]]:
        parts = partition(geom, n, seed=seed)
        out = []
        for k, idx in enumerate(order_north_west(parts, band=300.0), start=start):
            name, name_en = generated_name(k)
            code = f"{street.code}{GENERATED_BASE + k:03d}"
            out.append((CommunityPlan(code, street.code, name, name_en, parts[idx], True), parts[idx]))
        return out

    def _imported_communities(
        self,
        streets: list[tuple[StreetPlan, BaseGeometry]],
        imported: list[ImportedPolygon],
    ) -> list[tuple[CommunityPlan, BaseGeometry]]:
        metric = [polygonal(self.mi(p.geometry)) for p in imported]
        by_street: dict[str, list[tuple[int, BaseGeometry]]] = {s.code: [] for s, _ in streets}
        street_geom = {s.code: g for s, g in streets}
        for i, (p, g) in enumerate(zip(imported, metric, strict=True)):
            digits = "".join(ch for ch in str(p.code or "") if ch.isdigit())
            code9 = digits[:9] if len(digits) >= 12 else None
            if code9 not in street_geom:
                overlaps = {c: shapely.intersection(g, sg).area for c, sg in street_geom.items()}
                code9 = max(overlaps, key=lambda c: overlaps[c]) if overlaps else None
                if code9 is None or overlaps[code9] <= 0:
                    raise GeoInputError(f"{p.label}: community lies in no street")
            by_street[code9].append((i, g))
        out: list[tuple[CommunityPlan, BaseGeometry]] = []
        for street, sgeom in streets:
            members = by_street[street.code]
            clipped = _disjoint([polygonal(shapely.intersection(g, sgeom)) for _, g in members])
            seen: set[str] = set()
            pending: list[tuple[int, BaseGeometry]] = []
            for (i, _), g in zip(members, clipped, strict=True):
                if g.is_empty:
                    continue
                code = _community_code(street.code, imported[i].code, imported[i].label)
                if code is None:
                    pending.append((i, g))
                    continue
                if code in seen:
                    raise GeoInputError(f"{imported[i].label}: community code {code} appears twice")
                seen.add(code)
                p = imported[i]
                out.append((CommunityPlan(code, street.code, p.name, p.name_en or p.name, g, p.generated), g))
            covered = shapely.union_all(clipped) if clipped else shapely.Polygon()
            rest = [p for p in polygons_of(shapely.difference(sgeom, covered)) if p.area >= 10_000]
            serial = GENERATED_BASE
            # communities without a code, then uncovered remainders, take free 9xx codes
            for i, g in pending:
                serial += 1
                while f"{street.code}{serial:03d}" in seen:
                    serial += 1
                code = f"{street.code}{serial:03d}"
                seen.add(code)
                name = imported[i].name or generated_name(serial - GENERATED_BASE)[0]
                out.append((CommunityPlan(code, street.code, name, name, g, False), g))
            for piece in rest:
                serial += 1
                while f"{street.code}{serial:03d}" in seen:
                    serial += 1
                code = f"{street.code}{serial:03d}"
                seen.add(code)
                name, name_en = generated_name(serial - GENERATED_BASE)
                out.append((CommunityPlan(code, street.code, name, name_en, piece, True), piece))
        return out

    def follow_roads(
        self,
        streets: list[tuple[StreetPlan, BaseGeometry]],
        communities: list[tuple[CommunityPlan, BaseGeometry]],
    ) -> tuple[list[tuple[StreetPlan, BaseGeometry]], list[tuple[CommunityPlan, BaseGeometry]]]:
        """Generated communities (and streets, their unions) moved onto the road blocks; imported
        ones stay as they are. Codes, names and order do not change."""
        assert self.network is not None
        # on the 1 mm grid the blocks are noded on (zones read back from the store are already)
        streets = [(s, polygonal(shapely.set_precision(g, ROAD_PRECISION_M))) for s, g in streets]
        communities = [(c, polygonal(shapely.set_precision(g, ROAD_PRECISION_M))) for c, g in communities]
        if self.zones_on_roads:  # moved onto these roads by the last build: as they are
            return streets, communities
        if all(s.generated for s, _ in streets) and all(c.generated for c, _ in communities):
            region = polygonal(shapely.union_all([g for _, g in streets]))
            snapped = snap_zones([g for _, g in communities], region, self.network)
            if snapped is None:
                return streets, communities
            comms = [(c, g) for (c, _), g in zip(communities, snapped, strict=True)]
            members: dict[str, list[BaseGeometry]] = {}
            for c, g in comms:
                members.setdefault(c.street_code, []).append(g)
            out = []
            for s, g in streets:
                if s.code in members:
                    g = polygonal(shapely.union_all(members[s.code]))
                out.append((s, g))
            return out, comms
        comms = list(communities)
        for s, sgeom in streets:
            idx = [i for i, (c, _) in enumerate(comms) if c.street_code == s.code]
            if len(idx) < 2 or not all(comms[i][0].generated for i in idx):
                continue
            snapped = snap_zones([comms[i][1] for i in idx], sgeom, self.network)
            if snapped is not None:
                for i, g in zip(idx, snapped, strict=True):
                    comms[i] = (comms[i][0], g)
        return streets, comms

    # -- unit grids -----------------------------------------------------------------------------
    def road_cut(self, community: CommunityPlan, geom: BaseGeometry) -> list[tuple[int, int, BaseGeometry]]:
        """Cut one community (metric) into grids along the roads, ordered by the serial rule
        (lattice row of an inner point north→south, column west→east, then the point itself)."""
        assert self.network is not None
        polys = road_grids(geom, self.network, seed=int(community.code))
        lat = self.lattice
        pts = shapely.point_on_surface(np.asarray(polys, dtype=object))
        xs, ys = shapely.get_x(pts), shapely.get_y(pts)
        rows = np.floor((lat.y0 - ys) / lat.cell).astype(int)
        cols = np.floor((xs - lat.x0) / lat.cell).astype(int)
        order = sorted(range(len(polys)), key=lambda i: (rows[i], cols[i], -ys[i], xs[i], i))
        return [(int(rows[i]), int(cols[i]), polys[i]) for i in order]

    def cut(self, community: CommunityPlan, geom: BaseGeometry) -> list[tuple[int, int, BaseGeometry]]:
        """Cut one community (metric) into lattice pieces; slivers merged; ordered by serial rule."""
        lat = self.lattice
        c = lat.cell
        minx, miny, maxx, maxy = geom.bounds
        cols = np.arange(math.floor((minx - lat.x0) / c), math.floor((maxx - lat.x0) / c) + 1)
        rows = np.arange(math.floor((lat.y0 - maxy) / c), math.floor((lat.y0 - miny) / c) + 1)
        mc, mr = np.meshgrid(cols, rows)
        cc, rr = mc.ravel(), mr.ravel()
        boxes = shapely.box(lat.x0 + cc * c, lat.y0 - (rr + 1) * c, lat.x0 + (cc + 1) * c, lat.y0 - rr * c)
        shapely.prepare(geom)
        inside = shapely.contains_properly(geom, boxes)
        edge = ~inside & shapely.intersects(geom, boxes)
        pieces: list[tuple[int, int, BaseGeometry]] = [
            (int(r), int(k), b) for r, k, b in zip(rr[inside], cc[inside], boxes[inside], strict=True)
        ]
        clipped = shapely.intersection(boxes[edge], geom)
        for r, k, g in zip(rr[edge], cc[edge], clipped, strict=True):
            parts = polygons_of(g)
            parts.sort(key=lambda p: (-p.representative_point().y, p.representative_point().x))
            pieces.extend((int(r), int(k), p) for p in parts)
        return _merge_slivers(pieces)

    def grids(
        self, communities: list[tuple[CommunityPlan, BaseGeometry]]
    ) -> list[tuple[GridPlan, BaseGeometry]]:
        out: list[tuple[GridPlan, BaseGeometry]] = []
        for ci, (community, geom) in enumerate(communities):
            if ci % 10 == 0:
                self.progress("grids", ci, len(communities))
            pieces = self.road_cut(community, geom) if self.network else self.cut(community, geom)
            if len(pieces) > MAX_SERIAL:
                raise GeoInputError(
                    f"community {community.code} ({community.name}) needs {len(pieces)} unit grids; "
                    f"a community holds at most {MAX_SERIAL}: import smaller communities"
                )
            wgs = self.proj.to_wgs84_many([g for _, _, g in pieces])  # one PROJ call per community
            for serial, ((r, k, g), gw) in enumerate(zip(pieces, wgs, strict=True), start=1):
                out.append(
                    (
                        GridPlan(
                            code=f"{community.code}{serial:03d}",
                            community_code=community.code,
                            street_code=community.street_code,
                            geometry=gw,
                            area_m2=round(float(g.area), 1),
                            row=r,
                            col=k,
                        ),
                        g,
                    )
                )
        self.progress("grids", len(communities), len(communities))
        return out


def _merge_slivers(pieces: list[tuple[int, int, BaseGeometry]]) -> list[tuple[int, int, BaseGeometry]]:
    """Merge pieces under 1,000 m² into the neighbour sharing the longest border; sort by serial rule."""
    if not pieces:
        return []
    big = [p for p in pieces if p[2].area >= SLIVER_M2]
    small = sorted((p for p in pieces if p[2].area < SLIVER_M2), key=lambda p: p[2].area)
    if not big:
        r, k, _ = min(pieces, key=lambda p: (p[0], p[1]))
        return [(r, k, polygonal(shapely.union_all([p[2] for p in pieces])))]
    geoms = [p[2] for p in big]
    absorbed: list[list[BaseGeometry]] = [[g] for g in geoms]
    tree = shapely.STRtree(geoms)
    for _, _, s in small:
        cand = tree.query(s, predicate="intersects")
        best, best_len = -1, 0.0
        for j in cand:
            length = float(shapely.intersection(s.boundary, geoms[j].boundary).length)
            if length > best_len:
                best, best_len = int(j), length
        if best < 0:
            best = int(tree.nearest(s))
        absorbed[best].append(s)
    merged = [
        (r, k, g if len(parts) == 1 else polygonal(shapely.union_all(parts)))
        for (r, k, g), parts in zip(big, absorbed, strict=True)
    ]
    # serial order: lattice row (north→south), column (west→east), then pieces of a split cell
    order = sorted(range(len(merged)), key=lambda i: (merged[i][0], merged[i][1], i))
    return [merged[i] for i in order]


def _responsibility_areas(grids: list[tuple[GridPlan, BaseGeometry]], size: int) -> list[AreaPlan]:
    """Group each street's grids into contiguous areas of about ``size`` grids."""
    by_street: dict[str, list[int]] = {}
    for i, (g, _) in enumerate(grids):
        by_street.setdefault(g.street_code, []).append(i)
    areas: list[AreaPlan] = []
    for street_code in sorted(by_street):
        idx = by_street[street_code]
        geoms = [grids[i][1] for i in idx]
        neighbours = _adjacency(geoms)
        cent = np.array([[g.centroid.x, g.centroid.y] for g in geoms])
        order = sorted(range(len(idx)), key=lambda j: (grids[idx[j]][0].row, grids[idx[j]][0].col, j))
        owner = [-1] * len(idx)
        groups: list[list[int]] = []
        for seed in order:
            if owner[seed] >= 0:
                continue
            gid = len(groups)
            group = [seed]
            owner[seed] = gid
            frontier = set(neighbours[seed])
            while len(group) < size:
                frontier = {f for f in frontier if owner[f] < 0}
                if not frontier:
                    break
                centre = cent[group].mean(axis=0)
                nxt = min(frontier, key=lambda f: (float(((cent[f] - centre) ** 2).sum()), f))
                owner[nxt] = gid
                group.append(nxt)
                frontier.update(neighbours[nxt])
            groups.append(group)
        # fold undersized groups into an adjacent group of the same street
        for gid, group in enumerate(groups):
            if len(group) >= max(1, size // 2) or not group:
                continue
            adjacent = {owner[n] for j in group for n in neighbours[j]} - {gid}
            adjacent = {a for a in adjacent if groups[a]}
            if adjacent:
                target = min(adjacent, key=lambda a: (len(groups[a]), a))
                for j in group:
                    owner[j] = target
                groups[target].extend(group)
                groups[gid] = []
        n = 0
        for group in groups:
            if not group:
                continue
            n += 1
            codes = sorted(grids[idx[j]][0].code for j in group)
            areas.append(AreaPlan(code=f"{street_code}R{n:03d}", street_code=street_code, grid_codes=codes))
    return areas


def _adjacency(geoms: list[BaseGeometry]) -> list[list[int]]:
    """Indices of the grids sharing a border (not just a corner) with each grid."""
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    arr = np.asarray(geoms, dtype=object)
    shared = shapely.length(shapely.intersection(shapely.boundary(arr[a]), shapely.boundary(arr[b])))
    out: list[list[int]] = [[] for _ in geoms]
    for i, j, length in zip(a, b, shared, strict=True):
        if length > 1.0:
            out[int(i)].append(int(j))
            out[int(j)].append(int(i))
    return out


def plan_city(
    district: DistrictOutline,
    streets: list[ImportedPolygon] | None = None,
    communities: list[ImportedPolygon] | None = None,
    *,
    lattice: Lattice | None = None,
    cell: float = CELL_M,
    area_size: int = AREA_SIZE,
    progress: Progress = _no_progress,
    roads: Sequence[Road] | None = None,
    zones_on_roads: bool = False,
) -> CityPlan:
    """Build the whole geography of one district (pure; deterministic for the same input).

    Pass the ``lattice`` a district was first built on so a rebuild cuts the same cells. With
    ``roads`` (WGS-84) the unit grids follow the roads and generated zones follow the road blocks,
    unless ``zones_on_roads`` says the given zones were moved onto these same roads by the last build
    (a re-run then cuts exactly the grids it cut before).
    """
    b = _Builder(district, lattice, cell, progress, roads, zones_on_roads)
    progress("streets", 0, 1)
    street_rows = b.streets(streets)
    progress("streets", 1, 1)
    community_rows = b.communities(street_rows, communities)
    if b.network is not None:
        street_rows, community_rows = b.follow_roads(street_rows, community_rows)
    grid_rows = b.grids(community_rows)
    progress("areas", 0, 1)
    areas = _responsibility_areas(grid_rows, area_size)
    progress("areas", 1, 1)
    for s, g in street_rows:
        s.geometry = b.w(g)
    for c, g in community_rows:
        c.geometry = b.w(g)
    return CityPlan(
        adcode=district.adcode,
        name=district.name,
        name_en=district.name_en,
        outline=district.geometry,
        source=district.source,
        lattice=b.lattice,
        streets=[s for s, _ in street_rows],
        communities=[c for c, _ in community_rows],
        grids=[g for g, _ in grid_rows],
        areas=areas,
        layout=GridLayout.ROADS if b.network is not None else GridLayout.LATTICE,
    )


IOU_MIN = 0.95


def _reinterpret(raw: BaseGeometry, crs: CRS) -> BaseGeometry:
    """Read raw file coordinates as if they were in ``crs`` (→ WGS-84)."""
    return map_coords(raw, lambda x, y: to_wgs84(x, y, crs))


def _inside_share(geom_m: BaseGeometry, ref_m: BaseGeometry) -> float:
    area = geom_m.area
    return float(shapely.intersection(geom_m, ref_m).area / area) if area > 0 else 0.0


def _agreement(
    polygons: list[ImportedPolygon],
    ref_wgs84: BaseGeometry,
    declared: CRS,
    measure: Callable[[BaseGeometry, BaseGeometry], float],
) -> tuple[float, list[tuple[CRS, float]]]:
    """How well an import agrees with a reference, as declared and read in every other CRS."""
    union = shapely.union_all([p.geometry for p in polygons])
    proj = LocalProjection.for_geometry(ref_wgs84)
    ref = proj.to_metric(ref_wgs84)
    score = measure(proj.to_metric(union), ref)
    if score >= IOU_MIN:
        return score, []
    raw = map_coords(union, lambda x, y: from_wgs84(x, y, declared))
    others = [
        (alt, measure(proj.to_metric(_reinterpret(raw, alt)), ref)) for alt in CRS if alt is not declared
    ]
    return score, [(alt, v) for alt, v in others if v >= IOU_MIN]


def _hint(declared: CRS, fixes: list[tuple[CRS, float]], what: str) -> str:
    if not fixes:
        return "no GCJ-02/WGS-84/BD-09 shift fixes it"
    return "; ".join(f"read as {alt.value} instead of {declared.value} {what.format(v)}" for alt, v in fixes)


def check_outline(
    polygons: list[ImportedPolygon], district: DistrictOutline, label: str, declared: CRS
) -> float:
    """Reject an import whose outline disagrees with the registry outline (IoU < 0.95).

    The message states the IoU and whether reading the file in another CRS (the GCJ-02↔WGS-84
    shift) would make it match. Returns the IoU when it passes.
    """
    score, fixes = _agreement(polygons, district.geometry, declared, iou)
    if score >= IOU_MIN:
        return score
    raise GeoInputError(
        f"{label}: wrong CRS or wrong district: outline vs the registry outline of {district.name} "
        f"({district.adcode}) has IoU {score:.3f} < {IOU_MIN}; "
        + _hint(declared, fixes, "it would match (IoU {:.3f})")
    )


def check_within(
    polygons: list[ImportedPolygon], streets: list[ImportedPolygon], label: str, declared: CRS
) -> float:
    """Reject communities that do not lie in the streets they are imported into (< 95 % inside).

    A partial import (some streets' communities) is fine; a shifted one is named with its CRS hint.
    """
    ref = shapely.union_all([s.geometry for s in streets])
    share, fixes = _agreement(polygons, ref, declared, _inside_share)
    if share >= IOU_MIN:
        return share
    raise GeoInputError(
        f"{label}: wrong CRS or wrong district: only {share:.1%} of the communities lie inside "
        f"the streets (need {IOU_MIN:.0%}); " + _hint(declared, fixes, "{:.1%} would be inside")
    )


@dataclass(frozen=True)
class ExistingGrid:
    """A grid already in the store, for keeping codes stable on re-import."""

    code: str
    community_code: str
    geometry: BaseGeometry


def reconcile_codes(plan: CityPlan, existing: Sequence[ExistingGrid], min_iou: float = 0.9) -> dict[str, str]:
    """Map plan grid codes to final codes: a grid matching a stored one (same community, IoU ≥ 0.9)
    keeps the stored code; new grids get serials after the community's highest stored serial.

    Also rewrites ``plan.grids`` and ``plan.areas`` to the final codes and returns the mapping.
    """
    by_comm: dict[str, list[ExistingGrid]] = {}
    for e in existing:
        by_comm.setdefault(e.community_code, []).append(e)
    mapping: dict[str, str] = {}
    plan_by_comm: dict[str, list[GridPlan]] = {}
    for g in plan.grids:
        plan_by_comm.setdefault(g.community_code, []).append(g)
    for comm, grids in plan_by_comm.items():
        olds = by_comm.get(comm, [])
        used: set[str] = set()
        if olds:
            tree = shapely.STRtree([o.geometry for o in olds])
            for g in grids:
                best, best_iou = None, min_iou
                for j in tree.query(g.geometry, predicate="intersects"):
                    o = olds[int(j)]
                    if o.code in used:
                        continue
                    score = iou(g.geometry, o.geometry)
                    if score >= best_iou:
                        best, best_iou = o.code, score
                if best is not None:
                    mapping[g.code] = best
                    used.add(best)
        top = max((int(o.code[-3:]) for o in olds), default=0)
        for g in grids:
            if g.code in mapping:
                continue
            top += 1
            if top > MAX_SERIAL:
                raise GeoInputError(f"community {comm}: no unit-grid serials left after {MAX_SERIAL}")
            mapping[g.code] = f"{comm}{top:03d}"
    for g in plan.grids:
        g.code = mapping[g.code]
    for a in plan.areas:
        a.grid_codes = sorted(mapping[c] for c in a.grid_codes)
    return mapping


def plan_from_grids(
    district: DistrictOutline,
    grids: list[ImportedPolygon],
    *,
    lattice: Lattice | None = None,
    area_size: int = AREA_SIZE,
    progress: Progress = _no_progress,
) -> CityPlan:
    """A plan from already-surveyed unit grids with their own 15-digit codes.

    Communities are the union of their grids (12-digit prefix), streets the union of their
    communities (9-digit prefix). Overlapping grids are rejected.
    """
    b = _Builder(district, lattice, CELL_M, progress)
    adcode = district.adcode
    seen: set[str] = set()
    metric: list[BaseGeometry] = []
    for g in grids:
        code = "".join(ch for ch in str(g.code or "") if ch.isdigit())
        if len(code) != 15 or not code.startswith(adcode):
            raise GeoInputError(f"{g.label}: grid code {g.code!r} is not 15 digits starting with {adcode}")
        if code in seen:
            raise GeoInputError(f"{g.label}: grid code {code} appears twice")
        seen.add(code)
        g.code = code
        metric.append(polygonal(b.m(g.geometry)))
    tree = shapely.STRtree(metric)
    a, c = tree.query(metric, predicate="overlaps")
    for i, j in zip(a, c, strict=True):
        if i < j and shapely.intersection(metric[i], metric[j]).area > 1.0:
            raise GeoInputError(f"{grids[i].label}: overlaps grid {grids[j].code}")
    try:
        levels = [GridLevel.parse(g.level) if g.level not in (None, "") else None for g in grids]
    except ValueError as exc:
        raise GeoInputError(f"{grids[0].label.split(': ')[0]}: {exc}") from None
    lat = b.lattice
    grid_rows: list[tuple[GridPlan, BaseGeometry]] = []
    for g, m, level in zip(grids, metric, levels, strict=True):
        rp = m.representative_point()
        row = math.floor((lat.y0 - rp.y) / lat.cell)
        col = math.floor((rp.x - lat.x0) / lat.cell)
        code = str(g.code)
        grid_rows.append(
            (GridPlan(code, code[:12], code[:9], g.geometry, round(float(m.area), 1), row, col, level), m)
        )
    grid_rows.sort(key=lambda t: t[0].code)
    comm_geoms: dict[str, list[BaseGeometry]] = {}
    for gp, m in grid_rows:
        comm_geoms.setdefault(gp.community_code, []).append(m)
    communities = []
    for code in sorted(comm_geoms):
        geom = polygonal(shapely.union_all(comm_geoms[code]))
        communities.append(
            CommunityPlan(code, code[:9], f"社区{code[-3:]}", f"Community {code[-3:]}", geom, False)
        )
    street_geoms: dict[str, list[BaseGeometry]] = {}
    for cp in communities:
        street_geoms.setdefault(cp.street_code, []).append(cp.geometry)
    streets = [
        StreetPlan(code, f"街道{code[-3:]}", f"Street {code[-3:]}", polygonal(shapely.union_all(gs)), False)
        for code, gs in sorted(street_geoms.items())
    ]
    areas = _responsibility_areas(grid_rows, area_size)
    for s in streets:
        s.geometry = b.w(s.geometry)
    for cp in communities:
        cp.geometry = b.w(cp.geometry)
    return CityPlan(
        adcode=adcode,
        name=district.name,
        name_en=district.name_en,
        outline=district.geometry,
        source=district.source,
        lattice=lat,
        streets=streets,
        communities=communities,
        grids=[gp for gp, _ in grid_rows],
        areas=areas,
        layout=GridLayout.SURVEYED,
    )
