"""Work calendar, typed time limits (时限) and stage timers for GridWall.

A :class:`WorkCalendar` belongs to a city: its time zone (Asia/Shanghai by default), its statutory
holidays and 调休 make-up working days (data, loaded from ``domain/data/holidays_cn.csv`` or a
city's own CSV by :func:`load_calendar`) and its daily work periods (08:00–12:00 and 14:00–18:00 by
default, local time).

A working day is a Monday–Friday that is not a holiday, or a listed make-up working day (a date
listed as both is rejected). Working time is the union of the work periods on working days.

Units of :class:`~domain.timelimit.TimeLimit`, and how a deadline is computed from a start instant:

- ``URGENT_HOURS`` (紧急工作时): wall-clock hours; nights, weekends and holidays count.
- ``NATURAL_DAYS`` (自然日): ``value × 24 h`` of elapsed wall-clock time.
- ``WORK_HOURS`` (工作时): ``value`` hours of working time only.
- ``WORK_DAYS`` (工作日): ``value × H`` of working time, H = the calendar's working hours per day
  (8 h by default). So a 1-工作日 limit started Monday 10:00 ends Tuesday 10:00; started Friday
  16:00 it ends Monday 16:00; started at 19:00 it ends at 18:00 the next working day.

For the working-time units the deadline is the *earliest* instant at which the budget is used up:
counting starts at the start instant, or at the next period start when the start lies outside
working time, and a budget that runs out exactly at a period end (12:00, 18:00) ends there, not
at the next period start. Amounts "used" between two instants (:meth:`WorkCalendar.used`) are
signed: negative when the end precedes the start.

All datetimes going in must be timezone-aware (naive ones raise ``ValueError``); results are
returned in the calendar's zone. Arithmetic is done on UTC instants and work periods are placed
with the zone's rules, so the code stays correct in zones with daylight-saving time (Asia/Shanghai
has none); the per-day length H of ``WORK_DAYS`` is the nominal sum of the periods.

Stage timers (:class:`StageTimer`) are immutable values; every operation returns a new timer:

- :func:`pause` (挂账) stops the clock. :func:`resume` moves the deadline so that the budget left
  *in the limit's own unit* equals what was left when paused: a 工作时 timer suspended over a
  weekend loses no working time, a 紧急工作时 timer's deadline moves by the wall-clock pause.
- :func:`extend` (延期) moves the deadline by an extra limit measured from the current deadline
  (in the extra limit's unit); the gain, measured in the timer's unit, accumulates in
  ``extended_by`` so that the effective limit is ``limit.value + extended_by``.
- :func:`remaining` is wall-clock time to the deadline, frozen from the moment the timer is paused
  or stopped; negative when overdue. :func:`remaining_budget` gives the same in the limit's unit.
- :func:`is_overdue` compares instants (ended after the deadline, or still running past it).
  :func:`overdue_ratio` (超时倍数) is ``(used − effective limit) / effective limit`` in the
  limit's unit, 0 when on time. The two can disagree at the edges: a 工作时 timer due Friday
  18:00 and closed on Saturday is overdue, yet has used no extra working time (ratio 0).

A timer stopped while paused keeps ``paused_since`` (its clock stayed frozen from then on).
Queries use the timer's current deadline; earlier deadlines are not kept.

Centre-side stage limits (:data:`CENTRE_STAGE_LIMITS`: accept, dispatch, send_check 15 min; verify, check,
review 30 min) are wall-clock minutes expressed as ``URGENT_HOURS`` fractions.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.timelimit import LimitUnit, TimeLimit

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_PERIODS: tuple[tuple[time, time], ...] = ((time(8), time(12)), (time(14), time(18)))
HOLIDAYS_CSV = Path(__file__).resolve().parent / "data" / "holidays_cn.csv"

_HOUR = 3600.0
_DAY = 86400.0
_MAX_IDLE_DAYS = 366  # a calendar with no working day for a whole year is a data error
_MAX_STEPS = 512  # memoised limit lengths per calendar
_ONE_DAY = timedelta(days=1)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


_Day = tuple[list[tuple[datetime, datetime]], timedelta]  # a day's work periods (UTC) and their total


class CalendarError(ValueError):
    """Bad calendar data: names the file and line (or the setting) and the problem."""


class TimerError(ValueError):
    """An operation that is invalid for the stage timer's current state."""


