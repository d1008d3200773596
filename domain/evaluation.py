"""Evaluation (综合评价, CJ/T 292-2008): daily counters, indicators, composite scores and A–E grades.

Pure and event-driven. Every case event, together with the case's static :class:`CaseInfo` (grid,
source, reporter) and the case state right *after* the event, increments a few integer
:class:`Counters` in :class:`DailyAggregates`, one row per (object type, object id, local date). A
period reads at most one row per object and day, so a month costs ≤ 31 rows per object however
long the log is; :meth:`DailyAggregates.rebuild` replays a whole log and gives the same rows.

Objects evaluated (:class:`ObjectType`) and what each event counts for them. R = the four regions
of the case (grid = the 15-digit code, community = its first 12 digits, street 9, district 6);
D = the department holding the case; A = the actor's position (supervisor, acceptor, shift leader,
dispatcher, by the event's role; other roles have no position row); P = the reporting supervisor
of a supervisor-source case; S = the supervisor responsible for the case's grid (only when a
``responsible`` grid → supervisor mapping is given); X = the dispatcher of the current dispatch;
F = the shift leader who filed the case; T = the supervisor a 核实/核查 task was issued to (the
command's ``assignee``, else S). Sources are classed by :data:`SOURCE_CLASS`: 监督员上报 (patrol),
监督举报 (公众举报, 热线: public) and neither (领导交办, 视频, 部门批转: other).

=============== ===================================================== =========================
event           counters                                              objects
=============== ===================================================== =========================
report          reported                                              R, A
                patrol_reported (patrol source)                       R, P
                public_reported (public source: 监督举报)             R
                other_reported (领导交办, 视频, 部门批转)             R
accept          accepted, accepted_on_time                            R, A
                to_verify, verify_sent_on_time (核实 task sent)       R, A (the acceptor)
                to_verify (the 核实 task issued: 应核实)              T
                self_handled + valid_reported (自处理审核 passed)     R, P
assign          to_verify | to_check moves (指派)                     +1 new T, −1 old T
verify          verified, verified_on_time                            R, A
                to_verify (answered by another than T: moves)         +1 A, −1 T
                missed (漏报 / 监督举报核实: public, confirmed)       R, S
file            filed, filed_on_time                                  R, A
                to_dispatch (a dispatch clock starts)                 R
                valid_reported + filed (source = supervisor)          P (valid_reported also R)
                filed (any other source)                              S
void, merge     voided                                                R, A
                filed_voided (the case had been filed)                R, F
                to_dispatch −1 (filed, not yet dispatched)            R
dispatch        dispatched, dispatched_on_time                        R, A
                to_dispatch (the dispatcher's own 应派遣)              A
                dispatched (cases received)                           D
approve         extended / suspended (延期 / 挂账 approved)           R, D
                returned (回退 approved: a 错派)                      R, D, X
                to_dispatch (a new dispatch clock)                    R
feedback        handled, handled_on_time | handled_overdue            R, D
                to_check (核查 task sent)                             R, T
check           checked, checked_on_time                              R, A
                to_check (answered by another than T: moves)          +1 A, −1 T
                reworked (check failed: 返工)                         R, D
close           closed, closed_on_time | overdue_closed               R, A, D
                close_step_on_time (the 结案 step within its limit)   R, A
close 自处置    closed, closed_on_time, close_step_on_time            A only (not in 应结案)
close 差错      error_closed                                          R, A
                filed_voided (a filing error)                         R, F
                withdrawn (its handling obligation taken back)        R, D
urge            urged                                                 R, D
                urge_orders (a 督办单: the case is with a department) R, D
urge_reply      urge_replied, urge_replied_on_time (by its deadline)  R, D (the order's target)
any (next)      overdue_eod on each day end the handling clock ran    R, D (of the interval)
                past its deadline since the case's last event
=============== ===================================================== =========================

On-time rules, decided when the event happens so that aggregation stays incremental: a centre
stage (受理, 核实, 立案, 派遣, 核查, 结案 step) is on time when its timer in the state after the
event, stopped at the event, did not pass its deadline (:func:`domain.workcalendar.is_overdue`; a
stage without a timer counts as on time);
处置 uses the feedback event's ``overdue`` flag (the handling clock with suspensions and
extensions); 按期结案 is a close archived as NORMAL or SPECIAL (a leader-approved special close is
not held against the timeliness), OVERTIME counts as ``overdue_closed``. The local date of an
event is its instant in the city's zone (Asia/Shanghai by default).

Choices where domain.md §1.4 leaves room (all documented where they are computed):

- 应处置数 = dispatched + reworked − returned − withdrawn: every handling clock the lifecycle starts
  (a dispatch, a rework) is one obligation, and an approved 回退 ("非本单位") or a 差错结案 of the
  case (found to be an error while the department held it) is not one; this keeps 处置率 ≤ 1
  although every feedback counts as a 处置.
- 自处置 (a supervisor's own report, fixed on the spot, confirmed by the acceptor's 自处理审核)
  counts as 自处置数 and 有效上报 of the supervisor and the regions; it is never filed nor dispatched,
  so it is in no department's numbers and not in 应结案 / 结案数 (the shift leader's 结案 step
  still counts for his 按时结案率).
- 应结案数 = 处置数 + 超时未处置数 (§1.4), with feedbacks that failed 核查 (返工) taken out, since
  they lead to another feedback, not to a close: 应结案 = handled − reworked + 超时未处置 at the
  period's end. 超时未处置 = ``overdue_eod`` of the period's last day (a stock: the cases whose late
  handling clock stopped since, counted at their next event for every local day end the clock ran
  past its deadline; kept across restarts in the holders) + ``overdue_unhandled``, the clocks still
  running late, which callers count on the case table (default 0).
- 准确立案率 = (立案数 − 作废数) / 立案数 with §1.4's 作废数 = filed cases later voided
  (``filed_voided``, charged to the shift leader who filed them); a report correctly voided before
  filing (不予立案) costs nothing. A period boundary can put the void after the filing's period,
  so the rate can fall below 0 (shown raw; its score is clamped to 0).
- 准确派遣率 = (派遣数 − 返工数) / 派遣数 with §1.4's dispatcher 返工数 = his dispatches returned as
  非本单位 (回退 approved: ``returned``, charged to that dispatcher), which are dispatched again.
  A department's rework after a failed 核查 is the department's (返工率), never the dispatcher's.
- 应核实数 / 应核查数 of a supervisor = tasks issued to him (:data:`Holder`'s task person: the
  command's ``assignee``, else the grid's responsible supervisor), moved by 指派 or when another
  supervisor answers; an ignored task stays his obligation. For the acceptor, 应核实数 = 核实 tasks
  he sent (核实按时派发率's denominator).
- 监督举报率 = 监督举报核实数 / 立案数 with 监督举报核实数 = reports not from a supervisor that
  核实 confirmed (the same count as 漏报); for regions it scores inversely, (1 − rate) × 100, as in
  the peer implementation: more public findings = worse patrol coverage.
- 二级派遣: a dispatch to a 街道分中心 is its 应二级派遣 (``sub_received``), not a handling
  obligation; its dispatch on to a unit is 二级派遣数 (on time within its own limit) and the unit's
  派遣数 (应处置); a unit's approved 回退 goes back to the sub-centre (the unit's 回退, the
  sub-centre's 二级派遣回退 and a new 应二级派遣), a sub-centre's to the centre (the centre
  dispatcher's 回退, as a department's). Regions count the centre's dispatch only.
- 反馈审核 (the 指挥中心's review of a 处理反馈, where the policy has it): counted as 反馈审核数 of
  the reviewer; a feedback sent back is the department's 返工 (返工率, and it leaves 应结案 as a
  failed 核查 does) and its 审核退回数. The 核查 task's obligation (应核查) starts when it goes out:
  with the feedback, at its review, or at the acceptor's 派发核查.
- Count bands (受理数, 派遣数, 部门立案数, 区域立案数) are read as per evaluation period (a month).
  The region 立案数 bands are per unit grid: for a community, street or district the band is
  applied to 立案数 / number of grids (``grids_per_region``; the default, the grids with any row,
  undercounts quiet grids and so errs on the strict side — pass the real counts).
- Positions: the shift leader's 按时结案率 is his own 结案 step within its stage limit (the
  department's lateness is already in 按期结案率); the acceptor's 核查按时派发率 = 核查按时派发数 /
  核查派发数 has events only where the policy has the acceptor issue the 核查 task (派发核查,
  within its stage limit); where the task goes out with the feedback it is left out; the
  supervisor's 漏报率 needs ``responsible`` (without it the component is left out); a department's
  立案数 (for its band) = cases dispatched to it minus those it returned as 非本单位.
- A rate with a zero denominator is None ("—"), never 0 or 1. In a composite score a None
  component is left out and the remaining weights are rescaled (neither a free full mark nor a
  penalty); the components left out are listed in :attr:`Score.missing`. With no rate component
  at all the object is not graded (score and grade None). Rate points are clamped to [0, 100] (a
  period boundary can put a completion in one period and its obligation in the previous one).
- The score is rounded to 2 decimals before grading, so what the wall shows is what is graded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from domain.catalogue import CaseKind
from domain.lifecycle import (
    T_ACCEPT,
    T_CHECK,
    T_CLOSE,
    T_DISPATCH,
    T_FILE,
    T_HANDLE,
    T_SEND_CHECK,
    T_SUB_DISPATCH,
    T_VERIFY,
    Action,
    ArchiveType,
    CaseEvent,
    CaseState,
    Command,
    Context,
    Rejection,
    Role,
    Source,
    Status,
    apply,
)
from domain.workcalendar import DEFAULT_TZ, StageTimer, is_overdue

SHANGHAI = ZoneInfo(DEFAULT_TZ)


class ObjectType(StrEnum):
    """What is evaluated: a region level, a department or a position (岗位)."""

    GRID = "grid"  # 单元网格
    COMMUNITY = "community"  # 社区
    STREET = "street"  # 街道
    DISTRICT = "district"  # 区
    DEPARTMENT = "department"  # 专业部门
    SUPERVISOR = "supervisor"  # 监督员
    ACCEPTOR = "acceptor"  # 受理员
    SHIFT_LEADER = "shift_leader"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员


REGION_TYPES = (ObjectType.GRID, ObjectType.COMMUNITY, ObjectType.STREET, ObjectType.DISTRICT)
POSITION_OF_ROLE: dict[Role, ObjectType] = {
    Role.SUPERVISOR: ObjectType.SUPERVISOR,
    Role.ACCEPTOR: ObjectType.ACCEPTOR,
    Role.SHIFT_LEADER: ObjectType.SHIFT_LEADER,
    Role.DISPATCHER: ObjectType.DISPATCHER,
}
_PREFIX = {ObjectType.GRID: 15, ObjectType.COMMUNITY: 12, ObjectType.STREET: 9, ObjectType.DISTRICT: 6}

# Bump when a counter's definition changes: stored daily rows of another version are rebuilt from the log.
# 2: 准确立案 counts filed cases later voided (filed_voided), 准确派遣 the dispatcher's returned
# dispatches, 应核实/应核查 the tasks issued to a person, 监督举报/漏报 only public sources.
# 3: 自处置 (self_handled), 差错结案 (error_closed, withdrawn) and 作废 after filing (to_dispatch taken back).
# 4: 督办单 (urge_orders) and their replies (urge_replied, urge_replied_on_time).
COUNTERS_VERSION = 5


class SourceClass(StrEnum):
    """How a source counts in the indicators (案件来源 → 监督员上报 / 监督举报 / neither)."""

    PATROL = "patrol"  # 监督员上报: the patrol's own finding
    PUBLIC = "public"  # 监督举报: the public found it (公众举报, 热线) — a 漏报 once 核实 confirms it
    OTHER = "other"  # 领导交办, 视频上报, 部门批转: neither a patrol finding nor a public report


SOURCE_CLASS: dict[Source, SourceClass] = {
    Source.SUPERVISOR: SourceClass.PATROL,
    Source.PUBLIC: SourceClass.PUBLIC,
    Source.HOTLINE: SourceClass.PUBLIC,
    Source.LEADER: SourceClass.OTHER,
    Source.VIDEO: SourceClass.OTHER,
    Source.DEPARTMENT: SourceClass.OTHER,
}

# Who holds an open case, for the events that charge someone without naming him: the department and
# dispatcher of the current dispatch (回退, 返工), the shift leader who filed it (作废 after filing)
# and the supervisor its open 核实/核查 task was issued to (指派 and answers by someone else).
Held = tuple[str | None, str | None, str | None, str | None]
NO_HOLDER: Held = (None, None, None, None)
# As persisted: the four above, then the running handling clock's deadline and since when it runs
# (ISO instants; None when it does not run), from which the 超时未处置 day ends are counted.
Holder = tuple[str | None, str | None, str | None, str | None, str | None, str | None]
STOCK_COUNTERS = ("overdue_eod",)  # stocks: a period reads its last day's value, never a sum


def holder_of(value: Sequence[Any]) -> Holder:
    """A stored holder (a list; older marks kept fewer fields) as a :data:`Holder`."""
    v = [None if x is None else str(x) for x in list(value)[:6]]
    v += [None] * (6 - len(v))
    return (v[0], v[1], v[2], v[3], v[4], v[5])


ObjectKey = tuple[ObjectType, str]
RowKey = tuple[ObjectType, str, date]


@dataclass(frozen=True)
class CaseInfo:
    """What the events of a case do not carry: its grid, source, reporter and class."""

    case_id: str
    grid: str  # 15-digit unit-grid code
    source: Source
    reporter: str
    kind: CaseKind
    class_code: str

    def __post_init__(self) -> None:
        if len(self.grid) != 15 or not self.grid.isdigit():
            raise ValueError(f"case {self.case_id}: grid code {self.grid!r} is not 15 digits")

    @property
    def community(self) -> str:
        """The 12-digit community code (grid code prefix)."""
        return self.grid[:12]

    @property
    def street(self) -> str:
        """The 9-digit street code (grid code prefix)."""
        return self.grid[:9]

    @property
    def district(self) -> str:
        """The 6-digit district code (grid code prefix)."""
        return self.grid[:6]

    def regions(self) -> tuple[ObjectKey, ...]:
        """The grid, community, street and district objects of the case."""
        return tuple((t, self.grid[: _PREFIX[t]]) for t in REGION_TYPES)

    @classmethod
    def from_state(cls, state: CaseState, grid: str) -> CaseInfo:
        """The info of a case from its lifecycle state and its grid."""
        return cls(state.id, grid, state.source, state.reporter, state.kind, state.class_code)


@dataclass(slots=True)
class Counters:
    """Integer counts of one object on one local day (or summed over a period); see the module table."""

    reported: int = 0  # 上报数
    patrol_reported: int = 0  # 监督员上报数
    public_reported: int = 0  # 监督举报数 (公众举报, 热线: SourceClass.PUBLIC)
    other_reported: int = 0  # 其他来源上报数 (领导交办, 视频, 部门批转)
    valid_reported: int = 0  # 有效上报数 (监督员上报且立案)
    accepted: int = 0  # 受理数
    accepted_on_time: int = 0  # 按时受理数
    to_verify: int = 0  # 应核实数
    verify_sent_on_time: int = 0  # 核实按时派发数
    verified: int = 0  # 核实数
    verified_on_time: int = 0  # 按时核实数
    missed: int = 0  # 漏报数 = 监督举报核实数
    filed: int = 0  # 立案数
    filed_on_time: int = 0  # 按时立案数
    voided: int = 0  # 作废数 (every 作废, 不予立案 included)
    filed_voided: int = 0  # 立案后作废数 (准确立案率's 作废数: filed cases later voided)
    to_dispatch: int = 0  # 应派遣数
    dispatched: int = 0  # 派遣数
    dispatched_on_time: int = 0  # 按时派遣数
    returned: int = 0  # 回退数
    sub_received: int = 0  # 应二级派遣数: dispatches a 街道分中心 received to dispatch on (二级派遣)
    sub_dispatched: int = 0  # 二级派遣数
    sub_dispatched_on_time: int = 0  # 按时二级派遣数 (within the sub-centre's own limit)
    sub_returned: int = 0  # 二级派遣回退数: its units' 回退 (the sub-centre's misroutes)
    extended: int = 0  # 延期数
    suspended: int = 0  # 挂账数
    handled: int = 0  # 处置数
    handled_on_time: int = 0  # 按期处置数
    handled_overdue: int = 0  # 超期处置数
    reworked: int = 0  # 返工数
    reviewed: int = 0  # 反馈审核数 (the 指挥中心's review of a 处理反馈, when the policy has it)
    review_returned: int = 0  # 审核退回数 (sent back to the department: also its 返工数)
    check_sent: int = 0  # 核查派发数 (the acceptor issued the 核查 task, when the policy says so)
    check_sent_on_time: int = 0  # 核查按时派发数
    to_check: int = 0  # 应核查数
    checked: int = 0  # 核查数
    checked_on_time: int = 0  # 按时核查数
    closed: int = 0  # 结案数
    closed_on_time: int = 0  # 按期结案数
    overdue_closed: int = 0  # 超期结案数
    close_step_on_time: int = 0  # 按时结案数 (结案 step within its stage limit)
    urged: int = 0  # 督办数
    urge_orders: int = 0  # 督办单数 (督办 while a department held the case: a reply is due)
    urge_replied: int = 0  # 督办回复数
    urge_replied_on_time: int = 0  # 督办按时回复数
    self_handled: int = 0  # 自处置数 (a supervisor's report fixed on the spot, confirmed by the acceptor)
    error_closed: int = 0  # 差错结案数 (a dispatched case found to be an error)
    withdrawn: int = 0  # 撤回处置数: handling obligations a 差错结案 took back (out of 应处置)
    overdue_eod: int = 0  # 超时未处置数 at the day's end (a stock: a period reads its last day's)

    def add(self, other: Counters) -> None:
        """Add another row's counts into this one, in place."""
        for name in COUNTER_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __add__(self, other: Counters) -> Counters:
        total = self.copy()
        total.add(other)
        return total

    def copy(self) -> Counters:
        """An independent copy."""
        return Counters(**self.as_dict())

    def as_dict(self) -> dict[str, int]:
        """The counts by counter name."""
        return {name: getattr(self, name) for name in COUNTER_NAMES}


