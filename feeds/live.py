"""Live state: what every screen shows now, updated only after a commit (publish after persist).

Two small interfaces: :class:`LiveWriter` (what the pipeline's publisher and the ranking chores
write after a commit) and :class:`LiveReader` (what the pages, the desk, the HTTP feeds and the tick
producer read); :class:`LiveState` is both, the live state the composition root holds. Code names the
interface it uses, not an implementation. Two implementations: :class:`MemoryLiveState`, in process
(embedded mode), and ``feeds.redis_live.RedisLiveState`` (scale-out), which keeps a
:class:`MemoryLiveState` as its mirror and does not inherit from it. The memory state holds:

- the latest fix and status of every supervisor (statuses from :mod:`domain.supervisor`);
- every open case with its display stage, place and running deadline (time-to-breach is derived
  from the deadline by the reader);
- per-grid counters: open, overdue, reported today, patrol minutes today — "today" is the city's
  calendar day (Asia/Shanghai by default);
- today's KPI counters;
- the latest lifecycle events for the ticker.

Changes are collected as dirty sets and drained once per tick by :meth:`tick`, which also
re-derives time-dependent facts (supervisor statuses, overdue cases) and raises alerts. It is
rebuilt from the database on start by :func:`rebuild` (the record is the database; this is a view).
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.catalogue import Catalogue
from domain.lifecycle import (
    DISPLAY_STAGE,
    REWORK_ACTIONS,
    Action,
    ArchiveType,
    CaseEvent,
    CaseState,
    Role,
    Stage,
    Status,
    state_from_json,
)
from domain.supervisor import (
    Fix,
    SupervisorRules,
    SupervisorState,
    SupervisorStatus,
    advance,
    status_at,
)
from store.db import session_factory
from store.models import Case, CaseEventRow, Grid, Person, Position

STAGES: tuple[str, ...] = tuple(s.value for s in Stage)
EVENT_LOG = 30  # ticker lines kept


@dataclass(frozen=True)
class Place:
    """Where a case is: grid, street, point (WGS-84)."""

    grid: str | None
    street: str | None
    lon: float | None
    lat: float | None


@dataclass(frozen=True)
class LiveCase:
    """An open case as the screens show it."""

    id: str
    kind: str
    class_code: str
    stage: str
    status: str
    source: str
    emergency: bool
    department: str | None
    grid: str | None
    street: str | None
    lon: float | None
    lat: float | None
    reported_at: datetime
    updated_at: datetime
    deadline: datetime | None  # of the running stage timer
    urges: int = 0
    request: str | None = None  # a department's pending request (request_extension …) awaiting the dispatcher
    subcentre: str | None = None  # the 街道分中心 it went to (二级派遣): it decides its units' requests
    urge_due: datetime | None = None  # the earliest reply deadline of its open 督办单 (none open: None)
    duplicate_of: str | None = None  # the earlier open report it may repeat, until 合并/不合并 (issue 21)


@dataclass(frozen=True)
class Alert:
    """Something the wall must show at once."""

    kind: str  # emergency | overdue | offline | out_of_area | stationary
    at: datetime
    case: str | None = None
    supervisor: str | None = None
    street: str | None = None
    grid: str | None = None
    lon: float | None = None
    lat: float | None = None
    text: str = ""


@dataclass(frozen=True)
class LiveSupervisor:
    """A supervisor as the screens show it."""

    id: str
    area: str | None
    street: str | None
    status: str
    at: datetime | None
    lon: float | None
    lat: float | None
    grid: str | None


@dataclass
class GridCount:
    """Per-grid live counters."""

    open: int = 0
    overdue: int = 0
    reported: int = 0  # today
    patrol_s: float = 0.0  # today
    # the latest patrol fix inside the grid since the state was built: a shortcut for the desk, kept in
    # memory only (not in Redis, not in ticks), so not part of a view's equality
    last_at: datetime | None = field(default=None, compare=False)


@dataclass
class Kpi:
    """Today's counters (the city's calendar day)."""

    reported: int = 0
    filed: int = 0
    dispatched: int = 0
    closed: int = 0
    closed_on_time: int = 0  # archived normal or special (按期结案)
    close_seconds: float = 0.0
    handled: int = 0  # 处置数: feedbacks today
    reworked: int = 0  # 返工数: failed 核查 today
    reported_by_hour: list[int] = field(default_factory=lambda: [0] * 24)  # local hours
    closed_by_hour: list[int] = field(default_factory=lambda: [0] * 24)

    def as_dict(
        self, handling: int, on_duty: int, overdue_open: int, overdue_handling: int
    ) -> dict[str, Any]:
        """The KPI tiles' values. 今日结案率 and 今日按期结案率 are CJ/T 292's (docs/indicators.md):
        closed (on time) today / 应结案 today, 应结案 = 处置数 − 返工数 + 超时未处置数 (cases handling
        past their deadline now: ``overdue_handling``)."""
        to_close = max(0, self.handled - self.reworked) + overdue_handling
        return {
            "reported": self.reported,
            "filed": self.filed,
            "dispatched": self.dispatched,
            "handling": handling,
            "closed": self.closed,
            "close_rate": round(self.closed / to_close, 4) if to_close else None,
            "on_time_rate": round(self.closed_on_time / to_close, 4) if to_close else None,
            "on_duty": on_duty,
            "overdue_open": overdue_open,
            "avg_close_h": round(self.close_seconds / self.closed / 3600.0, 2) if self.closed else None,
        }


@dataclass(frozen=True)
class View:
    """What changed since the last tick (or, for a snapshot, everything)."""

    at: datetime
    supervisors: tuple[LiveSupervisor, ...]
    cases: tuple[LiveCase, ...]
    gone: tuple[tuple[str, str | None, str | None], ...]  # (case id, street, grid) no longer open
    grids: Mapping[str, GridCount]
    kpi: dict[str, Any] | None
    stages: dict[str, int] | None
    street_stages: dict[str, dict[str, int]]
    events: tuple[dict[str, Any], ...]
    alerts: tuple[Alert, ...] = ()
    hours: dict[str, list[int]] | None = None  # today's reported/closed per local hour
    ranking: list[dict[str, Any]] | None = None  # streets by CJ/T 292 score, month to date
    stats: dict[str, Any] | None = None  # feeds.wallstats: departments, report mix, 高发问题


class LiveWriter(Protocol):
    """What the pipeline, its publisher and the ranking chores write into the live state (after commit)."""

    def apply_fixes(self, fixes: Sequence[Fix]) -> None:
        """Record accepted fixes (out-of-order ones never move "latest")."""

    def apply_case(self, state: CaseState, events: Sequence[CaseEvent], place: Place | None) -> None:
        """Record a committed case change."""

    def touch_case(self, case_id: str) -> None:
        """Send an open case again with the next tick (its task was acknowledged: case pages refresh)."""

    def set_ranking(self, ranking: list[dict[str, Any]]) -> None:
        """Replace the street ranking shown on the wall."""

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Replace the wall's statistics (:mod:`feeds.wallstats`)."""


