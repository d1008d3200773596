"""Duplicate problems (重复上报, issue 21): reports of the same class close in space and time, grouped
as merge candidates the moment they arrive.

The rule is the similar-case hint of real 数字城管 systems (domain.md §1.1: 50 m and 24 h), made
class-dependent:

- a 部件 is ONE object: two reports that name an object are the same problem exactly when they name
  the same object (whatever the distance between the reported points); a report without an object
  matches an earlier one of its class within :attr:`DuplicateRules.component_m` (30 m: a phone's
  fix beside a cover, not the next cover along the street);
- most 事件 are a place: :attr:`DuplicateRules.event_m` (50 m);
- litter, dirt, spills, water and snow lie over an area: :data:`AREA_CLASSES` within
  :attr:`DuplicateRules.area_m` — 50 m by default like the rest (the standard's hint): measured on a
  generated month, a wider 100 m for these classes found 1.5 % more repeats and 4 % more wrong
  candidates (BENCHMARKS.md); a city whose callers place litter loosely can widen it;
- everything within :attr:`DuplicateRules.window` (24 h) of the earlier report;
- a supervisor's own earlier open report is never the twin of their new one (their handset lists
  what they reported: a second report is a second problem).

Within those bounds a candidate must also be *unlikely to be a coincidence*. Where a class is
reported often (道路不洁 on a busy street), two unrelated reports fall within 50 m and a few hours
of each other every day; where it is rare, even 50 m and 20 h apart is telling. :class:`BackgroundRates`
learns, from the reports themselves, how often each class is reported around each place (cells of
:attr:`DuplicateRules.rate_cell_m`, the trailing :attr:`DuplicateRules.rate_days`); the chance that an
unrelated report of the class comes at least as close in space and time is
``1 − exp(−rate · π·d² · Δt)``, and a pair is a candidate only when that chance is at most
:attr:`DuplicateRules.max_coincidence`. Candidates are ranked by it (the least likely coincidence
first).

:class:`DuplicateIndex` keeps the open reports in a hash of square cells as large as the widest
radius, per (kind, class), so a lookup reads at most nine cells of its own class: its cost does not
grow with the number of open cases of other classes or places. Distances are local equirectangular
metres around the district's latitude (error under 0.1 % within a district). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

EARTH_M = 6_371_008.8

# 事件 classes of CJ/T 214 that are an area rather than a point: 暴露垃圾, 积存垃圾渣土, 道路不洁,
# 水域不洁, 绿地脏乱, 道路遗撒, 餐厨垃圾遗撒, 乱堆物堆料, 垃圾满溢, 工地扬尘, 道路积水, 道路积雪结冰
AREA_CLASSES: frozenset[str] = frozenset(
    {"0102", "0103", "0104", "0105", "0106", "0110", "0114", "0116", "0198", "0304", "0408", "0409"}
)


@dataclass(frozen=True)
class DuplicateRules:
    """How near in space and time two reports of one class must be to be one problem."""

    event_m: float = 50.0
    area_m: float = 50.0
    component_m: float = 30.0
    window: timedelta = timedelta(hours=24)
    area_classes: frozenset[str] = AREA_CLASSES
    # per-class overrides: "event:0102" or "component:0101" → metres
    radius_by_class: Mapping[str, float] = field(default_factory=dict)
    max_coincidence: float = 0.003  # 1.0 turns the background test off (the plain distance/time rule)
    rate_cell_m: float = 250.0
    rate_days: float = 28.0
    min_m: float = 10.0  # the test's floor of distance and time (a fix's error; a call's minutes)
    min_after: timedelta = timedelta(minutes=10)

    def radius(self, kind: str, class_code: str) -> float:
        """The distance within which a report of this class is the same problem as an earlier one."""
        given = self.radius_by_class.get(f"{kind}:{class_code}")
        if given is not None:
            return float(given)
        if kind == "component":
            return self.component_m
        return self.area_m if class_code in self.area_classes else self.event_m

    @property
    def widest(self) -> float:
        """The largest radius of any class (the index's cell size)."""
        return max(self.event_m, self.area_m, self.component_m, *self.radius_by_class.values())


@dataclass(frozen=True, slots=True)
class OpenReport:
    """What the index keeps of an open report."""

    id: str
    kind: str
    class_code: str
    lon: float
    lat: float
    at: datetime
    component_id: str | None = None
    reporter: str | None = None  # a supervisor's id when a supervisor reported it (else None)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An earlier open report that may be the same problem, and how near it is."""

    id: str
    distance_m: float
    after: timedelta  # how long after the earlier report the new one came
    same_object: bool  # both name the same 部件
    coincidence: float = 0.0  # the chance an unrelated report of the class came this close this soon


class DuplicateIndex:
    """The open reports by class and cell; :meth:`candidates` finds a new report's earlier twins."""

    def __init__(self, rules: DuplicateRules | None = None, *, lat0: float = 39.9) -> None:
        self.rules = rules or DuplicateRules()
        self._mx = math.radians(1.0) * EARTH_M * math.cos(math.radians(lat0))  # metres per degree lon
        self._my = math.radians(1.0) * EARTH_M
        self._cell = self.rules.widest
        self._cells: dict[tuple[str, str, int, int], dict[str, OpenReport]] = {}
        self._where: dict[str, tuple[str, str, int, int]] = {}
        self._by_object: dict[str, dict[str, OpenReport]] = {}
        self.rates = BackgroundRates(self.rules, lat0=lat0)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, report_id: object) -> bool:
        return report_id in self._where

    def _xy(self, lon: float, lat: float) -> tuple[float, float]:
        return lon * self._mx, lat * self._my

    def _key(self, r: OpenReport) -> tuple[str, str, int, int]:
        x, y = self._xy(r.lon, r.lat)
        return (r.kind, r.class_code, math.floor(x / self._cell), math.floor(y / self._cell))

    def add(self, report: OpenReport, *, count: bool = True) -> None:
        """Keep an open report (a report already kept is moved to its new place); ``count`` it in the
        background rates (not when it is only moved, or reloaded after a restart with its history)."""
        if count and report.id not in self._where:
            self.rates.count(report)
        self.discard(report.id)
        key = self._key(report)
        self._cells.setdefault(key, {})[report.id] = report
        self._where[report.id] = key
        if report.component_id:
            self._by_object.setdefault(report.component_id, {})[report.id] = report

    def discard(self, report_id: str) -> None:
        """Forget a report (closed, voided, merged); unknown ids are ignored."""
        key = self._where.pop(report_id, None)
        if key is None:
            return
        cell = self._cells.get(key)
        if cell is not None:
            r = cell.pop(report_id, None)
            if not cell:
                del self._cells[key]
            if r is not None and r.component_id:
                same = self._by_object.get(r.component_id)
                if same is not None:
                    same.pop(report_id, None)
                    if not same:
                        del self._by_object[r.component_id]

    def candidates(self, report: OpenReport, *, limit: int = 5) -> list[Candidate]:
        """The open reports that ``report`` may repeat, the least likely coincidence first (at most
        ``limit``).

        Earlier reports only (reported at or before ``report.at``, within the rules' window); the
        report itself is never its own candidate, nor a supervisor's own earlier report.
        """
        window = self.rules.window
        found: list[Candidate] = []
        rate = self.rates.rate(report) if self.rules.max_coincidence < 1.0 else 0.0
        if report.component_id:  # an object is one problem wherever the points were taken
            for r in self._by_object.get(report.component_id, {}).values():
                after = report.at - r.at
                if (
                    r.id != report.id
                    and r.class_code == report.class_code
                    and timedelta(0) <= after <= window
                ):
                    found.append(Candidate(r.id, self.distance(report, r), after, True))
        radius = self.rules.radius(report.kind, report.class_code)
        x, y = self._xy(report.lon, report.lat)
        cx, cy = math.floor(x / self._cell), math.floor(y / self._cell)
        for i in (cx - 1, cx, cx + 1):
            for j in (cy - 1, cy, cy + 1):
                cell = self._cells.get((report.kind, report.class_code, i, j))
                if not cell:
                    continue
                for r in cell.values():
                    if r.id == report.id or (report.reporter is not None and r.reporter == report.reporter):
                        continue
                    if report.component_id and r.component_id:
                        continue  # two named objects: the same only if the same object (above)
                    after = report.at - r.at
                    if not timedelta(0) <= after <= window:
                        continue
                    rx, ry = self._xy(r.lon, r.lat)
                    d = math.hypot(rx - x, ry - y)
                    if d <= radius:
                        chance = self._chance(rate, d, after)
                        if chance <= self.rules.max_coincidence:
                            found.append(Candidate(r.id, d, after, False, chance))
        found.sort(key=lambda c: (not c.same_object, c.coincidence, c.distance_m, c.after))
        return found[:limit]

    def _chance(self, rate: float, d: float, after: timedelta) -> float:
        """The chance of an unrelated report of the class within ``d`` metres and ``after``."""
        if rate <= 0.0:
            return 0.0
        d = max(d, self.rules.min_m)
        secs = max(after, self.rules.min_after).total_seconds()
        return 1.0 - math.exp(-rate * math.pi * d * d * secs)

    def distance(self, a: OpenReport, b: OpenReport) -> float:
        """Metres between two reports' points."""
        ax, ay = self._xy(a.lon, a.lat)
        bx, by = self._xy(b.lon, b.lat)
        return math.hypot(ax - bx, ay - by)

    def expire(self, now: datetime) -> int:
        """Forget the reports older than the window before ``now`` (none can be a candidate again)."""
        old = [rid for key in list(self._cells) for rid, r in self._cells[key].items()
               if now - r.at > self.rules.window]  # fmt: skip
        for rid in old:
            self.discard(rid)
        return len(old)


