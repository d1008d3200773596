"""Socket.IO namespaces: ``/device`` (handsets and gateways in) and ``/live`` (screens out).

``/device``: connect with ``auth={"token": …}`` (a device or gateway token). Events ``position``,
``positions``, ``report``, ``task_ack``, ``task_result`` and — gateways speaking for centre or
department operators — ``command``; each is answered through the Socket.IO acknowledgement with
``{"accepted": [...], "duplicates": [...], "rejected": [{"id", "reason", "message"}]}``. The
server sends ``task`` to a device (or to the gateways that speak for it).

``/live``: connect with a kiosk token (``auth.token`` or ``?token=``); the connection joins room
``wall`` and receives a ``snapshot`` at once. ``join``/``leave``/``resync`` take ``{"room": …}``.
The server sends only ``snapshot``, ``tick`` and ``alert``, each with ``room`` and ``seq`` (per
room). Exactly one :class:`Broadcaster` produces ticks in a deployment; ``/live`` reaches it through
its :class:`Door`: the broadcaster itself (embedded) or a web process's relay (scale-out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from flask import request
from flask_socketio import Namespace, SocketIO
from socketio.exceptions import ConnectionRefusedError as Refused
from sqlalchemy.engine import Engine

from feeds import socketlib
from feeds.checks import KINDS
from feeds.ingest import Ingest
from feeds.live import LiveReader
from feeds.loop import BackgroundLoop
from feeds.outage import Outages
from feeds.publish import TaskOut
from feeds.schemas import Reason
from feeds.ticks import pick_alerts, render, render_alert, room_filter
from store.accounts import AuthError, Principal, authenticate, stale_tokens

log = logging.getLogger(__name__)
Reply = Callable[[dict[str, Any]], None]
KIOSK_COOKIE = "gw_kiosk"  # set by the /wall page for the kiosk token (gridwall.web)


class TokenBucket:
    """A per-connection rate limit: ``rate`` events a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connections:
    """Who is connected to ``/device``: principal and rate bucket per Socket.IO sid.

    Shared by the namespace (which fills it) and the :class:`TaskSender` (which reads the gateways),
    so that the pipeline can be built with its task sender before the namespace that feeds it.
    """

    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()

    def gateways(self) -> list[Principal]:
        """The connected gateways (a process without ``/device`` clients has none)."""
        with self.lock:
            return [p for p in self.principals.values() if p.kind == "gateway"]


class TaskSender:
    """Sends ``task`` to each assignee's handset and to the connected gateways that speak for them.

    ``emitter`` is the process's Socket.IO server, or (a scale-out ingest process, which has no clients)
    a write-only emitter on the message queue: then only the handset's person room is reached.
    """

    def __init__(self, emitter: Any, connections: Connections, namespace: str = "/device") -> None:
        self.emitter, self.connections, self.namespace = emitter, connections, namespace

    def __call__(self, tasks: Sequence[TaskOut]) -> None:
        """Send each task (called by the pipeline after the commit that made it)."""
        gateways = [(p.token_id, p) for p in self.connections.gateways()]
        for t in tasks:
            body = {
                "case_id": t.case_id,
                "task": t.task,
                "supervisor": t.supervisor,
                "deadline": t.deadline.isoformat(),
                "lon": t.place.lon,
                "lat": t.place.lat,
                "grid": t.place.grid,
                "kind": t.kind,
                "class_code": t.class_code,
            }
            self.emitter.emit("task", body, namespace=self.namespace, to=f"person:{t.supervisor}")
            for token_id in sorted({tid for tid, p in gateways if p.may_speak_for(t.supervisor)}):
                self.emitter.emit("task", body, namespace=self.namespace, to=f"token:{token_id}")


