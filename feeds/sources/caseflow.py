"""Case flow generator: seeded, realistic 数字城管 case histories as lifecycle commands.

:func:`generate` yields ``(Command, instant)`` pairs in global time order across all cases, the
way a centre's case system would emit them, so that the simulator of the feeds issue can push
them through the pipeline. It is pure and deterministic: the same arguments and ``seed`` give the
same stream, and nothing outside the returned :class:`CaseFlow` is read or changed.

Calibrated to the Dongcheng reference magnitudes of domain.md §1.4 (about 1,300 reports a day,
≥ 95 % closed, mean time to close about 6.5 h) and the build item's bands (2–5 % returned, 3–8 %
reworked, 5–10 % breaching the handling limit); :func:`summarise` measures those figures from the
final case states. All rates live in :class:`Calibration`. Over 7 simulated days it reads about
1,300/day, peak hour 10, 99 % closed, 6.2–6.6 h to close, 3.5 % returned, 5.5 % reworked and
7–8 % breaching (seeds vary only the draws; the class mix and the hotspots are the city's, fixed
by ``Calibration.city_seed``). A finite run is right-censored (cases that take days — multi-day
limits missed or extended, suspensions — are still open at its end), so the long-run mean time to
close is higher, about 7.4 h (cases reported in the first week of a 14-day run).

How the stream is built:

- **Arrivals** are a non-homogeneous Poisson process with a piecewise-constant rate per local
  hour (the calendar's zone, Asia/Shanghai by default): peak at 9–11 h, low at night, and rest
  days (weekends, statutory holidays; 调休 days count as working days) at ``rest_day_factor`` of
  a working day. ``reports_per_day`` is the mean over an ordinary 5 + 2 week.
- **Each case** is scripted when it arrives, with its own steps run through
  :func:`domain.lifecycle.apply` as they are drawn (the handling deadline of every episode is read
  from the state machine's timer, so overruns are decided against the real calendar deadline).
  Steps at or after the end of the horizon are dropped: such cases simply stay open.
- **Merging**: a heap of each case's next step gives the global order; ties keep arrival order.

The generator never yields a command the state machine rejected: a rejection is a generator bug,
recorded in :attr:`CaseFlow.rejections` (or raised with ``strict=True``), and ends that case's
script. ``ctx.now`` is ignored (the generator runs its own clock).

Actors: supervisors come from ``supervisors`` (or ``sup-0001``… one per four grids); each grid has
one supervisor, who reports in it and does its 核实 / 核查 tasks. The centre works four crews
(A–D) in three 8-hour shifts (00–08, 08–16, 16–24 local), one acceptor, shift leader and
dispatcher per crew (``acceptor-A``, ``shift-leader-A``, ``dispatcher-A``). Departments act as
``dept-<code>`` with ``department=<code>``; urges come from ``leader-01`` or the dispatcher;
hotline reports from ``hotline-12345``.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from domain.catalogue import CaseKind, FilingCondition, MinorClass
from domain.duplicates import AREA_CLASSES as DUPLICATE_AREA_CLASSES
from domain.lifecycle import (
    T_DISPATCH,
    T_HANDLE,
    Action,
    Actor,
    ArchiveType,
    CaseState,
    Command,
    Context,
    Rejection,
    Role,
    Source,
    Status,
    apply,
)
from domain.timelimit import LimitUnit
from domain.workcalendar import is_overdue

# Relative report rate per local hour 0–23: patrols start at 7, peak 9–11, lunch dip, a lower
# afternoon peak, a quiet night (hotline and video only).
HOURLY_PROFILE: tuple[float, ...] = (
    0.12, 0.08, 0.06, 0.05, 0.06, 0.15, 0.45, 1.20, 2.10, 2.70, 2.80, 2.20,
    1.10, 1.20, 1.80, 2.00, 1.80, 1.30, 0.80, 0.60, 0.50, 0.40, 0.30, 0.20,
)  # fmt: skip

SOURCE_MIX: tuple[tuple[Source, float], ...] = (
    (Source.SUPERVISOR, 0.70),
    (Source.HOTLINE, 0.12),
    (Source.PUBLIC, 0.08),
    (Source.VIDEO, 0.05),
    (Source.DEPARTMENT, 0.03),
    (Source.LEADER, 0.02),
)

# Chance that a handling episode overruns its deadline, by the wall-clock time from the start of
# handling to the deadline (hours, upper bounds): tight same-day deadlines are missed far more often
# than multi-day ones, and a missed multi-day deadline would keep a case open for days.
OVERRUN_BY_WINDOW: tuple[tuple[float, float], ...] = ((10.0, 0.25), (30.0, 0.06), (math.inf, 0.01))

CASE_PREFIX = "C"  # generated case numbers: C<yyyymmdd><5 digits> (live reports get R…)
CREWS = "ABCD"
_SHIFT_HOURS = 8
_HOUR = 3600.0
_MIN = 60.0


@dataclass(frozen=True)
class Calibration:
    """Rates and delay parameters of the generator (shares are per case unless noted)."""

    hourly: tuple[float, ...] = HOURLY_PROFILE
    rest_day_factor: float = 0.75  # reports on a weekend/holiday relative to a working day
    sources: tuple[tuple[Source, float], ...] = SOURCE_MIX
    event_share: float = 0.65  # 事件 vs 部件 (non-emergency)
    emergency_share: float = 0.004  # 突发事件 classes, all together
    city_seed: int = 110101  # the city's class popularity and hotspots: the same for every seed
    class_sigma: float = 1.0  # spread of the per-class popularity (lognormal)
    hotspot_share: float = 0.05  # share of grids that are hotspots
    hotspot_weight: float = 4.0  # extra weight of a hotspot grid
    grid_sigma: float = 0.6  # spread of the per-grid weight (lognormal)
    unconfirmed: float = 0.08  # non-supervisor reports not confirmed by 核实 → voided
    duplicate: float = 0.01  # supervisor reports voided as duplicates
    self_handled: float = 0.08  # supervisor reports of non-emergency classes fixed on the spot (自处置)
    void_after_filing: float = 0.004  # filed cases voided before their dispatch (立案后作废)
    error_closed: float = 0.003  # dispatched cases found to be errors before handling (差错结案)
    returned: float = 0.035  # first dispatch to the wrong department → 回退 → re-dispatch
    second_dispatch: float = 0.1  # dispatched via the street's 街道分中心 to one of its units (二级派遣)
    second_dispatch_minutes: tuple[float, float] = (3.0, 45.0)  # its delay (limit 30 min: ~64 % on time)
    second_returned: float = 0.05  # of those: the unit asks 回退, the sub-centre sends it to its other unit
    reworked: float = 0.055  # first 核查 fails → 返工
    rework_again: float = 0.1  # a reworked case fails its second check too
    overrun_by_window: tuple[tuple[float, float], ...] = OVERRUN_BY_WINDOW  # see above
    extension: float = 0.008  # handling episodes with a 延期 request
    extension_rejected: float = 0.15  # of those requests
    suspension: float = 0.005  # handling episodes with a 挂账 (approved)
    urge_overdue: float = 0.4  # overrun episodes urged after the deadline
    urge: float = 0.01  # other handling episodes urged
    handle_median_h: float = 2.6  # wall-clock handling time, lognormal
    handle_sigma: float = 0.9
    overshoot_median_h: float = 1.5  # time past the deadline of an overrun, lognormal
    overshoot_sigma: float = 1.0
    suspension_median_h: float = 12.0
    verify_minutes: tuple[float, float] = (8.0, 40.0)  # 核实 delay, uniform (limit 30 min: ~70 % on time)
    check_minutes: tuple[float, float] = (10.0, 45.0)  # 核查 delay, uniform (limit 30 min: ~57 % on time)
    # the centres' optional steps (when the policy has them)
    review_minutes: tuple[float, float] = (3.0, 40.0)  # 反馈审核 delay (limit 30 min: ~73 % on time)
    review_returned: float = 0.03  # 处理反馈 sent back by the 指挥中心's review
    send_check_minutes: tuple[float, float] = (1.0, 20.0)  # 派发核查 delay (limit 15 min: ~74 % on time)
    night_start: int = 22  # departments pick up non-urgent cases dispatched at night
    morning: int = 7  # … from this local hour on (+ up to 90 min)
    # injected duplicates (issue 21): the share of cases that someone else reports again — the same
    # class, condition and grid, a point this far off (normal, per axis), this long after (exponential)
    injected_duplicates: float = 0.0
    duplicate_offset_m: float = 12.0
    duplicate_offset_area_m: float = 25.0  # classes that lie over an area (domain.duplicates)
    duplicate_delay_h: float = 3.0
    # under-patrolled areas (issue 21, blind spots): grid-code prefixes (a community's 12 digits, a
    # street's 9), plus ``under_patrolled_count`` communities picked from the knob's own stream; there
    # a supervisor report is made only at ``under_patrol_factor`` (the rest of those problems are found
    # by the public: 公众举报 or 热线, i.e. 漏报) and the patrol minutes are that factor of the usual
    under_patrolled: tuple[str, ...] = ()
    under_patrolled_count: int = 0
    under_patrol_factor: float = 0.4
    # patrol minutes (:meth:`CaseFlow.patrol_minutes`): a supervisor's walking minutes a day, split over
    # their grids ∝ √(grid weight) × lognormal(0, patrol_sigma) (routes differ: Dongcheng's grid areas
    # spread 0.62 in log), × uniform(1 ± patrol_day_spread) each day
    patrol_day_minutes: float = 420.0
    patrol_sigma: float = 0.5
    patrol_day_spread: float = 0.15


DEFAULT_CALIBRATION = Calibration()


@dataclass(frozen=True)
class CaseInfo:
    """Point-free metadata of a generated case, fixed at its report."""

    case_id: str
    reported_at: datetime
    grid: str
    source: Source
    kind: CaseKind
    class_code: str
    condition_code: str
    department: str  # the responsible department (where the case ends up)
    reporter: str
    emergency: bool
    # where in its grid (fractions of the grid's bounding box, drawn from a stream of their own so
    # that the rest of the flow does not change); an injected duplicate has its original's spot and
    # is ``offset_m`` (east, north) metres from the original's point
    spot: tuple[float, float] = (0.5, 0.5)
    duplicate_of: str | None = None
    offset_m: tuple[float, float] = (0.0, 0.0)


class CaseFlowError(RuntimeError):
    """The generator produced a command the state machine rejected (a generator bug)."""


class _Stop(Exception):
    """A case script ends: the horizon is reached or a command was rejected."""


class _Draw:
    """Scalar draws from one numpy Generator."""

    __slots__ = ("rng",)

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def u(self, a: float = 0.0, b: float = 1.0) -> float:
        return a + (b - a) * float(self.rng.random())

    def chance(self, p: float) -> bool:
        return float(self.rng.random()) < p

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * float(self.rng.standard_normal()))

    def pick(self, cumulative: Sequence[float]) -> int:
        i = bisect_right(cumulative, float(self.rng.random()) * cumulative[-1])
        return min(i, len(cumulative) - 1)


def _after(t: datetime, seconds: float) -> datetime:
    """``t`` plus ``seconds`` rounded to whole seconds (at least one)."""
    return t + timedelta(seconds=max(1, round(seconds)))


class _Script:
    """One case's steps, applied to the state machine as they are drawn."""

    __slots__ = ("case_id", "ctx", "end", "flow", "state", "steps", "t", "tz")

    def __init__(self, flow: CaseFlow, case_id: str) -> None:
        self.flow = flow
        self.case_id = case_id
        self.ctx = flow.ctx
        self.end = flow.end
        self.tz = flow.tz
        self.state: CaseState | None = None
        self.steps: list[tuple[Command, datetime, CaseState]] = []
        self.t = flow.start

    def do(self, action: Action, actor: Actor, t: datetime, opinion: str = "", **data: Any) -> CaseState:
        """Apply one step at ``t`` (UTC); stop the script at the horizon or on a rejection."""
        if t >= self.end:
            raise _Stop
        at = t.astimezone(self.tz)
        key = f"{self.case_id}-{len(self.steps) + 1:02d}"
        cmd = Command(action=action, case_id=self.case_id, actor=actor, opinion=opinion, data=data, key=key)
        out = apply(self.state, cmd, at, self.ctx)
        if isinstance(out, Rejection):
            self.flow._rejected(cmd, at, out)
            raise _Stop
        self.state = out.state
        self.steps.append((cmd, at, out.state))
        self.t = t
        return out.state


