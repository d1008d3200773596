"""Pure rendering of live-state views into ``/live`` messages: rooms, columnar arrays, 5 decimals.

A message is idempotent state, never a diff to accumulate: a tick carries the *current* values of
what changed (supervisors that moved or changed status, cases that changed, grids whose counters
changed, KPIs and stage counts when any changed) and the ids of cases that left the open list.
A client that applies ticks in ``seq`` order, or that starts over from a ``snapshot``, holds the
same state. Coordinates are rounded to 5 decimals (about 1 m).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feeds.live import Alert, GridCount, LiveCase, LiveSupervisor, View

ROOM_RE = re.compile(r"^(wall|street:\d{9}|grid:\d{15}|case:[A-Za-z0-9_-]{1,32}|supervisor:[\w.-]{1,64})$")


SUP_COLUMNS = ("id", "lon", "lat", "status", "grid", "at")
# what a wall draws of a supervisor: at full ingest the moved supervisors are most of a wall's bytes
# (python -m bench wall), and grid and instant are a third of each row; a street, grid or supervisor
# room (the desk) carries them all
WALL_SUP_COLUMNS = ("id", "lon", "lat", "status")


@dataclass(frozen=True)
class RoomFilter:
    """Which objects a room shows."""

    room: str
    sup: Callable[[LiveSupervisor], bool]
    case: Callable[[str, str | None, str | None], bool]  # id, street, grid
    grid: Callable[[str], bool]
    event: Callable[[Mapping[str, Any]], bool]
    kpi: bool
    sup_columns: tuple[str, ...] = SUP_COLUMNS


def room_filter(room: str) -> RoomFilter:
    """The filter of a room name (validated by :data:`ROOM_RE`)."""
    if not ROOM_RE.match(room):
        raise ValueError(f"unknown room {room!r}")
    if room == "wall":
        return RoomFilter(
            room, lambda s: True, lambda c, st, g: True, lambda g: True, lambda e: True, True,
            sup_columns=WALL_SUP_COLUMNS,
        )  # fmt: skip
    kind, _, code = room.partition(":")
    if kind == "street":
        return RoomFilter(
            room,
            lambda s: s.street == code,
            lambda c, st, g: st == code,
            lambda g: g.startswith(code),
            lambda e: e.get("street") == code,
            False,
        )
    if kind == "grid":
        return RoomFilter(
            room, lambda s: s.grid == code, lambda c, st, g: g == code, lambda g: g == code,
            lambda e: False, False,
        )  # fmt: skip
    if kind == "case":
        return RoomFilter(
            room, lambda s: False, lambda c, st, g: c == code, lambda g: False,
            lambda e: e.get("case") == code, False,
        )  # fmt: skip
    return RoomFilter(
        room, lambda s: s.id == code, lambda c, st, g: False, lambda g: False, lambda e: False, False
    )


def _r5(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def _ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def supervisors_columns(
    sups: Iterable[LiveSupervisor], columns: tuple[str, ...] = SUP_COLUMNS
) -> dict[str, list[Any]]:
    """Supervisors as columns: id, lon, lat, status, grid, at (epoch seconds), or the ``columns`` asked."""
    rows = list(sups)
    make: dict[str, Callable[[LiveSupervisor], Any]] = {
        "id": lambda s: s.id,
        "lon": lambda s: _r5(s.lon),
        "lat": lambda s: _r5(s.lat),
        "status": lambda s: s.status,
        "grid": lambda s: s.grid,
        "at": lambda s: _ts(s.at),
    }
    return {c: [make[c](s) for s in rows] for c in columns}


def cases_columns(cases: Iterable[LiveCase]) -> dict[str, list[Any]]:
    """Open cases as columns (deadline and reported in epoch seconds)."""
    rows = list(cases)
    return {
        "id": [c.id for c in rows],
        "stage": [c.stage for c in rows],
        "status": [c.status for c in rows],
        "kind": [c.kind for c in rows],
        "class": [c.class_code for c in rows],
        "source": [c.source for c in rows],
        "grid": [c.grid for c in rows],
        "street": [c.street for c in rows],
        "lon": [_r5(c.lon) for c in rows],
        "lat": [_r5(c.lat) for c in rows],
        "deadline": [_ts(c.deadline) for c in rows],
        "reported": [_ts(c.reported_at) for c in rows],
        "emergency": [c.emergency for c in rows],
        "dept": [c.department for c in rows],
        "urges": [c.urges for c in rows],
        "urge_due": [_ts(c.urge_due) for c in rows],
    }


def grids_columns(grids: Mapping[str, GridCount]) -> dict[str, list[Any]]:
    """Grid counters as columns; patrol in minutes (1 decimal)."""
    codes = list(grids)
    return {
        "code": codes,
        "open": [grids[g].open for g in codes],
        "overdue": [grids[g].overdue for g in codes],
        "reported": [grids[g].reported for g in codes],
        "patrol": [round(grids[g].patrol_s / 60.0, 1) for g in codes],
    }


def render(
    view: View,
    flt: RoomFilter,
    seq: int,
    *,
    full: bool,
    simulated: bool,
    held: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A ``snapshot`` (full) or ``tick`` message of one room (``held``: alerts not sent one by one)."""
    grids = {g: c for g, c in view.grids.items() if flt.grid(g)}
    msg: dict[str, Any] = {
        "room": flt.room,
        "seq": seq,
        "at": round(view.at.timestamp(), 3),
        "full": full,
        "sim": simulated,
        "sup": supervisors_columns((s for s in view.supervisors if flt.sup(s)), flt.sup_columns),
        "cases": cases_columns(c for c in view.cases if flt.case(c.id, c.street, c.grid)),
        "gone": [cid for cid, st, g in view.gone if flt.case(cid, st, g)],
        "grids": grids_columns(grids),
        "events": [e for e in view.events if flt.event(e)],
    }
    if view.stages is not None:
        if flt.room == "wall":
            msg["stages"] = view.stages
        elif flt.room.startswith("street:"):
            code = flt.room.partition(":")[2]
            msg["stages"] = view.street_stages.get(code) or dict.fromkeys(view.stages, 0)
    if flt.kpi and view.kpi is not None:
        msg["kpi"] = view.kpi
    if flt.kpi and view.hours is not None:
        msg["hours"] = view.hours
    if flt.kpi and view.ranking is not None:
        msg["ranking"] = view.ranking
    if flt.room == "wall" and view.stats is not None:
        msg["stats"] = view.stats
    if held:
        msg["alerts_held"] = dict(held)
    return msg


