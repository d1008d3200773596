"""Read models of the supervisor page and of "who was where at T" (issue 8 items 7 and 8).

"Who was where at T" is one query over every supervisor: the latest fix at or before T within the
offline window (5 min), by the ``(supervisor_id, at)`` index — a ``LATERAL`` join on PostgreSQL, a
correlated ``ORDER BY at DESC LIMIT 1`` sub-select joined by id on SQLite (which has no LATERAL):
one index probe per supervisor either way, whatever the size of the positions table.

The status at T follows :func:`domain.supervisor.status_at` with one approximation: *stationary*
means the latest fix lies within the still radius (30 m) of the supervisor's fix 20 minutes
earlier (the latest one in that instant's own offline window) — two probes instead of replaying
the fixes in between, so a walk away and back within the 20 minutes also reads as stationary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection

from domain.evaluation import SHANGHAI
from domain.supervisor import SupervisorRules, SupervisorStatus, distance_m
from store.db import UTCDateTime
from store.models import Case, Grid, Person, Position, Task

RULES = SupervisorRules()
TRACK_POINTS = 4000  # a longer day is thinned for drawing (every k-th fix, the last one kept)

_PROBE_PG = """
SELECT p.id, p.name, p.area_code, x.at, x.lon, x.lat, x.grid_code, g.area_code AS grid_area,
       y.lon AS still_lon, y.lat AS still_lat
FROM people p
LEFT JOIN LATERAL (
    SELECT at, lon, lat, grid_code FROM positions
    WHERE supervisor_id = p.id AND at <= :t AND at > :t_from ORDER BY at DESC LIMIT 1
) x ON true
LEFT JOIN LATERAL (
    SELECT lon, lat FROM positions
    WHERE supervisor_id = p.id AND at <= :s AND at > :s_from ORDER BY at DESC LIMIT 1
) y ON x.at IS NOT NULL
LEFT JOIN grids g ON g.code = x.grid_code
WHERE p.role = 'supervisor' AND p.active
ORDER BY p.id
"""
_PROBE_SQLITE = """
SELECT p.id, p.name, p.area_code, x.at, x.lon, x.lat, x.grid_code, g.area_code AS grid_area,
       y.lon AS still_lon, y.lat AS still_lat
FROM people p
LEFT JOIN positions x ON x.id = (
    SELECT id FROM positions
    WHERE supervisor_id = p.id AND at <= :t AND at > :t_from ORDER BY at DESC LIMIT 1
)
LEFT JOIN positions y ON x.id IS NOT NULL AND y.id = (
    SELECT id FROM positions
    WHERE supervisor_id = p.id AND at <= :s AND at > :s_from ORDER BY at DESC LIMIT 1
)
LEFT JOIN grids g ON g.code = x.grid_code
WHERE p.role = 'supervisor' AND p.active
ORDER BY p.id
"""


@dataclass(frozen=True)
class WhereRow:
    """One supervisor at an instant: the fix in force (None when offline) and the status."""

    id: str
    name: str
    area: str | None
    status: str
    at: datetime | None
    lon: float | None
    lat: float | None
    grid: str | None


def status_of(
    area: str | None, grid: str | None, grid_area: str | None, found: bool, still: bool
) -> SupervisorStatus:
    """The status rules of :func:`domain.supervisor.status_at` on the probed facts."""
    if not found:
        return SupervisorStatus.OFFLINE
    if grid is None or (area is not None and grid_area != area):
        return SupervisorStatus.OUT_OF_AREA
    if still:
        return SupervisorStatus.STATIONARY
    return SupervisorStatus.ON_DUTY


def where_at(conn: Connection, t: datetime, rules: SupervisorRules = RULES) -> list[WhereRow]:
    """Every active supervisor at instant ``t`` (one query; see the module docstring)."""
    sql = _PROBE_PG if conn.dialect.name == "postgresql" else _PROBE_SQLITE
    s = t - rules.stationary_after
    stmt = (
        text(sql)
        .bindparams(*(bindparam(n, type_=UTCDateTime()) for n in ("t", "t_from", "s", "s_from")))
        .columns(at=UTCDateTime())
    )
    params = {"t": t, "t_from": t - rules.offline_after, "s": s, "s_from": s - rules.offline_after}
    out: list[WhereRow] = []
    for r in conn.execute(stmt, params).mappings():
        found = r["at"] is not None
        still = (
            found
            and r["still_lon"] is not None
            and distance_m(r["still_lon"], r["still_lat"], r["lon"], r["lat"]) <= rules.still_radius_m
        )
        status = status_of(r["area_code"], r["grid_code"], r["grid_area"], found, bool(still))
        out.append(
            WhereRow(
                id=r["id"], name=r["name"], area=r["area_code"], status=status.value,
                at=r["at"] if found else None,
                lon=float(r["lon"]) if found else None, lat=float(r["lat"]) if found else None,
                grid=r["grid_code"] if found else None,
            )
        )  # fmt: skip
    return out


def parse_instant(value: str | None, now: datetime) -> datetime:
    """An instant from ``YYYY-MM-DDTHH:MM[:SS]`` (local Shanghai time unless an offset is given);
    ``now`` (to the minute) when empty; ValueError when unreadable."""
    if not value:
        return now.replace(second=0, microsecond=0)
    at = datetime.fromisoformat(value.replace(" ", "T"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=SHANGHAI)
    return at.astimezone(UTC)


# -- the supervisor page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SupervisorInfo:
    """Who a supervisor is."""

    id: str
    name: str
    area: str | None
    phone: str | None


def supervisor(conn: Connection, person_id: str) -> SupervisorInfo | None:
    """A supervisor by id (None when there is no such supervisor)."""
    r = conn.execute(
        select(Person.id, Person.name, Person.area_code, Person.phone).where(
            Person.id == person_id, Person.role == "supervisor"
        )
    ).first()
    return None if r is None else SupervisorInfo(r[0], r[1], r[2], r[3])


def day_start(now: datetime) -> datetime:
    """Local (Shanghai) midnight of ``now``'s day, in UTC."""
    return datetime.combine(now.astimezone(SHANGHAI).date(), time(0), SHANGHAI).astimezone(UTC)


