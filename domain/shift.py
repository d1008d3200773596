"""Shifts (班次) of the command centre and the shift an instant falls in (pure).

A centre works round the clock in shifts given as local times, e.g. ``08:00-16:00,16:00-24:00,00:00-08:00``
(the default). At each change the outgoing shift leader hands over (交班) and the incoming one
acknowledges it (接班). The shifts must tile the day: each starts where another ends, no gap, no
overlap, at most 12 of them. A shift may run over midnight (``22:00-06:00``); ``24:00`` is midnight at
the end of a day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

DEFAULT_SHIFTS = "08:00-16:00,16:00-24:00,00:00-08:00"
MAX_SHIFTS = 12
_DAY_MIN = 24 * 60
_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


class ShiftError(ValueError):
    """A shift plan that does not tile the day (the message says why)."""


@dataclass(frozen=True)
class Shift:
    """One shift of the day: its local start and end in minutes after midnight (end may be 1440)."""

    start_min: int
    end_min: int

    @property
    def minutes(self) -> int:
        """How long the shift lasts."""
        return (self.end_min - self.start_min) % _DAY_MIN or _DAY_MIN

    @property
    def label(self) -> str:
        """``HH:MM–HH:MM`` in local time."""
        return f"{_hhmm(self.start_min)}–{_hhmm(self.end_min)}"


@dataclass(frozen=True)
class ShiftSpan:
    """One shift on one day: its instants (UTC), the shift and the local day it starts on."""

    start: datetime
    end: datetime
    shift: Shift
    day: date

    @property
    def label(self) -> str:
        """``YYYY-MM-DD HH:MM–HH:MM`` (the local day the shift starts on)."""
        return f"{self.day.isoformat()} {self.shift.label}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str, what: str) -> int:
    m = _HHMM.match(text)
    if m is None:
        raise ShiftError(f"{what} {text!r}: write HH:MM")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and mi):
        raise ShiftError(f"{what} {text!r}: no such time of day")
    return h * 60 + mi


def parse_shifts(text: str) -> tuple[Shift, ...]:
    """Shifts from ``HH:MM-HH:MM,…`` that tile the day (ShiftError otherwise), in order of start."""
    parts = [p for p in (text or "").split(",") if p.strip()]
    if not parts:
        raise ShiftError("no shift given")
    if len(parts) > MAX_SHIFTS:
        raise ShiftError(f"{len(parts)} shifts: at most {MAX_SHIFTS}")
    shifts = []
    for p in parts:
        a, sep, b = p.partition("-")
        if not sep:
            raise ShiftError(f"shift {p.strip()!r}: write start-end, e.g. 08:00-16:00")
        start, end = _minutes(a, "start"), _minutes(b, "end")
        if start == _DAY_MIN:
            start = 0
        if start == end % _DAY_MIN and len(parts) > 1:
            raise ShiftError(f"shift {p.strip()!r} lasts a whole day beside other shifts")
        shifts.append(Shift(start, end))
    if sum(s.minutes for s in shifts) != _DAY_MIN:
        raise ShiftError(f"the shifts last {sum(s.minutes for s in shifts)} minutes, not a day (1440)")
    starts = {s.start_min for s in shifts}
    if len(starts) != len(shifts):
        raise ShiftError("two shifts start at the same time")
    for s in shifts:
        if s.end_min % _DAY_MIN not in starts:
            raise ShiftError(f"no shift starts when {s.label} ends: a gap or an overlap")
    return tuple(sorted(shifts, key=lambda s: s.start_min))


def shift_of(at: datetime, shifts: tuple[Shift, ...], tz: tzinfo) -> ShiftSpan:
    """The shift ``at`` (aware) falls in: the one that started last at or before it, in local time."""
    if at.tzinfo is None:
        raise ValueError("shift_of needs an aware instant")
    local = at.astimezone(tz)
    minute = local.hour * 60 + local.minute
    best: tuple[int, Shift] | None = None
    for s in shifts:  # minutes since the shift's start, going back over midnight when needed
        since = (minute - s.start_min) % _DAY_MIN
        if since < s.minutes and (best is None or since < best[0]):
            best = (since, s)
    if best is None:  # a plan that does not tile the day (parse_shifts refuses those)
        raise ShiftError("no shift covers this instant")
    shift = best[1]
    day = local.date() if minute >= shift.start_min else local.date() - timedelta(days=1)
    start = _wall(day, shift.start_min, tz)
    end = _wall(day, shift.start_min + shift.minutes, tz)
    return ShiftSpan(start.astimezone(UTC), end.astimezone(UTC), shift, day)


def _wall(day: date, minutes: int, tz: tzinfo) -> datetime:
    """The instant of local ``day`` + ``minutes`` (minutes may pass midnight)."""
    d = day + timedelta(days=minutes // _DAY_MIN)
    m = minutes % _DAY_MIN
    return datetime.combine(d, time(m // 60, m % 60), tz)


def previous(span: ShiftSpan, shifts: tuple[Shift, ...], tz: tzinfo) -> ShiftSpan:
    """The shift before ``span`` (the one holding the instant just before its start)."""
    return shift_of(span.start - timedelta(seconds=1), shifts, tz)
