"""Case lifecycle: pure transitions, and commands persisted one transaction each (SQLite, PostgreSQL).

Targets (issue 3): pure transitions ≥ 50,000 commands/s; persisted ≥ 1,000/s on SQLite and
≥ 500/s on PostgreSQL over one connection.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import SKIP, Result, at_least, print_table, stopwatch
from domain.catalogue import load_catalogue
from domain.lifecycle import Accepted, Action, Actor, Command, Context, Role, apply
from domain.workcalendar import load_calendar

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 9, 22, 8, 0, tzinfo=TZ)  # a Monday
PG_URL = (
    os.environ.get("GW_BENCH_PG")
    or os.environ.get("GW_TEST_PG")
    or "postgresql+psycopg://root@127.0.0.1:5432/test"
)

SUP = Actor("sup-1", Role.SUPERVISOR)
ACC = Actor("acc-1", Role.ACCEPTOR)
LEAD = Actor("lead-1", Role.SHIFT_LEADER)
DISP = Actor("disp-1", Role.DISPATCHER)
DEPT = Actor("dept-10", Role.DEPARTMENT, department="10")


def _history(case_id: str, t0: datetime, variant: int) -> list[tuple[Command, datetime]]:
    """One realistic case history; the variant picks a side path (verify, return, rework, …)."""
    n = 0

    def c(
        action: Action, actor: Actor, minutes: float, opinion: str = "", **data: object
    ) -> tuple[Command, datetime]:
        nonlocal n
        n += 1
        cmd = Command(action, case_id, actor, opinion, data, key=f"{case_id}-{n}")
        return cmd, t0 + timedelta(minutes=minutes)

    public = variant % 3 == 0
    source = "hotline" if public else "supervisor"
    report = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": source}
    steps = [c(Action.REPORT, ACC if public else SUP, 0, **report), c(Action.ACCEPT, ACC, 3)]
    if public:
        steps.append(c(Action.VERIFY, SUP, 20, confirmed=True))
    steps += [c(Action.FILE, LEAD, 25), c(Action.DISPATCH, DISP, 30)]
    if variant % 10 == 1:
        steps += [
            c(Action.REQUEST_RETURN, DEPT, 35, "非本单位"),
            c(Action.APPROVE, DISP, 40),
            c(Action.DISPATCH, DISP, 45),
        ]
    if variant % 10 == 2:
        steps += [c(Action.REQUEST_EXTENSION, DEPT, 50, "协调", extra="1工作日"), c(Action.APPROVE, DISP, 55)]
    steps.append(c(Action.FEEDBACK, DEPT, 240, "已处置"))
    if variant % 10 == 3:
        steps += [c(Action.CHECK, SUP, 260, "未修复", passed=False), c(Action.FEEDBACK, DEPT, 400, "已返工")]
    steps += [c(Action.CHECK, SUP, 420, passed=True), c(Action.CLOSE, LEAD, 430)]
    return steps


def histories(cases: int) -> Iterator[list[tuple[Command, datetime]]]:
    """``cases`` histories starting a minute apart."""
    for i in range(cases):
        yield _history(f"B{i:07d}", START + timedelta(minutes=i), i)


def _pure(ctx: Context, cases: int) -> Result:
    all_h = list(histories(cases))
    n = sum(len(h) for h in all_h)
    with stopwatch() as t:
        for h in all_h:
            state = None
            for cmd, at in h:
                out = apply(state, cmd, at, ctx)
                assert isinstance(out, Accepted), out
                state = out.state
    rate = n / t[0]
    return Result(
        "pure transitions (domain.lifecycle.apply)",
        n,
        t[0],
        "commands",
        "≥ 50,000/s",
        at_least(rate, 50_000),
        f"{cases:,} case histories, mixed side paths",
    )


def _persisted(ctx: Context, url: str, label: str, target: float, cases: int, setting: str) -> Result:
    from store.cases import execute, sync_departments
    from store.db import create_engine, transaction
    from store.migrate import upgrade

    engine = create_engine(url)
    upgrade(engine)
    with transaction(engine) as s:
        sync_departments(s, ctx.catalogue)
    cmds = [step for h in histories(cases) for step in h]
    cmds.sort(key=lambda step: step[1])  # interleaved as they would arrive
    with stopwatch() as t, engine.connect() as conn:  # one connection
        for cmd, at in cmds:
            with conn.begin():  # one transaction per command
                res = execute(conn, cmd, at, ctx)
            assert res.outcome == "applied", res
    engine.dispose()
    rate = len(cmds) / t[0]
    return Result(
        f"persisted, one transaction per command: {label}",
        len(cmds),
        t[0],
        "commands",
        f"≥ {target:,.0f}/s",
        at_least(rate, target),
        setting,
    )


def run(smoke: bool = False) -> list[Result]:
    """Run the lifecycle benchmarks and print their table (``smoke``: 200 and 50 histories)."""
    import sqlalchemy as sa

    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    pure, sqlite, pg = (200, 50, 50) if smoke else (20_000, 1_500, 1_000)
    rows = [_pure(ctx, pure)]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows.append(_persisted(ctx, url, "SQLite", 1_000, sqlite, "WAL, synchronous=NORMAL, BEGIN IMMEDIATE"))
    admin = sa.create_engine(PG_URL)
    schema = f"gw_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
    except sa.exc.OperationalError as exc:  # no server: skip; anything else is a broken benchmark
        admin.dispose()
        rows.append(Result("persisted: PostgreSQL", None, None, status=SKIP, notes=str(exc)[:80]))
    else:
        try:
            rows.append(
                _persisted(
                    ctx,
                    f"{PG_URL}?options=-csearch_path%3D{schema}",
                    "PostgreSQL",
                    500,
                    pg,
                    f"synchronous_commit={sync} (server default)",
                )
            )
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()
    print_table("lifecycle: case commands", rows)
    return rows
