"""The shift handover (交班, issue 21 part 4): its snapshot, its writes and the reads of its pages.

A handover is opened by the outgoing shift leader (``handover_open``) and acknowledged by the incoming
one (``handover_ack``); both go through the one pipeline (``feeds.pipeline``), which calls
:func:`open_handover` / :func:`ack_handover` in its transaction, then publishes. The snapshot, taken in
that transaction, holds what the next shift inherits:

- open cases by display stage × age since reported (``AGE_BUCKETS``);
- overdue cases: open, not 挂账, past the running stage's deadline;
- near-deadline cases (labelled "high risk" only with its rule): open, not overdue, whose running stage
  timer has less than ``RISK_SHARE`` (25 %) of the time from its start to its deadline left — a rule on
  the clock, not the breach-risk model of issue 21 part 2, which is not built;
- emergencies (cases of an emergency class) reported during the shift;
- 核实/核查 tasks out (not answered) of open cases;
- unanswered 督办单 of open cases;
- blind spots: not available (issue 21 part 1 is not built), said as such, never a number.

Lists keep at most ``LIST_CAP`` rows each (nearest deadline first); their counts are complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.engine import Connection

from domain.lifecycle import Stage, Status, order_from_json
from domain.shift import DEFAULT_SHIFTS, Shift, parse_shifts
from store.models import Case, HandoverRow, Person, StageTimerRow, Task


def shift_plan() -> tuple[Shift, ...]:
    """The centre's shifts (班次, for the 交班 handover): ``GW_SHIFTS`` as ``HH:MM-HH:MM,…`` in the city's
    time, tiling the day (default ``08:00-16:00,16:00-24:00,00:00-08:00``); every process the same."""
    return parse_shifts(os.environ.get("GW_SHIFTS") or DEFAULT_SHIFTS)

AGE_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("lt4h", 4 * 3600.0),
    ("4to24h", 24 * 3600.0),
    ("1to3d", 72 * 3600.0),
    ("gt3d", None),
)
RISK_SHARE = 0.25  # near deadline: less than this share of the stage's time left
LIST_CAP = 100  # rows kept per list in a snapshot (counts are complete)
MAX_NOTES = 2000  # characters of a handover's notes (and of the acknowledgement's)
SEARCH_ROWS = 200  # handovers a history search shows at most
SNAPSHOT_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def age_bucket(seconds: float) -> str:
    """The age bucket of a case reported ``seconds`` ago."""
    for name, upper in AGE_BUCKETS:
        if upper is None or seconds < upper:
            return name
    return AGE_BUCKETS[-1][0]


def near_deadline(started: datetime, deadline: datetime, now: datetime, share: float = RISK_SHARE) -> bool:
    """Whether a running stage timer has less than ``share`` of its time (start → deadline) left, not
    yet past it."""
    span = (deadline - started).total_seconds()
    left = (deadline - now).total_seconds()
    return span > 0 and 0 <= left < share * span


def _case_item(row: Any, now: datetime) -> dict[str, Any]:
    deadline = _utc(row.deadline) if row.deadline is not None else None
    return {
        "id": row.id,
        "kind": row.kind,
        "class_code": row.class_code,
        "stage": row.stage,
        "street": row.street_code,
        "department": row.department_code,
        "reported_at": _iso(row.reported_at),
        "deadline": _iso(deadline),
        "left_s": None if deadline is None else round((deadline - now).total_seconds()),
    }


def snapshot(conn: Connection, now: datetime, shift_start: datetime, shift_end: datetime) -> dict[str, Any]:
    """What the next shift inherits at ``now`` (see the module's docstring): JSON-ready.

    Counts are grouped in SQL (stage × age bucket, overdue, tasks); only the listed rows, the running
    stage timers (start and deadline) and the urged cases' 督办单 are read row by row.
    """
    now = _utc(now)
    cols = (
        Case.id,
        Case.kind,
        Case.class_code,
        Case.stage,
        Case.street_code,
        Case.department_code,
        Case.reported_at,
        Case.deadline,
    )
    edges = [(name, now - timedelta(seconds=upper)) for name, upper in AGE_BUCKETS if upper is not None]
    age = sql_case(*((Case.reported_at > edge, name) for name, edge in edges), else_=AGE_BUCKETS[-1][0])
    by_stage: dict[str, dict[str, int]] = {}
    open_n = 0
    for stage, bucket, n in conn.execute(
        select(Case.stage, age, func.count()).where(Case.open).group_by(Case.stage, age)
    ):
        cell = by_stage.setdefault(stage or "—", {name: 0 for name, _ in AGE_BUCKETS})
        cell[str(bucket)] += int(n)
        open_n += int(n)
    late = and_(
        Case.open, Case.deadline.is_not(None), Case.deadline < now, Case.status != Status.SUSPENDED.value
    )
    overdue_n = int(conn.execute(select(func.count()).select_from(Case).where(late)).scalar_one())
    overdue = [
        _case_item(r, now)
        for r in conn.execute(select(*cols).where(late).order_by(Case.deadline, Case.id).limit(LIST_CAP))
    ]
    risk_n, risk = _near_deadline(conn, now)
    emergencies = [
        {**_case_item(r, now), "open": bool(r.open), "status": r.status}
        for r in conn.execute(
            select(*cols, Case.open, Case.status)
            .where(Case.emergency, Case.reported_at >= shift_start, Case.reported_at <= now)
            .order_by(Case.reported_at, Case.id)
        )
    ]
    out = and_(Task.done_at.is_(None), Case.open)
    tasks_n, tasks_late = conn.execute(
        select(func.count(), func.coalesce(func.sum(sql_case((Task.deadline < now, 1), else_=0)), 0))
        .select_from(Task)
        .join(Case, Case.id == Task.case_id)
        .where(out)
    ).one()
    tasks = [
        {
            "case_id": r.case_id,
            "kind": r.kind,
            "assignee": r.assignee,
            "created_at": _iso(r.created_at),
            "deadline": _iso(r.deadline),
            "acked": r.acked_at is not None,
            "late": _utc(r.deadline) < now,
        }
        for r in conn.execute(
            select(Task.case_id, Task.kind, Task.assignee, Task.created_at, Task.deadline, Task.acked_at)
            .join(Case, Case.id == Task.case_id)
            .where(out)
            .order_by(Task.deadline, Task.case_id)
            .limit(LIST_CAP)
        )
    ]
    orders = []
    for cid, state in conn.execute(select(Case.id, Case.state).where(Case.open, Case.urges > 0)):
        for raw in (state or {}).get("orders", ()):
            o = order_from_json(raw)
            if o.is_open:
                orders.append(
                    {
                        "case_id": cid,
                        "no": o.no,
                        "by": o.by,
                        "target": o.target,
                        "issued_at": _iso(o.issued_at),
                        "deadline": _iso(o.deadline),
                        "note": o.note,
                        "late": _utc(o.deadline) < now,
                    }
                )
    orders.sort(key=lambda o: (o["deadline"], o["case_id"]))
    stages = [s.value for s in Stage if s.value in by_stage] + sorted(
        set(by_stage) - {s.value for s in Stage}
    )
    return {
        "version": SNAPSHOT_VERSION,
        "taken_at": now.isoformat(),
        "shift": {"start": _iso(shift_start), "end": _iso(shift_end)},
        "buckets": [name for name, _ in AGE_BUCKETS],
        "open": {"total": open_n, "by_stage": {s: by_stage[s] for s in stages}},
        "overdue": {"count": overdue_n, "cases": overdue},
        "near_deadline": {"count": risk_n, "share": RISK_SHARE, "cases": risk[:LIST_CAP]},
        "emergencies": {"count": len(emergencies), "cases": emergencies[:LIST_CAP]},
        "tasks": {"count": int(tasks_n), "late": int(tasks_late), "items": tasks},
        "orders": {
            "count": len(orders),
            "late": sum(1 for x in orders if x["late"]),
            "items": orders[:LIST_CAP],
        },
        "blind_spots": None,  # issue 21 part 1 not built: shown as "not available yet"
    }


def _near_deadline(conn: Connection, now: datetime) -> tuple[int, list[dict[str, Any]]]:
    """Open cases not past their deadline whose running (not paused) stage timer is near its end: how
    many, and the ``LIST_CAP`` nearest (least share of their time left) with their details."""
    q = (
        select(StageTimerRow.case_id, StageTimerRow.started_at, StageTimerRow.deadline)
        .join(Case, StageTimerRow.case_id == Case.id)
        .where(
            Case.open,
            Case.deadline.is_not(None),
            Case.deadline >= now,
            StageTimerRow.ended_at.is_(None),
            StageTimerRow.paused_since.is_(None),
            StageTimerRow.deadline >= now,
        )
    )
    share: dict[str, float] = {}
    for cid, started, end in conn.execute(q):
        t0, t1 = _utc(started), _utc(end)
        if near_deadline(t0, t1, now):
            left = (t1 - now).total_seconds() / (t1 - t0).total_seconds()
            share[cid] = min(left, share.get(cid, left))
    first = sorted(share, key=lambda c: (share[c], c))[:LIST_CAP]
    cols = (
        Case.id,
        Case.kind,
        Case.class_code,
        Case.stage,
        Case.street_code,
        Case.department_code,
        Case.reported_at,
        Case.deadline,
    )
    rows = {r.id: r for r in conn.execute(select(*cols).where(Case.id.in_(first)))} if first else {}
    return len(share), [
        {**_case_item(rows[c], now), "left_share": round(share[c], 3)} for c in first if c in rows
    ]


# -- writes (the pipeline's transaction) ------------------------------------------------------------------


def _by(conn: Connection, *where: Any) -> Any:
    return conn.execute(select(HandoverRow).where(*where)).first()


def open_handover(conn: Connection, h: Mapping[str, Any], at: datetime) -> tuple[str, int | None]:
    """Open a handover (``h``: key, actor, shift_start, shift_end, notes) with the snapshot at ``at``.

    Answers (outcome, handover id): ``accepted``; ``duplicate`` (the same key again);
    ``handover_exists`` (this shift was handed over already, by another command).
    """
    seen = _by(conn, HandoverRow.key == h["key"])
    if seen is not None:
        return "duplicate", int(seen.id)
    start, end = _utc(h["shift_start"]), _utc(h["shift_end"])
    other = _by(conn, HandoverRow.shift_start == start)
    if other is not None:
        return "handover_exists", int(other.id)
    snap = snapshot(conn, at, start, end)
    new_id = conn.execute(
        insert(HandoverRow)
        .values(
            shift_start=start,
            shift_end=end,
            created_by=h["actor"],
            created_at=_utc(at),
            snapshot=snap,
            notes=str(h.get("notes") or "")[:MAX_NOTES],
            key=h["key"],
            acknowledged_by=None,
            acknowledged_at=None,
            ack_notes="",
            ack_key=None,
        )
        .returning(HandoverRow.id)
    ).scalar_one()
    return "accepted", int(new_id)


def ack_handover(conn: Connection, h: Mapping[str, Any], at: datetime) -> tuple[str, int | None]:
    """Acknowledge a handover (``h``: key, actor, handover, notes).

    Answers (outcome, id): ``accepted``; ``duplicate`` (the same acknowledgement again);
    ``unknown_handover``; ``already_acknowledged``; ``self_acknowledge`` (its author may not).
    """
    hid = int(h["handover"])
    row = _by(conn, HandoverRow.id == hid)
    if row is None:
        return "unknown_handover", None
    if row.ack_key is not None and row.ack_key == h["key"]:
        return "duplicate", hid
    if row.acknowledged_at is not None:
        return "already_acknowledged", hid
    if row.created_by == h["actor"]:
        return "self_acknowledge", hid
    done = conn.execute(
        update(HandoverRow)
        .where(HandoverRow.id == hid, HandoverRow.acknowledged_at.is_(None))
        .values(
            acknowledged_by=h["actor"],
            acknowledged_at=_utc(at),
            ack_notes=str(h.get("notes") or "")[:MAX_NOTES],
            ack_key=h["key"],
        )
    ).rowcount
    return ("accepted", hid) if done == 1 else ("already_acknowledged", hid)


# -- reads (pages, the wall) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handover:
    """One handover as its pages show it (names resolved)."""

    id: int
    shift_start: datetime
    shift_end: datetime
    created_by: str
    created_by_name: str
    created_at: datetime
    snapshot: dict[str, Any]
    notes: str
    acknowledged_by: str | None
    acknowledged_by_name: str | None
    acknowledged_at: datetime | None
    ack_notes: str

    @property
    def pending(self) -> bool:
        """Not acknowledged yet (待接班)."""
        return self.acknowledged_at is None


def _names(conn: Connection, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return {
        str(p): str(n) for p, n in conn.execute(select(Person.id, Person.name).where(Person.id.in_(wanted)))
    }


def _rows(conn: Connection, rows: Sequence[Any]) -> list[Handover]:
    names = _names(conn, [x for r in rows for x in (r.created_by, r.acknowledged_by)])
    return [
        Handover(
            int(r.id),
            _utc(r.shift_start),
            _utc(r.shift_end),
            r.created_by,
            names.get(r.created_by, r.created_by),
            _utc(r.created_at),
            dict(r.snapshot or {}),
            r.notes or "",
            r.acknowledged_by,
            names.get(r.acknowledged_by, r.acknowledged_by) if r.acknowledged_by else None,
            _utc(r.acknowledged_at) if r.acknowledged_at is not None else None,
            r.ack_notes or "",
        )
        for r in rows
    ]


def get(conn: Connection, handover_id: int) -> Handover | None:
    """One handover, or None."""
    found = _rows(conn, conn.execute(select(HandoverRow).where(HandoverRow.id == handover_id)).all())
    return found[0] if found else None


def latest(conn: Connection) -> Handover | None:
    """The last handover opened (None: none yet)."""
    q = select(HandoverRow).order_by(HandoverRow.created_at.desc(), HandoverRow.id.desc()).limit(1)
    found = _rows(conn, conn.execute(q).all())
    return found[0] if found else None


def pending(conn: Connection, limit: int = 5) -> list[Handover]:
    """Handovers not acknowledged yet (待接班), newest first."""
    q = (
        select(HandoverRow)
        .where(HandoverRow.acknowledged_at.is_(None))
        .order_by(HandoverRow.created_at.desc(), HandoverRow.id.desc())
        .limit(limit)
    )
    return _rows(conn, conn.execute(q).all())


def for_shift(conn: Connection, shift_start: datetime) -> Handover | None:
    """The handover of the shift starting at ``shift_start`` (None: not handed over yet)."""
    found = _rows(
        conn, conn.execute(select(HandoverRow).where(HandoverRow.shift_start == _utc(shift_start))).all()
    )
    return found[0] if found else None


def wall_line(conn: Connection) -> dict[str, Any] | None:
    """The wall's status line: the last handover, who handed over and when, and its acknowledgement."""
    h = latest(conn)
    if h is None:
        return None
    return {
        "id": h.id,
        "by": h.created_by_name,
        "at": h.created_at.isoformat(),
        "ack_by": h.acknowledged_by_name,
        "ack_at": _iso(h.acknowledged_at),
    }


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").lower() + "%"


def search(
    conn: Connection,
    tz: tzinfo,
    *,
    start: date | None = None,
    end: date | None = None,
    person: str | None = None,
    text: str | None = None,
    limit: int = SEARCH_ROWS,
) -> list[Handover]:
    """Handovers newest first: opened on local days ``start``…``end`` (both included), by or
    acknowledged by a person whose id or name contains ``person``, with ``text`` in either's notes."""
    q = select(HandoverRow)
    if start is not None:
        q = q.where(HandoverRow.created_at >= datetime.combine(start, time(), tz).astimezone(UTC))
    if end is not None:
        q = q.where(
            HandoverRow.created_at < datetime.combine(end + timedelta(days=1), time(), tz).astimezone(UTC)
        )
    if person:
        pat = _like(person)
        who = select(Person.id).where(
            or_(func.lower(Person.id).like(pat, escape="\\"), func.lower(Person.name).like(pat, escape="\\"))
        )
        q = q.where(
            or_(
                HandoverRow.created_by.in_(who),
                HandoverRow.acknowledged_by.in_(who),
                func.lower(HandoverRow.created_by).like(pat, escape="\\"),
            )
        )
    if text:
        pat = _like(text)
        q = q.where(
            or_(
                func.lower(HandoverRow.notes).like(pat, escape="\\"),
                func.lower(HandoverRow.ack_notes).like(pat, escape="\\"),
            )
        )
    q = q.order_by(HandoverRow.created_at.desc(), HandoverRow.id.desc()).limit(
        max(1, min(limit, SEARCH_ROWS))
    )
    return _rows(conn, conn.execute(q).all())


__all__ = [
    "AGE_BUCKETS",
    "LIST_CAP",
    "MAX_NOTES",
    "RISK_SHARE",
    "Handover",
    "ack_handover",
    "age_bucket",
    "for_shift",
    "get",
    "latest",
    "near_deadline",
    "open_handover",
    "pending",
    "search",
    "snapshot",
    "wall_line",
]
