"""Blind spots (漏报 risk, issue 21 part 1): grids where problems are likely and patrols are thin.

Per grid over a period:

- **patrol minutes** (given: from the patrol's fixes, or the generator's :meth:`patrol_minutes`);
- **supervisor-found** (监督员上报) and **public-found** (监督举报: 公众举报, 12345 热线) reports;
- **漏报**: a public report with no *earlier* supervisor report of the same class within
  :attr:`BlindSpotRules.radius_m` (50 m) and :attr:`BlindSpotRules.window` (24 h) — the patrol did
  not find that problem first;
- **expected problems** from the grid's own history, by class and hour of the week, shrunk toward
  its street's mean (a Gamma–Poisson posterior mean: ``(n + k·m) / (W + k)`` per class and hour of
  the week, ``n`` the grid's count over ``W`` weeks of history, ``m`` the street's mean per grid and
  week, ``k`` = :attr:`BlindSpotRules.prior_weeks`), summed over the hours of the period;
- the **score**: ``expected × 漏报 rate ÷ patrol coverage`` where the 漏报 rate is shrunk toward the
  street's (``(missed + a·r_street) / (found + a)``, ``a`` = :attr:`BlindSpotRules.prior_reports`)
  and the coverage is the grid's patrol minutes relative to the median grid's (floored at
  :attr:`BlindSpotRules.min_coverage`). It reads "problems the public is expected to find before
  the patrol, per unit of patrol cover". Chosen over a Poisson likelihood of public finding because
  each factor is a figure a shift leader can check on the grid's page (the reasons), and the
  shrinkage keeps a grid with one public report from topping the list on chance alone. Chosen on one
  generated month (seed 20261209) among variants; a coverage *per expected problem* (which counts the
  expected problems twice) ranked busy grids first and did worse than the baseline (BENCHMARKS.md).

Pure: no I/O. Times are aware datetimes; hours of the week are local to the ``tz`` given.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from statistics import median

EARTH_M = 6_371_008.8
PATROL = "patrol"  # 监督员上报
PUBLIC = "public"  # 监督举报 (公众举报, 热线)
OTHER = "other"  # 领导交办, 视频, 部门批转: neither
MAX_REPORTS = 2_000_000  # per call: a larger input is refused (BlindSpotRefusal)
MAX_PERIOD = timedelta(days=400)


class BlindSpotRefusal(ValueError):
    """An input the blind-spot measure refuses (named, with its reason)."""


@dataclass(frozen=True)
class BlindSpotRules:
    """The 漏报 rule and the score's shrinkage."""

    radius_m: float = 50.0
    window: timedelta = timedelta(hours=24)
    prior_weeks: float = 2.0  # strength of the street's mean in the expected rates (weeks)
    prior_reports: float = 5.0  # strength of the street's 漏报 rate (reports)
    min_coverage: float = 0.05  # floor of the relative patrol coverage
    street_digits: int = 9  # a grid's street is its code's first digits (Dongcheng: 9)


@dataclass(frozen=True)
class Report:
    """One report as the measure reads it: where, when, what class, and who found it."""

    id: str
    grid: str
    finder: str  # PATROL, PUBLIC or OTHER
    class_key: str  # "event:0102" (kind:class code)
    lon: float
    lat: float
    at: datetime


@dataclass(frozen=True)
class Reason:
    """Why a grid ranks: a figure and the street's (or the city's) figure it is read against."""

    code: str  # "thin_patrol", "public_found", "many_expected", "top_class"
    value: float
    reference: float
    detail: str = ""


@dataclass(frozen=True)
class GridBlindSpot:
    """One grid's figures over the period and its blind-spot score."""

    grid: str
    patrol_minutes: float
    supervisor_found: int
    public_found: int
    missed: int  # 漏报
    expected: float  # expected problems in the period
    missed_rate: float  # shrunk toward the street's
    coverage: float  # patrol minutes ÷ the median grid's
    score: float
    reasons: tuple[Reason, ...]