class DeviceNamespace(Namespace):
    """``/device``: authenticated handsets and gateways send fixes, reports and task results."""

    def __init__(
        self,
        engine: Engine,
        pipeline: Ingest,
        *,
        connections: Connections | None = None,
        namespace: str = "/device",
        device_rate: tuple[float, float] = (10.0, 40.0),
        gateway_rate: tuple[float, float] = (500.0, 2000.0),
    ) -> None:
        super().__init__(namespace)
        self.engine = engine
        self.pipeline = pipeline
        self.device_rate, self.gateway_rate = device_rate, gateway_rate
        self.connections = connections if connections is not None else Connections()
        self.principals = self.connections.principals
        self.buckets = self.connections.buckets
        self._lock = self.connections.lock

    def on_connect(self, auth: Any = None) -> None:
        """Authenticate the token; refuse with a named reason (and a dead-letter row)."""
        secret = auth.get("token") if isinstance(auth, dict) else None
        try:
            with self.engine.connect() as conn:
                who = authenticate(conn, secret if isinstance(secret, str) else None, ("device", "gateway"))
        except AuthError as exc:
            self.pipeline.reject(
                "connect", {"remote": request.remote_addr}, f"connect:{request.remote_addr}",
                exc.reason, f"refused /device connection: {exc.reason}",  # type: ignore[arg-type]
            )  # fmt: skip
            raise Refused(exc.reason) from None
        sid = request.sid  # type: ignore[attr-defined]
        rate = self.device_rate if who.kind == "device" else self.gateway_rate
        with self._lock:
            self.principals[sid] = who
            self.buckets[sid] = TokenBucket(*rate)
        self.enter_room(sid, f"token:{who.token_id}")
        if who.person_id:
            self.enter_room(sid, f"person:{who.person_id}")

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the connection."""
        sid = request.sid  # type: ignore[attr-defined]
        with self._lock:
            self.principals.pop(sid, None)
            self.buckets.pop(sid, None)

    def sweep_revoked(self) -> int:
        """Cut the connections whose token was revoked (or whose supervisor left) since they connected.

        Each gets ``revoked`` ``{"reason", "message"}`` first (docs/protocol.md), so a handset can say
        why; the token is refused at its next connect. Returns how many connections were cut.
        """
        with self._lock:
            held = dict(self.principals)
        if not held:
            return 0
        with self.engine.connect() as conn:
            gone = stale_tokens(conn, {who.token_id for who in held.values()})
        cut = 0
        for sid, who in held.items():
            reason = gone.get(who.token_id)
            if reason is None:
                continue
            message = f"the token {who.name!r} was revoked: this connection is closed"
            self.emit("revoked", {"reason": reason, "message": message}, room=sid)
            self.disconnect(sid)
            with self._lock:
                self.principals.pop(sid, None)
                self.buckets.pop(sid, None)
            cut += 1
        if cut:
            log.info("/device: %d connection(s) of revoked tokens closed", cut)
        return cut

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Route every data event through the pipeline; unknown events are rejected by name."""
        if event in ("connect", "disconnect"):
            return super().trigger_event(event, *args)
        sid = args[0] if args else None
        payload = args[1] if len(args) > 1 else None
        return self._dispatch(sid, event, payload, None)

    def _dispatch(self, sid: Any, event: str, payload: Any, reply: Reply | None) -> Any:
        """A data event's acknowledgement, or (with ``reply``) None: the acknowledgement goes to ``reply``."""
        who = self.principals.get(sid) if isinstance(sid, str) else None
        if who is None:
            ack = {"accepted": [], "duplicates": [], "rejected": [{"id": "?", "reason": "token_unknown",
                   "message": "not authenticated"}]}  # fmt: skip
            return ack if reply is None else reply(ack)
        source = f"{who.kind}:{who.name}"
        reason, message = None, ""
        if event not in KINDS:
            reason, message = Reason.MALFORMED, f"unknown event {event!r}"
        else:
            bucket = self.buckets.get(sid)
            if bucket is not None and not bucket.take():
                reason, message = Reason.RATE_LIMITED, "too many events"
        if reply is None:
            if reason is not None:
                return self.pipeline.reject(event, payload, source, reason, message)
            return self.pipeline.submit(event, payload, who, source=source)
        if reason is not None:
            return self.pipeline.reject_nowait(event, payload, source, reason, message, reply)
        return self.pipeline.submit_nowait(event, payload, who, reply, source=source)

    def _set_server(self, server: Any) -> None:
        """Registered with python-socketio's server: acknowledged data events skip its thread per event.

        python-socketio runs every event in a new thread (``async_handlers``) that here would only wait
        for the commit; instead an acknowledged event of this namespace is parsed and filtered on the
        connection's reader thread, queued to the pipeline, and acknowledged from the pipeline's
        acknowledgement thread after the commit (``Pipeline.submit_nowait``). Events of a connection
        reach the pipeline in the order they arrived. Everything else takes python-socketio's own path
        (the hook into its internals: :func:`feeds.socketlib.intercept_acked_events`).
        """
        super()._set_server(server)
        socketlib.bound_packet_json()
        socketlib.quiet_closed_sockets()
        socketlib.refuse_reserved_events(server, self._reserved)
        socketlib.intercept_acked_events(server, self.namespace, self._event)

    def _reserved(self, eio_sid: str, namespace: str, ack_id: int, name: str) -> None:
        """The answer to an acknowledged client event named ``connect``/``disconnect``: on ``/device``
        a ``malformed`` refusal (an unknown event), elsewhere the empty answer of an ignored event."""
        server = self.server
        if namespace != self.namespace:
            socketlib.send_ack(server, eio_sid, namespace, ack_id, [])
            return

        def reply(ack: dict[str, Any]) -> None:
            socketlib.send_ack(server, eio_sid, namespace, ack_id, [ack])

        self._dispatch(server.manager.sid_from_eio_sid(eio_sid, namespace), name, None, reply)

    def _event(self, eio_sid: str, ack_id: int, data: Any) -> bool:
        """Take one acknowledged event off python-socketio's path (False: leave it to python-socketio)."""
        server = self.server
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return False
        if server.handlers.get(self.namespace):
            return False
        sid = server.manager.sid_from_eio_sid(eio_sid, self.namespace)
        if sid is None or not server.manager.is_connected(sid, self.namespace):
            return False

        def reply(ack: dict[str, Any]) -> None:
            socketlib.send_ack(server, eio_sid, self.namespace, ack_id, [ack])

        try:
            self._dispatch(sid, data[0], data[1] if len(data) > 1 else None, reply)
        except Exception:  # as python-socketio would: log it, keep the connection, send no acknowledgement
            log.exception("%s handler error", data[0])
        return True


