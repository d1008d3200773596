"""The case lifecycle (案件流程) of a 数字城管 centre as a pure state machine.

The closed loop of domain.md §1.1: 上报 → 受理 → 核实 (only for reports that are not a supervisor's
own) → 立案 or 作废 → 派遣 → 处置 (with 延期 / 挂账 / 回退 requests and their approvals) → 处理反馈 →
核查 → 结案 (正常 / 超时 / 特殊) or 返工 back to the same department; 督办 at any open stage.
Two steps of the two centres are the :class:`Policy`'s to switch on: the 指挥中心's 反馈审核 of each
处理反馈 (pass on, or send back to the department) and the acceptor's 派发核查 (else the 核查 task
goes out with the feedback). A case already in one of their statuses finishes it either way.
Naming: 核实 (verify) is the existence check *before* filing, 核查 (check) the result check *after*
handling.

``apply(case, command, at, ctx)`` is a pure function: it returns the new case state with the
events to append, or a :class:`Rejection` naming the rule that forbids the command. It never
mutates its input. Stage timers come from :mod:`domain.workcalendar`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from domain.catalogue import CaseKind, Catalogue, CatalogueError
from domain.timelimit import LimitUnit, TimeLimit
from domain.workcalendar import (
    CENTRE_STAGE_LIMITS,
    StageTimer,
    WorkCalendar,
    extend,
    is_overdue,
    pause,
    resume,
    start_timer,
    stop,
)


class Role(StrEnum):
    """Who acts on a case (岗位)."""

    SUPERVISOR = "supervisor"  # 监督员 (城管通)
    ACCEPTOR = "acceptor"  # 受理员
    SHIFT_LEADER = "shift_leader"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员
    DEPARTMENT = "department"  # 专业部门
    LEADER = "leader"  # 领导
    CALL_CENTER = "call_center"  # 热线 / 12345
    ADMIN = "admin"


class Source(StrEnum):
    """Where a report comes from (案件来源)."""

    SUPERVISOR = "supervisor"  # 监督员上报
    PUBLIC = "public"  # 公众举报
    HOTLINE = "hotline"  # 热线 / 12345
    LEADER = "leader"  # 领导交办
    VIDEO = "video"  # 视频上报
    DEPARTMENT = "department"  # 部门批转


class Status(StrEnum):
    """Fine-grained case status; each open one maps to exactly one display stage."""

    REPORTED = "reported"  # 待受理
    VERIFYING = "verifying"  # 待核实 (核实 task out)
    TO_FILE = "to_file"  # 待立案
    TO_DISPATCH = "to_dispatch"  # 待派遣
    SUB_DISPATCHING = "sub_dispatching"  # 待二级派遣: a 街道分中心 holds it, to dispatch to one of its units
    HANDLING = "handling"  # 处置中
    SUSPENDED = "suspended"  # 挂账
    REVIEWING = "reviewing"  # 待审核: the 指挥中心 reviews the 处理反馈 (when the policy has the review)
    TO_SEND_CHECK = "to_send_check"  # 待派核查: the acceptor issues the 核查 task (when the policy says so)
    TO_CHECK = "to_check"  # 待核查 (核查 task out)
    TO_CLOSE = "to_close"  # 待结案
    CLOSED = "closed"  # 结案
    VOIDED = "voided"  # 作废


class Stage(StrEnum):
    """Display stages of the wall's stage strip; their counts sum to the open cases."""

    TO_ACCEPT = "待受理"
    TO_VERIFY = "待核实"
    TO_FILE = "待立案"
    TO_DISPATCH = "待派遣"
    TO_SUB_DISPATCH = "待二级派遣"
    HANDLING = "处置中"
    SUSPENDED = "挂账"
    TO_REVIEW = "待审核"
    TO_SEND_CHECK = "待派核查"
    TO_CHECK = "待核查"
    TO_CLOSE = "待结案"


DISPLAY_STAGE: dict[Status, Stage] = {
    Status.REPORTED: Stage.TO_ACCEPT,
    Status.VERIFYING: Stage.TO_VERIFY,
    Status.TO_FILE: Stage.TO_FILE,
    Status.TO_DISPATCH: Stage.TO_DISPATCH,
    Status.SUB_DISPATCHING: Stage.TO_SUB_DISPATCH,
    Status.HANDLING: Stage.HANDLING,
    Status.SUSPENDED: Stage.SUSPENDED,
    Status.REVIEWING: Stage.TO_REVIEW,
    Status.TO_SEND_CHECK: Stage.TO_SEND_CHECK,
    Status.TO_CHECK: Stage.TO_CHECK,
    Status.TO_CLOSE: Stage.TO_CLOSE,
}
OPEN_STATUSES = frozenset(DISPLAY_STAGE)


class Action(StrEnum):
    """Lifecycle commands."""

    REPORT = "report"  # 上报
    ACCEPT = "accept"  # 受理
    VERIFY = "verify"  # 核实 result
    FILE = "file"  # 立案
    VOID = "void"  # 作废
    DISPATCH = "dispatch"  # 派遣; by a 街道分中心 holding the case, 二级派遣 to one of its units
    REQUEST_EXTENSION = "request_extension"  # 延期申请
    REQUEST_SUSPENSION = "request_suspension"  # 挂账申请
    REQUEST_RETURN = "request_return"  # 回退申请 ("非本单位")
    APPROVE = "approve"  # 审批通过 (of the pending request)
    REJECT = "reject"  # 审批不通过
    RESUME = "resume"  # 挂账恢复
    FEEDBACK = "feedback"  # 处理反馈 (handled)
    REVIEW = "review"  # 反馈审核: the 指挥中心 passes the 处理反馈 on, or sends it back to the department
    SEND_CHECK = "send_check"  # 派发核查: the acceptor sends the 核查 task to a supervisor
    CHECK = "check"  # 核查 result: pass → 待结案, fail → 返工
    CLOSE = "close"  # 结案
    URGE = "urge"  # 督办 (a 督办单 to the department holding the case, with a reply deadline)
    URGE_REPLY = "urge_reply"  # 督办回复: the department answers its oldest open 督办单
    ASSIGN = "assign"  # 指派: send the open 核实/核查 task to a (nearer) supervisor
    LOCATE = "locate"  # 定位: the acceptor places a 待受理 case reported without a point (needs location)
    MERGE = "merge"  # 合并: a report of a problem already reported joins the earlier case (issue 21)
    KEEP_APART = "keep_apart"  # 不合并: the acceptor finds the duplicate candidate is another problem


