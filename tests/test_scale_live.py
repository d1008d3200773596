"""The live state on Redis (machine's Redis): same views as the memory state, latest fix only forward."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from domain.catalogue import load_catalogue
from domain.lifecycle import Accepted, Action, Actor, CaseEvent, CaseState, Command, Context, Role, apply
from domain.supervisor import Fix
from domain.workcalendar import load_calendar
from feeds import redis_live
from feeds.live import LiveReader, LiveWriter, MemoryLiveState, Place, View
from feeds.redis_live import RedisLiveState, connect

TZ = ZoneInfo("Asia/Shanghai")
CAT = load_catalogue("cjt214")
CTX = Context(catalogue=CAT, calendar=load_calendar())
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing
G1, G2, G3 = "110101001001001", "110101001001002", "110101002001001"
AREAS = {"s1": "110101001001", "s2": "110101001001", "s3": "110101002001"}
GRIDS = {G1: "110101001001", G2: "110101001001", G3: "110101002001"}
SUP = Actor("s1", Role.SUPERVISOR)
ACC = Actor("acc-1", Role.ACCEPTOR)
LEAD = Actor("lead-1", Role.SHIFT_LEADER)
DISP = Actor("disp-1", Role.DISPATCHER)
DEPT = Actor("dept-10", Role.DEPARTMENT, department="10")
REPORT = {"kind": "component", "class_code": "0101", "condition_code": "03", "source": "supervisor"}
EMERGENCY = {"kind": "event", "class_code": "0401", "condition_code": "01", "source": "supervisor"}


@pytest.fixture
def client(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    r = connect(redis_url)
    prefix = f"gwtest-{uuid.uuid4().hex[:10]}"
    yield r, prefix
    keys = list(r.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)


def memory() -> MemoryLiveState:
    return MemoryLiveState(tz=TZ, catalogue=CAT, areas=AREAS, area_of_grid=GRIDS, now=T0)


def on_redis(r: redis.Redis, prefix: str) -> RedisLiveState:
    return RedisLiveState(r, prefix=prefix, tz=TZ, catalogue=CAT, areas=AREAS, area_of_grid=GRIDS, now=T0)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def walk(sup: str, grid: str, start: float, seconds: list[int], lat: float = 39.9) -> list[Fix]:
    return [Fix(sup, at(start) + timedelta(seconds=s), 116.4, lat + s * 2e-5, grid) for s in seconds]


class Cases:
    """Commands applied with the real lifecycle; each change is published to every live state given."""

    def __init__(self, *lives: LiveWriter) -> None:
        self.lives = lives
        self.states: dict[str, CaseState] = {}
        self.history: list[tuple[CaseState, tuple[CaseEvent, ...], Place | None]] = []

    def do(self, case: str, action: Action, actor: Actor, when: datetime, place: Place | None = None,
           opinion: str = "", **data: object) -> None:  # fmt: skip
        out = apply(self.states.get(case), Command(action, case, actor, opinion, data), when, CTX)
        assert isinstance(out, Accepted), out
        self.states[case] = out.state
        self.history.append((out.state, tuple(out.events), place))
        for live in self.lives:
            live.apply_case(out.state, out.events, place)


def same(a: View, b: View) -> None:
    """Two views carry the same facts (events compared by content, order of sets normalised)."""
    assert a.supervisors == b.supervisors
    assert a.cases == b.cases
    assert sorted(a.gone) == sorted(b.gone)
    assert dict(a.grids) == dict(b.grids)
    assert a.kpi == b.kpi
    assert a.stages == b.stages
    assert a.street_stages == b.street_stages
    assert list(a.events) == list(b.events)
    assert sorted(a.alerts, key=repr) == sorted(b.alerts, key=repr)
    assert a.hours == b.hours
    assert a.ranking == b.ranking


def test_redis_state_gives_the_views_of_the_memory_state(client: tuple[redis.Redis, str]) -> None:
    r, prefix = client
    mem, red = memory(), on_redis(r, prefix)
    red.dump(memory())  # an empty, complete state
    lives = (mem, red)
    mem.tick(T0)
    red.tick(T0)
    cases = Cases(*lives)
    seen: list[View] = []

    def fixes(batch: list[Fix]) -> None:
        for live in lives:
            live.apply_fixes(batch)

    def tick(when: datetime) -> None:
        a, b = mem.tick(when), red.tick(when)
        same(a, b)
        seen.append(a)
        same(mem.snapshot(when), red.snapshot(when))

    fixes(walk("s1", G1, 0, [0, 20, 40]) + walk("s2", G2, 0, [0, 30]))
    fixes(walk("s1", G1, 0, [10]))
    cases.do("C1", Action.REPORT, SUP, at(1), Place(G1, G1[:9], 116.4, 39.9), **REPORT)
    cases.do("C2", Action.REPORT, SUP, at(1.5), Place(G3, G3[:9], 116.41, 39.91), **EMERGENCY)
    tick(at(2))
    cases.do("C1", Action.ACCEPT, ACC, at(3))
    cases.do("C1", Action.FILE, LEAD, at(4))
    cases.do("C1", Action.DISPATCH, DISP, at(5))
    boss = Actor("boss", Role.LEADER)
    cases.do("C1", Action.URGE, boss, at(5.5), opinion="快", deadline=at(20).isoformat())
    fixes(walk("s3", G1, 5, [0, 60, 120]))
    repeat = {**REPORT, "source": "hotline", "duplicate_of": "C1"}  # the same problem, called in (issue 21)
    cases.do("C3", Action.REPORT, ACC, at(5.2), Place(G1, G1[:9], 116.4, 39.9), **repeat)
    cases.do("C3", Action.MERGE, ACC, at(5.4), Place(G1, G1[:9], 116.4, 39.9), into="C1")
    tick(at(6))
    cases.do("C1", Action.URGE_REPLY, DEPT, at(6.5), opinion="已到场")
    cases.do("C1", Action.FEEDBACK, DEPT, at(7), opinion="done")
    cases.do("C1", Action.CHECK, SUP, at(7.3), opinion="未修好", passed=False)  # 返工
    cases.do("C1", Action.FEEDBACK, DEPT, at(7.6), opinion="redone")
    cases.do("C1", Action.CHECK, SUP, at(8), passed=True)
    cases.do("C1", Action.CLOSE, LEAD, at(9))
    tick(at(10))
    tick(at(30))
    # the scenario exercised what it is meant to: moves, patrol time, an emergency, a close, overdue, offline
    assert seen[0].supervisors and any(a.kind == "emergency" for a in seen[0].alerts)
    assert seen[0].grids[G1].patrol_s == 40.0  # the out-of-order fix credited nothing
    assert any(s.status == "out_of_area" for s in seen[1].supervisors)
    assert [c.urge_due for c in seen[1].cases if c.id == "C1"] == [at(20)]  # its 督办单's reply deadline
    # a merged repeat is one problem: today's reports and G1's count it once, in memory and in the Lua
    assert seen[1].kpi is not None and seen[1].kpi["reported"] == 2 and seen[1].grids[G1].reported == 1
    assert (
        [c for c, _, _ in seen[2].gone] == ["C1"] and seen[2].kpi is not None and seen[2].kpi["closed"] == 1
    )
    # 应结案 today = 处置 2 − 返工 1 (+ nothing handling late): 结案率 1/1, counted alike by the Lua
    assert (seen[2].kpi["close_rate"], seen[2].kpi["on_time_rate"]) == (1.0, 1.0)
    assert {a.kind for a in seen[3].alerts} >= {"overdue", "offline"}
    # another process reading Redis (not the producer) sees the same city, statuses and overdue included
    reader = on_redis(r, prefix)
    same(reader.snapshot(at(30)), mem.snapshot(at(30)))
    assert reader.grid_counts()[G3].overdue == 1


def answers(live: LiveReader, when: datetime, cases: list[str]) -> dict[str, Any]:
    """What every method of the reader interface answers (collections ordered by id), at ``when``."""
    sups = sorted({*AREAS, "s9", "nobody"})
    grids = sorted({*GRIDS, "110101009009009"})
    snap = live.snapshot(when)  # first: a reader process loads its mirror as of ``when``
    return {
        "tz": live.tz,
        "catalogue": live.catalogue,
        "rules": live.rules,
        "area_of_grid": dict(live.area_of_grid),
        "latest": {s: live.latest(s) for s in sups},
        "supervisor_views": sorted(live.supervisor_views(), key=lambda v: v.id),
        "open_cases": sorted(live.open_cases(), key=lambda c: c.id),
        "open_case": {c: live.open_case(c) for c in [*cases, "C-unknown"]},
        "grid_count": {g: live.grid_count(g) for g in grids},
        "grid_counts": live.grid_counts(),
        "overdue_ids": live.overdue_ids(),
        "snapshot": (
            snap.supervisors, snap.cases, dict(snap.grids), snap.kpi, snap.stages, snap.street_stages,
            list(snap.events), snap.hours, snap.ranking,
        ),
    }  # fmt: skip


def test_every_reader_answer_is_the_same_on_redis_and_in_memory(
    client: tuple[redis.Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same writes through the writer interface; every reader method answers alike on the memory
    state, the Redis tick producer and another Redis process (its mirror loaded once, at the instant)."""
    covered = {"tick"}  # compared by ``same`` below; the rest by ``answers``
    r, prefix = client
    monkeypatch.setattr(redis_live, "FRESH_S", 3600.0)  # a reader's mirror stays as loaded at ``when``
    mem, red = memory(), on_redis(r, prefix)
    red.dump(memory())
    mem.tick(T0)
    red.tick(T0)  # the producer's first tick loads Redis (a takeover: its view carries nothing)
    writers: tuple[LiveWriter, ...] = (mem, red)
    cases = Cases(*writers)
    ids: list[str] = []

    def check(when: datetime) -> None:
        same(mem.tick(when), red.tick(when))
        want = answers(mem, when, ids)
        assert answers(red, when, ids) == want
        assert answers(on_redis(r, prefix), when, ids) == want  # another process reading Redis
        covered.update(want)

    for w in writers:
        w.apply_fixes(walk("s1", G1, 0, [0, 20, 40]) + walk("s2", G2, 0, [0, 30]) + walk("s9", G3, 0, [0]))
        w.set_ranking([{"street": G1[:9], "score": 97.5}])
    cases.do("C1", Action.REPORT, SUP, at(1), Place(G1, G1[:9], 116.4, 39.9), **REPORT)
    cases.do("C2", Action.REPORT, SUP, at(1.5), Place(G3, G3[:9], 116.41, 39.91), **EMERGENCY)
    ids += ["C1", "C2"]
    check(at(2))
    cases.do("C1", Action.ACCEPT, ACC, at(3))
    cases.do("C1", Action.FILE, LEAD, at(4))
    cases.do("C1", Action.DISPATCH, DISP, at(5))
    for w in writers:
        w.apply_fixes(walk("s3", G1, 5, [0, 60, 120]))
        w.touch_case("C2")
    check(at(6))
    cases.do("C1", Action.FEEDBACK, DEPT, at(7), opinion="done")
    cases.do("C1", Action.CHECK, SUP, at(8), passed=True)
    cases.do("C1", Action.CLOSE, LEAD, at(9))
    check(at(10))
    check(at(30))  # offline supervisors, C2 overdue
    # the scenario reached what it is meant to, and every reader method was compared
    final = answers(mem, at(30), ids)
    assert final["open_case"]["C1"] is None and final["open_case"]["C2"] is not None
    assert final["overdue_ids"] == {"C2"} and final["grid_count"][G3].overdue == 1
    assert final["latest"]["s9"] is not None and final["latest"]["nobody"] is None
    assert "offline" in {v.status for v in final["supervisor_views"]}
    reader_methods = {n for n in dir(LiveReader) if not n.startswith("_")}
    assert reader_methods <= covered, reader_methods - covered


