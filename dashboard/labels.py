"""Street-name labels drawn into a transparent PNG, shown as an image layer on the map.

MapLibre text needs glyph files; drawing the names on the server with a local CJK font keeps the
map offline (no glyph URL) and costs one small image per district. The font is chosen by its character
map (fontTools), never by its name: fontconfig answers "sans-serif:lang=zh" with a Latin font on a
machine without CJK fonts, and that font draws every Chinese character as a box (tofu).
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
# characters every label font must have: the words of street, community and road names and digits
SAMPLE = "东西南北城区街道社区路胡同巷条号院甲乙大0123456789"
FONT_PACKAGE = "fonts-noto-cjk"  # Debian/Ubuntu; the start names it when no font covers the labels


@dataclass(frozen=True)
class LabelFont:
    """A font file (and face of a collection) verified to have a glyph for every character it draws."""

    path: str
    index: int
    codepoints: frozenset[int]

    def covers(self, text: str) -> bool:
        """Whether every visible character of ``text`` has a glyph in this face (no box drawn)."""
        return all(ord(ch) in self.codepoints for ch in text if not ch.isspace())


def _faces(path: str) -> list[tuple[int, str, Any]]:
    """(index, family name, fontTools font) of each face of a font file or collection, read lazily."""
    from fontTools.ttLib import TTCollection, TTFont

    if path.lower().endswith((".ttc", ".otc")):
        fonts = list(TTCollection(path, lazy=True).fonts)
    else:
        fonts = [TTFont(path, lazy=True)]
    return [(i, font["name"].getDebugName(1) or "", font) for i, font in enumerate(fonts)]


def _fc_candidates() -> list[str]:
    """Font files fontconfig says support Chinese (a claim, checked against the cmap afterwards)."""
    if not shutil.which("fc-list"):
        return []
    out = subprocess.run(
        ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False, timeout=20
    ).stdout
    return sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()})


def verified_font(paths: Sequence[str]) -> LabelFont | None:
    """The first face among ``paths`` whose character map covers ``SAMPLE`` (Simplified Chinese first)."""
    for path in paths:
        if not Path(path).is_file():
            continue
        try:
            faces = _faces(path)
        except Exception:  # not a font fontTools can read: try the next
            continue
        faces.sort(key=lambda f: (" SC" not in f[1], f[0]))
        for index, _name, tt in faces:
            font = LabelFont(path, index, frozenset(tt.getBestCmap() or {}))
            if font.covers(SAMPLE):
                return font
    return None


@lru_cache(maxsize=1)
def cjk_font() -> LabelFont | None:
    """A local font verified (by its character map, not its name) to draw Chinese labels, or None."""
    return verified_font([*_CANDIDATES, *_fc_candidates()])


def cjk_font_path() -> str | None:
    """The file of ``cjk_font()``, or None."""
    font = cjk_font()
    return font.path if font else None


def font_warning() -> str | None:
    """One line for the start when no font can draw the labels (naming the package), else None."""
    if cjk_font() is not None:
        return None
    return (
        f"labels: no font with Chinese characters found; map labels are left out. "
        f"Install {FONT_PACKAGE} (apt-get install {FONT_PACKAGE}) and restart."
    )


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
    face = cjk_font()
    if face:
        draw = ImageDraw.Draw(img)
        font = ImageFont.truetype(face.path, font_px, index=face.index)
        for text, lon, lat in labels:
            if not face.covers(text):
                continue  # a character the font lacks would be drawn as a box: the label is left out
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