class ArchiveType(StrEnum):
    """How a case was closed (结案类型)."""

    NORMAL = "normal"  # 正常结案
    OVERTIME = "overtime"  # 超时结案
    ERROR = "error"  # 差错结案: a filed case found to be an error after its dispatch
    SPECIAL = "special"  # 特殊结案


class Rule(StrEnum):
    """Named reasons a command is rejected."""

    WRONG_ROLE = "wrong_role"
    WRONG_STATUS = "wrong_status"
    CASE_CLOSED = "case_closed"
    NO_CASE = "no_case"
    CASE_EXISTS = "case_exists"
    MISSING_OPINION = "missing_opinion"
    UNKNOWN_CLASS = "unknown_class"
    UNKNOWN_DEPARTMENT = "unknown_department"
    WRONG_DEPARTMENT = "wrong_department"
    BEFORE_CASE = "instant_before_case"
    IN_FUTURE = "instant_in_future"
    REQUEST_PENDING = "request_pending"
    NO_REQUEST = "no_request"
    MISSING_RESULT = "missing_result"
    BAD_EXTENSION = "bad_extension"
    UNKNOWN_GRID = "unknown_grid"  # checked by the store/pipeline, which know the geography
    KEY_CONFLICT = "idempotency_key_conflict"  # same key, different command
    BAD_DEADLINE = "bad_deadline"  # dispatch: ``deadline`` is not an ISO 8601 instant with a zone
    MISSING_ASSIGNEE = "missing_assignee"  # assign: no supervisor named
    NOT_SELF_HANDLEABLE = "not_self_handleable"  # 自处置 of an emergency class, or not by a supervisor
    NO_ORDER = "no_open_order"  # urge_reply: the department has no open 督办单 on the case
    NOT_A_UNIT = "not_a_unit"  # 二级派遣 to a department that is not one of the sub-centre's units
    LOCATION_KNOWN = "location_known"  # locate: the case has its point already (not "needs location")
    MISSING_LOCATION = "missing_location"  # locate: no point and grid (the pipeline resolves them)
    MISSING_MERGE_TARGET = "missing_merge_target"  # merge: no ``into`` case, or the case itself
    NO_DUPLICATE_CANDIDATE = "no_duplicate_candidate"  # keep_apart: the case has no candidate to refuse


@dataclass(frozen=True)
class Actor:
    """Who issues a command: an id, a role and, for departments, the department code."""

    id: str
    role: Role
    department: str | None = None


@dataclass(frozen=True)
class Command:
    """One lifecycle command. ``data`` carries action-specific fields (see ``apply``)."""

    action: Action
    case_id: str
    actor: Actor
    opinion: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""  # idempotency key


@dataclass(frozen=True)
class Request:
    """A pending department request awaiting the dispatcher's approval."""

    action: Action
    by: str
    at: datetime
    extra: TimeLimit | None = None


@dataclass(frozen=True)
class UrgeOrder:
    """A 督办单: who urged whom (the department then holding the case), by when to reply, and the reply."""

    no: int  # 1, 2, … within the case
    by: str
    target: str  # department code
    issued_at: datetime
    deadline: datetime
    replied_at: datetime | None = None
    reply: str = ""
    note: str = ""  # the urge's own opinion (what the issuer asks for)

    @property
    def is_open(self) -> bool:
        """Not replied yet."""
        return self.replied_at is None


@dataclass(frozen=True)
class CaseState:
    """Everything the lifecycle knows about one case (immutable)."""

    id: str
    kind: CaseKind
    class_code: str
    condition_code: str
    source: Source
    status: Status
    reported_at: datetime
    updated_at: datetime
    reporter: str
    emergency: bool = False
    department: str | None = None
    verified: bool | None = None
    timers: Mapping[str, StageTimer] = field(default_factory=dict)
    request: Request | None = None
    reworks: int = 0
    returns: int = 0
    urges: int = 0
    extensions: int = 0
    suspensions: int = 0
    dispatches: int = 0
    handled_overdue: bool = False
    closed_at: datetime | None = None
    archive: ArchiveType | None = None
    self_handled: bool = False  # 自处置: the reporting supervisor fixed it on the spot
    subcentre: str | None = None  # the 街道分中心 the centre dispatched it to (二级派遣), while it is theirs
    orders: tuple[UrgeOrder, ...] = ()  # 督办单, oldest first
    needs_location: bool = False  # reported without a point (an address or a grid only): LOCATE places it
    component: str | None = None  # the 部件 object the report names (16-digit identifier, issue 18)
    component_unit: str | None = None  # its unit that handles reports (domain.component.handling_unit)
    # duplicate problems (issue 21): the earlier open report this one may repeat (found on arrival,
    # domain.duplicates), until the acceptor merges it (then ``merged_into``) or keeps it apart
    duplicate_of: str | None = None
    merged_into: str | None = None

    @property
    def counts_as_closure(self) -> bool:
        """Closed and in 结案数 (应结案 holds it): not a 自处置 case nor a 差错结案 (counted apart)."""
        error = self.archive is ArchiveType.ERROR
        return self.status is Status.CLOSED and not self.self_handled and not error

    @property
    def stage(self) -> Stage | None:
        """The display stage (None once closed or voided)."""
        return DISPLAY_STAGE.get(self.status)

    @property
    def is_open(self) -> bool:
        """True until the case is closed or voided."""
        return self.status in OPEN_STATUSES

    def timer(self, stage: str) -> StageTimer | None:
        """The current timer of a stage, if it ever started."""
        return self.timers.get(stage)


@dataclass(frozen=True)
class CaseEvent:
    """One entry of the append-only case-event log."""

    case_id: str
    action: Action
    actor: str
    role: Role
    from_status: Status | None
    to_status: Status
    at: datetime
    opinion: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True)
class Accepted:
    """A command that applied: the new state and the events to append."""

    state: CaseState
    events: tuple[CaseEvent, ...]


@dataclass(frozen=True)
class Rejection:
    """A command that did not apply, with the rule that forbids it."""

    rule: Rule
    message: str


Outcome = Accepted | Rejection


URGE_REPLY_LIMIT = TimeLimit(2, LimitUnit.WORK_HOURS)  # a 督办单's reply time, unless the urge sets one