class TokenWatch(BackgroundLoop):
    """Every ``every`` seconds: close the ``/device`` connections of revoked tokens (a revoked handset
    stops at once, whichever process or command revoked it)."""

    thread_name = "gw-token-watch"

    def __init__(self, device: DeviceNamespace, every: float = 2.0) -> None:
        super().__init__()
        self.device, self.every = device, every

    def _run(self) -> None:
        outages = Outages(log, "token watch")
        while not self._stop.wait(self.every):
            try:
                self.device.sweep_revoked()
                outages.ok()
            except Exception as exc:
                outages.failed(exc)


class Rooms:
    """Which clients are in which room, and each room's last ``seq``: the one bookkeeping of ``/live``."""

    def __init__(self) -> None:
        self.members: dict[str, set[str]] = {}
        self.seq: dict[str, int] = {}

    def add(self, sid: str, room: str) -> None:
        """Put a client in a room (a new room starts at ``seq`` 0)."""
        self.members.setdefault(room, set()).add(sid)
        self.seq.setdefault(room, 0)

    def remove(self, sid: str, room: str) -> None:
        """Take a client out of a room; a room left empty is forgotten (its ``seq`` stays)."""
        members = self.members.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self.members[room]

    def drop(self, sid: str) -> list[str]:
        """Take a client out of every room; the rooms it was in."""
        rooms = [r for r, m in self.members.items() if sid in m]
        for room in rooms:
            self.remove(sid, room)
        return rooms

    def has(self, sid: str, room: str) -> bool:
        """Whether a client is in a room."""
        return sid in self.members.get(room, ())

    def names(self) -> list[str]:
        """The rooms with members."""
        return list(self.members)

    def sids(self, room: str) -> list[str]:
        """The members of a room."""
        return list(self.members.get(room, ()))


