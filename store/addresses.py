"""The 门牌 gazetteer in the store: ``app.py import addresses`` and the geocoder's loaded copy.

:func:`import_addresses` reads a CSV (columns ``address, lon, lat[, number, community]``, names
configurable) or GeoJSON points (an ``address`` property), in any of the three CRSs (GCJ-02 and
BD-09 converted to WGS-84 as every input is), locates each point in a unit grid with the district's
grid index, and writes the file in one transaction: an address already stored (same normalised text,
:func:`domain.address.normalise`) is updated, a new one added; a bad row is rejected by name
(``missing_address``, ``too_long``, ``bad_point``, ``outside_district``, ``duplicate_address``) and
the others still go in. Each import is logged in ``address_imports``, whose highest id is the
gazetteer's version.

:class:`AddressBook` is the gazetteer a process geocodes with (the pipeline's intake, the HTTP routes,
the desk): loaded on first use, it looks at the version at most every ``check_every_s`` seconds and
reloads when an import changed it, so a re-import reaches every process without a restart.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from domain.address import DEFAULT_THRESHOLD, MAX_QUERY, Address, Gazetteer, Geocoded, Prefixes, parse
from domain.crs import CRS, to_wgs84
from domain.errors import GeoInputError
from domain.geofile import crs_from_name
from domain.index import PointGridIndex
from store.models import Address as AddressRow
from store.models import AddressImport, Community, District, Street

log = logging.getLogger(__name__)

# the columns of an address file and the header names each is found under (first match wins)
COLUMNS: dict[str, tuple[str, ...]] = {
    "address": ("address", "addr", "地址", "门牌地址", "标准地址", "full_address"),
    "lon": ("lon", "lng", "longitude", "经度", "x"),
    "lat": ("lat", "latitude", "纬度", "y"),
    "number": ("number", "门牌号", "门牌", "house_number"),
    "community": ("community", "社区", "社区名称"),
}
REASONS = ("missing_address", "too_long", "bad_point", "outside_district", "duplicate_address")
# province-level divisions by the first two digits of an adcode (GB/T 2260); a municipality is its city
PROVINCES = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区", "21": "辽宁省",
    "22": "吉林省", "23": "黑龙江省", "31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省",
    "35": "福建省", "36": "江西省", "37": "山东省", "41": "河南省", "42": "湖北省", "43": "湖南省",
    "44": "广东省", "45": "广西壮族自治区", "46": "海南省", "50": "重庆市", "51": "四川省", "52": "贵州省",
    "53": "云南省", "54": "西藏自治区", "61": "陕西省", "62": "甘肃省", "63": "青海省",
    "64": "宁夏回族自治区", "65": "新疆维吾尔自治区", "71": "台湾省", "81": "香港特别行政区",
    "82": "澳门特别行政区",
}  # fmt: skip


@dataclass
class ImportSummary:
    """What an import did: rows added and updated, rejected rows by reason (their line numbers)."""

    source: str
    crs: CRS
    added: int = 0
    updated: int = 0
    rejected: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        """Rows rejected, whatever the reason."""
        return sum(len(lines) for lines in self.rejected.values())

    def lines(self) -> list[str]:
        """The summary as printed by ``app.py import addresses``."""
        out = [
            f"addresses from {self.source} ({self.crs.value}): {self.added} added, {self.updated} updated, "
            f"{self.rejected_count} rejected"
        ]
        for reason in sorted(self.rejected, key=lambda r: (-len(self.rejected[r]), r)):
            where = self.rejected[reason]
            shown = ", ".join(str(n) for n in where[:10]) + (
                f", … ({len(where) - 10} more)" if len(where) > 10 else ""
            )
            out.append(f"  {reason}: {len(where)} (lines {shown})")
        return out


@dataclass(frozen=True)
class _Row:
    line: int
    text: str
    lon: Any
    lat: Any
    number: str
    community: str


def _columns(header: list[str], names: Mapping[str, str] | None) -> dict[str, str]:
    """The header name of each column: the configured one, else the first alias present."""
    given = {h.strip(): h for h in header}
    lower = {h.strip().lower(): h for h in header}
    found: dict[str, str] = {}
    for col, aliases in COLUMNS.items():
        wanted = (names or {}).get(col)
        if wanted:
            if wanted not in given:
                raise GeoInputError(f"no column {wanted!r} (for {col}); the header has {', '.join(given)}")
            found[col] = given[wanted]
            continue
        for alias in aliases:
            if alias in given or alias.lower() in lower:
                found[col] = given.get(alias) or lower[alias.lower()]
                break
    missing = [c for c in ("address", "lon", "lat") if c not in found]
    if missing:
        raise GeoInputError(
            f"no column for {', '.join(missing)}: name them with --columns address=…,lon=…,lat=… "
            f"(the header has {', '.join(given)})"
        )
    return found


def _csv_rows(text: str, names: Mapping[str, str] | None) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise GeoInputError("the file is empty (a header address,lon,lat[,number,community] is needed)")
    cols = _columns(list(reader.fieldnames), names)
    for n, rec in enumerate(reader, start=2):

        def get(col: str, rec: dict[str, Any] = rec) -> str:
            return str(rec.get(cols[col]) or "").strip() if col in cols else ""

        yield _Row(n, get("address"), get("lon"), get("lat"), get("number"), get("community"))


def _geojson_rows(doc: Any, names: Mapping[str, str] | None) -> Iterator[_Row]:
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise GeoInputError("malformed GeoJSON: a FeatureCollection of Point features is needed")
    feats = doc.get("features") if doc["type"] == "FeatureCollection" else [doc]
    if not isinstance(feats, list):
        raise GeoInputError("malformed GeoJSON: 'features' is not a list")
    for n, feat in enumerate(feats, start=1):
        props = (feat.get("properties") if isinstance(feat, dict) else None) or {}
        props = props if isinstance(props, dict) else {}
        cols = {k: (names or {}).get(k) or next((a for a in COLUMNS[k] if a in props), k) for k in COLUMNS}
        geom = feat.get("geometry") if isinstance(feat, dict) else None
        coords = geom.get("coordinates") if isinstance(geom, dict) and geom.get("type") == "Point" else None
        lon, lat = (coords[0], coords[1]) if isinstance(coords, list) and len(coords) >= 2 else (None, None)

        def text(col: str, props: dict[str, Any] = props, cols: dict[str, str] = cols) -> str:
            value = props.get(cols[col])
            return "" if value is None else str(value).strip()

        yield _Row(n, text("address"), lon, lat, text("number"), text("community"))


def _number(value: Any) -> float | None:
    """A coordinate as a finite float (None when it is not one)."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def district_prefixes(conn: Connection) -> Prefixes:
    """The division names addresses of the stored district may start with (province, city, district,
    streets, communities), from the store."""
    row = conn.execute(select(District.adcode, District.name).order_by(District.built_at.desc())).first()
    if row is None:
        return Prefixes()
    adcode, name = row
    province = PROVINCES.get(adcode[:2], "")
    streets = conn.scalars(select(Street.name).where(Street.district_adcode == adcode)).all()
    communities = conn.scalars(select(Community.name).where(Community.code.startswith(adcode))).all()
    return Prefixes.of(name, province if adcode[:2] in ("11", "12", "31", "50") else "", province,
                       streets, communities)  # fmt: skip


