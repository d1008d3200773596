"""Persisting the case lifecycle on SQLite and PostgreSQL: one transaction per command."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.lifecycle import Action, Command, Context, Rule, Status, state_from_json, state_to_json
from store.cases import case_events, execute, load_case
from store.db import session_factory, transaction
from store.models import Case, Grid, Reject, StageTimerRow, Task
from tests.test_lifecycle import ACC, CAL, CAT, DEPT, DISP, LEAD, MON, REPORT_PUBLIC, SUP, at

CTX = Context(catalogue=CAT, calendar=CAL)


@pytest.fixture(scope="module")
def engine(city_engine: Engine) -> Engine:
    """The built-in district on SQLite and on PostgreSQL (see conftest)."""
    return city_engine


@pytest.fixture(scope="module")
def grid(engine: Engine) -> str:
    with session_factory(engine)() as s:
        code = s.scalar(select(Grid.code).order_by(Grid.code))
    assert code
    return code


_n = 0


def new_id() -> str:
    global _n
    _n += 1
    return f"T{_n:06d}"


def c(case_id: str, action: Action, actor, opinion: str = "", key: str = "", **data) -> Command:
    return Command(action=action, case_id=case_id, actor=actor, opinion=opinion, data=data, key=key)


def run(engine: Engine, command: Command, when):
    with transaction(engine) as s:
        return execute(s, command, when, CTX)


def test_full_history_is_persisted_with_events_timers_and_tasks(engine: Engine, grid: str) -> None:
    cid = new_id()
    steps = [
        (
            c(cid, Action.REPORT, ACC, key=f"{cid}-1", grid=grid, description="井盖异响", **REPORT_PUBLIC),
            at(0),
        ),
        (c(cid, Action.ACCEPT, ACC, key=f"{cid}-2", assignee="sup-1"), at(5)),
        (c(cid, Action.VERIFY, SUP, key=f"{cid}-3", confirmed=True), at(20)),
        (c(cid, Action.FILE, LEAD, key=f"{cid}-4"), at(30)),
        (c(cid, Action.DISPATCH, DISP, key=f"{cid}-5"), at(40)),
        (c(cid, Action.FEEDBACK, DEPT, "已修复", key=f"{cid}-6"), at(200)),
        (c(cid, Action.CHECK, SUP, key=f"{cid}-7", passed=True), at(220)),
        (c(cid, Action.CLOSE, LEAD, key=f"{cid}-8"), at(230)),
    ]
    for command, when in steps:
        assert run(engine, command, when).outcome == "applied"
    with session_factory(engine)() as s:
        row = s.get(Case, cid)
        assert row is not None
        assert (row.status, row.stage, row.open, row.archive) == ("closed", None, False, "normal")
        assert row.grid_code == grid and row.street_code == grid[:9] and row.community_code == grid[:12]
        assert row.department_code == "10" and row.version == len(steps)
        assert row.reported_at == MON and row.closed_at == at(230)
        events = case_events(s, cid)
        assert [e.action for e in events] == [cmd.action.value for cmd, _ in steps]
        assert [e.seq for e in events] == list(range(len(steps)))
        assert [e.to_status for e in events][-1] == "closed"
        timers = {t.stage: t for t in s.scalars(select(StageTimerRow).where(StageTimerRow.case_id == cid))}
        assert set(timers) == {"accept", "verify", "file", "dispatch", "handle", "check", "close"}
        assert timers["handle"].ended_at == at(200) and timers["handle"].overdue is False
        assert timers["accept"].deadline == MON + timedelta(minutes=15)
        tasks = s.scalars(select(Task).where(Task.case_id == cid).order_by(Task.id)).all()
        assert [(t.kind, t.result, t.done_at) for t in tasks] == [
            ("verify", True, at(20)),
            ("check", True, at(220)),
        ]
        assert tasks[0].assignee == "sup-1"
        # the JSON snapshot is the exact lifecycle state
        state = load_case(s, cid)
        assert state is not None and state_from_json(state_to_json(state)) == state
        assert state.status is Status.CLOSED


def test_repeated_key_is_a_no_op_and_a_conflicting_key_is_rejected(engine: Engine, grid: str) -> None:
    cid = new_id()
    report = c(
        cid, Action.REPORT, SUP, key=f"{cid}-r", grid=grid, **{**REPORT_PUBLIC, "source": "supervisor"}
    )
    assert run(engine, report, at(0)).outcome == "applied"
    again = run(engine, report, at(0))
    assert again.outcome == "duplicate" and again.case is not None and again.case.id == cid
    other = c(cid, Action.ACCEPT, ACC, key=f"{cid}-r")
    res = run(engine, other, at(1))
    assert res.outcome == "rejected" and res.rejection is not None and res.rejection.rule is Rule.KEY_CONFLICT
    with session_factory(engine)() as s:
        assert len(case_events(s, cid)) == 1
        assert s.get(Case, cid).status == "reported"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (
            lambda cid, grid: c(cid, Action.REPORT, ACC, grid="110101999999999", **REPORT_PUBLIC),
            Rule.UNKNOWN_GRID,
        ),
        (
            lambda cid, grid: c(
                cid, Action.REPORT, ACC, grid=grid, **{**REPORT_PUBLIC, "class_code": "0199"}
            ),
            Rule.UNKNOWN_CLASS,
        ),
        (lambda cid, grid: c(cid, Action.ACCEPT, ACC), Rule.NO_CASE),
    ],
)
def test_bad_input_is_rejected_recorded_and_changes_nothing(engine: Engine, grid: str, command, rule) -> None:
    cid = new_id()
    with session_factory(engine)() as s:
        before = s.scalar(select(func.count()).select_from(Reject)) or 0
    res = run(engine, command(cid, grid), at(0))
    assert res.outcome == "rejected" and res.rejection is not None and res.rejection.rule is rule
    with session_factory(engine)() as s:
        assert s.get(Case, cid) is None
        rows = s.scalars(select(Reject).order_by(Reject.id.desc())).all()
        assert len(rows) == before + 1
        assert rows[0].reason == rule.value and rows[0].payload["case_id"] == cid


def test_command_for_closed_case_and_instant_before_case_are_rejected(engine: Engine, grid: str) -> None:
    cid = new_id()
    sup_report = {**REPORT_PUBLIC, "source": "supervisor"}
    assert run(engine, c(cid, Action.REPORT, SUP, grid=grid, **sup_report), at(10)).outcome == "applied"
    res = run(engine, c(cid, Action.ACCEPT, ACC), at(5))
    assert res.rejection is not None and res.rejection.rule is Rule.BEFORE_CASE
    assert run(engine, c(cid, Action.ACCEPT, ACC), at(11)).outcome == "applied"
    assert run(engine, c(cid, Action.VOID, LEAD, "重复"), at(12)).outcome == "applied"
    res = run(engine, c(cid, Action.URGE, LEAD, "x"), at(13))
    assert res.rejection is not None and res.rejection.rule is Rule.CASE_CLOSED
    with session_factory(engine)() as s:
        row = s.get(Case, cid)
        assert row is not None and row.status == "voided" and row.version == 3


def test_a_failing_write_leaves_nothing_behind(engine: Engine, grid: str, tmp_path: Path) -> None:
    cid = new_id()
    sup_report = {**REPORT_PUBLIC, "source": "supervisor"}
    with pytest.raises(RuntimeError), transaction(engine) as s:
        execute(s, c(cid, Action.REPORT, SUP, grid=grid, **sup_report), at(0), CTX)
        raise RuntimeError("crash after the write, before the commit")
    with session_factory(engine)() as s:
        assert s.get(Case, cid) is None
        assert case_events(s, cid) == []
