"""Scale-out roles: web processes that only relay, and exactly one tick producer (the aggregator).

All processes share one Redis: the live state (:mod:`feeds.redis_live`), the Socket.IO message queue
(Flask-SocketIO ``message_queue`` on the deployment's :func:`channel`, ``async_mode="threading"``) and:

    P:lock          the producer lock: ``SET NX PX`` with a token, renewed every tick (TTL :data:`LOCK_TTL`)
    P:ctl           list of requests from web processes: join / leave / resync / drop of a ``/live`` client
    P:seq           hash room → last ``seq`` sent;  P:rooms set of rooms;  P:room:<room> set of members

A web process runs ``/device`` (the pipeline writes to the database and publishes to Redis) and ``/live``
with a :class:`Relay` as its door: it authenticates screens, forwards their room requests to the
producer and disconnects its own slow clients; ticks, snapshots and room membership reach it through
the message queue, in the order the producer sent them, so a client sees its snapshot at ``seq`` and
then ``seq + 1``. The aggregator runs :class:`Aggregator`: whoever holds the lock ticks with the one
:class:`feeds.sockets.Broadcaster`, whose rooms, members and ``seq`` are kept in Redis
(:class:`RoomsInRedis`); when the holder dies its
lock expires and a standby takes over within the TTL (plus its polling interval), continues every
room's ``seq`` and sends each room a ``snapshot`` first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson
import redis
from flask_socketio import SocketIO
from sqlalchemy.engine import Engine

from feeds import socketlib
from feeds.loop import BackgroundLoop
from feeds.redis_live import RedisLiveState, ensure_built
from feeds.sockets import Broadcaster, Rooms, SlowClients, join_when_connected

log = logging.getLogger(__name__)

CHANNEL = "gridwall"  # the Socket.IO message-queue channels of GridWall: CHANNEL:<redis prefix>
LOCK_TTL = 5.0  # seconds; a dead producer is replaced within this (plus STANDBY_POLL)
STANDBY_POLL = 0.25  # seconds between a standby's attempts to take the lock
CTL_CAP = 10_000  # room requests kept while no producer runs

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def channel(prefix: str) -> str:
    """The message-queue channel of the deployment whose keys start with ``prefix``.

    Redis Pub/Sub ignores database numbers: two deployments on one Redis server (databases 14 and
    15, or two prefixes) would hear each other's ticks on a shared channel — a screen then sees
    another deployment's ``seq`` as repeats and gaps. One channel per prefix keeps them apart.
    """
    return f"{CHANNEL}:{prefix}"


def queue_socketio(redis_url: str, prefix: str) -> SocketIO:
    """A write-only Socket.IO emitter on the deployment's message queue (for processes without clients)."""
    return SocketIO(message_queue=redis_url, channel=channel(prefix), async_mode="threading")


