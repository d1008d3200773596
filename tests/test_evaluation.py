"""Evaluation: daily counters fed by real lifecycle histories, §1.4 rates, composite scores, grades.

Every expected number below is worked out by hand from the scenario in the comments (stage limits:
受理/派遣/立案/结案 step 15 min, 核实/核查 30 min; 0101/03 handling = 2工作日), not read back from
the implementation.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import CaseKind, load_catalogue
from domain.evaluation import (
    COUNTER_NAMES,
    RATES_BY_TYPE,
    AreaClass,
    CaseInfo,
    Counters,
    DailyAggregates,
    ObjectType,
    Record,
    RegionWeights,
    Score,
    acceptor_score,
    count_band_score,
    department_band_score,
    department_score,
    dispatcher_score,
    evaluation_table,
    grade,
    grade_colour,
    indicators,
    overdue_unhandled_at,
    records_from_commands,
    region_band_score,
    region_score,
    score_for,
    shift_leader_score,
    supervisor_score,
)
from domain.lifecycle import (
    Accepted,
    Action,
    Actor,
    CaseState,
    Command,
    Context,
    Policy,
    Role,
    Source,
    apply,
    replay,
)
from domain.workcalendar import load_calendar

TZ = ZoneInfo("Asia/Shanghai")
CAT = load_catalogue("cjt214")
CAL = load_calendar()
CTX = Context(catalogue=CAT, calendar=CAL)
MON = datetime(2025, 9, 22, 9, 0, tzinfo=TZ)  # Monday of a normal working week
TUE = MON + timedelta(days=1)
FRI = datetime(2025, 9, 26, 10, 0, tzinfo=TZ)
D_MON, D_TUE, D_FRI = date(2025, 9, 22), date(2025, 9, 23), date(2025, 9, 26)

G1, G2, G3 = "110101001001001", "110101001001002", "110101002001001"
COMMUNITY_12 = "110101001001"  # G1 and G2
STREET_1, STREET_2 = "110101001", "110101002"
DISTRICT = "110101"
RESPONSIBLE = {G1: "sup-1", G2: "sup-1", G3: "sup-3"}

SUP1, SUP2, SUP3 = (Actor(f"sup-{i}", Role.SUPERVISOR) for i in (1, 2, 3))
ACC = Actor("acc-1", Role.ACCEPTOR)
LEAD = Actor("lead-1", Role.SHIFT_LEADER)
DISP, DISP2 = Actor("disp-1", Role.DISPATCHER), Actor("disp-2", Role.DISPATCHER)
DEPT10 = Actor("d10", Role.DEPARTMENT, department="10")
DEPT12 = Actor("d12", Role.DEPARTMENT, department="12")
BOSS = Actor("boss", Role.LEADER)

CLASS = {"kind": "component", "class_code": "0101", "condition_code": "03"}  # 2工作日, department 10


def c(case: str, action: Action, actor: Actor, opinion: str = "", **data: object) -> Command:
    return Command(action=action, case_id=case, actor=actor, opinion=opinion, data=data)


def info(case: str, grid: str, source: Source, reporter: str) -> CaseInfo:
    return CaseInfo(case, grid, source, reporter, CaseKind.COMPONENT, "0101")


def history(case_info: CaseInfo, steps: list[tuple[Command, datetime]], ctx: Context = CTX) -> list[Record]:
    """Apply every step (each must be accepted) and pair each event with the state after it."""
    state: CaseState | None = None
    records: list[Record] = []
    for command, at in steps:
        out = apply(state, command, at, ctx)
        assert isinstance(out, Accepted), (command.action, out)
        state = out.state
        records.extend((case_info, ev, state) for ev in out.events)
    # the same commands through lifecycle.replay end in the same state
    final, events, rejections = replay(steps, ctx)
    assert rejections == [] and final == state and len(events) == len(records)
    return records


def m(base: datetime, minutes: float) -> datetime:
    return base + timedelta(minutes=minutes)


def scenario() -> list[Record]:
    """Six cases over one week (see the per-case comments for timings and on-time decisions)."""
    recs: list[Record] = []
    # C1 (G1, supervisor sup-1) Monday: all on time, NORMAL close.
    # accept 5' (≤15) · file 10' (timer 5→20) · dispatch 20' (10→25) · feedback 13:00 (deadline Wed
    # 09:20) · check 260' (240→270) · close 270' (260→275)
    i1 = info("C1", G1, Source.SUPERVISOR, "sup-1")
    recs += history(
        i1,
        [
            (c("C1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(MON, 0)),
            (c("C1", Action.ACCEPT, ACC), m(MON, 5)),
            (c("C1", Action.FILE, LEAD), m(MON, 10)),
            (c("C1", Action.DISPATCH, DISP), m(MON, 20)),
            (c("C1", Action.FEEDBACK, DEPT10, "已更换"), m(MON, 240)),
            (c("C1", Action.CHECK, SUP1, passed=True), m(MON, 260)),
            (c("C1", Action.CLOSE, LEAD), m(MON, 270)),
        ],
    )
    # C2 (G1, hotline) Monday → Friday: accept 20' LATE (≤15) · verify by sup-2 at 60' LATE (20→50),
    # confirmed (漏报 for G1 → sup-1) · file 65' (60→75) · dispatch 100' LATE (65→80), handling due
    # Wed 10:40 · feedback Fri 10:00 OVERDUE · check Fri 10:10 (10:00→10:30) · close Fri 10:20
    # (10:10→10:25) → archive OVERTIME
    i2 = info("C2", G1, Source.HOTLINE, "acc-1")
    recs += history(
        i2,
        [
            (c("C2", Action.REPORT, ACC, **CLASS, source="hotline"), m(MON, 0)),
            (c("C2", Action.ACCEPT, ACC), m(MON, 20)),
            (c("C2", Action.VERIFY, SUP2, confirmed=True), m(MON, 60)),
            (c("C2", Action.FILE, LEAD), m(MON, 65)),
            (c("C2", Action.DISPATCH, DISP), m(MON, 100)),
            (c("C2", Action.FEEDBACK, DEPT10, "done"), FRI),
            (c("C2", Action.CHECK, SUP1, passed=True), m(FRI, 10)),
            (c("C2", Action.CLOSE, LEAD), m(FRI, 20)),
        ],
    )
    # C3 (G2, supervisor sup-1) Tuesday: accept 5' on time, voided as a duplicate at 30'.
    i3 = info("C3", G2, Source.SUPERVISOR, "sup-1")
    recs += history(
        i3,
        [
            (c("C3", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(TUE, 0)),
            (c("C3", Action.ACCEPT, ACC), m(TUE, 5)),
            (c("C3", Action.VOID, LEAD, "重复上报"), m(TUE, 30)),
        ],
    )
    # C4 (G3, supervisor sup-3) Tuesday, one 返工: accept 5' · file 30' LATE (5→20) · dispatch 40'
    # (30→45) · feedback 120' · check fail 160' LATE (120→150) → rework (dept 10, disp-1) ·
    # feedback 300' · check pass 310' (300→330) · close 330' LATE step (310→325), archive NORMAL
    i4 = info("C4", G3, Source.SUPERVISOR, "sup-3")
    recs += history(
        i4,
        [
            (c("C4", Action.REPORT, SUP3, **CLASS, source="supervisor"), m(TUE, 0)),
            (c("C4", Action.ACCEPT, ACC), m(TUE, 5)),
            (c("C4", Action.FILE, LEAD), m(TUE, 30)),
            (c("C4", Action.DISPATCH, DISP), m(TUE, 40)),
            (c("C4", Action.FEEDBACK, DEPT10, "已修复"), m(TUE, 120)),
            (c("C4", Action.CHECK, SUP3, "仍有响动", passed=False), m(TUE, 160)),
            (c("C4", Action.FEEDBACK, DEPT10, "已重新安装"), m(TUE, 300)),
            (c("C4", Action.CHECK, SUP3, passed=True), m(TUE, 310)),
            (c("C4", Action.CLOSE, LEAD), m(TUE, 330)),
        ],
    )
    # C5 (G3, public) Tuesday: accept 10' on time → 核实 task · verify 20' on time (10→40), not
    # confirmed · voided 25'.
    i5 = info("C5", G3, Source.PUBLIC, "acc-1")
    recs += history(
        i5,
        [
            (c("C5", Action.REPORT, ACC, **CLASS, source="public"), m(TUE, 0)),
            (c("C5", Action.ACCEPT, ACC), m(TUE, 10)),
            (c("C5", Action.VERIFY, SUP3, confirmed=False), m(TUE, 20)),
            (c("C5", Action.VOID, LEAD, "核实不属实"), m(TUE, 25)),
        ],
    )
    # C6 (G2, supervisor sup-1) Tuesday, 回退: accept 5' · file 10' · dispatch 20' to dept 10 by
    # disp-1 · return approved 40' (dept 10, disp-1; new dispatch clock 40→55) · dispatch 50' to
    # dept 12 by disp-2 · urge 55' (dept 12) · feedback 200' · check 220' (200→230) · close 230'
    # (220→235), archive NORMAL
    i6 = info("C6", G2, Source.SUPERVISOR, "sup-1")
    recs += history(
        i6,
        [
            (c("C6", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(TUE, 0)),
            (c("C6", Action.ACCEPT, ACC), m(TUE, 5)),
            (c("C6", Action.FILE, LEAD), m(TUE, 10)),
            (c("C6", Action.DISPATCH, DISP), m(TUE, 20)),
            (c("C6", Action.REQUEST_RETURN, DEPT10, "非本单位"), m(TUE, 30)),
            (c("C6", Action.APPROVE, DISP), m(TUE, 40)),
            (c("C6", Action.DISPATCH, DISP2, department="12"), m(TUE, 50)),
            (c("C6", Action.URGE, BOSS, "尽快处置"), m(TUE, 55)),
            (c("C6", Action.FEEDBACK, DEPT12, "完成"), m(TUE, 200)),
            (c("C6", Action.CHECK, SUP1, passed=True), m(TUE, 220)),
            (c("C6", Action.CLOSE, LEAD), m(TUE, 230)),
        ],
    )
    return recs


RECORDS = scenario()


def aggregates(responsible: dict[str, str] | None = RESPONSIBLE) -> DailyAggregates:
    agg = DailyAggregates(responsible=responsible)
    for rec in sorted(RECORDS, key=lambda r: r[1].at):  # as the events happen, cases interleaved
        agg.add(*rec)
    return agg


AGG = aggregates()


def week(object_type: ObjectType, object_id: str | None) -> Counters:
    return AGG.period(object_type, object_id, D_MON, D_FRI)


def counts(ctr: Counters) -> dict[str, int]:
    """Only the non-zero counters (the expected dicts below list those)."""
    return {k: v for k, v in ctr.as_dict().items() if v}


# --- the scenario's assumptions ---------------------------------------------------------------


def test_scenario_stage_limits_are_what_the_comments_assume() -> None:
    last: dict[str, CaseState] = {}
    for _, ev, state in RECORDS:
        last[ev.case_id] = state
    timers = last["C1"].timers
    for stage, minutes in (("accept", 15), ("file", 15), ("dispatch", 15), ("check", 30), ("close", 15)):
        assert timers[stage].deadline - timers[stage].started_at == timedelta(minutes=minutes), stage
    assert last["C5"].timers["verify"].deadline - last["C5"].timers["verify"].started_at == timedelta(
        minutes=30
    )
    assert timers["handle"].deadline == datetime(2025, 9, 24, 9, 20, tzinfo=TZ)  # Mon 09:20 + 2工作日
    assert last["C2"].archive == "overtime" and last["C4"].archive == "normal"


# --- counts per object ------------------------------------------------------------------------


def test_district_counts_for_the_week() -> None:
    assert counts(week(ObjectType.DISTRICT, DISTRICT)) == {
        "reported": 6,  # C1..C6
        "patrol_reported": 4,  # C1 C3 C4 C6
        "public_reported": 2,  # C2 C5
        "valid_reported": 3,  # supervisor reports filed: C1 C4 C6
        "accepted": 6,
        "accepted_on_time": 5,  # all but C2
        "to_verify": 2,  # C2 C5
        "verify_sent_on_time": 1,  # C5 (C2 accepted late)
        "verified": 2,
        "verified_on_time": 1,  # C5
        "missed": 1,  # C2 confirmed
        "filed": 4,  # C1 C2 C4 C6
        "filed_on_time": 3,  # all but C4
        "voided": 2,  # C3 C5
        "to_dispatch": 5,  # 4 filings + 1 approved return
        "dispatched": 5,  # C1 C2 C4 C6 ×2
        "dispatched_on_time": 4,  # all but C2
        "returned": 1,
        "handled": 5,  # C1 C2 C4 ×2 C6
        "handled_on_time": 4,
        "handled_overdue": 1,  # C2
        "reworked": 1,  # C4
        "to_check": 5,  # one 核查 task per feedback
        "checked": 5,
        "checked_on_time": 4,  # C4's failed check was late
        "closed": 4,
        "closed_on_time": 3,  # NORMAL: C1 C4 C6
        "overdue_closed": 1,  # C2
        "close_step_on_time": 3,  # C4's close step was late
        "urged": 1,
        "urge_orders": 1,  # C6 was with dept 12: a 督办单, never replied
    }


def test_grid_and_community_counts() -> None:
    assert counts(week(ObjectType.GRID, G1)) == {
        "reported": 2,
        "patrol_reported": 1,
        "public_reported": 1,
        "valid_reported": 1,
        "accepted": 2,
        "accepted_on_time": 1,
        "to_verify": 1,
        "verified": 1,
        "missed": 1,
        "filed": 2,
        "filed_on_time": 2,
        "to_dispatch": 2,
        "dispatched": 2,
        "dispatched_on_time": 1,
        "handled": 2,
        "handled_on_time": 1,
        "handled_overdue": 1,
        "to_check": 2,
        "checked": 2,
        "checked_on_time": 2,
        "closed": 2,
        "closed_on_time": 1,
        "overdue_closed": 1,
        "close_step_on_time": 2,
    }
    # the community of G1 and G2 = the sum of the two grids; the street is the same set of cases
    both = week(ObjectType.GRID, G1) + week(ObjectType.GRID, G2)
    assert week(ObjectType.COMMUNITY, COMMUNITY_12) == both
    assert week(ObjectType.STREET, STREET_1) == both
    assert week(ObjectType.STREET, STREET_2) == week(ObjectType.GRID, G3)
    # None = every object of the type: all grids together = the district
    assert week(ObjectType.GRID, None) == week(ObjectType.DISTRICT, DISTRICT)
    assert AGG.ids(ObjectType.GRID) == {G1, G2, G3}


def test_department_attribution_dispatch_return_rework_urge() -> None:
    assert counts(week(ObjectType.DEPARTMENT, "10")) == {
        "dispatched": 4,  # C1 C2 C4 C6 (first dispatch)
        "returned": 1,  # C6 returned as 非本单位
        "handled": 4,  # C1 C2 C4 ×2
        "handled_on_time": 3,
        "handled_overdue": 1,
        "reworked": 1,  # C4
        "closed": 3,  # C1 C2 C4
        "closed_on_time": 2,
        "overdue_closed": 1,
    }
    assert counts(week(ObjectType.DEPARTMENT, "12")) == {
        "dispatched": 1,
        "handled": 1,
        "handled_on_time": 1,
        "closed": 1,
        "closed_on_time": 1,
        "urged": 1,  # the urge came while dept 12 held C6
        "urge_orders": 1,  # so it is a 督办单 to dept 12
    }


def test_position_attribution() -> None:
    assert counts(week(ObjectType.SUPERVISOR, "sup-1")) == {
        "reported": 3,  # C1 C3 C6
        "patrol_reported": 3,
        "valid_reported": 2,  # C1 C6 (C3 voided)
        "filed": 3,  # own C1 C6 + hotline C2 in his grid G1
        "missed": 1,  # C2, confirmed in G1 which he is responsible for
        "to_check": 3,  # C1 C2 C6
        "checked": 3,
        "checked_on_time": 3,
    }
    assert counts(week(ObjectType.SUPERVISOR, "sup-2")) == {"to_verify": 1, "verified": 1}
    assert counts(week(ObjectType.SUPERVISOR, "sup-3")) == {
        "reported": 1,
        "patrol_reported": 1,
        "valid_reported": 1,
        "filed": 1,
        "to_verify": 1,
        "verified": 1,
        "verified_on_time": 1,
        "to_check": 2,
        "checked": 2,
        "checked_on_time": 1,
    }
    assert counts(week(ObjectType.ACCEPTOR, "acc-1")) == {
        "reported": 2,  # registered C2 and C5
        "accepted": 6,
        "accepted_on_time": 5,
        "to_verify": 2,
        "verify_sent_on_time": 1,
    }
    assert counts(week(ObjectType.SHIFT_LEADER, "lead-1")) == {
        "filed": 4,
        "filed_on_time": 3,
        "voided": 2,
        "closed": 4,
        "closed_on_time": 3,
        "overdue_closed": 1,
        "close_step_on_time": 3,
    }
    assert counts(week(ObjectType.DISPATCHER, "disp-1")) == {
        "to_dispatch": 4,
        "dispatched": 4,  # C1 C2 C4 C6
        "dispatched_on_time": 3,  # C2 late
        "returned": 1,  # C6 was his dispatch, returned as 非本单位: his 错派
        # C4's failed 核查 is department 10's 返工, not his (no "reworked" row for a dispatcher)
    }
    assert counts(week(ObjectType.DISPATCHER, "disp-2")) == {
        "to_dispatch": 1,
        "dispatched": 1,
        "dispatched_on_time": 1,
    }
    # leaders and departments acting have no position rows
    assert AGG.ids(ObjectType.SUPERVISOR) == {"sup-1", "sup-2", "sup-3"}
    assert "boss" not in {i for t in ObjectType for i in AGG.ids(t)}


# --- who is charged: the standard's definitions (issue 19 item 1) ------------------------------

WED = MON + timedelta(days=2)
D_WED = date(2025, 9, 24)


def charging_history() -> list[Record]:
    """Five cases on Wednesday that tell apart who each indicator charges (see the comments)."""
    recs: list[Record] = []
    # N1 (G1, 视频上报): accept 5' → 核实 task, no assignee → issued to G1's supervisor sup-1 · verified
    # by sup-1 at 15' (on time, 5→35), confirmed — not a 漏报: a camera is not the public · filed 20'
    recs += history(
        info("N1", G1, Source.VIDEO, "acc-1"),
        [
            (c("N1", Action.REPORT, ACC, **CLASS, source="video"), m(WED, 0)),
            (c("N1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("N1", Action.VERIFY, SUP1, confirmed=True), m(WED, 15)),
            (c("N1", Action.FILE, LEAD), m(WED, 20)),
        ],
    )
    # N2 (G3, 公众举报): accept 5' with the task to sup-2 · 指派 to sup-3 at 10' · never answered:
    # the ignored task stays sup-3's 应核实 (sup-2's is taken back)
    recs += history(
        info("N2", G3, Source.PUBLIC, "acc-1"),
        [
            (c("N2", Action.REPORT, ACC, **CLASS, source="public"), m(WED, 0)),
            (c("N2", Action.ACCEPT, ACC, assignee="sup-2"), m(WED, 5)),
            (c("N2", Action.ASSIGN, ACC, assignee="sup-3"), m(WED, 10)),
        ],
    )
    # N3 (G2, 热线): accept 5' → task issued to G2's sup-1 · answered by sup-2 at 20', confirmed: the
    # obligation moves to sup-2, and the confirmed public report is sup-1's 漏报 (G2 is his)
    recs += history(
        info("N3", G2, Source.HOTLINE, "acc-1"),
        [
            (c("N3", Action.REPORT, ACC, **CLASS, source="hotline"), m(WED, 0)),
            (c("N3", Action.ACCEPT, ACC), m(WED, 5)),
            (c("N3", Action.VERIFY, SUP2, confirmed=True), m(WED, 20)),
        ],
    )
    # N4 (G1, sup-1's own report): accept 5' · filed by lead-1 at 10' · 作废 at 20' after filing, before
    # any dispatch: lead-1's filing was wrong
    recs += history(
        info("N4", G1, Source.SUPERVISOR, "sup-1"),
        [
            (c("N4", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(WED, 0)),
            (c("N4", Action.ACCEPT, ACC), m(WED, 5)),
            (c("N4", Action.FILE, LEAD), m(WED, 10)),
            (c("N4", Action.VOID, LEAD, "重复上报"), m(WED, 20)),
        ],
    )
    # N5 (G3, sup-3's own report): accept 5' · file 10' · disp-1 dispatches to dept 10 at 20' · 回退
    # (非本单位) approved at 40': disp-1's 错派 · disp-2 dispatches to dept 12 at 50' · feedback 120' →
    # 核查 task to G3's sup-3 · check failed 130' (on time): dept 12's 返工, not disp-2's · feedback
    # 200' → a second 核查 task to sup-3, never answered
    recs += history(
        info("N5", G3, Source.SUPERVISOR, "sup-3"),
        [
            (c("N5", Action.REPORT, SUP3, **CLASS, source="supervisor"), m(WED, 0)),
            (c("N5", Action.ACCEPT, ACC), m(WED, 5)),
            (c("N5", Action.FILE, LEAD), m(WED, 10)),
            (c("N5", Action.DISPATCH, DISP), m(WED, 20)),
            (c("N5", Action.REQUEST_RETURN, DEPT10, "非本单位"), m(WED, 30)),
            (c("N5", Action.APPROVE, DISP), m(WED, 40)),
            (c("N5", Action.DISPATCH, DISP2, department="12"), m(WED, 50)),
            (c("N5", Action.FEEDBACK, DEPT12, "完成"), m(WED, 120)),
            (c("N5", Action.CHECK, SUP3, "未修好", passed=False), m(WED, 130)),
            (c("N5", Action.FEEDBACK, DEPT12, "已重修"), m(WED, 200)),
        ],
    )
    return recs


def charged(records: list[Record]) -> DailyAggregates:
    agg = DailyAggregates(responsible=RESPONSIBLE)
    for rec in sorted(records, key=lambda r: r[1].at):
        agg.add(*rec)
    return agg


def wed(agg: DailyAggregates, kind: ObjectType, oid: str) -> Counters:
    return agg.period(kind, oid, D_WED, D_WED)


def test_each_indicator_charges_the_person_the_standard_names() -> None:
    agg = charged(charging_history())
    district = wed(agg, ObjectType.DISTRICT, DISTRICT)
    assert (district.patrol_reported, district.public_reported, district.other_reported) == (2, 2, 1)
    assert (district.missed, district.filed, district.voided, district.filed_voided) == (1, 3, 1, 1)
    # 应核实 = tasks issued to the person: sup-1 N1 (N3's moved to sup-2 who answered it);
    # sup-2 N3 (N2's moved to sup-3); sup-3 N2, ignored: 按时核实率 0/1 — ignoring a task costs
    sup1, sup2, sup3 = (wed(agg, ObjectType.SUPERVISOR, f"sup-{i}") for i in (1, 2, 3))
    assert (sup1.to_verify, sup1.verified, sup1.verified_on_time, sup1.missed) == (1, 1, 1, 1)
    assert (sup2.to_verify, sup2.verified, sup2.verified_on_time, sup2.missed) == (1, 1, 1, 0)
    assert (sup3.to_verify, sup3.verified) == (1, 0)
    assert indicators(sup3).verify_on_time_rate == 0.0
    # 应核查: both of N5's 核查 tasks are sup-3's, one answered on time: 按时核查率 1/2
    assert (sup3.to_check, sup3.checked, sup3.checked_on_time) == (2, 1, 1)
    assert indicators(sup3).check_on_time_rate == pytest.approx(1 / 2)
    # the acceptor's 应核实 = 核实 tasks he sent (N1 N2 N3, all within 15'): 核实按时派发率 3/3
    acc = wed(agg, ObjectType.ACCEPTOR, "acc-1")
    assert (acc.to_verify, acc.verify_sent_on_time) == (3, 3)
    # 准确立案率 = (立案 3 − 立案后作废 1 (N4)) / 立案 3, charged to lead-1 who filed N4
    lead = wed(agg, ObjectType.SHIFT_LEADER, "lead-1")
    assert (lead.filed, lead.filed_voided) == (3, 1)
    assert indicators(lead).accurate_file_rate == pytest.approx(2 / 3)
    # 准确派遣率: disp-1's one dispatch came back as 非本单位 → 0/1; disp-2's was right → 1/1, and the
    # failed 核查 after it is department 12's 返工 (返工率 1/2), not disp-2's
    disp1, disp2 = wed(agg, ObjectType.DISPATCHER, "disp-1"), wed(agg, ObjectType.DISPATCHER, "disp-2")
    assert (disp1.dispatched, disp1.returned, disp2.dispatched, disp2.returned) == (1, 1, 1, 0)
    assert indicators(disp1).accurate_dispatch_rate == 0.0
    assert indicators(disp2).accurate_dispatch_rate == 1.0
    assert disp2.reworked == 0
    d12 = wed(agg, ObjectType.DEPARTMENT, "12")
    assert (d12.handled, d12.reworked) == (2, 1) and indicators(d12).rework_rate == pytest.approx(1 / 2)
    # the same rows when rebuilt from the log
    again = DailyAggregates(responsible=RESPONSIBLE)
    again.rebuild(sorted(charging_history(), key=lambda r: r[1].at))
    assert again.as_dict() == agg.as_dict()


def test_the_holders_survive_a_reload_and_an_older_mark() -> None:
    """The task holder is kept with the rows: after a reload, N5's open 核查 answered by sup-2 moves
    the obligation from sup-3 as it would have without the restart."""
    recs = charging_history()
    agg = charged(recs)
    stored = {k: list(v) for k, v in agg.holders().items()}  # as the store keeps them (JSON lists)
    assert stored["N5"] == ["12", "disp-2", "lead-1", "sup-3", None, None]  # handled: no clock runs
    reloaded = DailyAggregates(responsible=RESPONSIBLE)
    reloaded.load(((k, v) for k, v in agg.as_dict().items()), stored)
    n5 = info("N5", G3, Source.SUPERVISOR, "sup-3")
    state = next(st for i, ev, st in reversed(recs) if ev.case_id == "N5")
    out = apply(state, c("N5", Action.CHECK, SUP2, passed=True), m(WED, 210), CTX)
    assert isinstance(out, Accepted)
    for a in (agg, reloaded):
        a.add(n5, out.events[0], out.state)
    assert reloaded.as_dict() == agg.as_dict()
    assert wed(reloaded, ObjectType.SUPERVISOR, "sup-3").to_check == 1  # 2 issued − 1 answered by sup-2
    assert wed(reloaded, ObjectType.SUPERVISOR, "sup-2").to_check == 1
    # a mark saved before the holder named the filer and the task: department and dispatcher only
    old = DailyAggregates(responsible=RESPONSIBLE)
    old.load([], {"N5": ["12", "disp-2"]})
    assert old.holders() == {"N5": ("12", "disp-2", None, None, None, None)}


def side_paths_history() -> list[Record]:
    """Four cases on Wednesday through 自处置, its refusal, 差错结案 and 作废 after filing."""
    recs: list[Record] = []
    # S1 (G1, sup-1): reported 自处置 at 0' · the acceptor's 自处理审核 passes at 5' (→ 待结案, no filing,
    # no dispatch) · lead-1 closes at 10' (his 结案 step: 5' of 15', on time)
    recs += history(
        info("S1", G1, Source.SUPERVISOR, "sup-1"),
        [
            (c("S1", Action.REPORT, SUP1, **CLASS, source="supervisor", self_handled=True), m(WED, 0)),
            (c("S1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("S1", Action.CLOSE, LEAD), m(WED, 10)),
        ],
    )
    # S2 (G2, sup-2): reported 自处置 · the acceptor refuses the fix at 5' (照片不清: → 待立案) · filed by
    # lead-1 at 10': an ordinary valid report of sup-2's, no 自处置
    recs += history(
        info("S2", G2, Source.SUPERVISOR, "sup-2"),
        [
            (c("S2", Action.REPORT, SUP2, **CLASS, source="supervisor", self_handled=True), m(WED, 0)),
            (c("S2", Action.ACCEPT, ACC, "照片不清", self_handled=False), m(WED, 5)),
            (c("S2", Action.FILE, LEAD), m(WED, 10)),
        ],
    )
    # E1 (G3, sup-3): accept 5' · filed by lead-1 at 10' · disp-1 to department 10 at 20' · 差错结案 by
    # lead-1 at 60' (a duplicate): department 10's obligation is withdrawn, lead-1's filing was wrong
    recs += history(
        info("E1", G3, Source.SUPERVISOR, "sup-3"),
        [
            (c("E1", Action.REPORT, SUP3, **CLASS, source="supervisor"), m(WED, 0)),
            (c("E1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("E1", Action.FILE, LEAD), m(WED, 10)),
            (c("E1", Action.DISPATCH, DISP), m(WED, 20)),
            (c("E1", Action.CLOSE, LEAD, "与E0重复", error=True), m(WED, 60)),
        ],
    )
    # V1 (G1, sup-1): accept 5' · filed by lead-1 at 10' · 作废 at 20' before a dispatch: the 应派遣 the
    # filing opened is taken back
    recs += history(
        info("V1", G1, Source.SUPERVISOR, "sup-1"),
        [
            (c("V1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(WED, 0)),
            (c("V1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("V1", Action.FILE, LEAD), m(WED, 10)),
            (c("V1", Action.VOID, LEAD, "不属于城管范围"), m(WED, 20)),
        ],
    )
    return recs


def test_self_handling_error_closing_and_voiding_after_filing_charge_as_the_standard_says() -> None:
    agg = charged(side_paths_history())
    district = wed(agg, ObjectType.DISTRICT, DISTRICT)
    # 上报 4 (all patrol); 自处置 1 (S1); 有效上报 = S1's 自处置 + S2, E1, V1 filed = 4
    assert (district.patrol_reported, district.self_handled, district.valid_reported) == (4, 1, 4)
    # 立案 S2 E1 V1 = 3; 立案后作废 = E1 (差错结案) + V1 (作废) = 2: 准确立案率 1/3, all lead-1's
    assert (district.filed, district.filed_voided, district.voided, district.error_closed) == (3, 2, 1, 1)
    assert indicators(district).accurate_file_rate == pytest.approx(1 / 3)
    lead = wed(agg, ObjectType.SHIFT_LEADER, "lead-1")
    assert (lead.filed, lead.filed_voided, lead.error_closed) == (3, 2, 1)
    # 应派遣: S2 and E1 (V1's was taken back by its 作废); E1 dispatched by disp-1 within 15'
    assert (district.to_dispatch, district.dispatched, district.dispatched_on_time) == (2, 1, 1)
    # department 10 received E1 and had it withdrawn: 应处置 0, its rates are "—", not 0
    d10 = wed(agg, ObjectType.DEPARTMENT, "10")
    assert (d10.dispatched, d10.withdrawn, d10.handled) == (1, 1, 0)
    assert indicators(d10).to_handle == 0 and indicators(d10).handle_rate is None
    # neither 自处置 (S1) nor 差错结案 (E1) is in 应结案 / 结案数 of a region or a department
    assert (district.closed, indicators(district).to_close, indicators(district).close_rate) == (0, 0, None)
    # lead-1's 结案 step of S1 counts for his 按时结案率 (5' of 15')
    assert (lead.closed, lead.close_step_on_time) == (1, 1)
    assert indicators(lead).close_step_on_time_rate == 1.0
    # the supervisors: sup-1 自处置 1 and 有效上报 2 (S1, V1); sup-2's refused 自处置 is a filed report
    sup1, sup2 = wed(agg, ObjectType.SUPERVISOR, "sup-1"), wed(agg, ObjectType.SUPERVISOR, "sup-2")
    assert (sup1.patrol_reported, sup1.self_handled, sup1.valid_reported, sup1.filed) == (2, 1, 2, 1)
    assert (sup2.patrol_reported, sup2.self_handled, sup2.valid_reported, sup2.filed) == (1, 0, 1, 1)
    # the same rows when rebuilt from the log
    again = DailyAggregates(responsible=RESPONSIBLE)
    again.rebuild(sorted(side_paths_history(), key=lambda r: r[1].at))
    assert again.as_dict() == agg.as_dict()


def test_urging_orders_and_their_replies_charge_the_department_urged() -> None:
    """督办单: U1 dispatched to department 10 at 20' (Wednesday 9:20, working hours); boss urges at 30'
    (reply due in 2 working hours: 11:30) and again at 40' with his own deadline 10:00; department 10
    replies to the first at 60' (10:00, on time) and to the second at 90' (10:30, late). An urge
    before the dispatch (at 15', 待派遣) is a 督办 of the centre: counted, no 督办单."""
    recs = history(
        info("U1", G1, Source.SUPERVISOR, "sup-1"),
        [
            (c("U1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(WED, 0)),
            (c("U1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("U1", Action.FILE, LEAD), m(WED, 10)),
            (c("U1", Action.URGE, BOSS, "尽快派遣"), m(WED, 15)),
            (c("U1", Action.DISPATCH, DISP), m(WED, 20)),
            (c("U1", Action.URGE, BOSS, "请说明进度"), m(WED, 30)),
            (c("U1", Action.URGE, BOSS, "今天必须处理", deadline=m(WED, 60).isoformat()), m(WED, 40)),
            (c("U1", Action.URGE_REPLY, DEPT10, "已安排班组"), m(WED, 60)),
            (c("U1", Action.URGE_REPLY, DEPT10, "班组已到场"), m(WED, 90)),
        ],
    )
    state = recs[-1][2]
    assert [(o.no, o.target, o.deadline, o.replied_at) for o in state.orders] == [
        (1, "10", m(WED, 150).astimezone(UTC), m(WED, 60)),
        (2, "10", m(WED, 60).astimezone(UTC), m(WED, 90)),
    ]
    agg = charged(recs)
    d10, district = wed(agg, ObjectType.DEPARTMENT, "10"), wed(agg, ObjectType.DISTRICT, DISTRICT)
    assert (d10.urged, d10.urge_orders, d10.urge_replied, d10.urge_replied_on_time) == (2, 2, 2, 1)
    assert indicators(d10).urge_reply_on_time_rate == 0.5
    assert (district.urged, district.urge_orders) == (3, 2)  # the centre's urge counts, without an order


TWO_CENTRES = replace(CTX, policy=Policy(feedback_review=True, acceptor_issues_check=True))


def two_centres_history() -> list[Record]:
    """Two cases on Wednesday through the 指挥中心's 反馈审核 and the acceptor's 派发核查
    (limits: 反馈审核 30', 派发核查 15', 核查 30')."""
    # R1 (G1, sup-1's report) dispatched to 10 at 20' · feedback 60' → 待审核 · disp-1 sends it back at
    # 80' (返工 of department 10) · feedback again 120' · disp-2 passes it 130' → 待派核查 · acc-1 sends
    # the 核查 task to sup-3 at 160' (30' after: late) · sup-3 checks 170' (10': on time) · closed 175'
    r1 = history(
        info("R1", G1, Source.SUPERVISOR, "sup-1"),
        [
            (c("R1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(WED, 0)),
            (c("R1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("R1", Action.FILE, LEAD), m(WED, 10)),
            (c("R1", Action.DISPATCH, DISP), m(WED, 20)),
            (c("R1", Action.FEEDBACK, DEPT10, "已处置"), m(WED, 60)),
            (c("R1", Action.REVIEW, DISP, "照片未见处置效果", passed=False), m(WED, 80)),
            (c("R1", Action.FEEDBACK, DEPT10, "已重新处置"), m(WED, 120)),
            (c("R1", Action.REVIEW, DISP2, passed=True), m(WED, 130)),
            (c("R1", Action.SEND_CHECK, ACC, assignee="sup-3"), m(WED, 160)),
            (c("R1", Action.CHECK, SUP3, passed=True), m(WED, 170)),
            (c("R1", Action.CLOSE, LEAD), m(WED, 175)),
        ],
        TWO_CENTRES,
    )
    # R2 (G3, sup-3's report) dispatched to 10 at 20' · feedback 60' · disp-1 passes it at 70' · acc-1
    # sends the 核查 task at 80' (10': on time; no assignee → G3's supervisor sup-3) · sup-3 checks at
    # 100' (20': on time) · closed 105'
    r2 = history(
        info("R2", G3, Source.SUPERVISOR, "sup-3"),
        [
            (c("R2", Action.REPORT, SUP3, **CLASS, source="supervisor"), m(WED, 0)),
            (c("R2", Action.ACCEPT, ACC), m(WED, 5)),
            (c("R2", Action.FILE, LEAD), m(WED, 10)),
            (c("R2", Action.DISPATCH, DISP), m(WED, 20)),
            (c("R2", Action.FEEDBACK, DEPT10, "已处置"), m(WED, 60)),
            (c("R2", Action.REVIEW, DISP, passed=True), m(WED, 70)),
            (c("R2", Action.SEND_CHECK, ACC), m(WED, 80)),
            (c("R2", Action.CHECK, SUP3, passed=True), m(WED, 100)),
            (c("R2", Action.CLOSE, LEAD), m(WED, 105)),
        ],
        TWO_CENTRES,
    )
    return r1 + r2


def test_the_two_centres_steps_charge_the_reviewer_the_department_and_the_acceptor() -> None:
    agg = charged(two_centres_history())
    district = wed(agg, ObjectType.DISTRICT, DISTRICT)
    # 处置 3 (R1 twice, R2); R1's first feedback sent back: 返工 1, 审核退回 1; 反馈审核 3
    assert (district.handled, district.reworked, district.review_returned, district.reviewed) == (3, 1, 1, 3)
    # 应结案 = 处置 3 − 返工 1 = 2 = 结案 2: 结案率 100 %
    assert (indicators(district).to_close, district.closed, indicators(district).close_rate) == (2, 2, 1.0)
    # a 核查 task went out once per case, when the acceptor sent it (not at the feedback nor the review)
    assert (district.to_check, district.checked, district.checked_on_time) == (2, 2, 2)
    # department 10: 应处置 = 派遣 2 + 返工 1 = 3, 返工率 1/3 (the review's send-back is its 返工)
    d10 = wed(agg, ObjectType.DEPARTMENT, "10")
    assert (d10.handled, d10.reworked, d10.review_returned) == (3, 1, 1)
    assert indicators(d10).to_handle == 3 and indicators(d10).rework_rate == pytest.approx(1 / 3)
    # the reviewers: disp-1 reviewed R1 (back) and R2, disp-2 R1 (pass); their 准确派遣率 is untouched
    disp1, disp2 = wed(agg, ObjectType.DISPATCHER, "disp-1"), wed(agg, ObjectType.DISPATCHER, "disp-2")
    assert (disp1.reviewed, disp2.reviewed, disp1.returned) == (2, 1, 0)
    assert indicators(disp1).accurate_dispatch_rate == 1.0
    # acc-1 sent 2 核查 tasks, R2's on time: 核查按时派发率 50 %, now part of his 综合指标值
    acc = wed(agg, ObjectType.ACCEPTOR, "acc-1")
    assert (acc.check_sent, acc.check_sent_on_time) == (2, 1)
    assert indicators(acc).check_send_on_time_rate == 0.5
    score = acceptor_score(indicators(acc))
    assert "核查按时派发率" not in score.missing and "核实按时派发率" in score.missing
    # 核查按时派发率 50 → 50 points × 0.35, 受理数 2 → band 0 × 0.25; 核实按时派发率 (no 核实) left out
    assert score.value == pytest.approx(round((0.35 * 50 + 0.25 * 0) / 0.60, 2))
    # the 核查 obligations: R1's was sent to sup-3 by name, R2's to G3's supervisor sup-3
    sup3 = wed(agg, ObjectType.SUPERVISOR, "sup-3")
    assert (sup3.to_check, sup3.checked, sup3.checked_on_time) == (2, 2, 2)
    assert wed(agg, ObjectType.SUPERVISOR, "sup-1").to_check == 0
    # the same rows when rebuilt from the log
    again = DailyAggregates(responsible=RESPONSIBLE)
    again.rebuild(sorted(two_centres_history(), key=lambda r: r[1].at))
    assert again.as_dict() == agg.as_dict()


SUB_9101 = Actor("sub-9101", Role.DEPARTMENT, department="9101")  # 东华门街道分中心 (shipped list)
SUB_9102 = Actor("sub-9102", Role.DEPARTMENT, department="9102")
UNIT_910101 = Actor("u-910101", Role.DEPARTMENT, department="910101")  # its 城管执法队
UNIT_910102 = Actor("u-910102", Role.DEPARTMENT, department="910102")  # its 环境卫生所


def second_dispatch_history() -> list[Record]:
    """Two cases on Wednesday through 街道分中心 (二级派遣 limit 30', 派遣 15')."""
    # S1 (G1): disp-1 dispatches to sub-centre 9101 at 20' (10' after filing: on time) · 9101 dispatches
    # on to its unit 910101 at 40' (20': on time) · 910101 asks 回退 at 60', 9101 approves at 70' · 9101
    # dispatches to 910102 at 110' (40': late) · 910102 handles at 200' (2工作日: on time) · checked,
    # closed
    s1 = history(
        info("S1", G1, Source.SUPERVISOR, "sup-1"),
        [
            (c("S1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(WED, 0)),
            (c("S1", Action.ACCEPT, ACC), m(WED, 5)),
            (c("S1", Action.FILE, LEAD), m(WED, 10)),
            (c("S1", Action.DISPATCH, DISP, department="9101"), m(WED, 20)),
            (c("S1", Action.DISPATCH, SUB_9101, department="910101"), m(WED, 40)),
            (c("S1", Action.REQUEST_RETURN, UNIT_910101, "属环卫职责"), m(WED, 60)),
            (c("S1", Action.APPROVE, SUB_9101), m(WED, 70)),
            (c("S1", Action.DISPATCH, SUB_9101, department="910102"), m(WED, 110)),
            (c("S1", Action.FEEDBACK, UNIT_910102, "已清理"), m(WED, 200)),
            (c("S1", Action.CHECK, SUP1, passed=True), m(WED, 210)),
            (c("S1", Action.CLOSE, LEAD), m(WED, 220)),
        ],
    )
    # S2 (G3): disp-1 dispatches to sub-centre 9102 at 20' · 9102 asks 回退 (not its street) at 30',
    # disp-1 approves at 40' (back to 待派遣) · disp-1 dispatches to department 10 at 50'
    s2 = history(
        info("S2", G3, Source.SUPERVISOR, "sup-3"),
        [
            (c("S2", Action.REPORT, SUP3, **CLASS, source="supervisor"), m(WED, 0)),
            (c("S2", Action.ACCEPT, ACC), m(WED, 5)),
            (c("S2", Action.FILE, LEAD), m(WED, 10)),
            (c("S2", Action.DISPATCH, DISP, department="9102"), m(WED, 20)),
            (c("S2", Action.REQUEST_RETURN, SUB_9102, "不属本街道"), m(WED, 30)),
            (c("S2", Action.APPROVE, DISP), m(WED, 40)),
            (c("S2", Action.DISPATCH, DISP, department="10"), m(WED, 50)),
        ],
    )
    return s1 + s2


def test_second_dispatch_charges_the_sub_centre_its_units_and_the_centre_apart() -> None:
    agg = charged(second_dispatch_history())
    # sub-centre 9101: received S1 twice (the centre's dispatch, its unit's 回退), dispatched it on twice,
    # once on time, once misrouted: 按时二级派遣率 1/2, 二级派遣准确率 1/2; it handles nothing itself
    s9101 = wed(agg, ObjectType.DEPARTMENT, "9101")
    assert (s9101.sub_received, s9101.sub_dispatched, s9101.sub_dispatched_on_time, s9101.sub_returned) == (
        2, 2, 1, 1,
    )  # fmt: skip
    ind = indicators(s9101)
    assert (ind.sub_dispatch_on_time_rate, ind.accurate_sub_dispatch_rate) == (0.5, 0.5)
    assert (s9101.dispatched, s9101.handled, ind.to_handle, ind.handle_rate) == (0, 0, 0, None)
    # its units: 910101 received and returned S1 (应处置 0); 910102 handled it on time and it closed
    u1, u2 = wed(agg, ObjectType.DEPARTMENT, "910101"), wed(agg, ObjectType.DEPARTMENT, "910102")
    assert (u1.dispatched, u1.returned, indicators(u1).to_handle) == (1, 1, 0)
    assert (u2.dispatched, u2.handled, u2.handled_on_time, u2.closed) == (1, 1, 1, 1)
    assert (indicators(u2).handle_rate, indicators(u2).close_rate) == (1.0, 1.0)
    # sub-centre 9102 sent S2 back to the centre: its obligation is taken back; the centre dispatcher's
    # dispatch to it was his 错派 (准确派遣率 = (3 − 1) / 3), and department 10 got S2
    s9102 = wed(agg, ObjectType.DEPARTMENT, "9102")
    assert (s9102.sub_received, s9102.sub_dispatched, s9102.returned) == (0, 0, 0)
    disp1 = wed(agg, ObjectType.DISPATCHER, "disp-1")
    assert (disp1.dispatched, disp1.returned, disp1.dispatched_on_time) == (3, 1, 3)
    assert indicators(disp1).accurate_dispatch_rate == pytest.approx(2 / 3)
    assert wed(agg, ObjectType.DEPARTMENT, "10").dispatched == 1
    # regions count the centre's dispatches only: S1 once, S2 twice (one returned)
    district = wed(agg, ObjectType.DISTRICT, DISTRICT)
    assert (district.dispatched, district.returned, district.to_dispatch) == (3, 1, 3)
    assert (district.sub_received, district.sub_dispatched) == (0, 0)
    again = DailyAggregates(responsible=RESPONSIBLE)
    again.rebuild(sorted(second_dispatch_history(), key=lambda r: r[1].at))
    assert again.as_dict() == agg.as_dict()


# --- periods and daily rows -------------------------------------------------------------------


def test_days_and_period_sums() -> None:
    mon = AGG.period(ObjectType.DISTRICT, DISTRICT, D_MON, D_MON)
    tue = AGG.period(ObjectType.DISTRICT, DISTRICT, D_TUE, D_TUE)
    fri = AGG.period(ObjectType.DISTRICT, DISTRICT, D_FRI, D_FRI)
    # Monday: C1 whole, C2 up to dispatch
    assert (mon.reported, mon.filed, mon.dispatched, mon.handled, mon.closed) == (2, 2, 2, 1, 1)
    # Friday: C2's late feedback, check and overtime close
    assert counts(fri) == {
        "handled": 1,
        "handled_overdue": 1,
        "to_check": 1,
        "checked": 1,
        "checked_on_time": 1,
        "closed": 1,
        "overdue_closed": 1,
        "close_step_on_time": 1,
    }
    assert mon + tue + fri == week(ObjectType.DISTRICT, DISTRICT)
    # Mon–Tue leaves C2's Friday events out: handled C1 + C4 ×2 + C6 = 4, closed C1 C4 C6 = 3
    two = AGG.period(ObjectType.DISTRICT, DISTRICT, D_MON, D_TUE)
    assert (two.handled, two.closed, two.overdue_closed) == (4, 3, 0)
    assert AGG.period(ObjectType.DISTRICT, DISTRICT, D_TUE, D_MON) == Counters()  # empty range
    assert AGG.period(ObjectType.GRID, "999999999999999", D_MON, D_FRI) == Counters()
    # C2 (due Wed 10:40, handled Fri 10:00) ended Wednesday and Thursday 超时未处置: a stock on those days
    for d in (date(2025, 9, 24), date(2025, 9, 25)):
        assert counts(AGG.row(ObjectType.DISTRICT, DISTRICT, d) or Counters()) == {"overdue_eod": 1}
        assert counts(AGG.row(ObjectType.DEPARTMENT, "10", d) or Counters()) == {"overdue_eod": 1}
    assert AGG.row(ObjectType.DISTRICT, DISTRICT, date(2025, 9, 27)) is None
    assert AGG.row("district", DISTRICT, D_FRI) == fri


def test_local_date_is_the_shanghai_date() -> None:
    # 16:30 UTC on the 22nd is 00:30 on the 23rd in Shanghai
    at = datetime(2025, 9, 22, 16, 30, tzinfo=ZoneInfo("UTC"))
    i = info("N1", G1, Source.SUPERVISOR, "sup-1")
    (rec,) = history(i, [(c("N1", Action.REPORT, SUP1, **CLASS, source="supervisor"), at)])
    agg = DailyAggregates()
    agg.add(*rec)
    assert agg.row(ObjectType.GRID, G1, date(2025, 9, 23)) is not None
    assert agg.row(ObjectType.GRID, G1, date(2025, 9, 22)) is None
    utc = DailyAggregates()
    utc.add(*rec, tz=ZoneInfo("UTC"))
    assert utc.row(ObjectType.GRID, G1, date(2025, 9, 22)) is not None


def test_a_month_reads_at_most_31_rows_per_object() -> None:
    agg = DailyAggregates()
    start = datetime(2025, 8, 1, 9, 0, tzinfo=TZ)
    for day in range(92):  # one report a day, Aug–Oct: 92 rows per object
        case = f"R{day}"
        i = info(case, G1 if day % 2 else G3, Source.SUPERVISOR, "sup-1")
        when = start + timedelta(days=day)
        for rec in history(i, [(c(case, Action.REPORT, SUP1, **CLASS, source="supervisor"), when)]):
            agg.add(*rec)
    assert len(agg) == 92 * 5  # a row a day for the district, the supervisor, and grid/community/street
    agg.rows_read = 0
    sept = agg.period(ObjectType.DISTRICT, DISTRICT, date(2025, 9, 1), date(2025, 9, 30))
    assert sept.reported == 30 and agg.rows_read == 30
    agg.rows_read = 0
    by_grid = agg.period(ObjectType.GRID, None, date(2025, 9, 1), date(2025, 9, 30))
    assert by_grid.reported == 30 and agg.rows_read <= 2 * 31  # two grids, ≤ 31 rows each
    agg.rows_read = 0
    sup = agg.period(ObjectType.SUPERVISOR, "sup-1", date(2025, 2, 1), date(2025, 2, 28))
    assert sup == Counters() and agg.rows_read <= 31


# --- indicators -------------------------------------------------------------------------------


def test_district_indicators_have_the_exact_denominators() -> None:
    ind = indicators(week(ObjectType.DISTRICT, DISTRICT))
    assert ind.to_handle == 5  # 应处置 = dispatched 5 + reworked 1 − returned 1
    assert ind.to_close == 4  # 应结案 = handled 5 − reworked 1 (+ 0 overdue unhandled)
    expected = {
        "valid_report_rate": 3 / 4,  # 有效上报 3 / 监督员上报 4
        "missed_rate": 1 / 4,  # 漏报 1 / 立案 4
        "public_report_rate": 1 / 4,  # 监督举报核实 1 / 立案 4
        "accept_on_time_rate": 5 / 6,
        "verify_send_on_time_rate": 1 / 2,
        "verify_on_time_rate": 1 / 2,  # 按时核实 1 / 应核实 2
        "file_on_time_rate": 3 / 4,  # 按时立案 3 / 立案 4
        "accurate_file_rate": 4 / 4,  # (立案 4 − 立案后作废 0) / 立案 4: C3 C5 were voided before filing
        "dispatch_on_time_rate": 4 / 5,  # 按时派遣 4 / 应派遣 5
        "accurate_dispatch_rate": 4 / 5,  # (派遣 5 − 回退 1: C6's 错派) / 派遣 5
        "handle_rate": 5 / 5,  # 处置 5 / 应处置 5
        "handle_on_time_rate": 4 / 5,  # 按期处置 4 / 应处置 5
        "rework_rate": 1 / 5,  # 返工 1 / 处置 5
        "check_on_time_rate": 4 / 5,  # 按时核查 4 / 应核查 5
        "close_rate": 4 / 4,  # 结案 4 / 应结案 4
        "close_on_time_rate": 3 / 4,  # 按期结案 3 / 应结案 4
        "close_step_on_time_rate": 3 / 4,
    }
    for name, value in expected.items():
        assert getattr(ind, name) == pytest.approx(value), name


def test_overdue_unhandled_enters_the_closing_denominator() -> None:
    ind = indicators(week(ObjectType.DEPARTMENT, "10"), overdue_unhandled=1)
    # 应结案 = handled 4 − reworked 1 + 1 overdue unhandled = 4
    assert ind.to_close == 4
    assert ind.close_rate == pytest.approx(3 / 4) and ind.close_on_time_rate == pytest.approx(2 / 4)


def test_zero_denominators_give_none_never_0_or_1() -> None:
    ind = indicators(Counters())
    rates = [name for names in RATES_BY_TYPE.values() for name in names]
    assert all(getattr(ind, name) is None for name in rates)
    # sup-2 only verified: every rate without a denominator is None, 按时核实率 is 0/1 = 0
    sup2 = indicators(week(ObjectType.SUPERVISOR, "sup-2"))
    assert sup2.verify_on_time_rate == 0.0
    assert sup2.valid_report_rate is None and sup2.missed_rate is None and sup2.check_on_time_rate is None
    for kind in ObjectType:
        assert score_for(kind, ind) == Score(None, None, score_for(kind, ind).missing)
    assert grade_colour(None) == grade_colour(score_for(ObjectType.GRID, ind).grade)


# --- bands and grades -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "points"),
    [
        (0, 0),
        (100, 0),
        (101, 40),
        (300, 40),
        (301, 60),
        (500, 60),
        (501, 75),
        (1200, 75),
        (1201, 90),
        (2000, 90),
        (2001, 100),
        (50000, 100),
    ],
)
def test_count_band_edges(n: int, points: float) -> None:
    assert count_band_score(n) == points


@pytest.mark.parametrize(
    ("n", "points"),
    [
        (0, 100),
        (50, 100),
        (51, 90),
        (100, 90),
        (101, 75),
        (200, 75),
        (201, 60),
        (500, 60),
        (501, 40),
        (1000, 40),
        (1001, 0),
    ],
)
def test_department_band_edges_fewer_is_better(n: int, points: float) -> None:
    assert department_band_score(n) == points


@pytest.mark.parametrize(
    ("filed", "one", "two"),
    [
        (0, 100, 100),
        (1, 90, 90),
        (2.9, 90, 90),
        (3, 75, 90),
        (4, 75, 75),
        (5, 60, 75),
        (6, 60, 60),
        (7, 40, 60),
        (8, 40, 40),
        (9, 0, 40),
        (10, 0, 0),
    ],
)
def test_region_band_edges_per_area_class(filed: float, one: float, two: float) -> None:
    assert region_band_score(filed, AreaClass.ONE) == one
    assert region_band_score(filed, AreaClass.TWO) == two


@pytest.mark.parametrize(
    ("score", "letter"),
    [
        (100, "A"),
        (90, "A"),
        (89.99, "B"),
        (75, "B"),
        (74.99, "C"),
        (60, "C"),
        (59.99, "D"),
        (40, "D"),
        (39.99, "E"),
        (0, "E"),
        (None, None),
    ],
)
def test_grade_boundaries(score: float | None, letter: str | None) -> None:
    assert grade(score) == letter


def test_grade_colours_are_distinct_hex_colours() -> None:
    colours = [grade_colour(g) for g in "ABCDE"]
    assert len(set(colours)) == 5
    assert all(len(col) == 7 and col.startswith("#") for col in colours)
    assert grade_colour(None) not in colours


# --- composite scores -------------------------------------------------------------------------


def test_supervisor_scores_hit_the_grade_boundaries() -> None:
    # sup-3: 有效上报 1/1 → 100×40% + (1 − 漏报 0/1) → 100×20% + 按时核实 1/1 → 100×20%
    #        + 按时核查 1/2 → 50×20% = 40 + 20 + 20 + 10 = 90 → A (on the edge)
    s3 = supervisor_score(indicators(week(ObjectType.SUPERVISOR, "sup-3")))
    assert (s3.value, s3.grade, s3.missing) == (90.0, "A", ())
    # sup-1: 有效上报 2/3, 漏报 1/3, no 核实 task (left out), 按时核查 3/3:
    # (0.4·200/3 + 0.2·200/3 + 0.2·100) / 0.8 = (80/3 + 40/3 + 20) / 0.8 = 60 / 0.8 = 75 → B (edge)
    s1 = supervisor_score(indicators(week(ObjectType.SUPERVISOR, "sup-1")))
    assert (s1.value, s1.grade, s1.missing) == (75.0, "B", ("按时核实率",))
    # sup-2: only 按时核实 0/1 → 0 → E; the other three are missing
    s2 = supervisor_score(indicators(week(ObjectType.SUPERVISOR, "sup-2")))
    assert (s2.value, s2.grade) == (0.0, "E")
    assert s2.missing == ("有效上报率", "漏报率", "按时核查率")


def test_acceptor_score() -> None:
    # 受理数 6 → band 0 (×25%); 核实按时派发 1/2 → 50 (×40%); 核查按时派发: no acceptor step → missing
    # (0·0.25 + 50·0.40) / 0.65 = 20 / 0.65 = 30.769… → 30.77 → E
    s = acceptor_score(indicators(week(ObjectType.ACCEPTOR, "acc-1")))
    assert (s.value, s.grade, s.missing) == (30.77, "E", ("核查按时派发率",))


def test_shift_leader_score() -> None:
    # 按时立案 3/4 → 75×25% + 准确立案 (4−0)/4 → 100×40% + 按时结案 3/4 → 75×35%
    # = 18.75 + 40 + 26.25 = 85 → B. (His two correct 作废 of unfiled reports, C3 and C5, cost nothing:
    # counted against him they made it (4−2)/4 → 50×40%, 65 → C.)
    s = shift_leader_score(indicators(week(ObjectType.SHIFT_LEADER, "lead-1")))
    assert (s.value, s.grade, s.missing) == (85.0, "B", ())


def test_dispatcher_scores() -> None:
    # disp-1: 派遣数 4 → band 0 ×20% + 按时派遣 3/4 → 75×40% + 准确派遣 (4 − 回退 1 (C6))/4 → 75×40%
    # = 60 → C (edge); C4's failed 核查 is not his
    s1 = dispatcher_score(indicators(week(ObjectType.DISPATCHER, "disp-1")))
    assert (s1.value, s1.grade) == (60.0, "C")
    # disp-2: 0 + 100×40% + 100×40% = 80 → B
    s2 = dispatcher_score(indicators(week(ObjectType.DISPATCHER, "disp-2")))
    assert (s2.value, s2.grade) == (80.0, "B")


def test_department_scores() -> None:
    # dept 10: 立案数 4 dispatched − 1 returned = 3 → band 100 ×10%; 结案 3/3 → 100 ×30%;
    # 按期处置 3/4 → 75 ×30%; (1 − 返工 1/4) → 75 ×30% = 10 + 30 + 22.5 + 22.5 = 85 → B
    s10 = department_score(indicators(week(ObjectType.DEPARTMENT, "10")))
    assert (s10.value, s10.grade) == (85.0, "B")
    # dept 12: 10 + 30 + 30 + 30 = 100 → A
    s12 = department_score(indicators(week(ObjectType.DEPARTMENT, "12")))
    assert (s12.value, s12.grade) == (100.0, "A")
    # with one overdue unhandled case dept 10's 结案率 becomes 3/4: 10 + 22.5 + 22.5 + 22.5 = 77.5
    s10b = department_score(indicators(week(ObjectType.DEPARTMENT, "10"), overdue_unhandled=1))
    assert (s10b.value, s10b.grade) == (77.5, "B")


def test_region_scores() -> None:
    # G1: 监督举报 1/2 → (1−0.5)·100 = 50 ×10%; 立案 2 → band 90 ×20%; 结案 2/2 → 100 ×30%;
    # 按期结案 1/2 → 50 ×40% = 5 + 18 + 30 + 20 = 73 → C
    g1 = indicators(week(ObjectType.GRID, G1))
    assert (region_score(g1).value, region_score(g1).grade) == (73.0, "C")
    # Unicom's weights 10/20/30/10 are relative: (5 + 18 + 30 + 5) / 0.7 = 82.857… → 82.86
    assert region_score(g1, weights=RegionWeights(10, 20, 30, 10)).value == 82.86
    # district: 监督举报 1/4 → 75; 立案 4 over 3 grids = 1.33 → 90; 结案 4/4 → 100; 按期结案 3/4 → 75
    # 7.5 + 18 + 30 + 30 = 85.5 → B
    dist = indicators(week(ObjectType.DISTRICT, DISTRICT))
    assert region_score(dist, grids=3).value == 85.5
    # without the per-grid reading 立案 4 → band 75: 7.5 + 15 + 30 + 30 = 82.5
    assert region_score(dist, grids=1).value == 82.5


def test_region_weights_are_validated_and_flagged_unverified() -> None:
    assert RegionWeights() == RegionWeights(10, 20, 30, 40)
    assert "UNVERIFIED" in (RegionWeights.__doc__ or "")
    with pytest.raises(ValueError, match="non-negative"):
        RegionWeights(-1, 20, 30, 40)
    with pytest.raises(ValueError, match="positive sum"):
        RegionWeights(0, 0, 0, 0)


def test_rate_points_are_clamped() -> None:
    # a period with 1 filing and 3 voids of cases filed in the period before: 准确立案率 (1 − 3)/1 = −2,
    # scored 0 not −200 (voids of unfiled reports do not enter it)
    ctr = Counters(filed=1, filed_on_time=1, voided=5, filed_voided=3)
    ind = indicators(ctr)
    assert ind.accurate_file_rate == -2.0
    # 100×25% + 0×40%, 按时结案 missing: 25 / 0.65 = 38.46
    assert shift_leader_score(ind).value == 38.46


# --- the ranking table ------------------------------------------------------------------------


def test_evaluation_table_ranks_by_score() -> None:
    grids = evaluation_table(AGG, ObjectType.GRID, None, D_MON, D_FRI)
    # G2: 监督举报 0/1 → 100, 立案 1 → 90, 结案 1/1, 按期 1/1: 10 + 18 + 30 + 40 = 98; G3 likewise
    # (handled 2 − reworked 1 = 应结案 1); G1 73. Ties go by id.
    assert list(grids.object_id) == [G2, G3, G1]
    assert list(grids.score) == [98.0, 98.0, 73.0]
    assert list(grids.grade) == ["A", "A", "C"]
    assert set(RATES_BY_TYPE[ObjectType.GRID]) <= set(grids.columns)
    assert "valid_report_rate" not in grids.columns
    # community 110101001001: 监督举报 1/3 → 66.67; 立案 3 over 2 grids = 1.5 → 90; 结案 3/3;
    # 按期结案 2/3: 100/30·… = 20/3 + 18 + 30 + 80/3 = 81.33 → B
    comm = evaluation_table(AGG, "community", [COMMUNITY_12], D_MON, D_FRI)
    assert comm.loc[0, "score"] == 81.33 and comm.loc[0, "grade"] == "B"
    streets = evaluation_table(AGG, ObjectType.STREET, None, D_MON, D_FRI)
    assert list(streets.object_id) == [STREET_2, STREET_1] and list(streets.score) == [98.0, 81.33]
    sups = evaluation_table(AGG, ObjectType.SUPERVISOR, None, D_MON, D_FRI)
    assert list(sups.object_id) == ["sup-3", "sup-1", "sup-2"]
    assert list(sups.score) == [90.0, 75.0, 0.0]
    assert sups.loc[1, "missing"] == "按时核实率"
    depts = evaluation_table(AGG, ObjectType.DEPARTMENT, None, D_MON, D_FRI, overdue_unhandled={"10": 1})
    assert list(depts.object_id) == ["12", "10"] and list(depts.score) == [100.0, 77.5]
    # an id with no rows is listed, ungraded, last
    disp = evaluation_table(AGG, ObjectType.DISPATCHER, ["disp-9", "disp-1", "disp-2"], D_MON, D_FRI)
    assert list(disp.object_id) == ["disp-2", "disp-1", "disp-9"]
    assert pd.isna(disp.loc[2, "grade"]) and disp.loc[2, "colour"] == grade_colour(None)
    assert list(disp.loc[0, ["dispatched", "to_dispatch", "dispatched_on_time"]]) == [1, 1, 1]


def test_evaluation_table_options() -> None:
    # 二类 area: G1's 立案 2 is still band 90; a class-two grid with 3 filings would be 90 instead of 75
    table = evaluation_table(AGG, ObjectType.GRID, [G1], D_MON, D_FRI, area_classes={G1: AreaClass.TWO})
    assert table.loc[0, "score"] == 73.0
    # district with its real grid count, say 4 grids: 4/4 = 1 → still 90 → 85.5; 1 grid → 82.5
    d4 = evaluation_table(AGG, "district", None, D_MON, D_FRI, grids_per_region={DISTRICT: 4})
    d1 = evaluation_table(AGG, "district", None, D_MON, D_FRI, grids_per_region={DISTRICT: 1})
    assert (d4.loc[0, "score"], d1.loc[0, "score"]) == (85.5, 82.5)
    # without a responsibility map 漏报 cannot be attributed: the component is left out.
    # sup-1 then: 有效上报 2/3 ×0.4 + 按时核查 1 ×0.2 over 0.6 = (80/3 + 20) / 0.6 = 77.78
    bare = aggregates(responsible=None)
    sups = evaluation_table(bare, ObjectType.SUPERVISOR, ["sup-1"], D_MON, D_FRI)
    assert sups.loc[0, "score"] == 77.78
    assert sups.loc[0, "missing"] == "漏报率, 按时核实率"
    assert bare.period(ObjectType.SUPERVISOR, "sup-1", D_MON, D_FRI).filed == 2  # only his own


# --- incremental = rebuild --------------------------------------------------------------------


def random_case(
    rng: random.Random, n: int, start: datetime
) -> tuple[CaseInfo, list[tuple[Command, datetime]]]:
    """A random valid history of case ``n``: side paths chosen at random, gaps of 1 min – 2 days."""
    case = f"K{n}"
    grid = rng.choice([G1, G2, G3, "110102003004005"])
    public = rng.random() < 0.4
    source = rng.choice([Source.PUBLIC, Source.HOTLINE, Source.VIDEO]) if public else Source.SUPERVISOR
    reporter = ACC if public else rng.choice([SUP1, SUP3])
    sup = rng.choice([SUP1, SUP2, SUP3])
    t = start

    def nxt() -> datetime:
        nonlocal t
        t = t + timedelta(minutes=rng.choice([1, 5, 14, 16, 29, 31, 200, 900, 2000, 2900]))
        return t

    steps = [(c(case, Action.REPORT, reporter, **CLASS, source=source.value), t)]
    steps.append((c(case, Action.ACCEPT, ACC), nxt()))
    if public:
        confirmed = rng.random() < 0.7
        steps.append((c(case, Action.VERIFY, sup, confirmed=confirmed), nxt()))
        if not confirmed:
            steps.append((c(case, Action.VOID, LEAD, "不属实"), nxt()))
            return info(case, grid, source, reporter.id), steps
    if rng.random() < 0.1:
        steps.append((c(case, Action.VOID, LEAD, "重复"), nxt()))
        return info(case, grid, source, reporter.id), steps
    steps.append((c(case, Action.FILE, LEAD), nxt()))
    dept = DEPT10
    steps.append((c(case, Action.DISPATCH, rng.choice([DISP, DISP2])), nxt()))
    if rng.random() < 0.2:
        steps.append((c(case, Action.REQUEST_RETURN, dept, "非本单位"), nxt()))
        steps.append((c(case, Action.APPROVE, DISP), nxt()))
        dept = DEPT12
        steps.append((c(case, Action.DISPATCH, DISP2, department="12"), nxt()))
    if rng.random() < 0.3:
        steps.append((c(case, Action.URGE, BOSS, "催办"), nxt()))
    if rng.random() < 0.2:
        steps.append((c(case, Action.REQUEST_EXTENSION, dept, "协调", extra="1工作日"), nxt()))
        steps.append((c(case, rng.choice([Action.APPROVE, Action.REJECT]), DISP, "意见"), nxt()))
    if rng.random() < 0.2:
        steps.append((c(case, Action.REQUEST_SUSPENSION, dept, "缓办"), nxt()))
        steps.append((c(case, Action.APPROVE, DISP), nxt()))
        steps.append((c(case, Action.RESUME, DISP), nxt()))
    if rng.random() < 0.1:
        return info(case, grid, source, reporter.id), steps  # still being handled
    for _ in range(rng.choice([0, 0, 1, 2])):
        steps.append((c(case, Action.FEEDBACK, dept, "处置"), nxt()))
        steps.append((c(case, Action.CHECK, sup, "未通过", passed=False), nxt()))
    steps.append((c(case, Action.FEEDBACK, dept, "处置"), nxt()))
    steps.append((c(case, Action.CHECK, sup, passed=True), nxt()))
    special = rng.random() < 0.1
    steps.append((c(case, Action.CLOSE, LEAD, "特殊" if special else "", special=special), nxt()))
    return info(case, grid, source, reporter.id), steps


def random_log(seed: int, cases: int = 25) -> list[Record]:
    rng = random.Random(seed)
    records: list[Record] = []
    for n in range(cases):
        start = MON + timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
        case_info, steps = random_case(rng, n, start)
        records += history(case_info, steps)
    return records


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_incremental_add_equals_bulk_rebuild(seed: int) -> None:
    records = random_log(seed)
    live = DailyAggregates(responsible=RESPONSIBLE)
    for rec in sorted(records, key=lambda r: r[1].at):  # interleaved, as they happen
        live.add(*rec)
    bulk = DailyAggregates(responsible=RESPONSIBLE)
    bulk.add(*records[0])  # stale state that rebuild must forget
    bulk.rebuild(records)  # case by case
    assert live.as_dict() == bulk.as_dict()
    assert live.to_frame().equals(bulk.to_frame())
    # and the totals agree with a direct count over the log
    cases = {rec[1].case_id for rec in records}
    everything = live.period(ObjectType.DISTRICT, None, date(2025, 1, 1), date(2025, 12, 31))
    assert everything.reported == len(cases)
    assert everything.closed == sum(1 for r in records if r[1].action is Action.CLOSE)
    assert everything.handled == everything.handled_on_time + everything.handled_overdue
    assert everything.closed == everything.closed_on_time + everything.overdue_closed
    assert everything.filed + everything.voided == len(cases)  # every random case is filed or voided
    year = (date(2025, 1, 1), date(2025, 12, 31))
    levels = [live.period(t, None, *year) for t in (ObjectType.GRID, ObjectType.COMMUNITY, ObjectType.STREET)]
    assert all(level == everything for level in levels)  # the four region levels see the same cases


def test_records_from_commands_skips_rejections() -> None:
    i = info("Z1", G1, Source.SUPERVISOR, "sup-1")
    steps = [
        (c("Z1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(MON, 0)),
        (c("Z1", Action.FILE, LEAD), m(MON, 1)),  # rejected: not yet accepted
        (c("Z1", Action.ACCEPT, ACC), m(MON, 2)),
    ]
    recs = records_from_commands(i, steps, CTX)
    assert [ev.action for _, ev, _ in recs] == [Action.REPORT, Action.ACCEPT]
    assert recs[-1][2].status == "to_file"


def test_add_checks_the_case() -> None:
    # speed (≤ 1 ms per event) is measured in bench/, never in a timed unit test
    records = random_log(7, cases=150)
    agg = DailyAggregates(responsible=RESPONSIBLE)
    for rec in records:
        agg.add(*rec)
    _, ev, state = records[0]
    with pytest.raises(ValueError, match="does not belong"):
        agg.add(info("other", G1, Source.SUPERVISOR, "sup-1"), ev, state)


def test_case_info_codes() -> None:
    i = info("X", G1, Source.SUPERVISOR, "sup-1")
    assert (i.community, i.street, i.district) == (COMMUNITY_12, STREET_1, DISTRICT)
    assert i.regions() == (
        (ObjectType.GRID, G1),
        (ObjectType.COMMUNITY, COMMUNITY_12),
        (ObjectType.STREET, STREET_1),
        (ObjectType.DISTRICT, DISTRICT),
    )
    with pytest.raises(ValueError, match="15 digits"):
        info("X", "1101010010010", Source.SUPERVISOR, "sup-1")
    last = RECORDS[-1][2]
    assert CaseInfo.from_state(last, G2) == info("C6", G2, Source.SUPERVISOR, "sup-1")


def test_to_frame_lists_every_row() -> None:
    frame = AGG.to_frame()
    assert len(frame) == len(AGG)
    assert list(frame.columns) == ["object_type", "object_id", "date", *COUNTER_NAMES]
    district = frame[frame.object_type == "district"]
    # Wednesday and Thursday: only C2's 超时未处置 at the day's end
    assert list(district.date) == [D_MON, D_TUE, date(2025, 9, 24), date(2025, 9, 25), D_FRI]
    assert int(district.reported.sum()) == 6


def test_overdue_unhandled_at_is_a_running_handling_clock_past_its_deadline() -> None:
    """超时未处置 (CJ/T 292's 应结案 = 处置 + 超时未处置): C1 dispatched Monday 09:20 with 2 working days
    (due Wednesday 09:20) is late from then until its feedback; paused by 挂账 it is not; closed it is not."""
    steps = [
        (c("L1", Action.REPORT, SUP1, **CLASS, source="supervisor"), m(MON, 0)),
        (c("L1", Action.ACCEPT, ACC), m(MON, 5)),
        (c("L1", Action.FILE, LEAD), m(MON, 10)),
        (c("L1", Action.DISPATCH, DISP), m(MON, 20)),
    ]
    recs = history(info("L1", G1, Source.SUPERVISOR, "sup-1"), steps)
    dispatched = recs[-1][2]
    due = dispatched.timers["handle"].deadline
    assert due == datetime(2025, 9, 24, 9, 20, tzinfo=TZ)
    assert not overdue_unhandled_at(dispatched, due - timedelta(seconds=1))
    assert overdue_unhandled_at(dispatched, due + timedelta(seconds=1))
    handled = apply(dispatched, c("L1", Action.FEEDBACK, DEPT10, "done"), due + timedelta(hours=1), CTX)
    assert isinstance(handled, Accepted)
    assert not overdue_unhandled_at(handled.state, due + timedelta(hours=2))
    asked = apply(dispatched, c("L1", Action.REQUEST_SUSPENSION, DEPT10, "待审批"), m(MON, 30), CTX)
    assert isinstance(asked, Accepted)
    suspended = apply(asked.state, c("L1", Action.APPROVE, DISP), m(MON, 40), CTX)
    assert isinstance(suspended, Accepted)
    assert not overdue_unhandled_at(suspended.state, due + timedelta(days=3))


def test_a_past_period_counts_the_cases_it_ended_with_handling_late() -> None:
    """超时未处置数 at a period's end enters its 应结案 (CJ/T 292) after the fact too: C2, due Wednesday
    10:40 and handled on Friday, ended Wednesday and Thursday handling late."""
    mon_wed = AGG.period(ObjectType.DISTRICT, DISTRICT, D_MON, date(2025, 9, 24))
    assert mon_wed.overdue_eod == 1
    # 应结案 = 处置 4 (C1, C4 ×2, C6) − 返工 1 (C4) + 超时未处置 1 (C2) = 4; 结案 C1 C4 C6 = 3, all on time
    ind = indicators(mon_wed)
    assert ind.to_close == 4
    assert ind.close_rate == pytest.approx(3 / 4) and ind.close_on_time_rate == pytest.approx(3 / 4)
    # Mon–Tue ended before C2 was due: 应结案 3, 结案 3
    assert indicators(AGG.period(ObjectType.DISTRICT, DISTRICT, D_MON, D_TUE)).close_rate == 1.0
    # a stock, not a sum: Mon–Thu still holds one late case (Thursday's end), not two
    assert AGG.period(ObjectType.DISTRICT, DISTRICT, D_MON, date(2025, 9, 25)).overdue_eod == 1
    # department 10, Mon–Wed: 处置 C1, C4 ×2 − 返工 1 + C2 = 3; 结案 C1 C4 = 2 → 2/3
    d10 = indicators(AGG.period(ObjectType.DEPARTMENT, "10", D_MON, date(2025, 9, 24)))
    assert d10.to_close == 3 and d10.close_rate == pytest.approx(2 / 3)
    # every object of a level together: the stock of each on the end day
    assert AGG.period(ObjectType.DEPARTMENT, None, D_MON, date(2025, 9, 24)).overdue_eod == 1


def test_a_running_late_clock_survives_a_reload() -> None:
    """Rows and holders saved on Tuesday evening (C2's clock running, due Wednesday) and reloaded: the
    rest of the week gives the rows of the uninterrupted run (Wednesday's and Thursday's late ends)."""
    ordered = sorted(RECORDS, key=lambda r: r[1].at)
    cut = datetime(2025, 9, 23, 20, 0, tzinfo=TZ)
    first = DailyAggregates(responsible=RESPONSIBLE)
    for rec in ordered:
        if rec[1].at < cut:
            first.add(*rec)
    stored = {k: list(v) for k, v in first.holders().items()}
    assert stored["C2"][4] is not None  # C2's handling clock runs
    again = DailyAggregates(responsible=RESPONSIBLE)
    again.load(first.as_dict().items(), stored)
    for rec in ordered:
        if rec[1].at >= cut:
            again.add(*rec)
    assert again.as_dict() == AGG.as_dict()
