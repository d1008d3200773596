"""Patrol generator: seeded supervisors (监督员) walking their responsibility areas, as GPS fixes.

:class:`Patrol` plays the 城管通 handsets of a district's supervisors: while on shift and online,
each one reports a :class:`Fix` (WGS-84 position, speed, accuracy) every ``interval_s`` seconds
while walking between inspection points of its 责任网格 and stopping at them. It is pure and
deterministic: nothing outside the object is read (except by :func:`areas_from_store`), and a
supervisor's fixes are a function of ``(seed, supervisor id, area, config, local date)`` only, so
``fixes_between(a, c) == fixes_between(a, b) + fixes_between(b, c)`` for any ``a < b < c``, a
supervisor's track does not change when others are added or removed, and a day evicted from the
cache is rebuilt bit for bit.

How a track is made:

- **Randomness** is counter-based: every draw is ``splitmix64(key ^ splitmix64(counter))`` with
  ``key`` a BLAKE2b hash of ``seed`` and the supervisor id (stable across processes, unlike
  ``hash()``) and, for a day's draws, mixed with the local date. Draws are addressed, not consumed
  in sequence, so all supervisors are built together with numpy without any cross-talk.
- **Inspection points** (once per supervisor): about one per hectare (6–16), sampled uniformly in
  the area (in a transverse Mercator projection on the area's whole-degree meridian) at least
  ~3.5 m inside its border. Two points are linked when the straight walk between them stays
  strictly inside the area (``shapely.contains_properly``), so non-convex areas are walked around,
  never across outside land; the walk stays in the part of a multi-part area it started in.
- **A shift** starts at a random linked point and is a random walk on that graph: walk to a
  random linked neighbour at a speed drawn from ``walk_speed`` (constant per leg), then stop for a
  time drawn from ``dwell_s``, until the shift ends. The track is piecewise linear in metres; knot
  instants are whole microseconds.
- **Rare events** (at most one of each kind per supervisor-day, each in a random shift):
  a *stray* excursion (share ``stray_share``): from the current point the supervisor walks to the
  nearest border point, 80–250 m further out (kept only if that point is ≥ 30 m from the area, so
  never more than 250 m outside), stops there for a dwell time, and walks back the same way;
  a *long stop* (``long_stop_share``): one stop lasts 20–40 min (at least 20 min plus one
  interval, so fixes show ≥ 20 min at one spot); an *offline* gap (``offline_share``): 10–30 min
  without fixes inside a shift, while the walk goes on (the next fix is at walking distance).
- **Fix instants** lie on a per-supervisor lattice: the multiples of ``interval_s`` since the Unix
  epoch plus a stable per-supervisor offset in ``[0, interval_s)``, so supervisors report spread
  over the interval and a 1 s window holds about ``n × 1 s / interval_s`` fixes.

Shifts (local time, :attr:`PatrolConfig.shifts`): by default 07:30–11:30 and 13:30–17:30, two
4-hour patrols = 8 h a day. They start half an hour ahead of the centre's work periods (08:00–12:00
and 14:00–18:00 in :class:`domain.workcalendar.WorkCalendar`), so that problems found on the first
round of the morning (early stalls, overflowing bins, overnight damage) reach the centre as it
opens, consistent with the case flow generator's hourly profile (supervisor reports start at 7,
peak 9–11, lunch dip). Lunch is 11:30–13:30. A shift whose end is not after its start runs past
midnight and belongs to the local date it starts on. ``workdays`` (e.g.
``WorkCalendar.is_working_day``) limits patrols to some dates; ``None`` patrols every day.

Fixes are the true track (no position noise), so area checks are exact; ``accuracy`` is a
plausible reported figure (5–15 m). Positions are rounded to 6 decimals (≈ 0.1 m).

Cost: the inspection-point graphs of all supervisors are built once, at the first day built
(≈ 100 contains tests per supervisor); then each local date with patrols is built once for all
supervisors (a vectorised random walk, one numpy step per leg) and kept in a small cache of recent
days. A window is answered with array look-ups: the fix instants of all supervisors (a
``searchsorted`` on the sorted lattice offsets for windows shorter than the interval), then one
``searchsorted`` into the day's concatenated knots. :meth:`Patrol.fix_arrays_between` returns the
same fixes as numpy arrays, without building :class:`Fix` objects. Not thread-safe.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from itertools import groupby
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from numpy.typing import NDArray

from domain.geo import LocalProjection, polygonal

Area: TypeAlias = shapely.Polygon | shapely.MultiPolygon

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_DAY_S = 86_400
_BAND_US = 3 * _DAY_S * _US  # knot keys: supervisor index × band + µs since local midnight (< 2 days)
_CACHE_DAYS = 2  # the current date and the one before (shifts past midnight)
_INSET_M = 5.0  # inspection points: the four points 5 m away along the axes are inside too
_NODES_PER_M2 = 1 / 10_000.0  # one inspection point per hectare (about one per unit grid)
_NODES_MIN, _NODES_MAX = 6, 16
_NODE_ROUNDS = 12  # rejection-sampling rounds (the last third without the inset)
_STRAY_OUT_M = (80.0, 250.0)  # distance walked past the border on a stray excursion
_STRAY_MIN_M = 30.0  # the turning point must be at least this far from the area
_LONG_STOP_S = (20 * 60.0, 40 * 60.0)
_OFFLINE_S = (10 * 60.0, 30 * 60.0)
_EVENT_MARGIN_S = 45 * 60.0  # events start no later than this before the end of their shift
_ACCURACY_M = (5.0, 15.0)

# Counter streams of the draws (the top byte of the counter).
_S_NODE, _S_START, _S_NBR, _S_SPEED, _S_DWELL, _S_EVENT, _S_ACC, _S_OFFSET, _S_DAY = range(1, 10)

# (supervisor index, µs, lon, lat, speed) of some fixes
_Part = tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]
]


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS fix of a supervisor's handset."""

    supervisor: str
    at: datetime  # aware, UTC
    lon: float  # WGS-84, 6 decimals
    lat: float
    speed: float  # m/s, 0 while stopped
    accuracy: float  # metres


