"""Map labels never show boxes (tofu): the font is chosen by its character map and checked by rendering."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from dashboard import labels
from dashboard.labels import LabelFont, cjk_font, label_png, verified_font
from tests.conftest import require

NAMES = ["东华门街道", "景山街道", "交道口街道", "安定门街道", "北新桥街道", "东四街道", "朝阳门街道",
         "建国门街道", "东直门街道", "和平里街道", "前门街道", "崇文门外街道", "东花市街道", "龙潭街道",
         "体育馆路街道", "天坛街道", "永定门外街道", "东四十条", "南锣鼓巷", "甲35号院"]  # fmt: skip
BOUNDS = (116.38, 39.85, 116.45, 39.97)


def _latin_font(path: Path) -> Path:
    """A tiny TrueType font with a box .notdef and a glyph for 'A' only (built with fontTools)."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def glyph(box: tuple[int, int, int, int]) -> object:
        pen = TTGlyphPen(None)
        x0, y0, x1, y1 = box
        pen.moveTo((x0, y0))
        pen.lineTo((x0, y1))
        pen.lineTo((x1, y1))
        pen.lineTo((x1, y0))
        pen.closePath()
        return pen.glyph()

    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef", "A"])
    fb.setupCharacterMap({ord("A"): "A"})
    fb.setupGlyf({".notdef": glyph((50, 0, 550, 700)), "A": glyph((100, 0, 500, 300))})
    fb.setupHorizontalMetrics({".notdef": (600, 50), "A": (600, 100)})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "LatinOnly", "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    fb.save(str(path))
    return path


def _mask(font: ImageFont.FreeTypeFont, ch: str) -> Image.Image:
    img = Image.new("L", (80, 80), 0)
    ImageDraw.Draw(img).text((40, 40), ch, font=font, fill=255, anchor="mm")
    return img


def tofu_chars(face: LabelFont, text: str) -> list[str]:
    """Characters of ``text`` this face draws as its .notdef box (compared pixel for pixel)."""
    font = ImageFont.truetype(face.path, 48, index=face.index)
    box = _mask(font, "\U0010fffd")  # a private-use code point no font maps: the .notdef glyph
    same = [ImageChops.difference(_mask(font, ch), box).getbbox() is None for ch in text]
    return [ch for ch, boxed in zip(text, same, strict=True) if boxed and not ch.isspace()]


def _cjk() -> LabelFont:
    face = cjk_font()
    if face is None:
        require("a CJK font (Debian package fonts-noto-cjk)")
    assert face is not None
    return face


def test_the_chosen_font_draws_every_label_without_a_box() -> None:
    face = _cjk()
    text = "".join(NAMES) + labels.SAMPLE
    assert face.covers(text)
    assert tofu_chars(face, text) == []
    png = label_png([(n, 116.38 + i * 0.003, 39.9) for i, n in enumerate(NAMES)], BOUNDS, width=800)
    img = Image.open(io.BytesIO(png))
    assert img.getbbox() is not None  # the labels were drawn


def test_the_box_check_finds_boxes_in_a_font_without_chinese(tmp_path: Path) -> None:
    latin = _latin_font(tmp_path / "latin.ttf")
    face = LabelFont(str(latin), 0, frozenset({ord("A")}))
    assert tofu_chars(face, "东A") == ["东"]  # the check above can fail
    assert verified_font([str(latin)]) is None  # chosen by the character map, not by a name


def test_a_font_without_chinese_is_never_used_and_the_start_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latin = _latin_font(tmp_path / "latin.ttf")
    monkeypatch.setattr(labels, "_CANDIDATES", (str(latin),))
    monkeypatch.setattr(labels, "_fc_candidates", lambda: [str(latin)])  # fontconfig's answer without CJK
    labels.cjk_font.cache_clear()
    try:
        assert labels.cjk_font() is None
        warning = labels.font_warning()
        assert warning is not None and "fonts-noto-cjk" in warning and "\n" not in warning
        png = label_png([("东四街道", 116.41, 39.93)], BOUNDS, width=400)
        assert Image.open(io.BytesIO(png)).getbbox() is None  # nothing drawn rather than boxes
    finally:
        labels.cjk_font.cache_clear()


def test_a_label_with_a_character_the_font_lacks_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    face = _cjk()
    narrow = LabelFont(face.path, face.index, face.codepoints - {ord("锣")})
    monkeypatch.setattr(labels, "cjk_font", lambda: narrow)
    only_missing = label_png([("南锣鼓巷", 116.41, 39.93)], BOUNDS, width=400)
    assert Image.open(io.BytesIO(only_missing)).getbbox() is None
    drawn = label_png([("东四街道", 116.41, 39.93)], BOUNDS, width=400)
    assert Image.open(io.BytesIO(drawn)).getbbox() is not None
