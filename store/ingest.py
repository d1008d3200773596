"""The SQL of the feed pipeline's writer: fixes, task acknowledgements, case numbers, dead letters.

Everything the pipeline (``feeds.pipeline``) reads or writes in its transaction, apart from the case
lifecycle (``store.cases.execute``), is here, so the pipeline itself holds no SQL. Every function takes
the caller's connection: the pipeline commits one transaction per group of inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from itertools import chain
from typing import Any

from sqlalchemy import Table, and_, func, insert, select, update
from sqlalchemy.engine import Connection, Dialect

from store.cases import sqlite_utc_text
from store.models import Case, CaseEventRow, Grid, Person, Position, Reject, Task

_POSITIONS: Table = Position.__table__  # type: ignore[assignment]
_TASKS: Table = Task.__table__  # type: ignore[assignment]
POS_COLUMNS = (
    "supervisor_id", "at", "received_at", "lon", "lat", "accuracy", "speed", "grid_code", "source"
)  # fmt: skip
_SQLITE_CACHE_KIB = 16_384  # page cache of a connection the writer used (SQLite's default: 2 MiB)
_SQLITE_CHECKPOINT_PAGES = 4000  # WAL pages between automatic checkpoints (SQLite's default: 1000)
_POS_CHUNK = 512  # rows per SQLite statement, a multiple of 64 (9 parameters a row; SQLite allows 32,766)
PersonRow = tuple[str, str | None, bool]  # role, area, active


def _aware(value: datetime) -> datetime:
    """An instant for a PostgreSQL ``timestamptz`` parameter (naive ones refused, as ``UTCDateTime``)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: GridWall stores aware UTC instants only")
    return value


def tune_writer(conn: Connection) -> None:
    """Once per connection the writer uses (SQLite): a larger page cache and fewer checkpoints.

    The right edges of the positions indexes stay in SQLite's own page cache, and a hot page is
    checkpointed once per 16 MB of WAL, not per 4 MB.
    """
    if conn.dialect.name == "sqlite" and not conn.info.get("gw_pipeline"):
        conn.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {_SQLITE_CHECKPOINT_PAGES}")
        conn.info["gw_pipeline"] = True


