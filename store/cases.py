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

from sqlalchemy import func, insert, select, update
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


def load_case(session: Session, case_id: str, *, for_update: bool = False) -> CaseState | None:
    """The lifecycle state of a case, or None."""
    q = select(Case.state).where(Case.id == case_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    raw = session.scalar(q)
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


def record_reject(
    session: Session, source: str, reason: str, message: str, payload: Mapping[str, Any]
) -> None:
    """Append a dead-letter record."""
    session.execute(
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


def _write(
    session: Session, before: CaseState | None, out: Accepted, cmd: Command, at: datetime, fp: str
) -> None:
    state = out.state
    cols = _case_columns(state)
    if before is None:
        grid = str(cmd.data.get("grid") or "") or None
        session.execute(
            insert(Case).values(
                id=state.id,
                grid_code=grid,
                community_code=grid[:12] if grid else None,
                street_code=grid[:9] if grid else None,
                lon=cmd.data.get("lon"),
                lat=cmd.data.get("lat"),
                description=str(cmd.data.get("description", ""))[:1000],
                version=1,
                **cols,
            )
        )
        seq = 0
    else:
        session.execute(update(Case).where(Case.id == state.id).values(version=Case.version + 1, **cols))
        seq = int(
            session.scalar(
                select(func.count()).select_from(CaseEventRow).where(CaseEventRow.case_id == state.id)
            )
            or 0
        )
    session.execute(
        insert(CaseEventRow),
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
                "data": {
                    k: (v if isinstance(v, str | int | float | bool | None) else str(v))
                    for k, v in ev.data.items()
                },
                "key": ev.key or None,
                "fingerprint": fp,
            }
            for i, ev in enumerate(out.events)
        ],
    )
    old_timers = before.timers if before else {}
    changed = [t for name, t in state.timers.items() if old_timers.get(name) != t]
    for t in changed:
        row = _timer_row(state.id, t)
        if t.stage in old_timers:
            session.execute(
                update(StageTimerRow)
                .where(StageTimerRow.case_id == state.id, StageTimerRow.stage == t.stage)
                .values(**{k: v for k, v in row.items() if k not in ("case_id", "stage")})
            )
        else:
            session.execute(insert(StageTimerRow).values(**row))
    _tasks(session, before, state, cmd, at)


_TASK_OF = {Status.VERIFYING: ("verify", "verify"), Status.TO_CHECK: ("check", "check")}


def _tasks(session: Session, before: CaseState | None, state: CaseState, cmd: Command, at: datetime) -> None:
    if cmd.action in (Action.VERIFY, Action.CHECK):
        kind = "verify" if cmd.action is Action.VERIFY else "check"
        result = bool(cmd.data.get("confirmed" if kind == "verify" else "passed"))
        session.execute(
            update(Task)
            .where(Task.case_id == state.id, Task.kind == kind, Task.done_at.is_(None))
            .values(done_at=at, result=result, assignee=func.coalesce(Task.assignee, cmd.actor.id))
        )
    entered = state.status in _TASK_OF and (before is None or before.status != state.status)
    if entered:
        kind, timer = _TASK_OF[state.status]
        t = state.timers[timer]
        assignee = cmd.data.get("assignee")
        session.execute(
            insert(Task).values(
                case_id=state.id,
                kind=kind,
                assignee=None if assignee is None else str(assignee),
                created_at=at,
                deadline=t.deadline,
            )
        )


def execute(
    session: Session, cmd: Command, at: datetime, ctx: Context, source: str = "command"
) -> CommandResult:
    """Apply one command inside the caller's transaction: write it, or record its rejection."""
    fp = fingerprint(cmd, at)
    if cmd.key:
        seen = session.execute(
            select(CaseEventRow.fingerprint, CaseEventRow.case_id).where(CaseEventRow.key == cmd.key)
        ).first()
        if seen is not None:
            if seen[0] == fp:
                return CommandResult("duplicate", load_case(session, seen[1]))
            rej = Rejection(
                Rule.KEY_CONFLICT, f"idempotency key {cmd.key!r} was used for a different command"
            )
            record_reject(session, source, rej.rule.value, rej.message, _command_json(cmd, at))
            return CommandResult("rejected", load_case(session, cmd.case_id), rejection=rej)
    before = load_case(session, cmd.case_id, for_update=True)
    rejection: Rejection | None = None
    if cmd.action is Action.REPORT and before is None:
        grid = cmd.data.get("grid")
        if grid and session.get(Grid, str(grid)) is None:
            rejection = Rejection(Rule.UNKNOWN_GRID, f"unknown grid {grid!r}")
    out = rejection or apply(before, cmd, at, ctx)
    if isinstance(out, Rejection):
        record_reject(session, source, out.rule.value, out.message, _command_json(cmd, at))
        return CommandResult("rejected", before, rejection=out)
    _write(session, before, out, cmd, at, fp)
    return CommandResult("applied", out.state, out.events)


def case_events(session: Session, case_id: str) -> list[CaseEventRow]:
    """The event log of a case in order."""
    return list(
        session.scalars(
            select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.seq)
        )
    )
