"""The in-process live state, without a server: what a tick carries and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.catalogue import load_catalogue
from domain.supervisor import Fix
from feeds.live import PATROL_EVERY, MemoryLiveState

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
G1, G2 = "110101001001001", "110101001001002"


def state(patrol_every: timedelta = PATROL_EVERY) -> MemoryLiveState:
    return MemoryLiveState(
        tz=ZoneInfo("Asia/Shanghai"),
        catalogue=load_catalogue("cjt214"),
        areas={"s1": "A1", "s2": "A1"},
        area_of_grid={G1: "A1", G2: "A1"},
        now=T0,
        patrol_every=patrol_every,
    )


def walk(live: MemoryLiveState, sup: str, grid: str, start: datetime, seconds: list[int]) -> None:
    live.apply_fixes([Fix(sup, start + timedelta(seconds=s), 116.4, 39.9 + s * 1e-6, grid) for s in seconds])


def test_patrol_only_grid_changes_reach_ticks_every_patrol_interval() -> None:
    live = state()
    live.tick(T0)  # the first tick drains start-up changes (and sends patrol time at once)
    walk(live, "s1", G1, T0, [0, 10])
    first = live.tick(T0 + timedelta(seconds=1))
    assert G1 not in first.grids  # 10 s of patrol only: held back
    assert [s.id for s in first.supervisors] == ["s1"]  # the supervisor's move is not
    walk(live, "s1", G1, T0, [20])
    assert G1 not in live.tick(T0 + timedelta(seconds=2)).grids
    due = live.tick(T0 + PATROL_EVERY)
    assert due.grids[G1].patrol_s == 20.0  # current value, not an increment
    assert G1 not in live.tick(T0 + PATROL_EVERY + timedelta(seconds=1)).grids  # sent once


def test_a_grid_sent_for_a_case_change_carries_its_patrol_time_and_is_not_sent_again() -> None:
    live = state()
    live.tick(T0)
    walk(live, "s2", G2, T0, [0, 30])
    live._grid(G2).open += 1  # a case counter changes (what apply_case does through _grid)
    tick = live.tick(T0 + timedelta(seconds=1))
    assert tick.grids[G2].open == 1 and tick.grids[G2].patrol_s == 30.0
    assert G2 not in live.tick(T0 + PATROL_EVERY).grids  # nothing changed since it was sent


def test_zero_patrol_interval_sends_patrol_time_in_every_tick() -> None:
    live = state(timedelta(0))
    live.tick(T0)
    walk(live, "s1", G1, T0, [0, 10])
    assert live.tick(T0 + timedelta(seconds=1)).grids[G1].patrol_s == 10.0


def test_overdue_follows_deadlines_without_visiting_every_case() -> None:
    from domain.lifecycle import Accepted, Action, Actor, Command, Context, Role, apply
    from domain.workcalendar import load_calendar
    from feeds.live import Place

    live = state()
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    data = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": "supervisor"}

    def step(prev: object, action: Action, role: Role, at: datetime, opinion: str = "") -> object:
        out = apply(prev, Command(action, "C1", Actor("x", role), opinion, data), at, ctx)  # type: ignore[arg-type]
        assert isinstance(out, Accepted), out
        return out.state

    reported = step(None, Action.REPORT, Role.SUPERVISOR, T0)
    live.apply_case(reported, (), Place(G1, G1[:9], 116.4, 39.9))  # type: ignore[arg-type]
    live.tick(T0)
    due = reported.timers["accept"].deadline  # type: ignore[attr-defined]
    assert "C1" not in live.tick(due - timedelta(seconds=1)).cases  # nothing changed, nothing late
    late = live.tick(due + timedelta(seconds=1))
    assert [(a.kind, a.case) for a in late.alerts] == [("overdue", "C1")] and late.cases[0].id == "C1"
    assert live.overdue_ids() == {"C1"} and live.grid_count(G1).overdue == 1  # type: ignore[union-attr]
    assert not live.tick(due + timedelta(seconds=2)).alerts  # said once
    accepted = step(reported, Action.ACCEPT, Role.ACCEPTOR, due + timedelta(seconds=3))  # a new stage clock
    live.apply_case(accepted, (), None)  # type: ignore[arg-type]
    live.tick(due + timedelta(seconds=4))
    assert live.overdue_ids() == frozenset() and live.grid_count(G1).overdue == 0  # type: ignore[union-attr]
    filing_due = accepted.timers["file"].deadline  # type: ignore[attr-defined]
    live.tick(filing_due + timedelta(seconds=1))
    assert live.overdue_ids() == {"C1"}  # late again, in the new stage
    voided = step(accepted, Action.VOID, Role.SHIFT_LEADER, filing_due + timedelta(seconds=2), "重复")
    live.apply_case(voided, (), None)  # type: ignore[arg-type]
    live.tick(filing_due + timedelta(seconds=3))
    assert live.overdue_ids() == frozenset() and live.grid_count(G1).overdue == 0  # type: ignore[union-attr]


def test_todays_closing_tiles_are_the_standards_rates() -> None:
    """今日结案率 / 今日按期结案率 = closures (on time) today / 应结案 today, with 应结案 = 处置 − 返工
    + 超时未处置 (docs/indicators.md), worked by hand: C1 handled twice today, its first 核查 failed,
    closed on time; C2 was dispatched on Tuesday and is still handling past its 2-working-day limit on Friday.
    应结案 = (2 − 1) + 1 = 2 → 1/2 and 1/2 (the old tiles said 1/1: C1 filed today and closed; on time)."""
    from domain.lifecycle import Accepted, Action, Actor, CaseState, Command, Context, Role, Stage, apply
    from domain.workcalendar import load_calendar
    from feeds.live import Place

    live = state()
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    data = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": "supervisor"}
    dept = Actor("d10", Role.DEPARTMENT, department="10")
    steps = [
        (Action.REPORT, Actor("s1", Role.SUPERVISOR), {}),
        (Action.ACCEPT, Actor("acc", Role.ACCEPTOR), {}),
        (Action.FILE, Actor("lead", Role.SHIFT_LEADER), {}),
        (Action.DISPATCH, Actor("disp", Role.DISPATCHER), {}),
        (Action.FEEDBACK, dept, {}),
        (Action.CHECK, Actor("s1", Role.SUPERVISOR), {"passed": False}),
        (Action.FEEDBACK, dept, {}),
        (Action.CHECK, Actor("s1", Role.SUPERVISOR), {"passed": True}),
        (Action.CLOSE, Actor("lead", Role.SHIFT_LEADER), {}),
    ]

    def run(case: str, start: datetime, upto: int) -> CaseState:
        prev: CaseState | None = None
        for i, (action, actor, extra) in enumerate(steps[:upto]):
            cmd = Command(action, case, actor, "意见", {**data, **extra})
            out = apply(prev, cmd, start + timedelta(minutes=5 * i), ctx)
            assert isinstance(out, Accepted), out
            prev = out.state
            live.apply_case(prev, out.events, Place(G1, G1[:9], 116.4, 39.9))
        assert prev is not None
        return prev

    tuesday = T0 - timedelta(days=3)
    c2 = run("C2", tuesday, 4)  # dispatched on Tuesday, never handled
    assert c2.timers["handle"].deadline < T0 and c2.stage is Stage.HANDLING
    c1 = run("C1", T0, len(steps))
    assert c1.archive is not None and c1.archive.value == "normal"
    # C3, a 自处置 closed today, and C4, dispatched and closed as 差错结案 today: neither is in 结案数
    # nor 应结案 (docs/indicators.md "Side paths"), so the tiles stay 1/2
    lead = Actor("lead", Role.SHIFT_LEADER)
    for case, script in (
        ("C3", [(Action.REPORT, Actor("s1", Role.SUPERVISOR), {"self_handled": True}),
                (Action.ACCEPT, Actor("acc", Role.ACCEPTOR), {}), (Action.CLOSE, lead, {})]),
        ("C4", [*steps[:4], (Action.CLOSE, lead, {"error": True})]),
    ):  # fmt: skip
        prev = None
        for i, (action, actor, extra) in enumerate(script):
            cmd = Command(action, case, actor, "意见", {**data, **extra})
            out = apply(prev, cmd, T0 + timedelta(minutes=i), ctx)
            assert isinstance(out, Accepted), out
            prev = out.state
            live.apply_case(prev, out.events, Place(G1, G1[:9], 116.4, 39.9))
        assert prev is not None and prev.status.value == "closed" and not prev.counts_as_closure
    kpi = live.tick(T0 + timedelta(hours=2)).kpi
    assert kpi is not None
    assert (kpi["closed"], kpi["filed"], kpi["close_rate"], kpi["on_time_rate"]) == (1, 2, 0.5, 0.5)


def run_case(
    live: MemoryLiveState, case_id: str, steps: list[tuple[Any, Any, dict[str, object]]], ctx: Any
) -> Any:
    """Apply the steps (action, actor, data) to one case, a minute apart from T0, each change published
    to ``live`` at G1; the last state."""
    from domain.lifecycle import Accepted, Command, apply
    from feeds.live import Place

    prev = None
    for i, (action, actor, data) in enumerate(steps):
        out = apply(prev, Command(action, case_id, actor, "意见", data), T0 + timedelta(minutes=i), ctx)
        assert isinstance(out, Accepted), (action, out)
        prev = out.state
        live.apply_case(prev, out.events, Place(G1, G1[:9], 116.4, 39.9))
    return prev


def test_a_second_dispatch_is_not_another_dispatch_and_a_review_sent_back_is_a_rework() -> None:
    """今日派遣 counts the centre's 派遣 once when a 街道分中心 dispatches on (二级派遣); a 处理反馈 the
    指挥中心's review sends back leaves 应结案 as a failed 核查 does: handled twice, reworked once,
    closed once → 今日结案率 1/1."""
    from dataclasses import replace

    from domain.lifecycle import Action, Actor, Context, Policy, Role
    from domain.workcalendar import load_calendar

    live = state()
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    ctx = replace(ctx, policy=Policy(feedback_review=True))
    data = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": "supervisor"}
    unit = Actor("u", Role.DEPARTMENT, department="910101")
    sub, disp = Actor("sub", Role.DEPARTMENT, department="9101"), Actor("disp", Role.DISPATCHER)
    steps: list[tuple[Action, Actor, dict[str, object]]] = [
        (Action.REPORT, Actor("s1", Role.SUPERVISOR), {}),
        (Action.ACCEPT, Actor("acc", Role.ACCEPTOR), {}),
        (Action.FILE, Actor("lead", Role.SHIFT_LEADER), {}),
        (Action.DISPATCH, disp, {"department": "9101"}),
        (Action.DISPATCH, sub, {"department": "910101"}),
        (Action.FEEDBACK, unit, {}),
        (Action.REVIEW, disp, {"passed": False}),
        (Action.FEEDBACK, unit, {}),
        (Action.REVIEW, disp, {"passed": True}),
        (Action.CHECK, Actor("s1", Role.SUPERVISOR), {"passed": True}),
        (Action.CLOSE, Actor("lead", Role.SHIFT_LEADER), {}),
    ]
    run_case(live, "C5", [(a, actor, {**data, **extra}) for a, actor, extra in steps], ctx)
    kpi = live.tick(T0 + timedelta(hours=1)).kpi
    assert kpi is not None
    assert (kpi["dispatched"], kpi["closed"], kpi["close_rate"]) == (1, 1, 1.0)


def test_an_open_urge_order_carries_its_reply_deadline_to_the_screens_until_it_is_replied() -> None:
    """督办: the urged case's ``urge_due`` is the 督办单's reply deadline in the live case and in the
    tick's case columns (the wall's queue badge); the department's 督办回复 clears it."""
    from domain.lifecycle import Accepted, Action, Actor, Command, Context, Role, apply
    from domain.workcalendar import load_calendar
    from feeds.ticks import cases_columns

    live = state()
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    data = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": "supervisor"}
    reply_by = T0 + timedelta(hours=3)
    steps: list[tuple[Action, Actor, dict[str, object]]] = [
        (Action.REPORT, Actor("s1", Role.SUPERVISOR), {}),
        (Action.ACCEPT, Actor("acc", Role.ACCEPTOR), {}),
        (Action.FILE, Actor("lead", Role.SHIFT_LEADER), {}),
        (Action.DISPATCH, Actor("disp", Role.DISPATCHER), {"department": "10"}),
        (Action.URGE, Actor("boss", Role.LEADER), {"deadline": reply_by.isoformat()}),
    ]
    prev = run_case(live, "C6", [(a, actor, {**data, **extra}) for a, actor, extra in steps], ctx)
    view = live.tick(T0 + timedelta(minutes=10))
    (case,) = [c for c in view.cases if c.id == "C6"]
    assert case.urge_due == reply_by
    assert cases_columns(view.cases)["urge_due"] == [reply_by.timestamp()]
    reply = Command(Action.URGE_REPLY, "C6", Actor("d10", Role.DEPARTMENT, department="10"), "已到场", {})
    out = apply(prev, reply, T0 + timedelta(minutes=20), ctx)
    assert isinstance(out, Accepted), out
    live.apply_case(out.state, out.events, None)
    (case,) = [c for c in live.tick(T0 + timedelta(minutes=21)).cases if c.id == "C6"]
    assert case.urge_due is None
