"""Supervisor (监督员) live state as a pure function of accepted position fixes and time.

A supervisor's *latest* fix only moves forward in time: an out-of-order fix is stored by the
pipeline but never changes it (:func:`advance` returns the state unchanged). The status shown on
the wall is derived at an instant (:func:`status_at`):

- ``offline`` — no fix for longer than ``offline_after`` (default 5 min) or never seen;
- ``out_of_area`` — the latest fix lies in a grid outside the supervisor's responsibility area;
- ``stationary`` — the supervisor has not moved more than ``still_radius_m`` for longer than
  ``stationary_after`` (default 20 min) while on duty;
- ``on_duty`` — otherwise (on shift with a fix in the last 5 minutes).

Patrol time is credited per grid: the time between two consecutive in-order fixes (at most
``patrol_gap``) counts for the grid of the earlier fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class SupervisorStatus(StrEnum):
    """What the wall shows of a supervisor."""

    ON_DUTY = "on_duty"
    OFFLINE = "offline"
    OUT_OF_AREA = "out_of_area"
    STATIONARY = "stationary"


@dataclass(frozen=True)
class SupervisorRules:
    """Thresholds of the supervisor statuses."""

    offline_after: timedelta = timedelta(minutes=5)
    stationary_after: timedelta = timedelta(minutes=20)
    still_radius_m: float = 30.0
    patrol_gap: timedelta = timedelta(minutes=2)
    max_speed_kmh: float = 200.0


@dataclass(frozen=True)
class Fix:
    """One accepted position fix in WGS-84 with the grid it falls in."""

    supervisor: str
    at: datetime
    lon: float
    lat: float
    grid: str | None
    speed: float | None = None
    accuracy: float | None = None


@dataclass(frozen=True)
class SupervisorState:
    """The latest fix of a supervisor and where it stood still since."""

    id: str
    area: str | None  # responsibility area code; its grids are the supervisor's own
    at: datetime | None = None
    lon: float = math.nan
    lat: float = math.nan
    grid: str | None = None
    still_since: datetime | None = None  # first fix of the current stop
    still_lon: float = math.nan
    still_lat: float = math.nan


@dataclass(frozen=True)
class Advance:
    """The result of one fix: the new state and the patrol seconds it credits to a grid."""

    state: SupervisorState
    moved: bool  # the latest fix changed
    patrol_grid: str | None = None
    patrol_seconds: float = 0.0


_R = 6_371_000.0
_RAD = math.pi / 180.0


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres on a 6,371 km sphere (haversine; equirectangular below ~10 km)."""
    dlat, dlon = lat2 - lat1, lon2 - lon1
    if -0.1 < dlat < 0.1 and -0.1 < dlon < 0.1 and -80.0 < lat1 < 80.0:
        # within 0.1° the flat approximation differs from the haversine by < 0.01 % (every fix is
        # checked twice: the speed filter and the stationary radius)
        x = dlon * math.cos((lat1 + lat2) * (0.5 * _RAD))
        return _R * _RAD * math.sqrt(x * x + dlat * dlat)
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _R * math.asin(min(1.0, math.sqrt(a)))


def advance(state: SupervisorState, fix: Fix, rules: SupervisorRules) -> Advance:
    """Apply one fix; an out-of-order or equal-instant fix leaves the state as it is."""
    if state.at is not None and fix.at <= state.at:
        return Advance(state, moved=False)
    patrol_grid: str | None = None
    patrol_seconds = 0.0
    if state.at is not None:
        gap = (fix.at - state.at).total_seconds()
        if gap <= rules.patrol_gap.total_seconds() and state.grid is not None:
            patrol_grid, patrol_seconds = state.grid, gap
    still = state.still_since is not None and (
        distance_m(state.still_lon, state.still_lat, fix.lon, fix.lat) <= rules.still_radius_m
    )
    if state.at is not None and (fix.at - state.at) > rules.offline_after:
        still = False  # a stop is only counted while fixes keep coming
    new = SupervisorState(  # built directly: dataclasses.replace costs more than the rest (ingest bench)
        state.id,
        state.area,
        fix.at,
        fix.lon,
        fix.lat,
        fix.grid,
        state.still_since if still else fix.at,
        state.still_lon if still else fix.lon,
        state.still_lat if still else fix.lat,
    )
    return Advance(new, moved=True, patrol_grid=patrol_grid, patrol_seconds=patrol_seconds)


def status_at(
    state: SupervisorState, now: datetime, rules: SupervisorRules, area_of_grid: Mapping[str, str | None]
) -> SupervisorStatus:
    """The status of a supervisor at ``now``."""
    if state.at is None or now - state.at > rules.offline_after:
        return SupervisorStatus.OFFLINE
    if state.area is not None and state.grid is not None and area_of_grid.get(state.grid) != state.area:
        return SupervisorStatus.OUT_OF_AREA
    if state.grid is None:
        return SupervisorStatus.OUT_OF_AREA
    if state.still_since is not None and state.at - state.still_since >= rules.stationary_after:
        return SupervisorStatus.STATIONARY
    return SupervisorStatus.ON_DUTY
