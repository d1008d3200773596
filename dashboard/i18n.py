"""The UI text catalogue, Chinese and English; Chinese is the default."""

from __future__ import annotations

DEFAULT_LANG = "zh"
LANGS = ("zh", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "app.title": {"zh": "GridWall 网格化城市管理监督指挥", "en": "GridWall grid city management command"},
    "page.wall": {"zh": "监督指挥大屏", "en": "Command wall"},
    "page.desk": {"zh": "领导桌面", "en": "Leaders' desk"},
    "page.not_found": {"zh": "页面不存在", "en": "Page not found"},
    "count.streets": {"zh": "街道", "en": "Streets"},
    "count.communities": {"zh": "社区", "en": "Communities"},
    "count.grids": {"zh": "单元网格", "en": "Unit grids"},
    "count.areas": {"zh": "责任网格", "en": "Responsibility areas"},
    "streets.title": {"zh": "街道与单元网格", "en": "Streets and unit grids"},
    "streets.grids": {"zh": "网格", "en": "grids"},
    "map.grid": {"zh": "单元网格", "en": "Unit grid"},
    "map.street": {"zh": "街道", "en": "Street"},
    "map.community": {"zh": "社区", "en": "Community"},
    "map.level": {"zh": "管理等级", "en": "Level"},
    "map.area": {"zh": "面积", "en": "Area"},
    "note.generated": {
        "zh": "街道与社区为生成的片区，非真实边界",
        "en": "Streets and communities are generated zones, not real boundaries",
    },
    "note.offline": {"zh": "离线地图 · WGS-84", "en": "Offline map · WGS-84"},
    "level.general": {"zh": "一般", "en": "General"},
    "level.key": {"zh": "重点", "en": "Key"},
    "level.comprehensive": {"zh": "综合治理", "en": "Comprehensive"},
    "kiosk.denied": {"zh": "大屏令牌无效或缺失", "en": "Missing or invalid kiosk token"},
    "empty.district": {
        "zh": "尚未建立辖区：运行 python app.py init",
        "en": "No district built yet: run python app.py init",
    },
}


def t(key: str, lang: str = DEFAULT_LANG) -> str:
    """The text of ``key`` in ``lang`` (falls back to Chinese, then to the key itself)."""
    entry = CATALOGUE.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get(DEFAULT_LANG) or key


def pick_lang(value: str | None) -> str:
    """A supported language from a query/cookie value (Chinese by default)."""
    return value if value in LANGS else DEFAULT_LANG
