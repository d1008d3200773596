"""The 部件 inventory in the store (issue 18): ``app.py import components`` and the loaded copy that
reports are checked against and the nearest objects are picked from.

:func:`import_components` reads a GeoJSON or Shapefile (any geometry type, through
:func:`domain.geofile.read_features`) or a CSV with lon/lat columns (pandas), in any of the three CRSs,
and writes the whole file in one transaction. Each row is checked: the identifier has 16 digits
(``bad_identifier``), its county is the district's (``wrong_county``), its class is a 部件 class of the
catalogue (``unknown_class``; a class column that disagrees: ``class_mismatch``), it is not twice in
the file (``duplicate_serial``), its point lies in the district (``bad_point``, ``outside_district``),
state, source, dates and units are known (``bad_state``, ``bad_source``, ``bad_date``,
``unknown_department``). When most points are not in the district the file is refused whole
(``wrong_crs``). A re-import updates by identifier: added, changed, retired (state 废弃, or absent with
``retire_missing``) and unchanged are counted, and every change is kept in ``component_history``.

:class:`ComponentBook` is the inventory one process works with (the intake, the HTTP routes, the desk):
loaded on first use and reloaded when the history grew (its highest id is the inventory's version).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from domain.catalogue import Catalogue
from domain.component import (
    ComponentIndex,
    ComponentState,
    Nearby,
    Role,
    Source,
    check_identifier,
    handling_order,
    handling_unit,
)
from domain.crs import CRS, to_wgs84
from domain.errors import GeoInputError
from domain.geofile import crs_from_name, read_features
from domain.index import PointGridIndex
from store.models import Case, Component, ComponentHistory, Department

log = logging.getLogger(__name__)

_components: Table = Component.__table__  # type: ignore[assignment]
_history: Table = ComponentHistory.__table__  # type: ignore[assignment]

# the columns of a component file and the names each is found under (first match, any case)
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "objid", "obj_id", "标识码", "bsm", "code"),
    "class": ("class", "class_code", "objcode", "小类代码", "部件类型代码"),
    "name": ("name", "objname", "名称", "部件名称"),
    "state": ("state", "objstate", "状态", "部件状态"),
    "unit_main": ("unit_main", "deptcode1", "主管部门", "主管部门代码"),
    "unit_owner": ("unit_owner", "deptcode2", "权属单位", "权属单位代码"),
    "unit_care": ("unit_care", "deptcode3", "养护单位", "养护单位代码"),
    "source": ("source", "datasource", "数据来源"),
    "surveyed_on": ("surveyed_on", "ordate", "初始日期"),
    "changed_on": ("changed_on", "chdate", "变更日期"),
    "lon": ("lon", "lng", "longitude", "pointx", "经度", "x"),
    "lat": ("lat", "latitude", "pointy", "纬度", "y"),
}
# names of the standard's fields that are not kept as attributes (department names come from the list)
_DROPPED = {"deptname1", "deptname2", "deptname3"}
REASONS = ("bad_identifier", "wrong_county", "unknown_class", "class_mismatch", "duplicate_serial",
           "bad_point", "outside_district", "bad_state", "bad_source", "bad_date",
           "unknown_department")  # fmt: skip
_COMPARED = ("class_code", "name", "geometry", "lon", "lat", "grid_code", "state", "unit_main", "unit_owner",
             "unit_care", "source", "surveyed_on", "changed_on", "attributes")  # fmt: skip
RETIRED = ComponentState.RETIRED.value


@dataclass
class ComponentImportSummary:
    """What an import did: objects added, changed, retired and unchanged, rows rejected by reason."""

    source: str
    crs: CRS
    added: int = 0
    changed: int = 0
    retired: int = 0
    unchanged: int = 0
    rejected: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rejected_count(self) -> int:
        """Rows rejected, whatever the reason."""
        return sum(len(rows) for rows in self.rejected.values())

    def lines(self) -> list[str]:
        """The summary as printed by ``app.py import components``."""
        out = [
            f"components from {self.source} ({self.crs.value}): {self.added} added, {self.changed} changed, "
            f"{self.retired} retired, {self.unchanged} unchanged, {self.rejected_count} rejected "
            f"in {self.seconds:.1f} s"
        ]
        for reason in sorted(self.rejected, key=lambda r: (-len(self.rejected[r]), r)):
            where = self.rejected[reason]
            shown = ", ".join(str(n) for n in where[:10]) + (
                f", … ({len(where) - 10} more)" if len(where) > 10 else ""
            )
            out.append(f"  {reason}: {len(where)} (rows {shown})")
        return out


@dataclass
class _Rows:
    """The file as columns: row numbers, field values, WGS-84 geometries (GeoJSON text) and points."""

    numbers: list[int]
    fields: dict[str, list[str]]
    attributes: list[dict[str, Any]]
    geometry: list[str | None]
    lon: np.ndarray
    lat: np.ndarray


def _find(keys: list[str], col: str, names: Mapping[str, str] | None) -> str | None:
    """The key of a column: the configured name, else the first alias present (any case)."""
    wanted = (names or {}).get(col)
    if wanted:
        if wanted not in keys:
            raise GeoInputError(f"no column {wanted!r} (for {col}); the file has {', '.join(keys)}")
        return wanted
    lower = {k.strip().lower(): k for k in keys}
    return next((lower[a] for a in COLUMNS[col] if a in lower), None)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _json_safe(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _read_csv(path: Path, crs: CRS, names: Mapping[str, str] | None) -> _Rows:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise GeoInputError(f"{path}: unreadable CSV: {exc}") from None
    keys = [str(c) for c in df.columns]
    cols = {c: _find(keys, c, names) for c in COLUMNS}
    for need in ("id", "lon", "lat"):
        if cols[need] is None:
            raise GeoInputError(
                f"{path}: no column for {need}: name it with --columns id=…,lon=…,lat=… "
                f"(the header has {', '.join(keys)})"
            )
    used = {v for v in cols.values() if v}
    fields = {c: [s.strip() for s in df[k].tolist()] if k else [""] * len(df) for c, k in cols.items()}
    extra = [k for k in keys if k not in used and k.lower() not in _DROPPED]
    attrs = df[extra].to_dict("records") if extra else [{} for _ in range(len(df))]
    lon = pd.to_numeric(df[cols["lon"]], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(df[cols["lat"]], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    wx, wy = np.full(len(df), np.nan), np.full(len(df), np.nan)
    if ok.any():
        cx, cy = to_wgs84(lon[ok], lat[ok], crs)
        wx[ok], wy[ok] = np.round(cx, 7), np.round(cy, 7)
    geometry: list[str | None] = [
        None if not good else f'{{"type": "Point", "coordinates": [{x!r}, {y!r}]}}'
        for good, x, y in zip(ok.tolist(), wx.tolist(), wy.tolist(), strict=True)
    ]
    attributes = [{k: v for k, v in a.items() if v != ""} for a in attrs]
    return _Rows(list(range(2, len(df) + 2)), fields, attributes, geometry, wx, wy)


def _read_features(path: Path, crs: CRS | None, names: Mapping[str, str] | None) -> _Rows:
    feats = read_features(path, crs)
    keys = sorted({k for _, props in feats for k in props})
    cols = {c: _find(keys, c, names) for c in COLUMNS if c not in ("lon", "lat")}
    if cols["id"] is None:
        raise GeoInputError(
            f"{path}: no identifier property: name it with --columns id=… ({', '.join(keys)})"
        )
    used = {v for v in cols.values() if v}
    fields = {c: [_text(props.get(k)) if k else "" for _, props in feats] for c, k in cols.items()}
    attributes = [
        {
            k: _json_safe(v)
            for k, v in props.items()
            if k not in used and k.lower() not in _DROPPED and v != ""
        }
        for _, props in feats
    ]
    geoms = np.asarray([g for g, _ in feats], dtype=object)
    points = shapely.get_coordinates(shapely.point_on_surface(geoms))
    is_point = shapely.get_type_id(geoms) == 0
    # lines: the middle of the line, not a point "on" it that may be its end
    lines = np.isin(shapely.get_type_id(geoms), (1, 2, 5))
    if lines.any():
        points[lines] = shapely.get_coordinates(
            shapely.line_interpolate_point(geoms[lines], 0.5, normalized=True)
        )
    geoms = shapely.set_precision(geoms, 1e-7)
    text = [
        f'{{"type": "Point", "coordinates": [{round(x, 7)!r}, {round(y, 7)!r}]}}'
        if p
        else shapely.to_geojson(g)
        for g, p, (x, y) in zip(geoms.tolist(), is_point.tolist(), points.tolist(), strict=True)
    ]
    return _Rows(list(range(1, len(feats) + 1)), fields, attributes, list(text),
                 np.round(points[:, 0], 7), np.round(points[:, 1], 7))  # fmt: skip


def _declared_crs(path: Path, crs: str | None) -> CRS | None:
    if crs:
        try:
            return CRS.parse(crs)
        except ValueError as exc:
            raise GeoInputError(f"{path}: {exc}") from None
    return crs_from_name(path)


def _parsed(seen: dict[str, str], text: str, parse: Callable[[str], StrEnum]) -> str:
    """A state or source parsed once per distinct text ("" when it is not one)."""
    try:
        value = parse(text).value
    except ValueError:
        value = ""
    seen[text] = value
    return value


_DAYS: dict[str, date] = {}


def _day(text: str) -> date | None:
    """An ORDate/CHDate: ISO ``2024-05-01`` or ``20240501`` (also with a time after it)."""
    got = _DAYS.get(text)
    if got is None:
        got = _parse_day(text)
        if len(_DAYS) < 10_000:  # files hold few distinct survey dates
            _DAYS[text] = got
    return got


def _parse_day(text: str) -> date:
    t = text.strip()[:10]
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"):
        try:
            return datetime.strptime(t if fmt != "%Y%m%d" else t[:8], fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


def import_components(
    engine: Engine,
    path: Path,
    index: PointGridIndex,
    catalogue: Catalogue,
    adcode: str,
    *,
    crs: str | None = None,
    columns: Mapping[str, str] | None = None,
    retire_missing: bool = False,
    actor: str = "import",
    now: datetime | None = None,
) -> ComponentImportSummary:
    """Import a component file into the inventory in one transaction; see the module's notes."""
    started = time.perf_counter()
    path = Path(path)
    if not path.exists():
        raise GeoInputError(f"{path}: no such file")
    declared = _declared_crs(path, crs)
    if path.suffix.lower() == ".csv":
        if declared is None:
            raise GeoInputError(f"{path}: name the CRS of the points with --crs wgs84|gcj02|bd09")
        rows = _read_csv(path, declared, columns)
    else:
        rows = _read_features(path, declared, columns)
        if declared is None:
            declared = CRS.WGS84
    summary = ComponentImportSummary(path.name[:200], declared)
    now = now or datetime.now(UTC)

    def reject(reason: str, row: int) -> None:
        summary.rejected.setdefault(reason, []).append(row)

    f = rows.fields
    n = len(rows.numbers)
    finite = np.isfinite(rows.lon) & np.isfinite(rows.lat)
    grids: Any = np.full(n, None, dtype=object)
    if finite.any():
        grids[finite] = index.lookup(rows.lon[finite], rows.lat[finite])
    with engine.begin() as conn:
        departments = set(conn.scalars(select(Department.code))) or set(catalogue.departments)
        seen: set[str] = set()
        good: dict[str, dict[str, Any]] = {}
        placed_wrong = 0
        checked = 0
        known: dict[str, tuple[str | None, str]] = {}  # a valid identifier's county + class: checked once
        states: dict[str, str] = {}
        sources: dict[str, str] = {}
        for i in range(n):
            line = rows.numbers[i]
            code = f["id"][i]
            head = code[:10]
            if len(code) == 16 and code.isdigit() and code[10:] != "000000" and head in known:
                reason, class_code = known[head]
            else:
                reason, class_code = check_identifier(code, adcode, catalogue)
                if reason is None:
                    known[head] = (reason, class_code)
            if reason is not None:
                reject(reason, line)
                continue
            checked += 1
            if f["class"][i] and f["class"][i].zfill(4) != class_code:
                reject("class_mismatch", line)
            elif code in seen:
                reject("duplicate_serial", line)
            elif rows.geometry[i] is None or not finite[i]:
                placed_wrong += 1
                reject("bad_point", line)
            elif grids[i] is None:
                placed_wrong += 1
                reject("outside_district", line)
            else:
                seen.add(code)
                state = states.get(f["state"][i]) or _parsed(states, f["state"][i], ComponentState.parse)
                if not state:
                    reject("bad_state", line)
                    continue
                source = sources.get(f["source"][i]) or _parsed(sources, f["source"][i], Source.parse)
                if not source:
                    reject("bad_source", line)
                    continue
                try:
                    surveyed = _day(f["surveyed_on"][i]) if f["surveyed_on"][i] else None
                    changed = _day(f["changed_on"][i]) if f["changed_on"][i] else None
                except ValueError:
                    reject("bad_date", line)
                    continue
                units = {r: f[r][i] or None for r in ("unit_main", "unit_owner", "unit_care")}
                if any(u is not None and u not in departments for u in units.values()):
                    reject("unknown_department", line)
                    continue
                good[code] = {
                    "id": code, "class_code": class_code, "name": f["name"][i][:64],
                    "geometry": rows.geometry[i], "lon": float(rows.lon[i]), "lat": float(rows.lat[i]),
                    "grid_code": str(grids[i]), "state": state, **units, "source": source,
                    "surveyed_on": surveyed, "changed_on": changed, "attributes": rows.attributes[i],
                }  # fmt: skip
        if checked and placed_wrong * 2 > checked:
            raise GeoInputError(
                f"wrong_crs: {placed_wrong} of {checked} points are not in the district as "
                f"{declared.value}; is the CRS right? (--crs wgs84|gcj02|bd09); nothing was imported"
            )
        present = set(f["id"]) if retire_missing else set()  # a rejected row does not retire its object
        _write(conn, summary, good, present, retire_missing, actor, now)
    expire_books()
    summary.seconds = time.perf_counter() - started
    return summary


