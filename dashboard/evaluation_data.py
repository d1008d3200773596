"""Read model of the evaluation pages (issue 8, item 9): CJ/T 292 rankings of a period, CSV export.

Everything comes from the persisted daily aggregates (``daily_counters``, kept by the live core and
at most a few seconds behind it): a period reads at most one row per object and day of the chosen
level, so a month costs about 30 rows per object however long the case log is. Scores, grades and
colours are :func:`domain.evaluation.evaluation_table`'s, so the pages show exactly what the wall
ranks. Read only.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Integer, Text, and_, cast, column, func, select, true
from sqlalchemy.engine import Connection, Engine

from domain.evaluation import (
    COUNTER_NAMES,
    RATE_LABELS,
    RATES_BY_TYPE,
    REGION_TYPES,
    SHANGHAI,
    STOCK_COUNTERS,
    DailyAggregates,
    ObjectType,
    evaluation_table,
)
from store.evaluation import overdue_unhandled
from store.models import Community, DailyCounter, Department, Grid, Person, Street

# the levels a leader can rank, in the order of the page's tabs: regions, departments, positions (岗位)
LEVELS: tuple[ObjectType, ...] = (
    ObjectType.STREET,
    ObjectType.COMMUNITY,
    ObjectType.GRID,
    ObjectType.DEPARTMENT,
    ObjectType.SUPERVISOR,
    ObjectType.ACCEPTOR,
    ObjectType.SHIFT_LEADER,
    ObjectType.DISPATCHER,
)
PERIODS = ("day", "week", "month", "custom")
SCOPED = (ObjectType.GRID, ObjectType.COMMUNITY)  # levels that can be narrowed to one street
MAX_DAYS = 366
# counts shown next to the rates on the page (all counters go to the CSV)
KEY_COUNTS: dict[ObjectType, tuple[str, ...]] = {
    **{t: ("reported", "filed", "closed", "closed_on_time", "to_close") for t in REGION_TYPES},
    ObjectType.DEPARTMENT: ("dispatched", "returned", "handled", "reworked", "closed"),
    ObjectType.SUPERVISOR: ("reported", "patrol_reported", "valid_reported", "verified", "checked"),
    ObjectType.ACCEPTOR: ("accepted", "accepted_on_time", "to_verify"),
    ObjectType.SHIFT_LEADER: ("filed", "voided", "closed"),
    ObjectType.DISPATCHER: ("dispatched", "to_dispatch", "returned"),
}
_ROLE_OF_POSITION = {
    ObjectType.SUPERVISOR: "supervisor",
    ObjectType.ACCEPTOR: "acceptor",
    ObjectType.SHIFT_LEADER: "shift_leader",
    ObjectType.DISPATCHER: "dispatcher",
}


class BadRequest(ValueError):
    """A level or period the pages cannot show; ``reason`` names what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Period:
    """An evaluation period: its kind and its first and last local day (both included)."""

    kind: str
    start: date
    end: date

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1


