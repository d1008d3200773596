"""Work lists (待办) of the centre's operators: their open items, nearest stage deadline first.

Pure: built from the live state's open cases and the lifecycle policy (who may accept, file, close,
dispatch, send tasks), so a deployment that lets the acceptor file and close (Yuncheng) gets those
items in the acceptor's list. ``layouts/queue.py`` draws them at ``/desk/queue/<role>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.lifecycle import Policy, Role, Status
from feeds.live import LiveCase

QUEUE_ROLES: tuple[str, ...] = ("acceptor", "shift_leader", "dispatcher", "department")
_LAST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class WorkItem:
    """One thing to do on one case: what (``todo``) and the commands that need no input (``quick``)."""

    case: LiveCase
    # accept | verify | check | send_check | review | file | close | dispatch | request | suspended |
    # sub_dispatch | handle
    todo: str
    quick: tuple[str, ...]


def _department_todo(case: LiveCase, department: str | None) -> tuple[str, tuple[str, ...]] | None:
    """What a department (``department``; None: any) has to do on ``case``: a 街道分中心 dispatches on
    and decides its units' requests; a unit handles (feedback, requests: on the case page)."""
    mine = department is None or case.department == department
    if case.status == Status.SUB_DISPATCHING and mine:
        return "sub_dispatch", ()  # pick one of its units on the case page
    if case.status != Status.HANDLING:
        return None
    if case.request is not None:
        decides = case.subcentre is not None and (department is None or case.subcentre == department)
        return ("request", ("approve",)) if decides and case.department != case.subcentre else None
    return ("handle", ()) if mine else None


def _todo(case: LiveCase, role: Role, policy: Policy) -> tuple[str, tuple[str, ...]] | None:
    """What ``role`` has to do on ``case`` (None: nothing)."""
    status = case.status
    if status == Status.REPORTED and role in policy.accept_roles:
        return "accept", ("accept",)
    follows = role in policy.accept_roles and role in policy.assign_roles  # 受理员 send 核实/核查 tasks
    if status == Status.VERIFYING and follows:
        return "verify", ()  # follow the 核实 task (send someone nearer from the case page)
    if status == Status.TO_CHECK and follows:
        return "check", ()
    if status == Status.TO_SEND_CHECK and role in policy.accept_roles:
        return "send_check", ("send_check",)
    if status == Status.REVIEWING and role in policy.review_roles:
        return "review", ()  # pass or send back, on the case page
    if status == Status.TO_FILE and role in policy.file_roles:
        return "file", ("file",)  # or void, with an opinion, on the case page
    if status == Status.TO_CLOSE and role in policy.close_roles:
        return "close", ("close",)
    if status == Status.TO_DISPATCH and role in policy.dispatch_roles:
        return "dispatch", ("dispatch",)
    if status == Status.HANDLING and case.request is not None and role in policy.dispatch_roles:
        return "request", ("approve",)  # or refuse, with an opinion, on the case page
    if status == Status.SUSPENDED and role in policy.dispatch_roles:
        return "suspended", ("resume",)
    return None


def worklist(
    role: str, cases: Iterable[LiveCase], policy: Policy | None = None, department: str | None = None
) -> list[WorkItem]:
    """The open items of ``role``, nearest stage deadline first (suspended ones, without one, last);
    for ``department`` the items of that department (None: of every department)."""
    try:
        r = Role(role)
    except ValueError:
        return []
    policy = policy or Policy()
    items = []
    for c in cases:
        found = _department_todo(c, department) if r is Role.DEPARTMENT else _todo(c, r, policy)
        if found is not None:
            items.append(WorkItem(c, *found))
    items.sort(key=lambda i: (i.case.deadline or _LAST, i.case.reported_at, i.case.id))
    return items