def wall_panels(view: View, *, simulated: bool, queue_rows: int) -> dict[str, Any]:
    """The wall's panels at page build (KPIs, stages, hours, ranking, ticker, the first queue rows).

    The page carries them so the tiles show current values before the socket, plotly.js and the
    full ``snapshot`` arrive; the snapshot then replaces them (same fields, same meaning).
    """
    due = sorted((c for c in view.cases if c.deadline is not None), key=lambda c: (c.deadline, c.id))
    return {
        "sim": simulated,
        "kpi": view.kpi,
        "stages": view.stages,
        "hours": view.hours,
        "ranking": view.ranking,
        "stats": view.stats,
        "events": list(view.events[-20:]),
        "cases": cases_columns(due[:queue_rows]),
    }


ALERTS_PER_TICK = 16  # alert messages per room and tick; more are counted in the tick (``alerts_held``)


def pick_alerts(
    alerts: Sequence[Alert], flt: RoomFilter, cap: int = ALERTS_PER_TICK
) -> tuple[list[int], dict[str, int]]:
    """The room's alerts that go out as messages this tick (emergencies first, then in order, at
    most ``cap``) and, per kind, how many more there were.

    A burst (every supervisor of a shift turning 停留 or 离线 at once: 10,000 status alerts in one
    tick) would otherwise be 10,000 messages to every screen, past each one's send queue; the
    statuses themselves are in the tick's supervisor columns.
    """
    mine = [i for i, a in enumerate(alerts) if alert_matches(a, flt)]
    ordered = sorted(mine, key=lambda i: alerts[i].kind != "emergency")  # stable: emergencies first
    held: dict[str, int] = {}
    for i in ordered[cap:]:
        held[alerts[i].kind] = held.get(alerts[i].kind, 0) + 1
    return sorted(ordered[:cap]), held


def alert_matches(alert: Alert, flt: RoomFilter) -> bool:
    """Whether a room should receive an alert."""
    if flt.room == "wall":
        return True
    if alert.case is not None and flt.case(alert.case, alert.street, alert.grid):
        return True
    return flt.room == f"supervisor:{alert.supervisor}" or (
        flt.room.startswith("street:") and alert.street is not None and flt.room.endswith(alert.street)
    )


def render_alert(alert: Alert, room: str, seq: int) -> dict[str, Any]:
    """An ``alert`` message."""
    return {
        "room": room,
        "seq": seq,
        "kind": alert.kind,
        "at": round(alert.at.timestamp(), 3),
        "case": alert.case,
        "supervisor": alert.supervisor,
        "street": alert.street,
        "grid": alert.grid,
        "lon": _r5(alert.lon),
        "lat": _r5(alert.lat),
        "text": alert.text,
    }
