"""Statistics of the 部件 inventory (issue 18 item 6): recurring objects and the evaluation of the units
by the cases of the objects they own.

- **Recurring objects** (重复发案部件): the objects named by at least ``min_cases`` cases reported in the
  ``days`` before an instant (default 3 in 90 days, ``GW_RECURRING_MIN`` / ``GW_RECURRING_DAYS``).
  One grouped query over the cases of the window (the index on ``cases.component_id``) joined to the
  inventory for class, grid and units; read by the desk page ``/desk/components/recurring`` and the
  wall's ``recurring`` scene (``feeds.wallstats``).
- **Evaluation of the units by their objects** (:func:`owner_evaluation`): per unit and per role
  (主管/权属/养护), the objects it holds, the cases reported on them in a period, cases per 100
  objects, how many of them went to the unit itself, how many were handled and how many by the
  处置 deadline (the stage timer ``handle``: ended, not overdue), and its recurring objects.

Computed from the existing tables (cases, stage_timers, components); pure reads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy import case as sql_case
from sqlalchemy.engine import Connection

from domain.component import ComponentState, Role
from domain.lifecycle import T_HANDLE
from store.components import inventory_version
from store.models import Case, Component, ComponentHistory, Department, StageTimerRow

DEFAULT_MIN_CASES = 3
DEFAULT_DAYS = 90
MIN_CASES_RANGE = (2, 100)  # a threshold outside is refused (bad_min)
DAYS_RANGE = (1, 366)  # a window outside is refused (bad_days)
MAX_ROWS = 5_000  # recurring objects read at most (the page shows the first ones, the count says how many)
ROLES: tuple[Role, ...] = (Role.MAIN, Role.OWNER, Role.CARE)
_ROLE_COLUMN = {Role.MAIN: "unit_main", Role.OWNER: "unit_owner", Role.CARE: "unit_care"}
RETIRED = ComponentState.RETIRED.value


class StatsRequestError(ValueError):
    """A threshold, window, class or street the statistics cannot take; ``reason`` names it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RecurringRule:
    """What makes an object recurring: at least ``min_cases`` cases in the last ``days`` days."""

    min_cases: int = DEFAULT_MIN_CASES
    days: int = DEFAULT_DAYS

    @classmethod
    def parse(cls, min_cases: str | int | None, days: str | int | None) -> RecurringRule:
        """A rule from text (a query or the environment); :class:`StatsRequestError` when out of range."""
        base = cls.from_env()
        n = _bounded(min_cases, base.min_cases, MIN_CASES_RANGE, "bad_min", "min")
        d = _bounded(days, base.days, DAYS_RANGE, "bad_days", "days")
        return cls(n, d)

    @classmethod
    def from_env(cls) -> RecurringRule:
        """The centre's rule: ``GW_RECURRING_MIN`` and ``GW_RECURRING_DAYS`` (3 in 90 days by default;
        a value out of range is ignored)."""
        try:
            n = _bounded(os.environ.get("GW_RECURRING_MIN"), DEFAULT_MIN_CASES, MIN_CASES_RANGE, "", "")
            d = _bounded(os.environ.get("GW_RECURRING_DAYS"), DEFAULT_DAYS, DAYS_RANGE, "", "")
        except StatsRequestError:
            return cls()
        return cls(n, d)


def _bounded(value: str | int | None, default: int, bounds: tuple[int, int], reason: str, name: str) -> int:
    if value is None or value == "":
        return default
    text = str(value).strip()
    if len(text) > 4 or not text.isdigit() or not bounds[0] <= int(text) <= bounds[1]:
        raise StatsRequestError(reason, f"{name}={text[:10]!r} is not a whole number {bounds[0]}–{bounds[1]}")
    return int(text)


def parse_class(value: str | None) -> str | None:
    """The ``class`` filter: a 4-digit 部件 class code, or None for every class."""
    if not value:
        return None
    if len(value) != 4 or not value.isdigit():
        raise StatsRequestError("bad_class", f"class={value[:10]!r} is not a 4-digit class code")
    return value


def parse_street(value: str | None) -> str | None:
    """The ``street`` filter: a 9-digit street code, or None for the whole district."""
    if not value:
        return None
    if len(value) != 9 or not value.isdigit():
        raise StatsRequestError("bad_street", f"street={value[:12]!r} is not a 9-digit street code")
    return value


@dataclass(frozen=True)
class Recurring:
    """One recurring object: its row in the inventory, its case count in the window and its last case."""

    id: str
    class_code: str
    name: str
    grid_code: str | None
    state: str
    units: dict[Role, str | None]
    cases: int
    last_at: datetime
    last_case: str | None = None

    @property
    def street(self) -> str | None:
        """The street code of its grid (the grid code's first 9 digits)."""
        return self.grid_code[:9] if self.grid_code else None


