"""The geocoder's accuracy bar (issue 17) on a Dongcheng gazetteer made from the shared road network.

How the gazetteer is made (tests only; the road file has no licence and is never shipped): every
named road of ``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02) is merged into its
lines, and points are set along them every 40 m (the first 20 m in), numbered 1, 2, 3 … per road
name in the order of its pieces; each point is the address ``<road name><n>号``. The CSV is imported
with ``store.addresses.import_addresses`` in GCJ-02 (the file name says so) like a centre's file.

Then: a held-back sample of those addresses, each rewritten the way people write them (numbers in
Chinese, with or without 北京市东城区 / 北京东城区 / 东城区 / 北京市, 号院 for 号, full-width digits,
extra or full-width spaces, no 号), must come back within 50 m in ≥ 95 % (top-1); and addresses
that are not in the gazetteer (road names that do not exist, a real name with a character more or
less, numbers far beyond a road's last one) are never placed. The latencies are printed for
BENCHMARKS.md (run with ``-s``).
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import time
from pathlib import Path

import cn2an
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString
from sqlalchemy.engine import Engine

from domain.address import Gazetteer
from store.addresses import AddressBook, import_addresses, load_gazetteer
from store.db import session_factory
from store.geography import load_index
from tests.conftest import SHARED, require

ROADS = SHARED / "data" / "roads" / "dongcheng_roads_gcj02.geojson"
SPACING_M = 40.0
HELD_BACK = 1200
_M = 6_371_008.8 * math.pi / 180.0
_FULL = str.maketrans("0123456789", "０１２３４５６７８９")


def road_addresses(path: Path, spacing: float = SPACING_M) -> list[tuple[str, float, float]]:
    """``(<road><n>号, lon, lat)`` every ``spacing`` metres along each named road (GCJ-02 in and out)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    lines: dict[str, list[list[list[float]]]] = {}
    for f in doc["features"]:
        name = (f["properties"].get("name") or "").strip()
        if name and f["geometry"]["type"] == "LineString":
            lines.setdefault(name, []).append(f["geometry"]["coordinates"])
    lon0, lat0 = 116.41, 39.92
    kx = _M * math.cos(math.radians(lat0))
    out: list[tuple[str, float, float]] = []
    for name in sorted(lines):
        parts = [LineString([((x - lon0) * kx, (y - lat0) * _M) for x, y in c]) for c in lines[name]]
        merged = shapely.line_merge(MultiLineString(parts))
        pieces = list(getattr(merged, "geoms", [merged]))
        pieces.sort(key=lambda g: (round(g.bounds[0]), round(g.bounds[1])))
        n = 1
        for piece in pieces:
            for i in range(max(1, int(piece.length // spacing))):
                p = piece.interpolate(min(piece.length, spacing / 2 + i * spacing))
                out.append((f"{name}{n}号", lon0 + p.x / kx, lat0 + p.y / _M))
                n += 1
    return out


def rewrite(name: str, n: int, k: int) -> str:
    """The ``k``-th way of writing ``<name><n>号`` (see the module's notes)."""
    cn = cn2an.an2cn(str(n))
    full = str(n).translate(_FULL)
    forms = [
        f"北京市东城区{name}{cn}号",
        f"{name}{n}号院",
        f"北京东城区 {name} {full}号",
        f"{name}{cn}号院",
        f"东城区{name}{n}号",
        f" {name}\u3000{n} 号 ",
        f"北京市{name}{full}号院",
        f"{name}{n}",
        f"北京东城{name}{cn}号",
    ]
    return forms[k % len(forms)]


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance between two WGS-84 points (equirectangular; exact enough at tens of metres)."""
    dx = (a[0] - b[0]) * _M * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot(dx, (a[1] - b[1]) * _M)


@pytest.fixture(scope="module")
def gazetteer(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Gazetteer:
    if not ROADS.exists():
        require(f"the shared road network {ROADS}")
    rows = road_addresses(ROADS)
    path = tmp_path_factory.mktemp("gaz") / "dongcheng_addresses_gcj02.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "lon", "lat"])
        w.writerows(rows)
    with session_factory(city_engine)() as s:
        index = load_index(s, "110101")
    t0 = time.perf_counter()
    summary = import_addresses(city_engine, path, index)
    took = time.perf_counter() - t0
    print(f"\nimport: {len(rows)} rows in {took:.2f} s: " + "; ".join(summary.lines()[:2]))
    assert summary.crs.value == "gcj02" and summary.added > 11_000
    assert set(summary.rejected) <= {"outside_district"}  # roads run ~100 m past the district's edge
    with city_engine.connect() as conn:
        return load_gazetteer(conn)


def test_held_back_addresses_in_varied_forms_come_back_within_50_m(gazetteer: Gazetteer) -> None:
    rng = random.Random(17)
    sample = rng.sample(list(gazetteer.addresses), HELD_BACK)
    near = placed = 0
    took: list[float] = []
    misses: list[str] = []
    for k, a in enumerate(sample):
        p = a.parsed
        assert p.number is not None
        query = rewrite(p.name, p.number, k)
        t0 = time.perf_counter()
        g = gazetteer.geocode(query)
        took.append(time.perf_counter() - t0)
        top = g.candidates[0].address if g.candidates else None
        if top is not None and metres((top.lon, top.lat), (a.lon, a.lat)) <= 50.0:
            near += 1
        elif len(misses) < 10:
            misses.append(f"{query} → {top.text if top else None}")
        placed += g.placed is not None
    share = near / len(sample)
    q = statistics.quantiles(took, n=20)
    print(f"\naccuracy: top-1 within 50 m {near}/{len(sample)} = {share:.1%}, placed {placed}/{len(sample)}; "
          f"latency p50 {statistics.median(took) * 1e3:.2f} ms, p95 {q[18] * 1e3:.2f} ms, "
          f"{len(gazetteer)} addresses")  # fmt: skip
    assert share >= 0.95, misses
    assert placed / len(sample) >= 0.95


def test_addresses_not_in_the_gazetteer_are_never_placed(gazetteer: Gazetteer) -> None:
    rng = random.Random(170)
    names = {a.parsed.name for a in gazetteer.addresses}
    last: dict[str, int] = {}
    for a in gazetteer.addresses:
        last[a.parsed.name] = max(last.get(a.parsed.name, 0), a.parsed.number or 0)
    pool = "甲乙丙丁戊己庚辛壬癸春夏秋冬梅兰竹菊松柏桃李杏柳福禄寿喜金银铜铁"
    unknown: list[str] = []
    while len(unknown) < 300:
        name = "".join(rng.choice(pool) for _ in range(rng.randint(2, 4))) + rng.choice(
            ["胡同", "大街", "路", "巷", "条", "街"]
        )
        if name not in names:
            unknown.append(f"北京市东城区{name}{rng.randint(1, 80)}号")
    beyond = [f"{n}{last[n] + rng.randint(100, 500)}号" for n in rng.sample(sorted(names), 300)]
    # a real name with a character more or less is another road (大方家胡同 is not 方家胡同)
    more = [f"{c}{n}3号" for n in rng.sample(sorted(names), 200) for c in "大" if f"{c}{n}" not in names]
    less = [f"{n[1:]}3号" for n in rng.sample(sorted(names), 200) if len(n) > 3 and n[1:] not in names]
    placed = [q for q in unknown + beyond + more + less if gazetteer.geocode(q).placed is not None]
    assert placed == []


def test_reverse_is_fast_and_finds_the_address_itself(gazetteer: Gazetteer) -> None:
    rng = random.Random(1)
    sample = rng.sample(list(gazetteer.addresses), 500)
    took = []
    for a in sample:
        t0 = time.perf_counter()
        hit = gazetteer.reverse(a.lon + 0.00005, a.lat)  # ~4 m east
        took.append(time.perf_counter() - t0)
        assert hit is not None and hit[1] < 30
    print(f"\nreverse: p50 {statistics.median(took) * 1e3:.3f} ms, p95 "
          f"{statistics.quantiles(took, n=20)[18] * 1e3:.3f} ms")  # fmt: skip
    assert statistics.median(took) < 0.005


def test_the_address_book_serves_the_same_answers(city_engine: Engine, gazetteer: Gazetteer) -> None:
    book = AddressBook.shared(city_engine)
    a = gazetteer.addresses[100]
    got = book.geocode(f"北京市东城区{a.parsed.name}{cn2an.an2cn(str(a.parsed.number))}号院")
    assert got.placed is not None and got.placed.address.id == a.id