COUNTER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Counters))
COUNTER_LABELS: dict[str, str] = {
    "reported": "上报数",
    "patrol_reported": "监督员上报数",
    "public_reported": "监督举报数",
    "other_reported": "其他来源上报数",
    "valid_reported": "有效上报数",
    "accepted": "受理数",
    "accepted_on_time": "按时受理数",
    "to_verify": "应核实数",
    "verify_sent_on_time": "核实按时派发数",
    "verified": "核实数",
    "verified_on_time": "按时核实数",
    "missed": "漏报数",
    "filed": "立案数",
    "filed_on_time": "按时立案数",
    "voided": "作废数",
    "filed_voided": "立案后作废数",
    "to_dispatch": "应派遣数",
    "dispatched": "派遣数",
    "dispatched_on_time": "按时派遣数",
    "returned": "回退数",
    "sub_received": "应二级派遣数",
    "sub_dispatched": "二级派遣数",
    "sub_dispatched_on_time": "按时二级派遣数",
    "sub_returned": "二级派遣回退数",
    "extended": "延期数",
    "suspended": "挂账数",
    "handled": "处置数",
    "handled_on_time": "按期处置数",
    "handled_overdue": "超期处置数",
    "reworked": "返工数",
    "reviewed": "反馈审核数",
    "review_returned": "审核退回数",
    "check_sent": "核查派发数",
    "check_sent_on_time": "核查按时派发数",
    "to_check": "应核查数",
    "checked": "核查数",
    "checked_on_time": "按时核查数",
    "closed": "结案数",
    "closed_on_time": "按期结案数",
    "overdue_closed": "超期结案数",
    "close_step_on_time": "按时结案数",
    "urged": "督办数",
    "urge_orders": "督办单数",
    "urge_replied": "督办回复数",
    "urge_replied_on_time": "督办按时回复数",
    "self_handled": "自处置数",
    "error_closed": "差错结案数",
    "withdrawn": "差错撤回数",
    "overdue_eod": "超时未处置数",
}


