"""Scale-out roles: web processes that only relay, and exactly one tick producer (the aggregator).

All processes share one Redis: the live state (:mod:`feeds.redis_live`), the Socket.IO message queue
(Flask-SocketIO ``message_queue`` on the deployment's :func:`channel`, ``async_mode="threading"``) and:

    P:lock          the producer lock: ``SET NX PX`` with a token, renewed every tick (TTL :data:`LOCK_TTL`)
    P:ctl           list of requests from web processes: join / leave / resync / drop of a ``/live`` client
    P:seq           hash room → last ``seq`` sent;  P:rooms set of rooms;  P:room:<room> set of members

A web process runs ``/device`` (the pipeline writes to the database and publishes to Redis) and ``/live``
with a :class:`RelayBroadcaster`: it authenticates screens, forwards their room requests to the
producer and disconnects its own slow clients; ticks, snapshots and room membership reach it through
the message queue, in the order the producer sent them, so a client sees its snapshot at ``seq`` and
then ``seq + 1``. The aggregator runs :class:`Aggregator`: whoever holds the lock ticks with a
:class:`SharedBroadcaster`, which keeps rooms, members and ``seq`` in Redis; when the holder dies its
lock expires and a standby takes over within the TTL (plus its polling interval), continues every
room's ``seq`` and sends each room a ``snapshot`` first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import redis
from flask_socketio import SocketIO
from sqlalchemy.engine import Engine

from feeds.loop import BackgroundLoop
from feeds.redis_live import RedisLiveState, ensure_built
from feeds.sockets import Broadcaster
from feeds.ticks import alert_matches, render, render_alert, room_filter

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


class SharedBroadcaster(Broadcaster):
    """The tick producer of a deployment: rooms, members and ``seq`` are kept in Redis for a successor."""

    def __init__(self, socketio: SocketIO, live: RedisLiveState, **kwargs: object) -> None:
        super().__init__(socketio, live, **kwargs)  # type: ignore[arg-type]
        self.rlive = live

    def k(self, name: str) -> str:
        """A key next to the live state's."""
        return self.rlive.k(name)

    def join(self, sid: str, room: str) -> None:
        """Add a client (on any web process) to a room and send its snapshot; remember the member."""
        with self._lock:
            pipe = self.rlive.r.pipeline()
            pipe.sadd(self.k("rooms"), room)
            pipe.sadd(self.k(f"room:{room}"), sid)
            pipe.hsetnx(self.k("seq"), room, 0)
            pipe.execute()
            super().join(sid, room)

    def leave(self, sid: str, room: str) -> None:
        """Drop a client from a room."""
        with self._lock:
            self.rlive.r.srem(self.k(f"room:{room}"), sid)
            super().leave(sid, room)

    def drop(self, sid: str) -> None:
        """Forget a disconnected client."""
        with self._lock:
            rooms = [r for r, m in self.rooms.items() if sid in m]
            pipe = self.rlive.r.pipeline()
            for room in rooms:
                pipe.srem(self.k(f"room:{room}"), sid)
            pipe.execute()
            super().drop(sid)

    def take_over(self) -> None:
        """Continue every room from Redis: reload the live state, send each room a snapshot at ``seq + 1``."""
        r = self.rlive.r
        with self._lock:
            rooms = sorted(
                m.decode() if isinstance(m, bytes) else str(m) for m in r.smembers(self.k("rooms"))
            )
            pipe = r.pipeline()
            for room in rooms:
                pipe.smembers(self.k(f"room:{room}"))
            pipe.hgetall(self.k("seq"))
            *members, seqs = pipe.execute()
            seq = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in seqs.items()}
            self.rooms = {}
            for room, sids in zip(rooms, members, strict=True):
                if sids:
                    self.rooms[room] = {s.decode() if isinstance(s, bytes) else s for s in sids}
            self.seq = {room: seq.get(room, 0) + 1 for room in self.rooms}
            if self.seq:
                r.hset(self.k("seq"), mapping=self.seq)  # type: ignore[arg-type]
            now = self.clock()
            self.rlive.producer = True
            self.rlive.load(now)
            view = self.rlive.snapshot(now)
            sim = self.simulated()
            for room in self.rooms:
                snap = render(view, room_filter(room), self.seq[room], full=True, simulated=sim)
                self.socketio.emit("snapshot", snap, namespace=self.namespace, to=room)

    def persist_rooms(self) -> None:
        """Write rooms, members and ``seq`` back (after Redis lost them)."""
        with self._lock:
            pipe = self.rlive.r.pipeline()
            for room, sids in self.rooms.items():
                pipe.sadd(self.k("rooms"), room)
                pipe.sadd(self.k(f"room:{room}"), *sids)
            if self.seq:
                pipe.hset(self.k("seq"), mapping=self.seq)  # type: ignore[arg-type]
            pipe.execute()

    def tick(self) -> None:
        """Drain the live state once; store every room's new ``seq``, then send the tick and alerts."""
        now = self.clock()
        with self._lock:
            view = self.live.tick(now)
            sim = self.simulated()
            plan: list[tuple[str, int, list[int]]] = []
            for room in list(self.rooms):
                flt = room_filter(room)
                n = self.seq.get(room, 0) + 1
                alerts = [i for i, a in enumerate(view.alerts) if alert_matches(a, flt)]
                plan.append((room, n, alerts))
                self.seq[room] = n + len(alerts)
            if self.seq:
                self.rlive.r.hset(self.k("seq"), mapping=self.seq)  # type: ignore[arg-type]
            for room, n, alerts in plan:
                flt = room_filter(room)
                body = render(view, flt, n, full=False, simulated=sim)
                self.socketio.emit("tick", body, namespace=self.namespace, to=room)
                for j, i in enumerate(alerts, start=1):
                    self.socketio.emit(
                        "alert", render_alert(view.alerts[i], room, n + j), namespace=self.namespace, to=room
                    )
            self.ticks += 1

    def request(self, raw: bytes | str) -> None:
        """Carry out one request of a web process (join, leave, resync, drop)."""
        try:
            req = orjson.loads(raw)
            op, sid, room = req["op"], str(req["sid"]), req.get("room")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed room request %r", raw[:200])
            return
        if op == "join" and isinstance(room, str):
            self.join(sid, room)
        elif op == "leave" and isinstance(room, str):
            self.leave(sid, room)
        elif op == "resync" and isinstance(room, str):
            self.resync(sid, room)
        elif op == "drop":
            self.drop(sid)