def import_addresses(
    engine: Engine,
    path: Path,
    index: PointGridIndex,
    *,
    crs: str | None = None,
    columns: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Import an address file (CSV or GeoJSON points) into the gazetteer; see the module's notes."""
    if not path.exists():
        raise GeoInputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GeoInputError(f"{path}: cannot read as UTF-8: {exc}") from None
    is_json = path.suffix.lower() in (".geojson", ".json")
    doc: Any = None
    if is_json:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GeoInputError(f"{path}: malformed GeoJSON: {exc.msg} at line {exc.lineno}") from None
    declared = _declared_crs(path, crs, doc)
    try:
        rows = list(_geojson_rows(doc, columns) if is_json else _csv_rows(text, columns))
    except GeoInputError as exc:
        raise GeoInputError(f"{path}: {exc}") from None
    summary = ImportSummary(path.name[:200], declared)

    def reject(reason: str, line: int) -> None:
        summary.rejected.setdefault(reason, []).append(line)

    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        prefixes = district_prefixes(conn)
        good: list[tuple[_Row, float, float]] = []
        for r in rows:
            lon, lat = _number(r.lon), _number(r.lat)
            if not r.text:
                reject("missing_address", r.line)
            elif len(r.text) > 200:
                reject("too_long", r.line)
            elif (
                lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90) or lon == lat == 0
            ):
                reject("bad_point", r.line)
            else:
                good.append((r, lon, lat))
        x, y = to_wgs84(np.array([g[1] for g in good]), np.array([g[2] for g in good]), declared)
        codes: Any = index.lookup(x, y) if len(good) else []
        existing = dict(conn.execute(select(AddressRow.normalised, AddressRow.id)).all())
        seen: set[str] = set()
        added: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for (r, _, _), wx, wy, grid in zip(good, x, y, codes, strict=True):
            full = r.text
            if r.number and parse(full, prefixes).number is None:
                full = r.text + r.number + ("" if r.number.endswith("号") else "号")
            p = parse(full, prefixes)
            key = _key(p.name, p.door, p.suffix)
            if grid is None:
                reject("outside_district", r.line)
            elif not p.name:
                reject("missing_address", r.line)
            elif len(key) > 200:
                reject("too_long", r.line)
            elif key in seen:
                reject("duplicate_address", r.line)
            else:
                seen.add(key)
                values = {
                    "address": r.text, "normalised": key, "lon": round(float(wx), 7),
                    "lat": round(float(wy), 7), "grid_code": str(grid), "number": p.door or None,
                    "community": r.community[:64] or None, "source": summary.source, "imported_at": now,
                }  # fmt: skip
                if key in existing:
                    changed.append({"b_id": existing[key], **values})
                else:
                    added.append(values)
        if added:
            conn.execute(insert(AddressRow), added)
        if changed:
            table: Table = AddressRow.__table__  # type: ignore[assignment]
            stmt = (
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values({k: bindparam(k) for k in changed[0] if k != "b_id"})
            )
            conn.execute(stmt, changed)
        summary.added, summary.updated = len(added), len(changed)
        conn.execute(
            insert(AddressImport).values(
                at=now, source=summary.source, added=summary.added, updated=summary.updated,
                rejected=summary.rejected_count,
            )
        )  # fmt: skip
    for book in list(_BOOKS):  # this process's geocoders look again at once (others within seconds)
        book.expire()
    return summary


