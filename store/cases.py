"""The persisted half of the case command path: one command, one transaction.

``execute`` loads the case, applies the pure lifecycle transition and writes the case row, its
events, timers and tasks — or records the rejection in the dead-letter table. It runs inside the
caller's transaction; the caller commits and only then publishes (design.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from domain.catalogue import Catalogue
from domain.lifecycle import (
    Accepted,
    Action,
    CaseEvent,
    CaseState,
    Command,
    Context,
    Rejection,
    Rule,
    Status,
    apply,
    fingerprint,
    state_from_json,
    state_to_json,
)
from domain.workcalendar import StageTimer
from store.models import Case, CaseEventRow, Department, Grid, Reject, StageTimerRow, Task

_cases: Table = Case.__table__  # type: ignore[assignment]
_events: Table = CaseEventRow.__table__  # type: ignore[assignment]
_timers: Table = StageTimerRow.__table__  # type: ignore[assignment]
_tasks_t: Table = Task.__table__  # type: ignore[assignment]
# Statements built once with bind parameters: the hot path only binds values (tech: SQLAlchemy
# caches the compiled form; building a new statement with literal values per command costs ~10 ms).
_SEL_STATE = select(_cases.c.state).where(_cases.c.id == bindparam("p_id"))
_SEL_KEY = select(_events.c.fingerprint, _events.c.case_id).where(_events.c.key == bindparam("p_key"))
_KEY_FP = select(_events.c.fingerprint).where(_events.c.key == bindparam("p_key")).scalar_subquery()
_KEY_CASE = select(_events.c.case_id).where(_events.c.key == bindparam("p_key")).scalar_subquery()
_SEL_CASE_AND_KEY = select(_cases.c.state, _cases.c.version, _KEY_FP, _KEY_CASE).where(
    _cases.c.id == bindparam("p_id")
)
_SEL_CASE_AND_KEY_LOCK = _SEL_CASE_AND_KEY.with_for_update(of=_cases)
_INS_CASE = _cases.insert()
_UPD_CASE = _cases.update().where(_cases.c.id == bindparam("p_id")).values(version=_cases.c.version + 1)
_INS_EVENT = _events.insert()
_TIMER_COLUMNS = ("limit_value", "limit_unit", "started_at", "deadline", "paused_since", "paused_seconds",
                  "ended_at", "overdue")  # fmt: skip
_UPSERTS: dict[str, Any] = {}


def _upsert_timers(dialect: str) -> Any:
    """INSERT … ON CONFLICT (case_id, stage) DO UPDATE for the dialect (SQLite and PostgreSQL)."""
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(_timers)
        stmt = _UPSERTS[dialect] = ins.on_conflict_do_update(
            index_elements=[_timers.c.case_id, _timers.c.stage],
            set_={c: ins.excluded[c] for c in _TIMER_COLUMNS},
        )
    return stmt


_INS_TASK = _tasks_t.insert()
_SEL_GRID = select(Grid.__table__.c.code).where(Grid.__table__.c.code == bindparam("p_code"))
Db = Connection | Session  # the command path runs on a Core connection or an ORM session
_DONE_TASK = (
    _tasks_t.update()
    .where(
        _tasks_t.c.case_id == bindparam("p_case"),
        _tasks_t.c.kind == bindparam("p_kind"),
        _tasks_t.c.done_at.is_(None),
    )
    .values(assignee=func.coalesce(_tasks_t.c.assignee, bindparam("p_actor")))
)


@dataclass(frozen=True)
class CommandResult:
    """What happened to one command."""

    outcome: Literal["applied", "duplicate", "rejected"]
    case: CaseState | None
    events: tuple[CaseEvent, ...] = ()
    rejection: Rejection | None = None


def sync_departments(session: Session, catalogue: Catalogue) -> int:
    """Insert the catalogue's departments that the store does not have yet (parents first)."""
    have = set(session.scalars(select(Department.code)))
    rows = [
        {"code": d.code, "name": d.name, "parent_code": d.parent, "is_default": d.default}
        for d in sorted(catalogue.departments.values(), key=lambda d: (d.parent is not None, d.code))
        if d.code not in have
    ]
    if rows:
        session.execute(insert(Department), rows)
    return len(rows)


def _dialect(db: Db) -> str:
    return (db.get_bind().dialect if isinstance(db, Session) else db.dialect).name


def load_case(db: Db, case_id: str) -> CaseState | None:
    """The lifecycle state of a case, or None."""
    raw = db.scalar(_SEL_STATE, {"p_id": case_id})
    return None if raw is None else state_from_json(raw)


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
    running = [t for t in state.timers.values() if t.ended_at is None]
    return min((t.deadline for t in running), default=None)


