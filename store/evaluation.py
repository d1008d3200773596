"""CJ/T 292 aggregates from the store: replay the append-only case-event log.

The log keeps every accepted command (action, actor, role, opinion, data, instant). Replaying a
case's events through :func:`domain.lifecycle.apply` gives back the state after each event, which
the daily aggregates need for their on-time decisions; so a bulk rebuild from the stored log gives
the same rows as aggregates maintained event by event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from domain.evaluation import REGION_TYPES, CaseInfo, DailyAggregates, ObjectType, Record
from domain.lifecycle import (
    T_HANDLE,
    Accepted,
    Action,
    Actor,
    CaseState,
    Command,
    Context,
    Role,
    Source,
    apply,
)
from store.db import session_factory
from store.models import Case, CaseEventRow, StageTimerRow


class LogReplayError(RuntimeError):
    """The stored log does not replay: it was edited, or the catalogue/calendar changed."""


def acting_department(action: Action, data: Mapping[str, Any], state: CaseState | None) -> str | None:
    """The department a stored department event was given by (the log keeps the person, not their
    department): a sub-centre's decision on its unit's request is the sub-centre's; a 督办回复 is the
    department its 督办单 went to; anything else, the department holding the case."""
    if state is None:
        return None
    if action in (Action.APPROVE, Action.REJECT) and state.subcentre is not None:
        return state.subcentre
    if action is Action.URGE_REPLY and data.get("order") is not None:
        for o in state.orders:
            if str(o.no) == str(data["order"]):
                return o.target
    return state.department


def _command(row: Any, state: CaseState | None) -> Command:
    role = Role(row.action_role)
    action = Action(row.action)
    data = dict(row.data or {})
    department = acting_department(action, data, state) if role is Role.DEPARTMENT else None
    return Command(
        action=action,
        case_id=row.case_id,
        actor=Actor(row.actor, role, department),
        opinion=row.opinion,
        data=data,
        key=row.key or "",
    )


# the columns ``replay`` reads of each stored event
EVENT_COLUMNS = (
    CaseEventRow.id, CaseEventRow.case_id, CaseEventRow.action, CaseEventRow.actor,
    CaseEventRow.role.label("action_role"), CaseEventRow.opinion, CaseEventRow.data, CaseEventRow.key,
    CaseEventRow.at,
)  # fmt: skip


def replay(
    rows: Iterable[Any], grids: Mapping[str, str | None], ctx: Context, counts: Callable[[int], bool]
) -> Iterator[Record]:
    """``(CaseInfo, CaseEvent, state after)`` of the stored events whose id ``counts``.

    ``rows`` (columns of ``EVENT_COLUMNS``) are whole case logs, each case's events in order; the
    other events are replayed for the state only. A case without a grid ("needs location") is in no
    region yet: none of its events count.
    """
    state: CaseState | None = None
    info: CaseInfo | None = None
    current = None
    for row in rows:
        if row.case_id != current:
            current, state, info = row.case_id, None, None
        out = apply(state, _command(row, state), row.at, ctx)
        if not isinstance(out, Accepted):
            raise LogReplayError(f"case {row.case_id}: stored {row.action} no longer applies: {out.message}")
        state = out.state
        if not counts(row.id):
            continue
        if info is None:
            grid = grids.get(row.case_id)
            if not grid:
                continue
            info = CaseInfo(
                state.id, grid, Source(state.source), state.reporter, state.kind, state.class_code
            )
        for event in out.events:
            yield info, event, state


def case_records(engine: Engine, ctx: Context) -> Iterator[Record]:
    """``(CaseInfo, CaseEvent, state after)`` for every stored event, each case in order."""
    with session_factory(engine)() as s:
        grids: Mapping[str, str | None] = {r[0]: r[1] for r in s.execute(select(Case.id, Case.grid_code))}
        rows = s.execute(select(*EVENT_COLUMNS).order_by(CaseEventRow.case_id, CaseEventRow.seq))
        yield from replay(rows, grids, ctx, lambda _: True)


def rebuild_aggregates(
    engine: Engine, ctx: Context, responsible: Mapping[str, str] | None = None
) -> DailyAggregates:
    """Daily aggregates rebuilt from the whole stored event log."""
    agg = DailyAggregates(responsible=responsible, tz=ctx.calendar.tz)
    agg.rebuild(case_records(engine, ctx))
    return agg


def overdue_unhandled(conn: Connection, kind: ObjectType, now: datetime) -> dict[str, int]:
    """超时未处置数 at ``now`` (the present, or a period's end) of the cases whose handling clock still
    runs: open, the clock neither ended nor paused, its deadline before ``now``, and no change of the
    case since ``now`` (a case that changed since is counted, if it was late then, by the daily
    counters' ``overdue_eod`` of that day). Per object of a level."""
    if kind is ObjectType.DEPARTMENT:
        key: Any = Case.department_code
    elif kind in REGION_TYPES:
        key = Case.grid_code
    else:
        return {}
    q = (
        select(key, func.count())
        .join(StageTimerRow, StageTimerRow.case_id == Case.id)
        .where(
            Case.open,
            StageTimerRow.stage == T_HANDLE,
            StageTimerRow.ended_at.is_(None),
            StageTimerRow.paused_since.is_(None),
            StageTimerRow.deadline < now,
            Case.updated_at <= now,
        )
        .group_by(key)
    )
    out: dict[str, int] = {}
    width = {ObjectType.GRID: 15, ObjectType.COMMUNITY: 12, ObjectType.STREET: 9, ObjectType.DISTRICT: 6}
    for k, n in conn.execute(q):
        if k is None:
            continue
        oid = str(k)[: width[kind]] if kind in width else str(k)
        out[oid] = out.get(oid, 0) + int(n)
    return out
