"""Persisted CJ/T 292 daily counters: saved as events happen, loaded on start, rebuilt when behind.

The live core keeps one :class:`domain.evaluation.DailyAggregates` in memory, adds every committed
case event to it and saves the changed rows to ``daily_counters`` (with the id of the last case
event they include, and the department/dispatcher holding each open dispatched case, in
``counter_marks``). A month of evaluation then reads about 30 rows per object. On start the rows
are loaded when the mark says they include the whole log; otherwise (first start, a crash between
commit and save) they are rebuilt from the log and saved — the same numbers by construction
(tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from domain.evaluation import COUNTER_NAMES, COUNTERS_VERSION, DailyAggregates, Holder, ObjectType, RowKey
from domain.lifecycle import Context
from store.evaluation import rebuild_aggregates
from store.models import CaseEventRow, CounterMark, DailyCounter

# the mark names the counters' definition version: rows saved under another one are rebuilt on start
MARK = f"daily-v{COUNTERS_VERSION}"
ZERO = dict.fromkeys(COUNTER_NAMES, 0)  # a stored row holds its non-zero counters only


def _upsert(dialect: str, table: Any, keys: list[str], update: list[str]) -> Any:
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return ins.on_conflict_do_update(index_elements=keys, set_={c: ins.excluded[c] for c in update})


def save_rows(
    conn: Connection,
    rows: Mapping[RowKey, Mapping[str, int]],
    holders: Mapping[str, Holder],
    event_id: int,
    chunk: int = 5000,
) -> None:
    """Upsert changed daily rows and move the mark to ``event_id`` (inside the caller's transaction).

    A row keeps only its non-zero counters (a missing counter reads 0 everywhere): a unit grid's day
    has a handful of its 43 counters set, and the month's evaluation reads every grid's 30 rows
    (python -m bench desk_eval: 1,145 bytes of JSON per row when every counter was written).
    """
    dialect = conn.dialect.name
    items = [
        {"object_type": t.value, "object_id": oid, "day": day, "counts": {k: n for k, n in v.items() if n}}
        for (t, oid, day), v in rows.items()
    ]
    stmt = _upsert(dialect, DailyCounter.__table__, ["object_type", "object_id", "day"], ["counts"])
    for i in range(0, len(items), chunk):
        conn.execute(stmt, items[i : i + chunk])
    mark = _upsert(dialect, CounterMark.__table__, ["name"], ["event_id", "data"])
    conn.execute(mark, {"name": MARK, "event_id": event_id, "data": {k: list(v) for k, v in holders.items()}})


def forget_all_rows(conn: Connection) -> None:
    """Delete every daily row and the marks of every counters version (before saving a rebuild)."""
    conn.execute(delete(DailyCounter))
    conn.execute(delete(CounterMark).where(CounterMark.name.like("daily%")))


def last_event_id(conn: Connection) -> int:
    """The id of the newest case event (0 when there is none)."""
    return int(conn.scalar(select(func.coalesce(func.max(CaseEventRow.id), 0))) or 0)


def load_rows(conn: Connection) -> tuple[list[tuple[RowKey, dict[str, int]]], dict[str, Any], int | None]:
    """Stored rows (every counter, zeros included), holders and the mark's event id (None when nothing
    was ever saved)."""
    mark = conn.execute(
        select(CounterMark.event_id, CounterMark.data).where(CounterMark.name == MARK)
    ).first()
    rows = [
        ((ObjectType(t), oid, day), {**ZERO, **counts})
        for t, oid, day, counts in conn.execute(
            select(DailyCounter.object_type, DailyCounter.object_id, DailyCounter.day, DailyCounter.counts)
        )
    ]
    if mark is None:
        return rows, {}, None
    return rows, dict(mark[1] or {}), int(mark[0])


def load_or_rebuild(
    engine: Engine, ctx: Context, responsible: Mapping[str, str] | None = None
) -> tuple[DailyAggregates, bool]:
    """The daily aggregates of the whole log; ``True`` when they had to be rebuilt (and were saved)."""
    with engine.connect() as conn:
        newest = last_event_id(conn)
        rows, holders, mark = load_rows(conn)
    if mark is not None and mark == newest:
        agg = DailyAggregates(responsible=responsible, tz=ctx.calendar.tz)
        agg.load(rows, holders)
        return agg, False
    agg = rebuild_aggregates(engine, ctx, responsible)
    with engine.begin() as conn:
        forget_all_rows(conn)
        save_rows(conn, agg.take_dirty(), agg.holders(), newest)
    return agg, True