def local_today(now: datetime | None = None) -> date:
    """Today in the city's zone (Asia/Shanghai)."""
    return (now or datetime.now(UTC)).astimezone(SHANGHAI).date()


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest("bad_date", f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def parse_period(kind: str | None, start: str | None, end: str | None, today: date) -> Period:
    """The period of a request: day, ISO week or calendar month holding ``start`` (default today),
    or a custom range ``start``..``end``; :class:`BadRequest` when it makes no sense."""
    first, last = _date(start, "from"), _date(end, "to")
    k = kind or ("custom" if first and last else "month")
    if k not in PERIODS:
        raise BadRequest("bad_period", f"period={k!r} is not one of {', '.join(PERIODS)}")
    anchor = first or today
    if k == "day":
        return Period(k, anchor, anchor)
    if k == "week":
        monday = anchor - timedelta(days=anchor.weekday())
        return Period(k, monday, monday + timedelta(days=6))
    if k == "month":
        days = calendar.monthrange(anchor.year, anchor.month)[1]
        return Period(k, anchor.replace(day=1), anchor.replace(day=days))
    if first is None or last is None:
        raise BadRequest("bad_period", "a custom period needs from= and to=")
    if last < first:
        raise BadRequest("bad_period", f"to={last} is before from={first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadRequest("bad_period", f"a period is at most {MAX_DAYS} days")
    return Period(k, first, last)


def parse_street(value: str | None) -> str | None:
    """The ``street`` parameter: a 9-digit street code, or None for the whole district."""
    if not value:
        return None
    if len(value) != 9 or not value.isdigit():
        raise BadRequest("bad_street", f"street={value!r} is not a 9-digit street code")
    return value


def street_names(engine: Engine) -> dict[str, str]:
    """Active streets by code (the scope choices of the grid and community levels)."""
    with engine.connect() as conn:
        return _names(conn, ObjectType.STREET)


def parse_level(value: str | None) -> ObjectType:
    """The object type of a ``level`` parameter (streets by default)."""
    try:
        kind = ObjectType(value or ObjectType.STREET.value)
    except ValueError:
        kind = None
    if kind not in LEVELS:
        raise BadRequest("bad_level", f"level={value!r} is not one of {', '.join(t.value for t in LEVELS)}")
    assert kind is not None
    return kind


def period_sums(
    conn: Connection, kind: ObjectType, period: Period, within: str | None = None
) -> dict[str, dict[str, int]]:
    """Each object's counters of one level summed over a period, from the stored daily rows; a stock
    (``overdue_eod``, 超时未处置 at a day's end) is the period's last day's, as ``DailyAggregates.period``.

    PostgreSQL sums the JSONB counters in the query; on SQLite the rows are read as JSON text and
    summed by name in one pass (a month of every unit grid is about 170,000 rows: decoding them into
    ``Counters`` and adding them one by one took 7 s, python -m bench desk_eval).
    """
    where: tuple[Any, ...] = (
        DailyCounter.object_type == kind.value,
        DailyCounter.day >= period.start,
        DailyCounter.day <= period.end,
    )
    if within:  # the grids or communities of one street: a prefix range of the primary key
        where = (*where, DailyCounter.object_id >= within, DailyCounter.object_id < within + "~")
    out = _summed(conn, where)
    last = (*where[:1], DailyCounter.day == period.end, *where[3:])
    ends = {str(oid): orjson.loads(raw) for oid, raw in conn.execute(
        select(DailyCounter.object_id, cast(DailyCounter.counts, Text)).where(*last)
    )}  # fmt: skip
    for oid, counts in out.items():
        for name in STOCK_COUNTERS:
            counts[name] = int(ends.get(oid, {}).get(name, 0))
    return out


def _summed(conn: Connection, where: tuple[Any, ...]) -> dict[str, dict[str, int]]:
    """Every counter summed per object over the rows ``where`` selects."""
    if conn.dialect.name == "postgresql":  # JSONB: PostgreSQL sums the counters itself
        # each row's JSONB decomposed once into typed columns (jsonb_to_record), not once per counter
        # (counts ->> 'name' for 43 counters: 3.3 s for a month of every grid, python -m bench desk_eval)
        rec = (
            func.jsonb_to_record(DailyCounter.counts)
            .table_valued(*(column(n, Integer) for n in COUNTER_NAMES))
            .render_derived(name="c", with_types=True)
        )
        sums = [func.coalesce(func.sum(rec.c[n]), 0) for n in COUNTER_NAMES]
        got = conn.execute(
            select(DailyCounter.object_id, *sums)
            .select_from(DailyCounter)
            .join(rec, true())
            .where(*where)
            .group_by(DailyCounter.object_id)
        )
        return {str(r[0]): dict(zip(COUNTER_NAMES, map(int, r[1:]), strict=True)) for r in got}
    # SQLite: the rows' JSON text through the DBAPI cursor (SQLAlchemy's result rows were a third of
    # the time) and each row's counters — only its non-zero ones are stored — added by name
    q = select(DailyCounter.object_id, cast(DailyCounter.counts, Text)).where(*where)
    compiled = q.compile(dialect=conn.dialect)
    params = [
        v.isoformat() if isinstance(v, date) else v
        for v in (compiled.params[name] for name in compiled.positiontup or ())
    ]
    position = {n: i for i, n in enumerate(COUNTER_NAMES)}
    index: dict[str, list[int]] = {}
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        fetched = cursor.fetchall()
    finally:
        cursor.close()
    for oid, raw in fetched:
        totals = index.get(oid)
        if totals is None:
            totals = index[oid] = [0] * len(COUNTER_NAMES)
        for name, n in orjson.loads(raw).items():
            i = position.get(name)
            if i is not None:
                totals[i] += int(n)
    return {str(oid): dict(zip(COUNTER_NAMES, t, strict=True)) for oid, t in index.items()}


def _names(conn: Connection, kind: ObjectType) -> dict[str, str]:
    """Display names of every known object of a level (grids have codes only)."""
    if kind is ObjectType.STREET:
        q: Any = select(Street.code, Street.name).where(Street.active)
    elif kind is ObjectType.COMMUNITY:
        q = select(Community.code, Community.name).where(Community.active)
    elif kind is ObjectType.DEPARTMENT:
        q = select(Department.code, Department.name)
    elif kind in _ROLE_OF_POSITION:
        q = select(Person.id, Person.name).where(Person.role == _ROLE_OF_POSITION[kind], Person.active)
    else:
        return {}
    return {str(a): str(b) for a, b in conn.execute(q)}


def _grids_per_region(conn: Connection, kind: ObjectType) -> dict[str, int]:
    """Active unit grids per region of a level (the 立案数 band is per grid)."""
    if kind is ObjectType.STREET:
        col: Any = Grid.street_code
    elif kind is ObjectType.COMMUNITY:
        col = Grid.community_code
    elif kind is ObjectType.GRID:
        col = Grid.code
    else:
        return {}
    return {
        str(k): int(n) for k, n in conn.execute(select(col, func.count()).where(Grid.active).group_by(col))
    }


def _responsible(conn: Connection) -> dict[str, str]:
    """Grid → the supervisor of its responsibility area (as the live core counts 漏报)."""
    q = select(Grid.code, Person.id).join(
        Person, and_(Person.area_code == Grid.area_code, Person.role == "supervisor", Person.active)
    )
    return {str(g): str(p) for g, p in conn.execute(q)}


@dataclass(frozen=True)
class Ranking:
    """One level's table over a period, best score first, with the names of the objects."""

    level: ObjectType
    period: Period
    frame: pd.DataFrame  # evaluation_table's columns plus rank and name
    rates: tuple[str, ...]  # the rate columns behind the score of this level
    counts: tuple[str, ...]  # the counts shown next to them
    within: str | None = None  # the street the grids or communities were taken from (None: all)


def ranking(
    engine: Engine,
    kind: ObjectType,
    period: Period,
    *,
    now: datetime | None = None,
    within: str | None = None,
) -> Ranking:
    """The ranking of a level over a period from the stored daily aggregates (``within``: only the
    grids or communities of one street)."""
    now = now or datetime.now(UTC)
    within = within if kind in SCOPED else None
    with engine.connect() as conn:
        sums = period_sums(conn, kind, period, within)
        names = _names(conn, kind)
        if within:
            names = {k: v for k, v in names.items() if k.startswith(within)}
        grids = _grids_per_region(conn, kind)
        responsible = _responsible(conn) if kind is ObjectType.SUPERVISOR else {}
        # 超时未处置 at the period's end still running now (ended since: in the end day's overdue_eod)
        today = local_today(now)
        end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(), SHANGHAI)
        late = overdue_unhandled(conn, kind, min(now, end)) if period.start <= today else {}
    # one row per object holding its period sum, on the first day: evaluation_table then reads
    # exactly what DailyAggregates.period would have summed from the daily rows
    agg = DailyAggregates(responsible=responsible if responsible else None, tz=SHANGHAI)
    agg.load(((kind, oid, period.start), counts) for oid, counts in sums.items())
    ids: set[str] = set(agg.ids(kind))
    if kind is not ObjectType.GRID:  # every known street, department, supervisor … (quiet ones ungraded)
        ids |= set(names)
    frame = evaluation_table(
        agg, kind, ids, period.start, period.start,
        overdue_unhandled=late, grids_per_region=grids or None,
    )  # fmt: skip
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.insert(3, "name", [names.get(o, o) for o in frame["object_id"]])
    return Ranking(kind, period, frame, RATES_BY_TYPE[kind], KEY_COUNTS[kind], within)


def export_frame(r: Ranking) -> pd.DataFrame:
    """The CSV table: rank, object, name, period, score, grade, the level's rates, every counter."""
    f = r.frame
    out = f[["rank", "object_type", "object_id", "name"]].copy()
    out.insert(4, "from", r.period.start.isoformat())
    out.insert(5, "to", r.period.end.isoformat())
    out["score"] = f["score"]
    out["grade"] = f["grade"]
    for name in r.rates:
        out[name] = f[name].astype(float).round(4)
    for name in (*COUNTER_NAMES, "to_handle", "to_close"):
        out[name] = f[name]
    out["missing"] = f["missing"]
    return out


def export_csv(r: Ranking) -> bytes:
    """The ranking as CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese names)."""
    return export_frame(r).to_csv(index=False).encode("utf-8-sig")


def rate_label(name: str, lang: str) -> str:
    """The heading of a rate column (Chinese name; the English is the counter's plain name)."""
    return RATE_LABELS.get(name, name) if lang == "zh" else name.replace("_", " ")


def grade_counts(r: Ranking) -> Mapping[str, int]:
    """How many objects got each grade (ungraded under "–")."""
    counts: dict[str, int] = {g: 0 for g in ("A", "B", "C", "D", "E", "–")}
    for g in r.frame["grade"]:
        counts[g if isinstance(g, str) else "–"] += 1
    return counts
