"""CJ/T 292 aggregates from the store: replay the append-only case-event log.

The log keeps every accepted command (action, actor, role, opinion, data, instant). Replaying a
case's events through :func:`domain.lifecycle.apply` gives back the state after each event, which
the daily aggregates need for their on-time decisions; so a bulk rebuild from the stored log gives
the same rows as aggregates maintained event by event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.evaluation import CaseInfo, DailyAggregates, Record
from domain.lifecycle import Accepted, Action, Actor, CaseState, Command, Context, Role, Source, apply
from store.db import session_factory
from store.models import Case, CaseEventRow


class LogReplayError(RuntimeError):
    """The stored log does not replay: it was edited, or the catalogue/calendar changed."""


def _command(row: Any, state: CaseState | None) -> Command:
    role = Role(row.action_role)
    department = state.department if role is Role.DEPARTMENT and state is not None else None
    return Command(
        action=Action(row.action),
        case_id=row.case_id,
        actor=Actor(row.actor, role, department),
        opinion=row.opinion,
        data=dict(row.data or {}),
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
