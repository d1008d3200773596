"""The patrol generator: determinism, chunk independence, walking pace, areas, shifts, rare events."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.geo import LocalProjection
from feeds.sources.patrol import Fix, FixArrays, Patrol, PatrolConfig, areas_from_store
from store.models import Grid, ResponsibilityArea

TZ = ZoneInfo("Asia/Shanghai")
PROJ = LocalProjection(lon0=116.4)
X0, Y0 = PROJ.forward(116.4, 39.9)
MON = date(2025, 3, 10)  # a Monday
CALM = PatrolConfig(stray_share=0.0, long_stop_share=0.0, offline_share=0.0)


def local(d: date, h: int, m: int = 0, s: int = 0) -> datetime:
    return datetime.combine(d, time(h, m, s), tzinfo=TZ)


def to_wgs(metric: list[shapely.Geometry]) -> list[shapely.Geometry]:
    return list(PROJ.to_wgs84_many(metric))


def squares(n: int, size: float = 300.0, gap: float = 0.0) -> dict[str, shapely.Polygon]:
    """``n`` square areas of ``size`` metres in rows of 10, near 116.4° E, 39.9° N."""
    step = size + gap
    boxes = [
        shapely.box(
            X0 + (i % 10) * step,
            Y0 + (i // 10) * step,
            X0 + (i % 10) * step + size,
            Y0 + (i // 10) * step + size,
        )
        for i in range(n)
    ]
    return {f"sup-{i:03d}": g for i, g in enumerate(to_wgs(boxes))}


def odd_shapes() -> dict[str, shapely.Geometry]:
    """Non-convex areas: an L, a U, a ring around a hole and a two-part area (metres → WGS-84)."""
    ox, oy = X0 + 5000, Y0
    ell = shapely.union_all(
        [shapely.box(ox, oy, ox + 400, oy + 100), shapely.box(ox, oy, ox + 100, oy + 400)]
    )
    u = shapely.box(ox + 600, oy, ox + 900, oy + 300).difference(
        shapely.box(ox + 700, oy + 100, ox + 800, oy + 300)
    )
    ring = shapely.box(ox, oy + 600, ox + 300, oy + 900).difference(
        shapely.box(ox + 100, oy + 700, ox + 200, oy + 800)
    )
    two = shapely.MultiPolygon(
        [
            shapely.box(ox + 600, oy + 600, ox + 800, oy + 800),
            shapely.box(ox + 900, oy + 600, ox + 1000, oy + 700),
        ]
    )
    names = ["sup-ell", "sup-ring", "sup-two", "sup-u"]
    return dict(zip(names, to_wgs([ell, ring, two, u]), strict=True))


def arrays(p: Patrol, t0: datetime, t1: datetime) -> FixArrays:
    return p.fix_arrays_between(t0, t1)


def per_supervisor(fx: FixArrays) -> dict[str, np.ndarray]:
    """Row indices of each supervisor's fixes, in time order."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(fx.supervisor.tolist()):
        out[s].append(i)
    return {s: np.asarray(v) for s, v in out.items()}


def metres(fx: FixArrays) -> tuple[np.ndarray, np.ndarray]:
    x, y = PROJ.forward(fx.lon, fx.lat)
    return np.asarray(x), np.asarray(y)


def outside_distance(areas: dict[str, shapely.Geometry], fx: FixArrays) -> np.ndarray:
    """Metres from each fix to its supervisor's area (0 inside)."""
    metric = {s: PROJ.to_metric(g) for s, g in areas.items()}
    x, y = metres(fx)
    geoms = np.asarray([metric[s] for s in fx.supervisor.tolist()], dtype=object)
    return np.asarray(shapely.distance(geoms, shapely.points(x, y)))


# --- the contract -----------------------------------------------------------------------------------