def _write(
    conn: Connection,
    summary: ComponentImportSummary,
    good: dict[str, dict[str, Any]],
    present: set[str],
    retire_missing: bool,
    actor: str,
    now: datetime,
) -> None:
    """Insert the new objects, update the changed ones, retire the missing ones; history for each."""
    cols = [_components.c.id, *(_components.c[k] for k in _COMPARED), _components.c.version]
    stored = {r[0]: r for r in conn.execute(select(*cols))}
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    why = f"import {summary.source}"
    for code, values in good.items():
        old = stored.get(code)
        if old is None:
            added.append({**values, "updated_at": now, "version": 1})
            history.append({"component_id": code, "at": now, "actor": actor, "action": "add",
                             "changes": {}, "reason": why})  # fmt: skip
            continue
        before = dict(zip(_COMPARED, old[1:-1], strict=True))
        diff = {
            k: [_json_safe(before[k]), _json_safe(values[k])] for k in _COMPARED if before[k] != values[k]
        }
        if not diff:
            summary.unchanged += 1
            continue
        retire = values["state"] == RETIRED and before["state"] != RETIRED
        summary.retired += retire
        summary.changed += not retire
        changed.append({"b_id": code, **{k: values[k] for k in _COMPARED}, "updated_at": now,
                        "version": int(old[-1]) + 1})  # fmt: skip
        action = "retire" if retire else "change"
        history.append({"component_id": code, "at": now, "actor": actor, "action": action,
                        "changes": diff, "reason": why})  # fmt: skip
    if retire_missing:
        for code, old in stored.items():
            state = dict(zip(_COMPARED, old[1:-1], strict=True))["state"]
            if code not in present and state != RETIRED:
                conn.execute(
                    update(_components)
                    .where(_components.c.id == code)
                    .values(state=RETIRED, updated_at=now, version=int(old[-1]) + 1)
                )
                gone = {"state": [state, RETIRED]}
                history.append({"component_id": code, "at": now, "actor": actor, "action": "retire",
                                "changes": gone, "reason": f"{why}: not in the file"})  # fmt: skip
                summary.retired += 1
    if added:
        bulk_insert(conn, _components, added)
    if changed:
        stmt = (
            update(_components)
            .where(_components.c.id == bindparam("b_id"))
            .values({k: bindparam(k) for k in changed[0] if k != "b_id"})
        )
        conn.execute(stmt, changed)
    if history:
        bulk_insert(conn, _history, history)
    summary.added = len(added)


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows with the same keys fast: PostgreSQL's COPY, else the driver's executemany with
    each distinct date or instant bound once (SQLAlchemy's per-row parameter processing was 2/3 of an
    import of 50,000 objects)."""
    if not rows:
        return
    cols = list(rows[0])
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in cols)
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row([json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                                for v in (row[c] for c in cols)])  # fmt: skip
        return
    procs = [(i, p) for i, c in enumerate(cols) if (p := table.c[c].type.bind_processor(conn.dialect))]
    cache: dict[tuple[int, Any], Any] = {}

    def bound(row: dict[str, Any]) -> list[Any]:
        out = [row[c] for c in cols]
        for i, proc in procs:
            v = out[i]
            if v is None:
                continue
            if isinstance(v, date):  # few distinct dates and instants: bind each once
                got = cache.get((i, v))
                if got is None:
                    got = cache[(i, v)] = proc(v)
                out[i] = got
            else:
                out[i] = proc(v)
        return out

    marks = ", ".join("?" for _ in cols)
    sql = f'INSERT INTO "{table.name}" ({", ".join(cols)}) VALUES ({marks})'
    conn.exec_driver_sql(sql, [tuple(bound(row)) for row in rows])


# ---------------------------------------------------------------------------------------------
# The loaded inventory


@dataclass(frozen=True)
class Loaded:
    """One object as the book keeps it."""

    id: str
    class_code: str
    name: str
    lon: float
    lat: float
    grid_code: str | None
    state: str
    units: dict[Role, str | None]


class Inventory:
    """The non-retired objects by identifier, and their nearest-object index."""

    def __init__(self, objects: list[Loaded], version: int) -> None:
        self.version = version
        self.by_id = {o.id: o for o in objects}
        self.index = ComponentIndex(
            [o.id for o in objects], [o.class_code for o in objects], [o.lon for o in objects],
            [o.lat for o in objects],
        )  # fmt: skip

    def get(self, code: str) -> Loaded | None:
        """An object by identifier (None: unknown or retired)."""
        return self.by_id.get(code)

    def nearest(
        self, class_code: str, lon: float, lat: float, *, k: int = 5, max_m: float = 500.0
    ) -> list[Nearby]:
        """Up to ``k`` objects of a class within ``max_m`` of a WGS-84 point, nearest first."""
        return self.index.nearest(class_code, lon, lat, k=k, max_m=max_m)


def inventory_version(conn: Connection) -> int:
    """The inventory's version: the highest history id (every change writes one); 0 before any."""
    return int(conn.scalar(select(func.max(_history.c.id))) or 0)


