"""The persisted half of the case command path: one command, one transaction.

``execute`` loads the case, applies the pure lifecycle transition and writes the case row, its
events, timers and tasks — or records the rejection in the dead-letter table. It runs inside the
caller's transaction; the caller commits and only then publishes (design.md §3).

The hot path (the read, and the writes of an applied command) runs as driver SQL through
``Connection.exec_driver_sql``: SQLAlchemy's transaction, event and error handling stay (errors are
SQLAlchemy's exceptions), its per-statement compile and parameter machinery does not (tech: that was
most of the time per command on SQLite). Values go through each column type's own bind processor, so
the rows are what a Core statement would store; only the case snapshot (``cases.state``) is written as
compact orjson text. Round trips per command: on PostgreSQL one read (the case, locked, with whatever
already used the idempotency key and, for a report, its grid) and one write (a data-modifying ``WITH``
statement: the case, its events, timers and tasks), besides BEGIN and COMMIT; on SQLite the same read
and one statement per table written. Rejections and duplicates keep the Core statements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Column, Float, Table, bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from domain.catalogue import Catalogue
from domain.lifecycle import (
    TASK_OF_STATUS,
    Accepted,
    Action,
    CaseEvent,
    CaseState,
    Command,
    Context,
    Rejection,
    Rule,
    apply,
    fingerprint,
    state_from_json,
    state_to_json,
)
from domain.workcalendar import StageTimer
from store.db import UTCDateTime
from store.models import Case, CaseEventRow, Department, Grid, Reject, StageTimerRow, Task

_cases: Table = Case.__table__  # type: ignore[assignment]
_events: Table = CaseEventRow.__table__  # type: ignore[assignment]
_timers: Table = StageTimerRow.__table__  # type: ignore[assignment]
_tasks_t: Table = Task.__table__  # type: ignore[assignment]
_grids: Table = Grid.__table__  # type: ignore[assignment]
_SEL_STATE = select(_cases.c.state).where(_cases.c.id == bindparam("p_id"))
Db = Connection | Session  # the command path runs on a Core connection or an ORM session

# Columns the command path writes, per table (other columns keep their defaults).
_CASE_COLUMNS = ("kind", "class_code", "condition_code", "source", "status", "stage", "open", "emergency",
                 "department_code", "reporter", "reported_at", "updated_at", "closed_at", "deadline",
                 "archive", "reworks", "returns", "urges", "state")  # fmt: skip
_NEW_CASE_COLUMNS = ("id", "grid_code", "community_code", "street_code", "lon", "lat", "description",
                     "version", "origin", "needs_location", "address", "component_id",
                     *_CASE_COLUMNS)  # fmt: skip
_EVENT_COLUMNS = ("case_id", "seq", "action", "actor", "role", "from_status", "to_status", "at", "opinion",
                  "data", "key", "fingerprint")  # fmt: skip
# the place columns a LOCATE sets on a case reported without a point
_PLACE_COLUMNS = ("grid_code", "community_code", "street_code", "lon", "lat", "needs_location")
_TIMER_KEY = ("case_id", "stage")
_TIMER_COLUMNS = ("limit_value", "limit_unit", "started_at", "deadline", "paused_since", "paused_seconds",
                  "ended_at", "overdue")  # fmt: skip
_TASK_COLUMNS = ("case_id", "kind", "assignee", "created_at", "deadline")
_DONE_COLUMNS = ("done_at", "result")


def _python_defaults(table: Table, given: tuple[str, ...]) -> dict[str, Any]:
    """Client-side column defaults a Core insert would add for the columns not given."""
    found: dict[str, Any] = {}
    for col in table.columns:
        default: Any = col.default
        if col.name in given or default is None or col.primary_key:
            continue
        if default.is_scalar or default.is_callable:  # a callable is called per row, without context
            found[col.name] = default.arg
    return found


_CASE_DEFAULTS = _python_defaults(_cases, _NEW_CASE_COLUMNS)
_EVENT_DEFAULTS = _python_defaults(_events, _EVENT_COLUMNS)
_TIMER_DEFAULTS = _python_defaults(_timers, (*_TIMER_KEY, *_TIMER_COLUMNS))
_TASK_DEFAULTS = _python_defaults(_tasks_t, (*_TASK_COLUMNS, *_DONE_COLUMNS))
Row = dict[str, Any]


def _with_defaults(row: Row, defaults: Mapping[str, Any]) -> Row:
    for name, value in defaults.items():
        row[name] = value(None) if callable(value) else value
    return row


def sqlite_utc_text(value: datetime | None) -> str | None:
    """A ``UTCDateTime`` value as SQLAlchemy stores it on SQLite: naive UTC text with microseconds."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: GridWall stores aware UTC instants only")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def _json_text(value: Any) -> str | None:
    """The case snapshot as JSON text (orjson: the snapshot holds only str keys and finite numbers)."""
    return None if value is None else orjson.dumps(value).decode()


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Sql:
    """The hot statements of one dialect as driver SQL, with each column's bind processor.

    PostgreSQL gets the writes of a command as one data-modifying ``WITH`` statement, with the timer
    rows as arrays (``unnest``) so that a statement keeps under psycopg's 50 parameters for its
    query cache; SQLite gets one statement per table, all taking the same parameter mapping.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.postgres = dialect.name == "postgresql"
        self._named = dialect.paramstyle != "pyformat"  # sqlite3 takes :name with a mapping
        self._quote = dialect.identifier_preparer.quote
        self._shapes: dict[tuple[Any, ...], list[str]] = {}
        self._procs: dict[str, dict[str, Callable[[Any], Any] | None]] = {}
        c, e, g, q = self._quote("c"), self._quote("e"), self._quote("g"), self._quote
        state = f"{c}.{q('state')}"
        lock = ""
        if self.postgres:
            state, lock = f"CAST({state} AS TEXT)", " FOR UPDATE"  # parsed by orjson, not psycopg
        key_is = f"{e}.{q('key')} = {self.ph('key')}"
        # One row always: the case (locked on PostgreSQL), the key's earlier use, the report's grid.
        self.read = (
            f"WITH {c} AS (SELECT {q('state')}, {q('version')} FROM {q(_cases.name)} "
            f"WHERE {q('id')} = {self.ph('id')}{lock}) "
            f"SELECT {state}, {c}.{q('version')}, "
            f"(SELECT {e}.{q('fingerprint')} FROM {q(_events.name)} {e} WHERE {key_is}), "
            f"(SELECT {e}.{q('case_id')} FROM {q(_events.name)} {e} WHERE {key_is}), "
            f"(SELECT {g}.{q('code')} FROM {q(_grids.name)} {g} WHERE {g}.{q('code')} = {self.ph('grid')}) "
            f"FROM (SELECT 1 AS {q('one')}) AS {q('one')} LEFT OUTER JOIN {c} ON 1 = 1"
        )

    def ph(self, name: str) -> str:
        """A placeholder in the driver's parameter style."""
        return f":{name}" if self._named else f"%({name})s"

    def procs(self, table: Table) -> dict[str, Callable[[Any], Any] | None]:
        """The bind processor of each column of a table on this dialect (None: values pass as they are)."""
        found = self._procs.get(table.name)
        if found is None:
            found = self._procs[table.name] = {col.name: self._proc(col) for col in table.columns}
        return found

    def _proc(self, col: Column[Any]) -> Callable[[Any], Any] | None:
        if col is _cases.c.state:
            return _json_text
        if isinstance(col.type, UTCDateTime) and not self.postgres:
            return sqlite_utc_text  # what UTCDateTime then SQLite's DATETIME give, in one step
        p: Callable[[Any], Any] | None = col.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        if p is None and self.postgres and isinstance(col.type, Float):
            p = _float  # arrays of one type: 1 → 1.0 (the same float8)
        return p

    def bind(self, params: Row, table: Table, prefix: str, row: Row) -> None:
        """Add one row's values to ``params`` as ``<prefix><column>``, through the column processors."""
        procs = self.procs(table)
        for name, value in row.items():
            p = procs[name]
            params[prefix + name] = value if p is None else p(value)

    def bind_rows(self, params: Row, table: Table, prefix: str, rows: list[Row]) -> None:
        """Add rows: an array per column (``<prefix>_<col>``) on PostgreSQL, else ``<prefix><i>_<col>``."""
        if not self.postgres:
            for i, row in enumerate(rows):
                self.bind(params, table, f"{prefix}{i}_", row)
            return
        procs = self.procs(table)
        for name in rows[0]:
            p = procs[name]
            params[f"{prefix}_{name}"] = [r[name] for r in rows] if p is None else [p(r[name]) for r in rows]

    def _cast(self, table: Table, column: str, sql: str, array: bool = False) -> str:
        col = table.c[column]
        if self.postgres and (array or col is _cases.c.state):
            return f"CAST({sql} AS {col.type.compile(self.dialect)}{'[]' if array else ''})"
        return sql

    def _values(self, table: Table, columns: tuple[str, ...], prefix: str) -> str:
        return "(" + ", ".join(self._cast(table, c, self.ph(prefix + c)) for c in columns) + ")"

    def _insert(self, table: Table, columns: tuple[str, ...], prefixes: list[str]) -> str:
        q = self._quote
        values = ", ".join(self._values(table, columns, prefix) for prefix in prefixes)
        return f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in columns)}) VALUES {values}"

    def writes(
        self, new: bool, events: int, timers: int, done: bool, task: bool, place: bool = False
    ) -> list[str]:
        """The write statements of one command's shape (cached); ``place``: a LOCATE's place columns."""
        shape = (new, events, timers if not self.postgres else min(timers, 1), done, task, place)
        found = self._shapes.get(shape)
        if found is None:
            found = self._shapes[shape] = self._build(new, events, timers, done, task, place)
        return found

    def _build(self, new: bool, events: int, timers: int, done: bool, task: bool, place: bool) -> list[str]:
        q, ph = self._quote, self.ph
        parts: list[str] = []
        if new:
            cols = (*_NEW_CASE_COLUMNS, *_CASE_DEFAULTS)
            parts.append(self._insert(_cases, cols, ["c_"]))
        else:
            changed = (*_CASE_COLUMNS, *(_PLACE_COLUMNS if place else ()))
            sets = ", ".join(f"{q(c)} = {self._cast(_cases, c, ph('c_' + c))}" for c in changed)
            parts.append(
                f"UPDATE {q(_cases.name)} SET {sets}, {q('version')} = {q('version')} + 1 "
                f"WHERE {q('id')} = {ph('id')}"
            )
        if events:
            cols = (*_EVENT_COLUMNS, *_EVENT_DEFAULTS)
            parts.append(self._insert(_events, cols, [f"e{i}_" for i in range(events)]))
        if timers:
            cols = (*_TIMER_KEY[1:], *_TIMER_COLUMNS, *_TIMER_DEFAULTS)  # case_id is the case's id
            names = ", ".join(q(c) for c in (*_TIMER_KEY[:1], *cols))
            if self.postgres:
                arrays = ", ".join(self._cast(_timers, c, ph("t_" + c), array=True) for c in cols)
                rows = f"SELECT {ph('id')}, * FROM unnest({arrays})"
            else:
                rows = "VALUES " + ", ".join(
                    "(" + ", ".join([ph("id"), *(ph(f"t{i}_{c}") for c in cols)]) + ")" for i in range(timers)
                )
            updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in _TIMER_COLUMNS)
            parts.append(
                f"INSERT INTO {q(_timers.name)} ({names}) {rows} "
                f"ON CONFLICT ({', '.join(q(c) for c in _TIMER_KEY)}) DO UPDATE SET {updates}"
            )
        if done:
            a = q("assignee")
            parts.append(
                f"UPDATE {q(_tasks_t.name)} SET {q('done_at')} = {ph('d_done_at')}, "
                f"{q('result')} = {ph('d_result')}, {a} = coalesce({a}, {ph('d_actor')}) "
                f"WHERE {q('case_id')} = {ph('id')} AND {q('kind')} = {ph('d_kind')} "
                f"AND {q('done_at')} IS NULL"
            )
        if task:
            cols = (*_TASK_COLUMNS[1:], *_TASK_DEFAULTS)
            parts.append(
                f"INSERT INTO {q(_tasks_t.name)} ({', '.join(q(c) for c in (_TASK_COLUMNS[0], *cols))}) "
                f"VALUES ({', '.join([ph('id'), *(ph('k_' + c) for c in cols)])})"
            )
        if self.postgres and len(parts) > 1:
            # one round trip: the parts as data-modifying WITH queries of the last one (foreign keys
            # are checked at the end of the statement, so a new case and its rows can go together)
            ctes = ", ".join(f"{q(f'w{i}')} AS ({sql})" for i, sql in enumerate(parts[:-1]))
            return [f"WITH {ctes} {parts[-1]}"]
        return parts


