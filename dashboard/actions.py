"""What a desk person may do on a case, whom to send for its 核实/核查 task, and the case's tasks.

Read-only: the offers are found by trying each command on the case's state with the pure lifecycle
(``domain.lifecycle.apply``), so the desk shows exactly what the command path would accept and the
rules live in one place. The writes themselves go through ``dashboard.commands.run_command``
(``POST /api/v1/commands`` from ``assets/gw-desk.js``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.lifecycle import Action, Actor, CaseState, Command, Context, Rejection, Role, Status, apply
from domain.supervisor import SupervisorStatus, distance_m
from feeds.live import LiveSupervisor
from store.models import Task

# the commands a desk person may be offered, in the order of the lifecycle
OFFERED: tuple[Action, ...] = (
    Action.ACCEPT, Action.FILE, Action.VOID, Action.DISPATCH, Action.APPROVE, Action.REJECT,
    Action.RESUME, Action.FEEDBACK, Action.REQUEST_EXTENSION, Action.REQUEST_SUSPENSION,
    Action.REQUEST_RETURN, Action.SEND_CHECK, Action.CLOSE, Action.URGE, Action.URGE_REPLY,
)  # fmt: skip
OPINION_REQUIRED = frozenset(
    {Action.VOID, Action.REJECT, Action.REQUEST_EXTENSION, Action.REQUEST_SUSPENSION, Action.REQUEST_RETURN,
     Action.URGE_REPLY}
)
# the input each command's form needs besides the opinion
FIELDS: dict[Action, tuple[str, ...]] = {
    Action.DISPATCH: ("department",),
    Action.REQUEST_EXTENSION: ("extra",),
    Action.CLOSE: ("special",),
}
_TRIAL_DATA: dict[Action, dict[str, Any]] = {Action.REQUEST_EXTENSION: {"extra": "1工作日"}}
# commands offered a second time with fixed data, as a button of their own: (name, action, data)
VARIANTS: tuple[tuple[str, Action, dict[str, Any]], ...] = (
    ("accept_refuse_self", Action.ACCEPT, {"self_handled": False}),  # 自处理审核: refuse the fix
    ("close_error", Action.CLOSE, {"error": True}),  # 差错结案
    ("review_pass", Action.REVIEW, {"passed": True}),  # 反馈审核: on to 核查
    ("review_back", Action.REVIEW, {"passed": False}),  # 反馈审核: back to the department
)
_VARIANT_OPINION_FREE = frozenset({"review_pass"})  # variants whose opinion may be left empty
CANDIDATES = 6  # supervisors offered for a task
# who may be sent: anyone on line (the status is shown; the leader decides), never an offline handset
_SENDABLE = frozenset(s.value for s in SupervisorStatus if s is not SupervisorStatus.OFFLINE)


@dataclass(frozen=True)
class Offer:
    """One command the person may give now, and the input its form needs."""

    action: str
    opinion_required: bool
    fields: tuple[str, ...]
    name: str = ""  # the button's words (``act.do.<name>``), when not the action's own
    data: Mapping[str, Any] | None = None  # fixed data the button sends (a variant's)

    @property
    def label(self) -> str:
        """The catalogue key suffix of the button's words."""
        return self.name or self.action


@dataclass(frozen=True)
class Candidate:
    """A supervisor who could take the case's task."""

    id: str
    status: str
    distance_m: float
    at: datetime | None
    open_tasks: int


@dataclass(frozen=True)
class TaskRow:
    """A 核实/核查 task of the case."""

    kind: str
    assignee: str | None
    created_at: datetime
    deadline: datetime
    acked_at: datetime | None
    done_at: datetime | None
    result: bool | None


def actor_of(person: Mapping[str, Any]) -> Actor | None:
    """The lifecycle actor of a logged-in person (None when the role is not a lifecycle role)."""
    try:
        role = Role(str(person.get("role")))
    except ValueError:
        return None
    dept = person.get("department") if role is Role.DEPARTMENT else None
    return Actor(str(person["person_id"]), role, dept)


