"""A simulated month: the seeded case flow through the lifecycle, evaluated per CJ/T 292.

``simulate`` runs in memory (no writes): the generator's commands are applied by
:func:`domain.lifecycle.apply` as a consumer would, every event feeds the daily aggregates, and
the result carries the calibration figures and the evaluation tables of streets, departments and
supervisors. Simulated data: everything it prints is labelled 模拟数据.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from domain.evaluation import (
    CaseInfo,
    Counters,
    DailyAggregates,
    ObjectType,
    evaluation_table,
    overdue_unhandled_at,
)
from domain.lifecycle import Accepted, CaseState, Context, Policy, apply
from domain.workcalendar import load_calendar
from feeds.sources.caseflow import generate, summarise
from store.db import session_factory
from store.models import Grid, Street

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimulationReport:
    """What a simulated period produced."""

    start: datetime
    days: int
    commands: int
    figures: dict[str, Any]
    streets: pd.DataFrame
    departments: pd.DataFrame  # the handling units (专业部门), 处置 indicators
    subcentres: pd.DataFrame  # the 街道分中心, 二级派遣 indicators
    supervisors: pd.DataFrame


def supervisor_of_area(area_code: str) -> str:
    """The simulated supervisor who owns a responsibility area (one per area)."""
    return f"sup-{area_code}"


def _geography(engine: Engine) -> tuple[list[str], dict[str, str], dict[str, str], dict[str, int]]:
    with session_factory(engine)() as s:
        rows = s.execute(
            select(Grid.code, Grid.area_code).where(Grid.active).order_by(Grid.area_code, Grid.code)
        ).all()
        names = {r[0]: r[1] for r in s.execute(select(Street.code, Street.name).where(Street.active))}
    grids = [r[0] for r in rows]
    responsible = {r[0]: supervisor_of_area(r[1] or r[0][:9]) for r in rows}
    per_street: dict[str, int] = {}
    for g in grids:
        per_street[g[:9]] = per_street.get(g[:9], 0) + 1
    return grids, responsible, names, per_street


def simulate(
    engine: Engine,
    *,
    days: int,
    start: datetime,
    seed: int = 1,
    reports_per_day: float = 1300,
    edition: str = "cjt214",
    progress: Progress | None = None,
    policy: Policy | None = None,
) -> SimulationReport:
    """Generate ``days`` of cases over the stored district and evaluate them (nothing is written);
    ``policy``: the centre's (the 反馈审核 and 派发核查 steps are simulated when it has them)."""
    grids, responsible, street_names, grids_per_street = _geography(engine)
    if not grids:
        raise LookupError("no district in the store; run: python app.py init")
    catalogue = load_catalogue(edition)
    ctx = Context(catalogue=catalogue, calendar=load_calendar(), policy=policy or Policy())
    flow = generate(
        start,
        days,
        grids,
        ctx,
        seed=seed,
        reports_per_day=reports_per_day,
        supervisors=[responsible[g] for g in grids],  # grid i → its area's supervisor
    )
    aggregates = DailyAggregates(responsible=responsible, tz=ctx.calendar.tz)
    states: dict[str, CaseState] = {}
    infos: dict[str, CaseInfo] = {}
    commands = 0
    horizon = (flow.end - flow.start).total_seconds()
    for cmd, at in flow:
        out = apply(states.get(cmd.case_id), cmd, at, ctx)
        if not isinstance(out, Accepted):  # the generator only yields accepted commands
            raise RuntimeError(f"simulation produced a rejected command: {out}")
        state = out.state
        states[cmd.case_id] = state
        info = infos.get(cmd.case_id)
        if info is None:
            gen = flow.cases[cmd.case_id]
            info = infos[cmd.case_id] = CaseInfo(
                gen.case_id, gen.grid, gen.source, gen.reporter, gen.kind, gen.class_code
            )
        for event in out.events:
            aggregates.add(info, event, state)
        commands += 1
        if progress and commands % 5000 == 0:
            progress(int((at - flow.start).total_seconds()), int(horizon))
    if progress:
        progress(int(horizon), int(horizon))
    first: date = start.astimezone(ctx.calendar.tz).date()
    last = first + timedelta(days=days - 1)
    figures = summarise(states.values(), start=flow.start, end=flow.end, tz=ctx.calendar.tz)
    district = Counters()
    for (kind, _, _), row in aggregates.as_dict().items():
        if kind is ObjectType.DISTRICT:
            district.add(Counters(**row))
    # the centres' optional steps: shares of 处理反馈 sent back, of 核查 tasks issued on time
    reviewed = district.reviewed
    figures["review_returned_share"] = district.review_returned / reviewed if reviewed else 0.0
    figures["check_sent_on_time_share"] = (
        district.check_sent_on_time / district.check_sent if district.check_sent else 0.0
    )
    # 超时未处置 at the end of the simulated period enters 应结案 (CJ/T 292, docs/indicators.md)
    late = [(infos[s.id].street, s.department) for s in states.values() if overdue_unhandled_at(s, flow.end)]
    late_streets, late_departments = Counter(st for st, _ in late), Counter(d for _, d in late if d)
    streets = evaluation_table(
        aggregates, ObjectType.STREET, None, first, last,
        overdue_unhandled=late_streets, grids_per_region=grids_per_street,
    )  # fmt: skip
    streets.insert(1, "name", [street_names.get(c, c) for c in streets["object_id"]])
    departments = evaluation_table(
        aggregates, ObjectType.DEPARTMENT, None, first, last, overdue_unhandled=late_departments
    )
    departments.insert(
        1,
        "name",
        [
            catalogue.departments[c].name if c in catalogue.departments else c
            for c in departments["object_id"]
        ],
    )
    is_sub = departments["object_id"].map(catalogue.is_subcentre).astype(bool)
    subcentres = departments[is_sub].sort_values("object_id")  # not scored (docs/indicators.md)
    supervisors = evaluation_table(aggregates, ObjectType.SUPERVISOR, None, first, last)
    return SimulationReport(
        start=start,
        days=days,
        commands=commands,
        figures=figures,
        streets=streets,
        departments=departments[~is_sub].reset_index(drop=True),
        subcentres=subcentres.reset_index(drop=True),
        supervisors=supervisors,
    )