_SQL: dict[tuple[str, str, str], _Sql] = {}


def _sql(conn: Connection) -> _Sql:
    dialect = conn.dialect
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    found = _SQL.get(key)
    if found is None:
        found = _SQL[key] = _Sql(dialect)
    return found


@dataclass(frozen=True)
class CommandResult:
    """What happened to one command."""

    outcome: Literal["applied", "duplicate", "rejected"]
    case: CaseState | None
    events: tuple[CaseEvent, ...] = ()
    rejection: Rejection | None = None


def _depth(catalogue: Catalogue, code: str) -> int:
    """How many parents a department has (parents are inserted before their units)."""
    n, parent = 0, catalogue.departments[code].parent
    while parent is not None:
        n, parent = n + 1, catalogue.departments[parent].parent
    return n


def sync_departments(session: Session, catalogue: Catalogue) -> int:
    """Insert the catalogue's departments that the store does not have yet (parents first); the
    processes of a deployment may do it at the same moment on a new database, so a department
    another one inserted meanwhile is skipped, not a unique violation (which stopped an ingest
    process at its start: bench faults' smoke run). Returns how many were missing."""
    have = set(session.scalars(select(Department.code)))
    rows = [
        {"code": d.code, "name": d.name, "parent_code": d.parent, "is_default": d.default}
        for d in sorted(catalogue.departments.values(), key=lambda d: (_depth(catalogue, d.code), d.code))
        if d.code not in have
    ]
    if rows:
        dialect = session.get_bind().dialect.name
        ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(Department)
        session.execute(ins.on_conflict_do_nothing(index_elements=["code"]), rows)
    return len(rows)