@dataclass(frozen=True)
class Policy:
    """Configurable permissions and centre-side stage limits."""

    file_roles: frozenset[Role] = frozenset({Role.SHIFT_LEADER})
    close_roles: frozenset[Role] = frozenset({Role.SHIFT_LEADER})
    void_roles: frozenset[Role] = frozenset({Role.SHIFT_LEADER})
    accept_roles: frozenset[Role] = frozenset({Role.ACCEPTOR})
    dispatch_roles: frozenset[Role] = frozenset({Role.DISPATCHER})
    urge_roles: frozenset[Role] = frozenset({Role.LEADER, Role.DISPATCHER, Role.SHIFT_LEADER})
    assign_roles: frozenset[Role] = frozenset({Role.ACCEPTOR, Role.SHIFT_LEADER, Role.LEADER})
    locate_roles: frozenset[Role] = frozenset({Role.ACCEPTOR})  # 定位 of a needs-location report
    merge_roles: frozenset[Role] = frozenset({Role.ACCEPTOR, Role.SHIFT_LEADER})  # 合并 / 不合并
    report_roles: frozenset[Role] = frozenset(
        {Role.SUPERVISOR, Role.ACCEPTOR, Role.CALL_CENTER, Role.LEADER, Role.DEPARTMENT, Role.ADMIN}
    )
    stage_limits: Mapping[str, TimeLimit] = field(default_factory=lambda: dict(CENTRE_STAGE_LIMITS))
    urge_reply_limit: TimeLimit = URGE_REPLY_LIMIT  # a 督办单's default reply time
    review_roles: frozenset[Role] = frozenset({Role.DISPATCHER})  # 指挥中心 reviews 处理反馈
    # the two centres (监督中心 / 指挥中心, domain.md §1.1): does the 指挥中心 review each 处理反馈
    # before it goes back (反馈审核)? Does the acceptor issue the 核查 task (else it goes out at once)?
    feedback_review: bool = False
    acceptor_issues_check: bool = False
    future_tolerance: timedelta = timedelta(seconds=5)


def stages_in_use(policy: Policy, catalogue: Catalogue | None = None) -> tuple[Stage, ...]:
    """The display stages a centre with this policy (and these departments) shows, in pipeline order."""
    unused = {Stage.TO_REVIEW} if not policy.feedback_review else set()
    if not policy.acceptor_issues_check:
        unused.add(Stage.TO_SEND_CHECK)
    if catalogue is not None and not catalogue.subcentres:
        unused.add(Stage.TO_SUB_DISPATCH)
    return tuple(s for s in Stage if s not in unused)


@dataclass(frozen=True)
class Context:
    """What transitions need besides the case: catalogue, calendar, policy and the clock."""

    catalogue: Catalogue
    calendar: WorkCalendar
    policy: Policy = field(default_factory=Policy)
    now: datetime | None = None  # reject instants later than this (plus tolerance)


# timer names
T_ACCEPT, T_VERIFY, T_FILE, T_DISPATCH, T_HANDLE, T_CHECK, T_CLOSE = (
    "accept",
    "verify",
    "file",
    "dispatch",
    "handle",
    "check",
    "close",
)
T_REVIEW, T_SEND_CHECK = "review", "send_check"  # 反馈审核, 派发核查 (the centres' steps the policy adds)
T_SUB_DISPATCH = "sub_dispatch"  # 二级派遣: the sub-centre's own dispatch limit
_CENTRE_LIMIT_FALLBACK = TimeLimit(0.25, CENTRE_STAGE_LIMITS["accept"].unit)


def _with(state: CaseState, **changes: Any) -> CaseState:
    """A copy of a (frozen) case state with some fields changed; much cheaper than dataclasses.replace."""
    return _built(CaseState, {**state.__dict__, **changes})


_T = TypeVar("_T")
# A new case state's fields in order, with their defaults (the required ones and timers set by _report).
_NEW_STATE: dict[str, Any] = {f.name: None if f.default is MISSING else f.default for f in fields(CaseState)}
assert [f.name for f in fields(CaseState) if f.default_factory is not MISSING] == ["timers"]


def _built(cls: type[_T], fields: dict[str, Any]) -> _T:
    """An instance of a frozen dataclass from a complete field dict, without its ``__init__``."""
    new = object.__new__(cls)
    object.__setattr__(new, "__dict__", fields)
    return new


def _reject(rule: Rule, message: str) -> Rejection:
    return Rejection(rule, message)


def _stage_limit(ctx: Context, stage: str) -> TimeLimit:
    return (
        ctx.policy.stage_limits.get(stage) or ctx.policy.stage_limits.get("accept") or _CENTRE_LIMIT_FALLBACK
    )


def _start(
    timers: dict[str, StageTimer], stage: str, at: datetime, ctx: Context, limit: TimeLimit | None = None
) -> None:
    timers[stage] = start_timer(stage, limit or _stage_limit(ctx, stage), at, ctx.calendar)


def _stop(timers: dict[str, StageTimer], stage: str, at: datetime) -> None:
    t = timers.get(stage)
    if t is not None and t.ended_at is None:
        timers[stage] = stop(t, at)


def handling_limit(ctx: Context, kind: CaseKind, class_code: str, condition_code: str) -> TimeLimit:
    """The handling time limit (处置时限) of a class and filing condition."""
    return ctx.catalogue.condition(kind, class_code, condition_code).limit


def _event(
    state_before: CaseState | None, state_after: CaseState, cmd: Command, at: datetime, **data: Any
) -> CaseEvent:
    actor = cmd.actor
    return _built(  # every field set: skips the frozen __init__ on the hot path
        CaseEvent,
        {
            "case_id": cmd.case_id,
            "action": cmd.action,
            "actor": actor.id,
            "role": actor.role,
            "from_status": state_before.status if state_before else None,
            "to_status": state_after.status,
            "at": at,
            "opinion": cmd.opinion,
            "data": dict(cmd.data, **data) if data else cmd.data,
            "key": cmd.key,
        },
    )


def _report(cmd: Command, at: datetime, ctx: Context) -> Outcome:
    d = cmd.data
    if cmd.actor.role not in ctx.policy.report_roles:
        return _reject(Rule.WRONG_ROLE, f"role {cmd.actor.role} may not report a case")
    try:
        kind = CaseKind(str(d.get("kind", "")))
        source = Source(str(d.get("source", "")))
    except ValueError as exc:
        return _reject(Rule.UNKNOWN_CLASS, str(exc))
    class_code = str(d.get("class_code", ""))
    condition_code = str(d.get("condition_code", ""))
    try:
        minor = ctx.catalogue.minor(kind, class_code)
        if condition_code:
            ctx.catalogue.condition(kind, class_code, condition_code)
        else:
            condition_code = minor.conditions[0].code
    except (CatalogueError, KeyError) as exc:
        return _reject(Rule.UNKNOWN_CLASS, str(exc))
    self_handled = bool(d.get("self_handled"))
    if self_handled and (cmd.actor.role is not Role.SUPERVISOR or source is not Source.SUPERVISOR):
        return _reject(Rule.NOT_SELF_HANDLEABLE, "only a supervisor's own report can be 自处置")
    if self_handled and minor.emergency:
        return _reject(Rule.NOT_SELF_HANDLEABLE, f"{class_code} is an emergency class: it is dispatched")
    timers: dict[str, StageTimer] = {}
    _start(timers, T_ACCEPT, at, ctx)
    state = _built(
        CaseState,
        {
            **_NEW_STATE,
            "id": cmd.case_id,
            "kind": kind,
            "class_code": class_code,
            "condition_code": condition_code,
            "source": source,
            "status": Status.REPORTED,
            "reported_at": at,
            "updated_at": at,
            "reporter": cmd.actor.id,
            "emergency": minor.emergency,
            "timers": timers,
            "self_handled": self_handled,
            "needs_location": bool(d.get("needs_location")),
            "component": str(d["component"]) if d.get("component") else None,
            "component_unit": str(d["component_unit"]) if d.get("component_unit") else None,
            "duplicate_of": str(d["duplicate_of"]) if d.get("duplicate_of") else None,
        },
    )
    return _built(Accepted, {"state": state, "events": (_event(None, state, cmd, at),)})


