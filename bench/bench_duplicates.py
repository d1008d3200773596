"""Duplicate problems (issue 21): precision and recall of the live candidates on a simulated month,
and the grouping cost per report at 50,000 open cases.

The month is the case-flow generator's (seeded, Dongcheng's built-in grids) with its
injected-duplicates knob: a share of problems is reported again by someone else, a few metres off
(normal, 12 m per axis; 25 m for the classes that lie over an area), hours later (lognormal, median
3 h). Every report is placed in its grid (``CaseInfo.spot``). The reports are replayed in time
order through :class:`domain.duplicates.DuplicateIndex` as the live grouping would see them: a
report is kept while its case is open (closed or voided cases leave), and each new report gets its
nearest earlier candidate. Simulated data (模拟数据).

- **precision**: of the reports given a candidate, the share whose candidate is the same problem;
- **recall**: of the injected repeats that arrived while an earlier report of their problem was still
  open, the share given a candidate of that problem (a repeat after the fix is a new report);
- **baseline** "same grid (of the point) and class within 24 h", the latest such report, for comparison.

Targets: precision ≥ 0.9 and recall ≥ 0.9; ≤ 1 ms per report (lookup + keep) at 50,000 open cases.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from bench import INFO, Result, at_most, judged, print_table
from domain.catalogue import load_catalogue
from domain.city import plan_city
from domain.district import load_district
from domain.duplicates import DuplicateIndex, DuplicateRules, OpenReport
from domain.geo import spot_point
from domain.lifecycle import Action, Context, Source
from domain.workcalendar import load_calendar
from feeds.sources.caseflow import Calibration, generate

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, tzinfo=TZ)
SEED = 20261208  # the month measured; the default rule was chosen on the month of seed 20261207
DEFAULT = "default rule (50 m, 30 m 部件, 24 h, coincidence ≤ 0.003)"
WIDE = "area classes at 100 m (coincidence ≤ 0.003)"
PLAIN = "distance and time only (coincidence test off)"
BASELINE = "baseline: same grid + class ≤ 24 h"
CURVE = (0.01, 0.001)
EARTH_M = 6_371_008.8


def _offset(lon: float, lat: float, dx: float, dy: float) -> tuple[float, float]:
    """A point ``dx`` m east and ``dy`` m north of (lon, lat)."""
    dlat = math.degrees(dy / EARTH_M)
    dlon = math.degrees(dx / (EARTH_M * math.cos(math.radians(lat))))
    return lon + dlon, lat + dlat


@dataclass
class Tally:
    """Candidates given and right, for one rule."""

    flagged: int = 0
    correct: int = 0
    found: int = 0

    def scores(self, repeats: int) -> tuple[float, float]:
        """(precision, recall)."""
        return (
            self.correct / self.flagged if self.flagged else 1.0,
            self.found / repeats if repeats else 1.0,
        )


def month(days: float, per_day: float, share: float, rules: dict[str, DuplicateRules]
          ) -> tuple[dict[str, int], dict[str, Tally]]:  # fmt: skip
    """Replay a generated period through one index per rule (and the baseline): counts and tallies."""
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    plan = plan_city(load_district())
    shapes = {g.code: g.geometry for g in plan.grids}
    codes = list(shapes)
    tree = shapely.STRtree(list(shapes.values()))

    def located(lon: float, lat: float, given: str) -> str:
        """The grid a point falls in (the baseline groups by it, as the live system would)."""
        hits = tree.query(shapely.Point(lon, lat), predicate="intersects")
        return codes[int(hits[0])] if len(hits) else given

    flow = generate(START, days, list(shapes), ctx, seed=SEED, reports_per_day=per_day,
                    calibration=Calibration(injected_duplicates=share), keep=True)  # fmt: skip
    indexes = {name: DuplicateIndex(r) for name, r in rules.items()}
    tallies = {name: Tally() for name in [*rules, BASELINE]}
    points: dict[str, tuple[float, float]] = {}
    problem: dict[str, str] = {}  # case → the problem it reports (its original's id)
    open_by_problem: dict[str, set[str]] = {}
    grid_class: dict[tuple[str, str, str], dict[str, datetime]] = {}  # the baseline's open reports
    grid_of: dict[str, tuple[str, str, str]] = {}
    counts = {"reports": 0, "repeats": 0, "late": 0}

    def tally(name: str, pick: str | None, root: str, repeat: bool) -> None:
        if pick is None:
            return
        t = tallies[name]
        t.flagged += 1
        if problem.get(pick) == root:
            t.correct += 1
            t.found += repeat

    for cmd, at in flow:
        info = flow.cases[cmd.case_id]
        if cmd.action is Action.REPORT:
            counts["reports"] += 1
            root = info.duplicate_of or info.case_id
            problem[info.case_id] = root
            if info.duplicate_of is None:
                lon, lat = spot_point(shapes[info.grid], info.spot)
            else:
                lon, lat = _offset(*points[info.duplicate_of], *info.offset_m)
            points[info.case_id] = (lon, lat)
            sup = info.reporter if info.source is Source.SUPERVISOR else None
            r = OpenReport(info.case_id, info.kind.value, info.class_code, lon, lat, at, reporter=sup)
            repeat = info.duplicate_of is not None and bool(open_by_problem.get(root))
            if info.duplicate_of is not None:
                counts["repeats" if repeat else "late"] += 1
            for name, index in indexes.items():
                cands = index.candidates(r, limit=1)
                tally(name, cands[0].id if cands else None, root, repeat)
                index.add(r)
            key = (located(lon, lat, info.grid), info.kind.value, info.class_code)
            grid_of[info.case_id] = key
            same = {k: t for k, t in grid_class.get(key, {}).items() if at - t <= timedelta(hours=24)}
            tally(BASELINE, max(same, key=lambda k: same[k]) if same else None, root, repeat)
            grid_class.setdefault(key, {})[info.case_id] = at
            open_by_problem.setdefault(root, set()).add(info.case_id)
        else:
            state = flow.states.get(cmd.case_id)
            if state is not None and not state.is_open:
                for index in indexes.values():
                    index.discard(cmd.case_id)
                open_by_problem.get(problem.get(cmd.case_id, ""), set()).discard(cmd.case_id)
                grid_class.get(grid_of.get(cmd.case_id, ("", "", "")), {}).pop(cmd.case_id, None)
    return counts, tallies


def cost(open_cases: int, queries: int) -> tuple[float, float, float]:
    """Seconds per report (mean, p50, p95) of lookup + keep with ``open_cases`` open reports."""
    cat = load_catalogue("cjt214")
    plan = plan_city(load_district())
    shapes = [g.geometry for g in plan.grids]
    classes = [(c.kind.value, c.code) for c in cat.classes]
    rng = np.random.default_rng(SEED)
    t0 = START.astimezone(ZoneInfo("UTC"))

    def report(i: int) -> OpenReport:
        g = shapes[int(rng.integers(len(shapes)))]
        kind, code = classes[int(rng.integers(len(classes)))]
        lon, lat = spot_point(g, (float(rng.random()), float(rng.random())))
        return OpenReport(f"r{i}", kind, code, lon, lat, t0 + timedelta(seconds=float(rng.random()) * 86_400))

    index = DuplicateIndex()
    for i in range(open_cases):
        index.add(report(i))
    news = [report(open_cases + i) for i in range(queries)]
    times = np.empty(queries)
    for i, r in enumerate(news):
        s = time.perf_counter()
        index.candidates(r)
        index.add(r)
        times[i] = time.perf_counter() - s
    return float(times.mean()), float(np.percentile(times, 50)), float(np.percentile(times, 95))


def run(smoke: bool = False) -> list[Result]:
    """Run the duplicate benchmarks and print their table (``smoke``: 2 days, 2,000 open cases)."""
    days, per_day, share = (2, 300, 0.1) if smoke else (30, 1300, 0.05)
    rules = {DEFAULT: DuplicateRules(), PLAIN: DuplicateRules(max_coincidence=1.0),
             WIDE: DuplicateRules(area_m=100.0),
             **{f"coincidence ≤ {c:g}": DuplicateRules(max_coincidence=c) for c in CURVE}}  # fmt: skip
    t = time.perf_counter()
    counts, tallies = month(days, per_day, share, rules)
    secs = time.perf_counter() - t
    repeats = counts["repeats"]
    open_cases, queries = (2_000, 500) if smoke else (50_000, 20_000)
    mean, p50, p95 = cost(open_cases, queries)
    precision, recall = tallies[DEFAULT].scores(repeats)
    note = (f"{counts['reports']:,} reports over {days} days ({share:.0%} of problems reported again), "
            f"{repeats:,} repeats while open (+{counts['late']:,} after the fix); 模拟数据")  # fmt: skip
    results = [
        Result(f"candidates, {DEFAULT}: precision", counts["reports"], secs, "reports", "≥ 0.90",
               judged(precision >= 0.9), f"{precision:.3f} of {tallies[DEFAULT].flagged:,}; {note}"),
        Result(f"candidates, {DEFAULT}: recall", repeats, None, "", "≥ 0.90", judged(recall >= 0.9),
               f"{recall:.3f}"),
    ]  # fmt: skip
    for name in [PLAIN, WIDE, *(f"coincidence ≤ {c:g}" for c in CURVE), BASELINE]:
        p, r = tallies[name].scores(repeats)
        results.append(Result(name, tallies[name].flagged, None, "candidates", "(comparison)", INFO,
                              f"precision {p:.3f}, recall {r:.3f}"))  # fmt: skip
    spread = f"mean {mean * 1e3:.3f} ms, p50 {p50 * 1e3:.3f} ms, p95 {p95 * 1e3:.3f} ms"
    results.append(Result(f"grouping cost at {open_cases:,} open", queries, mean * queries, "reports",
                          "≤ 1 ms / report", at_most(p95, 0.001), spread))  # fmt: skip
    print_table("Duplicate problems (issue 21)", results)
    return results