def load_case(db: Db, case_id: str) -> CaseState | None:
    """The lifecycle state of a case, or None."""
    raw = db.scalar(_SEL_STATE, {"p_id": case_id})
    return None if raw is None else state_from_json(raw)


def merge_target(db: Db, case: CaseState, into: Any) -> Rejection | None:
    """合并 (issue 21): ``into`` must be another open case of the same class that is not itself merged."""
    if not isinstance(into, str) or not into or into == case.id or len(into) > 32:
        return None  # the lifecycle names it (missing_merge_target)
    target = load_case(db, into)
    same = target is not None and (target.kind, target.class_code) == (case.kind, case.class_code)
    if target is None or not target.is_open or not same:
        why = "no such case" if target is None else "closed" if not target.is_open else "another class"
        return Rejection(Rule.MISSING_MERGE_TARGET, f"merge into {into}: {why} (an open case of the class)")
    return None


def _command_json(cmd: Command, at: datetime) -> dict[str, Any]:
    return {
        "action": cmd.action.value,
        "case_id": cmd.case_id,
        "actor": {"id": cmd.actor.id, "role": cmd.actor.role.value, "department": cmd.actor.department},
        "opinion": cmd.opinion,
        "data": {
            k: (v if isinstance(v, str | int | float | bool | None) else str(v)) for k, v in cmd.data.items()
        },
        "key": cmd.key,
        "at": at.isoformat(),
    }