@dataclass(frozen=True)
class RecurringList:
    """The recurring objects of a window, most cases first (``total``: how many there are in all)."""

    rule: RecurringRule
    since: datetime
    until: datetime
    rows: list[Recurring]
    total: int


def recurring(
    conn: Connection,
    now: datetime,
    rule: RecurringRule | None = None,
    *,
    class_code: str | None = None,
    street: str | None = None,
    limit: int = 200,
    last_cases: bool = True,
) -> RecurringList:
    """The objects with at least ``rule.min_cases`` cases reported in the ``rule.days`` days up to ``now``,
    of one class and in one street when given; most cases first (then the latest last case, then the
    identifier); the first ``limit`` with their last case's id when ``last_cases``."""
    rule = rule or RecurringRule.from_env()
    since = now - timedelta(days=rule.days)
    n = func.count().label("n")
    last = func.max(Case.reported_at).label("last_at")
    grouped = (
        select(Case.component_id.label("cid"), n, last)
        .where(Case.component_id.is_not(None), Case.reported_at >= since, Case.reported_at <= now)
        .group_by(Case.component_id)
        .having(func.count() >= rule.min_cases)
        .subquery()
    )
    c = Component.__table__.c
    where: list[Any] = []
    if class_code:
        where.append(c.class_code == class_code)
    if street:  # a street's grids: a prefix range of the grid code
        where += [c.grid_code >= street, c.grid_code < street + "~"]
    q = (
        select(
            grouped.c.cid,
            grouped.c.n,
            grouped.c.last_at,
            c.class_code,
            c.name,
            c.grid_code,
            c.state,
            c.unit_main,
            c.unit_owner,
            c.unit_care,
        )
        .join(Component, Component.id == grouped.c.cid)
        .where(*where)
        .order_by(grouped.c.n.desc(), grouped.c.last_at.desc(), grouped.c.cid)
        .limit(MAX_ROWS)
    )
    rows = [
        Recurring(
            str(r[0]),
            str(r[3]),
            str(r[4] or ""),
            r[5],
            str(r[6]),
            {Role.MAIN: r[7], Role.OWNER: r[8], Role.CARE: r[9]},
            int(r[1]),
            r[2],
        )
        for r in conn.execute(q)
    ]
    total = len(rows)
    shown = rows[: max(0, limit)]
    if last_cases and shown:
        latest: dict[str, tuple[datetime, str]] = {}
        picked = select(Case.component_id, Case.reported_at, Case.id).where(
            Case.component_id.in_([r.id for r in shown]), Case.reported_at >= since, Case.reported_at <= now
        )
        for cid, at, case_id in conn.execute(picked):
            key = str(cid)
            if key not in latest or (at, case_id) > latest[key]:
                latest[key] = (at, case_id)
        shown = [
            Recurring(**{**r.__dict__, "last_case": latest[r.id][1] if r.id in latest else None})
            for r in shown
        ]
    return RecurringList(rule, since, now, shown, total)


def wall_recurring(
    conn: Connection, now: datetime, rule: RecurringRule | None = None, top: int = 8
) -> dict[str, Any]:
    """The wall's ``recurring`` scene: the rule, how many objects recur and the ``top`` ones (identifier,
    ``"component:<class>"`` key for the class's name, grid, cases)."""
    got = recurring(conn, now, rule, limit=top, last_cases=False)
    return {
        "min": got.rule.min_cases,
        "days": got.rule.days,
        "total": got.total,
        "top": [
            {"id": r.id, "key": f"component:{r.class_code}", "grid": r.grid_code, "n": r.cases}
            for r in got.rows
        ],
    }


# ---------------------------------------------------------------------------------------------
# The units evaluated by the cases of their objects

OWNER_COLUMNS = (
    "role",
    "unit",
    "name",
    "objects",
    "cases",
    "per_100",
    "to_unit",
    "handled",
    "on_time",
    "on_time_rate",
    "recurring",
)