def test_a_new_producer_takes_over_without_an_alert_storm(client: tuple[redis.Redis, str]) -> None:
    r, prefix = client
    old = on_redis(r, prefix)
    old.dump(memory())
    old.apply_fixes(walk("s1", G1, 0, [0, 20]) + walk("s2", G2, 0, [0]))
    Cases(old).do("C1", Action.REPORT, SUP, at(1), Place(G1, G1[:9], 116.4, 39.9), **EMERGENCY)
    first = old.tick(at(2))
    assert {s.id for s in first.supervisors} == {"s1", "s2"} and len(first.alerts) == 1
    old.tick(at(20))  # both offline, C1 overdue: alerts raised once, by the old producer
    new = on_redis(r, prefix)  # the old producer died; the new one loads Redis's state
    taken = new.tick(at(20) + timedelta(seconds=1))
    assert taken.alerts == () and taken.supervisors == ()
    same(new.snapshot(at(20)), old.snapshot(at(20)))
    new.apply_fixes(walk("s1", G1, 21, [0]))  # and goes on producing what changes
    assert [s.status for s in new.tick(at(21.1)).supervisors] == ["on_duty"]


def test_latest_fix_moves_only_forward_under_concurrent_writers(client: tuple[redis.Redis, str]) -> None:
    r, prefix = client
    fixes = walk("s1", G1, 0, list(range(0, 400, 2)))
    rng = random.Random(6)
    chunks = [fixes[i::4] for i in range(4)]
    for chunk in chunks:
        rng.shuffle(chunk)
    writers = [on_redis(connect(_url(r)), prefix) for _ in chunks]

    def write(live: RedisLiveState, chunk: list[Fix]) -> None:
        for i in range(0, len(chunk), 7):
            live.apply_fixes(chunk[i : i + 7])

    threads = [threading.Thread(target=write, args=(w, c)) for w, c in zip(writers, chunks, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latest = writers[0].latest("s1")
    assert latest is not None and latest.at == fixes[-1].at and latest.lat == fixes[-1].lat
    writers[1].apply_fixes([fixes[0]])  # a late, older fix never moves it back
    assert writers[2].latest("s1") == latest
    assert writers[0].latest("nobody") is None


def _url(r: redis.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


def test_an_older_case_state_published_late_is_ignored(client: tuple[redis.Redis, str]) -> None:
    r, prefix = client
    red = on_redis(r, prefix)
    red.dump(memory())
    cases = Cases()
    cases.do("C1", Action.REPORT, SUP, at(1), Place(G1, G1[:9], 116.4, 39.9), **REPORT)
    cases.do("C1", Action.ACCEPT, ACC, at(3))
    (s1, e1, p1), (s2, e2, p2) = cases.history
    red.apply_case(s1, e1, p1)
    red.apply_case(s2, e2, p2)
    red.apply_case(s1, (), p1)  # a second consumer publishes the older state after the newer one
    live = red.open_case("C1")
    assert live is not None and live.status == s2.status.value
    assert red.snapshot(at(4)).grids[G1].open == 1  # counted once
