"""The wall's statistics (issue 19 item 6): report mix, 高发问题, departments; and how they reach the wall.

Every expected number is counted by hand from the cases written out below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from domain.evaluation import CaseInfo, DailyAggregates
from domain.lifecycle import Accepted, Action, Actor, CaseState, Command, Context, Role, apply
from domain.workcalendar import load_calendar
from feeds.counters import CounterKeeper
from feeds.live import MemoryLiveState
from feeds.ticks import render, room_filter
from feeds.wallstats import case_mix, period_starts
from store.db import create_engine, sqlite_url
from store.migrate import upgrade
from store.models import Case

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=TZ)  # a Tuesday afternoon in the city
G1 = "110101001001001"


def _engine(url: str) -> Engine:
    engine = create_engine(url)
    upgrade(engine)
    return engine


def _case(cid: str, kind: str, code: str, source: str, at: datetime) -> dict[str, Any]:
    return {
        "id": cid, "kind": kind, "class_code": code, "condition_code": "01", "source": source,
        "status": "reported", "stage": "待受理", "open": True, "emergency": False, "reporter": "x",
        "reported_at": at.astimezone(UTC), "updated_at": at.astimezone(UTC), "state": {},
    }  # fmt: skip


def test_the_mix_and_the_most_reported_classes_of_today_and_the_month(db_url: str) -> None:
    engine = _engine(db_url)
    today, yesterday = NOW.replace(hour=9), NOW - timedelta(days=1)
    rows = [
        # today: 3 × event 0101 (2 supervisor, 1 hotline), 1 × component 0101 (public)
        _case("T1", "event", "0101", "supervisor", today),
        _case("T2", "event", "0101", "supervisor", today + timedelta(minutes=5)),
        _case("T3", "event", "0101", "hotline", NOW.replace(hour=0, minute=0, second=1)),
        _case("T4", "component", "0101", "public", today),
        # earlier this month: 2 × event 0202 (supervisor), 1 × component 0301 (video) on the 1st at 00:00
        _case("M1", "event", "0202", "supervisor", yesterday),
        _case("M2", "event", "0202", "supervisor", yesterday),
        _case("M3", "component", "0301", "video", NOW.replace(day=1, hour=0, minute=0)),
        # last month (a second before the 1st, city time): in neither
        _case(
            "L1", "event", "0202", "supervisor", NOW.replace(day=1, hour=0, minute=0) - timedelta(seconds=1)
        ),
        # yesterday 23:59:59: this month, not today
        _case("Y1", "event", "0303", "leader", NOW.replace(hour=0, minute=0) - timedelta(seconds=1)),
    ]
    with engine.begin() as conn:
        conn.execute(insert(Case), rows)
    month_start, today_start = period_starts(NOW, TZ)
    assert (month_start, today_start) == (datetime(2026, 3, 1, tzinfo=TZ), datetime(2026, 3, 10, tzinfo=TZ))
    with engine.connect() as conn:
        mix = case_mix(conn, month_start, today_start, top=2)
    assert mix["today"] == {
        "reports": 4,
        "kinds": {"component": 1, "event": 3},
        "sources": {"supervisor": 2, "hotline": 1, "public": 1},  # most first, ties by name
        "top": [{"key": "event:0101", "n": 3}, {"key": "component:0101", "n": 1}],
    }
    assert mix["month"]["reports"] == 8  # the 4 of today, M1–M3, Y1
    assert mix["month"]["kinds"] == {"component": 2, "event": 6}
    assert mix["month"]["sources"] == {"supervisor": 4, "hotline": 1, "leader": 1, "public": 1, "video": 1}
    assert mix["month"]["top"] == [{"key": "event:0101", "n": 3}, {"key": "event:0202", "n": 2}]
    engine.dispose()


def test_departments_are_ranked_by_their_month_score(tmp_path: Path) -> None:
    """Department 10 handles its case on time, department 12 after its deadline: 10 ranks first; a
    sub-centre that only passed a case on has no score and is not listed."""
    engine = _engine(sqlite_url(tmp_path))
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    aggregates = DailyAggregates(tz=TZ)
    start = NOW - timedelta(days=8)  # Monday of last week, 15:00
    data: dict[str, Any] = {"kind": "component", "class_code": "0101", "condition_code": "03",
                            "source": "supervisor"}  # fmt: skip
    steps: list[tuple[Action, Actor, dict[str, Any], timedelta]]
    for cid, dept, handled_after in (("D1", "10", timedelta(hours=2)), ("D2", "12", timedelta(days=5))):
        unit = Actor(f"d{dept}", Role.DEPARTMENT, department=dept)
        steps = [
            (Action.REPORT, Actor("s1", Role.SUPERVISOR), {}, timedelta(0)),
            (Action.ACCEPT, Actor("acc", Role.ACCEPTOR), {}, timedelta(minutes=5)),
            (Action.FILE, Actor("lead", Role.SHIFT_LEADER), {}, timedelta(minutes=10)),
            (Action.DISPATCH, Actor("disp", Role.DISPATCHER), {"department": dept}, timedelta(minutes=15)),
            (Action.FEEDBACK, unit, {}, handled_after),
            (
                Action.CHECK,
                Actor("s1", Role.SUPERVISOR),
                {"passed": True},
                handled_after + timedelta(minutes=10),
            ),
            (Action.CLOSE, Actor("lead", Role.SHIFT_LEADER), {}, handled_after + timedelta(minutes=20)),
        ]
        state: CaseState | None = None
        for action, actor, extra, after in steps:
            out = apply(state, Command(action, cid, actor, "意见", {**data, **extra}), start + after, ctx)
            assert isinstance(out, Accepted), out
            state = out.state
            for ev in out.events:
                aggregates.add(CaseInfo.from_state(state, G1), ev, state)
    keeper = CounterKeeper(engine, aggregates)
    stats = keeper.wall_stats(NOW.astimezone(UTC))
    assert [d["code"] for d in stats["departments"]] == ["10", "12"]
    best, worst = stats["departments"]
    assert best["score"] > worst["score"] and best["grade"] is not None
    assert stats["today"]["reports"] == 0 and stats["month"]["top"] == []
    engine.dispose()


def test_the_statistics_go_to_the_wall_s_room_once_per_change() -> None:
    live = MemoryLiveState(tz=TZ, catalogue=load_catalogue("cjt214"), areas={}, area_of_grid={}, now=NOW)
    stats = {"departments": [], "today": {"reports": 1}, "month": {"reports": 1}}
    live.set_stats(stats)
    view = live.tick(NOW)
    assert view.stats == stats
    wall = render(view, room_filter("wall"), 1, full=False, simulated=False)
    street = render(view, room_filter(f"street:{G1[:9]}"), 1, full=False, simulated=False)
    assert wall["stats"] == stats and "stats" not in street
    assert live.tick(NOW).stats is None  # unchanged: not sent again
    live.set_stats(dict(stats))  # the same values: still unchanged
    assert live.tick(NOW).stats is None
    assert live.snapshot(NOW).stats == stats  # a new screen gets them at once