class RoomStore(Protocol):
    """Where the tick producer keeps rooms, members and ``seq`` for a successor.

    Embedded (:class:`KeptHere`): nowhere else — a restart is a new producer, screens reconnect to a
    snapshot. Scale-out (:class:`feeds.aggregator.RoomsInRedis`): in Redis, so a standby aggregator
    continues every room's ``seq``.
    """

    def joined(self, sid: str, room: str) -> None:
        """A client joined a room."""

    def left(self, sid: str, room: str) -> None:
        """A client left a room."""

    def dropped(self, sid: str, rooms: Sequence[str]) -> None:
        """A client disconnected from these rooms."""

    def sequenced(self, seq: dict[str, int]) -> None:
        """Every room's ``seq`` as it will be once the tick being planned is sent (before it is sent)."""

    def restore(self) -> Rooms:
        """The rooms and ``seq`` a successor continues from."""
        ...

    def save(self, rooms: Rooms) -> None:
        """Write every room back (the store lost them)."""


class KeptHere:
    """The embedded room store: the producer's own memory is all there is."""

    def joined(self, sid: str, room: str) -> None:
        """Nothing to keep elsewhere."""

    def left(self, sid: str, room: str) -> None:
        """Nothing to keep elsewhere."""

    def dropped(self, sid: str, rooms: Sequence[str]) -> None:
        """Nothing to keep elsewhere."""

    def sequenced(self, seq: dict[str, int]) -> None:
        """Nothing to keep elsewhere."""

    def restore(self) -> Rooms:
        """A new producer starts with no rooms."""
        return Rooms()

    def save(self, rooms: Rooms) -> None:
        """Nothing to keep elsewhere."""


class Door(Protocol):
    """What ``/live`` asks of the deployment's broadcasting for its clients.

    Embedded, the door is the :class:`Broadcaster` itself (local: a join is carried out at once);
    on a scale-out web process it is :class:`feeds.aggregator.Relay` (a join is sent to the producer,
    whose snapshot and ticks come back through the message queue).
    """

    @property
    def socketio(self) -> SocketIO:
        """The process's Socket.IO server."""
        ...

    @property
    def live(self) -> LiveReader:
        """The live state (``/live`` checks a room's area against it)."""
        ...

    def join(self, sid: str, room: str) -> None:
        """Add a client to a room; its snapshot follows."""

    def join_when_connected(self, sid: str, room: str, timeout: float = 5.0) -> None:
        """Join once the client's handshake is complete (called from a connect handler)."""

    def leave(self, sid: str, room: str) -> None:
        """Take a client out of a room."""

    def resync(self, sid: str, room: str) -> None:
        """Send a client a fresh snapshot of a room it is in."""

    def drop(self, sid: str) -> None:
        """Forget a disconnected client."""

    def has(self, sid: str, room: str) -> bool:
        """Whether a client of this process is in a room."""
        ...


class SlowClients:
    """Closes this process's ``/live`` clients whose send queue is past ``max_queue``.

    A cut client reconnects by itself and starts over from a snapshot (:func:`feeds.socketlib.cut`).
    """

    def __init__(self, socketio: SocketIO, namespace: str, max_queue: int) -> None:
        self.socketio = socketio
        self.namespace = namespace
        self.max_queue = max_queue
        self.dropped = 0

    def prune(self, sids: Sequence[str], forget: Callable[[str], None]) -> None:
        """Cut every client of ``sids`` that is past the bound, after ``forget``-ting it."""
        for sid in sids:
            if socketlib.queued(self.socketio.server, sid, self.namespace) > self.max_queue:
                self.dropped += 1
                log.warning("dropping slow /live client %s (queue over %d)", sid, self.max_queue)
                forget(sid)
                socketlib.cut(self.socketio.server, sid, self.namespace)


