"""Blind spots (issue 21 part 1): does the blind-spot score find under-patrolled areas?

A month of the case-flow generator (seeded, Dongcheng's built-in grids, 1,300 reports a day) with its
under-patrolled knob: 10 communities picked by the knob's own stream, where supervisors report only
``under_patrol_factor`` (0.4) of the problems they would (the rest are reported by the public or the
12345 hotline: 漏报) and walk that factor of their usual minutes. Every report is placed in its grid
(``CaseInfo.spot``); patrol minutes per grid come from ``CaseFlow.patrol_minutes``. The expected
problems are read from the month itself (the grids' own history; a live centre passes its trailing
weeks). Simulated data (模拟数据).

- **score precision**: of the 20 grids with the highest :func:`domain.blindspots.blind_spots` score,
  the share inside an under-patrolled area;
- **baseline**: the same for the 20 grids with the fewest patrol minutes alone.

Target: precision ≥ 0.8 and above the baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bench import INFO, Result, judged, print_table
from domain.blindspots import Report, blind_spots, expected_problems, fewest_minutes
from domain.catalogue import load_catalogue
from domain.city import plan_city
from domain.district import load_district
from domain.evaluation import SOURCE_CLASS
from domain.geo import spot_point
from domain.lifecycle import Action, Context
from domain.workcalendar import load_calendar
from feeds.sources.caseflow import Calibration, generate

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, tzinfo=TZ)
SEED = 20261210  # the month measured; the score's form was chosen on the month of seed 20261209
TOP = 20


@dataclass(frozen=True)
class Outcome:
    """What one generated period gave."""

    reports: int
    grids: int
    under: int
    areas: tuple[str, ...]
    n: int
    score: float
    baseline: float
    rate_only: float
    missed: int
    public: int


def month(days: float, per_day: float, areas: int, seed: int = SEED) -> Outcome:
    """Generate a period with ``areas`` under-patrolled communities; the score's and baseline's tops."""
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    plan = plan_city(load_district())
    shapes = {g.code: g.geometry for g in plan.grids}
    grids = list(shapes)
    flow = generate(START, days, grids, ctx, seed=seed, reports_per_day=per_day,
                    calibration=Calibration(under_patrolled_count=areas), keep=False)  # fmt: skip
    reports: list[Report] = []
    for cmd, at in flow:
        if cmd.action is not Action.REPORT:
            continue
        info = flow.cases[cmd.case_id]
        lon, lat = spot_point(shapes[info.grid], info.spot)
        key = f"{info.kind.value}:{info.class_code}"
        reports.append(Report(info.case_id, info.grid, SOURCE_CLASS[info.source].value, key, lon, lat, at))
    end = START + timedelta(days=days)
    minutes = flow.patrol_minutes()
    expected, top_class = expected_problems(grids, reports, (START, end), (START, end), TZ)
    ranked = blind_spots(grids, reports, minutes, expected, top_class=top_class)
    under = flow.under_patrolled
    n = min(TOP, len(under)) if under else TOP
    score_top = [b.grid for b in ranked[:n]]
    base_top = fewest_minutes(minutes, n)
    by_rate = sorted(ranked, key=lambda b: (-b.missed_rate, b.grid))[:n]
    return Outcome(
        reports=len(reports),
        grids=len(grids),
        under=len(under),
        areas=flow.under_patrolled_areas,
        n=n,
        score=sum(g in under for g in score_top) / n,
        baseline=sum(g in under for g in base_top) / n,
        rate_only=sum(b.grid in under for b in by_rate) / n,
        missed=sum(b.missed for b in ranked),
        public=sum(b.public_found for b in ranked),
    )


def run(smoke: bool = False) -> list[Result]:
    """Run the blind-spot benchmark and print its table (``smoke``: 3 days at 400 a day)."""
    days, per_day = (3, 400) if smoke else (30, 1300)
    t = time.perf_counter()
    m = month(days, per_day, 10)
    secs = time.perf_counter() - t
    score, base = m.score, m.baseline
    note = (f"{m.reports:,} reports over {days} days, {m.grids:,} grids, 10 under-patrolled communities "
            f"({m.under} grids), {m.missed:,} 漏报 of {m.public:,} public reports; "
            f"seed {SEED}; 模拟数据")  # fmt: skip
    ok = score >= 0.8 and score > base
    results = [
        Result(f"blind-spot score: precision of the top {m.n}", m.reports, secs, "reports",
               "≥ 0.80 and > baseline", judged(ok), f"{score:.2f}; {note}"),
        Result(f"baseline fewest patrol minutes: precision of the top {m.n}", m.n, None, "grids",
               "(comparison)", INFO, f"{base:.2f}"),
        Result(f"漏报 rate alone: precision of the top {m.n}", m.n, None, "grids",
               "(comparison)", INFO, f"{m.rate_only:.2f}"),
    ]  # fmt: skip
    print_table("Blind spots (issue 21 part 1)", results)
    return results