def _key(name: str, door: str, suffix: str) -> str:
    """The normalised text (the re-import key) of a parsed address."""
    return f"{name}{door}号{suffix}" if door else f"{name}{suffix}"


def _declared_crs(path: Path, crs: str | None, doc: Any) -> CRS:
    """The file's CRS: ``--crs``, else a GeoJSON ``crs`` member, else a token in the file name, else
    GeoJSON's own rule (WGS-84); a CSV must name it (nothing in a CSV tells)."""
    try:
        if crs:
            return CRS.parse(crs)
        member = doc.get("crs") if isinstance(doc, dict) else None
        name = (member.get("properties") or {}).get("name") if isinstance(member, dict) else None
        if isinstance(name, str):
            return CRS.parse(name)
    except ValueError as exc:
        raise GeoInputError(f"{path}: {exc}") from None
    named = crs_from_name(path)
    if named is not None:
        return named
    if doc is not None:
        return CRS.WGS84
    raise GeoInputError(
        f"{path}: name the CRS of the points with --crs wgs84|gcj02|bd09 "
        "(or a _gcj02 … token in the file name)"
    )


def address_version(conn: Connection) -> str:
    """The gazetteer's version: the id and instant of the latest import (``""`` before any)."""
    row = conn.execute(
        select(AddressImport.id, AddressImport.at).order_by(AddressImport.id.desc()).limit(1)
    ).first()
    return "" if row is None else f"{row[0]}@{row[1].isoformat()}"


def load_gazetteer(conn: Connection, threshold: float = DEFAULT_THRESHOLD) -> Gazetteer:
    """The whole address table as a :class:`domain.address.Gazetteer`, with the district's prefixes."""
    prefixes = district_prefixes(conn)
    version = address_version(conn)
    rows = conn.execute(
        select(
            AddressRow.id,
            AddressRow.address,
            AddressRow.normalised,
            AddressRow.lon,
            AddressRow.lat,
            AddressRow.grid_code,
            AddressRow.community,
        )
    ).all()
    entries = [
        Address(int(r[0]), r[1], float(r[3]), float(r[4]), r[5], r[6], parse(r[2], prefixes)) for r in rows
    ]
    return Gazetteer(entries, prefixes, threshold=threshold, version=version)