class CaseFlow(Iterator[tuple[Command, datetime]]):
    """The command stream of :func:`generate`, with the case states and metadata seen so far.

    ``states`` holds each case's state after its latest *yielded* command and ``cases`` its
    :class:`CaseInfo` from its report on; with ``keep=False`` a case leaves both once its last
    command is yielded and it is closed or voided (for long runs). ``rejections`` lists generated
    commands the state machine refused: always empty unless the generator has a bug.
    """

    def __init__(
        self,
        start: datetime,
        days: float,
        grids: Sequence[str],
        ctx: Context,
        *,
        seed: int,
        reports_per_day: float = 1300,
        supervisors: Sequence[str] | None = None,
        departments: Mapping[tuple[CaseKind, str], str] | None = None,
        calibration: Calibration = DEFAULT_CALIBRATION,
        strict: bool = False,
        keep: bool = True,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if not days >= 0 or not math.isfinite(days):
            raise ValueError(f"days must be a finite non-negative number, got {days!r}")
        if not reports_per_day >= 0 or not math.isfinite(reports_per_day):
            raise ValueError(f"reports_per_day must be finite and non-negative, got {reports_per_day!r}")
        if not grids:
            raise ValueError("at least one grid code is needed")
        if supervisors is not None and not supervisors:
            raise ValueError("supervisors, when given, must not be empty")
        if len(calibration.hourly) != 24 or sum(calibration.hourly) <= 0:
            raise ValueError("calibration.hourly needs 24 non-negative rates, not all zero")
        self.ctx = replace(ctx, now=None)
        self.cal = calibration
        self.tz: ZoneInfo = ctx.calendar.tz
        self.start = start.astimezone(UTC)
        self.end = self.start + timedelta(days=days)
        self.reports_per_day = float(reports_per_day)
        self.strict = strict
        self.keep = keep
        self.grids: tuple[str, ...] = tuple(grids)
        self.states: dict[str, CaseState] = {}
        self.cases: dict[str, CaseInfo] = {}
        self.rejections: list[tuple[Command, datetime, Rejection]] = []

        arrival_rng, case_rng = np.random.default_rng(seed).spawn(2)
        self._arrival_rng = arrival_rng
        self._draw = _Draw(case_rng)
        # spots and injected duplicates: their own streams, so the knob at 0 changes nothing else
        spot_rng, dup_rng = np.random.default_rng([seed, 21]).spawn(2)
        self._spot_rng = spot_rng
        self._dup = _Draw(dup_rng)
        city = np.random.default_rng(calibration.city_seed)
        # under-patrolled areas: their own stream too (nothing is drawn from it at the default)
        if not 0.0 <= calibration.under_patrol_factor <= 1.0:
            raise ValueError("calibration.under_patrol_factor must be within [0, 1]")
        self._seed = seed
        under_rng = np.random.default_rng([seed, 22])
        areas = tuple(calibration.under_patrolled)
        if calibration.under_patrolled_count > 0:
            communities = sorted({g[:12] for g in self.grids} - set(areas))
            n = min(calibration.under_patrolled_count, len(communities))
            areas += tuple(
                communities[int(i)] for i in sorted(under_rng.choice(len(communities), n, replace=False))
            )
        self.under_patrolled_areas: tuple[str, ...] = areas
        self.under_patrolled: frozenset[str] = frozenset(
            g for g in self.grids if any(g.startswith(a) for a in areas)
        )
        self._under = _Draw(under_rng)

        n_sup = max(1, math.ceil(len(self.grids) / 4))
        sups = (
            tuple(supervisors)
            if supervisors is not None
            else tuple(f"sup-{i:04d}" for i in range(1, n_sup + 1))
        )
        self._grid_supervisor = {
            g: Actor(sups[i % len(sups)], Role.SUPERVISOR) for i, g in enumerate(self.grids)
        }
        weights = city.lognormal(0.0, calibration.grid_sigma, len(self.grids))
        hot = city.random(len(self.grids)) < calibration.hotspot_share
        weights = np.where(hot, weights * calibration.hotspot_weight, weights)
        self._grid_cum = list(accumulate(float(w) for w in weights))
        self.hotspots: tuple[str, ...] = tuple(g for g, h in zip(self.grids, hot, strict=True) if h)
        self._grid_weight = np.asarray(weights, dtype=float)

        catalogue = ctx.catalogue
        overrides = dict(departments or {})
        for key, dept in overrides.items():
            if dept not in catalogue.departments:
                raise ValueError(f"department override {key}: unknown department {dept!r}")
        self._department = {c.key: overrides.get(c.key, c.department) for c in catalogue.classes}
        self._handlers = tuple(sorted(set(self._department.values())))
        # 二级派遣: each street's cases may go via a sub-centre (streets in code order, sub-centres in
        # list order, round robin); not when the caller routes every class itself
        subs = catalogue.subcentres if not overrides else ()
        streets = sorted({g[:9] for g in self.grids})
        self._subcentre = {st: subs[i % len(subs)] for i, st in enumerate(streets)} if subs else {}
        self._class_choices, class_weights = self._class_weights(city)
        self._class_cum = list(accumulate(class_weights))

        src_w = [w for _, w in calibration.sources]
        self._sources = tuple(s for s, _ in calibration.sources)
        self._source_cum = list(accumulate(src_w))
        total = sum(calibration.hourly)
        self._hour_share = [h / total for h in calibration.hourly]
        self._working_factor = 7.0 / (5.0 + 2.0 * calibration.rest_day_factor)

        self._day_seq: Counter[date] = Counter()
        self._infos: dict[str, CaseInfo] = {}
        self._scripts: dict[str, list[tuple[Command, datetime, CaseState]]] = {}
        self._heap: list[tuple[datetime, int, str, int]] = []
        self._seq = 0
        self._arrivals = self._arrival_times()
        self._next_arrival: datetime | None = next(self._arrivals, None)

    # -- the stream ------------------------------------------------------------------------------

    def __iter__(self) -> CaseFlow:
        return self

    def __next__(self) -> tuple[Command, datetime]:
        heap = self._heap
        while True:
            nxt = self._next_arrival
            if heap and (nxt is None or heap[0][0] <= nxt):
                _, _, case_id, i = heapq.heappop(heap)
                script = self._scripts[case_id]
                cmd, at, state = script[i]
                self.states[case_id] = state
                if i == 0:
                    self.cases[case_id] = self._infos.pop(case_id)
                if i + 1 < len(script):
                    self._push(case_id, i + 1, script[i + 1][1])
                else:
                    del self._scripts[case_id]
                    if not self.keep and not state.is_open:
                        del self.states[case_id], self.cases[case_id]
                return cmd, at
            if nxt is None:
                raise StopIteration
            self._next_arrival = next(self._arrivals, None)
            self._script_case(nxt)

    def patrol_minutes(self, start: datetime | None = None, end: datetime | None = None) -> dict[str, float]:
        """Patrol minutes per grid over the local days in [start, end) (default: the horizon's days)."""
        cal = self.cal
        t0 = (start or self.start).astimezone(self.tz).date()
        t1 = (end or self.end).astimezone(self.tz)
        last = t1.date() if t1.time() != datetime.min.time() else t1.date() - timedelta(days=1)
        route = np.random.default_rng([cal.city_seed, 23]).lognormal(0.0, cal.patrol_sigma, len(self.grids))
        share = np.sqrt(self._grid_weight) * route
        sup_of = [self._grid_supervisor[g].id for g in self.grids]
        totals: dict[str, float] = {}
        for sup, w in zip(sup_of, share, strict=True):
            totals[sup] = totals.get(sup, 0.0) + float(w)
        per_day = np.array(
            [cal.patrol_day_minutes * float(w) / totals[s] for s, w in zip(sup_of, share, strict=True)]
        )
        factor = np.array([cal.under_patrol_factor if g in self.under_patrolled else 1.0 for g in self.grids])
        minutes = np.zeros(len(self.grids))
        day = t0
        while day <= last:
            noise = np.random.default_rng([self._seed, 23, day.toordinal()]).uniform(
                1.0 - cal.patrol_day_spread, 1.0 + cal.patrol_day_spread, len(self.grids)
            )
            minutes += per_day * factor * noise
            day += timedelta(days=1)
        return {g: round(float(m), 1) for g, m in zip(self.grids, minutes, strict=True)}

    @property
    def rejected(self) -> int:
        """How many generated commands the state machine rejected (0 unless the generator has a bug)."""
        return len(self.rejections)

    def _push(self, case_id: str, i: int, at: datetime) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, case_id, i))

    def _rejected(self, cmd: Command, at: datetime, rejection: Rejection) -> None:
        self.rejections.append((cmd, at, rejection))
        if self.strict:
            raise CaseFlowError(
                f"generated {cmd.action.value} for {cmd.case_id} rejected: {rejection.message}"
            )

    # -- arrivals, classes, actors ----------------------------------------------------------------

    def _arrival_times(self) -> Iterator[datetime]:
        """Report instants (UTC), a Poisson process with a piecewise-constant hourly rate."""
        rng = self._arrival_rng
        slot = self.start.astimezone(self.tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        hour = timedelta(hours=1)
        while slot < self.end:
            lo, hi = max(slot, self.start), min(slot + hour, self.end)
            local = slot.astimezone(self.tz)
            factor = self._working_factor
            if not self.ctx.calendar.is_working_day(local.date()):
                factor *= self.cal.rest_day_factor
            width = (hi - lo).total_seconds()
            lam = self.reports_per_day * factor * self._hour_share[local.hour] * width / _HOUR
            n = int(rng.poisson(lam)) if lam > 0 else 0
            for offset in np.sort(rng.random(n)) * width:
                yield lo + timedelta(seconds=math.floor(float(offset)))
            slot += hour

    def _class_weights(
        self, rng: np.random.Generator
    ) -> tuple[list[tuple[MinorClass, FilingCondition]], list[float]]:
        """(class, condition) choices with cumulative weights: 事件 > 部件, 突发事件 rare."""
        cal = self.cal
        classes = self.ctx.catalogue.classes
        popularity = rng.lognormal(0.0, cal.class_sigma, len(classes))
        groups: dict[str, float] = {
            "emergency": cal.emergency_share,
            "event": (1.0 - cal.emergency_share) * cal.event_share,
            "component": (1.0 - cal.emergency_share) * (1.0 - cal.event_share),
        }

        def group(c: MinorClass) -> str:
            return "emergency" if c.emergency else c.kind.value

        totals = dict.fromkeys(groups, 0.0)
        for c, p in zip(classes, popularity, strict=True):
            totals[group(c)] += float(p)
        present = sum(share for g, share in groups.items() if totals[g] > 0)
        choices: list[tuple[MinorClass, FilingCondition]] = []
        weights: list[float] = []
        for c, p in zip(classes, popularity, strict=True):
            w = groups[group(c)] / present * float(p) / totals[group(c)]
            for cond in c.conditions:
                choices.append((c, cond))
                weights.append(w / len(c.conditions))
        return choices, weights

    def _crew(self, t: datetime) -> str:
        local = t.astimezone(self.tz)
        shift = local.toordinal() * (24 // _SHIFT_HOURS) + local.hour // _SHIFT_HOURS
        return CREWS[shift % len(CREWS)]

    def _acceptor(self, t: datetime) -> Actor:
        return Actor(f"acceptor-{self._crew(t)}", Role.ACCEPTOR)

    def _shift_leader(self, t: datetime) -> Actor:
        return Actor(f"shift-leader-{self._crew(t)}", Role.SHIFT_LEADER)

    def _dispatcher(self, t: datetime) -> Actor:
        return Actor(f"dispatcher-{self._crew(t)}", Role.DISPATCHER)

    @staticmethod
    def _dept(code: str) -> Actor:
        return Actor(f"dept-{code}", Role.DEPARTMENT, department=code)

    def _reporter(self, source: Source, t: datetime, supervisor: Actor) -> Actor:
        if source is Source.SUPERVISOR:
            return supervisor
        if source is Source.HOTLINE:
            return Actor("hotline-12345", Role.CALL_CENTER)
        if source is Source.LEADER:
            return Actor("leader-01", Role.LEADER)
        if source is Source.DEPARTMENT:
            return self._dept(self._handlers[int(self._draw.u() * len(self._handlers))])
        return self._acceptor(t)  # public and video reports are registered by the acceptor

    # -- one case ---------------------------------------------------------------------------------

    def _script_case(self, t0: datetime) -> None:
        d, cal = self._draw, self.cal
        grid = self.grids[d.pick(self._grid_cum)]
        source = self._sources[d.pick(self._source_cum)]
        if source is Source.SUPERVISOR and grid in self.under_patrolled:  # never at the default
            under = self._under
            if not under.chance(cal.under_patrol_factor):  # missed by the patrol: the public finds it
                source = Source.PUBLIC if under.chance(0.4) else Source.HOTLINE
        minor, cond = self._class_choices[d.pick(self._class_cum)]
        u, v = self._spot_rng.random(2)
        case_id = self._script(t0, grid, source, minor, cond, (float(u), float(v)))
        if case_id is not None and cal.injected_duplicates > 0 and self._dup.chance(cal.injected_duplicates):
            self._script_duplicate(case_id, t0, grid, source, minor, cond, (float(u), float(v)))

    def _script_duplicate(self, original: str, t0: datetime, grid: str, source: Source, minor: MinorClass,
                          cond: FilingCondition, spot: tuple[float, float]) -> None:  # fmt: skip
        """The same problem reported again by someone else (the injected-duplicates knob)."""
        d, cal = self._dup, self.cal
        again = _after(t0, max(60.0, d.lognormal(cal.duplicate_delay_h * _HOUR, 1.0)))
        if again >= self.end:
            return
        others: list[Source] = [s for s in self._sources if s is not source and s is not Source.LEADER]
        others = others or [source]
        area = minor.kind is CaseKind.EVENT and minor.code in DUPLICATE_AREA_CLASSES
        sigma = cal.duplicate_offset_area_m if area else cal.duplicate_offset_m
        dx, dy = (float(x) for x in self._spot_rng.normal(0.0, sigma, 2))
        self._script(again, grid, others[int(d.u() * len(others))], minor, cond, spot,
                     duplicate_of=original, offset_m=(round(dx, 2), round(dy, 2)))  # fmt: skip

    def _script(self, t0: datetime, grid: str, source: Source, minor: MinorClass, cond: FilingCondition,
                spot: tuple[float, float], duplicate_of: str | None = None,
                offset_m: tuple[float, float] = (0.0, 0.0)) -> str | None:  # fmt: skip
        d, cal = self._draw, self.cal
        day = t0.astimezone(self.tz).date()
        self._day_seq[day] += 1
        case_id = f"{CASE_PREFIX}{day:%Y%m%d}{self._day_seq[day]:05d}"
        supervisor = self._grid_supervisor[grid]
        reporter = self._reporter(source, t0, supervisor)
        department = self._department[minor.key]
        self._infos[case_id] = CaseInfo(
            case_id=case_id,
            reported_at=t0.astimezone(self.tz),
            grid=grid,
            source=source,
            kind=minor.kind,
            class_code=minor.code,
            condition_code=cond.code,
            department=department,
            reporter=reporter.id,
            emergency=minor.emergency,
            spot=spot,
            duplicate_of=duplicate_of,
            offset_m=offset_m,
        )
        s = _Script(self, case_id)
        with contextlib.suppress(_Stop):  # the horizon, or a rejection (recorded)
            if duplicate_of is None:
                self._run_case(s, d, cal, t0, grid, source, minor, cond, supervisor, reporter, department)
            else:
                self._run_duplicate(s, t0, grid, source, minor, cond, reporter)
        if s.steps:
            self._scripts[case_id] = s.steps
            self._push(case_id, 0, s.steps[0][1])
            return case_id
        del self._infos[case_id]
        return None

    def _run_duplicate(self, s: _Script, t: datetime, grid: str, source: Source, minor: MinorClass,
                       cond: FilingCondition, reporter: Actor) -> None:  # fmt: skip
        """An injected duplicate: reported, accepted, and voided by the shift leader as a repeat (what a
        centre without duplicate grouping does after its 核实)."""
        d = self._dup
        s.do(Action.REPORT, reporter, t, kind=minor.kind.value, class_code=minor.code,
             condition_code=cond.code, source=source.value, grid=grid, class_name=minor.name,
             description=cond.text)  # fmt: skip
        t = _after(t, min(30.0, d.lognormal(3.0, 0.7)) * _MIN)
        s.do(Action.ACCEPT, self._acceptor(t), t)
        t = _after(t, d.lognormal(20.0, 0.6) * _MIN)
        s.do(Action.VOID, self._shift_leader(t), t, "重复上报，作废")

    def _run_case(
        self,
        s: _Script,
        d: _Draw,
        cal: Calibration,
        t: datetime,
        grid: str,
        source: Source,
        minor: MinorClass,
        cond: FilingCondition,
        supervisor: Actor,
        reporter: Actor,
        department: str,
    ) -> None:
        fixed = source is Source.SUPERVISOR and not minor.emergency and d.chance(cal.self_handled)
        extra: dict[str, Any] = {"self_handled": True} if fixed else {}
        s.do(
            Action.REPORT,
            reporter,
            t,
            kind=minor.kind.value,
            class_code=minor.code,
            condition_code=cond.code,
            source=source.value,
            grid=grid,
            class_name=minor.name,
            description=cond.text,
            **extra,
        )
        t = _after(t, min(30.0, d.lognormal(3.0, 0.7)) * _MIN)
        s.do(Action.ACCEPT, self._acceptor(t), t)
        if fixed:  # 自处置: the acceptor's 自处理审核 passed; the shift leader closes it
            t = _after(t, d.lognormal(6.0, 0.6) * _MIN)
            s.do(Action.CLOSE, self._shift_leader(t), t)
            return
        if source is not Source.SUPERVISOR:
            t = _after(t, d.u(*cal.verify_minutes) * _MIN)
            confirmed = not d.chance(cal.unconfirmed)
            s.do(Action.VERIFY, supervisor, t, confirmed=confirmed)
            if not confirmed:
                t = _after(t, d.lognormal(5.0, 0.6) * _MIN)
                s.do(Action.VOID, self._shift_leader(t), t, "核实不属实，作废")
                return
        elif d.chance(cal.duplicate):
            t = _after(t, d.lognormal(5.0, 0.6) * _MIN)
            s.do(Action.VOID, self._shift_leader(t), t, "重复上报，作废")
            return
        t = _after(t, d.lognormal(5.0, 0.6) * _MIN)
        s.do(Action.FILE, self._shift_leader(t), t)
        t = _after(t, d.lognormal(6.0, 0.6) * _MIN)
        if d.chance(cal.void_after_filing):  # found before its dispatch not to be the city's matter
            s.do(Action.VOID, self._shift_leader(t), t, "经复核不属于城市管理范围，立案后作废")
            return
        if d.chance(cal.returned) and len(self._handlers) > 1:
            wrong = [h for h in self._handlers if h != department]
            wrong_dept = wrong[int(d.u() * len(wrong))]
            state = s.do(Action.DISPATCH, self._dispatcher(t), t, department=wrong_dept)
            window = (state.timers[T_HANDLE].deadline - t).total_seconds()
            t = _after(t, min(max(5 * _MIN, d.lognormal(_HOUR, 0.7)), 0.7 * window))
            s.do(Action.REQUEST_RETURN, self._dept(wrong_dept), t, "非本单位职责，申请回退")
            t = _after(t, d.u(5.0, 30.0) * _MIN)
            s.do(Action.APPROVE, self._dispatcher(t), t)
            t = _after(t, d.lognormal(6.0, 0.6) * _MIN)
        sub = self._subcentre.get(grid[:9]) if d.chance(cal.second_dispatch) else None
        if sub is not None:  # 二级派遣: the street's sub-centre dispatches on to one of its units
            s.do(Action.DISPATCH, self._dispatcher(t), t, department=sub)
            t, department, state = self._second_dispatch(s, d, cal, t, sub)
        else:
            state = s.do(Action.DISPATCH, self._dispatcher(t), t, department=department)
        if d.chance(cal.error_closed):  # a duplicate found while the department holds it: 差错结案
            window = (state.timers[T_HANDLE].deadline - t).total_seconds()
            t = _after(t, min(d.lognormal(_HOUR, 0.7), 0.5 * window))
            s.do(Action.CLOSE, self._shift_leader(t), t, "与已立案件重复，差错结案", error=True)
            return
        dept = self._dept(department)
        t = self._handle(s, d, cal, t, dept)
        reworks = 0
        while True:
            t, sent_back = self._to_check(s, d, cal, t, reworks)
            if sent_back:  # the 指挥中心's 反馈审核 sent it back: the department's 返工
                reworks += 1
                t = self._handle(s, d, cal, t, dept)
                continue
            t = _after(t, d.u(*cal.check_minutes) * _MIN)
            fail = d.chance(cal.reworked if reworks == 0 else cal.rework_again) and reworks < 2
            if not fail:
                s.do(Action.CHECK, supervisor, t, passed=True)
                break
            s.do(Action.CHECK, supervisor, t, "核查未通过：问题仍存在，返工", passed=False)
            reworks += 1
            t = self._handle(s, d, cal, t, dept)
        t = _after(t, d.lognormal(6.0, 0.6) * _MIN)
        s.do(Action.CLOSE, self._shift_leader(t), t)

    def _second_dispatch(
        self, s: _Script, d: _Draw, cal: Calibration, t: datetime, sub: str
    ) -> tuple[datetime, str, CaseState]:
        """The sub-centre's 二级派遣 to one of its units (and, at times, the unit's 回退 and a second
        dispatch to another unit); the instant, the unit that handles and the case state."""
        units = self.ctx.catalogue.units_of(sub)
        t = _after(t, d.u(*cal.second_dispatch_minutes) * _MIN)
        unit = units[int(d.u() * len(units))]
        state = s.do(Action.DISPATCH, self._dept(sub), t, department=unit)
        if len(units) > 1 and d.chance(cal.second_returned):
            t = _after(t, d.u(10.0, 60.0) * _MIN)
            s.do(Action.REQUEST_RETURN, self._dept(unit), t, "非本单位职责，申请回退")
            t = _after(t, d.u(5.0, 20.0) * _MIN)
            s.do(Action.APPROVE, self._dept(sub), t)
            t = _after(t, d.u(*cal.second_dispatch_minutes) * _MIN)
            unit = next(u for u in units if u != unit)
            state = s.do(Action.DISPATCH, self._dept(sub), t, department=unit)
        return t, unit, state

    def _to_check(
        self, s: _Script, d: _Draw, cal: Calibration, t: datetime, reworks: int
    ) -> tuple[datetime, bool]:
        """The centres' steps between a 处理反馈 and its 核查, as the policy has them: the 指挥中心's
        反馈审核 (True: sent back to the department) and the acceptor's 派发核查."""
        policy = self.ctx.policy
        if policy.feedback_review:
            t = _after(t, d.u(*cal.review_minutes) * _MIN)
            if reworks < 2 and d.chance(cal.review_returned):
                s.do(Action.REVIEW, self._dispatcher(t), t, "处置不到位，退回重新处置", passed=False)
                return t, True
            s.do(Action.REVIEW, self._dispatcher(t), t, passed=True)
        if policy.acceptor_issues_check:
            t = _after(t, d.u(*cal.send_check_minutes) * _MIN)
            s.do(Action.SEND_CHECK, self._acceptor(t), t)
        return t, False

    def _pickup(self, d: _Draw, t: datetime, deadline: datetime) -> datetime:
        """When a department starts on a non-urgent case dispatched at night: the next morning."""
        local = t.astimezone(self.tz)
        cal = self.cal
        if cal.morning <= local.hour < cal.night_start:
            return t
        day = local.date() if local.hour < cal.morning else local.date() + timedelta(days=1)
        morning = datetime(day.year, day.month, day.day, cal.morning, tzinfo=self.tz).astimezone(UTC)
        morning = _after(morning, d.u(0.0, 90.0) * _MIN)
        return morning if morning + timedelta(minutes=30) < deadline else t

    def _handle(self, s: _Script, d: _Draw, cal: Calibration, t: datetime, dept: Actor) -> datetime:
        """One handling episode from the start of the handling timer at ``t`` to the feedback."""
        assert s.state is not None
        timer = s.state.timers[T_HANDLE]
        deadline = timer.deadline.astimezone(UTC)
        urgent = timer.limit.unit is LimitUnit.URGENT_HOURS
        begin = t if urgent else self._pickup(d, t, deadline)
        window_h = (deadline - begin).total_seconds() / _HOUR
        overrun = d.chance(next((p for bound, p in cal.overrun_by_window if window_h <= bound), 0.0))
        floor = begin  # earliest completion
        if d.chance(cal.suspension):
            req = _after(begin, d.u(0.1, 0.4) * (deadline - begin).total_seconds())
            s.do(Action.REQUEST_SUSPENSION, dept, req, "需协调产权单位，申请挂账")
            ok = _after(req, min(d.u(5.0, 30.0) * _MIN, 0.5 * (deadline - req).total_seconds()))
            s.do(Action.APPROVE, self._dispatcher(ok), ok)
            back = _after(ok, d.lognormal(cal.suspension_median_h, 0.6) * _HOUR)
            state = s.do(Action.RESUME, self._dispatcher(back), back)
            deadline = state.timers[T_HANDLE].deadline.astimezone(UTC)
            begin = floor = back if urgent else self._pickup(d, back, deadline)
        elif d.chance(cal.extension):
            req = _after(begin, d.u(0.2, 0.6) * (deadline - begin).total_seconds())
            extra = "2紧急工作时" if urgent else "1工作日"
            s.do(Action.REQUEST_EXTENSION, dept, req, "工程量较大，申请延期", extra=extra)
            ok = _after(req, min(d.u(5.0, 30.0) * _MIN, 0.5 * (deadline - req).total_seconds()))
            if d.chance(cal.extension_rejected):
                s.do(Action.REJECT, self._dispatcher(ok), ok, "不同意延期，请按期处置")
                begin = floor = ok
            else:
                state = s.do(Action.APPROVE, self._dispatcher(ok), ok)
                floor = max(deadline, ok)  # the extension is used
                begin = ok
                deadline = state.timers[T_HANDLE].deadline.astimezone(UTC)
        if overrun:
            done = _after(
                deadline, max(5 * _MIN, d.lognormal(cal.overshoot_median_h, cal.overshoot_sigma) * _HOUR)
            )
            if d.chance(cal.urge_overdue):
                urge_at = _after(deadline, d.u(0.1, 0.9) * (done - deadline).total_seconds())
                s.do(Action.URGE, self._urger(d, urge_at), urge_at, "已超期，请尽快处置")
        else:
            base = floor + timedelta(seconds=d.lognormal(cal.handle_median_h, cal.handle_sigma) * _HOUR)
            cap = floor + (deadline - floor) * d.u(0.6, 0.95)
            done = min(base, cap)
            if d.chance(cal.urge):
                urge_at = _after(begin, d.u(0.2, 0.8) * (done - begin).total_seconds())
                s.do(Action.URGE, self._urger(d, urge_at), urge_at, "请加快处置进度")
        done = max(done, _after(s.t, _MIN))
        s.do(Action.FEEDBACK, dept, done, "已按要求处置完毕")
        return done

    def _urger(self, d: _Draw, t: datetime) -> Actor:
        return Actor("leader-01", Role.LEADER) if d.chance(0.7) else self._dispatcher(t)


# ``generate(start, days, grids, ctx, *, seed, …)`` yields seeded ``(Command, instant)`` pairs in
# time order; the stream object also carries the case states and metadata (see CaseFlow).
generate = CaseFlow


def summarise(
    states: Iterable[CaseState],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tz: ZoneInfo | None = None,
) -> dict[str, Any]:
    """Measure the calibration figures of a set of case states (see the module docstring)."""
    cases = list(states)
    zone = tz or ZoneInfo("Asia/Shanghai")
    first = start if start is not None else min((c.reported_at for c in cases), default=None)
    last = end if end is not None else max((c.updated_at for c in cases), default=None)
    days = (last - first).total_seconds() / 86400.0 if first is not None and last is not None else 0.0
    cohort = [] if last is None else [c for c in cases if c.reported_at <= last - timedelta(hours=24)]
    voided = [c for c in cohort if c.status is Status.VOIDED]
    valid = [c for c in cohort if c.status is not Status.VOIDED]
    ended = [c for c in valid if c.status is Status.CLOSED]  # every archive, 自处置 and 差错结案 included
    # 结案 as the indicators count it (the time to close): not a 自处置 nor a 差错结案 (their own shares)
    closed = [c for c in valid if c.counts_as_closure and c.closed_at is not None]
    filed = [c for c in valid if c.dispatches > 0]
    patrol = [c for c in cohort if c.source is Source.SUPERVISOR]

    def breached(c: CaseState) -> bool:
        if c.handled_overdue:
            return True
        timer = c.timers.get(T_HANDLE)  # still handling (or suspended) past the deadline at the end
        if timer is None or timer.ended_at is not None or last is None or last < timer.started_at:
            return False
        return is_overdue(timer, last)

    def share(part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    hours = [0] * 24
    for c in cases:
        hours[c.reported_at.astimezone(zone).hour] += 1
    close_h = [(c.closed_at - c.reported_at).total_seconds() / _HOUR for c in closed if c.closed_at]
    return {
        "cases": len(cases),
        "days": days,
        "reports_per_day": len(cases) / days if days > 0 else 0.0,
        "cohort": len(cohort),  # reported at least 24 h before the end
        "voided_share": share(len(voided), len(cohort)),
        "closed_share": share(len(ended), len(valid)),
        "mean_hours_to_close": sum(close_h) / len(close_h) if close_h else 0.0,
        "returned_share": share(sum(c.returns > 0 for c in filed), len(filed)),
        "reworked_share": share(sum(c.reworks > 0 for c in filed), len(filed)),
        "breaching_share": share(sum(breached(c) for c in filed), len(filed)),
        "extended_share": share(sum(c.extensions > 0 for c in filed), len(filed)),
        "suspended_share": share(sum(c.suspensions > 0 for c in filed), len(filed)),
        "urged_share": share(sum(c.urges > 0 for c in filed), len(filed)),
        "self_handled_share": share(sum(c.self_handled for c in patrol), len(patrol)),
        "void_after_filing_share": share(sum(T_DISPATCH in c.timers for c in voided), len(cohort)),
        "error_closed_share": share(sum(c.archive is ArchiveType.ERROR for c in filed), len(filed)),
        "second_dispatch_share": share(sum(c.subcentre is not None for c in filed), len(filed)),
        "peak_hour": max(range(24), key=lambda h: hours[h]),
        "reports_by_hour": hours,
    }