class RelayBroadcaster(Broadcaster):
    """A web process's side of ``/live``: forwards room requests to the producer, prunes slow clients.

    Its thread does not tick; every ``interval`` it disconnects local clients whose send queue is past
    the bound (they reconnect and get a snapshot).
    """

    def __init__(self, socketio: SocketIO, live: RedisLiveState, **kwargs: object) -> None:
        super().__init__(socketio, live, **kwargs)  # type: ignore[arg-type]
        self.rlive = live

    def _send(self, op: str, sid: str, room: str | None = None) -> None:
        pipe = self.rlive.r.pipeline()
        pipe.rpush(self.rlive.k("ctl"), orjson.dumps({"op": op, "sid": sid, "room": room}))
        pipe.ltrim(self.rlive.k("ctl"), -CTL_CAP, -1)
        try:
            pipe.execute()
        except redis.RedisError:
            log.warning("room request %s for %s not sent: Redis unavailable", op, sid)

    def join(self, sid: str, room: str) -> None:
        """Ask the producer to add the client to the room (it sends the snapshot)."""
        with self._lock:
            self.rooms.setdefault(room, set()).add(sid)
        self._send("join", sid, room)

    def leave(self, sid: str, room: str) -> None:
        """Ask the producer to drop the client from the room."""
        with self._lock:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self.rooms[room]
        self._send("leave", sid, room)

    def resync(self, sid: str, room: str) -> None:
        """Ask the producer for a fresh snapshot."""
        self._send("resync", sid, room)

    def drop(self, sid: str) -> None:
        """Forget a disconnected client here and at the producer."""
        with self._lock:
            for room in [r for r, m in self.rooms.items() if sid in m]:
                self.rooms[room].discard(sid)
                if not self.rooms[room]:
                    del self.rooms[room]
        self._send("drop", sid)

    def tick(self) -> None:
        """No ticks here: disconnect this process's slow clients."""
        with self._lock:
            for room in list(self.rooms):
                self._prune(room)

    def _prune(self, room: str) -> None:
        for sid in list(self.rooms.get(room, ())):
            if self._queued(sid) > self.max_queue:
                self.dropped += 1
                log.warning("dropping slow /live client %s (queue over %d)", sid, self.max_queue)
                self.drop(sid)
                self._cut(sid)


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
        self.broadcaster = SharedBroadcaster(
            socketio, live, interval=interval, simulated=simulated, clock=clock
        )
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
        if ensure_built(self.engine, self.live, self.clock()):  # Redis was empty: keep the rooms known here
            self.broadcaster.persist_rooms()
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
                        self.broadcaster.request(got[1])
            except redis.RedisError as exc:
                log.warning("aggregator: Redis unavailable (%s); retrying", exc)
                self.leading.clear()
                self.live.producer = False
                self._stop.wait(STANDBY_POLL)
            except Exception:
                log.exception("aggregator step failed")
                self._stop.wait(STANDBY_POLL)
