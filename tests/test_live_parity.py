"""Advancing a supervisor: the Lua of feeds.redis_live (ADVANCE) against the Python of feeds.live.

The same generated fixes (a few supervisors, instants rising by random gaps, boundary gaps and long
ones across local midnight, small steps inside the stop radius and large jumps, stops long enough to be
stationary, same-instant repeats, batches shuffled and delivered late) go to a :class:`MemoryLiveState`
per local day and to a :class:`RedisLiveState` on the machine's Redis (a fresh prefix per example,
deleted afterwards). Each supervisor's latest state (fix, grid, stop), its status, the patrol seconds
of every grid and day and the change sets a tick drains must be the same.

The one tolerated difference: patrol seconds are summed by HINCRBYFLOAT in Redis (long double, printed
with 17 digits) and by float addition in Python, so they are compared to 1e-9 s (relative 1e-12).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import load_catalogue
from domain.supervisor import Fix, SupervisorRules, status_at
from feeds.live import MemoryLiveState
from feeds.redis_live import RedisLiveState, connect

TZ = ZoneInfo("Asia/Shanghai")
CAT = load_catalogue("cjt214")
RULES = SupervisorRules()
T0 = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 22:30 in Beijing: long gaps cross local midnight
G1, G2, G3 = "110101001001001", "110101001001002", "110101002001001"
STRAY = "110101009009009"  # a grid of no area (not in GRIDS)
AREAS = {"s1": "110101001001", "s2": "110101001001", "s3": "110101002001"}
GRIDS: dict[str, str | None] = {G1: "110101001001", G2: "110101001001", G3: "110101002001"}
SUPS = ["s1", "s2", "s3", "s9"]  # s9: not a known supervisor (area None)
LON, LAT = 116.40, 39.90
US = 1_000_000
# after a supervisor's latest fix, statuses are compared at once, either side of offline, a stop later
STATUS_AFTER = (timedelta(0), RULES.offline_after, RULES.offline_after + timedelta(microseconds=1),
                RULES.stationary_after)  # fmt: skip

# gaps in microseconds: 0 (a same-instant repeat), short, around the patrol gap (120 s) and the offline
# threshold (300 s), longer than both, and hours (across midnight)
gaps = st.one_of(
    st.just(0),
    st.integers(1, 30 * US),
    st.sampled_from([119 * US + 999_999, 120 * US, 120 * US + 1, 299 * US + 999_999, 300 * US, 300 * US + 1]),
    st.integers(30 * US, 20 * 60 * US),
    st.integers(20 * 60 * US, 4 * 3600 * US),
)
# steps in degrees: none, inside the 30 m stop radius (1e-4° of latitude ≈ 11 m), around it, a few
# hundred metres, and jumps past 0.1° (the haversine branch of the distance)
steps = st.one_of(
    st.just(0.0),
    st.floats(-1e-4, 1e-4),
    st.floats(-4e-4, 4e-4),
    st.floats(-5e-3, 5e-3),
    st.floats(-0.5, 0.5),
)
grids = st.sampled_from([G1, G2, G3, None, STRAY])
walk = st.lists(st.tuples(gaps, steps, steps, grids), min_size=1, max_size=8)
# a stop: fixes every 1 to 5 minutes within a few metres, long enough to be stationary (20 min) or not
stop = grids.flatmap(
    lambda g: st.lists(
        st.tuples(st.integers(60 * US, 300 * US), st.floats(-3e-5, 3e-5), st.floats(-3e-5, 3e-5), st.just(g)),
        min_size=3,
        max_size=10,
    )
)
track_steps = st.lists(walk | stop, min_size=1, max_size=3).map(lambda parts: [s for p in parts for s in p])


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[Fix]]:
    """Batches of fixes as the pipeline hands them to the live state (each batch in any order)."""
    fixes: list[Fix] = []
    tracks = draw(st.dictionaries(st.sampled_from(SUPS), track_steps, min_size=1, max_size=len(SUPS)))
    for sid, track in tracks.items():
        at = T0 + timedelta(seconds=draw(st.integers(0, 600)))
        lon, lat = LON, LAT
        for gap, dlon, dlat, grid in track:
            at += timedelta(microseconds=gap)
            lon, lat = lon + dlon, lat + dlat
            fixes.append(Fix(sid, at, lon, lat, grid))
    fixes.sort(key=lambda f: f.at)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(fixes) - 1)), max_size=6)))
    batches = [fixes[a:b] for a, b in zip([0, *cuts], [*cuts, len(fixes)], strict=True) if fixes[a:b]]
    batches = [draw(st.permutations(b)) for b in batches]
    if draw(st.integers(0, 3)) == 0:  # some batches arrive late: their fixes never move "latest"
        batches = draw(st.permutations(batches))
    return batches


def local_day(at: datetime) -> date:
    """The city's calendar day of an instant."""
    return at.astimezone(TZ).date()