def test_fix_fields_and_order() -> None:
    p = Patrol(squares(12), TZ, seed=3, config=CALM)
    fixes = p.fixes_between(local(MON, 9), local(MON, 9, 10))
    assert len(fixes) == 12 * 60  # one fix every 10 s, no offline gap
    assert all(isinstance(f, Fix) for f in fixes)
    assert [(f.at, f.supervisor) for f in fixes] == sorted((f.at, f.supervisor) for f in fixes)
    assert all(f.at.tzinfo is UTC for f in fixes)
    assert all(local(MON, 9) <= f.at < local(MON, 9, 10) for f in fixes)
    assert all(round(f.lon, 6) == f.lon and round(f.lat, 6) == f.lat for f in fixes)
    assert all(5.0 <= f.accuracy <= 15.0 and f.speed >= 0 for f in fixes)
    # each supervisor is on its own lattice: 10 s apart, offsets spread over the interval
    by_sup = defaultdict(list)
    for f in fixes:
        by_sup[f.supervisor].append(f.at)
    for ats in by_sup.values():
        assert {(b - a).total_seconds() for a, b in pairwise(ats)} == {10.0}
    assert len({ats[0] for ats in by_sup.values()}) > 6
    assert arrays(p, local(MON, 9), local(MON, 9, 10)).to_fixes() == fixes


PATROL = Patrol(squares(15), TZ, seed=11)
WINDOW = (local(MON, 7, 20), local(MON, 7, 50))  # across the start of the morning shift
FULL = PATROL.fixes_between(*WINDOW)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 30 * 60 * 1_000_000),  # anywhere in the window
            st.integers(600_000_000, 660_000_000),  # 07:30–07:31: short windows on shift
        ),
        max_size=8,
    )
)
def test_chunk_independent(cuts: list[int]) -> None:
    edges = [WINDOW[0], *(WINDOW[0] + timedelta(microseconds=c) for c in sorted(cuts)), WINDOW[1]]
    joined: list[Fix] = []
    for a, b in pairwise(edges):
        joined += PATROL.fixes_between(a, b)
    assert joined == FULL


def test_deterministic_across_instances_seconds_and_seeds() -> None:
    assert len(FULL) > 15 * 100
    again = Patrol(squares(15), TZ, seed=11)
    assert again.fixes_between(*WINDOW) == FULL
    # one-second windows, as the live simulator asks, give the same stream
    t0 = local(MON, 7, 29, 30)
    ticks: list[Fix] = []
    for k in range(120):
        ticks += again.fixes_between(t0 + timedelta(seconds=k), t0 + timedelta(seconds=k + 1))
    assert ticks == [f for f in FULL if t0 <= f.at < t0 + timedelta(seconds=120)]
    assert len(ticks) == 15 * 9  # 90 s on shift
    # windows that are not aligned with the 10 s lattice, shorter and longer than one interval
    for width in (0.37, 1.0, 3.7, 9.999, 10.0, 13.3):
        step = timedelta(seconds=width)
        t, pieces = WINDOW[0] + timedelta(milliseconds=250), []
        while t < WINDOW[0] + timedelta(minutes=16):
            pieces += again.fixes_between(t, t + step)
            t += step
        assert pieces == [f for f in FULL if WINDOW[0] + timedelta(milliseconds=250) <= f.at < t], width
    other = Patrol(squares(15), TZ, seed=12).fixes_between(*WINDOW)
    assert [(f.lon, f.lat) for f in other] != [(f.lon, f.lat) for f in FULL]


def test_days_rebuilt_after_eviction_are_identical() -> None:
    p = Patrol(squares(5), TZ, seed=5)
    first = p.fixes_between(local(MON, 10), local(MON, 10, 5))
    for k in range(1, 4):  # push the day out of the cache
        p.fixes_between(local(MON + timedelta(days=k), 10), local(MON + timedelta(days=k), 10, 1))
    assert p.fixes_between(local(MON, 10), local(MON, 10, 5)) == first


def test_a_supervisors_track_does_not_depend_on_the_others() -> None:
    areas = squares(20)
    some = {k: areas[k] for k in list(areas)[5:9]}
    whole = Patrol(areas, TZ, seed=9).fixes_between(local(MON, 8), local(MON, 12))
    part = Patrol(some, TZ, seed=9).fixes_between(local(MON, 8), local(MON, 12))
    assert part == [f for f in whole if f.supervisor in some]


# --- movement ---------------------------------------------------------------------------------------


