"""Read models of the desk: the district → street → community → grid hierarchy, cases, rosters, patrol.

Everything here only reads (the desk writes through ``dashboard.commands``). The hierarchy is loaded
once per built district (like ``dashboard.data.OverviewCache``); cases, rosters and positions are
queried per page with indexed lookups.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import shape
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dashboard.data import OverviewCache
from domain import lifecycle
from domain.lifecycle import DISPLAY_STAGE, Status, UrgeOrder, order_from_json, state_from_json
from store.db import session_factory
from store.models import Case, CaseEventRow, Community, Grid, GridStaff, Person, Position, StageTimerRow
from store.roster import DUTIES

# the timer that runs in each status (domain.lifecycle timer names)
TIMER_OF_STATUS: dict[str, str] = {s.value: timer for s, timer in lifecycle.TIMER_OF_STATUS.items()}


@dataclass(frozen=True)
class CommunityInfo:
    """A community of the hierarchy."""

    code: str
    name: str
    street: str
    grids: tuple[str, ...]
    centre: tuple[float, float]


@dataclass(frozen=True)
class GridInfo:
    """A unit grid of the hierarchy."""

    code: str
    community: str
    street: str
    area: str | None
    level: str
    centre: tuple[float, float]
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class Hierarchy:
    """The district's communities and grids (streets come from the overview)."""

    communities: dict[str, CommunityInfo]
    grids: dict[str, GridInfo]
    by_street: dict[str, tuple[str, ...]]  # street → community codes
    supervisor_of_area: dict[str, str]  # responsibility area → active supervisor id