def _aware(t: datetime, what: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise BlindSpotRefusal(f"{what} must be timezone-aware")


def missed_reports(reports: Iterable[Report], rules: BlindSpotRules | None = None) -> set[str]:
    """The ids of the public reports with no earlier supervisor report of their class nearby (漏报)."""
    rules = rules or BlindSpotRules()
    cell = rules.radius_m
    items = sorted(reports, key=lambda r: r.at)
    if len(items) > MAX_REPORTS:
        raise BlindSpotRefusal(f"too many reports: {len(items)} > {MAX_REPORTS}")
    lat0 = math.radians(items[0].lat) if items else 0.0
    kx = math.radians(1.0) * EARTH_M * math.cos(lat0)
    ky = math.radians(1.0) * EARTH_M
    seen: dict[tuple[str, int, int], list[tuple[datetime, float, float]]] = defaultdict(list)
    out: set[str] = set()
    for r in items:
        _aware(r.at, "a report's time")
        x, y = r.lon * kx, r.lat * ky
        cx, cy = math.floor(x / cell), math.floor(y / cell)
        if r.finder == PATROL:
            seen[(r.class_key, cx, cy)].append((r.at, x, y))
        elif r.finder == PUBLIC:
            since = r.at - rules.window
            found = any(
                since <= t < r.at and math.hypot(px - x, py - y) <= rules.radius_m
                for dx in (-1, 0, 1)
                for dy in (-1, 0, 1)
                for t, px, py in seen.get((r.class_key, cx + dx, cy + dy), ())
            )
            if not found:
                out.add(r.id)
    return out


def _hour_of_week(t: datetime, tz: tzinfo) -> int:
    local = t.astimezone(tz)
    return local.weekday() * 24 + local.hour


def _hours(start: datetime, end: datetime, tz: tzinfo) -> dict[int, int]:
    """How many times each hour of the week occurs in [start, end)."""
    occ: dict[int, int] = defaultdict(int)
    t = start
    while t < end:
        occ[_hour_of_week(t, tz)] += 1
        t += timedelta(hours=1)
    return occ


def expected_problems(
    grids: Sequence[str],
    history: Iterable[Report],
    history_span: tuple[datetime, datetime],
    period: tuple[datetime, datetime],
    tz: tzinfo,
    rules: BlindSpotRules | None = None,
) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
    """Expected problems per grid in ``period`` from the history (by class and hour of the week, shrunk
    toward the street's mean per grid), and each grid's class with the most expected."""
    rules = rules or BlindSpotRules()
    for t in (*history_span, *period):
        _aware(t, "a period's bound")
    weeks = (history_span[1] - history_span[0]).total_seconds() / (7 * 86_400)
    if weeks <= 0:
        raise BlindSpotRefusal("the history span must be longer than zero")
    if period[1] - period[0] > MAX_PERIOD or period[1] <= period[0]:
        raise BlindSpotRefusal("the period must be longer than zero and at most 400 days")
    occ = _hours(period[0], period[1], tz)
    street_of = {g: g[: rules.street_digits] for g in grids}
    n_street: dict[str, int] = defaultdict(int)
    for g in grids:
        n_street[street_of[g]] += 1
    own: dict[tuple[str, str, int], int] = defaultdict(int)
    street: dict[tuple[str, str, int], int] = defaultdict(int)
    for r in history:
        if r.grid not in street_of:
            continue
        how = _hour_of_week(r.at, tz)
        own[(r.grid, r.class_key, how)] += 1
        street[(street_of[r.grid], r.class_key, how)] += 1
    k, denom = rules.prior_weeks, weeks + rules.prior_weeks
    by_class: dict[tuple[str, str], float] = defaultdict(float)  # grid's own part
    for (g, c, h), n in own.items():
        by_class[(g, c)] += n * occ.get(h, 0) / denom
    street_class: dict[tuple[str, str], float] = defaultdict(float)  # the prior's part, per grid
    for (s, c, h), n in street.items():
        street_class[(s, c)] += k * (n / n_street[s] / weeks) * occ.get(h, 0) / denom
    prior_total: dict[str, float] = defaultdict(float)
    for (s, _), v in street_class.items():
        prior_total[s] += v
    expected = {g: prior_total.get(street_of[g], 0.0) for g in grids}
    top: dict[str, tuple[str, float]] = {}
    for (g, c), v in by_class.items():
        expected[g] += v
        total = v + street_class.get((street_of[g], c), 0.0)
        if g not in top or total > top[g][1]:
            top[g] = (c, total)
    return expected, top


def blind_spots(
    grids: Sequence[str],
    reports: Iterable[Report],
    patrol_minutes: Mapping[str, float],
    expected: Mapping[str, float],
    rules: BlindSpotRules | None = None,
    *,
    top_class: Mapping[str, tuple[str, float]] | None = None,
) -> list[GridBlindSpot]:
    """Every grid's figures over the period's ``reports`` and its score, highest score first."""
    rules = rules or BlindSpotRules()
    items = list(reports)
    missed = missed_reports(items, rules)
    sup: dict[str, int] = defaultdict(int)
    pub: dict[str, int] = defaultdict(int)
    miss: dict[str, int] = defaultdict(int)
    for r in items:
        if r.finder == PATROL:
            sup[r.grid] += 1
        elif r.finder == PUBLIC:
            pub[r.grid] += 1
            if r.id in missed:
                miss[r.grid] += 1
    street_of = {g: g[: rules.street_digits] for g in grids}
    s_found: dict[str, int] = defaultdict(int)
    s_missed: dict[str, int] = defaultdict(int)
    for g in grids:
        s_found[street_of[g]] += sup[g] + pub[g]
        s_missed[street_of[g]] += miss[g]
    a = rules.prior_reports
    mid = median(patrol_minutes.get(g, 0.0) for g in grids) if grids else 1.0
    mid = mid if mid > 0 else 1.0
    mean_expected = sum(expected.get(g, 0.0) for g in grids) / len(grids) if grids else 0.0
    out: list[GridBlindSpot] = []
    for g in grids:
        st = street_of[g]
        r_street = s_missed[st] / s_found[st] if s_found[st] else 0.0
        rate = (miss[g] + a * r_street) / (sup[g] + pub[g] + a)
        cover = max(patrol_minutes.get(g, 0.0) / mid, rules.min_coverage)
        e = expected.get(g, 0.0)
        score = e * rate / cover
        reasons = [
            Reason("thin_patrol", round(cover, 3), 1.0, f"{patrol_minutes.get(g, 0.0):.0f} min"),
            Reason("public_found", round(rate, 3), round(r_street, 3), f"{miss[g]}/{sup[g] + pub[g]}"),
            Reason("many_expected", round(e, 2), round(mean_expected, 2)),
        ]
        reasons.sort(key=lambda x: -(x.reference / x.value if x.code == "thin_patrol" and x.value else
                                     x.value / x.reference if x.reference else 0.0))  # fmt: skip
        if top_class and g in top_class:
            reasons.append(Reason("top_class", round(top_class[g][1], 2), 0.0, top_class[g][0]))
        out.append(GridBlindSpot(g, patrol_minutes.get(g, 0.0), sup[g], pub[g], miss[g], e, rate, cover,
                                 score, tuple(reasons)))  # fmt: skip
    out.sort(key=lambda b: (-b.score, b.grid))
    return out


def fewest_minutes(patrol_minutes: Mapping[str, float], n: int) -> list[str]:
    """The baseline: the ``n`` grids with the fewest patrol minutes."""
    return [g for g, _ in sorted(patrol_minutes.items(), key=lambda kv: (kv[1], kv[0]))[:n]]