def _case_columns(state: CaseState) -> dict[str, Any]:
    return {
        "kind": state.kind.value,
        "class_code": state.class_code,
        "condition_code": state.condition_code,
        "source": state.source.value,
        "status": state.status.value,
        "stage": state.stage.value if state.stage else None,
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


def _timer_row(case_id: str, t: StageTimer) -> dict[str, Any]:
    end = t.paused_since or t.ended_at
    return {
        "case_id": case_id,
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


def _write(
    db: Db, before: CaseState | None, version: int, out: Accepted, cmd: Command, at: datetime, fp: str
) -> None:
    state = out.state
    cols = _case_columns(state)
    if before is None:
        grid = str(cmd.data.get("grid") or "") or None
        db.execute(
            _INS_CASE,
            {
                "id": state.id,
                "grid_code": grid,
                "community_code": grid[:12] if grid else None,
                "street_code": grid[:9] if grid else None,
                "lon": cmd.data.get("lon"),
                "lat": cmd.data.get("lat"),
                "description": str(cmd.data.get("description", ""))[:1000],
                "version": 1,
                **cols,
            },
        )
        seq = 0
    else:
        db.execute(_UPD_CASE, {"p_id": state.id, **cols})
        seq = version  # one event per applied command: the version counts the events so far
    db.execute(
        _INS_EVENT,
        [
            {
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
            for i, ev in enumerate(out.events)
        ],
    )
    old_timers = before.timers if before else {}
    changed = [_timer_row(state.id, t) for name, t in state.timers.items() if old_timers.get(name) != t]
    if changed:  # one upsert for the stopped and the started timer (one round trip on psycopg)
        db.execute(_upsert_timers(_dialect(db)), changed)
    _tasks(db, before, state, cmd, at)


_TASK_TIMER = {Status.VERIFYING: "verify", Status.TO_CHECK: "check"}  # task kind = its timer


def _tasks(db: Db, before: CaseState | None, state: CaseState, cmd: Command, at: datetime) -> None:
    if cmd.action is Action.VERIFY or cmd.action is Action.CHECK:
        kind = "verify" if cmd.action is Action.VERIFY else "check"
        result = bool(cmd.data.get("confirmed" if kind == "verify" else "passed"))
        db.execute(
            _DONE_TASK,
            {"p_case": state.id, "p_kind": kind, "p_actor": cmd.actor.id, "done_at": at, "result": result},
        )
    kind_ = _TASK_TIMER.get(state.status)
    if kind_ is not None and (before is None or before.status != state.status):
        assignee = cmd.data.get("assignee")
        db.execute(
            _INS_TASK,
            {
                "case_id": state.id,
                "kind": kind_,
                "assignee": None if assignee is None else str(assignee),
                "created_at": at,
                "deadline": state.timers[kind_].deadline,
            },
        )


def execute(db: Db, cmd: Command, at: datetime, ctx: Context, source: str = "command") -> CommandResult:
    """Apply one command inside the caller's transaction: write it, or record its rejection.

    ``db`` is a Core connection (fastest; the pipeline's choice) or an ORM session.
    """
    fp = fingerprint(cmd, at)
    # one round trip: the case (locked on PostgreSQL) and whatever already used this key
    row = db.execute(
        _SEL_CASE_AND_KEY_LOCK if _dialect(db) == "postgresql" else _SEL_CASE_AND_KEY,
        {"p_id": cmd.case_id, "p_key": cmd.key or None},
    ).first()
    before, version = (None, 0) if row is None else (state_from_json(row[0]), int(row[1]))
    seen = None
    if cmd.key:
        if row is not None:
            seen = None if row[2] is None else (row[2], row[3])
        else:  # no such case yet (a report): ask about the key alone
            seen = db.execute(_SEL_KEY, {"p_key": cmd.key}).first()
    if seen is not None:
        if seen[0] == fp:
            return CommandResult("duplicate", before if seen[1] == cmd.case_id else load_case(db, seen[1]))
        rej = Rejection(Rule.KEY_CONFLICT, f"idempotency key {cmd.key!r} was used for a different command")
        record_reject(db, source, rej.rule.value, rej.message, _command_json(cmd, at))
        return CommandResult("rejected", before, rejection=rej)
    rejection: Rejection | None = None
    if cmd.action is Action.REPORT and before is None:
        grid = cmd.data.get("grid")
        if grid and db.scalar(_SEL_GRID, {"p_code": str(grid)}) is None:
            rejection = Rejection(Rule.UNKNOWN_GRID, f"unknown grid {grid!r}")
    out = rejection or apply(before, cmd, at, ctx)
    if isinstance(out, Rejection):
        record_reject(db, source, out.rule.value, out.message, _command_json(cmd, at))
        return CommandResult("rejected", before, rejection=out)
    _write(db, before, version, out, cmd, at, fp)
    return CommandResult("applied", out.state, out.events)


def case_events(session: Session, case_id: str) -> list[CaseEventRow]:
    """The event log of a case in order."""
    return list(
        session.scalars(
            select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.seq)
        )
    )