def _on_time(state: CaseState, stage: str, at: datetime) -> bool:
    """Whether the stage's timer (stopped by the event at ``at``) stayed within its deadline."""
    timer = state.timers.get(stage)
    return timer is None or not is_overdue(timer, at)


Record = tuple[CaseInfo, CaseEvent, CaseState]


class DailyAggregates:
    """Counters per (object type, object id, local date), updated event by event.

    Feed every appended event exactly once (``add`` is not idempotent), each case's events in
    order; cases may interleave. Besides the rows it keeps, per open dispatched case, the current
    department and dispatcher, because the 回退 approval and the failed 核查 that charge them do
    not name them; a store that reloads rows after a restart loses that for cases dispatched
    before it (their 回退/返工 still count for the regions), until :meth:`rebuild`.
    """

    def __init__(self, responsible: Mapping[str, str] | None = None, tz: tzinfo = SHANGHAI) -> None:
        self.responsible: Mapping[str, str] | None = responsible  # grid code → supervisor id
        self.tz = tz
        self._rows: dict[ObjectKey, dict[date, Counters]] = {}
        self._ids: dict[ObjectType, set[str]] = {t: set() for t in ObjectType}
        # case id → who holds it (:data:`Held`): the events that charge them do not name them
        self._holder: dict[str, Held] = {}
        # case id → (deadline, since) of its handling clock while it runs: at the case's next event the
        # local day ends in between past the deadline are days it ended 超时未处置 (``overdue_eod``)
        self._running: dict[str, tuple[datetime, datetime]] = {}
        self.rows_read = 0  # rows visited by period(), for cost checks
        self.dirty: set[RowKey] = set()  # rows changed since take_dirty() (for persistence)

    def __len__(self) -> int:
        return sum(len(days) for days in self._rows.values())

    def ids(self, object_type: ObjectType | str) -> frozenset[str]:
        """The ids of all objects of a type that have at least one row."""
        return frozenset(self._ids[ObjectType(object_type)])

    def row(self, object_type: ObjectType | str, object_id: str, day: date) -> Counters | None:
        """A copy of one daily row, or None when nothing was counted for it."""
        found = self._rows.get((ObjectType(object_type), object_id), {}).get(day)
        return None if found is None else found.copy()

    def as_dict(self) -> dict[RowKey, dict[str, int]]:
        """Every row as plain counts (for comparisons and persistence)."""
        return {
            (t, oid, day): c.as_dict() for (t, oid), days in self._rows.items() for day, c in days.items()
        }

    def add(self, info: CaseInfo, event: CaseEvent, state_after: CaseState, tz: tzinfo | None = None) -> None:
        """Count one event of a case (given the case state right after it) into its day's rows."""
        if event.case_id != info.case_id or state_after.id != info.case_id:
            raise ValueError(f"event of case {event.case_id} does not belong to case {info.case_id}")
        zone = tz or self.tz
        day = event.at.astimezone(zone).date()
        touched: dict[ObjectKey, Counters] = {}

        def bump(targets: Iterable[ObjectKey | None], *names: str, by: int = 1) -> None:
            for obj in dict.fromkeys(targets):
                if obj is None:
                    continue
                counters = touched.get(obj)
                if counters is None:
                    counters = touched[obj] = self._row_to_change(obj, day)
                for name in names:
                    setattr(counters, name, getattr(counters, name) + by)

        regions: tuple[ObjectKey | None, ...] = info.regions()
        position = POSITION_OF_ROLE.get(event.role)
        actor: ObjectKey | None = (position, event.actor) if position else None
        patrol: ObjectKey | None = None
        if info.source is Source.SUPERVISOR:
            patrol = (ObjectType.SUPERVISOR, info.reporter)
        in_charge = (self.responsible or {}).get(info.grid)
        charge: ObjectKey | None = (ObjectType.SUPERVISOR, in_charge) if in_charge else None
        held = self._holder.get(info.case_id, NO_HOLDER)
        held_dept, held_disp, filer, tasked = held
        dept_code = state_after.department or held_dept
        dept: ObjectKey | None = (ObjectType.DEPARTMENT, dept_code) if dept_code else None
        dispatcher: ObjectKey | None = (ObjectType.DISPATCHER, held_disp) if held_disp else None
        at = event.at
        a = event.action

        def timely(stage: str, name: str) -> tuple[str, ...]:
            return (name,) if _on_time(state_after, stage, at) else ()

        running = self._running.pop(info.case_id, None)
        if running is not None:  # the state before this event held since then: its late day ends
            held_by: ObjectKey | None = (ObjectType.DEPARTMENT, held_dept) if held_dept else None
            self._late_day_ends(running, at, zone, (*regions, held_by))

        def issue(counter: str) -> None:
            """A 核实/核查 task went out: one obligation of the supervisor named (else the grid's)."""
            person = str(event.data.get("assignee") or "") or in_charge
            if person:
                bump(((ObjectType.SUPERVISOR, person),), counter)
            self._holder[info.case_id] = (held_dept, held_disp, filer, person)

        def answer(counter: str) -> None:
            """The task was answered by the actor: the obligation is his (moved from its holder if
            someone else answered it, as a 指派 would have)."""
            if actor is not None and event.actor != tasked:
                bump((actor,), counter)
                if tasked:
                    bump(((ObjectType.SUPERVISOR, tasked),), counter, by=-1)
            self._holder[info.case_id] = (held_dept, held_disp, filer, None)

        kind = SOURCE_CLASS[info.source]
        if a is Action.REPORT:
            bump((*regions, actor), "reported")
            if patrol is not None:
                bump((*regions, patrol), "patrol_reported")
            elif kind is SourceClass.PUBLIC:
                bump(regions, "public_reported")
            else:
                bump(regions, "other_reported")
        elif a is Action.ACCEPT:
            on_time = timely(T_ACCEPT, "accepted_on_time")
            bump((*regions, actor), "accepted", *on_time)
            if state_after.status is Status.VERIFYING:  # a 核实 task went out (the acceptor's 应派发)
                bump((*regions, actor), "to_verify", *(["verify_sent_on_time"] if on_time else []))
                issue("to_verify")
            elif event.data.get("self_handled") is True:  # 自处理审核 passed: the patrol's own fix
                bump((*regions, patrol), "self_handled", "valid_reported")
        elif a is Action.ASSIGN:  # 指派: the open task moves, and its obligation with it
            counter = "to_verify" if state_after.status is Status.VERIFYING else "to_check"
            person = str(event.data.get("assignee") or "")
            if person and person != tasked:
                bump(((ObjectType.SUPERVISOR, person),), counter)
                if tasked:
                    bump(((ObjectType.SUPERVISOR, tasked),), counter, by=-1)
                self._holder[info.case_id] = (held_dept, held_disp, filer, person)
        elif a is Action.VERIFY:
            bump((*regions, actor), "verified", *timely(T_VERIFY, "verified_on_time"))
            answer("to_verify")
            if state_after.verified and kind is SourceClass.PUBLIC:
                bump((*regions, charge), "missed")
        elif a is Action.FILE:
            bump((*regions, actor), "filed", *timely(T_FILE, "filed_on_time"))
            bump(regions, "to_dispatch")
            self._holder[info.case_id] = (held_dept, held_disp, event.actor, tasked)
            if patrol is not None:
                bump((*regions, patrol), "valid_reported")
                bump((patrol,), "filed")
            else:
                bump((charge,), "filed")
        elif a is Action.VOID or a is Action.MERGE:  # 合并 (issue 21): a repeat ends unfiled, as 作废 does
            bump((*regions, actor), "voided")
            if filer:  # a filed case voided: the filing was not accurate (准确立案率), charged to its filer
                bump((*regions, (ObjectType.SHIFT_LEADER, filer)), "filed_voided")
            if event.from_status is Status.TO_DISPATCH:  # its dispatch clock stopped: no 应派遣 left
                bump(regions, "to_dispatch", by=-1)
            self._holder.pop(info.case_id, None)
        elif a is Action.DISPATCH and event.from_status is Status.SUB_DISPATCHING:  # 二级派遣
            sub = str(event.data.get("subcentre") or held_dept or "")
            bump(
                ((ObjectType.DEPARTMENT, sub),),
                "sub_dispatched",
                *timely(T_SUB_DISPATCH, "sub_dispatched_on_time"),
            )
            unit = str(event.data.get("department") or state_after.department or "")
            bump(((ObjectType.DEPARTMENT, unit),), "dispatched")
            self._holder[info.case_id] = (unit, held_disp, filer, tasked)
        elif a is Action.DISPATCH:
            bump((*regions, actor), "dispatched", *timely(T_DISPATCH, "dispatched_on_time"))
            bump((actor,), "to_dispatch")
            new_dept = str(event.data.get("department") or state_after.department or "")
            if new_dept:  # a sub-centre's is a dispatch to pass on, not a handling obligation
                to_sub = state_after.status is Status.SUB_DISPATCHING
                bump(((ObjectType.DEPARTMENT, new_dept),), "sub_received" if to_sub else "dispatched")
            self._holder[info.case_id] = (new_dept or None, event.actor, filer, tasked)
        elif a is Action.APPROVE:
            request = str(event.data.get("request", ""))
            if request == Action.REQUEST_EXTENSION.value:
                bump((*regions, dept), "extended")
            elif request == Action.REQUEST_SUSPENSION.value:
                bump((*regions, dept), "suspended")
            elif request == Action.REQUEST_RETURN.value and state_after.status is Status.SUB_DISPATCHING:
                # a unit's 回退 to its sub-centre: the sub-centre's 错派, and a dispatch for it to redo
                bump(((ObjectType.DEPARTMENT, held_dept) if held_dept else None,), "returned")
                bump(((ObjectType.DEPARTMENT, str(state_after.department)),), "sub_returned", "sub_received")
                self._holder[info.case_id] = (state_after.department, held_disp, filer, tasked)
            elif request == Action.REQUEST_RETURN.value:
                if event.from_status is Status.SUB_DISPATCHING:  # a sub-centre's 回退 to the centre
                    bump((dept,), "sub_received", by=-1)
                    bump((*regions, dispatcher), "returned")  # the dispatcher's 错派 (准确派遣率)
                else:
                    bump((*regions, dept, dispatcher), "returned")  # the dispatcher's 错派 (准确派遣率)
                bump(regions, "to_dispatch")
                self._holder[info.case_id] = (None, None, filer, tasked)
        elif a is Action.FEEDBACK:
            overdue = event.data.get("overdue")
            if overdue is None:
                overdue = not _on_time(state_after, T_HANDLE, at)
            bump((*regions, dept), "handled", "handled_overdue" if overdue else "handled_on_time")
        elif a is Action.REVIEW:  # the 指挥中心's 反馈审核: sent back, it is the department's 返工
            bump((*regions, actor), "reviewed")
            if state_after.status is Status.HANDLING:
                bump((*regions, dept), "reworked", "review_returned")
        elif a is Action.SEND_CHECK:  # the acceptor's 派发核查 (核查按时派发率)
            bump((*regions, actor), "check_sent", *timely(T_SEND_CHECK, "check_sent_on_time"))
        elif a is Action.CHECK:
            bump((*regions, actor), "checked", *timely(T_CHECK, "checked_on_time"))
            answer("to_check")
            if state_after.status is Status.HANDLING:  # failed: the department's 返工, not the dispatcher's
                bump((*regions, dept), "reworked")
        elif a is Action.CLOSE:
            archive = event.data.get("archive") or state_after.archive
            if archive == ArchiveType.ERROR.value:  # 差错结案: a filing error; the department's
                # obligation is withdrawn (out of 应处置), and the case never enters 应结案
                bump((*regions, actor), "error_closed")
                if filer:
                    bump((*regions, (ObjectType.SHIFT_LEADER, filer)), "filed_voided")
                if event.from_status is Status.SUB_DISPATCHING:  # still with a sub-centre: its dispatch
                    bump((dept,), "sub_received", by=-1)
                    bump(regions, "withdrawn")
                else:
                    bump((*regions, dept), "withdrawn")
            elif state_after.self_handled:  # 自处置: the shift leader's 结案 step; not in 应结案
                bump((actor,), "closed", "closed_on_time", *timely(T_CLOSE, "close_step_on_time"))
            else:
                late = archive == ArchiveType.OVERTIME.value
                bump((*regions, actor, dept), "closed", "overdue_closed" if late else "closed_on_time")
                bump((*regions, actor), *timely(T_CLOSE, "close_step_on_time"))
            self._holder.pop(info.case_id, None)
        elif a is Action.URGE:
            bump((*regions, dept), "urged")
            if event.data.get("order") is not None:  # a 督办单 to the department holding the case
                bump((*regions, dept), "urge_orders")
        elif a is Action.URGE_REPLY:
            no = int(event.data.get("order") or 0)
            order = next((o for o in state_after.orders if o.no == no), None)
            target = (ObjectType.DEPARTMENT, order.target) if order is not None else dept
            on_time = ("urge_replied_on_time",) if event.data.get("on_time") else ()
            bump((*regions, target), "urge_replied", *on_time)
        if state_after.status is Status.TO_CHECK and event.from_status is not Status.TO_CHECK:
            bump(regions, "to_check")  # a 核查 task went out (with the feedback, its review or 派发核查)
            issue("to_check")
        # requests (延期/挂账/回退申请), rejections of them and 挂账恢复 count nothing
        if (clock := running_handle_clock(state_after)) is not None:
            self._running[info.case_id] = (clock.deadline, at)

    def _late_day_ends(
        self,
        running: tuple[datetime, datetime],
        until: datetime,
        zone: tzinfo,
        targets: Iterable[ObjectKey | None],
    ) -> None:
        """One more ``overdue_eod`` on each local day whose end (the next midnight) came after the
        clock's deadline, while it ran (since < end ≤ ``until``)."""
        deadline, since = running
        start = max(deadline, since).astimezone(zone)
        end_of_day = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), zone)
        objs = [o for o in dict.fromkeys(targets) if o is not None]
        while end_of_day <= until:
            d = (end_of_day - timedelta(days=1)).date()
            for obj in objs:
                self._row_to_change(obj, d).overdue_eod += 1
            end_of_day = datetime.combine(end_of_day.date() + timedelta(days=1), datetime.min.time(), zone)

    def _row_to_change(self, obj: ObjectKey, day: date) -> Counters:
        """The object's row of ``day`` (created when missing), marked as changed."""
        days = self._rows.get(obj)
        if days is None:
            days = self._rows[obj] = {}
            self._ids[obj[0]].add(obj[1])
        counters = days.get(day)
        if counters is None:
            counters = days[day] = Counters()
        self.dirty.add((obj[0], obj[1], day))
        return counters

    def take_dirty(self) -> dict[RowKey, dict[str, int]]:
        """The rows changed since the last call, as plain counts; forgets them."""
        out = {k: self._rows[(k[0], k[1])][k[2]].as_dict() for k in self.dirty}
        self.dirty.clear()
        return out

    def holders(self) -> dict[str, Holder]:
        """Who holds each open case and its running handling clock (:data:`Holder`; to persist)."""
        out: dict[str, Holder] = {}
        for case in self._holder.keys() | self._running.keys():
            held = self._holder.get(case, NO_HOLDER)
            run = self._running.get(case)
            out[case] = (*held, *((run[0].isoformat(), run[1].isoformat()) if run else (None, None)))
        return out

    def load(
        self,
        rows: Iterable[tuple[RowKey, Mapping[str, int]]],
        holders: Mapping[str, Sequence[Any]] = MappingProxyType({}),
    ) -> None:
        """Replace every row with stored ones (and the holders of open cases, see :func:`holder_of`)."""
        self._rows.clear()
        self._holder, self._running = {}, {}
        for case, value in holders.items():
            h = holder_of(value)
            if any(h[:4]):
                self._holder[case] = (h[0], h[1], h[2], h[3])
            if h[4] and h[5]:
                self._running[case] = (datetime.fromisoformat(h[4]), datetime.fromisoformat(h[5]))
        self.dirty.clear()
        for ids in self._ids.values():
            ids.clear()
        for (kind, oid, day), counts in rows:
            obj = (ObjectType(kind), oid)
            self._rows.setdefault(obj, {})[day] = Counters(**{k: int(v) for k, v in counts.items()})
            self._ids[obj[0]].add(oid)

    def rebuild(self, records: Iterable[Record]) -> None:
        """Forget every row and count a whole log again (events of each case in order)."""
        self._rows.clear()
        self._holder.clear()
        self._running.clear()
        for ids in self._ids.values():
            ids.clear()
        for info, event, state_after in records:
            self.add(info, event, state_after)

    def period(
        self, object_type: ObjectType | str, object_id: str | None, start: date, end: date
    ) -> Counters:
        """Sum one object's rows (None: every object of the type) from start to end, both included; a
        stock (``overdue_eod``) is the end day's, not a sum."""
        kind = ObjectType(object_type)
        ids = sorted(self._ids[kind]) if object_id is None else [object_id]
        total = Counters()
        span = (end - start).days + 1
        for oid in ids:
            days = self._rows.get((kind, oid))
            if not days or span <= 0:
                continue
            if len(days) <= span:  # few rows: visit them all
                for day, counters in days.items():
                    self.rows_read += 1
                    if start <= day <= end:
                        total.add(counters)
                        if day != end:
                            total.overdue_eod -= counters.overdue_eod
            else:  # many rows: probe each day of the period
                for offset in range(span):
                    self.rows_read += 1
                    found = days.get(start + timedelta(days=offset))
                    if found is not None:
                        total.add(found)
                        if offset != span - 1:
                            total.overdue_eod -= found.overdue_eod
        return total

    def to_frame(self) -> pd.DataFrame:
        """Every row as a table: object_type, object_id, date and one column per counter."""
        rows = [
            {"object_type": t.value, "object_id": oid, "date": day, **c.as_dict()}
            for (t, oid), days in self._rows.items()
            for day, c in days.items()
        ]
        frame = pd.DataFrame(rows, columns=["object_type", "object_id", "date", *COUNTER_NAMES])
        return frame.sort_values(["object_type", "object_id", "date"], ignore_index=True)


