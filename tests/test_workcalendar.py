"""Work calendar, typed time limits and stage timers: hand-computed deadlines, pauses, extensions.

Calendar facts used below (shipped holidays_cn.csv, State Council notices):
2025-11-03 is a Monday, 2025-11-07 a Friday, 11-08/11-09 the weekend.
2025 National Day: 09-28 (Sun) is a make-up working day, 10-01..10-08 are holidays, 10-09 (Thu) and
10-10 (Fri) are working days, 10-11 (Sat) is a make-up working day.
2026 New Year: 01-01..01-03 holidays, 01-04 (Sun) make-up; 2026 Spring Festival: 02-14 (Sat)
make-up, 02-15..02-23 holidays. Work periods 08:00–12:00 and 14:00–18:00 (8 h per working day).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from domain.timelimit import LimitUnit, TimeLimit
from domain.workcalendar import (
    CENTRE_STAGE_LIMITS,
    CalendarError,
    StageTimer,
    TimerError,
    WorkCalendar,
    extend,
    is_overdue,
    load_calendar,
    overdue_ratio,
    pause,
    remaining,
    remaining_budget,
    resume,
    start_timer,
    stop,
)

SH = ZoneInfo("Asia/Shanghai")
UH, WH, WD, ND = (LimitUnit.URGENT_HOURS, LimitUnit.WORK_HOURS, LimitUnit.WORK_DAYS, LimitUnit.NATURAL_DAYS)
HOUR = 3600.0


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """An aware instant in Asia/Shanghai."""
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def lim(value: float, unit: LimitUnit) -> TimeLimit:
    return TimeLimit(value, unit)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return load_calendar()


# --------------------------------------------------------------------------- calendar days


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 11, 3), True),  # ordinary Monday
        (date(2025, 11, 8), False),  # ordinary Saturday
        (date(2025, 9, 28), True),  # Sunday, 调休 make-up working day
        (date(2025, 10, 1), False),  # National Day (Wednesday)
        (date(2025, 10, 8), False),  # last day of the 8-day holiday (Wednesday)
        (date(2025, 10, 9), True),  # back to work (Thursday)
        (date(2025, 10, 11), True),  # Saturday, make-up working day
        (date(2024, 2, 9), True),  # 2024 除夕: rest only "encouraged", not a statutory holiday
        (date(2026, 2, 23), False),  # 2026 Spring Festival, Monday 初七
        (date(2026, 2, 28), True),  # Saturday, make-up working day
        (date(2030, 1, 1), True),  # a year without data: plain Monday–Friday rule (Tuesday)
    ],
)
def test_is_working_day(cal: WorkCalendar, day: date, working: bool) -> None:
    assert cal.is_working_day(day) is working


def test_shipped_calendar_counts(cal: WorkCalendar) -> None:
    # holidays: 2024 1+8+3+5+1+3+7 = 28, 2025 1+8+3+5+3+8 = 28, 2026 3+9+3+5+3+3+7 = 33 → 89
    assert len(cal.holidays) == 89
    # make-up days: 2024 2+1+2+1+2 = 8, 2025 2+1+2 = 5, 2026 1+2+1+2 = 6 → 19
    assert len(cal.makeup_workdays) == 19
    assert all(d.weekday() >= 5 for d in cal.makeup_workdays)
    assert {date(2025, 10, d) for d in range(1, 9)} <= cal.holidays
    assert cal.tz.key == "Asia/Shanghai"
    assert cal.working_seconds_per_day == 8 * HOUR


# --------------------------------------------------------------------------- deadlines

DEADLINES = [
    # --- 紧急工作时: wall clock, nights/weekends/holidays count
    ("uh-evening", at(2025, 11, 3, 17), lim(2, UH), at(2025, 11, 3, 19)),  # 17:00 + 2 h
    ("uh-night-weekend", at(2025, 11, 7, 23), lim(4, UH), at(2025, 11, 8, 3)),  # Fri 23:00 + 4 h = Sat 03:00
    ("uh-holiday", at(2025, 9, 30, 22), lim(4, UH), at(2025, 10, 1, 2)),  # into National Day
    ("uh-quarter", at(2025, 11, 3, 10), lim(0.25, UH), at(2025, 11, 3, 10, 15)),  # 0.25 h = 15 min
    # --- 自然日: value × 24 h wall clock
    ("nd-weekend", at(2025, 11, 7, 16), lim(1, ND), at(2025, 11, 8, 16)),  # Fri 16:00 + 24 h
    ("nd-holiday", at(2025, 9, 30, 10), lim(3, ND), at(2025, 10, 3, 10)),  # + 72 h
    ("nd-half", at(2025, 11, 3, 20), lim(0.5, ND), at(2025, 11, 4, 8)),  # 20:00 + 12 h
    # --- 工作时: working time only
    ("wh-lunch", at(2025, 11, 3, 10), lim(4, WH), at(2025, 11, 3, 16)),  # 10–12 (2 h) + 14–16 (2 h)
    ("wh-ends-at-noon", at(2025, 11, 3, 11), lim(1, WH), at(2025, 11, 3, 12)),  # 11–12; 12:00, not 14:00
    ("wh-start-in-lunch", at(2025, 11, 3, 12, 30), lim(1, WH), at(2025, 11, 3, 15)),  # counts from 14:00
    ("wh-start-early", at(2025, 11, 3, 6), lim(1, WH), at(2025, 11, 3, 9)),  # counts from 08:00
    ("wh-night", at(2025, 11, 3, 17), lim(2, WH), at(2025, 11, 4, 9)),  # 17–18 (1 h) + Tue 08–09 (1 h)
    ("wh-weekend", at(2025, 11, 7, 17), lim(2, WH), at(2025, 11, 10, 9)),  # Fri 17–18 + Mon 08–09
    ("wh-start-saturday", at(2025, 11, 8, 10), lim(4, WH), at(2025, 11, 10, 12)),  # Mon 08–12
    ("wh-holiday", at(2025, 9, 30, 17), lim(2, WH), at(2025, 10, 9, 9)),  # 09-30 17–18 + 10-09 08–09
    ("wh-makeup-sunday", at(2025, 9, 27, 10), lim(2, WH), at(2025, 9, 28, 10)),  # Sat rest; Sun 08–10
    ("wh-fri-to-makeup", at(2025, 9, 26, 17), lim(3, WH), at(2025, 9, 28, 10)),  # Fri 1 h + Sun 08–10
    ("wh-fraction", at(2025, 11, 3, 8), lim(4.5, WH), at(2025, 11, 3, 14, 30)),  # 08–12 (4 h) + 14–14:30
    # --- 工作日: value × 8 h of working time
    ("wd-monday", at(2025, 11, 3, 10), lim(1, WD), at(2025, 11, 4, 10)),  # 10–12, 14–18 = 6 h; Tue 08–10
    ("wd-friday", at(2025, 11, 7, 16), lim(1, WD), at(2025, 11, 10, 16)),  # Fri 2 h; Mon 08–12, 14–16
    ("wd-evening", at(2025, 11, 3, 19), lim(1, WD), at(2025, 11, 4, 18)),  # whole Tuesday
    ("wd-national-day", at(2025, 9, 30, 10), lim(1, WD), at(2025, 10, 9, 10)),  # 6 h; 10-01..08 off; 2 h
    ("wd-makeup-saturday", at(2025, 10, 10, 10), lim(1, WD), at(2025, 10, 11, 10)),  # Fri 6 h + Sat 2 h
    ("wd-five", at(2025, 11, 3, 8), lim(5, WD), at(2025, 11, 7, 18)),  # 40 h = Mon..Fri full days
    ("wd-half", at(2025, 11, 3, 10), lim(0.5, WD), at(2025, 11, 3, 16)),  # 4 h: 10–12 + 14–16
    # Fri 09-26 10:00, 2 工作日 = 16 h: Fri 6 h, Sat off, Sun (make-up) 8 h → 14 h, Mon 08–10 → 16 h
    ("wd-two-over-makeup", at(2025, 9, 26, 10), lim(2, WD), at(2025, 9, 29, 10)),
    # Wed 2025-12-31 14:00: 14–18 = 4 h; 2026-01-01..03 off; Sun 01-04 (make-up) 08–12 = 4 h
    ("wd-new-year-2026", at(2025, 12, 31, 14), lim(1, WD), at(2026, 1, 4, 12)),
    # Fri 2026-02-13 10:00: 6 h; Sat 02-14 (make-up) 08–10 = 2 h
    ("wd-spring-2026", at(2026, 2, 13, 10), lim(1, WD), at(2026, 2, 14, 10)),
]


@pytest.mark.parametrize(
    ("start", "limit", "expected"), [d[1:] for d in DEADLINES], ids=[d[0] for d in DEADLINES]
)
def test_deadline(cal: WorkCalendar, start: datetime, limit: TimeLimit, expected: datetime) -> None:
    got = cal.deadline(start, limit)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() == timedelta(hours=8)
    # and the budget used between start and deadline is the limit, in its own unit
    assert cal.used(start, got, limit.unit) == pytest.approx(limit.value)


def test_deadline_from_other_zone_is_returned_in_calendar_zone(cal: WorkCalendar) -> None:
    start = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)  # = Mon 10:00 in Shanghai (UTC+8)
    got = cal.deadline(start, lim(4, WH))  # 10–12 + 14–16 → 16:00 Shanghai = 08:00 UTC
    assert got == datetime(2025, 11, 3, 8, 0, tzinfo=UTC)
    assert got.tzinfo == SH


# --------------------------------------------------------------------------- working time


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        (at(2025, 11, 3, 9), at(2025, 11, 3, 15), 4 * HOUR),  # 09–12 (3 h) + 14–15 (1 h)
        (at(2025, 11, 3, 12), at(2025, 11, 3, 14), 0.0),  # lunch break only
        (at(2025, 11, 7, 17), at(2025, 11, 10, 9), 2 * HOUR),  # Fri 17–18 + Mon 08–09
        (at(2025, 9, 30), at(2025, 10, 9), 8 * HOUR),  # only 09-30 works; 10-01..08 holidays
        (at(2025, 9, 27), at(2025, 9, 29), 8 * HOUR),  # Sat off, Sun 09-28 make-up: 8 h
        (at(2025, 11, 3), at(2025, 11, 10), 40 * HOUR),  # one plain week: 5 × 8 h
        (at(2025, 11, 3, 15), at(2025, 11, 3, 9), -4 * HOUR),  # reversed: negative
        (at(2025, 11, 3, 10), at(2025, 11, 3, 10), 0.0),
    ],
)
def test_working_seconds(cal: WorkCalendar, start: datetime, end: datetime, seconds: float) -> None:
    assert cal.working_seconds(start, end) == seconds


@pytest.mark.parametrize(
    ("unit", "amount"),
    [
        (WH, 2.0),  # Fri 17–18 + Mon 08–09
        (WD, 0.25),  # 2 h / 8 h
        (UH, 64.0),  # Fri 17:00 → midnight 7 h + Sat, Sun 48 h + 9 h
        (ND, 64.0 / 24.0),
    ],
)
def test_used_per_unit(cal: WorkCalendar, unit: LimitUnit, amount: float) -> None:
    assert cal.used(at(2025, 11, 7, 17), at(2025, 11, 10, 9), unit) == pytest.approx(amount)


def test_add_working_seconds_zero_and_negative(cal: WorkCalendar) -> None:
    assert cal.add_working_seconds(at(2025, 11, 8, 10), 0) == at(2025, 11, 8, 10)
    with pytest.raises(ValueError, match="non-negative"):
        cal.add_working_seconds(at(2025, 11, 3, 10), -1.0)


def test_working_seconds_inverts_add_working_seconds(cal: WorkCalendar) -> None:
    """Seeded property check on random instants 2024–2026 (sub-second starts, fractional amounts)."""
    rng = random.Random(20251127)
    lo = at(2024, 1, 1).timestamp()
    hi = at(2026, 12, 1).timestamp()
    tiny = timedelta(milliseconds=1)
    for _ in range(300):
        start = datetime.fromtimestamp(rng.uniform(lo, hi), tz=SH)
        seconds = rng.choice([rng.uniform(0, 15 * 8 * HOUR), rng.randint(0, 40) * 1800.0])
        end = cal.add_working_seconds(start, seconds)
        assert end >= start
        assert cal.working_seconds(start, end) == pytest.approx(seconds, abs=1e-5)
        if seconds > 0:  # earliest such instant: a millisecond earlier is not enough
            assert cal.working_seconds(start, end - tiny) < seconds
        # the other direction: from any pair of instants back to the first one reached
        other = start + timedelta(seconds=rng.uniform(0, 20 * 86400))
        used = cal.working_seconds(start, other)
        back = cal.add_working_seconds(start, used)
        assert back <= other
        assert cal.working_seconds(back, other) == pytest.approx(0.0, abs=1e-5)


# --------------------------------------------------------------------------- other calendars


def test_custom_periods_define_the_working_day() -> None:
    cal = WorkCalendar(periods=((time(8, 30), time(12)), (time(13, 30), time(17, 30))))
    assert cal.working_seconds_per_day == 7.5 * HOUR  # 3.5 h + 4 h
    # 1 工作日 = 7.5 h from Mon 08:30: 08:30–12:00 (3.5 h) + 13:30–17:30 (4 h)
    assert cal.deadline(at(2025, 11, 3, 8, 30), lim(1, WD)) == at(2025, 11, 3, 17, 30)
    # no holiday data: 2025-10-01 is an ordinary Wednesday here
    assert cal.is_working_day(date(2025, 10, 1))


def test_zone_with_daylight_saving_uses_elapsed_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    cal = WorkCalendar(tz=berlin)
    # Sat 2025-03-29 22:00 CET (UTC+1) = 21:00 UTC; + 6 h = 03:00 UTC = Sun 05:00 CEST (UTC+2)
    got = cal.deadline(datetime(2025, 3, 29, 22, tzinfo=berlin), lim(6, UH))
    assert got == datetime(2025, 3, 30, 3, tzinfo=UTC)
    assert (got.hour, got.utcoffset()) == (5, timedelta(hours=2))
    # 1 自然日 = 24 elapsed hours: Sat 12:00 CET → Sun 13:00 CEST
    assert cal.deadline(datetime(2025, 3, 29, 12, tzinfo=berlin), lim(1, ND)).hour == 13
    # working time across the switch: Fri 17–18 CET + Mon 08–09 CEST = 2 h
    start, end = datetime(2025, 3, 28, 17, tzinfo=berlin), datetime(2025, 3, 31, 9, tzinfo=berlin)
    assert cal.working_seconds(start, end) == 2 * HOUR


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"holidays": frozenset({date(2025, 9, 28)}), "makeup_workdays": frozenset({date(2025, 9, 28)})},
            "both",
        ),
        ({"periods": ((time(14), time(12)),)}, "start before it ends"),
        ({"periods": ((time(8), time(12)), (time(11), time(18)))}, "overlap"),
        ({"periods": ()}, "at least one"),
    ],
)
def test_invalid_calendar(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkCalendar(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- naive datetimes


def test_naive_datetimes_rejected(cal: WorkCalendar) -> None:
    naive = datetime(2025, 11, 3, 10)
    aware = at(2025, 11, 3, 10)
    calls = [
        lambda: cal.deadline(naive, lim(1, WH)),
        lambda: cal.deadline(naive, lim(1, UH)),
        lambda: cal.working_seconds(naive, aware),
        lambda: cal.working_seconds(aware, naive),
        lambda: cal.add_working_seconds(naive, 60),
        lambda: cal.used(aware, naive, ND),
        lambda: start_timer("dispatch", lim(1, WH), naive, cal),
        lambda: pause(start_timer("dispatch", lim(1, WH), aware, cal), naive),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="naive"):
            call()


# --------------------------------------------------------------------------- suspension (挂账)


def test_pause_over_weekend_work_hours_loses_no_working_time(cal: WorkCalendar) -> None:
    # 8 工作时 from Fri 10:00: Fri 10–12 + 14–18 = 6 h, Mon 08–10 = 2 h → Mon 10:00
    t = start_timer("handle", lim(8, WH), at(2025, 11, 7, 10), cal)
    assert t.deadline == at(2025, 11, 10, 10)
    # paused Fri 16:00 after 2 + 2 = 4 h used → 4 h left; resumed Mon 08:00 → 08–12 → Mon 12:00
    t = pause(t, at(2025, 11, 7, 16))
    assert t.is_paused
    t = resume(t, at(2025, 11, 10, 8), cal)
    assert t.deadline == at(2025, 11, 10, 12)
    assert not t.is_paused
    # wall-clock pause Fri 16:00 → Mon 08:00 = 8 h + 48 h + 8 h = 64 h
    assert t.paused_seconds == 64 * HOUR


def test_pause_over_weekend_urgent_hours_loses_the_wall_clock_pause(cal: WorkCalendar) -> None:
    # 8 紧急工作时 from Fri 10:00 → Fri 18:00; paused at 16:00 (2 h left), resumed Mon 08:00 → Mon 10:00
    t = start_timer("handle", lim(8, UH), at(2025, 11, 7, 10), cal)
    assert t.deadline == at(2025, 11, 7, 18)
    t = resume(pause(t, at(2025, 11, 7, 16)), at(2025, 11, 10, 8), cal)
    assert t.deadline == at(2025, 11, 10, 10)  # Fri 18:00 + 64 h pause


def test_pause_in_non_working_time_keeps_work_hours_deadline(cal: WorkCalendar) -> None:
    # 2 工作时 from Fri 17:00 → Mon 09:00; a pause Sat 10:00 → Sun 20:00 costs no working time
    t = start_timer("handle", lim(2, WH), at(2025, 11, 7, 17), cal)
    t = resume(pause(t, at(2025, 11, 8, 10)), at(2025, 11, 9, 20), cal)
    assert t.deadline == at(2025, 11, 10, 9)


def test_pause_over_national_day_work_days(cal: WorkCalendar) -> None:
    # 2 工作日 = 16 h from Mon 09-29 10:00: Mon 6 h, Tue 8 h (14 h), Thu 10-09 08–10 → 10-09 10:00
    t = start_timer("handle", lim(2, WD), at(2025, 9, 29, 10), cal)
    assert t.deadline == at(2025, 10, 9, 10)
    # paused Tue 09-30 12:00: used 6 + 4 = 10 h, 6 h left; resumed 10-09 08:00 → 08–12, 14–16 → 16:00
    t = resume(pause(t, at(2025, 9, 30, 12)), at(2025, 10, 9, 8), cal)
    assert t.deadline == at(2025, 10, 9, 16)


def test_pause_natural_days(cal: WorkCalendar) -> None:
    # 1 自然日 from Mon 10:00 → Tue 10:00; paused 12:00–15:00 (3 h) → Tue 13:00
    t = start_timer("handle", lim(1, ND), at(2025, 11, 3, 10), cal)
    t = resume(pause(t, at(2025, 11, 3, 12)), at(2025, 11, 3, 15), cal)
    assert t.deadline == at(2025, 11, 4, 13)


def test_pause_when_already_overdue(cal: WorkCalendar) -> None:
    # 1 工作时 from Mon 10:00 → 11:00; paused 11:30 (0.5 h over), resumed 15:00 → still 0.5 h over
    t = start_timer("handle", lim(1, WH), at(2025, 11, 3, 10), cal)
    t = resume(pause(t, at(2025, 11, 3, 11, 30)), at(2025, 11, 3, 15), cal)
    # pause used 11:30–12 + 14–15 = 1.5 h of working time: 11:00 + 1.5 h → 11–12, 14–14:30
    assert t.deadline == at(2025, 11, 3, 14, 30)
    assert remaining_budget(t, at(2025, 11, 3, 15), cal) == pytest.approx(-0.5)


# --------------------------------------------------------------------------- extension (延期)


def test_extend_work_hours_by_work_day(cal: WorkCalendar) -> None:
    # 4 工作时 from Mon 10:00 → Mon 16:00; + 1 工作日 (8 h): Mon 16–18, Tue 08–12, 14–16 → Tue 16:00
    t = start_timer("handle", lim(4, WH), at(2025, 11, 3, 10), cal)
    t = extend(t, lim(1, WD), cal)
    assert t.deadline == at(2025, 11, 4, 16)
    assert t.extended_by == pytest.approx(8.0)  # in 工作时
    assert t.effective_limit == pytest.approx(12.0)


def test_extend_in_other_unit(cal: WorkCalendar) -> None:
    # 3 工作时 from Fri 13:00 (lunch, counts from 14:00) → Fri 17:00; + 2 紧急工作时 → Fri 19:00
    t = start_timer("handle", lim(3, WH), at(2025, 11, 7, 13), cal)
    assert t.deadline == at(2025, 11, 7, 17)
    t = extend(t, lim(2, UH), cal)
    assert t.deadline == at(2025, 11, 7, 19)
    assert t.extended_by == pytest.approx(1.0)  # only 17–18 is working time


def test_extend_while_paused_then_resume(cal: WorkCalendar) -> None:
    # 4 工作时 from Mon 10:00 → 16:00; paused 11:00 (3 h left); + 2 工作时 → 5 h left
    t = start_timer("handle", lim(4, WH), at(2025, 11, 3, 10), cal)
    t = extend(pause(t, at(2025, 11, 3, 11)), lim(2, WH), cal)
    assert t.deadline == at(2025, 11, 3, 18)  # 16:00 + 2 h: 16–18 → Mon 18:00 (earliest instant)
    # resumed Tue 08:00 with 5 h left → 08–12 (4 h) + 14–15 → Tue 15:00
    t = resume(t, at(2025, 11, 4, 8), cal)
    assert t.deadline == at(2025, 11, 4, 15)


# --------------------------------------------------------------------------- remaining / overdue


@pytest.fixture
def four_hours(cal: WorkCalendar) -> StageTimer:
    """4 工作时 started Mon 2025-11-03 10:00 → deadline Mon 16:00 (10–12 + 14–16)."""
    t = start_timer("handle", lim(4, WH), at(2025, 11, 3, 10), cal)
    assert t.deadline == at(2025, 11, 3, 16)
    return t


@pytest.mark.parametrize(
    ("when", "left", "budget", "overdue"),
    [
        (at(2025, 11, 3, 10), timedelta(hours=6), 4.0, False),
        (at(2025, 11, 3, 11), timedelta(hours=5), 3.0, False),  # 11–12 + 14–16
        (at(2025, 11, 3, 15, 30), timedelta(minutes=30), 0.5, False),
        (at(2025, 11, 3, 16), timedelta(0), 0.0, False),  # at the deadline: not yet overdue
        (at(2025, 11, 3, 17), timedelta(hours=-1), -1.0, True),
        (at(2025, 11, 4, 9), timedelta(hours=-17), -3.0, True),  # Mon 16–18 + Tue 08–09 = 3 h over
    ],
)
def test_remaining_and_overdue_running(
    cal: WorkCalendar, four_hours: StageTimer, when: datetime, left: timedelta, budget: float, overdue: bool
) -> None:
    assert remaining(four_hours, when, cal) == left
    assert remaining_budget(four_hours, when, cal) == pytest.approx(budget)
    assert is_overdue(four_hours, when) is overdue


def test_remaining_frozen_while_paused(cal: WorkCalendar, four_hours: StageTimer) -> None:
    t = pause(four_hours, at(2025, 11, 3, 15))  # 1 h to the 16:00 deadline
    for when in (at(2025, 11, 3, 15), at(2025, 11, 3, 17), at(2025, 11, 5, 9)):
        assert remaining(t, when, cal) == timedelta(hours=1)
        assert remaining_budget(t, when, cal) == pytest.approx(1.0)
        assert not is_overdue(t, when)
    # before the pause the clock was still running
    assert remaining(t, at(2025, 11, 3, 14), cal) == timedelta(hours=2)


def test_stopped_timer_freezes(cal: WorkCalendar, four_hours: StageTimer) -> None:
    late = stop(four_hours, at(2025, 11, 3, 17))
    assert late.is_stopped
    assert is_overdue(late, at(2025, 11, 10, 9))
    assert remaining(late, at(2025, 11, 10, 9), cal) == timedelta(hours=-1)
    early = stop(four_hours, at(2025, 11, 3, 15))
    assert not is_overdue(early, at(2025, 11, 10, 9))


def test_query_before_start_rejected(cal: WorkCalendar, four_hours: StageTimer) -> None:
    with pytest.raises(TimerError, match="before the start"):
        remaining(four_hours, at(2025, 11, 3, 9), cal)


# --------------------------------------------------------------------------- 超时倍数


@pytest.mark.parametrize(
    ("limit", "start", "end", "ratio"),
    [
        (lim(4, WH), at(2025, 11, 3, 10), at(2025, 11, 3, 15), 0.0),  # on time
        (lim(4, WH), at(2025, 11, 3, 10), at(2025, 11, 3, 16), 0.0),  # exactly at the deadline
        (lim(4, WH), at(2025, 11, 3, 10), at(2025, 11, 4, 9), 0.75),  # used 2 + 4 + 1 = 7 h: (7−4)/4
        (lim(4, WH), at(2025, 11, 3, 10), at(2025, 11, 4, 10), 1.0),  # used 8 h: (8−4)/4
        # 1 工作日 from Fri 16:00, closed Tue 12:00: Fri 2 h + Mon 8 h + Tue 4 h = 14 h = 1.75 d
        (lim(1, WD), at(2025, 11, 7, 16), at(2025, 11, 11, 12), 0.75),
        (lim(2, UH), at(2025, 11, 3, 10), at(2025, 11, 3, 13), 0.5),  # 3 h wall: (3−2)/2
        (lim(1, ND), at(2025, 11, 3, 10), at(2025, 11, 5, 10), 1.0),  # 2 days: (2−1)/1
    ],
)
def test_overdue_ratio(
    cal: WorkCalendar, limit: TimeLimit, start: datetime, end: datetime, ratio: float
) -> None:
    t = stop(start_timer("handle", limit, start, cal), end)
    assert overdue_ratio(t, cal) == pytest.approx(ratio)
    assert is_overdue(t, end) is (ratio > 0)


def test_overdue_ratio_with_pause(cal: WorkCalendar) -> None:
    # 8 工作时 from Fri 10:00, paused Fri 16:00–Mon 08:00 → deadline Mon 12:00 (see above)
    t = start_timer("handle", lim(8, WH), at(2025, 11, 7, 10), cal)
    t = resume(pause(t, at(2025, 11, 7, 16)), at(2025, 11, 10, 8), cal)
    # closed Mon 16:00: used Fri 2 + 2, Mon 08–12 4, 14–16 2 = 10 h → (10−8)/8
    assert overdue_ratio(stop(t, at(2025, 11, 10, 16)), cal) == pytest.approx(0.25)


def test_overdue_ratio_with_extension(cal: WorkCalendar, four_hours: StageTimer) -> None:
    # 4 工作时 + 1 工作日 → effective 12 h, deadline Tue 16:00; closed Wed 10:00:
    # used Mon 2 + 4, Tue 8, Wed 08–10 2 = 16 h → (16−12)/12
    t = stop(extend(four_hours, lim(1, WD), cal), at(2025, 11, 5, 10))
    assert overdue_ratio(t, cal) == pytest.approx(1 / 3)
    assert is_overdue(t, at(2025, 11, 5, 10))


def test_stop_while_paused(cal: WorkCalendar) -> None:
    # 8 工作时 from Fri 10:00 (deadline Mon 10:00), paused Fri 16:00 with 4 h used, closed Mon 09:00
    t = pause(start_timer("handle", lim(8, WH), at(2025, 11, 7, 10), cal), at(2025, 11, 7, 16))
    t = stop(t, at(2025, 11, 10, 9))
    assert overdue_ratio(t, cal) == 0.0
    assert not is_overdue(t, at(2025, 11, 12, 9))
    assert t.paused_seconds == 65 * HOUR  # Fri 16:00 → Mon 09:00 = 8 + 48 + 9 h


def test_closed_over_weekend_is_overdue_but_used_no_extra_working_time(cal: WorkCalendar) -> None:
    # 2 工作时 from Fri 16:00 → Fri 18:00; closed Sat 10:00: past the deadline, 0 extra working hours
    t = stop(start_timer("handle", lim(2, WH), at(2025, 11, 7, 16), cal), at(2025, 11, 8, 10))
    assert is_overdue(t, at(2025, 11, 8, 10))
    assert overdue_ratio(t, cal) == 0.0


def test_overdue_ratio_needs_a_stopped_timer(cal: WorkCalendar, four_hours: StageTimer) -> None:
    with pytest.raises(TimerError, match="still running"):
        overdue_ratio(four_hours, cal)


# --------------------------------------------------------------------------- invalid operations


def test_invalid_timer_operations(cal: WorkCalendar, four_hours: StageTimer) -> None:
    paused = pause(four_hours, at(2025, 11, 3, 11))
    stopped = stop(four_hours, at(2025, 11, 3, 12))
    cases = [
        (lambda: pause(paused, at(2025, 11, 3, 12)), "already paused"),
        (lambda: resume(four_hours, at(2025, 11, 3, 12), cal), "not paused"),
        (lambda: pause(four_hours, at(2025, 11, 3, 9)), "before the start"),
        (lambda: stop(four_hours, at(2025, 11, 3, 9)), "before the start"),
        (lambda: resume(paused, at(2025, 11, 3, 10, 30), cal), "before the pause"),
        (lambda: stop(paused, at(2025, 11, 3, 10, 30)), "before the pause"),
        (lambda: pause(stopped, at(2025, 11, 3, 13)), "stopped"),
        (lambda: resume(stopped, at(2025, 11, 3, 13), cal), "stopped"),
        (lambda: stop(stopped, at(2025, 11, 3, 13)), "stopped"),
        (lambda: extend(stopped, lim(1, WH), cal), "stopped"),
    ]
    for call, message in cases:
        with pytest.raises(TimerError, match=message) as info:
            call()
        assert "'handle'" in str(info.value)  # the stage is named


def test_operations_return_new_timers(cal: WorkCalendar, four_hours: StageTimer) -> None:
    paused = pause(four_hours, at(2025, 11, 3, 11))
    assert four_hours.paused_since is None and paused is not four_hours
    with pytest.raises(AttributeError):
        four_hours.deadline = at(2025, 11, 4)  # type: ignore[misc]


# --------------------------------------------------------------------------- centre stage limits


@pytest.mark.parametrize(
    ("stage", "minutes"), [("accept", 15), ("dispatch", 15), ("verify", 30), ("check", 30)]
)
def test_centre_stage_limits_are_wall_clock_minutes(cal: WorkCalendar, stage: str, minutes: int) -> None:
    limit = CENTRE_STAGE_LIMITS[stage]
    assert limit.unit is UH
    # at 03:00 on a Saturday during National Day the centre clock still runs
    t = start_timer(stage, limit, at(2025, 10, 4, 3), cal)
    assert t.deadline == at(2025, 10, 4, 3, minutes)


# --------------------------------------------------------------------------- CSV loading


def test_load_calendar_accepts_bom_comments_and_zone(tmp_path: Path) -> None:
    p = tmp_path / "city.csv"
    text = "\ufeff# local calendar\n\nDate,Kind,Name\n2030-01-02,holiday,城市日\n2030-01-05,workday,\n"
    p.write_text(text, encoding="utf-8")
    cal = load_calendar(p, tz="Asia/Urumqi")
    assert cal.holidays == frozenset({date(2030, 1, 2)})
    assert cal.makeup_workdays == frozenset({date(2030, 1, 5)})  # a Saturday
    assert cal.tz.key == "Asia/Urumqi"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("date,kind,name\n2025-13-01,holiday,x\n", 2, "not a valid date"),
        ("date,kind,name\n2025/10/01,holiday,x\n", 2, "YYYY-MM-DD"),
        ("date,kind,name\n2025-10-01,vacation,x\n", 2, "'holiday' or 'workday'"),
        ("date,kind,name\n2025-10-01,holiday\n", 2, "3 fields"),
        ("date,kind,name\n2025-10-01,holiday,a,b\n", 2, "3 fields"),
        ("date,kind,name\n2025-10-01,holiday,a\n\n2025-10-01,workday,b\n", 4, "already listed on line 2"),
        ("date,kind,name\n2025-10-09,workday,x\n", 2, "Thursday"),
        ("day,type\n2025-10-01,holiday\n", 1, "header"),
        ("# c\n\ndate,kind,name\n2025-10-01,holiday,国庆节\n2025-10-0x,holiday,x\n", 5, "YYYY-MM-DD"),
    ],
)
def test_bad_csv_rows_are_named(tmp_path: Path, text: str, line: int, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError, match=message) as info:
        load_calendar(p)
    assert str(p) in str(info.value)
    assert f"line {line}:" in str(info.value)


def test_bad_calendar_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(CalendarError, match="empty"):
        load_calendar(empty)
    missing = tmp_path / "missing.csv"
    with pytest.raises(CalendarError, match=r"missing\.csv"):
        load_calendar(missing)
    with pytest.raises(CalendarError, match="unknown time zone"):
        load_calendar(tz="Mars/Olympus")