class PositionWriter:
    """``INSERT … ON CONFLICT DO NOTHING`` of fixes as driver SQL, built once per dialect.

    The rows are what ``insert(Position)`` would store (instants as ``UTCDateTime`` gives them), without
    SQLAlchemy's per-row bind and result processing (python -m bench ingest: most of the writer's time).
    ``insert`` tells which rows were stored now (the others were stored earlier: retries).

    PostgreSQL takes the rows as one array per column (``unnest``), sent in binary: psycopg's text
    array dumper quotes every element in Python, the binary one does not. The stored keys come back
    (``RETURNING``) but are read only when the row count says some row was not stored: in the common
    case no key tuple is built per row. A group of 4,400 fixes took ~58 ms of the writer thread's CPU
    with text arrays and every key read, ~9 ms so (python -m bench scale: the ingest consumer is one
    GIL-bound process).

    SQLite takes multi-row ``VALUES`` of a few fixed sizes (up to 64 rows a power of two, then
    multiples of 64 up to ``_POS_CHUNK``), padded with repeats of the last row, which conflict with it
    and store nothing: 15 statements stay in sqlite3's statement cache (preparing one costs more than
    running it). SQLite gets no ``RETURNING`` (sqlite3 releases the GIL for every row fetched, and the
    writer then waits to get it back): the row count says whether every row was stored; only when not
    are the stored ones read back by rowid (rows that one statement stores get consecutive rowids, and
    the writer is the only one writing).
    """

    def __init__(self, dialect: Dialect) -> None:
        q = dialect.identifier_preparer.quote
        self.postgres = dialect.name == "postgresql"
        self.instant: Callable[[datetime], Any] = _aware if self.postgres else sqlite_utc_text
        cols = ", ".join(q(c) for c in POS_COLUMNS)
        key = f"{q('supervisor_id')}, {q('at')}"
        self._head = f"INSERT INTO {q(_POSITIONS.name)} ({cols}) "
        self._tail = f" ON CONFLICT ({key}) DO NOTHING"
        arrays = ", ".join(f"CAST(%({c})b AS {_POSITIONS.c[c].type.compile(dialect)}[])" for c in POS_COLUMNS)
        self._unnest = f"{self._head}SELECT * FROM unnest({arrays}){self._tail} RETURNING {key}"
        self._stored = f"SELECT {key} FROM {q(_POSITIONS.name)} WHERE rowid > ? AND rowid <= ?"
        self._values: dict[int, str] = {}

    def _sqlite_sql(self, n: int) -> str:
        sql = self._values.get(n)
        if sql is None:
            row = "(" + ", ".join("?" * len(POS_COLUMNS)) + ")"
            sql = self._values[n] = f"{self._head}VALUES {', '.join([row] * n)}{self._tail}"
        return sql

    def insert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> set[tuple[Any, Any]] | None:
        """Insert rows (values in ``POS_COLUMNS`` order, instants through ``instant``); the keys
        (supervisor, instant) of the rows stored now, or None when all of them were."""
        if self.postgres:
            params = {c: [r[i] for r in rows] for i, c in enumerate(POS_COLUMNS)}
            res = conn.exec_driver_sql(self._unnest, params)
            if res.rowcount == len(rows):  # every row stored: the returned keys are not read
                res.close()
                return None
            return {(a, b) for a, b in res.fetchall()}
        out: set[tuple[Any, Any]] | None = None
        for i in range(0, len(rows), _POS_CHUNK):
            chunk = rows[i : i + _POS_CHUNK]
            n = len(chunk)
            size = 1 << (n - 1).bit_length() if n <= 64 else -(-n // 64) * 64
            flat = tuple(chain.from_iterable(chunk))
            if size > n:
                flat += chunk[-1] * (size - n)
            res = conn.exec_driver_sql(self._sqlite_sql(size), flat)
            stored, last = res.rowcount, res.lastrowid
            if stored == n and out is None:
                continue
            if out is None:
                out = {(r[0], r[1]) for r in rows[:i]}
            if stored == n:
                out.update((r[0], r[1]) for r in chunk)
            elif stored > 0:
                found = conn.exec_driver_sql(self._stored, (last - stored, last)).fetchall()
                out.update((a, b) for a, b in found)
        return out


def latest_fixes(conn: Connection, supervisors: Collection[str]) -> dict[str, tuple[datetime, float, float]]:
    """Each supervisor's latest stored fix (instant, lon, lat); supervisors without one are absent."""
    if not supervisors:
        return {}
    if conn.dialect.name == "postgresql":
        return _latest_fixes_pg(conn, supervisors)
    return _latest_fixes_select(conn, supervisors)


def _latest_fixes_select(
    conn: Connection, supervisors: Collection[str]
) -> dict[str, tuple[datetime, float, float]]:
    """``latest_fixes`` in portable SQL (SQLite; the PostgreSQL path is checked against it)."""
    p = Position.__table__.alias("p")
    top = select(func.max(Position.at)).where(Position.supervisor_id == p.c.supervisor_id).scalar_subquery()
    rows = conn.execute(
        select(p.c.supervisor_id, p.c.at, p.c.lon, p.c.lat).where(
            p.c.supervisor_id.in_(sorted(supervisors)), p.c.at == top
        )
    ).all()
    return {r[0]: (r[1], float(r[2]), float(r[3])) for r in rows}


def _latest_fixes_pg(
    conn: Connection, supervisors: Collection[str]
) -> dict[str, tuple[datetime, float, float]]:
    """``latest_fixes`` on PostgreSQL: one backward index probe per supervisor, ids as one array.

    A restarted ingest process seeds every supervisor it meets (10,000 in python -m bench scale): the
    portable ``IN (…)`` of thousands of bind parameters cost more to build and send (SQLAlchemy
    renders, psycopg parses each placeholder) than the query took, and its correlated ``max(at)``
    read every stored fix of each supervisor, where ``ORDER BY at DESC LIMIT 1`` reads one.
    """
    q = conn.dialect.identifier_preparer.quote
    sid = _POSITIONS.c["supervisor_id"].type.compile(conn.dialect)
    rows = conn.exec_driver_sql(
        f"SELECT s.id, p.{q('at')}, p.lon, p.lat FROM unnest(CAST(%(ids)b AS {sid}[])) AS s(id) "
        f"CROSS JOIN LATERAL (SELECT {q('at')}, lon, lat FROM {q(_POSITIONS.name)} "
        f"WHERE supervisor_id = s.id ORDER BY {q('at')} DESC LIMIT 1) AS p",
        {"ids": sorted(supervisors)},
    ).fetchall()
    return {r[0]: (r[1].astimezone(UTC), float(r[2]), float(r[3])) for r in rows}


def ack_task(conn: Connection, case_id: str, kind: str, person: str, at: datetime) -> bool:
    """Mark an open task of a case as received by the handset of ``person`` (or of nobody yet)."""
    t = _TASKS
    res = conn.execute(
        update(t)
        .where(and_(t.c.case_id == case_id, t.c.kind == kind, t.c.done_at.is_(None)))
        .where((t.c.assignee == person) | t.c.assignee.is_(None))
        .values(acked_at=at)
    )
    return bool(res.rowcount)


def task_holder(conn: Connection, case_id: str, kind: str) -> tuple[str | None] | None:
    """Who holds the open task of that kind of a case: ``(assignee,)``, or None when none is open."""
    t = _TASKS
    row = conn.execute(
        select(t.c.assignee).where(t.c.case_id == case_id, t.c.kind == kind, t.c.done_at.is_(None))
    ).first()
    return None if row is None else (row[0],)


def case_of_key(conn: Connection, key: str | None) -> str | None:
    """The case an idempotency key already made (a retried report reaches the same case)."""
    return conn.scalar(select(CaseEventRow.case_id).where(CaseEventRow.key == key))


@dataclass(frozen=True)
class CasePlace:
    """Where an open case is (as stored) and the responsibility area of its grid."""

    grid: str | None
    street: str | None
    lon: float | None
    lat: float | None
    area: str | None


def open_case_place(conn: Connection, case_id: str) -> CasePlace | None:
    """An open case's grid, street, point and area (None when closed, voided or unknown)."""
    row = conn.execute(
        select(Case.grid_code, Case.street_code, Case.lon, Case.lat, Grid.area_code)
        .outerjoin(Grid, Grid.code == Case.grid_code)
        .where(Case.id == case_id, Case.open.is_(True))
    ).first()
    return None if row is None else CasePlace(*row)


class CaseNumbers:
    """Case numbers of reports without one: ``R<yyyymmdd><5 digits>`` per day in the city's zone.

    The day's highest number is read once, then counted here (the writer is the only one numbering).
    """

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._seq: dict[date, int] = {}

    def next(self, conn: Connection, at: datetime) -> str:
        """The next case number of the day of ``at``."""
        day = at.astimezone(self.tz).date()
        n = self._seq.get(day)
        if n is None:
            prefix = f"R{day:%Y%m%d}"
            top = conn.scalar(select(Case.id).where(Case.id.like(prefix + "%")).order_by(Case.id.desc()))
            n = int(top[len(prefix) :]) if top else 0
        self._seq[day] = n + 1
        return f"R{day:%Y%m%d}{n + 1:05d}"


def people(conn: Connection) -> dict[str, PersonRow]:
    """Every person: id → (role, area, active)."""
    rows = conn.execute(select(Person.id, Person.role, Person.area_code, Person.active)).all()
    return {r[0]: (r[1], r[2], bool(r[3])) for r in rows}


def person(conn: Connection, pid: str) -> PersonRow | None:
    """One person: (role, area, active), or None when unknown."""
    row = conn.execute(select(Person.role, Person.area_code, Person.active).where(Person.id == pid)).first()
    return None if row is None else (row[0], row[1], bool(row[2]))


def insert_rejects(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Dead-letter rows (``feeds.pipeline.DeadLetter``)."""
    rows = list(rows)
    if rows:
        conn.execute(insert(Reject), rows)