@dataclass(frozen=True)
class Track:
    """A day's fixes: epoch seconds, lon, lat, grid (in time order), and how many were stored."""

    t: list[float]
    lon: list[float]
    lat: list[float]
    grid: list[str | None]
    stored: int


def track(conn: Connection, person_id: str, start: datetime, end: datetime) -> Track:
    """The fixes of a supervisor in [start, end], in time order (every one; see :func:`thin`)."""
    rows = conn.execute(
        select(Position.at, Position.lon, Position.lat, Position.grid_code)
        .where(Position.supervisor_id == person_id, Position.at >= start, Position.at <= end)
        .order_by(Position.at)
    ).all()
    return Track(
        [r[0].timestamp() for r in rows], [float(r[1]) for r in rows], [float(r[2]) for r in rows],
        [r[3] for r in rows], len(rows),
    )  # fmt: skip


def thin(tr: Track, limit: int = TRACK_POINTS) -> Track:
    """At most ``limit`` fixes for drawing: every k-th one plus the last."""
    n = len(tr.t)
    if n <= limit:
        return tr
    step = -(-n // limit)
    keep = list(range(0, n, step))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return Track(
        [tr.t[i] for i in keep], [tr.lon[i] for i in keep], [tr.lat[i] for i in keep],
        [tr.grid[i] for i in keep], tr.stored,
    )  # fmt: skip


def patrol_minutes(tr: Track, rules: SupervisorRules = RULES) -> dict[str, float]:
    """Minutes per grid as the live state credits them: each gap ≤ ``patrol_gap`` to the earlier grid."""
    out: dict[str, float] = {}
    gap_max = rules.patrol_gap.total_seconds()
    for i in range(1, len(tr.t)):
        gap, grid = tr.t[i] - tr.t[i - 1], tr.grid[i - 1]
        if grid is not None and 0 < gap <= gap_max:
            out[grid] = out.get(grid, 0.0) + gap / 60.0
    return out


def track_km(tr: Track) -> float:
    """Length of a track in kilometres."""
    return (
        sum(distance_m(tr.lon[i - 1], tr.lat[i - 1], tr.lon[i], tr.lat[i]) for i in range(1, len(tr.t)))
        / 1000.0
    )


def area_grids(conn: Connection, area: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The unit grids of a responsibility area with their GeoJSON geometry."""
    if not area:
        return []
    q = select(Grid.code, Grid.geometry).where(Grid.area_code == area, Grid.active).order_by(Grid.code)
    return [(r[0], r[1]) for r in conn.execute(q)]


@dataclass(frozen=True)
class DayItem:
    """A report or a task of the day."""

    id: str
    at: datetime
    what: str  # case class / task kind
    state: str  # case status / open | done


def reports_today(conn: Connection, person_id: str, start: datetime) -> list[DayItem]:
    """Cases the supervisor reported since ``start`` (newest first)."""
    q = (
        select(Case.id, Case.reported_at, Case.class_code, Case.status)
        .where(Case.reporter == person_id, Case.reported_at >= start)
        .order_by(Case.reported_at.desc())
        .limit(200)
    )
    return [DayItem(r[0], r[1], r[2], r[3]) for r in conn.execute(q)]


def tasks_today(conn: Connection, person_id: str, start: datetime) -> list[DayItem]:
    """核实/核查 tasks given to the supervisor since ``start``, or still open (newest first)."""
    q = (
        select(Task.case_id, Task.created_at, Task.kind, Task.done_at, Task.result)
        .where(Task.assignee == person_id, (Task.created_at >= start) | Task.done_at.is_(None))
        .order_by(Task.created_at.desc())
        .limit(200)
    )
    return [DayItem(r[0], r[1], r[2], "open" if r[3] is None else "done") for r in conn.execute(q)]