@dataclass(frozen=True)
class FixArrays:
    """The fixes of a window as parallel numpy arrays, sorted by (instant, supervisor)."""

    supervisor: NDArray[np.object_]
    at_us: NDArray[np.int64]  # microseconds since the Unix epoch (UTC)
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    speed: NDArray[np.float64]
    accuracy: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.at_us)

    def to_fixes(self) -> list[Fix]:
        """The same fixes as :class:`Fix` objects."""
        ats = [_EPOCH + timedelta(microseconds=v) for v in self.at_us.tolist()]
        return [
            Fix(s, a, lo, la, sp, ac)
            for s, a, lo, la, sp, ac in zip(
                self.supervisor.tolist(),
                ats,
                self.lon.tolist(),
                self.lat.tolist(),
                self.speed.tolist(),
                self.accuracy.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True)
class PatrolConfig:
    """Timing and event rates of the patrols (shares are per supervisor-day)."""

    interval_s: float = 10.0  # one fix every interval while on shift and online
    walk_speed: tuple[float, float] = (0.9, 1.5)  # m/s, uniform per leg
    # local time; see the module docstring for the choice
    shifts: tuple[tuple[time, time], ...] = ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 30)))
    dwell_s: tuple[float, float] = (30.0, 300.0)  # stops at inspection points, uniform
    stray_share: float = 0.01  # one excursion outside the own area
    long_stop_share: float = 0.02  # one stop of 20–40 min
    offline_share: float = 0.02  # one gap of 10–30 min without fixes
    _offsets: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.interval_s > 0 or round(self.interval_s * _US) < 1:
            raise ValueError(f"interval_s must be positive, got {self.interval_s!r}")
        lo, hi = self.walk_speed
        if not 0 < lo <= hi:
            raise ValueError(f"walk_speed must be 0 < low <= high, got {self.walk_speed!r}")
        lo, hi = self.dwell_s
        if not 0 <= lo <= hi:
            raise ValueError(f"dwell_s must be 0 <= low <= high, got {self.dwell_s!r}")
        for name in ("stray_share", "long_stop_share", "offline_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if not self.shifts:
            raise ValueError("at least one shift is needed")
        offsets: list[tuple[int, int]] = []
        for start, end in self.shifts:
            s = start.hour * 3600 + start.minute * 60 + start.second
            e = end.hour * 3600 + end.minute * 60 + end.second
            if start.microsecond or end.microsecond or e == s:
                raise ValueError(f"bad shift {start}–{end}: whole seconds, end != start")
            if e < s:
                e += _DAY_S
            if offsets and s < offsets[-1][1]:
                raise ValueError("shifts must be in order and must not overlap")
            offsets.append((s, e))
        if offsets[-1][1] - offsets[0][0] > _DAY_S:
            raise ValueError("a day's shifts must span at most 24 hours")
        object.__setattr__(self, "_offsets", tuple(offsets))

    @property
    def shift_seconds(self) -> tuple[tuple[int, int], ...]:
        """Each shift as (start, end) seconds after local midnight (end > start, maybe > 86,400)."""
        return self._offsets


# --- counter-based random numbers -----------------------------------------------------------------


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The splitmix64 finaliser (wrapping uint64 arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _counter(stream: int, a: int, b: Any) -> NDArray[np.uint64]:
    head = np.uint64(((stream & 0xFF) << 56) | ((a & 0xFFFF) << 40))
    return np.asarray(b, dtype=np.int64).astype(np.uint64) % np.uint64(1 << 40) | head


def _bits(keys: NDArray[np.uint64], stream: int, a: int, b: Any) -> NDArray[np.uint64]:
    """64 random bits per key, addressed by (stream, a, b)."""
    c = np.atleast_1d(_counter(stream, a, b))
    return _mix(keys ^ _mix(c))


def _unit(keys: NDArray[np.uint64], stream: int, a: int, b: Any) -> NDArray[np.float64]:
    """Uniform draws in [0, 1) per key, addressed by (stream, a, b)."""
    return (_bits(keys, stream, a, b) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def _uniform(
    keys: NDArray[np.uint64], stream: int, a: int, b: Any, bounds: tuple[float, float]
) -> NDArray[np.float64]:
    lo, hi = bounds
    return lo + (hi - lo) * _unit(keys, stream, a, b)


def _supervisor_key(seed: int, supervisor: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{supervisor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _rank_in_groups(groups: NDArray[np.int64]) -> NDArray[np.int64]:
    """Position of each element within its run of equal values (``groups`` sorted)."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)


def _ranges(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For counts per group: the group of each item and the item's index within its group."""
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return owner, _rank_in_groups(owner)


# --- per-supervisor inspection-point graphs and per-day routes -------------------------------------


@dataclass
class _Graph:
    """Inspection points of all supervisors (CSR by supervisor) and their walkable links."""

    projections: list[LocalProjection]
    group: NDArray[np.int64]  # projection index of each supervisor
    metric: NDArray[np.object_]  # areas in metres (prepared)
    node_start: NDArray[np.int64]  # supervisor s owns nodes node_start[s]:node_start[s+1]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    adj_start: NDArray[np.int64]  # node i links to adj[adj_start[i]:adj_start[i+1]] (≥ 1 each)
    adj: NDArray[np.int64]
    start_start: NDArray[np.int64]  # supervisor s starts a shift at one of starts[start_start[s]:…]
    starts: NDArray[np.int64]

    @cached_property
    def boundary(self) -> NDArray[np.object_]:
        return np.asarray(shapely.boundary(self.metric), dtype=object)

    @cached_property
    def centroid(self) -> NDArray[np.float64]:
        return shapely.get_coordinates(shapely.centroid(self.metric))


@dataclass
class _Day:
    """One local date's routes of all supervisors, as knots sorted by (supervisor, time)."""

    day: date
    ref_us: int  # local midnight, µs since the epoch
    shifts: tuple[tuple[int, int], ...]  # absolute µs, half-open
    keys: NDArray[np.int64]  # supervisor × _BAND_US + µs since ref
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    gap0: NDArray[np.int64]  # offline gap per supervisor, absolute µs [gap0, gap1) (empty: 0, 0)
    gap1: NDArray[np.int64]
    strays: int
    long_stops: int

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.x.nbytes + self.y.nbytes + self.gap0.nbytes + self.gap1.nbytes


def _to_us(t: datetime, what: str) -> int:
    if not isinstance(t, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {t.isoformat()}")
    return (t - _EPOCH) // timedelta(microseconds=1)


class Patrol:
    """Seeded patrols of supervisors in their areas; see the module docstring."""

    def __init__(
        self,
        areas: Mapping[str, Area],
        tz: ZoneInfo,
        *,
        seed: int,
        config: PatrolConfig = PatrolConfig(),
        workdays: Callable[[date], bool] | None = None,
    ) -> None:
        self.tz = tz
        self.seed = seed
        self.config = config
        self.workdays = workdays
        names = sorted(areas)
        geoms = []
        for name in names:
            g = areas[name]
            if not isinstance(g, shapely.Polygon | shapely.MultiPolygon) or g.is_empty or g.area <= 0:
                raise ValueError(f"area of supervisor {name!r} must be a non-empty (Multi)Polygon")
            geoms.append(g)
        self._names: tuple[str, ...] = tuple(names)
        self._names_arr = np.asarray(names, dtype=object)
        self._index = {n: i for i, n in enumerate(names)}
        self._wgs = np.empty(len(geoms), dtype=object)
        self._wgs[:] = geoms
        self._keys = np.asarray([_supervisor_key(seed, n) for n in names], dtype=np.uint64)
        self._interval_us = max(1, round(config.interval_s * _US))
        self._offsets = (
            (_bits(self._keys, _S_OFFSET, 0, 0) % np.uint64(self._interval_us)).astype(np.int64)
            if len(names)
            else np.zeros(0, dtype=np.int64)
        )
        self._off_order = np.argsort(self._offsets, kind="stable")
        self._off_sorted = self._offsets[self._off_order]
        self._days: OrderedDict[date, _Day] = OrderedDict()
        self._shift_cache: dict[date, tuple[tuple[int, int], ...]] = {}

    # --- public API --------------------------------------------------------------------------

    @property
    def supervisors(self) -> tuple[str, ...]:
        """The supervisor ids, sorted."""
        return self._names

    def fixes_between(self, t0: datetime, t1: datetime) -> list[Fix]:
        """All fixes with ``t0 <= at < t1``, sorted by (at, supervisor)."""
        return self.fix_arrays_between(t0, t1).to_fixes()

    def fix_arrays_between(self, t0: datetime, t1: datetime) -> FixArrays:
        """The fixes of :meth:`fixes_between` as numpy arrays (cheaper for bulk consumers)."""
        u0, u1 = _to_us(t0, "t0"), _to_us(t1, "t1")
        parts: list[_Part] = []
        if u1 > u0 and len(self._names):
            for d in self._dates(u0, u1):
                for a, b in self._shifts_on(d):
                    lo, hi = max(a, u0), min(b, u1)
                    if lo < hi:
                        parts.append(self._window(self._day(d), lo, hi))
        if not parts:
            empty_f = np.zeros(0, dtype=np.float64)
            return FixArrays(
                np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), empty_f, empty_f, empty_f, empty_f
            )
        idx, t_us, lon, lat, speed = (np.concatenate(c) for c in zip(*parts, strict=True))
        order = np.lexsort((idx, t_us))
        idx, t_us = idx[order], t_us[order]
        k = (t_us - self._offsets[idx]) // self._interval_us
        accuracy = np.round(_uniform(self._keys[idx], _S_ACC, 0, k, _ACCURACY_M), 1)
        return FixArrays(
            self._names_arr[idx],
            t_us,
            lon[order],
            lat[order],
            np.round(speed[order], 2),
            accuracy,
        )

    def position_at(self, supervisor: str, t: datetime) -> tuple[float, float] | None:
        """(lon, lat) of the supervisor at ``t`` if on shift and online, else None."""
        s = self._sup(supervisor)
        u = _to_us(t, "t")
        d = self._shift_date(u)
        if d is None:
            return None
        day = self._day(d)
        if day.gap0[s] <= u < day.gap1[s]:
            return None
        idx = np.asarray([s], dtype=np.int64)
        x, y, _ = self._locate(day, idx, np.asarray([u], dtype=np.int64))
        lon, lat = self._to_wgs84(idx, x, y)
        return float(lon[0]), float(lat[0])

    def on_shift(self, supervisor: str, t: datetime) -> bool:
        """Whether ``t`` lies in one of the supervisor's shifts (offline gaps still count)."""
        self._sup(supervisor)
        return self._shift_date(_to_us(t, "t")) is not None

    # --- days and shifts ---------------------------------------------------------------------

    def _sup(self, supervisor: str) -> int:
        try:
            return self._index[supervisor]
        except KeyError:
            raise KeyError(f"unknown supervisor {supervisor!r}") from None

    def _local_date(self, u: int) -> date:
        return (_EPOCH + timedelta(microseconds=u)).astimezone(self.tz).date()

    def _dates(self, u0: int, u1: int) -> Iterable[date]:
        d = self._local_date(u0) - timedelta(days=1)  # shifts may run past midnight
        last = self._local_date(u1 - 1)
        while d <= last:
            yield d
            d += timedelta(days=1)

    def _local_us(self, d: date, seconds: int) -> int:
        dt = datetime.combine(d + timedelta(days=seconds // _DAY_S), time(0), tzinfo=self.tz)
        dt += timedelta(seconds=seconds % _DAY_S)  # wall-clock arithmetic in the zone
        return _to_us(dt, "shift")

    def _shifts_on(self, d: date) -> tuple[tuple[int, int], ...]:
        found = self._shift_cache.get(d)
        if found is None:
            if len(self._shift_cache) > 4096:
                self._shift_cache.clear()
            if self.workdays is not None and not self.workdays(d):
                found = ()
            else:
                found = tuple(
                    (self._local_us(d, s), self._local_us(d, e)) for s, e in self.config.shift_seconds
                )
            self._shift_cache[d] = found
        return found

    def _shift_date(self, u: int) -> date | None:
        """The local date whose shift holds instant ``u``, if any."""
        d = self._local_date(u)
        for day in (d - timedelta(days=1), d):
            if any(a <= u < b for a, b in self._shifts_on(day)):
                return day
        return None

    def _day(self, d: date) -> _Day:
        found = self._days.get(d)
        if found is None:
            found = self._build_day(d)
            self._days[d] = found
            while len(self._days) > _CACHE_DAYS:
                self._days.popitem(last=False)
        else:
            self._days.move_to_end(d)
        return found

    # --- fixes -------------------------------------------------------------------------------

    def _instants(self, u0: int, u1: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(supervisor index, µs) of every lattice instant in [u0, u1)."""
        step = self._interval_us
        if u1 - u0 < step:  # at most one instant per supervisor: search the sorted offsets
            r0 = u0 % step
            base = u0 - r0
            r1 = r0 + (u1 - u0)
            so, order = self._off_sorted, self._off_order
            lo = int(np.searchsorted(so, r0, "left"))
            if r1 <= step:
                hi = int(np.searchsorted(so, r1, "left"))
                return order[lo:hi], base + so[lo:hi]
            hi = int(np.searchsorted(so, r1 - step, "left"))
            return (
                np.concatenate([order[lo:], order[:hi]]),
                np.concatenate([base + so[lo:], base + step + so[:hi]]),
            )
        o = self._offsets
        k0 = -((o - u0) // step)  # ceil((u0 - o) / step)
        k1 = -((o - u1) // step)
        owner, rank = _ranges(k1 - k0)
        return owner, (k0[owner] + rank) * step + o[owner]

    def _window(self, day: _Day, u0: int, u1: int) -> _Part:
        """Fixes in [u0, u1), a window inside one shift of ``day`` (unsorted)."""
        idx, t_us = self._instants(u0, u1)
        online = ~((day.gap0[idx] <= t_us) & (t_us < day.gap1[idx]))
        idx, t_us = idx[online], t_us[online]
        x, y, speed = self._locate(day, idx, t_us)
        lon, lat = self._to_wgs84(idx, x, y)
        return idx, t_us, lon, lat, speed

    def _locate(
        self, day: _Day, idx: NDArray[np.int64], t_us: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Metric position and speed of supervisors ``idx`` at instants ``t_us`` (on shift)."""
        q = idx * _BAND_US + (t_us - day.ref_us)
        i = np.clip(np.searchsorted(day.keys, q, "right") - 1, 0, max(len(day.keys) - 2, 0))
        k0, k1 = day.keys[i], day.keys[i + 1]
        dt = k1 - k0
        pos = dt > 0
        frac = np.zeros(len(q))
        frac[pos] = np.clip((q[pos] - k0[pos]) / dt[pos], 0.0, 1.0)
        x0, y0 = day.x[i], day.y[i]
        dx, dy = day.x[i + 1] - x0, day.y[i + 1] - y0
        speed = np.zeros(len(q))
        speed[pos] = np.sqrt(dx[pos] * dx[pos] + dy[pos] * dy[pos]) / (dt[pos] / _US)
        return x0 + frac * dx, y0 + frac * dy, speed

    def _to_wgs84(
        self, idx: NDArray[np.int64], x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        g = self._graph
        lon, lat = np.empty(len(idx)), np.empty(len(idx))
        groups = g.group[idx]
        for k, proj in enumerate(g.projections):
            m = groups == k if len(g.projections) > 1 else slice(None)
            lon[m], lat[m] = proj.inverse(x[m], y[m])
        return np.round(lon, 6), np.round(lat, 6)

    # --- building ----------------------------------------------------------------------------

    @cached_property
    def _graph(self) -> _Graph:
        """Inspection points and their walkable links for every supervisor (built once)."""
        n = len(self._names)
        cent_lon = shapely.get_x(shapely.centroid(self._wgs)) if n else np.zeros(0)
        meridians, group = np.unique(np.round(cent_lon), return_inverse=True)
        projections = [LocalProjection(lon0=float(m)) for m in meridians]
        metric = np.empty(n, dtype=object)
        for k, proj in enumerate(projections):
            sel = np.flatnonzero(group == k)
            metric[sel] = proj.to_metric_many(list(self._wgs[sel]))
        shapely.prepare(metric)
        x, y, node_start = self._sample_nodes(metric)
        adj_start, adj, start_start, starts = self._link_nodes(metric, x, y, node_start)
        return _Graph(
            projections, group.astype(np.int64), metric, node_start, x, y, adj_start, adj, start_start, starts
        )

    def _sample_nodes(
        self, metric: NDArray[np.object_]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        n = len(metric)
        want = np.clip(np.rint(shapely.area(metric) * _NODES_PER_M2), _NODES_MIN, _NODES_MAX).astype(np.int64)
        bounds = shapely.bounds(metric).reshape(n, 4)
        have = np.zeros(n, dtype=np.int64)
        xs: list[NDArray[np.float64]] = []
        ys: list[NDArray[np.float64]] = []
        owners: list[NDArray[np.int64]] = []
        for rnd in range(_NODE_ROUNDS):
            need = want - have
            sups = np.flatnonzero(need > 0)
            if not len(sups):
                break
            counts = np.maximum(8 * need[sups], 32)
            owner, c = _ranges(counts)
            rows = sups[owner]
            keys = self._keys[rows]
            bx = bounds[rows]
            px = bx[:, 0] + (bx[:, 2] - bx[:, 0]) * _unit(keys, _S_NODE, rnd, 2 * c)
            py = bx[:, 1] + (bx[:, 3] - bx[:, 1]) * _unit(keys, _S_NODE, rnd, 2 * c + 1)
            ok = shapely.contains_xy(metric[rows], px, py)
            if rnd < _NODE_ROUNDS * 2 // 3:
                for ddx, ddy in ((_INSET_M, 0.0), (-_INSET_M, 0.0), (0.0, _INSET_M), (0.0, -_INSET_M)):
                    w = np.flatnonzero(ok)
                    ok[w] = shapely.contains_xy(metric[rows[w]], px[w] + ddx, py[w] + ddy)
            w = np.flatnonzero(ok)
            take = w[_rank_in_groups(rows[w]) < need[rows[w]]]
            xs.append(px[take])
            ys.append(py[take])
            owners.append(rows[take])
            have += np.bincount(rows[take], minlength=n)
        lost = np.flatnonzero(have == 0)  # slivers: fall back to a point on the surface
        if len(lost):
            pts = shapely.get_coordinates(shapely.point_on_surface(metric[lost]))
            xs.append(pts[:, 0])
            ys.append(pts[:, 1])
            owners.append(lost)
            have[lost] = 1
        owner_all = np.concatenate(owners)
        order = np.argsort(owner_all, kind="stable")
        node_start = np.r_[0, np.cumsum(have)].astype(np.int64)
        return np.concatenate(xs)[order], np.concatenate(ys)[order], node_start

    @staticmethod
    def _link_nodes(
        metric: NDArray[np.object_],
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        node_start: NDArray[np.int64],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        counts = np.diff(node_start)
        src: list[NDArray[np.int64]] = []
        dst: list[NDArray[np.int64]] = []
        for m in np.unique(counts):
            if m < 2:
                continue
            sups = np.flatnonzero(counts == m)
            iu, ju = np.triu_indices(int(m), 1)
            pi = (node_start[sups][:, None] + iu[None, :]).ravel()
            pj = (node_start[sups][:, None] + ju[None, :]).ravel()
            owner = np.repeat(sups, len(iu))
            coords = np.stack([np.column_stack([x[pi], y[pi]]), np.column_stack([x[pj], y[pj]])], axis=1)
            ok = shapely.contains_properly(metric[owner], shapely.linestrings(coords))
            src += [pi[ok], pj[ok]]
            dst += [pj[ok], pi[ok]]
        n_nodes = len(x)
        s = np.concatenate(src) if src else np.zeros(0, dtype=np.int64)
        t = np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64)
        deg = np.bincount(s, minlength=n_nodes)
        linked = deg > 0
        lone = np.flatnonzero(~linked)  # an isolated point links to itself: the walker stays
        s, t = np.r_[s, lone], np.r_[t, lone]
        order = np.lexsort((t, s))
        adj = t[order].astype(np.int64)
        adj_start = np.r_[0, np.cumsum(np.bincount(s, minlength=n_nodes))].astype(np.int64)
        # shifts start at linked points (any point if none is linked)
        owner_of_node = np.repeat(np.arange(len(counts)), counts)
        has_linked = np.bincount(owner_of_node, weights=linked, minlength=len(counts)) > 0
        ok_start = linked | ~has_linked[owner_of_node]
        starts = np.flatnonzero(ok_start).astype(np.int64)
        start_start = np.r_[0, np.cumsum(np.bincount(owner_of_node[starts], minlength=len(counts)))].astype(
            np.int64
        )
        return adj_start, adj, start_start, starts

    def _build_day(self, d: date) -> _Day:
        """All supervisors' routes on local date ``d`` (a vectorised random walk per shift)."""
        cfg = self.config
        g = self._graph
        n = len(self._names)
        ref_us = self._local_us(d, 0)
        shifts = self._shifts_on(d)
        nshift = len(shifts)
        dk = _mix(self._keys ^ _mix(np.atleast_1d(_counter(_S_DAY, 0, d.toordinal()))))
        zero_i = np.zeros(n, dtype=np.int64)
        if not nshift or not n:
            empty = np.zeros(0)
            return _Day(d, ref_us, shifts, np.zeros(0, dtype=np.int64), empty, empty, zero_i, zero_i, 0, 0)
        bounds_s = [((a - ref_us) / _US, (b - ref_us) / _US) for a, b in shifts]

        def event(slot: int, share: float, length: NDArray[np.float64] | float) -> tuple[Any, Any, Any]:
            has = _unit(dk, _S_EVENT, slot, 0) < share
            which = np.minimum((_unit(dk, _S_EVENT, slot, 1) * nshift).astype(np.int64), nshift - 1)
            a = np.asarray([bounds_s[k][0] for k in range(nshift)])[which]
            b = np.asarray([bounds_s[k][1] for k in range(nshift)])[which]
            latest = np.maximum(a, b - length)
            return has, which, a + (latest - a) * _unit(dk, _S_EVENT, slot, 2)

        stray, stray_shift, stray_at = event(0, cfg.stray_share, _EVENT_MARGIN_S)
        longs, long_shift, long_at = event(1, cfg.long_stop_share, _EVENT_MARGIN_S)
        long_dwell = _uniform(dk, _S_EVENT, 1, 3, (_LONG_STOP_S[0] + cfg.interval_s, _LONG_STOP_S[1]))
        off_len = _uniform(dk, _S_EVENT, 2, 3, _OFFLINE_S)
        off, _, off_at = event(2, cfg.offline_share, off_len)
        gap0 = np.where(off, ref_us + np.rint(off_at * _US).astype(np.int64), 0)
        gap1 = np.where(off, ref_us + np.rint((off_at + off_len) * _US).astype(np.int64), 0)

        rows_out: list[NDArray[np.int64]] = []
        t_out: list[NDArray[np.float64]] = []
        x_out: list[NDArray[np.float64]] = []
        y_out: list[NDArray[np.float64]] = []
        n_strays = n_long = 0
        all_rows = np.arange(n, dtype=np.int64)
        for si, (a, b) in enumerate(bounds_s):
            cnt = g.start_start[1:] - g.start_start[:-1]
            pick = np.minimum((_unit(dk, _S_START, si, 0) * cnt).astype(np.int64), cnt - 1)
            node = g.starts[g.start_start[:-1] + pick]
            home = node.copy()
            cx, cy = g.x[node].copy(), g.y[node].copy()
            t = np.full(n, a)
            stage = np.zeros(n, dtype=np.int64)  # 0 patrol; 1–4 stray excursion legs
            bx, by = np.zeros(n), np.zeros(n)
            ox, oy = np.zeros(n), np.zeros(n)
            pend_stray = stray & (stray_shift == si)
            pend_long = longs & (long_shift == si)
            rows = all_rows
            j = 0
            while len(rows):
                if pend_stray.any():
                    r = rows[pend_stray[rows] & (stage[rows] == 0) & (t[rows] >= stray_at[rows])]
                    if len(r):
                        pend_stray[r] = False
                        ok, pbx, pby, pox, poy = self._excursion(g, dk[r], r, cx[r], cy[r], si)
                        r = r[ok]
                        bx[r], by[r], ox[r], oy[r] = pbx[ok], pby[ok], pox[ok], poy[ok]
                        stage[r] = 1
                        home[r] = node[r]
                        n_strays += len(r)
                st = stage[rows]
                cur = node[rows]
                a0 = g.adj_start[cur]
                deg = g.adj_start[cur + 1] - a0
                keys = dk[rows]
                nxt = g.adj[a0 + np.minimum((_unit(keys, _S_NBR, si, j) * deg).astype(np.int64), deg - 1)]
                nxt = np.where(st == 4, home[rows], nxt)
                tx = np.select([st == 1, st == 2, st == 3], [bx[rows], ox[rows], bx[rows]], g.x[nxt])
                ty = np.select([st == 1, st == 2, st == 3], [by[rows], oy[rows], by[rows]], g.y[nxt])
                v = _uniform(keys, _S_SPEED, si, j, cfg.walk_speed)
                dwell = _uniform(keys, _S_DWELL, si, j, cfg.dwell_s)
                dwell[(st == 1) | (st == 3)] = 0.0
                if pend_long.any():
                    lm = pend_long[rows] & (st == 0) & (t[rows] >= long_at[rows])
                    if lm.any():
                        dwell[lm] = long_dwell[rows[lm]]
                        pend_long[rows[lm]] = False
                        n_long += int(lm.sum())
                px, py, pt = cx[rows], cy[rows], t[rows]
                dist = np.sqrt((tx - px) ** 2 + (ty - py) ** 2)
                arrive = pt + dist / v
                rows_out += [rows, rows]
                t_out += [pt, arrive]
                x_out += [px, tx]
                y_out += [py, ty]
                cx[rows], cy[rows] = tx, ty
                node[rows] = np.where((st == 0) | (st == 4), nxt, node[rows])
                stage[rows] = np.where(st == 0, 0, (st + 1) % 5)
                t[rows] = arrive + dwell
                rows = rows[t[rows] < b]
                j += 1
            rows_out.append(all_rows)
            t_out.append(t.copy())
            x_out.append(cx.copy())
            y_out.append(cy.copy())
        owner = np.concatenate(rows_out)
        order = np.argsort(owner, kind="stable")
        t_us = np.rint(np.concatenate(t_out)[order] * _US).astype(np.int64)
        keys_out = owner[order] * _BAND_US + t_us
        return _Day(
            d,
            ref_us,
            shifts,
            keys_out,
            np.concatenate(x_out)[order],
            np.concatenate(y_out)[order],
            gap0,
            gap1,
            n_strays,
            n_long,
        )

    @staticmethod
    def _excursion(
        g: _Graph,
        keys: NDArray[np.uint64],
        r: NDArray[np.int64],
        ax: NDArray[np.float64],
        ay: NDArray[np.float64],
        si: int,
    ) -> tuple[
        NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]
    ]:
        """Border point and turning point of stray excursions from (ax, ay); ok where one is found."""
        lines = shapely.shortest_line(g.boundary[r], shapely.points(ax, ay))
        b = shapely.get_coordinates(lines)[0::2]  # first point lies on the boundary
        out_len = _uniform(keys, _S_EVENT, 16 + si, 0, _STRAY_OUT_M)
        ok = np.zeros(len(r), dtype=bool)
        ox, oy = np.zeros(len(r)), np.zeros(len(r))
        for origin in (np.column_stack([ax, ay]), g.centroid[r]):
            d = b - origin
            norm = np.hypot(d[:, 0], d[:, 1])
            good = norm > 1e-6
            dx = np.where(good, d[:, 0] / np.where(good, norm, 1.0), 0.0)
            dy = np.where(good, d[:, 1] / np.where(good, norm, 1.0), 0.0)
            cx, cy = b[:, 0] + dx * out_len, b[:, 1] + dy * out_len
            far = good & (shapely.distance(g.metric[r], shapely.points(cx, cy)) >= _STRAY_MIN_M)
            new = far & ~ok
            ox[new], oy[new] = cx[new], cy[new]
            ok |= far
        return ok, b[:, 0], b[:, 1], ox, oy


def areas_from_store(engine: Any, adcode: str | None = None) -> dict[str, Area]:
    """Supervisor id ``sup-<area code>`` → union of the area's active grids (WGS-84), from the store."""
    from shapely.geometry import shape
    from sqlalchemy import select

    from store.models import Grid, ResponsibilityArea

    stmt = (
        select(Grid.area_code, Grid.geometry)
        .join(ResponsibilityArea, ResponsibilityArea.code == Grid.area_code)
        .where(Grid.active, ResponsibilityArea.active)
        .order_by(Grid.area_code, Grid.code)
    )
    if adcode is not None:
        stmt = stmt.where(Grid.code.startswith(adcode))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out: dict[str, Area] = {}
    for code, group in groupby(rows, key=lambda r: r[0]):
        union = polygonal(shapely.union_all([shape(r[1]) for r in group]))
        if not union.is_empty:
            out[f"sup-{code}"] = union
    return out
