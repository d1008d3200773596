"""Blind spots (issue 21 part 1): the 漏报 rule, the expected problems and the score's ranking."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.blindspots import (
    OTHER,
    PATROL,
    PUBLIC,
    BlindSpotRefusal,
    Report,
    blind_spots,
    expected_problems,
    fewest_minutes,
    missed_reports,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, tzinfo=TZ)  # a Monday, 09:00
LON, LAT = 116.40, 39.91
M_LAT = 1.0 / (math.radians(1.0) * 6_371_008.8)  # degrees of latitude per metre


def rep(id_: str, finder: str, at: datetime, north_m: float = 0.0, cls: str = "event:0102",
        grid: str = "110101001001001") -> Report:  # fmt: skip
    """A report ``north_m`` metres north of the reference point."""
    return Report(id_, grid, finder, cls, LON, LAT + north_m * M_LAT, at)


def test_a_public_report_is_a_miss_unless_a_supervisor_reported_its_class_nearby_earlier() -> None:
    h = timedelta(hours=1)
    reports = [
        rep("s1", PATROL, T0),
        rep("covered", PUBLIC, T0 + 2 * h, north_m=40),  # 40 m, 2 h after: the patrol had it
        rep("far", PUBLIC, T0 + 2 * h, north_m=60),  # 60 m: another problem
        rep("other-class", PUBLIC, T0 + 2 * h, cls="event:0201"),
        rep("too-late", PUBLIC, T0 + 25 * h),  # more than 24 h after the patrol's report
        rep("before", PUBLIC, T0 - h),  # the public was first
        rep("video", OTHER, T0 + 3 * h, cls="event:0301"),  # neither patrol nor public: never a 漏报
    ]
    assert missed_reports(reports) == {"far", "other-class", "too-late", "before"}
    # the order of the input does not matter, only the times
    assert missed_reports(list(reversed(reports))) == {"far", "other-class", "too-late", "before"}


def test_naive_times_are_refused_by_name() -> None:
    with pytest.raises(BlindSpotRefusal):
        missed_reports([rep("x", PUBLIC, datetime(2026, 3, 2, 9))])
    with pytest.raises(BlindSpotRefusal):
        expected_problems(["g"], [], (T0, T0), (T0, T0 + timedelta(days=1)), TZ)


def test_expected_problems_shrink_toward_the_street_and_follow_the_hour_of_week() -> None:
    busy, quiet, elsewhere = "110101001001001", "110101001001002", "110101002001001"
    week = timedelta(days=7)
    history = [rep(f"h{i}", PATROL, T0 + i * week, grid=busy) for i in range(4)]  # Mondays 09:00
    span = (T0 - timedelta(hours=9), T0 - timedelta(hours=9) + 4 * week)
    monday = (span[1], span[1] + timedelta(days=1))
    tuesday = (span[1] + timedelta(days=1), span[1] + timedelta(days=2))
    e_mon, top = expected_problems([busy, quiet, elsewhere], history, span, monday, TZ)
    e_tue, _ = expected_problems([busy, quiet, elsewhere], history, span, tuesday, TZ)
    # busy: (4 + 2 weeks × street mean 4/2/4 per week) / (4 + 2) = 5/6; quiet: the prior's part only
    assert e_mon[busy] == pytest.approx(5 / 6)
    assert e_mon[quiet] == pytest.approx(1 / 6)
    assert e_mon[elsewhere] == 0.0  # another street: no history, no prior
    assert e_tue[busy] == 0.0  # nothing was ever reported on a Tuesday
    assert top[busy][0] == "event:0102"


def test_the_score_ranks_a_thinly_patrolled_grid_whose_problems_the_public_finds_first() -> None:
    thin, watched, quiet = "110101001001001", "110101001001002", "110101001001003"
    h = timedelta(hours=1)
    reports = []
    for i in range(6):  # the same load of problems in both busy grids
        reports.append(rep(f"t{i}", PUBLIC if i < 4 else PATROL, T0 + i * h, north_m=100 * i, grid=thin))
        reports.append(
            rep(f"w{i}", PATROL if i < 5 else PUBLIC, T0 + i * h, north_m=100 * i + 5000, grid=watched)
        )
    minutes = {thin: 200.0, watched: 2_000.0, quiet: 1_500.0}
    expected = {thin: 6.0, watched: 6.0, quiet: 0.5}
    ranked = blind_spots([thin, watched, quiet], reports, minutes, expected)
    assert ranked[0].grid == thin
    by = {b.grid: b for b in ranked}
    assert by[thin].score > by[watched].score
    assert (by[thin].missed, by[thin].public_found, by[thin].supervisor_found) == (4, 4, 2)
    assert by[thin].missed_rate > by[watched].missed_rate
    assert by[thin].coverage < 1.0 < by[watched].coverage
    assert {r.code for r in by[thin].reasons} >= {"thin_patrol", "public_found", "many_expected"}
    assert by[thin].reasons[0].code in {"thin_patrol", "public_found"}
    # the baseline sees only the minutes
    assert fewest_minutes(minutes, 1) == [thin]


def test_a_single_public_report_in_a_quiet_grid_does_not_top_the_list() -> None:
    """The 漏报 rate is shrunk toward the street's: one report is weak evidence."""
    lone, thin = "110101001001001", "110101001001002"
    others = [f"110101001001{i:03d}" for i in range(3, 12)]
    reports = [rep("one", PUBLIC, T0, grid=lone)]
    reports += [rep(f"t{i}", PUBLIC, T0 + timedelta(hours=i), north_m=100 * i, grid=thin) for i in range(5)]
    reports += [rep(f"o{i}", PATROL, T0, north_m=100 * i + 9000, grid=g) for i, g in enumerate(others)]
    grids = [lone, thin, *others]
    minutes = dict.fromkeys(grids, 1_000.0)
    expected = dict.fromkeys(grids, 2.0)
    ranked = blind_spots(grids, reports, minutes, expected)
    assert ranked[0].grid == thin