class AddressBook:
    """The gazetteer of the store as one process geocodes with: loaded on first use, reloaded after an
    import (the version is looked at at most every ``check_every_s`` seconds; an import in this process
    expires every book at once). A store it cannot read (no table yet, the database down) gives an
    empty gazetteer: nothing is placed, address-only reports wait for a person as before.

    :meth:`shared` gives one book per engine and threshold: the HTTP routes and the desk pages (the
    read engine) share one copy of the gazetteer, the pipeline (the write engine) keeps its own.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.threshold = threshold
        self.check_every_s = check_every_s
        self.clock = clock
        self._gazetteer: Gazetteer | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()
        _BOOKS.add(self)

    @classmethod
    def shared(cls, engine: Engine, threshold: float | None = None) -> AddressBook:
        """The process's book of ``engine`` (``threshold``: default ``GW_GEOCODE_THRESHOLD``, else 0.85):
        the pages and routes on one engine share one copy of the gazetteer."""
        if threshold is None:
            threshold = geocode_threshold()
        with _SHARED_LOCK:
            books: dict[float, AddressBook] = engine.__dict__.setdefault("_gw_address_books", {})
            book = books.get(threshold)
            if book is None:
                book = books[threshold] = cls(engine, threshold=threshold)
            return book

    def expire(self) -> None:
        """Look at the store's version on the next use (an import just changed the table)."""
        self._checked = -math.inf

    def gazetteer(self) -> Gazetteer:
        """The current gazetteer (reloaded first when an import changed the table since)."""
        g = self._gazetteer
        if g is not None and self.clock() - self._checked < self.check_every_s:
            return g
        if not self._lock.acquire(blocking=g is None):
            assert g is not None
            return g  # another thread is looking; the loaded one serves meanwhile
        try:
            g = self._gazetteer
            if g is not None and self.clock() - self._checked < self.check_every_s:
                return g
            self._checked = self.clock()
            try:
                with self.engine.connect() as conn:
                    if g is None or address_version(conn) != g.version:
                        g = self._gazetteer = load_gazetteer(conn, self.threshold)
            except SQLAlchemyError as exc:
                log.warning("address gazetteer not loaded: %s", str(exc).splitlines()[0])
                if g is None:
                    g = self._gazetteer = Gazetteer([], threshold=self.threshold, version="-")
            return g
        finally:
            self._lock.release()

    def geocode(self, text: str, *, limit: int = 5) -> Geocoded:
        """Candidates for an address, and the one to place it at (see ``Gazetteer.geocode``)."""
        return self.gazetteer().geocode(text[:MAX_QUERY], limit=limit)

    def reverse(self, lon: float, lat: float, max_m: float = 1000.0) -> tuple[Address, float] | None:
        """The nearest address to a WGS-84 point, and its distance in metres."""
        return self.gazetteer().reverse(lon, lat, max_m)

    def get(self, address_id: int) -> Address | None:
        """A gazetteer entry by id."""
        return self.gazetteer().get(address_id)


_BOOKS: weakref.WeakSet[AddressBook] = weakref.WeakSet()
_SHARED_LOCK = threading.Lock()


def geocode_threshold() -> float:
    """The score from which an address-only report is placed: ``GW_GEOCODE_THRESHOLD``, else 0.85."""
    raw = os.environ.get("GW_GEOCODE_THRESHOLD", "")
    try:
        value = float(raw) if raw else DEFAULT_THRESHOLD
    except ValueError:
        return DEFAULT_THRESHOLD
    return value if 0.0 < value <= 1.0 else DEFAULT_THRESHOLD


_COLUMN_SPEC = re.compile(r"^\s*(address|lon|lat|number|community)\s*=\s*(.+?)\s*$")


def column_names(spec: str | None) -> dict[str, str]:
    """``--columns address=地址,lon=经度,lat=纬度`` as a mapping (column → header name)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m = _COLUMN_SPEC.match(part)
        if m is None:
            raise GeoInputError(
                f"--columns: {part.strip()!r} is not column=header (columns: {', '.join(COLUMNS)})"
            )
        out[m.group(1)] = m.group(2)
    return out
