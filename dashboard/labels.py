"""Street-name labels drawn into a transparent PNG, shown as an image layer on the map.

MapLibre text needs glyph files; drawing the names on the server with a local CJK font keeps the
map offline (no glyph URL) and costs one small image per district.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)


@lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    """A local font file with CJK glyphs (Noto Sans CJK from fonts-noto-cjk), or None."""
    for p in _CANDIDATES:
        if Path(p).exists():
            return p
    if shutil.which("fc-match"):
        out = subprocess.run(
            ["fc-match", "-f", "%{file}", "sans-serif:lang=zh-cn"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if out and Path(out).exists():
            return out
    return None


def _merc_y(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def label_png(
    labels: Sequence[tuple[str, float, float]],
    bounds: tuple[float, float, float, float],
    width: int = 2400,
    font_px: int = 40,
) -> bytes:
    """A transparent PNG covering ``bounds`` with each (text, lon, lat) drawn at its place."""
    minx, miny, maxx, maxy = bounds
    top, bottom = _merc_y(maxy), _merc_y(miny)
    span_x = math.radians(maxx - minx)
    height = max(1, round(width * (top - bottom) / span_x))
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    path = cjk_font_path()
    if path:
        draw = ImageDraw.Draw(img)
        font = ImageFont.truetype(path, font_px)
        for text, lon, lat in labels:
            x = (lon - minx) / (maxx - minx) * width
            y = (top - _merc_y(lat)) / (top - bottom) * height
            draw.text(
                (x, y),
                text,
                font=font,
                fill=(240, 246, 255, 255),
                anchor="mm",
                stroke_width=max(2, font_px // 10),
                stroke_fill=(8, 14, 28, 230),
            )
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