def test_walking_pace_and_reported_speed() -> None:
    p = Patrol(squares(30), TZ, seed=21)
    fx = arrays(p, local(MON, 0), local(MON + timedelta(days=1), 0))
    x, y = metres(fx)
    implied: list[np.ndarray] = []
    both_stopped: list[np.ndarray] = []
    for rows in per_supervisor(fx).values():
        dt = np.diff(fx.at_us[rows]) / 1e6
        dist = np.hypot(np.diff(x[rows]), np.diff(y[rows]))
        implied.append(dist / dt)
        sp = fx.speed[rows]
        both_stopped.append(dist[(sp[:-1] == 0) & (sp[1:] == 0) & (dt == 10.0)])
    v = np.concatenate(implied)
    assert v.max() <= 1.5 + 0.05  # walk_speed high plus rounding of the 6-decimal coordinates
    assert np.mean(v > 0.5) > 0.2
    sp = fx.speed
    walking = sp > 0
    assert np.all((sp == 0) | ((sp >= 0.9) & (sp <= 1.5)))
    assert 0.2 < walking.mean() < 0.8
    # two stopped fixes in a row are almost always at the same spot
    assert np.mean(np.concatenate(both_stopped) < 0.5) > 0.9
    # the reported speed matches the movement around the fix
    rng = np.random.default_rng(0)
    diffs = []
    for i in rng.choice(np.flatnonzero(walking), 300, replace=False):
        at = datetime.fromtimestamp(int(fx.at_us[i]) / 1e6, UTC)
        a = p.position_at(str(fx.supervisor[i]), at)
        b = p.position_at(str(fx.supervisor[i]), at + timedelta(seconds=1))
        assert a is not None and b is not None
        assert a == (fx.lon[i], fx.lat[i])
        (ax, bx), (ay, by) = PROJ.forward([a[0], b[0]], [a[1], b[1]])
        diffs.append(np.hypot(bx - ax, by - ay) - fx.speed[i])
    assert np.median(np.abs(diffs)) < 0.05


def test_fixes_stay_inside_own_area() -> None:
    areas = squares(40, size=250.0)
    p = Patrol(areas, TZ, seed=4)
    fx = arrays(p, local(MON, 0), local(MON + timedelta(days=3), 0))
    dist = outside_distance(areas, fx)
    assert len(fx) > 40 * 2880 * 2.5
    assert np.mean(dist == 0) >= 0.99
    assert dist.max() <= 300.0
    # without strays: everything inside, in convex and in non-convex areas
    odd = odd_shapes()
    both = {**squares(10), **odd}
    calm = Patrol(both, TZ, seed=4, config=PatrolConfig(stray_share=0.0))
    fx = arrays(calm, local(MON, 0), local(MON + timedelta(days=2), 0))
    assert set(fx.supervisor.tolist()) == set(both)
    assert outside_distance(both, fx).max() == 0.0
    # the walk goes round the inner corners, so the non-convex areas are covered, not just one arm
    mine = np.isin(fx.supervisor, ["sup-ell", "sup-u"])
    x, y = metres(FixArrays(*(getattr(fx, f)[mine] for f in FixArrays.__dataclass_fields__)))
    assert np.ptp(x) > 300 and np.ptp(y) > 250


# --- shifts -----------------------------------------------------------------------------------------


def test_shifts_in_local_time() -> None:
    p = Patrol(squares(10), TZ, seed=2, config=CALM)
    sup = p.supervisors[0]
    assert p.fixes_between(local(MON, 0), local(MON, 7, 30)) == []
    assert p.fixes_between(local(MON, 11, 30), local(MON, 13, 30)) == []
    assert p.fixes_between(local(MON, 17, 30), local(MON + timedelta(days=1), 7, 30)) == []
    assert len(p.fixes_between(local(MON, 7, 30), local(MON, 7, 30, 10))) == 10
    assert len(p.fixes_between(local(MON, 11, 29, 50), local(MON, 11, 30))) == 10
    assert len(p.fixes_between(local(MON, 13, 30), local(MON, 13, 30, 10))) == 10
    # 09:00 in Beijing is 01:00 UTC; 03:00 in Beijing is 19:00 UTC the day before
    assert (
        len(p.fixes_between(datetime(2025, 3, 10, 1, tzinfo=UTC), datetime(2025, 3, 10, 1, 1, tzinfo=UTC)))
        == 60
    )
    assert p.fixes_between(datetime(2025, 3, 9, 19, tzinfo=UTC), datetime(2025, 3, 9, 20, tzinfo=UTC)) == []
    assert not p.on_shift(sup, local(MON, 3))
    assert p.on_shift(sup, local(MON, 7, 30))
    assert p.on_shift(sup, local(MON, 11, 29, 59))
    assert not p.on_shift(sup, local(MON, 11, 30))
    assert p.on_shift(sup, datetime(2025, 3, 10, 1, tzinfo=UTC))
    assert not p.on_shift(sup, local(MON, 17, 30))
    assert p.position_at(sup, local(MON, 3)) is None
    assert p.position_at(sup, local(MON, 12)) is None
    assert p.position_at(sup, local(MON, 9)) is not None