class ProducerLock:
    """A Redis lock with a TTL: held by one process, renewed while it lives, taken over when it dies."""

    def __init__(self, client: redis.Redis, key: str, ttl: float = LOCK_TTL) -> None:
        self.r, self.key, self.ttl = client, key, ttl
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lock if nobody holds it (or keep it if this process still does)."""
        return bool(self.r.set(self.key, self.token, nx=True, px=int(self.ttl * 1000))) or self.renew()

    def renew(self) -> bool:
        """Extend the lock if this process still holds it."""
        return bool(self._renew(keys=[self.key], args=[self.token, int(self.ttl * 1000)]))

    def release(self) -> None:
        """Give the lock up (only if held)."""
        self._release(keys=[self.key], args=[self.token])


class RoomsInRedis:
    """The aggregator's room store (:class:`feeds.sockets.RoomStore`): rooms, members and ``seq`` in
    Redis, so a standby that takes the lock continues every room."""

    def __init__(self, live: RedisLiveState) -> None:
        self.r = live.r
        self.k = live.k

    def joined(self, sid: str, room: str) -> None:
        """Remember the member (a new room starts at ``seq`` 0)."""
        pipe = self.r.pipeline()
        pipe.sadd(self.k("rooms"), room)
        pipe.sadd(self.k(f"room:{room}"), sid)
        pipe.hsetnx(self.k("seq"), room, 0)
        pipe.execute()

    def left(self, sid: str, room: str) -> None:
        """Forget the member."""
        self.r.srem(self.k(f"room:{room}"), sid)

    def dropped(self, sid: str, rooms: Sequence[str]) -> None:
        """Forget a disconnected client in every room it was in."""
        if rooms:
            pipe = self.r.pipeline()
            for room in rooms:
                pipe.srem(self.k(f"room:{room}"), sid)
            pipe.execute()

    def sequenced(self, seq: dict[str, int]) -> None:
        """Store every room's ``seq`` before the tick that reaches it is sent."""
        if seq:
            self.r.hset(self.k("seq"), mapping=seq)  # type: ignore[arg-type]

    def restore(self) -> Rooms:
        """The rooms with members, and their last ``seq``."""
        names = sorted(_text(m) for m in self.r.smembers(self.k("rooms")))
        pipe = self.r.pipeline()
        for room in names:
            pipe.smembers(self.k(f"room:{room}"))
        pipe.hgetall(self.k("seq"))
        *members, seqs = pipe.execute()
        seq = {_text(k): int(v) for k, v in seqs.items()}
        rooms = Rooms()
        for room, sids in zip(names, members, strict=True):
            if sids:
                rooms.members[room] = {_text(s) for s in sids}
                rooms.seq[room] = seq.get(room, 0)
        return rooms

    def save(self, rooms: Rooms) -> None:
        """Write every room, its members and ``seq`` back (Redis lost them)."""
        pipe = self.r.pipeline()
        for room, sids in rooms.members.items():
            pipe.sadd(self.k("rooms"), room)
            pipe.sadd(self.k(f"room:{room}"), *sids)
        if rooms.seq:
            pipe.hset(self.k("seq"), mapping=rooms.seq)  # type: ignore[arg-type]
        pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def carry_out(broadcaster: Broadcaster, raw: bytes | str) -> None:
    """Carry out one room request of a web process (join, leave, resync, drop) at the producer."""
    try:
        req = orjson.loads(raw)
        op, sid, room = req["op"], str(req["sid"]), req.get("room")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        log.warning("ignoring a malformed room request %r", raw[:200])
        return
    if op == "join" and isinstance(room, str):
        broadcaster.join(sid, room)
    elif op == "leave" and isinstance(room, str):
        broadcaster.leave(sid, room)
    elif op == "resync" and isinstance(room, str):
        broadcaster.resync(sid, room)
    elif op == "drop":
        broadcaster.drop(sid)


class Relay(BackgroundLoop):
    """A web process's side of ``/live`` (its :class:`feeds.sockets.Door`): room requests go to the
    producer through ``P:ctl``; every ``interval`` this process's slow clients are cut (they reconnect
    and get a snapshot). Snapshots and ticks come from the producer through the message queue."""

    thread_name = "gw-relay"
    join_timeout = 5.0

    def __init__(
        self, socketio: SocketIO, live: RedisLiveState, *, interval: float = 1.0, namespace: str = "/live",
        max_queue: int = 64,
    ) -> None:  # fmt: skip
        super().__init__()
        socketlib.steady_message_queue()  # ticks arrive through the queue: hear them again when Redis is back
        self.socketio = socketio
        self.live = live
        self.interval = interval
        self.namespace = namespace
        self.rooms = Rooms()  # this process's clients only
        self.slow = SlowClients(socketio, namespace, max_queue)
        self._lock = threading.Lock()

    def _send(self, op: str, sid: str, room: str | None = None) -> None:
        pipe = self.live.r.pipeline()
        pipe.rpush(self.live.k("ctl"), orjson.dumps({"op": op, "sid": sid, "room": room}))
        pipe.ltrim(self.live.k("ctl"), -CTL_CAP, -1)
        try:
            pipe.execute()
        except redis.RedisError:
            log.warning("room request %s for %s not sent: Redis unavailable", op, sid)

    def join(self, sid: str, room: str) -> None:
        """Ask the producer to add the client to the room (it sends the snapshot)."""
        with self._lock:
            self.rooms.add(sid, room)
        self._send("join", sid, room)

    def join_when_connected(self, sid: str, room: str, timeout: float = 5.0) -> None:
        """Join once the Socket.IO handshake of ``sid`` is complete (called from a connect handler)."""
        join_when_connected(self, sid, room, self.namespace, timeout)

    def leave(self, sid: str, room: str) -> None:
        """Ask the producer to drop the client from the room."""
        with self._lock:
            self.rooms.remove(sid, room)
        self._send("leave", sid, room)

    def resync(self, sid: str, room: str) -> None:
        """Ask the producer for a fresh snapshot."""
        self._send("resync", sid, room)

    def drop(self, sid: str) -> None:
        """Forget a disconnected client here and at the producer."""
        with self._lock:
            self.rooms.drop(sid)
        self._send("drop", sid)

    def has(self, sid: str, room: str) -> bool:
        """Whether a client of this process is in a room."""
        return self.rooms.has(sid, room)

    @property
    def dropped(self) -> int:
        """Slow clients cut so far."""
        return self.slow.dropped

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self._lock:
                    sids = sorted({s for room in self.rooms.names() for s in self.rooms.sids(room)})
                self.slow.prune(sids, self.drop)
            except Exception:
                log.exception("relay: pruning failed")


