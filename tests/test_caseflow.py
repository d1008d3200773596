"""The case flow generator: determinism, consistency with the state machine, calibration (§1.4)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from domain.catalogue import CaseKind, load_catalogue
from domain.lifecycle import Action, CaseState, Command, Context, Policy, Rejection, Role, Rule, Source, apply
from domain.workcalendar import load_calendar
from feeds.sources.caseflow import CaseFlow, CaseFlowError, generate, summarise

TZ = ZoneInfo("Asia/Shanghai")
CAT = load_catalogue("cjt214")
CTX = Context(catalogue=CAT, calendar=load_calendar())
MON = datetime(2025, 3, 10, tzinfo=TZ)  # a Monday of an ordinary week (no holiday, no 调休)
# 17 streets × 5 communities × 19 grids, coded like Dongcheng's 15-digit unit grids
GRIDS = [f"110101{s:03d}{c:03d}{g:03d}" for s in range(1, 18) for c in range(1, 6) for g in range(1, 20)]
CASE_ID = re.compile(r"C\d{8}\d{5,}")


def run(flow: CaseFlow) -> list[tuple[Command, datetime]]:
    out = list(flow)
    assert flow.rejections == [], flow.rejections[:3]
    return out


@pytest.fixture(scope="module")
def week() -> tuple[CaseFlow, list[tuple[Command, datetime]]]:
    """Seven simulated days at Dongcheng's rate (~9,100 cases, ~67,000 commands; a few seconds)."""
    flow = generate(MON, 7, GRIDS, CTX, seed=20250310)
    return flow, run(flow)


def test_same_seed_same_stream_and_different_seed_different() -> None:
    def stream(seed: int) -> list[tuple[Command, datetime]]:
        return run(generate(MON, 1, GRIDS[:50], CTX, seed=seed, reports_per_day=300))

    a, b, c = stream(7), stream(7), stream(8)
    assert len(a) > 1000
    assert a == b
    assert a != c


def test_every_command_applies_when_replayed_independently(week) -> None:
    flow, commands = week
    states: dict[str, CaseState] = {}
    for cmd, at in commands:
        out = apply(states.get(cmd.case_id), cmd, at, CTX)
        assert not isinstance(out, Rejection), (cmd, at, out)
        states[cmd.case_id] = out.state
    assert states == flow.states
    assert set(states) == set(flow.cases)


def test_commands_are_in_time_order_within_the_horizon_with_unique_keys(week) -> None:
    flow, commands = week
    times = [at for _, at in commands]
    assert all(a <= b for a, b in pairwise(times))
    assert times[0] >= MON and times[-1] < MON + timedelta(days=7) == flow.end
    keys = [cmd.key for cmd, _ in commands]
    assert all(keys) and len(set(keys)) == len(keys)
    assert all(at.tzinfo is not None and at.utcoffset() == timedelta(hours=8) for at in times)
    # cases still open at the end simply stop there
    assert any(s.is_open for s in flow.states.values())