def _utc(dt: datetime, what: str = "datetime") -> datetime:
    """Return ``dt`` as a UTC instant; reject naive datetimes."""
    if dt.__class__ is datetime and dt.tzinfo is UTC:  # the common case on the hot path
        return dt
    if not isinstance(dt, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


def _check_amount(value: float, what: str) -> float:
    """Return ``value`` as a float if it is finite and non-negative."""
    amount = float(value)
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{what} must be a finite non-negative number, got {value!r}")
    return amount


@dataclass(frozen=True)
class WorkCalendar:
    """A city's work calendar: time zone, holidays, 调休 working days and daily work periods."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TZ))
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()
    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "makeup_workdays", frozenset(self.makeup_workdays))
        object.__setattr__(self, "periods", tuple((a, b) for a, b in self.periods))
        both = self.holidays & self.makeup_workdays
        if both:
            listed = ", ".join(d.isoformat() for d in sorted(both))
            raise ValueError(f"dates listed both as holiday and as make-up working day: {listed}")
        if not self.periods:
            raise ValueError("a work calendar needs at least one work period")
        previous_end: time | None = None
        for a, b in self.periods:
            if a.tzinfo is not None or b.tzinfo is not None:
                raise ValueError("work periods are local wall-clock times: give them without tzinfo")
            if not a < b:
                raise ValueError(f"work period {a}–{b} must start before it ends (same day)")
            if previous_end is not None and a < previous_end:
                raise ValueError(f"work periods must be sorted and must not overlap (at {a})")
            previous_end = b
        per_day = sum(
            (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
            for a, b in self.periods
        )
        object.__setattr__(self, "_per_day", per_day)
        # memo: local date -> (its work periods as UTC instants, their total length)
        object.__setattr__(self, "_day_cache", {})
        # memo: (value, unit) of a limit -> its length: a timedelta (wall-clock units) or working seconds
        object.__setattr__(self, "_steps", {})

    @property
    def working_seconds_per_day(self) -> float:
        """Nominal working seconds in one working day (the length of 1 工作日)."""
        return self._per_day  # type: ignore[attr-defined]

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` (a local date) is a working day."""
        if d in self.makeup_workdays:
            return True
        if d in self.holidays:
            return False
        return d.weekday() < 5

    def _periods_on(self, d: date) -> list[tuple[datetime, datetime]]:
        """The work periods of local date ``d`` as UTC instants (none on rest days; memoised)."""
        return self._day(d)[0]

    def _day(self, d: date) -> _Day:
        """The work periods of local date ``d`` as UTC instants and their total length (memoised)."""
        cache: dict[date, _Day] = self._day_cache  # type: ignore[attr-defined]
        found = cache.get(d)
        if found is None:
            periods = self._compute_periods(d)
            found = cache[d] = (periods, sum((pe - ps for ps, pe in periods), timedelta(0)))
        return found

    def _compute_periods(self, d: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(d):
            return []
        return [
            (
                datetime.combine(d, a, tzinfo=self.tz).astimezone(UTC),
                datetime.combine(d, b, tzinfo=self.tz).astimezone(UTC),
            )
            for a, b in self.periods
        ]

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of working time between two instants (negative when ``end`` precedes ``start``)."""
        s, e = _utc(start, "start"), _utc(end, "end")
        if e < s:
            return -self.working_seconds(end, start)
        total = timedelta(0)
        day = s.astimezone(self.tz).date()
        last = e.astimezone(self.tz).date()
        while day <= last:
            periods, length = self._day(day)
            if periods:
                if s <= periods[0][0] and periods[-1][1] <= e:  # the whole working day lies inside
                    total += length
                else:
                    for ps, pe in periods:
                        lo, hi = max(ps, s), min(pe, e)
                        if hi > lo:
                            total += hi - lo
            day += _ONE_DAY
        return total.total_seconds()

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant at which ``seconds`` of working time have elapsed since ``start``."""
        s = _utc(start, "start")
        left = timedelta(seconds=_check_amount(seconds, "working seconds"))
        if not left:
            return s.astimezone(self.tz)
        day = s.astimezone(self.tz).date()
        idle = 0
        while True:
            periods, length = self._day(day)
            idle = 0 if periods else idle + 1
            if idle > _MAX_IDLE_DAYS:
                raise CalendarError(f"no working day in the year before {day}: check the holiday data")
            if periods and s <= periods[0][0] and left > length:  # the whole working day is used up
                left -= length
                day += _ONE_DAY
                continue
            for ps, pe in periods:
                lo = max(ps, s)
                if pe <= lo:
                    continue
                if left <= pe - lo:
                    return (lo + left).astimezone(self.tz)
                left -= pe - lo
            day += _ONE_DAY

    def _unit_seconds(self, unit: LimitUnit) -> float:
        """Seconds (wall-clock or working) in one ``unit``."""
        if unit is LimitUnit.NATURAL_DAYS:
            return _DAY
        if unit is LimitUnit.WORK_DAYS:
            return self.working_seconds_per_day
        return _HOUR

    def _advance(self, start: datetime, amount: float, unit: LimitUnit) -> datetime:
        """The instant at which ``amount`` of ``unit`` has been used since ``start``."""
        return self._advance_by(start, self._step(amount, unit))

    def _step(self, amount: float, unit: LimitUnit) -> timedelta | float:
        """``amount`` of ``unit`` as a wall-clock timedelta, or as working seconds (float)."""
        seconds = _check_amount(amount, "time limit") * self._unit_seconds(unit)
        if unit is LimitUnit.URGENT_HOURS or unit is LimitUnit.NATURAL_DAYS:
            return timedelta(seconds=seconds)
        return seconds

    def _advance_by(self, start: datetime, step: timedelta | float) -> datetime:
        if isinstance(step, timedelta):
            return (_utc(start, "start") + step).astimezone(self.tz)
        return self.add_working_seconds(start, step)

    def deadline(self, start: datetime, limit: TimeLimit) -> datetime:
        """The instant at which ``limit`` started at ``start`` runs out."""
        steps: dict[tuple[float, LimitUnit], timedelta | float] = self._steps  # type: ignore[attr-defined]
        key = (limit.value, limit.unit)
        step = steps.get(key)
        if step is None:
            step = self._step(limit.value, limit.unit)
            if len(steps) >= _MAX_STEPS:  # limits are few; extensions are typed in, so keep it bounded
                steps.clear()
            steps[key] = step
        return self._advance_by(start, step)

    def used(self, start: datetime, end: datetime, unit: LimitUnit) -> float:
        """Amount of ``unit`` consumed between two instants (negative when ``end`` precedes ``start``)."""
        unit = LimitUnit(unit)
        if unit in (LimitUnit.URGENT_HOURS, LimitUnit.NATURAL_DAYS):
            seconds = (_utc(end, "end") - _utc(start, "start")).total_seconds()
        else:
            seconds = self.working_seconds(start, end)
        return seconds / self._unit_seconds(unit)


def load_calendar(path: Path | None = None, tz: str = DEFAULT_TZ) -> WorkCalendar:
    """Read a ``date,kind,name`` holiday CSV (default: the shipped mainland-China one) into a calendar."""
    source = Path(path) if path is not None else HOLIDAYS_CSV
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"unknown time zone {tz!r} for work calendar {source}") from exc
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CalendarError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise CalendarError(f"{source}: cannot read holiday calendar: {exc.strerror or exc}") from exc

    holidays: set[date] = set()
    workdays: set[date] = set()
    seen: dict[date, int] = {}
    header = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue

        def bad(problem: str, lineno: int = lineno) -> CalendarError:
            return CalendarError(f"{source}, line {lineno}: {problem}")

        cells = [cell.strip() for cell in next(csv.reader([line]))]
        if not header:
            if [cell.lower() for cell in cells] != ["date", "kind", "name"]:
                raise bad(f"expected the header 'date,kind,name', got {line.strip()!r}")
            header = True
            continue
        if len(cells) != 3:
            raise bad(f"expected 3 fields date,kind,name, got {len(cells)}: {line.strip()!r}")
        raw_date, kind, _name = cells
        if not _ISO_DATE.fullmatch(raw_date):
            raise bad(f"date {raw_date!r} is not YYYY-MM-DD")
        try:
            day = date.fromisoformat(raw_date)
        except ValueError as exc:
            raise bad(f"date {raw_date!r} is not a valid date ({exc})") from exc
        if day in seen:
            raise bad(f"{day} is already listed on line {seen[day]}")
        seen[day] = lineno
        kind = kind.lower()
        if kind == "holiday":
            holidays.add(day)
        elif kind == "workday":
            if day.weekday() < 5:
                raise bad(
                    f"{day} is a {_WEEKDAYS[day.weekday()]}: a make-up working day (workday) "
                    "must be a Saturday or Sunday"
                )
            workdays.add(day)
        else:
            raise bad(f"kind {kind!r} must be 'holiday' or 'workday'")
    if not header:
        raise CalendarError(f"{source}: empty holiday calendar (no 'date,kind,name' header)")
    return WorkCalendar(tz=zone, holidays=frozenset(holidays), makeup_workdays=frozenset(workdays))


@dataclass(frozen=True)
class StageTimer:
    """An immutable per-stage timer: limit, deadline, suspension (挂账) and end state."""

    stage: str
    limit: TimeLimit
    started_at: datetime
    deadline: datetime
    paused_since: datetime | None = None
    paused_seconds: float = 0.0
    ended_at: datetime | None = None
    extended_by: float = 0.0  # extension (延期) granted so far, in the limit's unit

    @property
    def is_paused(self) -> bool:
        """Whether the clock is stopped by a suspension (挂账), including one open at the stop."""
        return self.paused_since is not None

    @property
    def is_stopped(self) -> bool:
        """Whether the stage has ended."""
        return self.ended_at is not None

    @property
    def effective_limit(self) -> float:
        """The limit plus all extensions, in the limit's unit."""
        return self.limit.value + self.extended_by


def _fail(timer: StageTimer, action: str, problem: str) -> TimerError:
    """A TimerError naming the stage, the attempted action and the problem."""
    return TimerError(f"stage timer {timer.stage!r}: cannot {action}: {problem}")


def _check_live(timer: StageTimer, action: str, at: datetime | None = None) -> None:
    """Reject acting on a stopped timer, or at an instant before it started."""
    if timer.ended_at is not None:
        raise _fail(timer, action, f"the timer was stopped at {timer.ended_at.isoformat()}")
    if at is not None and _utc(at, "at") < _utc(timer.started_at):
        raise _fail(timer, action, f"{at.isoformat()} is before the start {timer.started_at.isoformat()}")


def _check_after_pause(timer: StageTimer, action: str, at: datetime, since: datetime) -> None:
    """Reject resuming or stopping a paused timer at an instant before its pause."""
    if _utc(at, "at") < _utc(since):
        raise _fail(timer, action, f"{at.isoformat()} is before the pause at {since.isoformat()}")


def start_timer(stage: str, limit: TimeLimit, at: datetime, cal: WorkCalendar) -> StageTimer:
    """Start a timer for ``stage`` at ``at`` with ``limit``; the deadline comes from ``cal``."""
    _utc(at, "at")
    value = float(limit.value)
    if not math.isfinite(value) or value <= 0:
        raise TimerError(f"stage timer {stage!r}: the time limit must be positive, got {limit.value!r}")
    # every field set: skips the frozen __init__ on the lifecycle's hot path
    return _new_timer(
        {
            "stage": stage,
            "limit": limit,
            "started_at": at,
            "deadline": cal.deadline(at, limit),
            "paused_since": None,
            "paused_seconds": 0.0,
            "ended_at": None,
            "extended_by": 0.0,
        }
    )


def pause(timer: StageTimer, at: datetime) -> StageTimer:
    """Suspend (挂账) the timer at ``at``: its clock stops."""
    _check_live(timer, "pause", at)
    if timer.paused_since is not None:
        raise _fail(timer, "pause", f"already paused since {timer.paused_since.isoformat()}")
    return _copy(timer, paused_since=at)


def resume(timer: StageTimer, at: datetime, cal: WorkCalendar) -> StageTimer:
    """Resume a suspended timer at ``at``; the deadline moves by the pause, measured in the limit's unit."""
    _check_live(timer, "resume", at)
    if timer.paused_since is None:
        raise _fail(timer, "resume", "it is not paused")
    _check_after_pause(timer, "resume", at, timer.paused_since)
    unit = LimitUnit(timer.limit.unit)
    # Budget left at the pause = used(paused_since, deadline); the new deadline must leave exactly
    # that from `at`. In cumulative-unit terms that is the old deadline moved by used(pause, at).
    lost = cal.used(timer.paused_since, at, unit)
    wall = (_utc(at) - _utc(timer.paused_since)).total_seconds()
    return _copy(
        timer,
        deadline=cal._advance(timer.deadline, lost, unit),
        paused_since=None,
        paused_seconds=timer.paused_seconds + wall,
    )


def extend(timer: StageTimer, extra: TimeLimit, cal: WorkCalendar) -> StageTimer:
    """Extend (延期) the timer: the deadline moves by ``extra`` measured from the current deadline."""
    _check_live(timer, "extend")
    value = float(extra.value)
    if not math.isfinite(value) or value < 0:
        raise _fail(timer, "extend", f"the extension must be a non-negative amount, got {extra.value!r}")
    new_deadline = cal.deadline(timer.deadline, extra)
    gained = cal.used(timer.deadline, new_deadline, LimitUnit(timer.limit.unit))
    return _copy(timer, deadline=new_deadline, extended_by=timer.extended_by + gained)


def _new_timer(fields: dict[str, object]) -> StageTimer:
    """A timer from a complete field dict (cheaper than the frozen ``__init__`` on the hot path)."""
    new = object.__new__(StageTimer)
    object.__setattr__(new, "__dict__", fields)
    return new


def _copy(timer: StageTimer, **changes: object) -> StageTimer:
    """A changed copy of a frozen timer (cheaper than dataclasses.replace on the hot path)."""
    return _new_timer({**timer.__dict__, **changes})


def stop(timer: StageTimer, at: datetime) -> StageTimer:
    """End the stage at ``at`` (a timer stopped while paused stays frozen at its pause)."""
    _check_live(timer, "stop", at)
    paused_seconds = timer.paused_seconds
    if timer.paused_since is not None:
        _check_after_pause(timer, "stop", at, timer.paused_since)
        paused_seconds += (_utc(at) - _utc(timer.paused_since)).total_seconds()
    return _copy(timer, ended_at=at, paused_seconds=paused_seconds)


def _frozen_at(timer: StageTimer, at: datetime) -> datetime:
    """The instant the timer's clock reads at ``at``: ``at``, or earlier if paused or stopped."""
    instant = _utc(at, "at")
    if instant < _utc(timer.started_at):
        raise _fail(timer, "query", f"{at.isoformat()} is before the start {timer.started_at.isoformat()}")
    for mark in (timer.paused_since, timer.ended_at):
        if mark is not None:
            instant = min(instant, _utc(mark))
    return instant


def remaining(timer: StageTimer, at: datetime, cal: WorkCalendar) -> timedelta:
    """Wall-clock time from ``at`` to the deadline, frozen while paused or stopped; negative when overdue."""
    return _utc(timer.deadline) - _frozen_at(timer, at)


def remaining_budget(timer: StageTimer, at: datetime, cal: WorkCalendar) -> float:
    """Budget left at ``at`` in the limit's own unit (frozen while paused; negative when overdue)."""
    return cal.used(_frozen_at(timer, at), timer.deadline, LimitUnit(timer.limit.unit))


def is_overdue(timer: StageTimer, at: datetime) -> bool:
    """Whether the timer ended after its deadline, or is still running (or paused) past it at ``at``."""
    return _frozen_at(timer, at) > _utc(timer.deadline)


def overdue_ratio(timer: StageTimer, cal: WorkCalendar) -> float:
    """超时倍数 of an ended timer: (used − limit) / limit in the limit's unit, 0 when on time."""
    if timer.ended_at is None:
        raise _fail(timer, "compute the overdue ratio", "the timer is still running (stop it first)")
    end = timer.paused_since if timer.paused_since is not None else timer.ended_at
    # used − effective limit = the amount of the unit between the deadline and the frozen end,
    # because every pause and extension moved the deadline by exactly its amount in the unit.
    over = cal.used(timer.deadline, end, LimitUnit(timer.limit.unit))
    return max(0.0, over) / timer.effective_limit


CENTRE_STAGE_LIMITS: dict[str, TimeLimit] = {
    "accept": TimeLimit(0.25, LimitUnit.URGENT_HOURS),  # 受理 15 min
    "dispatch": TimeLimit(0.25, LimitUnit.URGENT_HOURS),  # 派遣 15 min
    "verify": TimeLimit(0.5, LimitUnit.URGENT_HOURS),  # 核实 30 min
    "check": TimeLimit(0.5, LimitUnit.URGENT_HOURS),  # 核查 30 min
    "review": TimeLimit(0.5, LimitUnit.URGENT_HOURS),  # 反馈审核 (指挥中心) 30 min
    "send_check": TimeLimit(0.25, LimitUnit.URGENT_HOURS),  # 派发核查 (受理员) 15 min
    "sub_dispatch": TimeLimit(0.5, LimitUnit.URGENT_HOURS),  # 二级派遣 (街道分中心) 30 min
}