def owner_evaluation(
    conn: Connection,
    start: datetime,
    end: datetime,
    rule: RecurringRule | None = None,
    *,
    roles: Sequence[Role] = ROLES,
    recurring_at: datetime | None = None,
) -> pd.DataFrame:
    """Per role and unit: objects held (not retired), cases reported on them in ``[start, end)``, cases
    per 100 objects, those that went to the unit itself (``to_unit``), handled (the 处置 clock ended)
    and handled by the deadline (``on_time``; ``on_time_rate`` = on_time / handled, empty without any),
    and its recurring objects (``rule``, the window ending at ``recurring_at``, default ``end``). Most
    cases first within a role."""
    rule = rule or RecurringRule.from_env()
    c = Component.__table__.c
    held = {k: n for k, n in held_objects(conn).items() if k[0] in roles}
    handled = StageTimerRow.ended_at.is_not(None)
    q = (
        select(
            c.unit_main,
            c.unit_owner,
            c.unit_care,
            Case.department_code,
            func.count(),
            func.sum(sql_case((handled, 1), else_=0)),
            func.sum(sql_case((and_(handled, StageTimerRow.overdue.is_(False)), 1), else_=0)),
        )
        .select_from(Case)
        .join(Component, Component.id == Case.component_id)
        .outerjoin(StageTimerRow, and_(StageTimerRow.case_id == Case.id, StageTimerRow.stage == T_HANDLE))
        .where(Case.component_id.is_not(None), Case.reported_at >= start, Case.reported_at < end)
        .group_by(c.unit_main, c.unit_owner, c.unit_care, Case.department_code)
    )
    counts: dict[tuple[Role, str], list[int]] = {}
    for mains, owners, cares, dept, n, done, kept in conn.execute(q):
        for role, unit in zip(ROLES, (mains, owners, cares), strict=True):
            if not unit or role not in roles:
                continue
            row = counts.setdefault((role, unit), [0, 0, 0, 0])
            row[0] += int(n)
            row[1] += int(n) if dept == unit else 0
            row[2] += int(done or 0)
            row[3] += int(kept or 0)
    again: dict[tuple[Role, str], int] = {}
    for r in _recurring_units(conn, recurring_at or end, rule):
        for role in roles:
            unit = r.get(role)
            if unit:
                again[(role, unit)] = again.get((role, unit), 0) + 1
    names = {str(k): str(v) for k, v in conn.execute(select(Department.code, Department.name))}
    records: list[dict[str, Any]] = []
    for role, unit in sorted(set(held) | set(counts) | set(again), key=lambda k: (ROLES.index(k[0]), k[1])):
        objects = held.get((role, unit), 0)
        n, to_unit, done, kept = counts.get((role, unit), [0, 0, 0, 0])
        records.append(
            {
                "role": role.name.lower(),
                "unit": unit,
                "name": names.get(unit, unit),
                "objects": objects,
                "cases": n,
                "per_100": round(100.0 * n / objects, 2) if objects else None,
                "to_unit": to_unit,
                "handled": done,
                "on_time": kept,
                "on_time_rate": round(kept / done, 4) if done else None,
                "recurring": again.get((role, unit), 0),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(OWNER_COLUMNS))
    if not frame.empty:
        order = {r.name.lower(): i for i, r in enumerate(ROLES)}
        frame = frame.sort_values(
            ["role", "cases", "unit"],
            key=lambda s: s.map(order) if s.name == "role" else s,
            ascending=[True, False, True],
        ).reset_index(drop=True)
    return frame


_HELD: dict[tuple[str, int, str], dict[tuple[Role, str], int]] = {}
_HELD_LOCK = threading.Lock()


def held_objects(conn: Connection) -> dict[tuple[Role, str], int]:
    """The objects (not retired) each unit holds in each role; read once per inventory version (its
    history's highest id and that change's instant) and database: counting 200,000 objects takes half a
    second, and the inventory changes seldom."""
    version = inventory_version(conn)
    last = conn.scalar(select(ComponentHistory.at).where(ComponentHistory.id == version)) if version else None
    key = (conn.engine.url.render_as_string(hide_password=True), version, str(last))
    with _HELD_LOCK:
        got = _HELD.get(key)
    if got is not None:
        return got
    c = Component.__table__.c
    held: dict[tuple[Role, str], int] = {}
    for mains, owners, cares, n in conn.execute(
        select(c.unit_main, c.unit_owner, c.unit_care, func.count())
        .where(c.state != RETIRED)
        .group_by(c.unit_main, c.unit_owner, c.unit_care)
    ):
        for role, unit in zip(ROLES, (mains, owners, cares), strict=True):
            if unit:
                held[(role, unit)] = held.get((role, unit), 0) + int(n)
    with _HELD_LOCK:
        if len(_HELD) > 16:
            _HELD.clear()
        _HELD[key] = held
    return held


def _recurring_units(
    conn: Connection, now: datetime, rule: RecurringRule | None
) -> list[Mapping[Role, str | None]]:
    """The units of every recurring object at ``now``."""
    return [r.units for r in recurring(conn, now, rule, limit=MAX_ROWS, last_cases=False).rows]