class LiveReader(Protocol):
    """What the pages, the desk, the HTTP feeds and the tick producer read from the live state."""

    @property
    def tz(self) -> ZoneInfo:
        """The city's time zone (its calendar day is "today")."""

    @property
    def catalogue(self) -> Catalogue:
        """The case catalogue (class names)."""

    @property
    def rules(self) -> SupervisorRules:
        """The supervisor rules statuses are derived with."""

    @property
    def area_of_grid(self) -> Mapping[str, str | None]:
        """The responsibility area of every active grid."""

    def latest(self, supervisor: str) -> SupervisorState | None:
        """The supervisor's latest state (None if unknown)."""

    def supervisor_views(self) -> tuple[LiveSupervisor, ...]:
        """Every supervisor as the screens show them, without a snapshot."""

    def open_cases(self) -> tuple[LiveCase, ...]:
        """Every open case, without a snapshot."""

    def open_case(self, case_id: str) -> LiveCase | None:
        """An open case (None when closed, voided or unknown)."""

    def grid_count(self, code: str) -> GridCount | None:
        """A copy of one grid's live counters (None for an unknown grid)."""

    def grid_counts(self) -> dict[str, GridCount]:
        """A copy of every grid's live counters."""

    def overdue_ids(self) -> frozenset[str]:
        """Open cases past their running deadline (as of the last tick)."""

    def tick(self, now: datetime) -> View:
        """Drain what changed since the last tick, re-deriving time-dependent facts (the tick producer)."""

    def snapshot(self, now: datetime) -> View:
        """Everything, without draining."""


