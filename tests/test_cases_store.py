"""Persisting the case lifecycle on SQLite and PostgreSQL: one transaction per command."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from domain.lifecycle import Action, Command, Context, Rule, Status, state_from_json, state_to_json
from store.cases import case_events, execute, load_case
from store.db import session_factory, transaction
from store.models import Case, Department, Grid, Reject, StageTimerRow, Task
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


def _history(cid: str, grid: str) -> list[tuple[Command, datetime]]:
    """A public report through verify, a return, an extension, a suspension, a rework and a close."""
    place: dict[str, Any] = {"grid": grid, "description": "井盖异响", "lon": 116.4, "lat": 39.9}
    steps = [
        (c(cid, Action.REPORT, ACC, **place, **REPORT_PUBLIC), 0),
        (c(cid, Action.ACCEPT, ACC, assignee="sup-1"), 5),
        (c(cid, Action.VERIFY, SUP, confirmed=True), 20),
        (c(cid, Action.FILE, LEAD), 30),
        (c(cid, Action.DISPATCH, DISP), 40),
        (c(cid, Action.REQUEST_RETURN, DEPT, "非本单位"), 45),
        (c(cid, Action.APPROVE, DISP), 50),
        (c(cid, Action.DISPATCH, DISP), 55),
        (c(cid, Action.REQUEST_EXTENSION, DEPT, "协调", extra="1工作日"), 60),
        (c(cid, Action.APPROVE, DISP), 65),
        (c(cid, Action.REQUEST_SUSPENSION, DEPT, "等待审批"), 70),
        (c(cid, Action.APPROVE, DISP), 75),
        (c(cid, Action.RESUME, DISP), 3000),
        (c(cid, Action.URGE, LEAD, "尽快"), 3010),
        (c(cid, Action.FEEDBACK, DEPT, "已处置", assignee="sup-1"), 3100),
        (c(cid, Action.CHECK, SUP, "未修复", passed=False), 3120),
        (c(cid, Action.FEEDBACK, DEPT, "已返工"), 3200),
        (c(cid, Action.CHECK, SUP, passed=True), 3220),
        (c(cid, Action.CLOSE, LEAD), 3230),
    ]
    return [(replace(cmd, key=f"{cid}-{i}"), at(m)) for i, (cmd, m) in enumerate(steps)]


def _stored(engine: Engine, cid: str) -> dict[str, list[tuple]]:
    """The rows of one case in every table the command path writes, as they were stored."""
    q = {
        "cases": "SELECT * FROM cases WHERE id = :c",
        "case_events": "SELECT * FROM case_events WHERE case_id = :c ORDER BY seq",
        "stage_timers": "SELECT * FROM stage_timers WHERE case_id = :c ORDER BY stage",
        "tasks": "SELECT * FROM tasks WHERE case_id = :c ORDER BY id",
    }
    with engine.connect() as conn:
        out = {}
        for table, sql in q.items():
            result = conn.execute(text(sql), {"c": cid})
            keys = list(result.keys())
            out[table] = [
                tuple(
                    json.dumps(v, sort_keys=True).replace(cid, "<id>") if isinstance(v, dict)
                    else v.replace(cid, "<id>") if isinstance(v, str)
                    else v
                    for k, v in zip(keys, row, strict=True)
                    if k not in ("id", "fingerprint")
                )
                for row in result
            ]  # fmt: skip
        return out


def test_core_connection_and_session_write_the_same_rows(engine: Engine, grid: str) -> None:
    a, b = new_id(), new_id()
    for command, when in _history(a, grid):
        with engine.connect() as conn, conn.begin():  # the pipeline's way: a Core connection
            assert execute(conn, command, when, CTX).outcome == "applied", command
    for command, when in _history(b, grid):
        assert run(engine, command, when).outcome == "applied", command  # an ORM session
    rows_a, rows_b = _stored(engine, a), _stored(engine, b)
    for table in rows_a:  # the same history under another id: the same rows but for ids and fingerprints
        assert rows_a[table] == rows_b[table], table
    with session_factory(engine)() as s:
        row = s.get(Case, a)
        assert row is not None and row.version == len(_history(a, grid)) and row.archive == "normal"
        assert (row.lon, row.lat, row.description, row.reworks, row.returns, row.urges) == (
            116.4, 39.9, "井盖异响", 1, 1, 1,
        )  # fmt: skip
        state = load_case(s, a)
        assert state is not None and state_to_json(state) == row.state
        assert state.extensions == 1 and state.suspensions == 1 and state.dispatches == 2
        timers = {t.stage: t for t in s.scalars(select(StageTimerRow).where(StageTimerRow.case_id == a))}
        for name, t in state.timers.items():  # the timer rows agree with the snapshot
            assert (timers[name].deadline, timers[name].ended_at) == (t.deadline, t.ended_at), name
            assert (timers[name].paused_seconds, timers[name].limit_value) == (
                t.paused_seconds,
                t.limit.value,
            )
        tasks = s.scalars(select(Task).where(Task.case_id == a).order_by(Task.id)).all()
        assert [(t.kind, t.result, t.assignee) for t in tasks] == [
            ("verify", True, "sup-1"),
            ("check", False, "sup-1"),
            ("check", True, "sup-1"),
        ]


def test_sqlite_datetime_text_is_what_sqlalchemy_stores() -> None:
    from sqlalchemy.dialects import sqlite

    from store.cases import sqlite_utc_text
    from store.db import UTCDateTime

    dialect = sqlite.dialect()
    core = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert core is not None
    for value in (
        at(0),
        at(0).replace(microsecond=1),
        at(0).astimezone(UTC),
        at(0).astimezone(ZoneInfo("UTC")),
        datetime(1, 1, 2, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/New_York")),
    ):
        assert sqlite_utc_text(value) == core(value), value
    assert sqlite_utc_text(None) is None
    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(datetime(2025, 1, 1))


def test_a_command_is_one_read_and_one_write_on_postgresql(engine: Engine, grid: str) -> None:
    """PostgreSQL: one data-modifying statement for all writes; SQLite: one statement per table."""
    postgres = engine.dialect.name == "postgresql"
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for command, when in _history(new_id(), grid):
            statements.clear()
            with engine.connect() as conn, conn.begin():
                assert execute(conn, command, when, CTX).outcome == "applied"
            expected = {2} if postgres else {3, 4, 5}  # the read, the case, its event, timers, a task
            assert len(statements) in expected, (command.action, statements)
        statements.clear()
        with engine.connect() as conn, conn.begin():  # a repeat is one read
            assert execute(conn, command, when, CTX).outcome == "duplicate"
        assert len(statements) == 1
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_sessions_pending_rows_are_flushed_first_as_session_execute_would(engine: Engine) -> None:
    cid = new_id()
    with session_factory(engine)() as s:  # closed without a commit: nothing stays
        s.add(Department(code=f"Z{cid}", name="待建部门"))
        report = c(cid, Action.REPORT, SUP, **{**REPORT_PUBLIC, "source": "supervisor"})
        assert execute(s, report, at(0), CTX).outcome == "applied"
        found = s.connection().execute(text("SELECT code FROM departments WHERE code = :c"), {"c": f"Z{cid}"})
        assert found.scalar() == f"Z{cid}"
