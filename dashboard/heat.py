"""Grid heat as a server-rendered PNG: one image layer whatever the number of unit grids.

The map shows it as an image layer over the district's bounds (tech-notes §3: a 20k-polygon
choropleth costs the browser seconds per update; an image costs the same as a few points). The
grids' pixel outlines are computed once per district (:class:`HeatCanvas`); each render only
fills them with the colour of their value. Three modes: open cases, overdue cases, and today's
patrol coverage (grids nobody walked today stand out).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw
from shapely.geometry import shape

from domain.geo import polygons_of

MODES = ("open", "overdue", "patrol")


def _merc_y(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


@dataclass(frozen=True)
class HeatCanvas:
    """The pixel outlines of a district's grids on an image covering ``bounds``."""

    bounds: tuple[float, float, float, float]
    size: tuple[int, int]
    codes: tuple[str, ...]
    rings: tuple[tuple[tuple[tuple[float, float], ...], ...], ...]  # per grid: exterior rings in pixels

    @classmethod
    def build(
        cls,
        features: Sequence[Mapping[str, object]],
        bounds: tuple[float, float, float, float],
        width: int = 1200,
    ) -> HeatCanvas:
        """Project GeoJSON grid features (id = grid code) onto an image ``width`` pixels wide."""
        minx, miny, maxx, maxy = bounds
        top, bottom = _merc_y(maxy), _merc_y(miny)
        height = max(1, round(width * (top - bottom) / math.radians(maxx - minx)))
        codes: list[str] = []
        rings: list[tuple[tuple[tuple[float, float], ...], ...]] = []
        for f in features:
            geom = shape(f["geometry"])
            polys = []
            for poly in polygons_of(geom):
                polys.append(
                    tuple(
                        ((x - minx) / (maxx - minx) * width, (top - _merc_y(y)) / (top - bottom) * height)
                        for x, y in poly.exterior.coords
                    )
                )
            codes.append(str(f["id"]))
            rings.append(tuple(polys))
        return cls(bounds, (width, height), tuple(codes), tuple(rings))


LEVELS = 32  # colour steps of a mode: the image is a palette PNG (a few times smaller than RGBA)


def colour(mode: str, value: float, top: float) -> tuple[int, int, int, int] | None:
    """The RGBA fill of a grid (None: not drawn), in one of ``LEVELS`` steps per mode."""
    if mode == "patrol":
        if value <= 0:
            return (255, 77, 79, 70)  # nobody walked it today
        t = round(min(1.0, value / max(top, 1.0)) * LEVELS) / LEVELS
        return (63, 185, 80, int(60 + 120 * t))
    if value <= 0:
        return None
    t = round(min(1.0, math.log1p(value) / math.log1p(max(top, 1.0))) * LEVELS) / LEVELS
    if mode == "overdue":
        return (255, 77, 79, int(110 + 130 * t))
    return (255, int(210 - 150 * t), 60, int(90 + 150 * t))  # open: yellow → red


def render(canvas: HeatCanvas, values: Mapping[str, float], mode: str) -> bytes:
    """The heat PNG of one mode from per-grid values (missing grids count as 0): palette + alpha."""
    if mode not in MODES:
        raise ValueError(f"unknown heat mode {mode!r}")
    img = Image.new("P", canvas.size, 0)
    draw = ImageDraw.Draw(img)
    top = max([v for v in values.values() if v > 0], default=1.0)
    palette: dict[tuple[int, int, int, int], int] = {(0, 0, 0, 0): 0}  # index 0: transparent
    for code, rings in zip(canvas.codes, canvas.rings, strict=True):
        fill = colour(mode, float(values.get(code, 0.0)), top)
        if fill is None:
            continue
        index = palette.setdefault(fill, len(palette))  # at most 2 × LEVELS + 2 colours
        for ring in rings:
            draw.polygon(ring, fill=index)
    img.putpalette([c for rgba in palette for c in rgba], rawmode="RGBA")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
