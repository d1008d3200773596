"""Persisted CJ/T 292 daily counters: saved as events happen, equal to a rebuild, reloaded on start."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from domain.evaluation import ObjectType
from domain.lifecycle import Context
from domain.workcalendar import load_calendar
from feeds.chores import grids_per_street
from feeds.counters import CounterKeeper, DailyCounters, LogFollower, street_ranking
from feeds.sources.caseflow import generate
from store.cases import execute
from store.counters import MARK, load_or_rebuild, load_rows
from store.evaluation import rebuild_aggregates
from store.models import CounterMark, DailyCounter, Grid


def _responsible(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {g: f"sup-{a}" for g, a in conn.execute(select(Grid.code, Grid.area_code)) if a}


def _run(engine: Engine, ctx: Context, keeper: CounterKeeper, *, day: int, save: bool) -> int:
    """A day of generated commands through the command path, each committed, then counted."""
    responsible = _responsible(engine)
    grids = sorted(responsible)[:400]
    flow = generate(
        datetime(2026, 11, day, tzinfo=UTC), 1, grids, ctx, seed=day, reports_per_day=150,
        supervisors=[responsible[g] for g in grids],
    )  # fmt: skip
    n = 0
    for cmd, at in flow:
        with engine.begin() as conn:
            result = execute(conn, cmd, at, ctx)
        assert result.outcome == "applied", result
        grid = str(cmd.data["grid"]) if cmd.action.value == "report" else None
        keeper.add(result.case, result.events, grid)  # type: ignore[arg-type]
        n += len(result.events)
    if save:
        keeper.save(force=True)
    return n


def _stored(engine: Engine) -> dict[Any, dict[str, int]]:
    with engine.connect() as conn:
        rows, _, _ = load_rows(conn)
    return {k: v for k, v in rows}


def test_daily_counters_are_saved_reloaded_and_rebuilt(city_engine: Engine) -> None:
    engine = city_engine
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    responsible = _responsible(engine)
    agg, rebuilt = load_or_rebuild(engine, ctx, responsible)  # empty log: nothing to load
    keeper = CounterKeeper(engine, agg, save_every=3600)
    events = _run(engine, ctx, keeper, day=2, save=True)
    assert events > 500
    truth = rebuild_aggregates(engine, ctx, responsible).as_dict()
    assert _stored(engine) == truth  # saved rows equal a rebuild from the log
    with engine.connect() as conn:
        assert len(conn.execute(select(DailyCounter.object_id)).all()) == len(truth)
        # a stored row holds its non-zero counters only (a grid-day sets a few of the 43)
        stored = [dict(c) for c in conn.scalars(select(DailyCounter.counts))]
    assert stored and all(n != 0 for c in stored for n in c.values())
    assert sum(map(len, stored)) < 0.5 * len(stored) * len(next(iter(truth.values())))
    # a restart loads the rows (no rebuild) and continues from them
    again, rebuilt = load_or_rebuild(engine, ctx, responsible)
    assert not rebuilt
    assert again.as_dict() == truth
    keeper = CounterKeeper(engine, again, save_every=3600)
    _run(engine, ctx, keeper, day=10, save=True)
    assert _stored(engine) == rebuild_aggregates(engine, ctx, responsible).as_dict()
    # events committed but never saved (a crash): the next start sees the mark behind and rebuilds
    _run(engine, ctx, CounterKeeper(engine, again, save_every=3600), day=20, save=False)
    healed, rebuilt = load_or_rebuild(engine, ctx, responsible)
    assert rebuilt
    truth = rebuild_aggregates(engine, ctx, responsible).as_dict()
    assert healed.as_dict() == truth
    assert _stored(engine) == truth
    # rows saved under an older definition of the counters (version 1's mark, "daily"; a row counted
    # the old way): the next start rebuilds them, and only the current version's mark is left
    with engine.begin() as conn:
        conn.execute(update(CounterMark).where(CounterMark.name == MARK).values(name="daily"))
        conn.execute(update(DailyCounter).values(counts={"voided": 99}))
    old, rebuilt = load_or_rebuild(engine, ctx, responsible)
    assert rebuilt and old.as_dict() == truth and _stored(engine) == truth
    with engine.connect() as conn:
        assert set(conn.scalars(select(CounterMark.name).where(CounterMark.name.like("daily%")))) == {MARK}


def test_both_keepers_read_the_same_through_the_daily_counters_interface(city_engine: Engine) -> None:
    """The embedded keeper (fed by the writer) and the scale-out follower (reading the case log) are
    both ``DailyCounters``: the desk's tables, a grid's period counts and the ranking agree."""
    engine = city_engine
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    responsible = _responsible(engine)
    agg, _ = load_or_rebuild(engine, ctx, responsible)
    keeper = CounterKeeper(engine, agg, save_every=3600)
    _run(engine, ctx, keeper, day=25, save=False)  # (days 2, 10 and 20 are the test above's)
    follower = LogFollower(engine, ctx, responsible)
    follower.start()
    follower.follow()
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    grids = sorted(responsible)[:400]  # the ones _run reports in
    busy = [g for g in grids if keeper.period(ObjectType.GRID, g, start, end).reported]
    assert busy  # the day's reports fell in these grids
    per_street = grids_per_street(responsible)
    streets = sorted(per_street)
    counters: list[DailyCounters] = [keeper, follower]  # the desk reads either through this interface
    periods, tables, rankings = (
        [[c.period(ObjectType.GRID, g, start, end) for g in busy] for c in counters],
        [c.table(ObjectType.STREET, streets, start, end, per_street) for c in counters],
        [c.street_ranking(datetime(2026, 11, 26, 4, tzinfo=UTC), per_street) for c in counters],
    )
    assert periods[0] == periods[1]
    pd.testing.assert_frame_equal(tables[0], tables[1])  # NaN rates (nothing to divide) compare equal
    assert rankings[0] == rankings[1]
    # 超时未处置 enters a street's 应结案 (CJ/T 292): 40 cases handling late lower its closing rates
    top = max(streets, key=lambda s: keeper.period(ObjectType.STREET, s, start, end).handled)
    plain, late = (
        {r["code"]: r["score"] for r in street_ranking(keeper.aggregates, date(2026, 11, 26), per_street, o)}
        for o in (None, {top: 40})
    )
    assert plain[top] is not None and late[top] is not None and late[top] < plain[top]
    assert {k: v for k, v in late.items() if k != top} == {k: v for k, v in plain.items() if k != top}


def test_the_follower_counts_a_located_case_s_report_in_its_grid(city_engine: Engine) -> None:
    """Scale-out (issue 17): a report with only an address is in no region; when a 定位 gives it a grid
    the aggregator's follower counts its report there, as the embedded keeper and a rebuild do."""
    from dataclasses import replace

    from domain.lifecycle import Action, Actor, Command, Role

    engine = city_engine
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    responsible = _responsible(engine)
    grids = sorted(responsible)[:400]
    follower = LogFollower(engine, ctx, responsible)
    follower.start()
    flow = generate(datetime(2026, 11, 28, tzinfo=UTC), 1, grids, ctx, seed=28, reports_per_day=20,
                    supervisors=[responsible[g] for g in grids])  # fmt: skip
    cmd, at = next((c, a) for c, a in flow if c.action is Action.REPORT and c.data.get("grid"))
    grid = str(cmd.data["grid"])
    data = {k: v for k, v in cmd.data.items() if k not in ("grid", "lon", "lat")}
    with engine.begin() as conn:  # the same report with only an address: it needs a location
        waiting = replace(cmd, data={**data, "needs_location": True, "address": "某胡同1号"})
        done = execute(conn, waiting, at, ctx)
    assert done.outcome == "applied" and done.case is not None
    follower.follow()
    day = at.date()
    assert follower.period(ObjectType.GRID, grid, day, day).reported == 0  # in no grid yet
    with engine.connect() as conn:
        lon, lat = conn.execute(select(Grid.centroid_lon, Grid.centroid_lat).where(Grid.code == grid)).one()
    point = {"grid": grid, "lon": lon, "lat": lat, "located_by": "point"}
    acceptor = Actor("acc-test", Role.ACCEPTOR)
    locate = Command(Action.LOCATE, done.case.id, acceptor, "", point, "locate-f-test")
    with engine.begin() as conn:
        placed = execute(conn, locate, at, ctx)
    assert placed.outcome == "applied", placed
    assert follower.follow() == 1
    assert follower.period(ObjectType.GRID, grid, day, day).reported == 1  # its report, now in the grid
    assert follower.aggregates.as_dict() == rebuild_aggregates(engine, ctx, responsible).as_dict()