def record_reject(db: Db, source: str, reason: str, message: str, payload: Mapping[str, Any]) -> None:
    """Append a dead-letter record."""
    db.execute(
        insert(Reject).values(source=source, reason=reason, message=message[:1000], payload=dict(payload))
    )


def _running_deadline(state: CaseState) -> datetime | None:
    deadline = None
    for t in state.timers.values():
        if t.ended_at is None and (deadline is None or t.deadline < deadline):
            deadline = t.deadline
    return deadline


def _case_columns(state: CaseState) -> Row:
    """The ``cases`` columns a state sets, ``state`` as a JSON dict (store.history writes these too)."""
    stage = state.stage
    return {
        "kind": state.kind.value,
        "class_code": state.class_code,
        "condition_code": state.condition_code,
        "source": state.source.value,
        "status": state.status.value,
        "stage": stage.value if stage else None,
        "open": state.is_open,
        "emergency": state.emergency,
        "department_code": state.department,
        "reporter": state.reporter,
        "reported_at": state.reported_at,
        "updated_at": state.updated_at,
        "closed_at": state.closed_at,
        "deadline": _running_deadline(state),
        "archive": state.archive.value if state.archive else None,
        "reworks": state.reworks,
        "returns": state.returns,
        "urges": state.urges,
        "state": state_to_json(state),
    }