def test_reports_carry_point_free_metadata(week) -> None:
    flow, commands = week
    reports = [(cmd, at) for cmd, at in commands if cmd.action is Action.REPORT]
    assert len(reports) == len(flow.cases)
    for cmd, at in reports[:500]:
        assert CASE_ID.fullmatch(cmd.case_id) and cmd.case_id[1:9] == f"{at:%Y%m%d}"
        info = flow.cases[cmd.case_id]
        assert cmd.data["grid"] == info.grid and info.grid in GRIDS
        assert cmd.data["class_code"] == info.class_code and cmd.data["source"] == info.source.value
        assert info.reported_at == at
    sources = [flow.cases[c.case_id].source for c, _ in reports]
    share = {s: sources.count(s) / len(sources) for s in Source}
    assert 0.66 <= share[Source.SUPERVISOR] <= 0.74
    kinds = [flow.cases[c.case_id].kind for c, _ in reports]
    assert kinds.count(CaseKind.EVENT) > kinds.count(CaseKind.COMPONENT)
    emergencies = sum(flow.cases[c.case_id].emergency for c, _ in reports)
    assert 0 < emergencies < 0.01 * len(reports)
    # some grids are hotspots: the busiest 5 % of grids take well over 5 % of the reports
    per_grid = sorted(Counter(info.grid for info in flow.cases.values()).values())
    assert sum(per_grid[-len(GRIDS) // 20 :]) > 0.12 * len(reports)
    assert set(flow.hotspots) <= set(GRIDS) and flow.hotspots


def test_calibration_over_a_week_matches_dongcheng(week) -> None:
    """Domain.md §1.4: ~1,300/day peaking 9–11 h, ≥ 95 % closed, ~6.5 h to close; build-item bands."""
    flow, _ = week
    s = summarise(flow.states.values(), start=MON, end=flow.end)
    assert s["days"] == 7
    assert 1170 <= s["reports_per_day"] <= 1430
    assert s["closed_share"] >= 0.95
    assert 5.5 <= s["mean_hours_to_close"] <= 7.5
    assert 0.02 <= s["returned_share"] <= 0.05
    # the side paths (Calibration: 8 % of patrol reports 自处置, 0.4 % 立案后作废, 0.3 % 差错结案)
    assert 0.06 <= s["self_handled_share"] <= 0.10
    assert 0.001 <= s["void_after_filing_share"] <= 0.008
    assert 0.001 <= s["error_closed_share"] <= 0.007
    assert 0.07 <= s["second_dispatch_share"] <= 0.13  # 10 % via the street's sub-centre (二级派遣)
    assert 0.03 <= s["reworked_share"] <= 0.08
    assert 0.05 <= s["breaching_share"] <= 0.10
    assert 9 <= s["peak_hour"] <= 11
    hours = s["reports_by_hour"]
    assert sum(hours[9:12]) > 4 * sum(hours[0:6])  # low at night
    assert 0 < s["extended_share"] < 0.05 and 0 < s["suspended_share"] < 0.03 and s["urged_share"] > 0


def test_weekends_are_quieter(week) -> None:
    flow, _ = week
    per_day: dict[int, int] = defaultdict(int)
    for info in flow.cases.values():
        per_day[info.reported_at.weekday()] += 1
    weekday = sum(per_day[d] for d in range(5)) / 5
    weekend = (per_day[5] + per_day[6]) / 2
    assert 0.65 < weekend / weekday < 0.85


def test_small_run_uses_only_the_given_grids_and_supervisors() -> None:
    grids = ["110101001001001", "110101001001002", "110101001002001", "110101002001001"]
    sups = ["sup-zhang", "sup-li"]
    flow = generate(MON, 2, grids, CTX, seed=3, reports_per_day=200, supervisors=sups)
    commands = run(flow)
    assert {cmd.data["grid"] for cmd, _ in commands if cmd.action is Action.REPORT} == set(grids)
    supervisor_ids = {cmd.actor.id for cmd, _ in commands if cmd.actor.role is Role.SUPERVISOR}
    assert supervisor_ids == set(sups)
    # one acceptor / shift leader / dispatcher per shift, four crews
    for role in (Role.ACCEPTOR, Role.SHIFT_LEADER, Role.DISPATCHER):
        ids = {cmd.actor.id for cmd, _ in commands if cmd.actor.role is role}
        assert 1 <= len(ids) <= 4
    per_shift: dict[tuple[Role, object, int], set[str]] = defaultdict(set)
    for cmd, at in commands:
        if cmd.actor.role in (Role.ACCEPTOR, Role.SHIFT_LEADER, Role.DISPATCHER):
            per_shift[(cmd.actor.role, at.date(), at.hour // 8)].add(cmd.actor.id)
    assert per_shift and all(len(ids) == 1 for ids in per_shift.values())
    departments = {cmd.actor.department for cmd, _ in commands if cmd.actor.role is Role.DEPARTMENT}
    assert departments <= set(CAT.departments)


def test_department_override_routes_every_case() -> None:
    override = {c.key: "0201" for c in CAT.classes}
    commands = run(generate(MON, 1, GRIDS[:20], CTX, seed=5, reports_per_day=400, departments=override))
    dispatched = {cmd.data["department"] for cmd, _ in commands if cmd.action is Action.DISPATCH}
    assert dispatched == {"0201"}
    assert not any(cmd.action is Action.REQUEST_RETURN for cmd, _ in commands)  # nowhere else to go
    with pytest.raises(ValueError, match="unknown department"):
        generate(MON, 1, GRIDS, CTX, seed=1, departments={(CaseKind.EVENT, "0101"): "nope"})


def test_rejections_are_exposed_as_bugs_and_strict_raises() -> None:
    ctx = Context(catalogue=CAT, calendar=CTX.calendar, policy=Policy(file_roles=frozenset({Role.ADMIN})))
    flow = generate(MON, 1, GRIDS[:10], ctx, seed=1, reports_per_day=100)
    commands = list(flow)
    assert flow.rejected > 0 and {r.rule for _, _, r in flow.rejections} == {Rule.WRONG_ROLE}
    assert not any(cmd.action is Action.FILE for cmd, _ in commands)  # never yielded
    strict = generate(MON, 1, GRIDS[:10], ctx, seed=1, reports_per_day=100, strict=True)
    with pytest.raises(CaseFlowError, match="file"):
        list(strict)


def test_keep_false_forgets_finished_cases() -> None:
    flow = generate(MON, 2, GRIDS[:20], CTX, seed=9, reports_per_day=300, keep=False)
    commands = run(flow)
    reported = {cmd.case_id for cmd, _ in commands if cmd.action is Action.REPORT}
    assert flow.states and set(flow.states) == set(flow.cases) < reported
    assert all(s.is_open for s in flow.states.values())


def test_bad_arguments_are_refused_and_stream_is_lazy() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(MON.replace(tzinfo=None), 1, GRIDS, CTX, seed=1)
    with pytest.raises(ValueError, match="grid"):
        generate(MON, 1, [], CTX, seed=1)
    with pytest.raises(ValueError, match="days"):
        generate(MON, -1, GRIDS, CTX, seed=1)
    # a year-long stream can be consumed piecemeal
    first = list(islice(generate(MON, 365, GRIDS, CTX, seed=1), 100))
    assert len(first) == 100 and first[0][0].action is Action.REPORT
    assert summarise([])["cases"] == 0


def test_a_centre_with_both_optional_steps_gets_them_in_calibrated_shares() -> None:
    """With 反馈审核 and 派发核查 in the policy every handled case goes through both (3 % of reviews
    sent back; the acceptor's sending delay is uniform 1–20 min against a 15-min limit: ~74 % on
    time); without them, neither command appears."""
    both = Context(
        catalogue=CAT,
        calendar=load_calendar(),
        policy=Policy(feedback_review=True, acceptor_issues_check=True),
    )
    flow = generate(MON, 3, GRIDS, both, seed=5)
    commands = run(flow)
    actions = Counter(cmd.action for cmd, _ in commands)
    reviews = [cmd for cmd, _ in commands if cmd.action is Action.REVIEW]
    back = sum(not cmd.data["passed"] for cmd in reviews)
    # every feedback is reviewed (but those at the horizon)
    assert 0.99 * actions[Action.FEEDBACK] <= actions[Action.REVIEW] <= actions[Action.FEEDBACK]
    assert actions[Action.FEEDBACK] > 1000
    assert 0.015 <= back / len(reviews) <= 0.05
    # every 核查 answers a task the acceptor sent (some sent at the horizon are not answered yet)
    assert 0.99 * actions[Action.SEND_CHECK] <= actions[Action.CHECK] <= actions[Action.SEND_CHECK]
    assert all(cmd.actor.role is Role.DISPATCHER for cmd in reviews)
    sent = [(cmd, at) for cmd, at in commands if cmd.action is Action.SEND_CHECK]
    assert all(cmd.actor.role is Role.ACCEPTOR for cmd, _ in sent)
    plain = Counter(
        cmd.action for cmd, _ in run(generate(MON, 1, GRIDS[:50], CTX, seed=5, reports_per_day=300))
    )
    assert plain[Action.REVIEW] == plain[Action.SEND_CHECK] == 0 and plain[Action.CHECK] > 0


def test_second_dispatches_go_from_a_street_s_sub_centre_to_its_own_units(week) -> None:
    """二级派遣 in the stream: the centre dispatches to the sub-centre of the case's street (one per
    street, round robin), which dispatches on to one of its own units; never across streets."""
    flow, commands = week
    street_subs: dict[str, set[str]] = defaultdict(set)
    second = 0
    for cmd, _ in commands:
        if cmd.action is not Action.DISPATCH:
            continue
        target = cmd.data["department"]
        if cmd.actor.role is Role.DEPARTMENT:  # the sub-centre's 二级派遣
            second += 1
            assert CAT.is_subcentre(cmd.actor.department)
            assert target in CAT.units_of(str(cmd.actor.department))
        elif CAT.is_subcentre(target):
            street_subs[flow.cases[cmd.case_id].grid[:9]].add(target)
    assert second > 300
    assert all(len(subs) == 1 for subs in street_subs.values())
    assert len(street_subs) == 17


def test_injected_duplicates_repeat_an_earlier_problem_and_the_knob_at_zero_changes_nothing() -> None:
    from feeds.sources.caseflow import Calibration

    plain = run(generate(MON, 2, GRIDS[:200], CTX, seed=11, reports_per_day=800))
    assert plain == run(generate(MON, 2, GRIDS[:200], CTX, seed=11, reports_per_day=800,
                                 calibration=Calibration(injected_duplicates=0.0)))  # fmt: skip
    flow = generate(MON, 2, GRIDS[:200], CTX, seed=11, reports_per_day=800,
                    calibration=Calibration(injected_duplicates=0.2))  # fmt: skip
    commands = run(flow)
    dups = {c: i for c, i in flow.cases.items() if i.duplicate_of}
    originals = len(flow.cases) - len(dups)
    assert 0.14 * originals <= len(dups) <= 0.26 * originals
    for info in dups.values():
        first = flow.cases[info.duplicate_of or ""]
        assert first.duplicate_of is None and first.reported_at < info.reported_at
        assert (info.grid, info.class_code, info.condition_code, info.spot) == (
            first.grid, first.class_code, first.condition_code, first.spot)  # fmt: skip
        assert info.source is not first.source and info.offset_m != (0.0, 0.0)
    # a centre without grouping voids them after its 核实 (those reported just before the end are still open)
    voided = [flow.states[c].status.value == "voided" for c in dups]
    assert sum(voided) >= 0.9 * len(dups)
    assert all(0 <= u < 1 and 0 <= v < 1 for u, v in (i.spot for i in flow.cases.values()))
    assert len({cmd.key for cmd, _ in commands}) == len(commands)


def test_under_patrolled_areas_shift_finds_to_the_public_and_the_knob_at_default_changes_nothing() -> None:
    from feeds.sources.caseflow import Calibration

    grids = GRIDS[:200]  # 11 communities of one street (19 grids each) and a part of a 12th
    plain = generate(MON, 2, grids, CTX, seed=11, reports_per_day=800)
    commands = run(plain)
    same = generate(MON, 2, grids, CTX, seed=11, reports_per_day=800,
                    calibration=Calibration(under_patrolled=(), under_patrolled_count=0))  # fmt: skip
    assert commands == run(same)
    assert plain.under_patrolled == frozenset() and plain.patrol_minutes() == same.patrol_minutes()
    # three communities picked by the knob's own stream and one named: about a third of the grids
    cal = Calibration(under_patrolled=("110101001002",), under_patrolled_count=3)
    flow = generate(MON, 2, grids, CTX, seed=11, reports_per_day=800, calibration=cal)
    run(flow)
    assert len(flow.under_patrolled_areas) == 4 and flow.under_patrolled_areas[0] == "110101001002"
    assert flow.under_patrolled == {g for g in grids if g[:12] in flow.under_patrolled_areas}
    again = generate(MON, 2, grids, CTX, seed=11, reports_per_day=800, calibration=cal)
    assert again.under_patrolled_areas == flow.under_patrolled_areas  # seeded

    def patrol_share(f: CaseFlow, inside: bool) -> float:
        mine = [i for i in f.cases.values() if (i.grid in flow.under_patrolled) is inside]
        return sum(i.source is Source.SUPERVISOR for i in mine) / len(mine)

    assert patrol_share(plain, True) > 0.6 and patrol_share(plain, False) > 0.6
    assert patrol_share(flow, True) < 0.4 < 0.6 < patrol_share(flow, False)  # factor 0.4 of 0.7: 0.28
    # patrol minutes: a supervisor's day over their grids, that factor in the areas, the rest unchanged
    before, after = plain.patrol_minutes(), flow.patrol_minutes()
    assert set(before) == set(grids) and all(m > 0 for m in before.values())
    sups = {i.reporter for i in plain.cases.values() if i.source is Source.SUPERVISOR}
    assert sum(before.values()) == pytest.approx(2 * 420 * len(sups), rel=0.05)
    for g in grids:
        want = before[g] * (0.4 if g in flow.under_patrolled else 1.0)
        assert after[g] == pytest.approx(want, abs=0.2)
    one_day = plain.patrol_minutes(MON, MON + timedelta(days=1))
    assert sum(one_day.values()) == pytest.approx(sum(before.values()) / 2, rel=0.05)