def running_handle_clock(state: CaseState) -> StageTimer | None:
    """The case's handling clock if it runs: the case is open, the clock neither ended nor paused (挂账)."""
    timer = state.timers.get(T_HANDLE)
    if state.is_open and timer is not None and timer.ended_at is None and timer.paused_since is None:
        return timer
    return None


def overdue_unhandled_at(state: CaseState, at: datetime) -> bool:
    """超时未处置 at ``at``: the handling clock runs past its deadline — one more in 应结案 for the
    period ending then."""
    clock = running_handle_clock(state)
    return clock is not None and clock.deadline < at


def records_from_commands(
    info: CaseInfo, commands: Iterable[tuple[Command, datetime]], ctx: Context
) -> list[Record]:
    """Apply a case's commands in order and pair each resulting event with the state after it."""
    state: CaseState | None = None
    records: list[Record] = []
    for command, at in commands:
        outcome = apply(state, command, at, ctx)
        if isinstance(outcome, Rejection):
            continue
        state = outcome.state
        records.extend((info, event, state) for event in outcome.events)
    return records


def _ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None when there is nothing to divide by."""
    return None if denominator <= 0 else numerator / denominator


@dataclass(frozen=True)
class Indicators:
    """The §1.4 indicators of one object over one period; a rate is None when its denominator is 0."""

    counters: Counters
    to_handle: int  # 应处置数 = dispatched + reworked − returned − withdrawn
    to_close: int  # 应结案数 = handled − reworked + overdue_unhandled
    valid_report_rate: float | None  # 有效上报率 = 有效上报数 / 监督员上报数
    missed_rate: float | None  # 漏报率 = 漏报数 / 立案数
    public_report_rate: float | None  # 监督举报率 = 监督举报核实数 / 立案数
    accept_on_time_rate: float | None  # 按时受理率 = 按时受理数 / 受理数
    verify_send_on_time_rate: float | None  # 核实按时派发率 = 核实按时派发数 / 应核实数
    verify_on_time_rate: float | None  # 按时核实率 = 按时核实数 / 应核实数
    file_on_time_rate: float | None  # 按时立案率 = 按时立案数 / 立案数
    accurate_file_rate: float | None  # 准确立案率 = (立案数 − 立案后作废数) / 立案数
    dispatch_on_time_rate: float | None  # 按时派遣率 = 按时派遣数 / 应派遣数
    accurate_dispatch_rate: float | None  # 准确派遣率 = (派遣数 − 回退数) / 派遣数
    handle_rate: float | None  # 处置率 = 处置数 / 应处置数
    handle_on_time_rate: float | None  # 按期处置率 = 按期处置数 / 应处置数
    rework_rate: float | None  # 返工率 = 返工数 / 处置数
    check_on_time_rate: float | None  # 按时核查率 = 按时核查数 / 应核查数
    close_rate: float | None  # 结案率 = 结案数 / 应结案数
    close_on_time_rate: float | None  # 按期结案率 = 按期结案数 / 应结案数
    close_step_on_time_rate: float | None  # 按时结案率 = 按时结案数 / 结案数
    urge_reply_on_time_rate: float | None = None  # 督办按时回复率 = 督办按时回复数 / 督办单数 (not scored)
    check_send_on_time_rate: float | None = None  # 核查按时派发率 = 核查按时派发数 / 核查派发数
    sub_dispatch_on_time_rate: float | None = None  # 按时二级派遣率 = 按时二级派遣数 / 应二级派遣数
    accurate_sub_dispatch_rate: float | None = (
        None  # 二级派遣准确率 = (二级派遣数 − 二级派遣回退数) / 二级派遣数
    )


RATE_LABELS: dict[str, str] = {
    "valid_report_rate": "有效上报率",
    "missed_rate": "漏报率",
    "public_report_rate": "监督举报率",
    "accept_on_time_rate": "按时受理率",
    "verify_send_on_time_rate": "核实按时派发率",
    "verify_on_time_rate": "按时核实率",
    "file_on_time_rate": "按时立案率",
    "accurate_file_rate": "准确立案率",
    "dispatch_on_time_rate": "按时派遣率",
    "accurate_dispatch_rate": "准确派遣率",
    "handle_rate": "处置率",
    "handle_on_time_rate": "按期处置率",
    "rework_rate": "返工率",
    "check_on_time_rate": "按时核查率",
    "close_rate": "结案率",
    "close_on_time_rate": "按期结案率",
    "close_step_on_time_rate": "按时结案率",
    "urge_reply_on_time_rate": "督办按时回复率",
    "check_send_on_time_rate": "核查按时派发率",
    "sub_dispatch_on_time_rate": "按时二级派遣率",
    "accurate_sub_dispatch_rate": "二级派遣准确率",
}
_REGION_RATES = (
    "public_report_rate",
    "verify_on_time_rate",
    "file_on_time_rate",
    "accurate_file_rate",
    "dispatch_on_time_rate",
    "accurate_dispatch_rate",
    "handle_rate",
    "handle_on_time_rate",
    "rework_rate",
    "check_on_time_rate",
    "close_rate",
    "close_on_time_rate",
)
RATES_BY_TYPE: dict[ObjectType, tuple[str, ...]] = {
    **{t: _REGION_RATES for t in REGION_TYPES},
    ObjectType.DEPARTMENT: (
        "handle_rate",
        "handle_on_time_rate",
        "rework_rate",
        "close_rate",
        "close_on_time_rate",
        "sub_dispatch_on_time_rate",  # a 街道分中心's (二级派遣); — for other departments
        "accurate_sub_dispatch_rate",
    ),
    ObjectType.SUPERVISOR: ("valid_report_rate", "missed_rate", "verify_on_time_rate", "check_on_time_rate"),
    ObjectType.ACCEPTOR: ("accept_on_time_rate", "verify_send_on_time_rate", "check_send_on_time_rate"),
    ObjectType.SHIFT_LEADER: ("file_on_time_rate", "accurate_file_rate", "close_step_on_time_rate"),
    ObjectType.DISPATCHER: ("dispatch_on_time_rate", "accurate_dispatch_rate"),
}


def indicators(c: Counters, overdue_unhandled: int = 0) -> Indicators:
    """The §1.4 indicators from period counters. 超时未处置数 at the period end = ``c.overdue_eod``
    (cases whose late handling clock has stopped since) + ``overdue_unhandled`` (those still running
    late, which the caller counts on the case table: :func:`store.evaluation.overdue_unhandled`)."""
    to_handle = max(0, c.dispatched + c.reworked - c.returned - c.withdrawn)
    to_close = max(0, c.handled - c.reworked) + c.overdue_eod + overdue_unhandled
    return Indicators(
        counters=c.copy(),
        to_handle=to_handle,
        to_close=to_close,
        valid_report_rate=_ratio(c.valid_reported, c.patrol_reported),
        missed_rate=_ratio(c.missed, c.filed),
        public_report_rate=_ratio(c.missed, c.filed),
        accept_on_time_rate=_ratio(c.accepted_on_time, c.accepted),
        verify_send_on_time_rate=_ratio(c.verify_sent_on_time, c.to_verify),
        verify_on_time_rate=_ratio(c.verified_on_time, c.to_verify),
        file_on_time_rate=_ratio(c.filed_on_time, c.filed),
        accurate_file_rate=_ratio(c.filed - c.filed_voided, c.filed),
        dispatch_on_time_rate=_ratio(c.dispatched_on_time, c.to_dispatch),
        # §1.4: dispatches not returned as 非本单位 (the dispatcher's 返工: redone dispatches) / dispatches
        accurate_dispatch_rate=_ratio(c.dispatched - c.returned, c.dispatched),
        handle_rate=_ratio(c.handled, to_handle),
        handle_on_time_rate=_ratio(c.handled_on_time, to_handle),
        rework_rate=_ratio(c.reworked, c.handled),
        check_on_time_rate=_ratio(c.checked_on_time, c.to_check),
        close_rate=_ratio(c.closed, to_close),
        close_on_time_rate=_ratio(c.closed_on_time, to_close),
        close_step_on_time_rate=_ratio(c.close_step_on_time, c.closed),
        urge_reply_on_time_rate=_ratio(c.urge_replied_on_time, c.urge_orders),
        check_send_on_time_rate=_ratio(c.check_sent_on_time, c.check_sent),
        sub_dispatch_on_time_rate=_ratio(c.sub_dispatched_on_time, c.sub_received),
        accurate_sub_dispatch_rate=_ratio(c.sub_dispatched - c.sub_returned, c.sub_dispatched),
    )


# --- composite scores ------------------------------------------------------------------------


class AreaClass(StrEnum):
    """Area class of a region for the 立案数 bands (一类 = stricter)."""

    ONE = "一类"
    TWO = "二类"


@dataclass(frozen=True)
class RegionWeights:
    """Weights of the region composite. UNVERIFIED against the CJ/T 292 text (domain.md §1.4 flags it).

    Default 监督举报率 10 + 立案数 20 + 结案率 30 + 按期结案率 40 (the peer code's 10/20/30/10 sums to 70
    and looks buggy). Weights are relative: the score divides by their sum. Confirm before shipping.
    """

    public_report: float = 10.0
    filed: float = 20.0
    close_rate: float = 30.0
    close_on_time: float = 40.0

    def __post_init__(self) -> None:
        values = (self.public_report, self.filed, self.close_rate, self.close_on_time)
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"region weights must be non-negative with a positive sum, got {values}")


@dataclass(frozen=True)
class Score:
    """A composite score (0–100, 2 decimals) with its grade; ``missing`` names the components left out."""

    value: float | None
    grade: str | None
    missing: tuple[str, ...] = ()


def count_band_score(n: int) -> float:
    """受理数/派遣数 band: ≥2001 → 100, 1201–2000 → 90, 501–1200 → 75, 301–500 → 60, 101–300 → 40, else 0."""
    for floor, points in ((2001, 100.0), (1201, 90.0), (501, 75.0), (301, 60.0), (101, 40.0)):
        if n >= floor:
            return points
    return 0.0


def department_band_score(n: int) -> float:
    """部门立案数 band, fewer = better: ≤50 → 100, ≤100 → 90, ≤200 → 75, ≤500 → 60, ≤1000 → 40, else 0."""
    # §1.4 lists overlapping edges (100–200, 200–500, ≥1000); the upper edge belongs to the better band,
    # as in the peer implementation (registerNum <= 50, <= 100, <= 200, <= 500, <= 1000).
    for ceiling, points in ((50, 100.0), (100, 90.0), (200, 75.0), (500, 60.0), (1000, 40.0)):
        if n <= ceiling:
            return points
    return 0.0


_REGION_BANDS: dict[AreaClass, tuple[float, float, float, float, float]] = {
    AreaClass.ONE: (3, 5, 7, 9, 0),
    AreaClass.TWO: (4, 6, 8, 10, 0),
}


def region_band_score(filed_per_grid: float, area_class: AreaClass = AreaClass.ONE) -> float:
    """Region 立案数 per grid: 0 → 100; <3/<5/<7/<9 (一类) or <4/<6/<8/<10 (二类) → 90/75/60/40; else 0."""
    if filed_per_grid <= 0:
        return 100.0
    limits = _REGION_BANDS[AreaClass(area_class)][:4]
    for limit, points in zip(limits, (90.0, 75.0, 60.0, 40.0), strict=True):
        if filed_per_grid < limit:
            return points
    return 0.0


GRADE_FLOORS: tuple[tuple[str, float], ...] = (("A", 90.0), ("B", 75.0), ("C", 60.0), ("D", 40.0))


def grade(score: float | None) -> str | None:
    """A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E; None when there is no score."""
    if score is None:
        return None
    for letter, floor in GRADE_FLOORS:
        if score >= floor:
            return letter
    return "E"


# Shenzhen-style grade colours (green, blue, yellow, orange, red), tuned to read on a dark wall.
GRADE_COLOURS: dict[str, str] = {
    "A": "#3ddc84",
    "B": "#4aa8ff",
    "C": "#f5c542",
    "D": "#ff8c42",
    "E": "#ff4d4f",
}
NO_GRADE_COLOUR = "#6b7280"


def grade_colour(letter: str | None) -> str:
    """The wall colour of a grade (grey when ungraded)."""
    return GRADE_COLOURS.get(letter or "", NO_GRADE_COLOUR)


def _points(rate: float | None, inverse: bool = False) -> float | None:
    """Rate points: rate × 100, or (1 − rate) × 100 for an inverse rate; clamped to [0, 100]."""
    if rate is None:
        return None
    value = (1.0 - rate if inverse else rate) * 100.0
    return min(100.0, max(0.0, value))


def composite(
    rates: Sequence[tuple[str, float, float | None]], bands: Sequence[tuple[str, float, float]] = ()
) -> Score:
    """Weighted score of (name, weight, points) rates and bands; None rates left out, weights rescaled."""
    present = [(w, p) for _, w, p in rates if p is not None] + [(w, p) for _, w, p in bands]
    missing = tuple(name for name, _, p in rates if p is None)
    if len(missing) == len(rates):
        return Score(None, None, missing)
    weight = sum(w for w, _ in present)
    value = round(sum(w * p for w, p in present) / weight, 2) if weight > 0 else None
    return Score(value, grade(value), missing)


def supervisor_score(ind: Indicators, missed_known: bool = True) -> Score:
    """监督员: 有效上报率×40% + (1−漏报率)×20% + 按时核实率×20% + 按时核查率×20%."""
    missed = _points(ind.missed_rate, inverse=True) if missed_known else None
    return composite(
        [
            ("有效上报率", 0.40, _points(ind.valid_report_rate)),
            ("漏报率", 0.20, missed),
            ("按时核实率", 0.20, _points(ind.verify_on_time_rate)),
            ("按时核查率", 0.20, _points(ind.check_on_time_rate)),
        ]
    )


def acceptor_score(ind: Indicators) -> Score:
    """受理员: 受理数分×25% + 核实按时派发率×40% + 核查按时派发率×35%."""
    # 核查按时派发率 has data only where the policy has the acceptor issue the 核查 task
    # (Policy.acceptor_issues_check); where it goes out with the feedback, it is left out.
    return composite(
        [
            ("核实按时派发率", 0.40, _points(ind.verify_send_on_time_rate)),
            ("核查按时派发率", 0.35, _points(ind.check_send_on_time_rate)),
        ],
        [("受理数", 0.25, count_band_score(ind.counters.accepted))],
    )


def shift_leader_score(ind: Indicators) -> Score:
    """值班长: 按时立案率×25% + 准确立案率×40% + 按时结案率×35%."""
    return composite(
        [
            ("按时立案率", 0.25, _points(ind.file_on_time_rate)),
            ("准确立案率", 0.40, _points(ind.accurate_file_rate)),
            ("按时结案率", 0.35, _points(ind.close_step_on_time_rate)),
        ]
    )


def dispatcher_score(ind: Indicators) -> Score:
    """派遣员: 派遣数分×20% + 按时派遣率×40% + 准确派遣率×40%."""
    return composite(
        [
            ("按时派遣率", 0.40, _points(ind.dispatch_on_time_rate)),
            ("准确派遣率", 0.40, _points(ind.accurate_dispatch_rate)),
        ],
        [("派遣数", 0.20, count_band_score(ind.counters.dispatched))],
    )


def department_score(ind: Indicators) -> Score:
    """专业部门: 立案数分×10% + 结案率×30% + 按期处置率×30% + (1−返工率)×30%."""
    # the department's 立案数 = cases dispatched to it that it did not return as 非本单位
    cases = max(0, ind.counters.dispatched - ind.counters.returned)
    return composite(
        [
            ("结案率", 0.30, _points(ind.close_rate)),
            ("按期处置率", 0.30, _points(ind.handle_on_time_rate)),
            ("返工率", 0.30, _points(ind.rework_rate, inverse=True)),
        ],
        [("立案数", 0.10, department_band_score(cases))],
    )


def region_score(
    ind: Indicators,
    area_class: AreaClass = AreaClass.ONE,
    weights: RegionWeights | None = None,
    grids: int = 1,
) -> Score:
    """区域: (1−监督举报率), 立案数 band per grid, 结案率, 按期结案率 weighted by :class:`RegionWeights`."""
    w = weights or RegionWeights()
    per_grid = ind.counters.filed / max(1, grids)
    return composite(
        [
            ("监督举报率", w.public_report, _points(ind.public_report_rate, inverse=True)),
            ("结案率", w.close_rate, _points(ind.close_rate)),
            ("按期结案率", w.close_on_time, _points(ind.close_on_time_rate)),
        ],
        [("立案数", w.filed, region_band_score(per_grid, area_class))],
    )


def score_for(
    object_type: ObjectType | str,
    ind: Indicators,
    *,
    area_class: AreaClass = AreaClass.ONE,
    weights: RegionWeights | None = None,
    grids: int = 1,
    missed_known: bool = True,
) -> Score:
    """The composite score of an object of the given type."""
    kind = ObjectType(object_type)
    if kind in REGION_TYPES:
        return region_score(ind, area_class, weights, grids)
    if kind is ObjectType.DEPARTMENT:
        return department_score(ind)
    if kind is ObjectType.SUPERVISOR:
        return supervisor_score(ind, missed_known)
    if kind is ObjectType.ACCEPTOR:
        return acceptor_score(ind)
    if kind is ObjectType.SHIFT_LEADER:
        return shift_leader_score(ind)
    return dispatcher_score(ind)


def _grids_per_region(aggregates: DailyAggregates, kind: ObjectType) -> dict[str, int]:
    """Grids with any row per region of a type, counted in one pass."""
    if kind not in _PREFIX or kind is ObjectType.GRID:
        return {}
    width = _PREFIX[kind]
    counts: dict[str, int] = {}
    for g in aggregates.ids(ObjectType.GRID):
        counts[g[:width]] = counts.get(g[:width], 0) + 1
    return counts


def evaluation_table(
    aggregates: DailyAggregates,
    object_type: ObjectType | str,
    ids: Iterable[str] | None,
    start: date,
    end: date,
    *,
    overdue_unhandled: Mapping[str, int] | None = None,
    area_classes: Mapping[str, AreaClass] | None = None,
    weights: RegionWeights | None = None,
    grids_per_region: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Counts, rates, score and grade per object of a type over [start, end], best score first."""
    kind = ObjectType(object_type)
    wanted = sorted(aggregates.ids(kind) if ids is None else set(ids))
    rate_names = RATES_BY_TYPE[kind]
    rows: list[dict[str, Any]] = []
    counted = _grids_per_region(aggregates, kind) if grids_per_region is None else {}
    for oid in wanted:
        ind = indicators(aggregates.period(kind, oid, start, end), (overdue_unhandled or {}).get(oid, 0))
        grids = (grids_per_region or {}).get(oid) or max(1, counted.get(oid, 1))
        score = score_for(
            kind,
            ind,
            area_class=(area_classes or {}).get(oid, AreaClass.ONE),
            weights=weights,
            grids=grids,
            missed_known=aggregates.responsible is not None,
        )
        rows.append(
            {
                "object_type": kind.value,
                "object_id": oid,
                **ind.counters.as_dict(),
                "to_handle": ind.to_handle,
                "to_close": ind.to_close,
                **{name: getattr(ind, name) for name in rate_names},
                "score": score.value,
                "grade": score.grade,
                "colour": grade_colour(score.grade),
                "missing": ", ".join(score.missing),
            }
        )
    columns = [
        "object_type",
        "object_id",
        *COUNTER_NAMES,
        "to_handle",
        "to_close",
        *rate_names,
        "score",
        "grade",
        "colour",
        "missing",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.sort_values(["score", "object_id"], ascending=[False, True], na_position="last")
    return frame.reset_index(drop=True)