class LiveState(LiveReader, LiveWriter, Protocol):
    """The whole live state, as the composition root holds it: memory (embedded) or Redis (scale-out)."""


PATROL_EVERY = timedelta(seconds=30)  # patrol-only grid changes reach ticks at most this often


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of a calendar day in ``tz`` and of the next one, in UTC (fixes are UTC: comparing
    instants of one zone is cheap, across zones it asks the zone for its offset every time)."""
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)


def _deadline(state: CaseState) -> datetime | None:
    running = [t for t in state.timers.values() if t.ended_at is None and t.paused_since is None]
    return min((t.deadline for t in running), default=None)


def urge_due(state: CaseState) -> datetime | None:
    """The earliest reply deadline of the case's open 督办单 (None when every order is replied)."""
    return min((o.deadline for o in state.orders if o.is_open), default=None)


def _class_name(catalogue: Catalogue, state: CaseState) -> str:
    """The name of a case's minor class (its code when the catalogue does not know it)."""
    try:
        return catalogue.minor(state.kind, state.class_code).name
    except (KeyError, ValueError):
        return state.class_code


def _event_line(catalogue: Catalogue, state: CaseState, ev: CaseEvent, place: Place) -> dict[str, Any]:
    """A ticker line (the memory and the Redis state write the same)."""
    return {
        "at": round(ev.at.timestamp(), 3),
        "case": ev.case_id,
        "action": ev.action.value,
        "actor": ev.actor,
        "stage": stage.value if (stage := DISPLAY_STAGE.get(ev.to_status)) else None,  # as of the event
        "class": _class_name(catalogue, state),
        "street": place.street,
    }