class DeskData:
    """The desk's queries on a read engine."""

    def __init__(self, engine: Engine, cache: OverviewCache) -> None:
        self.engine = engine
        self.cache = cache
        self._lock = threading.Lock()
        self._key: str | None = None
        self._value: Hierarchy | None = None

    def hierarchy(self) -> Hierarchy | None:
        """The hierarchy of the current district (None when none is built)."""
        ov = self.cache.current()
        if ov is None:
            return None
        key = f"{ov.summary.adcode}:{id(ov)}"
        with self._lock:
            if self._key != key or self._value is None:
                self._value = self._load(ov.summary.adcode)
                self._key = key
            return self._value

    def _load(self, adcode: str) -> Hierarchy:
        with session_factory(self.engine)() as s:
            grids: dict[str, GridInfo] = {}
            members: dict[str, list[str]] = {}
            for r in s.execute(
                select(
                    Grid.code,
                    Grid.community_code,
                    Grid.street_code,
                    Grid.area_code,
                    Grid.level,
                    Grid.centroid_lon,
                    Grid.centroid_lat,
                    Grid.min_lon,
                    Grid.min_lat,
                    Grid.max_lon,
                    Grid.max_lat,
                )
                .where(Grid.code.startswith(adcode), Grid.active)
                .order_by(Grid.code)
            ):
                grids[r.code] = GridInfo(
                    r.code,
                    r.community_code,
                    r.street_code,
                    r.area_code,
                    r.level,
                    (r.centroid_lon, r.centroid_lat),
                    (r.min_lon, r.min_lat, r.max_lon, r.max_lat),
                )
                members.setdefault(r.community_code, []).append(r.code)
            communities: dict[str, CommunityInfo] = {}
            by_street: dict[str, list[str]] = {}
            for c in s.execute(
                select(
                    Community.code,
                    Community.name,
                    Community.street_code,
                    Community.centroid_lon,
                    Community.centroid_lat,
                )
                .where(Community.code.startswith(adcode), Community.active)
                .order_by(Community.code)
            ):
                communities[c.code] = CommunityInfo(
                    c.code,
                    c.name,
                    c.street_code,
                    tuple(members.get(c.code, ())),
                    (c.centroid_lon, c.centroid_lat),
                )
                by_street.setdefault(c.street_code, []).append(c.code)
            sup: dict[str, str] = {
                str(area): pid
                for pid, area in s.execute(
                    select(Person.id, Person.area_code)
                    .where(Person.role == "supervisor", Person.active, Person.area_code.is_not(None))
                    .order_by(Person.id.desc())
                )
            }
        return Hierarchy(communities, grids, {k: tuple(v) for k, v in by_street.items()}, sup)

    def exists(self, kind: str, code: str) -> bool:
        """Whether a deep link's object exists (street, community, grid, case or supervisor)."""
        if len(code) > 64:
            return False
        if kind == "case":
            with self.engine.connect() as conn:
                return conn.scalar(select(Case.id).where(Case.id == code)) is not None
        if kind == "supervisor":
            with self.engine.connect() as conn:
                role = conn.scalar(select(Person.role).where(Person.id == code))
            return role == "supervisor"
        h = self.hierarchy()
        ov = self.cache.current()
        if h is None or ov is None:
            return False
        if kind == "street":
            return any(s.code == code for s in ov.streets)
        if kind == "community":
            return code in h.communities
        if kind == "grid":
            return code in h.grids
        return False

    # -- grids ----------------------------------------------------------------------------------------

    def grid_shapes(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GeoJSON geometry of some grids."""
        if not codes:
            return {}
        with self.engine.connect() as conn:
            return {
                c: g for c, g in conn.execute(select(Grid.code, Grid.geometry).where(Grid.code.in_(codes)))
            }

    def neighbours(self, code: str) -> list[str]:
        """Grids that touch a grid (bounding boxes overlap, then shapes touch)."""
        h = self.hierarchy()
        if h is None or code not in h.grids:
            return []
        a = h.grids[code].bbox
        eps = 1e-7
        near = [
            g.code
            for g in h.grids.values()
            if g.code != code
            and g.bbox[0] <= a[2] + eps
            and g.bbox[2] >= a[0] - eps
            and g.bbox[1] <= a[3] + eps
            and g.bbox[3] >= a[1] - eps
        ]
        shapes = self.grid_shapes([code, *near])
        me = shape(shapes[code]).buffer(1e-6)
        return [g for g in near if g in shapes and me.intersects(shape(shapes[g]))]

    def roster(self, grid: str) -> list[dict[str, str]]:
        """The grid's staff roster (duty, name, phone) in duty order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(GridStaff.duty, GridStaff.name, GridStaff.phone).where(GridStaff.grid_code == grid)
            ).all()
        order = {d: i for i, d in enumerate(DUTIES)}
        return sorted(
            ({"duty": r.duty, "name": r.name, "phone": r.phone} for r in rows),
            key=lambda r: (order.get(r["duty"], 99), r["name"]),
        )

    def last_visit(self, grid: str, since: datetime) -> datetime | None:
        """The latest fix inside a grid since an instant by the supervisors of its area.

        Read through the supervisors' own index (``ix_positions_supervisor_at``): a week of one
        supervisor's fixes, however big the city (an index of positions by grid halved the ingest
        rate). The desk asks the live state first, which knows every supervisor's visits today.
        """
        h = self.hierarchy()
        info = h.grids.get(grid) if h is not None else None
        sup = h.supervisor_of_area.get(info.area or "") if h is not None and info is not None else None
        if sup is None:
            return None
        with self.engine.connect() as conn:
            at = conn.scalar(
                select(func.max(Position.at)).where(
                    Position.supervisor_id == sup, Position.at >= since, Position.grid_code == grid
                )
            )
        if at is None:
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    # -- cases ----------------------------------------------------------------------------------------

    def cases(
        self,
        prefix: str,
        *,
        open_only: bool = False,
        since: datetime | None = None,
        stage: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Cases whose grid starts with ``prefix`` (newest first), with their first photo reference."""
        q = select(
            Case.id,
            Case.kind,
            Case.class_code,
            Case.status,
            Case.stage,
            Case.open,
            Case.source,
            Case.reported_at,
            Case.deadline,
            Case.grid_code,
            Case.description,
        )
        q = (
            q.where(Case.grid_code == prefix)
            if len(prefix) == 15
            else q.where(Case.grid_code.startswith(prefix))
        )
        if open_only:
            q = q.where(Case.open)
        if since is not None:
            q = q.where(Case.reported_at >= since)
        if stage:
            q = q.where(Case.stage == stage)
        # newest first through ix_cases_grid_open / ix_cases_grid_reported: reads ``limit`` rows
        q = q.order_by(Case.reported_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            ids = [r.id for r in rows]
            media: dict[str, str] = {}
            if ids:
                refs_of = CaseEventRow.data["media"].as_string()  # the photo field, not all the data
                for cid, refs in conn.execute(
                    select(CaseEventRow.case_id, refs_of)
                    .where(CaseEventRow.case_id.in_(ids), refs_of != "")
                    .order_by(CaseEventRow.case_id, CaseEventRow.seq)
                ):  # the first photo of each case (report, verification or handling)
                    if refs and cid not in media:
                        media[cid] = str(refs).split(",")[0]
        out = []
        for r in rows:
            out.append(
                {
                    "id": r.id,
                    "kind": r.kind,
                    "class_code": r.class_code,
                    "status": r.status,
                    "stage": r.stage,
                    "open": r.open,
                    "source": r.source,
                    "reported_at": _aware(r.reported_at),
                    "deadline": _aware(r.deadline),
                    "grid": r.grid_code,
                    "description": r.description,
                    "photo": media.get(r.id),
                }
            )
        return out

    def case(self, case_id: str) -> dict[str, Any] | None:
        """One case with its state, stage timers and full event log (None when unknown)."""
        with session_factory(self.engine)() as s:
            row = s.get(Case, case_id)
            if row is None:
                return None
            return _case_view(s, row)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _case_view(s: Session, row: Case) -> dict[str, Any]:
    state = state_from_json(row.state)
    e_ = CaseEventRow
    events = s.execute(  # plain rows (no ORM objects): a long timeline has dozens of events
        select(e_.seq, e_.action, e_.actor, e_.role, e_.from_status, e_.to_status, e_.at, e_.opinion, e_.data)
        .where(e_.case_id == row.id)
        .order_by(e_.seq)
    ).all()
    timers = list(s.scalars(select(StageTimerRow).where(StageTimerRow.case_id == row.id)))
    media: list[str] = []
    for e in events:
        for ref in str((e.data or {}).get("media") or "").split(","):
            if ref and ref not in media:
                media.append(ref)
    return {
        "id": row.id,
        "state": state,
        "kind": row.kind,
        "class_code": row.class_code,
        "condition_code": row.condition_code,
        "source": row.source,
        "status": row.status,
        "stage": row.stage,
        "open": row.open,
        "emergency": row.emergency,
        "grid": row.grid_code,
        "street": row.street_code,
        "community": row.community_code,
        "lon": row.lon,
        "lat": row.lat,
        "address": row.address,
        "description": row.description,
        "department": row.department_code,
        "reporter": row.reporter,
        "reported_at": _aware(row.reported_at),
        "closed_at": _aware(row.closed_at),
        "deadline": _aware(row.deadline),
        "archive": row.archive,
        "reworks": row.reworks,
        "returns": row.returns,
        "urges": row.urges,
        "origin": row.origin,
        "timers": {t.stage: t for t in timers},
        "events": [
            {
                "seq": e.seq,
                "action": e.action,
                "actor": e.actor,
                "role": e.role,
                "from": e.from_status,
                "to": e.to_status,
                "at": _aware(e.at),
                "opinion": e.opinion,
                "data": dict(e.data or {}),
            }
            for e in events
        ],
        "media": media,
    }


@dataclass(frozen=True)
class Segment:
    """A span of a case in one status (for the timeline figure)."""

    status: str
    stage: str
    start: datetime
    end: datetime
    deadline: datetime | None
    overdue: bool
    open: bool


def segments(events: Sequence[dict[str, Any]], timers: dict[str, Any], now: datetime) -> list[Segment]:
    """Spans between consecutive status changes; a span whose stage timer started with it carries the
    timer's deadline (a stage run again after a rework keeps only its latest timer)."""
    spans: list[tuple[str, datetime, datetime, bool]] = []
    cur: str | None = None
    start: datetime | None = None
    for e in events:
        if e["to"] != cur:
            if cur is not None and start is not None:
                spans.append((cur, start, e["at"], False))
            cur, start = e["to"], e["at"]
    if cur is not None and start is not None and cur not in (Status.CLOSED.value, Status.VOIDED.value):
        spans.append((cur, start, max(now, start), True))
    out: list[Segment] = []
    for status, a, b, running in spans:
        timer = timers.get(TIMER_OF_STATUS.get(status, ""))
        deadline = None
        if timer is not None and (
            status == "suspended" or abs((_utc(timer.started_at) - a).total_seconds()) < 1
        ):
            deadline = _aware(timer.deadline)
        stage = DISPLAY_STAGE[Status(status)].value if status in TIMER_OF_STATUS else status
        out.append(Segment(status, stage, a, b, deadline, bool(deadline and b > deadline), running))
    return out


def today_start(tz: Any, now: datetime | None = None) -> datetime:
    """Local midnight of today in ``tz`` as an aware UTC instant."""
    local = (now or datetime.now(UTC)).astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


WEEK = timedelta(days=7)


@dataclass(frozen=True)
class OpenOrder:
    """An unanswered 督办单 of an open case."""

    case_id: str
    stage: str | None
    class_code: str
    kind: str
    street: str | None
    order: UrgeOrder


def open_orders(engine: Engine, department: str | None = None) -> list[OpenOrder]:
    """Every unanswered 督办单 of the open cases (of one department when given), nearest deadline first.

    Only cases ever urged are read (``cases.urges`` > 0), so the page costs what the urged cases do.
    """
    q = select(Case.id, Case.stage, Case.class_code, Case.kind, Case.street_code, Case.state).where(
        Case.open, Case.urges > 0
    )
    out: list[OpenOrder] = []
    with engine.connect() as conn:
        for cid, stage, cls, kind, street, state in conn.execute(q):
            for raw in (state or {}).get("orders", ()):
                o = order_from_json(raw)
                if o.is_open and (department is None or o.target == department):
                    out.append(OpenOrder(str(cid), stage, str(cls), str(kind), street, o))
    out.sort(key=lambda x: (x.order.deadline, x.case_id))
    return out