def _need(state: CaseState, *statuses: Status) -> Rejection | None:
    if state.status not in statuses:
        allowed = ", ".join(s.value for s in statuses)
        return _reject(Rule.WRONG_STATUS, f"case {state.id} is {state.status.value}; needs {allowed}")
    return None


def _role(cmd: Command, roles: frozenset[Role] | set[Role]) -> Rejection | None:
    if cmd.actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        return _reject(
            Rule.WRONG_ROLE, f"role {cmd.actor.role.value} may not {cmd.action.value}; allowed: {allowed}"
        )
    return None


def _opinion(cmd: Command) -> Rejection | None:
    if not cmd.opinion.strip():
        return _reject(Rule.MISSING_OPINION, f"{cmd.action.value} needs an opinion (意见)")
    return None


def _own_department(state: CaseState, cmd: Command) -> Rejection | None:
    if cmd.actor.role is Role.DEPARTMENT and cmd.actor.department != state.department:
        return _reject(
            Rule.WRONG_DEPARTMENT,
            f"case {state.id} is with department {state.department}, not {cmd.actor.department}",
        )
    return None


def _first(*checks: Rejection | None) -> Rejection | None:
    for c in checks:
        if c is not None:
            return c
    return None


# Each handler gets the state before the command and a copy of its timers to change in place; it
# returns the changed fields and extra event data, or a Rejection. The new state is built once.
Step = tuple[dict[str, Any], dict[str, Any]] | Rejection
Timers = dict[str, StageTimer]
_SUPERVISOR_ONLY = frozenset({Role.SUPERVISOR})
_DEPARTMENT_ONLY = frozenset({Role.DEPARTMENT})
_BEFORE_FILING = (Status.REPORTED, Status.VERIFYING, Status.TO_FILE)
_NO_EXTRA: dict[str, Any] = {}


