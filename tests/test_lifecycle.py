"""The case lifecycle as whole case histories: happy paths, side paths, rejections, properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import CaseKind, Catalogue, load_catalogue
from domain.lifecycle import (
    DISPLAY_STAGE,
    OPEN_STATUSES,
    Accepted,
    Action,
    Actor,
    ArchiveType,
    CaseEvent,
    CaseState,
    Command,
    Context,
    Policy,
    Rejection,
    Role,
    Rule,
    Stage,
    Status,
    apply,
    replay,
    stages_in_use,
    state_from_json,
    state_to_json,
)
from domain.workcalendar import load_calendar

TZ = ZoneInfo("Asia/Shanghai")
CAT = load_catalogue("cjt214")
CAL = load_calendar()
CTX = Context(catalogue=CAT, calendar=CAL)
MON = datetime(2025, 9, 22, 9, 0, tzinfo=TZ)  # a Monday, a normal working week

SUP = Actor("sup-1", Role.SUPERVISOR)
ACC = Actor("acc-1", Role.ACCEPTOR)
LEAD = Actor("lead-1", Role.SHIFT_LEADER)
DISP = Actor("disp-1", Role.DISPATCHER)
DEPT = Actor("dept-10", Role.DEPARTMENT, department="10")
OTHER_DEPT = Actor("dept-12", Role.DEPARTMENT, department="12")
OTHER_DEPT = Actor("dept-12", Role.DEPARTMENT, department="12")
BOSS = Actor("boss", Role.LEADER)

# 0101 上水井盖, condition 03 "井盖弹跳…" → 2工作日, department 10 (from the shipped catalogue)
REPORT_SUP = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": "supervisor"}
REPORT_PUBLIC = {**REPORT_SUP, "source": "hotline"}
REPORT_EMERGENCY = {"kind": "event", "class_code": "0401", "condition_code": "01", "source": "supervisor"}


def cmd(action: Action, actor: Actor, opinion: str = "", **data: object) -> Command:
    return Command(action=action, case_id="C1", actor=actor, opinion=opinion, data=data)


def at(minutes: float) -> datetime:
    return MON + timedelta(minutes=minutes)


def run(steps: list[tuple[Command, datetime]]) -> tuple[CaseState, list, list[Rejection]]:
    state, events, rejections = replay(steps, CTX)
    assert state is not None
    return state, events, rejections


def happy_until_handling(source: dict) -> list[tuple[Command, datetime]]:
    steps = [
        (cmd(Action.REPORT, SUP if source["source"] == "supervisor" else ACC, **source), at(0)),
        (cmd(Action.ACCEPT, ACC), at(5)),
    ]
    if source["source"] != "supervisor":
        steps.append((cmd(Action.VERIFY, SUP, confirmed=True), at(20)))
    steps += [(cmd(Action.FILE, LEAD), at(30)), (cmd(Action.DISPATCH, DISP), at(40))]
    return steps


def test_catalogue_condition_is_what_the_tests_assume() -> None:
    cond = CAT.condition(CaseKind.COMPONENT, "0101", "03")
    assert str(cond.limit) == "2工作日"
    assert CAT.minor(CaseKind.COMPONENT, "0101").department == "10"


def test_happy_path_supervisor_report_needs_no_verification() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.FEEDBACK, DEPT, "已更换井盖"), at(240)),
        (cmd(Action.CHECK, SUP, passed=True), at(260)),
        (cmd(Action.CLOSE, LEAD), at(270)),
    ]
    state, events, rejections = run(steps)
    assert rejections == []
    assert [e.to_status for e in events] == [
        Status.REPORTED,
        Status.TO_FILE,
        Status.TO_DISPATCH,
        Status.HANDLING,
        Status.TO_CHECK,
        Status.TO_CLOSE,
        Status.CLOSED,
    ]
    assert [e.from_status for e in events[1:]] == [e.to_status for e in events[:-1]]
    assert state.status is Status.CLOSED and state.archive is ArchiveType.NORMAL
    assert state.stage is None and not state.is_open
    assert state.department == "10" and state.verified is None
    # handling started Mon 09:40 with 2工作日 = 16 working hours → Wed 09:40
    assert state.timers["handle"].deadline == datetime(2025, 9, 24, 9, 40, tzinfo=TZ)
    assert state.timers["handle"].ended_at == at(240)
    # the accept stage took 5 minutes against its 15-minute limit
    accept = state.timers["accept"]
    assert accept.ended_at is not None and accept.ended_at - accept.started_at == timedelta(minutes=5)


def test_public_report_is_verified_before_filing_and_voided_when_false() -> None:
    state, events, rejections = run(
        [
            (cmd(Action.REPORT, ACC, **REPORT_PUBLIC), at(0)),
            (cmd(Action.ACCEPT, ACC), at(3)),
            (cmd(Action.FILE, LEAD), at(4)),  # not yet: the 核实 task is out
            (cmd(Action.VERIFY, SUP, confirmed=False), at(25)),
            (cmd(Action.VOID, LEAD), at(30)),  # needs an opinion
            (cmd(Action.VOID, LEAD, "核实不属实"), at(31)),
        ]
    )
    assert [r.rule for r in rejections] == [Rule.WRONG_STATUS, Rule.MISSING_OPINION]
    assert [e.to_status for e in events] == [Status.REPORTED, Status.VERIFYING, Status.TO_FILE, Status.VOIDED]
    assert state.verified is False and state.status is Status.VOIDED and state.closed_at == at(31)


def test_return_as_not_ours_goes_back_to_the_dispatcher() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.REQUEST_RETURN, DEPT), at(50)),  # needs an opinion
        (cmd(Action.REQUEST_RETURN, DEPT, "非本单位"), at(51)),
        (cmd(Action.FEEDBACK, DEPT, "x"), at(52)),  # a request is pending
        (cmd(Action.APPROVE, DISP), at(60)),
        (cmd(Action.DISPATCH, DISP, department="12"), at(65)),
        (cmd(Action.FEEDBACK, DEPT, "done"), at(70)),  # no longer this department's case
        (cmd(Action.FEEDBACK, OTHER_DEPT, "done"), at(90)),
    ]
    state, events, rejections = run(steps)
    assert [r.rule for r in rejections] == [Rule.MISSING_OPINION, Rule.REQUEST_PENDING, Rule.WRONG_DEPARTMENT]
    assert state.returns == 1 and state.dispatches == 2 and state.department == "12"
    assert state.status is Status.TO_CHECK
    assert [e.to_status for e in events][-3:] == [Status.TO_DISPATCH, Status.HANDLING, Status.TO_CHECK]


def test_extension_moves_the_deadline_and_rejection_needs_an_opinion() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.REQUEST_EXTENSION, DEPT, "需协调产权单位", extra="1工作日"), at(60)),
        (cmd(Action.REJECT, DISP), at(61)),
        (cmd(Action.APPROVE, DISP), at(62)),
    ]
    state, _, rejections = run(steps)
    assert [r.rule for r in rejections] == [Rule.MISSING_OPINION]
    # Wed 09:40 + 1工作日 (8 working hours) → Thu 09:40
    assert state.timers["handle"].deadline == datetime(2025, 9, 25, 9, 40, tzinfo=TZ)
    assert state.extensions == 1 and state.request is None


def test_bad_extension_is_named() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.REQUEST_EXTENSION, DEPT, "x", extra="soon"), at(60))
    ]
    _, _, rejections = run(steps)
    assert [r.rule for r in rejections] == [Rule.BAD_EXTENSION]


def test_suspension_pauses_the_handling_clock() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.REQUEST_SUSPENSION, DEPT, "待供暖季后施工"), at(60)),
        (cmd(Action.APPROVE, DISP), at(80)),  # Mon 10:20, paused
    ]
    state, _, _ = run(steps)
    assert state.status is Status.SUSPENDED and state.stage is Stage.SUSPENDED
    # resumed on Tue 10:20: a full working day (8 h) was paused → deadline Wed 09:40 → Thu 09:40
    state2, _, rejections = run(steps + [(cmd(Action.RESUME, DISP), at(80 + 24 * 60))])
    assert rejections == []
    assert state2.status is Status.HANDLING
    assert state2.timers["handle"].deadline == datetime(2025, 9, 25, 9, 40, tzinfo=TZ)
    assert state2.suspensions == 1


def test_rework_returns_to_the_same_department_with_a_new_clock() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.FEEDBACK, DEPT, "已修复"), at(120)),
        (cmd(Action.CHECK, SUP, passed=False), at(150)),  # failing needs an opinion
        (cmd(Action.CHECK, SUP, "井盖仍有响动", passed=False), at(151)),
        (cmd(Action.FEEDBACK, DEPT, "已重新安装"), at(300)),
        (cmd(Action.CHECK, SUP, passed=True), at(320)),
        (cmd(Action.CLOSE, LEAD), at(330)),
    ]
    state, events, rejections = run(steps)
    assert [r.rule for r in rejections] == [Rule.MISSING_OPINION]
    assert state.reworks == 1 and state.department == "10" and state.archive is ArchiveType.NORMAL
    assert [e.action for e in events].count(Action.FEEDBACK) == 2
    # the second handling clock started at the failed check (Mon 11:31) → Wed 11:31
    assert state.timers["handle"].started_at == at(151)
    assert state.timers["handle"].deadline == datetime(2025, 9, 24, 11, 31, tzinfo=TZ)


def test_late_handling_closes_as_overtime_and_special_close_needs_opinion() -> None:
    late = datetime(2025, 9, 26, 10, 0, tzinfo=TZ)  # Friday, past Wednesday's deadline
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.FEEDBACK, DEPT, "done"), late),
        (cmd(Action.CHECK, SUP, passed=True), late + timedelta(minutes=10)),
    ]
    state, events, _ = run(steps + [(cmd(Action.CLOSE, LEAD), late + timedelta(minutes=20))])
    assert events[-3].data["overdue"] is True
    assert state.archive is ArchiveType.OVERTIME
    special, _, rejections = run(
        steps
        + [
            (cmd(Action.CLOSE, LEAD, special=True), late + timedelta(minutes=20)),
            (cmd(Action.CLOSE, LEAD, "领导批示特殊结案", special=True), late + timedelta(minutes=21)),
        ]
    )
    assert [r.rule for r in rejections] == [Rule.MISSING_OPINION]
    assert special.archive is ArchiveType.SPECIAL


def test_urge_at_any_open_stage_counts_and_keeps_status() -> None:
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.URGE, BOSS, "尽快处置"), at(50)),
        (cmd(Action.URGE, ACC, "x"), at(51)),  # an acceptor may not urge
    ]
    state, events, rejections = run(steps)
    assert state.urges == 1 and state.status is Status.HANDLING
    assert events[-1].action is Action.URGE and events[-1].from_status == events[-1].to_status
    assert [r.rule for r in rejections] == [Rule.WRONG_ROLE]


def test_assign_moves_the_open_task_without_touching_stage_or_clock() -> None:
    steps = [
        (cmd(Action.REPORT, ACC, **REPORT_PUBLIC), at(0)),
        (cmd(Action.ASSIGN, BOSS, assignee="sup-2"), at(1)),  # nothing to assign before 待核实
        (cmd(Action.ACCEPT, ACC, assignee="sup-1"), at(2)),
        (cmd(Action.ASSIGN, BOSS), at(3)),  # whom?
        (cmd(Action.ASSIGN, DISP, assignee="sup-2"), at(4)),  # a dispatcher does not send tasks
        (cmd(Action.ASSIGN, BOSS, assignee="sup-2"), at(5)),
        (cmd(Action.ASSIGN, ACC, assignee="sup-3"), at(6)),
    ]
    state, events, rejections = run(steps)
    assert [r.rule for r in rejections] == [Rule.WRONG_STATUS, Rule.MISSING_ASSIGNEE, Rule.WRONG_ROLE]
    assert state.status is Status.VERIFYING
    assigned = [e for e in events if e.action is Action.ASSIGN]
    assert [(e.data["assignee"], e.data["task"]) for e in assigned] == [
        ("sup-2", "verify"),
        ("sup-3", "verify"),
    ]
    assert all(e.from_status == e.to_status == Status.VERIFYING for e in assigned)
    accepted_state, _, _ = run(steps[:1] + steps[2:3])
    assert state.timers["verify"] == accepted_state.timers["verify"]  # the 核实 deadline stays


@pytest.mark.parametrize(
    ("steps", "rule"),
    [
        ([(cmd(Action.ACCEPT, ACC), at(1))], Rule.NO_CASE),
        (
            [(cmd(Action.REPORT, SUP, **REPORT_SUP), at(0)), (cmd(Action.REPORT, SUP, **REPORT_SUP), at(1))],
            Rule.CASE_EXISTS,
        ),
        ([(cmd(Action.REPORT, SUP, **{**REPORT_SUP, "class_code": "0199"}), at(0))], Rule.UNKNOWN_CLASS),
        ([(cmd(Action.REPORT, SUP, **{**REPORT_SUP, "condition_code": "09"}), at(0))], Rule.UNKNOWN_CLASS),
        ([(cmd(Action.REPORT, SUP, **{**REPORT_SUP, "kind": "thing"}), at(0))], Rule.UNKNOWN_CLASS),
        ([(cmd(Action.REPORT, DISP, **REPORT_SUP), at(0))], Rule.WRONG_ROLE),
        ([(cmd(Action.REPORT, SUP, **REPORT_SUP), at(0)), (cmd(Action.FILE, ACC), at(1))], Rule.WRONG_ROLE),
        (
            [(cmd(Action.REPORT, SUP, **REPORT_SUP), at(0)), (cmd(Action.DISPATCH, DISP), at(1))],
            Rule.WRONG_STATUS,
        ),
        (
            [(cmd(Action.REPORT, SUP, **REPORT_SUP), at(10)), (cmd(Action.ACCEPT, ACC), at(5))],
            Rule.BEFORE_CASE,
        ),
        (
            happy_until_handling(REPORT_SUP)[:-1] + [(cmd(Action.DISPATCH, DISP, department="99"), at(41))],
            Rule.UNKNOWN_DEPARTMENT,
        ),
        (happy_until_handling(REPORT_SUP) + [(cmd(Action.APPROVE, DISP), at(41))], Rule.NO_REQUEST),
        (happy_until_handling(REPORT_PUBLIC)[:2] + [(cmd(Action.VERIFY, SUP), at(9))], Rule.MISSING_RESULT),
        (
            happy_until_handling(REPORT_SUP)
            + [(cmd(Action.FEEDBACK, DEPT, "x"), at(41)), (cmd(Action.CHECK, SUP), at(42))],
            Rule.MISSING_RESULT,
        ),
        (
            happy_until_handling(REPORT_SUP)
            + [(cmd(Action.FEEDBACK, DEPT, "x"), at(41))]
            + [(cmd(Action.CHECK, SUP, "x", passed="false"), at(42))],  # "false" is not a result
            Rule.MISSING_RESULT,
        ),
        (
            happy_until_handling(REPORT_SUP)
            + [
                (cmd(Action.REQUEST_RETURN, DEPT, "a"), at(41)),
                (cmd(Action.REQUEST_SUSPENSION, DEPT, "b"), at(42)),
            ],
            Rule.REQUEST_PENDING,
        ),
        # 自处置: a supervisor's own report only, never an emergency class; a refusal needs an opinion
        ([(cmd(Action.REPORT, ACC, **REPORT_SUP, self_handled=True), at(0))], Rule.NOT_SELF_HANDLEABLE),
        ([(cmd(Action.REPORT, SUP, **REPORT_PUBLIC, self_handled=True), at(0))], Rule.NOT_SELF_HANDLEABLE),
        (
            [(cmd(Action.REPORT, SUP, **REPORT_EMERGENCY, self_handled=True), at(0))],
            Rule.NOT_SELF_HANDLEABLE,
        ),
        (
            [
                (cmd(Action.REPORT, SUP, **REPORT_SUP, self_handled=True), at(0)),
                (cmd(Action.ACCEPT, ACC, self_handled=False), at(5)),
            ],
            Rule.MISSING_OPINION,
        ),
        # 督办回复: only a department with an open 督办单, with an opinion; a 督办单's deadline after now
        (happy_until_handling(REPORT_SUP) + [(cmd(Action.URGE_REPLY, DEPT, "x"), at(41))], Rule.NO_ORDER),
        (
            happy_until_handling(REPORT_SUP)
            + [(cmd(Action.URGE, BOSS), at(41)), (cmd(Action.URGE_REPLY, DEPT), at(42))],
            Rule.MISSING_OPINION,
        ),
        (
            happy_until_handling(REPORT_SUP)
            + [(cmd(Action.URGE, BOSS), at(41)), (cmd(Action.URGE_REPLY, OTHER_DEPT, "x"), at(42))],
            Rule.NO_ORDER,
        ),
        (
            happy_until_handling(REPORT_SUP)
            + [(cmd(Action.URGE, BOSS, deadline=at(30).isoformat()), at(41))],
            Rule.BAD_DEADLINE,
        ),
        # 作废 once dispatched: 差错结案 instead, only while dispatched and unhandled, with an opinion
        (happy_until_handling(REPORT_SUP) + [(cmd(Action.VOID, LEAD, "x"), at(41))], Rule.WRONG_STATUS),
        (
            happy_until_handling(REPORT_SUP) + [(cmd(Action.CLOSE, LEAD, error=True), at(41))],
            Rule.MISSING_OPINION,
        ),
        (
            happy_until_handling(REPORT_SUP) + [(cmd(Action.CLOSE, DISP, "重复", error=True), at(41))],
            Rule.WRONG_ROLE,
        ),
        (
            happy_until_handling(REPORT_SUP)
            + [
                (cmd(Action.FEEDBACK, DEPT, "x"), at(41)),
                (cmd(Action.CLOSE, LEAD, "重复", error=True), at(42)),
            ],
            Rule.WRONG_STATUS,
        ),
    ],
)
def test_rejections_name_the_rule_and_leave_the_case_unchanged(steps, rule) -> None:
    state = None
    for command, instant in steps[:-1]:
        out = apply(state, command, instant, CTX)
        assert isinstance(out, Accepted), out
        state = out.state
    command, instant = steps[-1]
    out = apply(state, command, instant, CTX)
    assert isinstance(out, Rejection) and out.rule is rule, out
    assert out.message


def test_self_handling_error_closing_and_voiding_after_filing() -> None:
    """自处置: reported fixed, confirmed by the acceptor, closed without filing or dispatch; 作废 of a
    filed case before its dispatch; 差错结案 of a dispatched one (timers stopped, request cleared)."""
    state, events, rej = run(
        [
            (cmd(Action.REPORT, SUP, **REPORT_SUP, self_handled=True, media="m1,m2"), at(0)),
            (cmd(Action.ACCEPT, ACC), at(5)),
        ]
    )
    assert not rej and state.self_handled and state.status is Status.TO_CLOSE and state.stage == "待结案"
    assert events[-1].data["self_handled"] is True and state.timer("close") is not None
    assert state.department is None and state.dispatches == 0
    closed, _, rej = run(
        [
            (cmd(Action.REPORT, SUP, **REPORT_SUP, self_handled=True), at(0)),
            (cmd(Action.ACCEPT, ACC), at(5)),
            (cmd(Action.CLOSE, LEAD), at(9)),
        ]
    )
    assert not rej and closed.archive is ArchiveType.NORMAL and not closed.counts_as_closure
    refused, _, rej = run(
        [
            (cmd(Action.REPORT, SUP, **REPORT_SUP, self_handled=True), at(0)),
            (cmd(Action.ACCEPT, ACC, "照片看不出已修复", self_handled=False), at(5)),
        ]
    )
    assert not rej and refused.status is Status.TO_FILE and not refused.self_handled
    voided, events, rej = run(
        happy_until_handling(REPORT_SUP)[:-1] + [(cmd(Action.VOID, LEAD, "重复"), at(35))]
    )
    assert not rej and voided.status is Status.VOIDED and events[-1].data["filed"] is True
    assert voided.timers["dispatch"].ended_at == at(35)
    steps = happy_until_handling(REPORT_SUP) + [
        (cmd(Action.REQUEST_EXTENSION, DEPT, "材料未到", extra="1工作日"), at(41)),
        (cmd(Action.CLOSE, LEAD, "与另一案件重复", error=True), at(50)),
    ]
    erred, events, rej = run(steps)
    assert not rej and erred.status is Status.CLOSED and erred.archive is ArchiveType.ERROR
    assert erred.request is None and erred.timers["handle"].ended_at == at(50)
    assert events[-1].data["from_department"] == "10" and not erred.counts_as_closure
    assert state_from_json(state_to_json(erred)) == erred
    assert state_from_json(state_to_json(closed)) == closed


def test_closed_case_and_future_instants_are_rejected() -> None:
    steps = happy_until_handling(REPORT_SUP)[:2] + [(cmd(Action.VOID, LEAD, "重复上报"), at(10))]
    state, _, _ = run(steps)
    out = apply(state, cmd(Action.URGE, BOSS, "x"), at(11), CTX)
    assert isinstance(out, Rejection) and out.rule is Rule.CASE_CLOSED
    ctx_now = Context(catalogue=CAT, calendar=CAL, now=at(0))
    out = apply(None, cmd(Action.REPORT, SUP, **REPORT_SUP), at(60), ctx_now)
    assert isinstance(out, Rejection) and out.rule is Rule.IN_FUTURE
    with pytest.raises(ValueError, match="timezone-aware"):
        apply(None, cmd(Action.REPORT, SUP, **REPORT_SUP), datetime(2025, 9, 22, 9, 0), CTX)


def test_file_and_close_roles_are_configuration() -> None:
    from domain.lifecycle import Policy

    ctx = Context(catalogue=CAT, calendar=CAL, policy=Policy(file_roles=frozenset({Role.ACCEPTOR})))
    steps = [(cmd(Action.REPORT, SUP, **REPORT_SUP), at(0)), (cmd(Action.ACCEPT, ACC), at(1))]
    state, _, _ = replay(steps, ctx)
    assert isinstance(apply(state, cmd(Action.FILE, ACC), at(2), ctx), Accepted)
    assert isinstance(apply(state, cmd(Action.FILE, LEAD), at(2), ctx), Rejection)


def test_every_open_status_has_exactly_one_display_stage() -> None:
    assert set(DISPLAY_STAGE) == set(OPEN_STATUSES)
    assert {s.value for s in Stage} == {
        "待受理",
        "待核实",
        "待立案",
        "待派遣",
        "待二级派遣",
        "处置中",
        "挂账",
        "待审核",
        "待派核查",
        "待核查",
        "待结案",
    }
    assert set(DISPLAY_STAGE.values()) == set(Stage)
    # a centre shows the stages its policy uses: the two centres' optional steps only when it has them
    plain = stages_in_use(Policy())
    assert Stage.TO_REVIEW not in plain and Stage.TO_SEND_CHECK not in plain
    both = Policy(feedback_review=True, acceptor_issues_check=True)
    assert stages_in_use(both) == tuple(Stage) == stages_in_use(both, CAT)  # the shipped list has sub-centres
    no_subcentres = Catalogue(CAT.edition, CAT.classes, [d for d in CAT.departments.values() if not d.parent])
    assert Stage.TO_SUB_DISPATCH not in stages_in_use(both, no_subcentres)
    assert Status.CLOSED not in DISPLAY_STAGE and Status.VOIDED not in DISPLAY_STAGE


SUB_CENTRE = Actor("sub-9101", Role.DEPARTMENT, department="9101")
ITS_UNIT = Actor("u-910101", Role.DEPARTMENT, department="910101")
ACTORS = [SUP, ACC, LEAD, DISP, DEPT, OTHER_DEPT, BOSS, SUB_CENTRE, ITS_UNIT]
COMMANDS = st.builds(
    lambda action, actor, opinion, flag, extra, dept: Command(
        action=action,
        case_id="C1",
        actor=actor,
        opinion=opinion,
        data={
            **REPORT_PUBLIC,
            **({"department": dept} if dept else {}),
            "confirmed": flag,
            "passed": flag,
            "extra": extra,
            "special": not flag,
        },
    ),
    st.sampled_from(list(Action)),
    st.sampled_from(ACTORS),
    st.sampled_from(["", "意见"]),
    st.booleans(),
    st.sampled_from(["1工作日", "4工作时", "bad"]),
    st.sampled_from(["", "9101", "910101", "10"]),  # a sub-centre, its unit, a department
)

TWO_CENTRES = replace(CTX, policy=Policy(feedback_review=True, acceptor_issues_check=True))


@pytest.mark.parametrize("ctx", [CTX, TWO_CENTRES], ids=["one-step", "two-centres"])
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(COMMANDS, st.integers(min_value=0, max_value=3000)), min_size=1, max_size=40))
def test_no_command_sequence_reaches_an_inconsistent_state(ctx: Context, seq) -> None:
    state: CaseState | None = None
    t = MON
    for command, gap in seq:
        t = t + timedelta(minutes=gap)
        out = apply(state, command, t, ctx)
        if isinstance(out, Rejection):
            assert out.rule in set(Rule)
            continue
        new = out.state
        assert len(out.events) == 1
        ev = out.events[0]
        assert ev.to_status is new.status
        assert ev.from_status is (state.status if state else None)
        # open ⇔ a display stage; closed/voided ⇔ closed_at
        assert (new.stage is not None) == new.is_open
        assert (new.closed_at is not None) == (new.status in (Status.CLOSED, Status.VOIDED))
        # a department holds the case exactly while it is being handled or later, never before dispatch
        held: tuple[Status, ...] = (Status.SUB_DISPATCHING, Status.HANDLING, Status.SUSPENDED)
        held += (Status.REVIEWING, Status.TO_SEND_CHECK, Status.TO_CHECK)
        if new.status in (*held, Status.TO_CLOSE):
            assert new.department is not None
        if new.status in (Status.REPORTED, Status.VERIFYING, Status.TO_FILE):
            assert new.department is None
        # a pending request exists only while handling (or, a 回退, while a sub-centre holds it)
        if new.request is not None:
            assert new.status in (Status.HANDLING, Status.SUB_DISPATCHING)
        # a sub-centre is named exactly while it or its unit holds the case
        if new.status is Status.SUB_DISPATCHING:
            assert new.subcentre is not None and new.department == new.subcentre
        # the handling clock is paused exactly while suspended
        handle = new.timers.get("handle")
        if new.status is Status.SUSPENDED:
            assert handle is not None and handle.paused_since is not None
        elif handle is not None:
            assert handle.paused_since is None or handle.ended_at is not None
        # at most one timer runs, and only while open
        running = [k for k, v in new.timers.items() if v.ended_at is None]
        assert len(running) <= 1
        assert (len(running) == 1) == new.is_open
        state = new


def test_the_two_centres_review_the_feedback_and_the_acceptor_issues_the_check() -> None:
    """反馈审核 by the 指挥中心 (sent back once, then passed), then 派发核查 by the acceptor."""
    steps = happy_until_handling(REPORT_SUP) + [(cmd(Action.FEEDBACK, DEPT, "已处置"), at(100))]
    state, _, rejections = replay(steps, TWO_CENTRES)
    assert state is not None and not rejections
    assert state.status is Status.REVIEWING and state.stage is Stage.TO_REVIEW
    assert state.timers["review"].ended_at is None and "check" not in state.timers
    # who may review: the 指挥中心's dispatcher, not the acceptor nor the department itself
    for actor in (ACC, DEPT, SUP):
        out = apply(state, cmd(Action.REVIEW, actor, passed=True), at(110), TWO_CENTRES)
        assert isinstance(out, Rejection) and out.rule is Rule.WRONG_ROLE
    missing = apply(state, cmd(Action.REVIEW, DISP), at(110), TWO_CENTRES)
    assert isinstance(missing, Rejection) and missing.rule is Rule.MISSING_RESULT
    for odd in ("false", 0, None):  # a result is true or false: "false" is not a pass
        typed = apply(state, cmd(Action.REVIEW, DISP, "x", passed=odd), at(110), TWO_CENTRES)
        assert isinstance(typed, Rejection) and typed.rule is Rule.MISSING_RESULT, odd
    bare = apply(state, cmd(Action.REVIEW, DISP, passed=False), at(110), TWO_CENTRES)
    assert isinstance(bare, Rejection) and bare.rule is Rule.MISSING_OPINION
    # sent back: the department's 返工, on a new handling clock (as a failed 核查)
    opinion = "照片不清，未见处置效果"
    back = apply(state, cmd(Action.REVIEW, DISP, opinion, passed=False), at(110), TWO_CENTRES)
    assert isinstance(back, Accepted)
    state = back.state
    assert state.status is Status.HANDLING and state.reworks == 1 and state.department == "10"
    assert state.timers["review"].ended_at == at(110).astimezone(UTC)
    assert state.timers["handle"].started_at == at(110).astimezone(UTC)
    state, _, rejections = replay_from(state, [
        (cmd(Action.FEEDBACK, DEPT, "已重新处置"), at(200)),
        (cmd(Action.REVIEW, DISP, passed=True), at(210)),
    ], TWO_CENTRES)  # fmt: skip
    assert not rejections and state.status is Status.TO_SEND_CHECK and state.stage is Stage.TO_SEND_CHECK
    assert state.timers["send_check"].ended_at is None and "check" not in state.timers
    # the 核查 task is the acceptor's to send; a supervisor cannot answer a task not sent
    wrong = apply(state, cmd(Action.SEND_CHECK, DISP), at(215), TWO_CENTRES)
    assert isinstance(wrong, Rejection) and wrong.rule is Rule.WRONG_ROLE
    early = apply(state, cmd(Action.CHECK, SUP, passed=True), at(215), TWO_CENTRES)
    assert isinstance(early, Rejection) and early.rule is Rule.WRONG_STATUS
    state, _, rejections = replay_from(state, [
        (cmd(Action.SEND_CHECK, ACC, assignee="sup-1"), at(220)),
        (cmd(Action.CHECK, SUP, passed=True), at(240)),
        (cmd(Action.CLOSE, LEAD), at(250)),
    ], TWO_CENTRES)  # fmt: skip
    assert not rejections and state.status is Status.CLOSED and state.archive is ArchiveType.NORMAL
    assert state.timers["send_check"].ended_at == at(220).astimezone(UTC)
    assert state.timers["check"].started_at == at(220).astimezone(UTC)


def test_each_step_of_the_two_centres_is_optional_and_a_case_in_one_finishes_it() -> None:
    """Review only, acceptor only, neither (the 核查 task goes out with the feedback); a case left
    in 待审核 when the centre turns the review off still goes through its review."""
    handled = happy_until_handling(REPORT_SUP) + [(cmd(Action.FEEDBACK, DEPT, "已处置"), at(100))]
    review_only = replace(CTX, policy=Policy(feedback_review=True))
    state, _, _ = replay([*handled, (cmd(Action.REVIEW, DISP, passed=True), at(110))], review_only)
    assert state is not None and state.status is Status.TO_CHECK
    acceptor_only = replace(CTX, policy=Policy(acceptor_issues_check=True))
    state, _, _ = replay(handled, acceptor_only)
    assert state is not None and state.status is Status.TO_SEND_CHECK
    state, _, _ = replay(handled, CTX)
    assert state is not None and state.status is Status.TO_CHECK and "review" not in state.timers
    reviewing, _, _ = replay(handled, review_only)
    assert reviewing is not None
    out = apply(reviewing, cmd(Action.REVIEW, DISP, passed=True), at(110), CTX)  # the review switched off
    assert isinstance(out, Accepted) and out.state.status is Status.TO_CHECK
    assert state_from_json(state_to_json(reviewing)) == reviewing


def replay_from(
    state: CaseState, steps: list[tuple[Command, datetime]], ctx: Context
) -> tuple[CaseState, list[CaseEvent], list[Rejection]]:
    """Apply more commands to a case state (:func:`replay` from that state)."""
    after, events, rejections = replay(steps, ctx, state)
    assert after is not None
    return after, events, rejections


SUB = Actor("sub-9101", Role.DEPARTMENT, department="9101")  # 东华门街道分中心 (shipped list)
OTHER_SUB = Actor("sub-9102", Role.DEPARTMENT, department="9102")
UNIT_1 = Actor("u-910101", Role.DEPARTMENT, department="910101")  # its 城管执法队
UNIT_2 = Actor("u-910102", Role.DEPARTMENT, department="910102")  # its 环境卫生所


def test_a_sub_centre_dispatches_on_to_its_own_units_within_its_own_limit() -> None:
    """二级派遣: the centre dispatches to a 街道分中心 (待二级派遣, its own 30-min clock); only that
    sub-centre dispatches on, only to its own units; a unit's 回退 goes back to the sub-centre, which
    decides it and dispatches again; the unit handles on its own handling clock."""
    filed = happy_until_handling(REPORT_SUP)[:-1]
    state, _, rejections = replay([*filed, (cmd(Action.DISPATCH, DISP, department="9101"), at(40))], CTX)
    assert state is not None and not rejections
    assert (state.status, state.stage, state.department, state.subcentre) == (
        Status.SUB_DISPATCHING, Stage.TO_SUB_DISPATCH, "9101", "9101",
    )  # fmt: skip
    assert state.timers["sub_dispatch"].ended_at is None and "handle" not in state.timers
    assert state.timers["sub_dispatch"].deadline == at(70).astimezone(UTC)  # 30 min
    refusals = [
        (cmd(Action.DISPATCH, DISP, department="910101"), Rule.WRONG_ROLE),  # the centre's part is done
        (cmd(Action.DISPATCH, OTHER_SUB, department="910201"), Rule.WRONG_DEPARTMENT),
        (cmd(Action.DISPATCH, SUB, department="10"), Rule.NOT_A_UNIT),  # not one of its units
        (cmd(Action.DISPATCH, SUB, department="910201"), Rule.NOT_A_UNIT),  # another street's unit
        (cmd(Action.DISPATCH, SUB), Rule.NOT_A_UNIT),
        (cmd(Action.FEEDBACK, SUB), Rule.WRONG_STATUS),
    ]
    for c, rule in refusals:
        out = apply(state, c, at(50), CTX)
        assert isinstance(out, Rejection) and out.rule is rule, (c, out)
    # a 督办单 while the sub-centre holds it goes to the sub-centre
    urged = apply(state, cmd(Action.URGE, BOSS, "尽快派遣"), at(45), CTX)
    assert isinstance(urged, Accepted) and urged.state.orders[0].target == "9101"
    state, events, rejections = replay_from(state, [
        (cmd(Action.DISPATCH, SUB, department="910101"), at(60)),
        (cmd(Action.REQUEST_RETURN, UNIT_1, "属环卫职责"), at(70)),
    ], CTX)  # fmt: skip
    assert not rejections and state.department == "910101" and state.request is not None
    assert events[0].data == {"department": "910101", "subcentre": "9101"}
    assert state.timers["handle"].started_at == at(60).astimezone(UTC)
    # the sub-centre decides its unit's request (another sub-centre may not); back to the sub-centre
    out = apply(state, cmd(Action.APPROVE, OTHER_SUB), at(75), CTX)
    assert isinstance(out, Rejection) and out.rule is Rule.WRONG_ROLE
    state, _, rejections = replay_from(state, [
        (cmd(Action.APPROVE, SUB), at(75)),
    ], CTX)  # fmt: skip
    assert not rejections
    assert (state.status, state.department, state.subcentre, state.returns) == (
        Status.SUB_DISPATCHING, "9101", "9101", 1,
    )  # fmt: skip
    assert state.timers["sub_dispatch"].started_at == at(75).astimezone(UTC)
    state, _, rejections = replay_from(state, [
        (cmd(Action.DISPATCH, SUB, department="910102"), at(80)),
        (cmd(Action.FEEDBACK, UNIT_1, "已处置"), at(90)),  # no longer the first unit's
    ], CTX)  # fmt: skip
    assert [r.rule for r in rejections] == [Rule.WRONG_DEPARTMENT]
    state, _, rejections = replay_from(state, [
        (cmd(Action.FEEDBACK, UNIT_2, "已清理"), at(100)),
        (cmd(Action.CHECK, SUP, passed=True), at(110)),
        (cmd(Action.CLOSE, LEAD), at(120)),
    ], CTX)  # fmt: skip
    assert not rejections and state.status is Status.CLOSED and state.department == "910102"
    assert state.dispatches == 1  # the centre dispatched once
    assert state_from_json(state_to_json(state)) == state


def test_a_sub_centre_returns_a_case_that_is_not_its_street_s_to_the_centre() -> None:
    filed = happy_until_handling(REPORT_SUP)[:-1]
    state, _, rejections = replay([
        *filed,
        (cmd(Action.DISPATCH, DISP, department="9101"), at(40)),
        (cmd(Action.REQUEST_RETURN, SUB, "不属本街道"), at(50)),
        (cmd(Action.APPROVE, DISP), at(55)),
    ], CTX)  # fmt: skip
    assert state is not None and not rejections
    assert (state.status, state.department, state.subcentre, state.returns) == (
        Status.TO_DISPATCH, None, None, 1,
    )  # fmt: skip
    assert state.timers["sub_dispatch"].ended_at == at(55).astimezone(UTC)
    # the centre dispatches it straight to a department this time
    out = apply(state, cmd(Action.DISPATCH, DISP, department="10"), at(60), CTX)
    assert isinstance(out, Accepted) and out.state.status is Status.HANDLING and out.state.subcentre is None
