"""The one room bookkeeping of ``/live`` (feeds.sockets.Rooms) and the aggregator's store of it in Redis
(feeds.aggregator.RoomsInRedis): whatever a producer did, a successor restores the same rooms."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.aggregator import RoomsInRedis
from feeds.redis_live import connect
from feeds.sockets import Rooms

SIDS = st.sampled_from(["s1", "s2", "s3", "s4"])
ROOMS = st.sampled_from(["wall", "street:110101001", "grid:110101001001", "supervisor:p1"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("join"), SIDS, ROOMS),
        st.tuples(st.just("leave"), SIDS, ROOMS),
        st.tuples(st.just("drop"), SIDS, st.none()),
        st.tuples(st.just("tick"), st.none(), st.none()),
    ),
    max_size=40,
)


def test_rooms_forget_a_room_when_its_last_member_leaves() -> None:
    rooms = Rooms()
    rooms.add("a", "wall")
    rooms.add("b", "wall")
    rooms.add("a", "grid:1")
    assert rooms.drop("a") == ["wall", "grid:1"]
    assert rooms.names() == ["wall"] and rooms.has("b", "wall") and not rooms.has("a", "wall")
    rooms.remove("b", "wall")
    assert rooms.names() == [] and rooms.seq == {"wall": 0, "grid:1": 0}  # seq outlives the members


def kept_under(r: redis.Redis, prefix: str) -> RoomsInRedis:
    """The aggregator's room store on a key prefix of its own."""
    return RoomsInRedis(SimpleNamespace(r=r, k=lambda name: f"{prefix}:{name}"))  # type: ignore[arg-type]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = connect(redis_url)
    yield r
    r.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_a_successor_restores_what_the_producer_kept(
    client: redis.Redis, ops: list[tuple[str, str | None, str | None]]
) -> None:
    r, prefix = client, f"gwtest-{uuid.uuid4().hex[:10]}"
    kept = kept_under(r, prefix)
    here = Rooms()
    try:
        for op, sid, room in ops:  # what feeds.sockets.Broadcaster does with its store
            if op == "join" and sid and room:
                kept.joined(sid, room)
                here.add(sid, room)
            elif op == "leave" and sid and room:
                kept.left(sid, room)
                here.remove(sid, room)
            elif op == "drop" and sid:
                kept.dropped(sid, here.drop(sid))
            elif op == "tick":
                for name in here.names():
                    here.seq[name] += 1
                kept.sequenced(here.seq)
        back = kept.restore()
        assert back.members == here.members
        assert back.seq == {name: here.seq[name] for name in here.names()}
        # Redis lost everything: the producer writes its rooms back and a successor restores them again
        lost = list(r.scan_iter(f"{prefix}:*"))
        if lost:
            r.delete(*lost)
        kept.save(here)
        again = kept.restore()
        assert again.members == here.members and again.seq == back.seq
    finally:
        keys = list(r.scan_iter(f"{prefix}:*"))
        if keys:
            r.delete(*keys)