class BackgroundRates:
    """How often each class is reported around each place: reports per m² per second over the trailing
    :attr:`DuplicateRules.rate_days`, from the reports counted so far (the district's rate of the class
    where a cell has seen few, so a new place starts at its class's mean)."""

    def __init__(self, rules: DuplicateRules, *, lat0: float = 39.9) -> None:
        self.rules = rules
        self._mx = math.radians(1.0) * EARTH_M * math.cos(math.radians(lat0))
        self._my = math.radians(1.0) * EARTH_M
        self._cell = rules.rate_cell_m
        self._keep = timedelta(days=rules.rate_days)
        self._times: dict[tuple[str, str, int, int], deque[datetime]] = {}
        self._class: dict[tuple[str, str], deque[datetime]] = {}
        self._cells_seen: set[tuple[int, int]] = set()
        self._first: datetime | None = None

    def _cellof(self, r: OpenReport) -> tuple[int, int]:
        return math.floor(r.lon * self._mx / self._cell), math.floor(r.lat * self._my / self._cell)

    def count(self, r: OpenReport) -> None:
        """Count a report (in arrival order)."""
        cx, cy = self._cellof(r)
        self._cells_seen.add((cx, cy))
        for seen in (self._times.setdefault((r.kind, r.class_code, cx, cy), deque()),
                     self._class.setdefault((r.kind, r.class_code), deque())):  # fmt: skip
            seen.append(r.at)
            while seen and r.at - seen[0] > self._keep:
                seen.popleft()
        if self._first is None or r.at < self._first:
            self._first = r.at

    def rate(self, r: OpenReport) -> float:
        """Reports of ``r``'s class per m² per second around ``r`` (0 before anything was counted)."""
        if self._first is None:
            return 0.0
        # a day of pseudo-time with nothing seen: a short history does not make every class look busy
        span = (min(r.at - self._first, self._keep) + timedelta(days=1)).total_seconds()
        cx, cy = self._cellof(r)
        here = len(self._times.get((r.kind, r.class_code, cx, cy), ()))
        district = len(self._class.get((r.kind, r.class_code), ()))
        cell_m2 = self._cell * self._cell
        mean = district / max(1, len(self._cells_seen))  # the class's mean count per cell seen
        prior = 2.0  # cells' worth of the mean: a quiet cell starts at its class's mean
        return (here + prior * mean) / (1.0 + prior) / (cell_m2 * span)


def group(reports: Iterable[OpenReport], rules: DuplicateRules | None = None, *, lat0: float = 39.9
          ) -> dict[str, str]:  # fmt: skip
    """Replay reports in time order and name, for each one with a candidate, its nearest earlier
    twin (report id → candidate id): what the live grouping would have proposed."""
    index = DuplicateIndex(rules, lat0=lat0)
    out: dict[str, str] = {}
    for r in sorted(reports, key=lambda r: r.at):
        found = index.candidates(r, limit=1)
        if found:
            out[r.id] = found[0].id
        index.add(r)
    return out
