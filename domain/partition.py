"""Generated partitions: cut a polygon into N compact, contiguous parts that tile it exactly.

Used when no real street or community polygons are imported. Parts are the Voronoi cells of a
deterministic k-means of evenly spaced sample points, clipped to the polygon; stray fragments of a
cell (where the polygon is concave) are handed to the neighbour they share the longest border with.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from domain.geo import polygonal, polygons_of


def sample_points(poly: BaseGeometry, target: int) -> NDArray[np.float64]:
    """About ``target`` points on a square lattice inside ``poly`` (metric coordinates)."""
    minx, miny, maxx, maxy = poly.bounds
    spacing = max(math.sqrt(poly.area / max(target, 1)), 1e-6)
    for _ in range(6):
        xs = np.arange(minx + spacing / 2, maxx, spacing)
        ys = np.arange(maxy - spacing / 2, miny, -spacing)
        mx, my = np.meshgrid(xs, ys)
        gx, gy = mx.ravel(), my.ravel()
        shapely.prepare(poly)
        inside = shapely.contains_xy(poly, gx, gy)
        if inside.sum() >= min(target, 4):
            return np.column_stack([gx[inside], gy[inside]])
        spacing /= 2
    rp = poly.representative_point()
    return np.array([[rp.x, rp.y]])


def kmeans(points: NDArray[np.float64], k: int, seed: int = 0, iterations: int = 40) -> NDArray[np.float64]:
    """Deterministic k-means (k-means++ seeding with a fixed seed, Lloyd iterations)."""
    rng = np.random.default_rng(seed)
    n = len(points)
    k = min(k, n)
    centers = np.empty((k, 2))
    centers[0] = points[rng.integers(n)]
    d2 = ((points - centers[0]) ** 2).sum(axis=1)
    for i in range(1, k):
        total = d2.sum()
        idx = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centers[i] = points[idx]
        d2 = np.minimum(d2, ((points - centers[i]) ** 2).sum(axis=1))
    for _ in range(iterations):
        dist = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        label = dist.argmin(axis=1)
        new = np.array(
            [points[label == j].mean(axis=0) if np.any(label == j) else centers[j] for j in range(k)]
        )
        if np.allclose(new, centers):
            break
        centers = new
    return centers


def _shared_length(a: BaseGeometry, b: BaseGeometry) -> float:
    return float(shapely.intersection(a.boundary, b.boundary).length)


def partition(poly: BaseGeometry, n: int, seed: int = 0) -> list[BaseGeometry]:
    """Cut ``poly`` (metric) into ``n`` contiguous parts tiling it; ordered as the k-means centres."""
    poly = polygonal(poly)
    if n <= 1:
        return [poly]
    pts = sample_points(poly, n * 80)
    centers = kmeans(pts, n, seed=seed)
    n = len(centers)
    frame = shapely.box(*poly.buffer(1000.0).bounds)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(centers), extend_to=frame, ordered=True)
    pieces: list[tuple[int, BaseGeometry]] = []
    for i, cell in enumerate(shapely.get_parts(cells)):
        for part in polygons_of(shapely.intersection(cell, poly)):
            pieces.append((i, part))
    # the main (largest) piece of every part stays; other fragments move to their best neighbour
    main: dict[int, BaseGeometry] = {}
    for i, part in pieces:
        if i not in main or part.area > main[i].area:
            main[i] = part
    owned: dict[int, list[BaseGeometry]] = {i: [g] for i, g in main.items()}
    strays = [(i, p) for i, p in pieces if p is not main[i]]
    for i, part in sorted(strays, key=lambda t: -t[1].area):
        best, best_len = i, 0.0
        for j, m in main.items():
            if j != i and m.intersects(part):
                length = _shared_length(m, part)
                if length > best_len:
                    best, best_len = j, length
        owned[best].append(part)
    parts = [shapely.union_all(owned[i]) for i in sorted(owned)]
    return [polygonal(p) for p in parts if not p.is_empty]


def order_north_west(geoms: list[BaseGeometry], band: float) -> list[int]:
    """Indices ordered north→south in bands of ``band`` metres, west→east within a band."""
    keys = []
    for i, g in enumerate(geoms):
        rp = g.representative_point() if g.centroid.is_empty else g.centroid
        keys.append((math.floor(-rp.y / band), rp.x, i))
    return [k[2] for k in sorted(keys)]