def load_inventory(conn: Connection) -> Inventory:
    """Every object that is not retired, and the nearest-object index over them."""
    version = inventory_version(conn)
    c = _components.c
    rows = conn.execute(
        select(c.id, c.class_code, c.name, c.lon, c.lat, c.grid_code, c.state, c.unit_main, c.unit_owner,
               c.unit_care).where(c.state != RETIRED)
    ).all()  # fmt: skip
    objects = [
        Loaded(
            r[0],
            r[1],
            r[2],
            float(r[3]),
            float(r[4]),
            r[5],
            r[6],
            {Role.MAIN: r[7], Role.OWNER: r[8], Role.CARE: r[9]},
        )
        for r in rows
    ]
    return Inventory(objects, version)


class ComponentBook:
    """The inventory as one process uses it: loaded on first use, reloaded when the version moved (looked
    at every ``check_every_s`` seconds; an import or update in this process expires every book at once).
    A store it cannot read gives an empty inventory (reports naming an object are refused by name)."""

    def __init__(
        self, engine: Engine, *, check_every_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.check_every_s = check_every_s
        self.clock = clock
        self.order = handling_order(os.environ.get("GW_COMPONENT_ROLES"))
        self._inv: Inventory | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()
        _BOOKS.add(self)

    @classmethod
    def shared(cls, engine: Engine) -> ComponentBook:
        """The process's book of ``engine`` (pages, routes and the intake on one engine share it)."""
        with _SHARED_LOCK:
            book: ComponentBook | None = engine.__dict__.get("_gw_component_book")
            if book is None:
                book = engine.__dict__["_gw_component_book"] = cls(engine)
            return book

    def expire(self) -> None:
        """Look at the store's version on the next use."""
        self._checked = -math.inf

    def inventory(self) -> Inventory:
        """The current inventory (reloaded first when it changed since)."""
        inv = self._inv
        if inv is not None and self.clock() - self._checked < self.check_every_s:
            return inv
        if not self._lock.acquire(blocking=inv is None):
            assert inv is not None
            return inv
        try:
            inv = self._inv
            if inv is not None and self.clock() - self._checked < self.check_every_s:
                return inv
            self._checked = self.clock()
            try:
                with self.engine.connect() as conn:
                    if inv is None or inventory_version(conn) != inv.version:
                        inv = self._inv = load_inventory(conn)
            except SQLAlchemyError as exc:
                log.warning("component inventory not loaded: %s", str(exc).splitlines()[0])
                if inv is None:
                    inv = self._inv = Inventory([], -1)
            return inv
        finally:
            self._lock.release()

    def get(self, code: str) -> Loaded | None:
        """A non-retired object by identifier."""
        return self.inventory().get(code)

    def handler(self, obj: Loaded) -> str | None:
        """The unit that handles a report of this object (the first role of the handling order it has)."""
        return handling_unit(obj.units, self.order)


_BOOKS: weakref.WeakSet[ComponentBook] = weakref.WeakSet()
_SHARED_LOCK = threading.Lock()


def expire_books() -> None:
    """Every book of this process looks at the store again on its next use."""
    for book in list(_BOOKS):
        book.expire()


UPDATE_ACTIONS = ("add", "move", "state", "owners", "retire")


def apply_update(conn: Connection, update: Mapping[str, Any], at: datetime, actor: str) -> str:
    """One online update of the inventory (``feeds.intake`` checked and located it): ``add`` a new object,
    ``move`` it (geometry, point, grid), change its ``state`` or ``owners``, or ``retire`` it; the row and
    a history entry (who, when, what, why, the update's ``key``) in the caller's transaction. Returns
    ``accepted``, ``duplicate`` (its ``key`` was applied before, or nothing to change) or a named
    refusal (``component_exists``, ``unknown_component``)."""
    code, action = str(update["id"]), str(update["action"])
    key = str(update["key"])[:170] if update.get("key") else None
    if key is not None and conn.scalar(select(_history.c.id).where(_history.c.key == key)) is not None:
        return "duplicate"  # a retry of an update that was applied: answered as the first was
    c = _components.c
    row = conn.execute(select(_components).where(c.id == code)).mappings().first()
    why = str(update.get("reason") or "")[:200]
    if action == "add":
        if row is not None:
            return "component_exists"
        values = {k: update.get(k) for k in ("class_code", "name", "geometry", "lon", "lat", "grid_code",
                                            "state", "unit_main", "unit_owner", "unit_care")}  # fmt: skip
        values.update(id=code, source=Source.UPDATED.value, surveyed_on=None, changed_on=at.date(),
                      updated_at=at, attributes=dict(update.get("attributes") or {}), version=1)  # fmt: skip
        values["name"] = values["name"] or ""
        conn.execute(_components.insert().values(values))
        conn.execute(_history.insert().values(component_id=code, at=at, actor=actor[:64], action="add",
                                              changes={}, reason=why, key=key))  # fmt: skip
        return "accepted"
    if row is None or (row["state"] == RETIRED and action != "retire"):
        return "unknown_component"
    fields = {"move": ("geometry", "lon", "lat", "grid_code"), "state": ("state",),
              "owners": ("unit_main", "unit_owner", "unit_care"), "retire": ("state",)}[action]  # fmt: skip
    wanted = {"state": RETIRED} if action == "retire" else {k: update.get(k) for k in fields}
    diff = {k: [_json_safe(row[k]), _json_safe(v)] for k, v in wanted.items() if row[k] != v}
    if not diff:
        return "duplicate"
    changed = {**wanted, "source": Source.UPDATED.value, "changed_on": at.date(), "updated_at": at,
               "version": row["version"] + 1}  # fmt: skip
    conn.execute(_components.update().where(c.id == code).values(changed))
    kind = "retire" if action == "retire" else "change"
    conn.execute(_history.insert().values(component_id=code, at=at, actor=actor[:64], action=kind,
                                          changes=diff, reason=why, key=key))  # fmt: skip
    return "accepted"


def grid_components(conn: Connection, grid: str, *, limit: int = 200) -> tuple[dict[str, int], list[Any]]:
    """A unit grid's objects that are not retired: the count by class and the first ``limit`` objects
    (identifier, class, name, state) by class and identifier."""
    c = _components.c
    where = (c.grid_code == grid, c.state != RETIRED)
    by_class = select(c.class_code, func.count()).where(*where).group_by(c.class_code)
    counts: dict[Any, Any] = {k: v for k, v in conn.execute(by_class).all()}
    rows = conn.execute(
        select(c.id, c.class_code, c.name, c.state).where(*where).order_by(c.class_code, c.id).limit(limit)
    ).all()
    return {str(k): int(v) for k, v in sorted(counts.items())}, list(rows)


def component_view(conn: Connection, code: str, *, cases: int = 50) -> dict[str, Any] | None:
    """One object for its page: its row, its history (newest first) and its cases (newest first)."""
    row = conn.execute(select(_components).where(_components.c.id == code)).mappings().first()
    if row is None:
        return None
    history = (
        conn.execute(
            select(_history).where(_history.c.component_id == code).order_by(_history.c.id.desc()).limit(200)
        )
        .mappings()
        .all()
    )
    found = (
        conn.execute(
            select(
                Case.id,
                Case.status,
                Case.stage,
                Case.class_code,
                Case.department_code,
                Case.reported_at,
                Case.open,
            )
            .where(Case.component_id == code)
            .order_by(Case.reported_at.desc())
            .limit(cases)
        )
        .mappings()
        .all()
    )
    names = dict(conn.execute(select(Department.code, Department.name)).all())
    return {
        "component": dict(row),
        "geometry": json.loads(row["geometry"]),
        "history": [dict(h) for h in history],
        "cases": [dict(c) for c in found],
        "departments": names,
    }


_COLUMN_SPEC = re.compile(r"^\s*([a-z_]+)\s*=\s*(.+?)\s*$")


def column_names(spec: str | None) -> dict[str, str]:
    """``--columns id=BSM,lon=X,lat=Y`` as a mapping (column → the file's name)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m = _COLUMN_SPEC.match(part)
        if m is None or m.group(1) not in COLUMNS:
            raise GeoInputError(
                f"--columns: {part.strip()!r} is not column=name (columns: {', '.join(COLUMNS)})"
            )
        out[m.group(1)] = m.group(2)
    return out