def _accept(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if r := _first(_role(cmd, ctx.policy.accept_roles), _need(state, Status.REPORTED)):
        return r
    _stop(timers, T_ACCEPT, at)
    if state.self_handled:  # 自处理审核: the acceptor confirms the fix (to 结案) or refuses it (to 立案)
        if cmd.data.get("self_handled", True) is False:
            if r := _opinion(cmd):
                return r
            _start(timers, T_FILE, at, ctx)
            return {"status": Status.TO_FILE, "self_handled": False}, {"self_handled": False}
        _start(timers, T_CLOSE, at, ctx)
        return {"status": Status.TO_CLOSE}, {"self_handled": True}
    if state.source is Source.SUPERVISOR:  # a supervisor's own report needs no 核实
        _start(timers, T_FILE, at, ctx)
        return {"status": Status.TO_FILE}, _NO_EXTRA
    _start(timers, T_VERIFY, at, ctx)
    return {"status": Status.VERIFYING}, _NO_EXTRA


def _verify(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if r := _first(_role(cmd, _SUPERVISOR_ONLY), _need(state, Status.VERIFYING)):
        return r
    if "confirmed" not in cmd.data:
        return _reject(Rule.MISSING_RESULT, "verify needs confirmed: true/false")
    _stop(timers, T_VERIFY, at)
    _start(timers, T_FILE, at, ctx)
    return {"status": Status.TO_FILE, "verified": bool(cmd.data["confirmed"])}, _NO_EXTRA


def _file(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if r := _first(_role(cmd, ctx.policy.file_roles), _need(state, Status.TO_FILE)):
        return r
    cond = str(cmd.data.get("condition_code") or state.condition_code)
    cls = str(cmd.data.get("class_code") or state.class_code)
    try:
        ctx.catalogue.condition(state.kind, cls, cond)
    except (CatalogueError, KeyError) as exc:
        return _reject(Rule.UNKNOWN_CLASS, str(exc))
    _stop(timers, T_FILE, at)
    _start(timers, T_DISPATCH, at, ctx)
    return {"status": Status.TO_DISPATCH, "class_code": cls, "condition_code": cond}, _NO_EXTRA


def _void(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """作废: a report not to file (不予立案), or a filed case before its dispatch (立案后作废, which
    counts against the filing); once dispatched, a filed case found to be an error is 差错结案."""
    if r := _first(
        _role(cmd, ctx.policy.void_roles), _need(state, *_BEFORE_FILING, Status.TO_DISPATCH), _opinion(cmd)
    ):
        return r
    for t in (T_ACCEPT, T_VERIFY, T_FILE, T_DISPATCH):
        _stop(timers, t, at)
    return {"status": Status.VOIDED, "closed_at": at}, {"filed": state.status is Status.TO_DISPATCH}


def default_department(state: CaseState, catalogue: Catalogue) -> str:
    """Where a dispatch goes when the dispatcher names no department: the handling unit of the 部件
    object the report names (issue 18), else the class's default department."""
    if state.component_unit and state.component_unit in catalogue.departments:
        return state.component_unit
    return catalogue.minor(state.kind, state.class_code).department


def _dispatch(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """派遣 by the centre (to a department, or to a 街道分中心: then 待二级派遣 on the sub-centre's own
    clock); by the sub-centre holding the case, 二级派遣 to one of its units."""
    if state.status is Status.SUB_DISPATCHING:
        return _sub_dispatch(state, timers, cmd, at, ctx)
    if r := _first(_role(cmd, ctx.policy.dispatch_roles), _need(state, Status.TO_DISPATCH)):
        return r
    dept = str(cmd.data.get("department") or default_department(state, ctx.catalogue))
    if dept not in ctx.catalogue.departments:
        return _reject(Rule.UNKNOWN_DEPARTMENT, f"unknown department {dept!r}")
    due = cmd.data.get("deadline")  # an agreed deadline (e.g. a replayed 311 SLA) replaces 处置时限
    deadline = None
    if due is not None:
        try:
            deadline = datetime.fromisoformat(str(due))
        except ValueError:
            deadline = None
        if deadline is None or deadline.tzinfo is None or deadline.utcoffset() is None:
            return _reject(Rule.BAD_DEADLINE, f"deadline {due!r} is not an ISO 8601 instant with a zone")
    if ctx.catalogue.is_subcentre(dept):
        if deadline is not None:
            return _reject(
                Rule.BAD_DEADLINE, "an agreed deadline goes with a dispatch to a unit, not a sub-centre"
            )
        _stop(timers, T_DISPATCH, at)
        _start(timers, T_SUB_DISPATCH, at, ctx)
        changes: dict[str, Any] = {"status": Status.SUB_DISPATCHING, "department": dept, "subcentre": dept}
        return {**changes, "dispatches": state.dispatches + 1}, {"department": dept}
    _stop(timers, T_DISPATCH, at)
    _start(timers, T_HANDLE, at, ctx, handling_limit(ctx, state.kind, state.class_code, state.condition_code))
    if deadline is not None:
        timers[T_HANDLE] = replace(timers[T_HANDLE], deadline=deadline.astimezone(UTC))
    changes = {"status": Status.HANDLING, "department": dept, "dispatches": state.dispatches + 1}
    return changes, {"department": dept}


def _sub_dispatch(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """二级派遣: the sub-centre holding the case sends it to one of its units (``department``)."""
    if r := _first(_role(cmd, _DEPARTMENT_ONLY), _own_department(state, cmd)):
        return r
    unit = str(cmd.data.get("department") or "")
    if unit not in ctx.catalogue.units_of(state.department or ""):
        return _reject(Rule.NOT_A_UNIT, f"{unit!r} is not a unit of sub-centre {state.department}")
    _stop(timers, T_SUB_DISPATCH, at)
    _start(timers, T_HANDLE, at, ctx, handling_limit(ctx, state.kind, state.class_code, state.condition_code))
    return {"status": Status.HANDLING, "department": unit}, {
        "department": unit,
        "subcentre": state.department,
    }


def _request(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    # a sub-centre holding the case may ask to return it to the centre (not its street's)
    sub = (Status.SUB_DISPATCHING,) if cmd.action is Action.REQUEST_RETURN else ()
    if r := _first(
        _role(cmd, _DEPARTMENT_ONLY),
        _need(state, Status.HANDLING, *sub),
        _own_department(state, cmd),
        _opinion(cmd),
    ):
        return r
    if state.request is not None:
        return _reject(
            Rule.REQUEST_PENDING, f"case {state.id} already has a pending {state.request.action.value}"
        )
    extra = None
    if cmd.action is Action.REQUEST_EXTENSION:
        try:
            extra = TimeLimit.parse(str(cmd.data.get("extra", "")))
        except ValueError as exc:
            return _reject(Rule.BAD_EXTENSION, str(exc))
    return {"request": Request(cmd.action, cmd.actor.id, at, extra)}, _NO_EXTRA


def _decide(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """审批 of a pending request: by the centre's dispatcher, or for a sub-centre's unit by that
    sub-centre; an approved 回退 of a unit goes back to its sub-centre, of a sub-centre to the centre."""
    by_subcentre = (
        cmd.actor.role is Role.DEPARTMENT
        and state.status is Status.HANDLING
        and state.subcentre is not None
        and cmd.actor.department == state.subcentre
    )
    roles = _DEPARTMENT_ONLY if by_subcentre else ctx.policy.dispatch_roles
    if r := _first(_role(cmd, roles), _need(state, Status.HANDLING, Status.SUB_DISPATCHING)):
        return r
    req = state.request
    if req is None:
        return _reject(Rule.NO_REQUEST, f"case {state.id} has no pending request")
    extra: dict[str, Any] = {"request": req.action.value}
    if cmd.action is Action.REJECT:
        return _opinion(cmd) or ({"request": None}, extra)
    if req.action is Action.REQUEST_EXTENSION and req.extra is not None:
        timers[T_HANDLE] = extend(timers[T_HANDLE], req.extra, ctx.calendar)
        extra["extra"] = str(req.extra)
        return {"request": None, "extensions": state.extensions + 1}, extra
    if req.action is Action.REQUEST_SUSPENSION:
        timers[T_HANDLE] = pause(timers[T_HANDLE], at)
        return {"request": None, "status": Status.SUSPENDED, "suspensions": state.suspensions + 1}, extra
    # 回退 "非本单位": a unit's back to its sub-centre; else back to the centre's dispatcher
    if state.status is Status.HANDLING and state.subcentre is not None:
        _stop(timers, T_HANDLE, at)
        _start(timers, T_SUB_DISPATCH, at, ctx)
        changes: dict[str, Any] = {
            "request": None,
            "status": Status.SUB_DISPATCHING,
            "department": state.subcentre,
        }
        extra["from_department"] = state.department
        return {**changes, "returns": state.returns + 1}, extra
    _stop(timers, T_HANDLE, at)
    _stop(timers, T_SUB_DISPATCH, at)
    _start(timers, T_DISPATCH, at, ctx)
    changes = {
        "request": None,
        "status": Status.TO_DISPATCH,
        "department": None,
        "subcentre": None,
        "returns": state.returns + 1,
    }
    return changes, extra


def _resume(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if r := _first(_role(cmd, ctx.policy.dispatch_roles), _need(state, Status.SUSPENDED)):
        return r
    timers[T_HANDLE] = resume(timers[T_HANDLE], at, ctx.calendar)
    return {"status": Status.HANDLING}, _NO_EXTRA


def _feedback(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if r := _first(_role(cmd, _DEPARTMENT_ONLY), _need(state, Status.HANDLING), _own_department(state, cmd)):
        return r
    if state.request is not None:
        return _reject(Rule.REQUEST_PENDING, f"case {state.id} has a pending {state.request.action.value}")
    _stop(timers, T_HANDLE, at)
    late = is_overdue(timers[T_HANDLE], at)
    if ctx.policy.feedback_review:  # to the 指挥中心 first (反馈审核)
        _start(timers, T_REVIEW, at, ctx)
        status = Status.REVIEWING
    else:
        status = _towards_check(timers, at, ctx)
    return {"status": status, "handled_overdue": state.handled_overdue or late}, {"overdue": late}


def _towards_check(timers: Timers, at: datetime, ctx: Context) -> Status:
    """A 处理反馈 goes back to the 监督中心: to the acceptor to issue the 核查 task, or the task goes out."""
    if ctx.policy.acceptor_issues_check:
        _start(timers, T_SEND_CHECK, at, ctx)
        return Status.TO_SEND_CHECK
    _start(timers, T_CHECK, at, ctx)
    return Status.TO_CHECK


def _passed(cmd: Command) -> bool | Rejection:
    """The ``passed`` of a 核查 or 反馈审核: true or false (a string such as "false" is not a result)."""
    passed = cmd.data.get("passed")
    if not isinstance(passed, bool):
        msg = f"{cmd.action.value} needs passed: true/false, not {type(passed).__name__}"
        return _reject(Rule.MISSING_RESULT, msg)
    return passed


def _review(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """反馈审核 (指挥中心): ``passed`` sends the 处理反馈 on towards 核查; else back to the department
    with an opinion, on a new handling clock, like a failed 核查 (the department's 返工)."""
    if r := _first(_role(cmd, ctx.policy.review_roles), _need(state, Status.REVIEWING)):
        return r
    passed = _passed(cmd)
    if isinstance(passed, Rejection):
        return passed
    if not passed and (r := _opinion(cmd)):
        return r
    _stop(timers, T_REVIEW, at)
    if passed:
        return {"status": _towards_check(timers, at, ctx)}, _NO_EXTRA
    _start(timers, T_HANDLE, at, ctx, handling_limit(ctx, state.kind, state.class_code, state.condition_code))
    return {"status": Status.HANDLING, "reworks": state.reworks + 1}, _NO_EXTRA


def _send_check(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """派发核查: the acceptor sends the 核查 task (to ``assignee``, else the grid's supervisor)."""
    if r := _first(_role(cmd, ctx.policy.accept_roles), _need(state, Status.TO_SEND_CHECK)):
        return r
    _stop(timers, T_SEND_CHECK, at)
    _start(timers, T_CHECK, at, ctx)
    return {"status": Status.TO_CHECK}, _NO_EXTRA


def _check(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if r := _first(_role(cmd, _SUPERVISOR_ONLY), _need(state, Status.TO_CHECK)):
        return r
    passed = _passed(cmd)
    if isinstance(passed, Rejection):
        return passed
    if not passed and (r := _opinion(cmd)):
        return r
    _stop(timers, T_CHECK, at)
    if passed:
        _start(timers, T_CLOSE, at, ctx)
        return {"status": Status.TO_CLOSE}, _NO_EXTRA
    # 返工: back to the same department, history kept, a new handling clock
    _start(timers, T_HANDLE, at, ctx, handling_limit(ctx, state.kind, state.class_code, state.condition_code))
    return {"status": Status.HANDLING, "reworks": state.reworks + 1}, _NO_EXTRA


def _close(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    if cmd.data.get("error"):  # 差错结案: dispatched, not yet handled, and found to be an error
        if r := _first(
            _role(cmd, ctx.policy.close_roles),
            _need(state, Status.HANDLING, Status.SUSPENDED, Status.SUB_DISPATCHING),
            _opinion(cmd),
        ):
            return r
        _stop(timers, T_HANDLE, at)
        _stop(timers, T_SUB_DISPATCH, at)
        changes = {"status": Status.CLOSED, "closed_at": at, "archive": ArchiveType.ERROR, "request": None}
        return changes, {"archive": ArchiveType.ERROR.value, "from_department": state.department}
    if r := _first(_role(cmd, ctx.policy.close_roles), _need(state, Status.TO_CLOSE)):
        return r
    if cmd.data.get("special"):
        if r := _opinion(cmd):
            return r
        archive = ArchiveType.SPECIAL
    else:
        archive = ArchiveType.OVERTIME if state.handled_overdue else ArchiveType.NORMAL
    _stop(timers, T_CLOSE, at)
    return {"status": Status.CLOSED, "closed_at": at, "archive": archive}, {"archive": archive.value}


def _urge(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """督办: counted on the case; while a department holds it, a 督办单 to that department with a reply
    deadline (``deadline``: an ISO instant with a zone, else the policy's ``urge_reply_limit``)."""
    if r := _role(cmd, ctx.policy.urge_roles):
        return r
    if state.department is None or state.status not in (
        Status.HANDLING,
        Status.SUSPENDED,
        Status.SUB_DISPATCHING,
    ):
        return {"urges": state.urges + 1}, _NO_EXTRA
    due = cmd.data.get("deadline")
    if due is not None:
        try:
            deadline = datetime.fromisoformat(str(due))
        except ValueError:
            deadline = at  # refused below
        if deadline.tzinfo is None or deadline.utcoffset() is None or deadline <= at:
            msg = f"deadline {due!r} is not an ISO 8601 instant with a zone, after now"
            return _reject(Rule.BAD_DEADLINE, msg)
        deadline = deadline.astimezone(UTC)
    else:
        deadline = start_timer("urge", ctx.policy.urge_reply_limit, at, ctx.calendar).deadline
    order = UrgeOrder(len(state.orders) + 1, cmd.actor.id, state.department, at, deadline, note=cmd.opinion)
    extra = {"order": order.no, "target": order.target, "reply_by": deadline.isoformat()}
    return {"urges": state.urges + 1, "orders": (*state.orders, order)}, extra


def _urge_reply(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """督办回复: the department answers its oldest open 督办单 (or ``order``), with an opinion."""
    if r := _first(_role(cmd, _DEPARTMENT_ONLY), _opinion(cmd)):
        return r
    wanted = cmd.data.get("order")
    mine = [
        o for o in state.orders
        if o.is_open and o.target == cmd.actor.department and (wanted is None or str(o.no) == str(wanted))
    ]  # fmt: skip
    if not mine:
        msg = f"case {state.id} has no open 督办单 for department {cmd.actor.department}"
        return _reject(Rule.NO_ORDER, msg)
    order = replace(mine[0], replied_at=at, reply=cmd.opinion)
    orders = tuple(order if o.no == order.no else o for o in state.orders)
    return {"orders": orders}, {"order": order.no, "on_time": at <= order.deadline}


# the stage timer that runs while a case is in an open status (挂账: the paused handling clock)
TIMER_OF_STATUS: dict[Status, str] = {
    Status.REPORTED: T_ACCEPT,
    Status.VERIFYING: T_VERIFY,
    Status.TO_FILE: T_FILE,
    Status.TO_DISPATCH: T_DISPATCH,
    Status.SUB_DISPATCHING: T_SUB_DISPATCH,
    Status.HANDLING: T_HANDLE,
    Status.SUSPENDED: T_HANDLE,
    Status.REVIEWING: T_REVIEW,
    Status.TO_SEND_CHECK: T_SEND_CHECK,
    Status.TO_CHECK: T_CHECK,
    Status.TO_CLOSE: T_CLOSE,
}

# the commands that, failed, send a case back to its department (返工): 核查 and the 指挥中心's 反馈审核
REWORK_ACTIONS = frozenset({Action.CHECK, Action.REVIEW})

# the supervisor task (核实/核查) a case has out in a status; its kind is also its stage timer's name
TASK_OF_STATUS: dict[Status, str] = {Status.VERIFYING: "verify", Status.TO_CHECK: "check"}


def _assign(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """指派: the open 核实/核查 task goes to ``assignee``; the stage and its clock do not change."""
    if r := _first(_role(cmd, ctx.policy.assign_roles), _need(state, Status.VERIFYING, Status.TO_CHECK)):
        return r
    if not cmd.data.get("assignee"):
        return _reject(Rule.MISSING_ASSIGNEE, "assign needs assignee: the supervisor to send")
    return {}, {"task": TASK_OF_STATUS[state.status]}


def _locate(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """定位: a 待受理 case reported without a point gets one (``lon``, ``lat`` and its ``grid``, which the
    pipeline finds from a point or a chosen gazetteer address); the stage and its clock do not change."""
    if r := _first(_role(cmd, ctx.policy.locate_roles), _need(state, Status.REPORTED)):
        return r
    if not state.needs_location:
        return _reject(Rule.LOCATION_KNOWN, f"case {state.id} has its location; it does not need one")
    d = cmd.data
    lon, lat = d.get("lon"), d.get("lat")
    point = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat))
    if not d.get("grid") or not point:
        return _reject(Rule.MISSING_LOCATION, "locate needs lon and lat (WGS-84) or a gazetteer address_id")
    return {"needs_location": False}, _NO_EXTRA


def _merge(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """合并: a report not yet filed joins the earlier case of the same problem (``into``, checked open
    by the pipeline, which knows the other case). It ends here as 作废 with ``merged_into`` set: it
    keeps its source and reporter, is answered to its caller, and is no problem of its own in the
    indicators (it is not filed)."""
    if r := _first(_role(cmd, ctx.policy.merge_roles), _need(state, *_BEFORE_FILING)):
        return r
    into = cmd.data.get("into")
    if not isinstance(into, str) or not into or into == state.id:
        return _reject(Rule.MISSING_MERGE_TARGET, "merge needs into: the earlier case of the problem")
    for t in (T_ACCEPT, T_VERIFY, T_FILE):
        _stop(timers, t, at)
    return {"status": Status.VOIDED, "closed_at": at, "merged_into": into, "duplicate_of": None}, _NO_EXTRA


def _keep_apart(state: CaseState, timers: Timers, cmd: Command, at: datetime, ctx: Context) -> Step:
    """不合并: the duplicate candidate found on arrival is another problem; the case goes on as it was."""
    if r := _first(_role(cmd, ctx.policy.merge_roles), _need(state, *OPEN_STATUSES)):
        return r
    if state.duplicate_of is None:
        return _reject(Rule.NO_DUPLICATE_CANDIDATE, f"case {state.id} has no duplicate candidate")
    return {"duplicate_of": None}, {"candidate": state.duplicate_of}


_HANDLERS = {
    Action.ACCEPT: _accept,
    Action.VERIFY: _verify,
    Action.FILE: _file,
    Action.VOID: _void,
    Action.DISPATCH: _dispatch,
    Action.REQUEST_EXTENSION: _request,
    Action.REQUEST_SUSPENSION: _request,
    Action.REQUEST_RETURN: _request,
    Action.APPROVE: _decide,
    Action.REJECT: _decide,
    Action.RESUME: _resume,
    Action.FEEDBACK: _feedback,
    Action.REVIEW: _review,
    Action.SEND_CHECK: _send_check,
    Action.CHECK: _check,
    Action.CLOSE: _close,
    Action.URGE: _urge,
    Action.URGE_REPLY: _urge_reply,
    Action.ASSIGN: _assign,
    Action.LOCATE: _locate,
    Action.MERGE: _merge,
    Action.KEEP_APART: _keep_apart,
}


def _transition(state: CaseState, cmd: Command, at: datetime, ctx: Context) -> Outcome:
    timers = dict(state.timers)
    step = _HANDLERS[cmd.action](state, timers, cmd, at, ctx)
    if isinstance(step, Rejection):
        return step
    changes, extra = step
    fields = {**state.__dict__, "updated_at": at, "timers": timers}
    fields.update(changes)
    new = _built(CaseState, fields)  # the one state copy per command
    return _built(Accepted, {"state": new, "events": (_event(state, new, cmd, at, **extra),)})


def apply(state: CaseState | None, cmd: Command, at: datetime, ctx: Context) -> Outcome:
    """Apply one command at instant ``at``: the new state and its events, or a named rejection."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("lifecycle instants must be timezone-aware")
    at = at.astimezone(UTC)  # instants are kept in UTC; shown in the city's zone
    if ctx.now is not None and at > ctx.now + ctx.policy.future_tolerance:
        return _reject(Rule.IN_FUTURE, f"instant {at.isoformat()} is in the future")
    if cmd.action is Action.REPORT:
        if state is not None:
            return _reject(Rule.CASE_EXISTS, f"case {cmd.case_id} already exists")
        return _report(cmd, at, ctx)
    if state is None:
        return _reject(Rule.NO_CASE, f"no case {cmd.case_id}")
    if not state.is_open:
        return _reject(Rule.CASE_CLOSED, f"case {state.id} is {state.status.value}")
    if at < state.updated_at:
        return _reject(Rule.BEFORE_CASE, f"instant {at.isoformat()} is before the case's last change")
    return _transition(state, cmd, at, ctx)


def replay(
    commands: list[tuple[Command, datetime]], ctx: Context, state: CaseState | None = None
) -> tuple[CaseState | None, list[CaseEvent], list[Rejection]]:
    """Apply a sequence of commands to one case (from ``state``, else from nothing); rejected ones
    leave the state unchanged."""
    events: list[CaseEvent] = []
    rejections: list[Rejection] = []
    for cmd, at in commands:
        out = apply(state, cmd, at, ctx)
        if isinstance(out, Rejection):
            rejections.append(out)
        else:
            state = out.state
            events.extend(out.events)
    return state, events, rejections


# -- serialisation (for the store's case snapshot and idempotency fingerprints) ---------------------


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _pdt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _limit_json(limit: TimeLimit) -> list[Any]:
    return [limit.value, limit.unit.value]


_LIMITS: dict[tuple[Any, Any], TimeLimit] = {}  # memo of _limit_from: limits are few and immutable


def _limit_from(value: list[Any]) -> TimeLimit:
    key = (value[0], value[1])
    limit = _LIMITS.get(key)
    if limit is None:
        limit = TimeLimit(float(value[0]), LimitUnit(value[1]))
        if len(_LIMITS) >= 512:
            _LIMITS.clear()
        _LIMITS[key] = limit
    return limit


def timer_to_json(t: StageTimer) -> dict[str, Any]:
    """A stage timer as plain JSON."""
    paused, ended, limit = t.paused_since, t.ended_at, t.limit
    return {
        "stage": t.stage,
        "limit": [limit.value, limit.unit.value],
        "started_at": t.started_at.isoformat(),
        "deadline": t.deadline.isoformat(),
        "paused_since": None if paused is None else paused.isoformat(),
        "paused_seconds": t.paused_seconds,
        "ended_at": None if ended is None else ended.isoformat(),
        "extended_by": t.extended_by,
    }


def timer_from_json(d: Mapping[str, Any]) -> StageTimer:
    """The inverse of :func:`timer_to_json`."""
    started, deadline = _pdt(d["started_at"]), _pdt(d["deadline"])
    assert started is not None and deadline is not None
    return _built(  # every field set: skips the frozen __init__ (a case has up to seven timers)
        StageTimer,
        {
            "stage": d["stage"],
            "limit": _limit_from(d["limit"]),
            "started_at": started,
            "deadline": deadline,
            "paused_since": _pdt(d["paused_since"]),
            "paused_seconds": float(d["paused_seconds"]),
            "ended_at": _pdt(d["ended_at"]),
            "extended_by": float(d.get("extended_by", 0.0)),
        },
    )


def state_to_json(s: CaseState) -> dict[str, Any]:
    """A case state as plain JSON (exact round trip with :func:`state_from_json`)."""
    req = s.request
    return {
        "id": s.id,
        "kind": s.kind.value,
        "class_code": s.class_code,
        "condition_code": s.condition_code,
        "source": s.source.value,
        "status": s.status.value,
        "reported_at": s.reported_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
        "reporter": s.reporter,
        "emergency": s.emergency,
        "department": s.department,
        "verified": s.verified,
        "timers": {k: timer_to_json(v) for k, v in s.timers.items()},
        "request": None
        if req is None
        else {
            "action": req.action.value,
            "by": req.by,
            "at": _dt(req.at),
            "extra": None if req.extra is None else _limit_json(req.extra),
        },
        "reworks": s.reworks,
        "returns": s.returns,
        "urges": s.urges,
        "extensions": s.extensions,
        "suspensions": s.suspensions,
        "dispatches": s.dispatches,
        "handled_overdue": s.handled_overdue,
        "closed_at": _dt(s.closed_at),
        "archive": None if s.archive is None else s.archive.value,
        "self_handled": s.self_handled,
        "needs_location": s.needs_location,
        "component": s.component,
        "component_unit": s.component_unit,
        "duplicate_of": s.duplicate_of,
        "merged_into": s.merged_into,
        "subcentre": s.subcentre,
        "orders": [
            [o.no, o.by, o.target, _dt(o.issued_at), _dt(o.deadline), _dt(o.replied_at), o.reply, o.note]
            for o in s.orders
        ],
    }


def state_from_json(d: Mapping[str, Any]) -> CaseState:
    """The inverse of :func:`state_to_json`."""
    req = d.get("request")
    reported, updated = _pdt(d["reported_at"]), _pdt(d["updated_at"])
    assert reported is not None and updated is not None
    request = None
    if req:
        req_at = _pdt(req["at"])
        assert req_at is not None
        request = Request(
            Action(req["action"]),
            req["by"],
            req_at,
            None if req["extra"] is None else _limit_from(req["extra"]),
        )
    archive = d["archive"]
    return _built(  # every field set: skips the frozen __init__
        CaseState,
        {
            "id": d["id"],
            "kind": _KINDS.get(d["kind"]) or CaseKind(d["kind"]),
            "class_code": d["class_code"],
            "condition_code": d["condition_code"],
            "source": _SOURCES.get(d["source"]) or Source(d["source"]),
            "status": _STATUSES.get(d["status"]) or Status(d["status"]),
            "reported_at": reported,
            "updated_at": updated,
            "reporter": d["reporter"],
            "emergency": bool(d["emergency"]),
            "department": d["department"],
            "verified": d["verified"],
            "timers": {k: timer_from_json(v) for k, v in d["timers"].items()},
            "request": request,
            "reworks": int(d["reworks"]),
            "returns": int(d["returns"]),
            "urges": int(d["urges"]),
            "extensions": int(d["extensions"]),
            "suspensions": int(d["suspensions"]),
            "dispatches": int(d["dispatches"]),
            "handled_overdue": bool(d["handled_overdue"]),
            "closed_at": _pdt(d["closed_at"]),
            "archive": None if archive is None else ArchiveType(archive),
            "self_handled": bool(d.get("self_handled", False)),
            "needs_location": bool(d.get("needs_location", False)),
            "component": d.get("component"),
            "component_unit": d.get("component_unit"),
            "duplicate_of": d.get("duplicate_of"),
            "merged_into": d.get("merged_into"),
            "subcentre": d.get("subcentre"),
            "orders": tuple(order_from_json(o) for o in d.get("orders", ())),
        },
    )


def order_from_json(o: Sequence[Any]) -> UrgeOrder:
    """A 督办单 as :func:`state_to_json` writes it (a list)."""
    issued, deadline = _pdt(o[3]), _pdt(o[4])
    assert issued is not None and deadline is not None
    note = str(o[7]) if len(o) > 7 else ""  # (orders stored before the note was kept have none)
    return UrgeOrder(int(o[0]), str(o[1]), str(o[2]), issued, deadline, _pdt(o[5]), str(o[6]), note)


_KINDS: dict[Any, CaseKind] = {k.value: k for k in CaseKind}
_SOURCES: dict[Any, Source] = {k.value: k for k in Source}
_STATUSES: dict[Any, Status] = {k.value: k for k in Status}


# data the pipeline adds from what it knows at the time (a retry may find otherwise): not the command's
FOUND_BY_PIPELINE = frozenset({"duplicate_of"})


def fingerprint(cmd: Command, at: datetime) -> str:
    """A digest of a command's content, to tell a repeat from a different command with the same key."""
    body = json.dumps(
        {
            "action": cmd.action.value,
            "case": cmd.case_id,
            "actor": [cmd.actor.id, cmd.actor.role.value, cmd.actor.department],
            "opinion": cmd.opinion,
            "data": {k: v for k, v in cmd.data.items() if k not in FOUND_BY_PIPELINE},
            "at": at.astimezone(UTC).isoformat(),
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()