class MemoryLiveState:
    """In-process live state (embedded mode); every method is thread-safe."""

    def __init__(
        self,
        *,
        tz: ZoneInfo,
        catalogue: Catalogue,
        areas: Mapping[str, str | None],
        area_of_grid: Mapping[str, str | None],
        rules: SupervisorRules | None = None,
        now: datetime | None = None,
        patrol_every: timedelta = PATROL_EVERY,
    ) -> None:
        self.tz = tz
        self.patrol_every = patrol_every
        self.catalogue = catalogue
        self.rules = rules or SupervisorRules()
        self.area_of_grid: dict[str, str | None] = dict(area_of_grid)
        self._lock = threading.RLock()
        self._sups: dict[str, SupervisorState] = {
            sid: SupervisorState(id=sid, area=area) for sid, area in areas.items()
        }
        self._status: dict[str, SupervisorStatus] = {sid: SupervisorStatus.OFFLINE for sid in self._sups}
        self._cases: dict[str, LiveCase] = {}
        self._overdue: set[str] = set()
        # (deadline, case) of open cases, earliest first: a tick visits only the ones that fell due
        # (stale entries, of cases closed or given a new deadline since, are skipped when they come up)
        self._due: list[tuple[datetime, str]] = []
        self._due_built = False  # False: rebuild _due from _cases at the next tick (after a bulk load)
        self._grids: dict[str, GridCount] = {g: GridCount() for g in self.area_of_grid}
        self._day: date = (now or datetime.now(UTC)).astimezone(tz).date()
        self._day_utc = _day_bounds(self._day, tz)
        self._kpi = Kpi()
        self._events: deque[dict[str, Any]] = deque(maxlen=EVENT_LOG)
        self._dirty_sups: set[str] = set()
        self._dirty_cases: set[str] = set()
        self._gone: dict[str, tuple[str | None, str | None]] = {}
        self._dirty_grids: set[str] = set()
        self._patrol_grids: set[str] = set()  # grids whose only change is patrol time (sent less often)
        self._patrol_sent: datetime | None = None
        self._kpi_dirty = True
        self._new_events: list[dict[str, Any]] = []
        self._alerts: list[Alert] = []
        self._ranking: list[dict[str, Any]] = []
        self._ranking_dirty = False
        self._stats: dict[str, Any] = {}
        self._stats_dirty = False

    # -- writes (called after commit) -----------------------------------------------------------

    def day_start(self, now: datetime) -> datetime:
        """Start of the city's calendar day holding ``now``, in UTC."""
        local = now.astimezone(self.tz).date()
        return datetime.combine(local, time(0), self.tz).astimezone(UTC)

    def apply_fixes(self, fixes: Sequence[Fix]) -> None:
        """Record accepted fixes in time order; credit patrol time of today to grids."""
        with self._lock:
            for fix in sorted(fixes, key=lambda f: f.at):
                st = self._sups.get(fix.supervisor)
                if st is None:
                    st = self._sups[fix.supervisor] = SupervisorState(id=fix.supervisor, area=None)
                    self._status[fix.supervisor] = SupervisorStatus.OFFLINE
                adv = advance(st, fix, self.rules)
                if not adv.moved:
                    continue
                self._sups[fix.supervisor] = adv.state
                self._dirty_sups.add(fix.supervisor)
                if adv.patrol_grid is not None and self._day_utc[0] <= fix.at < self._day_utc[1]:
                    gc = self._grids.setdefault(adv.patrol_grid, GridCount())
                    gc.patrol_s += adv.patrol_seconds
                    if gc.last_at is None or fix.at > gc.last_at:
                        gc.last_at = fix.at
                    self._patrol_grids.add(adv.patrol_grid)

    def apply_case(self, state: CaseState, events: Sequence[CaseEvent], place: Place | None) -> None:
        """Record a committed case change: open-case list, grid counters, KPIs, ticker."""
        with self._lock:
            old = self._cases.get(state.id)
            if place is None and old is not None:
                place = Place(old.grid, old.street, old.lon, old.lat)
            place = place or Place(None, None, None, None)
            for ev in events:
                self._count_event(state, ev, place)
            if state.is_open and state.stage is not None:
                new = LiveCase(
                    id=state.id,
                    kind=state.kind.value,
                    class_code=state.class_code,
                    stage=state.stage.value,
                    status=state.status.value,
                    source=state.source.value,
                    emergency=state.emergency,
                    department=state.department,
                    grid=place.grid,
                    street=place.street,
                    lon=place.lon,
                    lat=place.lat,
                    reported_at=state.reported_at,
                    updated_at=state.updated_at,
                    deadline=_deadline(state),
                    urges=state.urges,
                    request=state.request.action.value if state.request is not None else None,
                    subcentre=state.subcentre,
                    urge_due=urge_due(state),
                    duplicate_of=state.duplicate_of,
                )
                self._cases[state.id] = new
                self._dirty_cases.add(state.id)
                self._gone.pop(state.id, None)
                if old is None and place.grid is not None:
                    self._grid(place.grid).open += 1
                elif old is not None and old.grid != place.grid:  # 定位 (LOCATE): it moves to its grid
                    self._move_grid(state.id, old.grid, place.grid)
                if old is None and state.emergency and any(e.action is Action.REPORT for e in events):
                    self._alerts.append(
                        Alert("emergency", state.updated_at, case=state.id, street=place.street,
                              grid=place.grid, lon=place.lon, lat=place.lat,
                              text=_class_name(self.catalogue, state))
                    )  # fmt: skip
            elif old is not None:
                del self._cases[state.id]
                self._dirty_cases.discard(state.id)
                self._gone[state.id] = (old.street, old.grid)
                if old.grid is not None:
                    self._grid(old.grid).open -= 1
                if state.id in self._overdue:
                    self._overdue.discard(state.id)
                    if old.grid is not None:
                        self._grid(old.grid).overdue -= 1
            self._kpi_dirty = True

    def _move_grid(self, case_id: str, old: str | None, new: str | None) -> None:
        """An open case changed grid: its open (and overdue) count goes with it (lock held)."""
        for code, by in ((old, -1), (new, 1)):
            if code is not None:
                gc = self._grid(code)
                gc.open += by
                if case_id in self._overdue:
                    gc.overdue += by

    def touch_case(self, case_id: str) -> None:
        """Send an open case again with the next tick (its task was acknowledged: case pages refresh)."""
        with self._lock:
            if case_id in self._cases:
                self._dirty_cases.add(case_id)

    def set_ranking(self, ranking: list[dict[str, Any]]) -> None:
        """Replace the street ranking (computed elsewhere from the daily counters)."""
        with self._lock:
            if ranking != self._ranking:
                self._ranking = ranking
                self._ranking_dirty = True

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Replace the wall's statistics (computed elsewhere: :mod:`feeds.wallstats`)."""
        with self._lock:
            if stats != self._stats:
                self._stats = stats
                self._stats_dirty = True

    def _hours(self) -> dict[str, list[int]]:
        return {"reported": list(self._kpi.reported_by_hour), "closed": list(self._kpi.closed_by_hour)}

    def _grid(self, code: str) -> GridCount:
        self._dirty_grids.add(code)
        return self._grids.setdefault(code, GridCount())

    def _count_event(self, state: CaseState, ev: CaseEvent, place: Place) -> None:
        # 合并 (issue 21): a merged repeat leaves the reports of its report's hour (the wall counts problems)
        when = state.reported_at if ev.action is Action.MERGE else ev.at
        if when.astimezone(self.tz).date() != self._day:
            return
        k = self._kpi
        hour = when.astimezone(self.tz).hour
        if ev.action is Action.MERGE:
            k.reported -= 1
            k.reported_by_hour[hour] -= 1
            if place.grid is not None:
                self._grid(place.grid).reported -= 1
        elif ev.action is Action.REPORT:
            k.reported += 1
            k.reported_by_hour[hour] += 1
            if place.grid is not None:
                self._grid(place.grid).reported += 1
        elif ev.action is Action.FILE:
            k.filed += 1
        elif ev.action is Action.DISPATCH and ev.from_status is not Status.SUB_DISPATCHING:
            k.dispatched += 1  # the centre's 派遣 (a sub-centre's 二级派遣 is not another one)
        elif ev.action is Action.CLOSE and state.counts_as_closure:  # 自处置, 差错结案: not in 应结案
            k.closed += 1
            k.closed_by_hour[hour] += 1
            if state.archive is not ArchiveType.OVERTIME:
                k.closed_on_time += 1
            k.close_seconds += (ev.at - state.reported_at).total_seconds()
        elif ev.action is Action.FEEDBACK:
            k.handled += 1
        elif ev.action in REWORK_ACTIONS and ev.to_status is Status.HANDLING:  # failed 核查 or 反馈审核: 返工
            k.reworked += 1
        self._events.append(_event_line(self.catalogue, state, ev, place))
        self._new_events.append(self._events[-1])

    # -- reads ----------------------------------------------------------------------------------

    def latest(self, supervisor: str) -> SupervisorState | None:
        """The supervisor's latest state (None if unknown)."""
        with self._lock:
            return self._sups.get(supervisor)

    def supervisor_views(self) -> tuple[LiveSupervisor, ...]:
        """Every supervisor as the screens show them (status as of the last tick), without a snapshot."""
        with self._lock:
            return tuple(self._sup_view(s) for s in self._sups)

    def open_cases(self) -> tuple[LiveCase, ...]:
        """Every open case, without a snapshot."""
        with self._lock:
            return tuple(self._cases.values())

    def grid_count(self, code: str) -> GridCount | None:
        """A copy of one grid's live counters (None for an unknown grid)."""
        with self._lock:
            gc = self._grids.get(code)
            return None if gc is None else replace(gc)

    def grid_counts(self) -> dict[str, GridCount]:
        """A copy of every grid's live counters."""
        with self._lock:
            return {g: replace(c) for g, c in self._grids.items()}

    def open_case(self, case_id: str) -> LiveCase | None:
        """An open case (None when closed, voided or unknown)."""
        with self._lock:
            return self._cases.get(case_id)

    def _sup_view(self, sid: str) -> LiveSupervisor:
        st = self._sups[sid]
        street = st.area[:9] if st.area else (st.grid[:9] if st.grid else None)
        return LiveSupervisor(
            id=sid,
            area=st.area,
            street=street,
            status=self._status[sid].value,
            at=st.at,
            lon=None if st.at is None else st.lon,
            lat=None if st.at is None else st.lat,
            grid=st.grid,
        )

    def _refresh(self, now: datetime) -> None:
        """Roll the day; re-derive statuses and overdue cases; raise alerts for changes."""
        today = now.astimezone(self.tz).date()
        if today != self._day:
            self._day = today
            self._day_utc = _day_bounds(today, self.tz)
            self._kpi = Kpi()
            self._kpi_dirty = True
            for code, gc in self._grids.items():
                if gc.reported or gc.patrol_s:
                    gc.reported, gc.patrol_s = 0, 0.0
                    self._dirty_grids.add(code)
        for sid, st in self._sups.items():
            new = status_at(st, now, self.rules, self.area_of_grid)
            old = self._status[sid]
            if new is not old:
                self._status[sid] = new
                self._dirty_sups.add(sid)
                self._kpi_dirty = True
                if new is not SupervisorStatus.ON_DUTY and not (
                    new is SupervisorStatus.OFFLINE and st.at is None
                ):
                    self._alerts.append(
                        Alert(new.value, now, supervisor=sid, street=st.area[:9] if st.area else None,
                              grid=st.grid, lon=st.lon, lat=st.lat)
                    )  # fmt: skip
        self._refresh_overdue(now)

    def _refresh_overdue(self, now: datetime) -> None:
        """Mark cases past their deadline (an alert each) and unmark those given a later one.

        Only the cases changed since the last tick and the ones whose deadline fell due are visited:
        a full pass over 50,000 open cases cost 80 ms a second (python -m bench desk_pages).
        """
        if not self._due_built or len(self._due) > 4 * len(self._cases) + 1024:
            self._due = [(c.deadline, cid) for cid, c in self._cases.items() if c.deadline is not None]
            heapq.heapify(self._due)
            self._due_built = True
            check = set(self._overdue)
        else:
            for cid in self._dirty_cases:
                c = self._cases.get(cid)
                if c is not None and c.deadline is not None:
                    heapq.heappush(self._due, (c.deadline, cid))
            check = self._overdue & self._dirty_cases
        for cid in check:  # a new stage, an extension or a suspension: maybe no longer late
            c = self._cases.get(cid)
            if c is not None and not (c.deadline is not None and c.deadline < now):
                self._overdue.discard(cid)
                if c.grid is not None:
                    self._grid(c.grid).overdue -= 1
                self._kpi_dirty = True
        while self._due and self._due[0][0] < now:
            deadline, cid = heapq.heappop(self._due)
            c = self._cases.get(cid)
            if c is None or c.deadline != deadline or cid in self._overdue:
                continue
            self._overdue.add(cid)
            if c.grid is not None:
                self._grid(c.grid).overdue += 1
            self._dirty_cases.add(cid)
            self._kpi_dirty = True
            self._alerts.append(
                Alert(
                    "overdue", now, case=cid, street=c.street, grid=c.grid, lon=c.lon, lat=c.lat, text=c.stage
                )
            )

    def _kpi_now(self) -> dict[str, Any]:
        handling = sum(1 for c in self._cases.values() if c.stage == Stage.HANDLING.value)
        on_duty = sum(1 for s in self._status.values() if s is not SupervisorStatus.OFFLINE)
        overdue_handling = sum(
            1
            for cid in self._overdue
            if (c := self._cases.get(cid)) is not None and c.stage == Stage.HANDLING.value
        )
        return self._kpi.as_dict(handling, on_duty, len(self._overdue), overdue_handling)

    def _stages(self, cases: Iterable[LiveCase]) -> dict[str, int]:
        out = dict.fromkeys(STAGES, 0)
        for c in cases:
            out[c.stage] += 1
        return out

    def _street_stages(self) -> dict[str, dict[str, int]]:
        per: dict[str, dict[str, int]] = {}
        for c in self._cases.values():
            if c.street is not None:
                per.setdefault(c.street, dict.fromkeys(STAGES, 0))[c.stage] += 1
        return per

    def _grids_due(self, now: datetime) -> set[str]:
        """Grids to send in this tick: case counters at once, patrol time every ``patrol_every``.

        Every fix adds patrol time to a grid, so at full ingest nearly every patrolled grid would be in
        every tick (python -m bench wall: most of a wall's bytes); a grid sent for another reason
        carries its current patrol time anyway.
        """
        due = set(self._dirty_grids)
        if self._patrol_sent is None or now - self._patrol_sent >= self.patrol_every:
            due |= self._patrol_grids
            self._patrol_grids.clear()
            self._patrol_sent = now
        else:
            self._patrol_grids -= due
        return due

    def tick(self, now: datetime) -> View:
        """Drain what changed since the last tick (statuses and overdue re-derived at ``now``)."""
        with self._lock:
            self._refresh(now)
            kpi_dirty = self._kpi_dirty
            view = View(
                at=now,
                supervisors=tuple(self._sup_view(s) for s in sorted(self._dirty_sups)),
                cases=tuple(self._cases[c] for c in sorted(self._dirty_cases) if c in self._cases),
                gone=tuple((cid, st, g) for cid, (st, g) in sorted(self._gone.items())),
                grids={g: replace(self._grids[g]) for g in sorted(self._grids_due(now))},
                kpi=self._kpi_now() if kpi_dirty else None,
                stages=self._stages(self._cases.values()) if kpi_dirty else None,
                street_stages=self._street_stages() if kpi_dirty else {},
                events=tuple(self._new_events),
                alerts=tuple(self._alerts),
                hours=self._hours() if kpi_dirty else None,
                ranking=list(self._ranking) if self._ranking_dirty else None,
                stats=self._stats if self._stats_dirty else None,
            )
            self._ranking_dirty = self._stats_dirty = False
            self._dirty_sups.clear()
            self._dirty_cases.clear()
            self._gone.clear()
            self._dirty_grids.clear()
            self._new_events.clear()
            self._alerts.clear()
            self._kpi_dirty = False
            return view

    def snapshot(self, now: datetime) -> View:
        """Everything now (statuses as of the last tick); nothing is drained."""
        with self._lock:
            return View(
                at=now,
                supervisors=tuple(self._sup_view(s) for s in sorted(self._sups)),
                cases=tuple(self._cases[c] for c in sorted(self._cases)),
                gone=(),
                grids={g: replace(gc) for g, gc in sorted(self._grids.items())},
                kpi=self._kpi_now(),
                stages=self._stages(self._cases.values()),
                street_stages=self._street_stages(),
                events=tuple(self._events),
                hours=self._hours(),
                ranking=list(self._ranking),
                stats=self._stats,
            )

    def overdue_ids(self) -> frozenset[str]:
        """Open cases past their running deadline (as of the last tick)."""
        with self._lock:
            return frozenset(self._overdue)