def _timer_row(case_id: str, t: StageTimer) -> Row:
    """A stage timer as a ``stage_timers`` row (store.history writes these too)."""
    return {"case_id": case_id, **_timer_values(t)}


def _timer_values(t: StageTimer) -> Row:
    end = t.paused_since or t.ended_at
    return {
        "stage": t.stage,
        "limit_value": t.limit.value,
        "limit_unit": t.limit.unit.value,
        "started_at": t.started_at,
        "deadline": t.deadline,
        "paused_since": t.paused_since,
        "paused_seconds": t.paused_seconds,
        "ended_at": t.ended_at,
        "overdue": end is not None and end > t.deadline,
    }


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, str | int | float | bool | None) else str(v)) for k, v in data.items()}


_TASK_TIMER = TASK_OF_STATUS  # task kind = its timer


def _write(
    conn: Connection,
    sql: _Sql,
    before: CaseState | None,
    version: int,
    out: Accepted,
    cmd: Command,
    at: datetime,
    fp: str,
) -> None:
    state = out.state
    params: Row = {"id": state.id}
    case = _case_columns(state)
    if before is None:
        grid = str(cmd.data.get("grid") or "") or None
        case.update(
            id=state.id,
            grid_code=grid,
            community_code=grid[:12] if grid else None,
            street_code=grid[:9] if grid else None,
            lon=cmd.data.get("lon"),
            lat=cmd.data.get("lat"),
            description=str(cmd.data.get("description", ""))[:1000],
            version=1,
            origin=str(cmd.data.get("origin") or "live")[:16],  # simulation: 模拟数据 (feeds.pipeline)
            needs_location=bool(cmd.data.get("needs_location")),  # no point (feeds.pipeline)
            address=str(cmd.data["address"])[:200] if cmd.data.get("address") else None,
            component_id=str(cmd.data["component"])[:16] if cmd.data.get("component") else None,
        )
        _with_defaults(case, _CASE_DEFAULTS)
        seq = 0
    else:
        seq = version  # one event per applied command: the version counts the events so far
    place = cmd.action is Action.LOCATE  # 定位: the case's point and grid (feeds.intake found them)
    if place:
        grid = str(cmd.data["grid"])
        case.update(
            grid_code=grid,
            community_code=grid[:12],
            street_code=grid[:9],
            lon=float(cmd.data["lon"]),
            lat=float(cmd.data["lat"]),
            needs_location=state.needs_location,
        )
    sql.bind(params, _cases, "c_", case)
    for i, ev in enumerate(out.events):
        row = {
            "case_id": ev.case_id,
            "seq": seq + i,
            "action": ev.action.value,
            "actor": ev.actor,
            "role": ev.role.value,
            "from_status": ev.from_status.value if ev.from_status else None,
            "to_status": ev.to_status.value,
            "at": ev.at,
            "opinion": ev.opinion,
            "data": _plain(ev.data),
            "key": ev.key or None,
            "fingerprint": fp,
        }
        sql.bind(params, _events, f"e{i}_", _with_defaults(row, _EVENT_DEFAULTS))
    old_timers = before.timers if before else {}
    timers = [  # the stopped and the started timer (the case id is the row's case_id)
        _with_defaults(_timer_values(t), _TIMER_DEFAULTS)
        for name, t in state.timers.items()
        if old_timers.get(name) != t
    ]
    if timers:
        sql.bind_rows(params, _timers, "t", timers)
    # tasks: the verify/check result closes the open task; entering 待核实/待核查 opens one; an
    # assignment (指派) ends the open task unanswered (result NULL) and opens one for the new assignee
    assign = cmd.action is Action.ASSIGN
    done = assign or cmd.action is Action.VERIFY or cmd.action is Action.CHECK
    if done:
        if assign:
            kind, result, actor = _TASK_TIMER[state.status], None, None
        else:
            kind = "verify" if cmd.action is Action.VERIFY else "check"
            result = bool(cmd.data.get("confirmed" if kind == "verify" else "passed"))
            actor = cmd.actor.id
        sql.bind(params, _tasks_t, "d_", {"done_at": at, "result": result})
        params["d_kind"], params["d_actor"] = kind, actor
    task_kind = _TASK_TIMER.get(state.status)
    if before is not None and before.status == state.status and not assign:
        task_kind = None
    if task_kind is not None:
        assignee = cmd.data.get("assignee")
        row = {
            "kind": task_kind,
            "assignee": None if assignee is None else str(assignee),
            "created_at": at,
            "deadline": state.timers[task_kind].deadline,
        }
        sql.bind(params, _tasks_t, "k_", _with_defaults(row, _TASK_DEFAULTS))
    shape = (before is None, len(out.events), len(timers), done, task_kind is not None, place)
    for statement in sql.writes(*shape):
        conn.exec_driver_sql(statement, params)


