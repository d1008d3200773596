"""Bulk load of already-validated case histories (the simulator's backfill of past days).

Every command was applied by :func:`domain.lifecycle.apply` before it gets here, so this only
writes what the command path would have written — cases, events, stage timers, tasks — in a few
large statements instead of one transaction per command. Live inputs never take this path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Column, Table, insert
from sqlalchemy.engine import Connection

from domain.lifecycle import TASK_OF_STATUS, Action, CaseEvent, CaseState, Command, fingerprint
from store.cases import _case_columns, _plain, _timer_row, sqlite_utc_text
from store.db import UTCDateTime
from store.models import Case, CaseEventRow, StageTimerRow, Task

_TASK_OF = TASK_OF_STATUS


@dataclass(frozen=True)
class CaseHistory:
    """One case's applied commands in order with the state after each, and where it is."""

    steps: Sequence[tuple[Command, datetime, CaseState, tuple[CaseEvent, ...]]]
    grid: str | None
    lon: float | None
    lat: float | None
    description: str = ""
    assignee: str | None = None  # the supervisor who does its 核实/核查 tasks
    origin: str = "simulation"  # cases.origin: the backfill writes simulated history


def bulk_insert_histories(
    conn: Connection, histories: Mapping[str, CaseHistory], key: Any = None, chunk: int = 5000
) -> int:
    """Insert whole case histories in one transaction of the caller; returns the events written."""
    cases: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    timers: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for case_id, h in histories.items():
        if not h.steps:
            continue
        final = h.steps[-1][2]
        seq = 0
        open_task: dict[str, Any] | None = None
        for cmd, at, state, evs in h.steps:
            fp = fingerprint(cmd, at)
            k = key(cmd) if key is not None else cmd.key
            for j, ev in enumerate(evs):
                events.append(
                    {"case_id": case_id, "seq": seq, "action": ev.action.value, "actor": ev.actor,
                     "role": ev.role.value, "from_status": ev.from_status.value if ev.from_status else None,
                     "to_status": ev.to_status.value, "at": ev.at, "opinion": ev.opinion,
                     "data": _plain(ev.data), "key": (k or None) if j == 0 else None,
                     "fingerprint": fp}
                )  # fmt: skip
                seq += 1
            if cmd.action in (Action.VERIFY, Action.CHECK) and open_task is not None:
                open_task["done_at"] = at
                field = "confirmed" if cmd.action is Action.VERIFY else "passed"
                open_task["result"] = bool(cmd.data.get(field))
                open_task["assignee"] = cmd.actor.id
                open_task = None
            kind = _TASK_OF.get(state.status)
            if kind is not None and (open_task is None or open_task["kind"] != kind):
                open_task = {"case_id": case_id, "kind": kind, "assignee": h.assignee,
                             "created_at": at, "deadline": state.timers[kind].deadline,
                             "done_at": None, "result": None}  # fmt: skip
                tasks.append(open_task)
        cases.append(
            {"id": case_id, "grid_code": h.grid, "community_code": h.grid[:12] if h.grid else None,
             "street_code": h.grid[:9] if h.grid else None, "lon": h.lon, "lat": h.lat,
             "description": h.description[:1000], "version": seq, "origin": h.origin,
             **_case_columns(final)}
        )  # fmt: skip
        timers.extend(_timer_row(case_id, t) for t in final.timers.values())
    for model, rows in ((Case, cases), (CaseEventRow, events), (StageTimerRow, timers), (Task, tasks)):
        table: Table = model.__table__  # type: ignore[assignment]
        for i in range(0, len(rows), chunk):
            bulk_insert(conn, table, rows[i : i + chunk])
    return len(events)


def _sqlite_value(column: Column[Any]) -> Callable[[Any], Any]:
    """How SQLAlchemy would bind a value of this column on SQLite (dates, JSON, booleans)."""
    if isinstance(column.type, UTCDateTime):
        return sqlite_utc_text
    if isinstance(column.type, JSON):
        return lambda v: None if v is None else orjson.dumps(v).decode()
    if isinstance(column.type, Boolean):
        return lambda v: None if v is None else int(bool(v))
    return lambda v: v


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows; on SQLite straight through the driver (the bind processing is most of the cost)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), list(rows))
        return
    names = [c.name for c in table.columns if c.name in rows[0]]
    convert = [_sqlite_value(table.c[n]) for n in names]
    sql = f'INSERT INTO "{table.name}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
    conn.exec_driver_sql(sql, [tuple(f(r[n]) for f, n in zip(convert, names, strict=True)) for r in rows])