class Aggregator(BackgroundLoop):
    """The aggregator role: standby until it holds the producer lock, then ticks and serves room requests."""

    thread_name = "gw-aggregator"

    def __init__(
        self,
        engine: Engine,
        live: RedisLiveState,
        socketio: SocketIO,
        *,
        interval: float = 1.0,
        ttl: float = LOCK_TTL,
        simulated: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] | None = None,
        on_lead: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.live = live
        self.interval = interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = ProducerLock(live.r, live.k("lock"), ttl)
        self.broadcaster = Broadcaster(
            socketio, live, interval=interval, simulated=simulated, clock=clock, store=RoomsInRedis(live),
            serves=False,
        )  # fmt: skip
        self.on_lead = on_lead
        self.leading = threading.Event()
        self.takeovers = 0
        self.tick_seconds = 0.0  # how long the last tick took

    def stop(self) -> None:
        """Stop producing and give the lock up."""
        super().stop()
        with contextlib.suppress(redis.RedisError):
            self.lock.release()

    def _lead(self) -> None:
        now = self.clock()
        if ensure_built(self.engine, self.live, now):  # Redis was empty: keep the rooms known here
            self.broadcaster.save_rooms()
        self.live.producer = True
        self.live.load(now)  # the Redis state into this producer's mirror
        self.broadcaster.take_over()
        self.takeovers += 1
        self.leading.set()
        log.info("aggregator %s now produces ticks", self.lock.token[:8])
        if self.on_lead is not None:
            self.on_lead()

    def _run(self) -> None:
        ctl = self.live.k("ctl")
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if not self.leading.is_set():
                    if self.lock.acquire():
                        self._lead()
                        next_at = time.monotonic()
                    else:
                        self._stop.wait(STANDBY_POLL)
                    continue
                if not self.lock.renew():
                    log.warning("aggregator lost the producer lock; standing by")
                    self.leading.clear()
                    self.live.producer = False
                    continue
                if not self.live.is_built():  # Redis restarted without persistence: rebuild, resend
                    log.warning("Redis lost the live state; rebuilding it from the database")
                    self._lead()
                started = time.monotonic()
                self.broadcaster.tick()
                self.tick_seconds = time.monotonic() - started
                next_at += self.interval  # ticks on a fixed schedule; fell behind: skip, never burst
                if next_at < time.monotonic():
                    next_at = time.monotonic()
                    log.warning("aggregator behind: a tick took %.2f s", self.tick_seconds)
                while not self._stop.is_set():
                    left = next_at - time.monotonic()
                    if left <= 0:
                        break
                    got = self.live.r.blpop([ctl], timeout=max(0.01, min(left, 1.0)))
                    if got is not None:
                        carry_out(self.broadcaster, got[1])
            except redis.RedisError as exc:
                log.warning("aggregator: Redis unavailable (%s); retrying", exc)
                self.leading.clear()
                self.live.producer = False
                self._stop.wait(STANDBY_POLL)
            except Exception:
                log.exception("aggregator step failed")
                self._stop.wait(STANDBY_POLL)