def _allowed(
    state: CaseState, actor: Actor, action: Action, data: Mapping[str, Any], rules: Context, now: datetime
) -> bool:
    at = max(now, state.updated_at)  # rules.now is None: a trial is never "in the future"
    cmd = Command(action, state.id, actor, "-", data)
    return not isinstance(apply(state, cmd, at, rules), Rejection)


def offers(state: CaseState, person: Mapping[str, Any], rules: Context, now: datetime) -> list[Offer]:
    """The commands ``person`` may give on the case now (tried on the pure lifecycle)."""
    actor = actor_of(person)
    if actor is None or not state.is_open:
        return []
    free = replace(rules, now=None)
    trial = dict(_TRIAL_DATA)
    if state.status is Status.SUB_DISPATCHING:  # 二级派遣: tried with one of the sub-centre's units
        units = rules.catalogue.units_of(state.department or "")
        trial[Action.DISPATCH] = {"department": units[0] if units else ""}
    found = [
        Offer(a.value, a in OPINION_REQUIRED, FIELDS.get(a, ()))
        for a in OFFERED
        if _allowed(state, actor, a, trial.get(a, {}), free, now)
    ]
    if state.self_handled and any(o.action == Action.ACCEPT.value for o in found):  # 自处理审核
        found = [replace(o, name="accept_self") if o.action == Action.ACCEPT.value else o for o in found]
    for name, a, data in VARIANTS:
        if (a is not Action.ACCEPT or state.self_handled) and _allowed(state, actor, a, data, free, now):
            found.append(Offer(a.value, name not in _VARIANT_OPINION_FREE, (), name, data))
    if state.duplicate_of:  # issue 21: 合并 into the candidate found on arrival, or 不合并
        for a, data in ((Action.MERGE, {"into": state.duplicate_of}), (Action.KEEP_APART, {})):
            if _allowed(state, actor, a, data, free, now):
                found.append(Offer(a.value, False, (), a.value, data))
    return found


def may_assign(state: CaseState, person: Mapping[str, Any], rules: Context, now: datetime) -> bool:
    """Whether ``person`` may send the case's open 核实/核查 task to a supervisor now."""
    actor = actor_of(person)
    return (
        actor is not None
        and state.status in (Status.VERIFYING, Status.TO_CHECK)
        and _allowed(state, actor, Action.ASSIGN, {"assignee": "-"}, replace(rules, now=None), now)
    )


def nearest(sups: Iterable[LiveSupervisor], lon: float, lat: float, n: int = CANDIDATES) -> list[Candidate]:
    """The ``n`` supervisors on line nearest to a point, nearest first (never an offline one)."""
    found = [
        (distance_m(lon, lat, s.lon, s.lat), s.id, s)
        for s in sups
        if s.status in _SENDABLE and s.lon is not None and s.lat is not None
    ]
    found.sort(key=lambda x: (x[0], x[1]))
    return [Candidate(s.id, s.status, d, s.at, 0) for d, _, s in found[:n]]


def with_open_tasks(engine: Engine, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates with how many unfinished tasks each one holds."""
    if not candidates:
        return []
    q = (
        select(Task.assignee, func.count())
        .where(Task.done_at.is_(None), Task.assignee.in_([c.id for c in candidates]))
        .group_by(Task.assignee)
    )
    with engine.connect() as conn:
        held = {str(a): int(n) for a, n in conn.execute(q)}
    return [replace(c, open_tasks=held.get(c.id, 0)) for c in candidates]


def case_tasks(engine: Engine, case_id: str) -> list[TaskRow]:
    """The case's tasks, oldest first."""
    t = Task
    cols = (t.kind, t.assignee, t.created_at, t.deadline, t.acked_at, t.done_at, t.result)
    q = select(*cols).where(Task.case_id == case_id).order_by(Task.id)
    with engine.connect() as conn:
        return [TaskRow(*r) for r in conn.execute(q)]