def memory(day: date) -> MemoryLiveState:
    """A memory state whose "today" is ``day``."""
    noon = datetime.combine(day, time(12), TZ).astimezone(UTC)
    return MemoryLiveState(tz=TZ, catalogue=CAT, areas=AREAS, area_of_grid=GRIDS, rules=RULES, now=noon)


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_lua_and_python_advance_supervisors_alike(redis_url: str, batches: list[list[Fix]]) -> None:
    r = connect(redis_url)
    prefix = f"gwtest-parity-{uuid.uuid4().hex[:10]}"
    try:
        _check(r, prefix, batches)
    finally:
        keys = list(r.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


def _check(r: redis.Redis, prefix: str, batches: list[list[Fix]]) -> None:
    """Apply ``batches`` to both implementations and compare everything ADVANCE computes."""
    fixes = [f for b in batches for f in b]
    days = sorted({local_day(f.at) for f in fixes})
    mems = {d: memory(d) for d in days}
    red = RedisLiveState(
        r, prefix=prefix, tz=TZ, catalogue=CAT, areas=AREAS, area_of_grid=GRIDS, rules=RULES, now=T0
    )
    for batch in batches:
        for m in mems.values():
            m.apply_fixes(batch)
        red.apply_fixes(batch)

    # the latest state of every supervisor (fix, grid, stop): exact, Lua keeps the numbers' text
    last = max(f.at for f in fixes)
    some = mems[days[0]]
    for sid in sorted({*AREAS, *(f.supervisor for f in fixes)}):
        want = some.latest(sid)
        assert all(m.latest(sid) == want for m in mems.values())
        got = red.latest(sid)
        assert got == want, (sid, got, want)
        if want is not None and got is not None and want.at is not None:
            for now in (last, *(want.at + later for later in STATUS_AFTER)):
                assert status_at(got, now, RULES, GRIDS) is status_at(want, now, RULES, GRIDS)

    # patrol seconds per grid and local day (Python counts only its "today"; Lua files by the fix's day)
    for d, m in mems.items():
        want_s = {g: c.patrol_s for g, c in m.grid_counts().items() if c.patrol_s}
        got_s = {_s(g): float(v) for g, v in r.hgetall(red.k(f"patrol:{d.isoformat()}")).items()}
        assert set(got_s) == set(want_s), (d, got_s, want_s)
        for g, v in want_s.items():
            assert math.isclose(got_s[g], v, rel_tol=1e-12, abs_tol=1e-9), (d, g, got_s[g], v)
    patrol_days = set(r.scan_iter(f"{prefix}:patrol:*"))
    assert patrol_days <= {red.k(f"patrol:{d.isoformat()}").encode() for d in days}

    # what the next tick drains: supervisors that moved, grids credited with patrol time (any day)
    assert {_s(s) for s in r.smembers(red.k("dsup"))} == some._dirty_sups
    credited = set().union(*(m._patrol_grids for m in mems.values()))
    assert {_s(g) for g in r.smembers(red.k("dpatrol"))} == credited

    # the tick producer's view of the supervisors equals the memory state's on the day of the last fix
    m = mems[local_day(last)]
    m.tick(last)
    red.tick(last)
    assert red.snapshot(last).supervisors == m.snapshot(last).supervisors