def test_workdays() -> None:
    p = Patrol(squares(5), TZ, seed=2, workdays=lambda d: d.weekday() < 5)
    sat = MON + timedelta(days=5)
    assert p.fixes_between(local(sat, 0), local(sat + timedelta(days=2), 0)) == []
    assert not p.on_shift(p.supervisors[0], local(sat, 9))
    assert p.position_at(p.supervisors[0], local(sat, 9)) is None
    assert p.fixes_between(local(MON, 9), local(MON, 9, 1))


def test_night_shift_past_midnight() -> None:
    cfg = PatrolConfig(shifts=((time(22), time(2)),), stray_share=0.0, long_stop_share=0.0, offline_share=0.0)
    p = Patrol(squares(6), TZ, seed=8, config=cfg)
    sup = p.supervisors[0]
    tue = MON + timedelta(days=1)
    assert p.on_shift(sup, local(tue, 1)) and p.on_shift(sup, local(MON, 23))
    assert not p.on_shift(sup, local(tue, 2)) and not p.on_shift(sup, local(MON, 21, 59))
    full = p.fixes_between(local(MON, 23, 50), local(tue, 0, 10))
    assert len(full) == 6 * 120
    assert (
        p.fixes_between(local(MON, 23, 50), local(tue, 0)) + p.fixes_between(local(tue, 0), local(tue, 0, 10))
        == full
    )
    assert p.fixes_between(local(tue, 2), local(tue, 22)) == []


# --- rare events ------------------------------------------------------------------------------------


def test_offline_gaps() -> None:
    cfg = PatrolConfig(stray_share=0.0, long_stop_share=0.0, offline_share=1.0)
    p = Patrol(squares(20), TZ, seed=31, config=cfg)
    fx = arrays(p, local(MON, 0), local(MON + timedelta(days=1), 0))
    expected = 8 * 360  # two 4 h shifts
    gaps = 0
    for sup, rows in per_supervisor(fx).items():
        missing_s = (expected - len(rows)) * 10
        assert 10 * 60 - 10 <= missing_s <= 30 * 60 + 10, sup
        dt = np.diff(fx.at_us[rows]) / 1e6
        long_gaps = dt[(dt > 10) & (dt < 3600)]  # not the lunch break
        if len(long_gaps):
            gaps += 1
            assert 10 * 60 <= long_gaps.max() <= 30 * 60 + 10
            i = int(np.argmax(np.where(dt < 3600, dt, 0)))
            middle = datetime.fromtimestamp((int(fx.at_us[rows[i]]) + int(fx.at_us[rows[i + 1]])) / 2e6, UTC)
            assert p.on_shift(sup, middle)
            assert p.position_at(sup, middle) is None
    assert gaps >= 18  # a gap can also sit at a shift's start or end
    # the default share gives a few; a share of 0 gives none
    calm = arrays(
        Patrol(squares(20), TZ, seed=31, config=CALM), local(MON, 0), local(MON + timedelta(days=1), 0)
    )
    assert len(calm) == 20 * expected