def join_when_connected(door: Door, sid: str, room: str, namespace: str, timeout: float) -> None:
    """Have ``door`` join ``sid`` to ``room`` once its Socket.IO handshake is complete."""

    def later() -> None:
        manager = door.socketio.server.manager
        deadline = time.monotonic() + timeout
        while not manager.is_connected(sid, namespace):
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        door.join(sid, room)

    door.socketio.start_background_task(later)


class Broadcaster(BackgroundLoop):
    """The one tick producer of a deployment: rooms, per-room ``seq``, snapshots, ticks and alerts.

    Embedded it also serves ``/live`` directly (it is the :class:`Door`) and cuts slow clients before
    each tick. In scale-out the aggregator runs it with ``store`` in Redis and ``serves=False``: its
    Socket.IO server only writes to the message queue, the web processes' relays hold the clients.
    """

    thread_name = "gw-ticks"
    join_timeout = 5.0

    def __init__(
        self,
        socketio: SocketIO,
        live: LiveReader,
        *,
        interval: float = 1.0,
        namespace: str = "/live",
        max_queue: int = 64,
        simulated: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] | None = None,
        store: RoomStore | None = None,
        serves: bool = True,
    ) -> None:
        super().__init__()
        self.socketio = socketio
        self.live = live
        self.interval = interval
        self.namespace = namespace
        self.simulated = simulated
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store: RoomStore = store or KeptHere()
        self.slow = SlowClients(socketio, namespace, max_queue) if serves else None
        self.rooms = Rooms()
        self._lock = threading.RLock()
        self.ticks = 0

    @property
    def dropped(self) -> int:
        """Slow clients cut so far."""
        return self.slow.dropped if self.slow else 0

    def _run(self) -> None:
        next_at = time.monotonic()
        outages = Outages(log, "tick")
        while not self._stop.is_set():
            next_at += self.interval
            try:
                self.tick()
                outages.ok()
            except Exception as exc:
                outages.failed(exc)
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: skip, never burst
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    # -- rooms --------------------------------------------------------------------------------------

    def join(self, sid: str, room: str) -> None:
        """Add a client to a room and send it that room's snapshot at the room's current ``seq``.

        Both happen under the tick lock, so the next tick the client sees is ``seq + 1``.
        """
        flt = room_filter(room)
        with self._lock:
            self.store.joined(sid, room)
            self.rooms.add(sid, room)
            self.socketio.server.enter_room(sid, room, namespace=self.namespace)
            view = self.live.snapshot(self.clock())
            snap = render(view, flt, self.rooms.seq[room], full=True, simulated=self.simulated())
            self.socketio.emit("snapshot", snap, namespace=self.namespace, to=sid)

    def resync(self, sid: str, room: str) -> None:
        """Send a client a fresh snapshot of a room it is in."""
        flt = room_filter(room)
        with self._lock:
            view = self.live.snapshot(self.clock())
            snap = render(view, flt, self.rooms.seq.get(room, 0), full=True, simulated=self.simulated())
            self.socketio.emit("snapshot", snap, namespace=self.namespace, to=sid)

    def join_when_connected(self, sid: str, room: str, timeout: float = 5.0) -> None:
        """Join once the Socket.IO handshake of ``sid`` is complete (called from a connect handler)."""
        join_when_connected(self, sid, room, self.namespace, timeout)

    def leave(self, sid: str, room: str) -> None:
        """Drop a client from a room."""
        with self._lock:
            self.store.left(sid, room)
            self.rooms.remove(sid, room)
            self.socketio.server.leave_room(sid, room, namespace=self.namespace)

    def drop(self, sid: str) -> None:
        """Forget a disconnected client."""
        with self._lock:
            self.store.dropped(sid, self.rooms.drop(sid))

    def has(self, sid: str, room: str) -> bool:
        """Whether a client is in a room."""
        return self.rooms.has(sid, room)

    def take_over(self) -> None:
        """Continue every room of the store at ``seq + 1`` and send each room a snapshot."""
        with self._lock:
            self.rooms = self.store.restore()
            for room in self.rooms.names():
                self.rooms.seq[room] = self.rooms.seq.get(room, 0) + 1
            self.store.sequenced(self.rooms.seq)
            view = self.live.snapshot(self.clock())
            sim = self.simulated()
            for room in self.rooms.names():
                snap = render(view, room_filter(room), self.rooms.seq[room], full=True, simulated=sim)
                self.socketio.emit("snapshot", snap, namespace=self.namespace, to=room)

    def save_rooms(self) -> None:
        """Write rooms, members and ``seq`` back to the store (after it lost them)."""
        with self._lock:
            self.store.save(self.rooms)

    # -- ticks ----------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Drain the live state once and send one tick (and any alerts) to every room in use.

        Every room's new ``seq`` is stored before anything is sent, so a successor never repeats one.
        """
        now = self.clock()
        with self._lock:
            view = self.live.tick(now)
            sim = self.simulated()
            if self.slow is not None:
                for room in self.rooms.names():
                    self.slow.prune(self.rooms.sids(room), self.drop)
            plan: list[tuple[str, int, list[int], dict[str, int]]] = []
            for room in self.rooms.names():
                n = self.rooms.seq.get(room, 0) + 1
                alerts, held = pick_alerts(view.alerts, room_filter(room))
                plan.append((room, n, alerts, held))
                self.rooms.seq[room] = n + len(alerts)
            if plan:
                self.store.sequenced(self.rooms.seq)
            for room, n, alerts, held in plan:
                body = render(view, room_filter(room), n, full=False, simulated=sim, held=held)
                self.socketio.emit("tick", body, namespace=self.namespace, to=room)
                for j, i in enumerate(alerts, start=1):
                    self.socketio.emit(
                        "alert", render_alert(view.alerts[i], room, n + j), namespace=self.namespace, to=room
                    )
            self.ticks += 1


RESYNC_GAP = 2.0  # s: one client gets a resync snapshot of one room at most this often


class ResyncGate:
    """At most one ``resync`` snapshot per client and room every ``gap`` seconds.

    A screen that asks again sooner is not refused (it may have seen a gap): its asks merge into one
    snapshot, sent when the gap has passed. A snapshot of a district is hundreds of kB; a screen
    stuck in a resync loop would otherwise have the server build and send them as fast as it asks.
    """

    def __init__(self, gap: float = RESYNC_GAP, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = gap
        self.clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, dict[str, float]] = {}  # sid → room → when the next snapshot may go
        self._pending: set[tuple[str, str]] = set()

    def ask(self, sid: str, room: str) -> tuple[Literal["now", "schedule", "merged"], float]:
        """What to do with one ask, and the seconds until its snapshot goes: ``now``; ``schedule``
        (the caller sends it after the seconds given, then calls :meth:`sent`); ``merged`` (a
        scheduled snapshot will answer it)."""
        now = self.clock()
        with self._lock:
            rooms = self._due.setdefault(sid, {})
            due = rooms.get(room, now)
            if (sid, room) in self._pending:
                return "merged", max(0.0, due - self.gap - now)
            wait = max(0.0, due - now)
            rooms[room] = now + wait + self.gap
            if not wait:
                return "now", 0.0
            self._pending.add((sid, room))
            return "schedule", wait

    def sent(self, sid: str, room: str) -> None:
        """The scheduled snapshot went out (or its client is gone)."""
        with self._lock:
            self._pending.discard((sid, room))

    def forget(self, sid: str) -> None:
        """A client disconnected."""
        with self._lock:
            for room in self._due.pop(sid, {}):
                self._pending.discard((sid, room))


MAX_ROOMS = 16  # rooms one /live connection may be in at once (a wall holds 1, a desk page 1)


class LiveNamespace(Namespace):
    """``/live``: kiosk screens (and, with the desk, logged-in users) receive snapshots and ticks.

    A connection is in at most :data:`MAX_ROOMS` rooms: each room costs the tick producer a render a
    second, so one client joining every grid of a district would slow every wall (the fuzz found
    it); a join past the cap is answered ``too_many_rooms``.
    """

    def __init__(
        self, engine: Engine, broadcaster: Door, *, namespace: str = "/live",
        session_ok: Callable[[], bool] = lambda: False,
    ) -> None:  # fmt: skip
        super().__init__(namespace)
        self.engine = engine
        self.broadcaster = broadcaster
        self.session_ok = session_ok
        self.resyncs = ResyncGate()
        self._joined: dict[str, set[str]] = {}  # sid → rooms joined through this namespace
        self._joined_lock = threading.Lock()

    def on_connect(self, auth: Any = None) -> None:
        """Kiosk token → room ``wall`` and an immediate snapshot; a session → no room yet."""
        secret = auth.get("token") if isinstance(auth, dict) else None
        secret = secret or request.args.get("token") or request.cookies.get(KIOSK_COOKIE)
        sid = request.sid  # type: ignore[attr-defined]
        if secret:
            try:
                with self.engine.connect() as conn:
                    authenticate(conn, secret, ("kiosk",))
            except AuthError as exc:
                raise Refused(exc.reason) from None
            with self._joined_lock:
                self._joined.setdefault(sid, set()).add("wall")
            self.broadcaster.join_when_connected(sid, "wall")
            return
        if not self.session_ok():
            raise Refused("token_missing")

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the client's rooms."""
        sid = request.sid  # type: ignore[attr-defined]
        with self._joined_lock:
            self._joined.pop(sid, None)
        self.resyncs.forget(sid)
        self.broadcaster.drop(sid)

    def _room(self, data: Any) -> str | None:
        room = data.get("room") if isinstance(data, dict) else None
        if not isinstance(room, str):
            return None
        try:
            room_filter(room)
        except ValueError:
            return None
        if room.startswith(("street:", "grid:")):
            code = room.partition(":")[2]
            if not any(g.startswith(code) for g in self.broadcaster.live.area_of_grid):
                return None
        return room

    def on_join(self, data: Any = None) -> dict[str, Any]:
        """Join a room; its snapshot follows as a ``snapshot`` event."""
        room = self._room(data)
        if room is None:
            return {"ok": False, "reason": "unknown_room"}
        sid = request.sid  # type: ignore[attr-defined]
        with self._joined_lock:
            rooms = self._joined.setdefault(sid, set())
            if room not in rooms and len(rooms) >= MAX_ROOMS:
                return {"ok": False, "reason": "too_many_rooms", "limit": MAX_ROOMS}
            rooms.add(room)
        self.broadcaster.join(sid, room)
        return {"ok": True, "room": room}

    def on_leave(self, data: Any = None) -> dict[str, Any]:
        """Leave a room."""
        room = self._room(data)
        if room is None:
            return {"ok": False, "reason": "unknown_room"}
        sid = request.sid  # type: ignore[attr-defined]
        with self._joined_lock:
            self._joined.get(sid, set()).discard(room)
        self.broadcaster.leave(sid, room)
        return {"ok": True, "room": room}

    def on_resync(self, data: Any = None) -> dict[str, Any]:
        """Send a fresh snapshot of a room the client is in."""
        room = self._room(data)
        if room is None:
            return {"ok": False, "reason": "unknown_room"}
        sid = request.sid  # type: ignore[attr-defined]
        if not self.broadcaster.has(sid, room):
            return {"ok": False, "reason": "not_in_room"}
        action, wait = self.resyncs.ask(sid, room)
        if action == "now":
            self.broadcaster.resync(sid, room)
            return {"ok": True, "room": room}
        if action == "schedule":
            self.broadcaster.socketio.start_background_task(self._resync_later, sid, room, wait)
        return {"ok": True, "room": room, "after": round(wait, 1)}

    def _resync_later(self, sid: str, room: str, wait: float) -> None:
        self.broadcaster.socketio.sleep(wait)
        self.resyncs.sent(sid, room)
        if self.broadcaster.has(sid, room):  # still there
            self.broadcaster.resync(sid, room)