# -- rebuild from the database ---------------------------------------------------------------------


def rebuild(engine: Engine, live: MemoryLiveState, now: datetime) -> MemoryLiveState:
    """Fill an empty memory state from the record: people, open cases, today's events and fixes.

    The Redis state is filled from a memory state rebuilt here (``feeds.redis_live.ensure_built``).
    """
    start = live.day_start(now)
    with session_factory(engine)() as s:
        for pid, area in s.execute(select(Person.id, Person.area_code).where(Person.role == "supervisor")):
            if pid not in live._sups:
                live._sups[pid] = SupervisorState(id=pid, area=area)
                live._status[pid] = SupervisorStatus.OFFLINE
            else:
                live._sups[pid] = replace(live._sups[pid], area=area)
        cols = (Case.state, Case.grid_code, Case.street_code, Case.lon, Case.lat)
        places: dict[str, Place] = {}
        for raw, grid, street, lon, lat in s.execute(select(*cols).where(Case.open)):
            st = state_from_json(raw)
            places[st.id] = Place(grid, street, lon, lat)
            live.apply_case(st, (), places[st.id])
        # today's events, in order, for the KPIs, the per-grid reports and the ticker
        rows = s.execute(
            select(CaseEventRow, Case.state, Case.grid_code, Case.street_code, Case.lon, Case.lat)
            .join(Case, Case.id == CaseEventRow.case_id)
            .where(CaseEventRow.at >= start)
            .order_by(CaseEventRow.at, CaseEventRow.id)
        ).all()
        with live._lock:
            for ev_row, raw, grid, street, lon, lat in rows:
                st = state_from_json(raw)
                ev = CaseEvent(
                    case_id=ev_row.case_id,
                    action=Action(ev_row.action),
                    actor=ev_row.actor,
                    role=Role(ev_row.role),
                    from_status=None,
                    to_status=Status(ev_row.to_status),
                    at=ev_row.at,
                )
                live._count_event(st, ev, Place(grid, street, lon, lat))
        # today's fixes in the order they were applied (commit by commit, each commit's in time order)
        # rebuild latest positions, stops and patrol minutes: a fix that arrived out of order was
        # stored but never moved the latest or credited patrol time, and must not on a rebuild either
        last: dict[str, datetime] = {}
        q = (
            select(
                Position.supervisor_id, Position.at, Position.lon, Position.lat, Position.grid_code,
                Position.received_at,
            )
            .where(Position.at >= start - live.rules.stationary_after)
            .order_by(Position.received_at, Position.at, Position.id)
            .execution_options(yield_per=20_000)
        )  # fmt: skip
        batch: list[Fix] = []
        received: datetime | None = None
        for sid, at, lon, lat, grid, rec in s.execute(q):
            if rec != received or len(batch) >= 20_000:  # apply_fixes sorts what it gets by instant
                live.apply_fixes(batch)
                batch, received = [], rec
            batch.append(Fix(sid, at, lon, lat, grid))
            last[sid] = at
        live.apply_fixes(batch)
        # latest fix of supervisors with nothing today (so "offline since" is known)
        missing = [sid for sid in live._sups if sid not in last]
        if missing:
            sub = (
                select(Position.supervisor_id, Position.at, Position.lon, Position.lat, Position.grid_code)
                .where(Position.supervisor_id.in_(missing), Position.at < start)
                .order_by(Position.supervisor_id, Position.at.desc())
            )
            seen: set[str] = set()
            older: list[Fix] = []
            for sid, at, lon, lat, grid in s.execute(sub):
                if sid not in seen:
                    seen.add(sid)
                    older.append(Fix(sid, at, lon, lat, grid))
            live.apply_fixes(older)
    live.tick(now)  # derive statuses and overdue; the first tick's changes are part of the state
    with live._lock:
        live._alerts.clear()  # what was already true at start is not news
    return live


def grid_areas(engine: Engine) -> dict[str, str | None]:
    """Responsibility area of every active grid."""
    with session_factory(engine)() as s:
        return {g: a for g, a in s.execute(select(Grid.code, Grid.area_code).where(Grid.active))}


def supervisor_areas(engine: Engine) -> dict[str, str | None]:
    """Responsibility area of every active supervisor."""
    with session_factory(engine)() as s:
        return {
            p: a
            for p, a in s.execute(
                select(Person.id, Person.area_code).where(Person.role == "supervisor", Person.active)
            )
        }