def test_stray_excursions_leave_the_area() -> None:
    areas = squares(30)
    cfg = PatrolConfig(stray_share=1.0, long_stop_share=0.0, offline_share=0.0)
    fx = arrays(Patrol(areas, TZ, seed=41, config=cfg), local(MON, 0), local(MON + timedelta(days=1), 0))
    dist = outside_distance(areas, fx)
    out_by_sup = {s: dist[rows].max() for s, rows in per_supervisor(fx).items()}
    strayed = [s for s, d in out_by_sup.items() if d > 0]
    assert len(strayed) >= 27
    assert max(out_by_sup.values()) <= 250.0 + 1.0
    assert np.mean([d >= 30 for d in out_by_sup.values()]) > 0.8
    assert 0 < np.mean(dist > 0) < 0.05  # a short excursion, not a different area


def test_long_stops() -> None:
    def longest_stop_minutes(cfg: PatrolConfig) -> list[float]:
        fx = arrays(
            Patrol(squares(20), TZ, seed=51, config=cfg), local(MON, 0), local(MON + timedelta(days=1), 0)
        )
        out = []
        for rows in per_supervisor(fx).values():
            lon, lat, at = fx.lon[rows], fx.lat[rows], fx.at_us[rows]
            moved = np.r_[True, (np.diff(lon) != 0) | (np.diff(lat) != 0) | (np.diff(at) != 10_000_000)]
            starts = np.flatnonzero(moved)
            ends = np.r_[starts[1:] - 1, len(rows) - 1]
            out.append(float(np.max(at[ends] - at[starts])) / 60e6)
        return out

    with_stops = longest_stop_minutes(PatrolConfig(stray_share=0.0, long_stop_share=1.0, offline_share=0.0))
    assert sum(m >= 20.0 for m in with_stops) >= 19
    assert max(with_stops) <= 40.0
    assert max(longest_stop_minutes(CALM)) <= 5.0


# --- inputs -----------------------------------------------------------------------------------------


def test_bad_inputs() -> None:
    p = Patrol(squares(2), TZ, seed=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        p.fixes_between(datetime(2025, 3, 10, 9), datetime(2025, 3, 10, 10))
    with pytest.raises(KeyError):
        p.on_shift("sup-nobody", local(MON, 9))
    assert p.fixes_between(local(MON, 10), local(MON, 9)) == []
    assert Patrol({}, TZ, seed=1).fixes_between(local(MON, 9), local(MON, 10)) == []
    with pytest.raises(ValueError):
        Patrol({"sup-x": shapely.Polygon()}, TZ, seed=1)
    with pytest.raises(ValueError):
        PatrolConfig(interval_s=0)
    with pytest.raises(ValueError):
        PatrolConfig(walk_speed=(1.5, 0.9))
    with pytest.raises(ValueError):
        PatrolConfig(stray_share=1.5)
    with pytest.raises(ValueError):
        PatrolConfig(shifts=((time(8), time(12)), (time(11), time(14))))


# --- the store --------------------------------------------------------------------------------------


def test_areas_from_store(city_engine: Engine) -> None:
    areas = areas_from_store(city_engine)
    with city_engine.connect() as conn:
        rows = conn.execute(
            select(Grid.area_code, Grid.geometry)
            .join(ResponsibilityArea, ResponsibilityArea.code == Grid.area_code)
            .where(Grid.active, ResponsibilityArea.active)
        ).all()
    grids: dict[str, list[shapely.Geometry]] = defaultdict(list)
    for code, geometry in rows:
        grids[code].append(shapely.geometry.shape(geometry))
    assert len(areas) == len(grids) > 200
    assert set(areas) == {f"sup-{c}" for c in grids}
    for code, parts in grids.items():
        area = areas[f"sup-{code}"]
        assert isinstance(area, shapely.Polygon | shapely.MultiPolygon) and area.is_valid
        assert area.area == pytest.approx(sum(g.area for g in parts), rel=1e-6)
        assert shapely.covers(area, shapely.point_on_surface(parts)).all()
    # patrols of the real (non-convex) areas stay inside them
    p = Patrol(areas, TZ, seed=7, config=PatrolConfig(stray_share=0.0))
    fx = arrays(p, local(MON, 9), local(MON, 10))
    assert set(fx.supervisor.tolist()) == set(areas)
    geoms = np.asarray([areas[s] for s in fx.supervisor.tolist()], dtype=object)
    assert np.mean(shapely.intersects_xy(geoms, fx.lon, fx.lat)) >= 0.999