def execute(
    db: Db, cmd: Command, at: datetime, ctx: Context, source: str = "command", *, record: bool = True
) -> CommandResult:
    """Apply one command inside the caller's transaction: write it, or record its rejection.

    ``db`` is a Core connection (fastest; the pipeline's choice) or an ORM session. ``record=False``:
    the caller writes the rejection's dead letter (the feed pipeline, capped per source and minute).
    """
    if isinstance(db, Session):
        if db.autoflush:  # as Session.execute would before the read
            db.flush()
        conn = db.connection(bind_arguments={"mapper": Case})
    else:
        conn = db
    sql = _sql(conn)
    fp = fingerprint(cmd, at)
    grid = cmd.data.get("grid") if cmd.action is Action.REPORT or cmd.action is Action.LOCATE else None
    # one round trip: the case (locked on PostgreSQL), whatever already used this key, the grid
    row = conn.exec_driver_sql(
        sql.read, {"id": cmd.case_id, "key": cmd.key or None, "grid": str(grid) if grid else None}
    ).first()
    assert row is not None  # the statement always returns one row
    raw_state, raw_version, seen_fp, seen_case, grid_code = row
    if raw_state is None:
        before, version = None, 0
    else:
        before, version = state_from_json(orjson.loads(raw_state)), int(raw_version)
    if cmd.key and seen_fp is not None:
        if seen_fp == fp:
            case = before if seen_case == cmd.case_id else load_case(db, seen_case)
            return CommandResult("duplicate", case)
        rej = Rejection(Rule.KEY_CONFLICT, f"idempotency key {cmd.key!r} was used for a different command")
        if record:
            record_reject(db, source, rej.rule.value, rej.message, _command_json(cmd, at))
        return CommandResult("rejected", before, rejection=rej)
    rejection: Rejection | None = None
    if grid and (before is None or cmd.action is Action.LOCATE) and grid_code is None:
        rejection = Rejection(Rule.UNKNOWN_GRID, f"unknown grid {grid!r}")
    if cmd.action is Action.MERGE and before is not None and rejection is None:
        rejection = merge_target(db, before, cmd.data.get("into"))
    out = rejection or apply(before, cmd, at, ctx)
    if isinstance(out, Rejection):
        if record:
            record_reject(db, source, out.rule.value, out.message, _command_json(cmd, at))
        return CommandResult("rejected", before, rejection=out)
    _write(conn, sql, before, version, out, cmd, at, fp)
    return CommandResult("applied", out.state, out.events)


def case_events(session: Session, case_id: str) -> list[CaseEventRow]:
    """The event log of a case in order."""
    return list(
        session.scalars(
            select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.seq)
        )
    )
