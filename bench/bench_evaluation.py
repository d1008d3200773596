"""CJ/T 292 evaluation: live aggregate update per event, and a month of tables for 100,000 cases.

Targets (issue 3): a month of CJ/T 292 tables for a district with 100,000 cases ≤ 2 s from the
daily aggregates; live aggregate update ≤ 1 ms per event.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bench import Result, at_most, print_table, stopwatch
from domain.catalogue import load_catalogue
from domain.city import plan_city
from domain.district import load_district
from domain.evaluation import CaseInfo, DailyAggregates, ObjectType, evaluation_table
from domain.lifecycle import Accepted, CaseEvent, CaseState, Context, apply
from domain.workcalendar import load_calendar
from feeds.sources.caseflow import generate

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 9, 1, tzinfo=TZ)
DAYS = 30
CASES_PER_DAY = 3_350  # 30 days x 3,350 ≈ 100,000 cases


def _records(ctx: Context, grids: list[str], days: int = DAYS, per_day: int = CASES_PER_DAY
             ) -> list[tuple[CaseInfo, CaseEvent, CaseState]]:  # fmt: skip
    """The (case, event, state after) records of a generated month."""
    flow = generate(START, days, grids, ctx, seed=20261127, reports_per_day=per_day, keep=False)
    states: dict[str, CaseState] = {}
    infos: dict[str, CaseInfo] = {}
    out: list[tuple[CaseInfo, CaseEvent, CaseState]] = []
    for cmd, at in flow:
        res = apply(states.get(cmd.case_id), cmd, at, ctx)
        assert isinstance(res, Accepted), res
        states[cmd.case_id] = res.state
        info = infos.get(cmd.case_id)
        if info is None:
            gen = flow.cases[cmd.case_id]
            info = infos[cmd.case_id] = CaseInfo(
                gen.case_id, gen.grid, gen.source, gen.reporter, gen.kind, gen.class_code
            )
        out.extend((info, ev, res.state) for ev in res.events)
    return out


def run(smoke: bool = False) -> list[Result]:
    """Run the evaluation benchmarks and print their table (``smoke``: 3 days of 100 reports)."""
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    plan = plan_city(load_district())
    grids = [g.code for g in plan.grids]
    days, per_day = (3, 100) if smoke else (DAYS, CASES_PER_DAY)
    t0 = time.perf_counter()
    records = _records(ctx, grids, days, per_day)
    setup = time.perf_counter() - t0
    cases = len({r[0].case_id for r in records})
    agg = DailyAggregates(tz=TZ)
    with stopwatch() as t:
        for rec in records:
            agg.add(*rec)
    per_event_ms = t[0] / len(records) * 1e3
    rows = [
        Result(
            "live aggregate update (DailyAggregates.add)",
            len(records),
            t[0],
            "events",
            "≤ 1 ms/event",
            at_most(per_event_ms, 1.0),
            f"{per_event_ms * 1e3:.1f} µs per event; {cases:,} cases, setup {setup:.0f} s (generate + apply)",
        )
    ]
    first = START.date()
    last: date = first + timedelta(days=days - 1)
    agg.rows_read = 0
    with stopwatch() as t:
        tables = {
            kind: evaluation_table(agg, kind, None, first, last)
            for kind in (
                ObjectType.STREET,
                ObjectType.COMMUNITY,
                ObjectType.DEPARTMENT,
                ObjectType.SUPERVISOR,
                ObjectType.ACCEPTOR,
                ObjectType.SHIFT_LEADER,
                ObjectType.DISPATCHER,
            )
        }
    objects = sum(len(v) for v in tables.values())
    rows.append(
        Result(
            "a month of CJ/T 292 tables from the daily aggregates",
            objects,
            t[0],
            "objects",
            "≤ 2 s",
            at_most(t[0], 2.0),
            f"streets, communities, departments, supervisors, acceptors, shift leaders, dispatchers; "
            f"{agg.rows_read:,} daily rows read",
        )
    )
    with stopwatch() as t:
        grid_table = evaluation_table(agg, ObjectType.GRID, None, first, last)
    rows.append(
        Result(
            "the same month for every unit grid",
            len(grid_table),
            t[0],
            "grids",
            "",
            "—",
            "not a target: the drill-down's largest table",
        )
    )
    rebuilt = DailyAggregates(tz=TZ)
    with stopwatch() as t:
        rebuilt.rebuild(records)
    same = rebuilt.as_dict() == agg.as_dict()
    rows.append(
        Result(
            "bulk rebuild from the event log",
            len(records),
            t[0],
            "events",
            "same rows",
            "PASS" if same else "FAIL",
            "rebuild(records) == rows maintained event by event",
        )
    )
    print_table("evaluation: CJ/T 292 aggregates", rows)
    return rows
