"""Chinese addresses (门牌地址): normalisation, parsing, and a gazetteer that geocodes and reverse-geocodes.

Pure: no I/O. A :class:`Gazetteer` is built from the address table's rows (``store.addresses``) and
answers

* :meth:`Gazetteer.geocode`: an address as a person writes it → ranked :class:`Candidate` s, and the
  best one as :attr:`Geocoded.placed` only when it is safe to place a case there without a person
  looking (the name and the 门牌 match, the score passes the threshold, nothing else as good lies
  elsewhere). An address that is not in the gazetteer is never placed: it gets candidates.
* :meth:`Gazetteer.reverse`: a WGS-84 point → the nearest address and its distance (an STRtree).

Normalisation (:func:`normalise`): NFKC (full-width digits, letters, spaces and brackets to half
width), bracketed notes and punctuation dropped, spaces dropped, the division prefixes of the
district dropped (北京市, 东城区, 东四街道 … — :class:`Prefixes`, made from the store's district, never
hard-coded), and the 门牌 split off (:func:`parse`): ``(name, number, qualifier, suffix)`` where
``甲1号院`` is number 1, qualifier 甲, suffix 院. Numbers in Chinese (三十五, 一百零五, 一〇五, 两百)
become integers with ``cn2an`` (MIT, maintained, pure Python; its one dependency ``proces`` is small);
only the 门牌 is converted, so a road named with a numeral stays itself (东四十条 is a name, not
"东40条"). Road-type words (路/街/大街/胡同/巷/条/里 …) are kept: they tell roads apart.

Why rapidfuzz for the name: the gazetteer holds thousands of road and place names and a query's
name must be compared with each; rapidfuzz (MIT, maintained, C++ with wheels for every platform)
does ``process.extract`` over them in well under a millisecond with the normalised Indel similarity
(``fuzz.ratio``), which suits Chinese names (no word boundaries: the characters are the tokens).
A hand-written edit distance in Python would be ~100× slower and another thing to get wrong.

Safety rules on top of the similarity (an operator must never find a case placed on the wrong road):
names that differ in a direction, size or numeral character (东/西/内/外/大/小/一/二 …) or in the road
type (街 vs 路 vs 胡同) are different roads, however similar the rest (``安定门东滨河路`` and
``安定门西滨河路`` are 86 % alike), and so are names with a character more or less (``方家胡同`` and
``大方家胡同``, 89 % alike); such a candidate is shown, never placed. Only the same name, or a long
name with one character mistyped (same length, ≥ 7 characters at the default threshold), is placed.
A 门牌 that is not in the gazetteer gives the nearest numbers on the same road as candidates, not an
interpolated point: Beijing's numbering is not regular enough (odd and even sides, 甲/乙 numbers
inserted, courtyards numbered apart) for a point between two numbers to be trusted.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cn2an
import numpy as np
import shapely
from rapidfuzz import fuzz, process

DEFAULT_THRESHOLD = 0.85  # score from which an address-only report is placed without a person
MAX_QUERY = 200  # characters of an address (the cases table keeps 200)
NEAR_M = 50.0  # two top candidates closer than this are the same place (not an ambiguity)
RIVAL = 0.05  # a placeable candidate this close to the best one's score, elsewhere, makes it ambiguous
DIRECTION_CHARS = frozenset("东西南北内外前后上下中左右大小新老")  # with the numerals: tell roads apart
NUMERAL_CHARS = frozenset("零〇一二两三四五六七八九十百千头")
# road-type words, longest first (the last one a name ends with is its type)
ROAD_TYPES = ("大街", "小街", "胡同", "夹道", "街", "路", "巷", "条", "里", "道", "桥", "沿")
QUALIFIERS = "甲乙丙丁戊"
_CN_DIGITS = "零〇一二两三四五六七八九十百千"
_NUM = rf"(?:[0-9]+|[{_CN_DIGITS}]+)"
# the first 门牌 after the name: [甲]35号…, [甲]三十五号… (a range 35-37号 keeps its first number)
_DOOR = re.compile(rf"^(?P<name>.*?)(?P<q>[{QUALIFIERS}]?)(?P<num>{_NUM})(?:-{_NUM})?号(?P<rest>.*)$")
_TRAILING = re.compile(rf"^(?P<name>.*?[^0-9{QUALIFIERS}])(?P<q>[{QUALIFIERS}]?)(?P<num>[0-9]+)$")
_CITY = re.compile(r"^[\u4e00-\u9fff]{2,7}?(?:市|自治州|地区|盟)")  # a city's name before its district
_BRACKETS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】|〔[^〔〕]*〕")
_ARABIC = re.compile(r"[0-9]+")
_EARTH_R = 6_371_008.8
_M_PER_DEG = _EARTH_R * math.pi / 180.0


@dataclass(frozen=True)
class Prefixes:
    """The division names an address may start with, to be dropped (made from the store's district).

    ``full``: names with their division word (北京市, 东城区, 东四街道, 东四社区), dropped wherever they
    lead. ``cities``/``districts``: bare stems (北京, 东城), dropped only where a stem follows a city
    (北京东城…): bare, they also start road names (北京站东街 is a road in 东城区). Any city's name
    (杭州市) is dropped where the district's name follows it.
    """

    full: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        district: str,
        city: str = "",
        province: str = "",
        streets: Iterable[str] = (),
        communities: Iterable[str] = (),
    ) -> Prefixes:
        """Prefixes of a district given its name, its city's and province's, its streets and communities."""
        full: set[str] = set()
        cities: set[str] = set()
        districts: set[str] = set()
        for name, stems in ((province, cities), (city, cities), (district, districts)):
            name = _clean(name)
            if not name:
                continue
            full.add(name)
            stem = re.sub(r"(特别行政区|自治区|自治州|自治县|省|市|区|县|旗|盟)$", "", name)
            if len(stem) >= 2 and stem != name:
                stems.add(stem)
        for name in (*streets, *communities):
            name = _clean(name)
            if len(name) >= 3 and name.endswith(("街道", "社区", "地区", "镇", "乡")):
                full.add(name)
        return cls(_longest_first(full), _longest_first(cities), _longest_first(districts))


def _longest_first(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda n: (-len(n), n)))


def _clean(text: str) -> str:
    """NFKC, no bracketed notes, no spaces, no punctuation but ``-`` and ``#``; Latin in lower case."""
    s = unicodedata.normalize("NFKC", text)
    s = _BRACKETS.sub("", s)
    out = []
    for ch in s:
        if ch.isspace():
            continue
        if ch == "-":
            out.append(ch)
            continue
        if ch == "#":  # 3#楼: 3号楼
            out.append("号")
            continue
        cat = unicodedata.category(ch)
        if cat[0] in "PSC":
            if ch in "—–~～至":  # a range (35—37号) reads as one
                out.append("-")
            continue
        out.append(ch)
    return "".join(out).lower()


def strip_prefixes(text: str, prefixes: Prefixes) -> str:
    """A cleaned address without the division names it starts with (see :class:`Prefixes`)."""
    s = text
    after_city = False
    while True:
        for name in prefixes.full:
            if s.startswith(name) and len(s) > len(name):
                s = s[len(name) :]
                after_city = True
                break
        else:
            city = _CITY.match(s)
            for stem in (*prefixes.cities, *([city.group(0)] if city else [])):
                rest = s[len(stem) :]
                if s.startswith(stem) and any(
                    rest.startswith(n) and len(rest) > len(n) for n in (*prefixes.full, *prefixes.districts)
                ):
                    s, after_city = rest, True
                    break
            else:
                for stem in prefixes.districts if after_city else ():
                    if s.startswith(stem) and len(s) > len(stem):
                        s = s[len(stem) :]
                        break
                else:
                    return s


def normalise(text: str, prefixes: Prefixes | None = None) -> str:
    """An address in one canonical spelling: width, spaces, punctuation, division prefixes, 门牌 numbers.

    ``北京市东城区 东四十条 三十五号院`` → ``东四十条35号院``; ``东四十条甲１号`` → ``东四十条甲1号``.
    """
    p = parse(text, prefixes)
    if p.number is None:
        return p.name + p.suffix
    return f"{p.name}{p.qualifier}{p.number}号{p.suffix}"


@dataclass(frozen=True)
class ParsedAddress:
    """An address split for matching: the road or place name, the 门牌 and what follows it."""

    name: str  # road or place name (东四十条), numerals of the name kept as written in Chinese
    number: int | None = None  # the 门牌 number (35), None without one
    qualifier: str = ""  # 甲/乙/丙/丁/戊 before the number
    suffix: str = ""  # what follows 号: 院, 院3号楼, 楼 …

    @property
    def door(self) -> str:
        """The 门牌 as text (``甲35``), empty without a number."""
        return "" if self.number is None else f"{self.qualifier}{self.number}"


def chinese_number(text: str) -> int | None:
    """An integer written in Arabic or Chinese numerals (三十五, 一百零五, 一〇五, 两百), else None."""
    if text.isdigit():
        return int(text)
    try:
        value = cn2an.cn2an(text, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def _name_key(name: str) -> str:
    """A name's Arabic numerals in Chinese, as road names are written (东四3条 → 东四三条); a run of
    more than 8 digits is no road's number and stays as it is (cn2an refuses over 16)."""

    def chinese(m: re.Match[str]) -> str:
        digits = m.group(0)
        return str(cn2an.an2cn(digits)) if len(digits) <= 8 else digits

    return _ARABIC.sub(chinese, name) if _ARABIC.search(name) else name


def parse(text: str, prefixes: Prefixes | None = None) -> ParsedAddress:
    """Split an address into (name, number, qualifier, suffix); see the module's notes."""
    s = strip_prefixes(_clean(text), prefixes or Prefixes())
    for pattern in (_DOOR, _TRAILING):
        m = pattern.match(s)
        if m is None or not m.group("name"):
            continue
        number = chinese_number(m.group("num"))
        if number is None:
            continue
        rest = m.groupdict().get("rest") or ""
        return ParsedAddress(_name_key(m.group("name")), number, m.group("q"), rest)
    return ParsedAddress(_name_key(s))


def road_type(name: str) -> str:
    """The road-type word a name ends with (胡同, 大街, 条 …), or ``""``."""
    for word in ROAD_TYPES:
        if name.endswith(word):
            return word
    return ""


def _key_chars(name: str) -> list[str]:
    """The direction and numeral characters of a name, in order (they tell roads apart)."""
    return [ch for ch in name if ch in DIRECTION_CHARS or ch in NUMERAL_CHARS]


def distinct_names(a: str, b: str) -> bool:
    """Whether two names are different roads whatever their similarity: another direction or numeral
    character (东/西, 头/二条), or another road type (街 vs 路)."""
    return a != b and (_key_chars(a) != _key_chars(b) or road_type(a) != road_type(b))


@dataclass(frozen=True)
class Address:
    """One entry of the gazetteer (a row of the address table), WGS-84."""

    id: int
    text: str  # as imported
    lon: float
    lat: float
    grid: str | None = None
    community: str | None = None
    parsed: ParsedAddress = field(default_factory=lambda: ParsedAddress(""))


@dataclass(frozen=True)
class Candidate:
    """A gazetteer entry proposed for a query, with its score (0–1) and whether it may be placed."""

    address: Address
    score: float
    exact: bool  # same name and same 门牌 (or neither has a 门牌)
    placeable: bool  # exact and the names are not distinct roads (see :func:`distinct_names`)


@dataclass(frozen=True)
class Geocoded:
    """The answer to one address: candidates best first, and the one to place the case at (or None)."""

    query: str
    parsed: ParsedAddress
    candidates: tuple[Candidate, ...]
    placed: Candidate | None
    threshold: float

    @property
    def score(self) -> float:
        """The best candidate's score (0 without candidates)."""
        return self.candidates[0].score if self.candidates else 0.0


def _number_factor(q: ParsedAddress, e: ParsedAddress) -> tuple[float, bool]:
    """How well an entry's 门牌 fits the query's (0–1), and whether it is the same 门牌."""
    if q.number is None and e.number is None:
        return 1.0, True
    if q.number is None:
        return 0.5, False  # a road asked for: its numbers are candidates only
    if e.number is None:
        return 0.6, False  # a place without 门牌 asked with a number
    if q.number == e.number:
        return (1.0, True) if q.qualifier == e.qualifier else (0.8, False)
    return 0.7 - min(abs(q.number - e.number), 60) / 100.0, False  # nearer numbers first, never 0


class Gazetteer:
    """The address table in memory: fuzzy geocoding on names, exact or nearest 门牌, reverse by STRtree."""

    def __init__(
        self,
        addresses: Sequence[Address],
        prefixes: Prefixes | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        version: str = "",
    ) -> None:
        self.prefixes = prefixes or Prefixes()
        self.threshold = threshold
        self.version = version  # the store's latest import it was loaded at (store.addresses)
        self.addresses = tuple(addresses)
        self._by_id = {a.id: a for a in self.addresses}
        by_name: dict[str, list[Address]] = {}
        for a in self.addresses:
            by_name.setdefault(a.parsed.name, []).append(a)
        for entries in by_name.values():
            entries.sort(key=lambda a: (a.parsed.number is None, a.parsed.number or 0, a.parsed.qualifier))
        self._by_name = by_name
        self._names = list(by_name)
        if self.addresses:
            lon = np.fromiter((a.lon for a in self.addresses), np.float64, len(self.addresses))
            lat = np.fromiter((a.lat for a in self.addresses), np.float64, len(self.addresses))
            self._lat0 = float(np.median(lat))
            self._lon0 = float(np.median(lon))
        else:
            lon = lat = np.zeros(0)
            self._lat0 = self._lon0 = 0.0
        self._kx = _M_PER_DEG * math.cos(math.radians(self._lat0))
        x, y = self._metres(lon, lat)
        self._points = shapely.points(x, y)
        self._tree = shapely.STRtree(self._points)

    def __len__(self) -> int:
        return len(self.addresses)

    def get(self, address_id: int) -> Address | None:
        """An entry by its id."""
        return self._by_id.get(address_id)

    def _metres(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local metres around the gazetteer's middle (equirectangular: < 0.1 % off within 20 km)."""
        return (lon - self._lon0) * self._kx, (lat - self._lat0) * _M_PER_DEG

    def distance_m(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """Metres between two WGS-84 points (the gazetteer's local plane)."""
        dx = (a[0] - b[0]) * _M_PER_DEG * math.cos(math.radians((a[1] + b[1]) / 2))
        return math.hypot(dx, (a[1] - b[1]) * _M_PER_DEG)

    def parse(self, text: str) -> ParsedAddress:
        """An address parsed with this gazetteer's district prefixes."""
        return parse(text, self.prefixes)

    def _names_like(self, name: str, limit: int) -> list[tuple[str, float]]:
        """Gazetteer names like ``name`` with their similarity (0–1), best first; the same name first."""
        if not name or not self._names:
            return []
        found = process.extract(name, self._names, scorer=fuzz.ratio, limit=limit, score_cutoff=50)
        out = [(str(n), float(s) / 100.0) for n, s, _ in found]
        if name in self._by_name and (not out or out[0][0] != name):
            out = [(name, 1.0)] + [x for x in out if x[0] != name]
        return out

    def geocode(self, text: str, *, limit: int = 5) -> Geocoded:
        """Candidates for an address, best first, and the one to place it at (None: a person decides)."""
        q = self.parse(text[: MAX_QUERY * 2])
        scored: dict[int, Candidate] = {}
        for name, sim in self._names_like(q.name, 8):
            distinct = distinct_names(q.name, name)
            entries = self._by_name[name]
            for e in self._nearest_numbers(entries, q):
                nf, exact = _number_factor(q, e.parsed)
                score = sim * nf * (0.8 if distinct else 1.0)
                # a name with a character more or less is another road (方家胡同, 大方家胡同): only the
                # same name, or one of the same length with a character mistyped, may be placed
                placeable = exact and not distinct and len(name) == len(q.name)
                old = scored.get(e.id)
                if old is None or score > old.score:
                    scored[e.id] = Candidate(e, round(score, 4), exact, placeable)
        ranked = sorted(scored.values(), key=lambda c: (-c.score, c.address.id))[:limit]
        return Geocoded(text, q, tuple(ranked), self._placed(ranked), self.threshold)

    def _placed(self, ranked: Sequence[Candidate]) -> Candidate | None:
        """The best candidate if it may be placed: placeable, over the threshold, and no other placeable
        candidate about as good somewhere else (two 东四十条35号 far apart: a person decides)."""
        if not ranked:
            return None
        best = ranked[0]
        if not best.placeable or best.score < self.threshold:
            return None
        here = (best.address.lon, best.address.lat)
        for other in ranked[1:]:
            if (
                other.placeable
                and other.score >= max(self.threshold, best.score - RIVAL)
                and (self.distance_m(here, (other.address.lon, other.address.lat)) > NEAR_M)
            ):
                return None
        return best

    @staticmethod
    def _nearest_numbers(entries: list[Address], q: ParsedAddress, k: int = 3) -> list[Address]:
        """The entries of one name worth scoring: the same 门牌 and the ``k`` nearest numbers."""
        if len(entries) <= k:
            return entries
        if q.number is None:
            return entries[:k]
        same = [e for e in entries if e.parsed.number == q.number]
        rest = sorted(
            (e for e in entries if e.parsed.number != q.number),
            key=lambda e: (e.parsed.number is None, abs((e.parsed.number or 0) - q.number)),  # type: ignore[operator]
        )
        return same + rest[:k]

    def reverse(self, lon: float, lat: float, max_m: float = 1000.0) -> tuple[Address, float] | None:
        """The nearest address to a WGS-84 point within ``max_m`` metres, and its distance (None: none)."""
        if not self.addresses or not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        x, y = self._metres(np.array([lon]), np.array([lat]))
        idx, dist = self._tree.query_nearest(
            shapely.points(x, y), max_distance=max_m, return_distance=True, all_matches=False
        )
        if len(idx[1]) == 0:
            return None
        return self.addresses[int(idx[1][0])], float(dist[0])
