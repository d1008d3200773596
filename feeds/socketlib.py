"""Every use of python-socketio / python-engineio internals, in one module, pinned to tested versions.

GridWall needs five things the libraries do not offer as public API:

- **acknowledged events off the per-event thread** (:func:`intercept_acked_events`): python-socketio
  runs each event in a new thread (``async_handlers``), which for ``/device`` would only wait for the
  commit; the pipeline instead takes the event on the connection's reader thread and acknowledges it
  later (:func:`send_ack`, public API) from its acknowledgement thread. Wraps ``Server._handle_event``.
- **a client's send backlog** (:func:`queued`): the length of the Engine.IO socket's outgoing queue,
  how ``/live`` finds a slow screen. Reads ``engineio.Server.sockets[…].queue``.
- **cutting a slow client** (:func:`cut`): close its Engine.IO transport at once and discard what is
  queued for it, so it reconnects and starts over from a snapshot. Same attributes.
- **client messages handled in arrival order** (:func:`inline_messages`): python-engineio's client
  starts a thread per message; tests recording ``seq`` and the replay sender (one thread per
  acknowledgement was most of its CPU) run the handlers on the reader thread. Wraps
  ``engineio.Client._trigger_event``.
- **a message queue that comes back with Redis** (:func:`steady_message_queue`): python-socketio's
  ``RedisManager`` waits 1, 2, 4 … 60 s between attempts to subscribe again after Redis was lost, so a
  web process heard the producer's ticks again up to one outage after Redis was back (20 s down: walls
  dark 11 s after the restart). Replaces ``RedisManager._redis_listen_with_retries``.

``tests/test_socketlib.py`` asserts the installed versions are within :data:`SUPPORTED` (the pins in
``pyproject.toml``) and that every internal used here exists and behaves; a library upgrade that moves
one fails there, not in production. Nothing else in the tree touches a private name of either library.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import engineio
import socketio
from socketio import packet

log = logging.getLogger(__name__)

# distribution → (lowest supported, first unsupported): keep equal to pyproject.toml's pins
SUPPORTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "python-socketio": ((5, 11), (6,)),
    "python-engineio": ((4, 8), (5,)),
}

# (engine.io sid, ack id, event data [name, *args]) → True when taken (else python-socketio handles it)
Taker = Callable[[str, int, list[Any]], bool]


def installed(dist: str) -> tuple[int, ...]:
    """The installed version of a distribution as numbers (``5.18.1`` → ``(5, 18, 1)``)."""
    return tuple(int(p) for p in version(dist).split(".")[:3] if p.isdigit())


def unsupported() -> list[str]:
    """The distributions whose installed version is outside :data:`SUPPORTED` (empty: all supported)."""
    out = []
    for dist, (low, high) in SUPPORTED.items():
        have = installed(dist)
        if not (low <= have < high):
            out.append(f"{dist} {'.'.join(map(str, have))} (supported: >={low}, <{high})")
    return out


def intercept_acked_events(server: socketio.Server, namespace: str, take: Taker) -> None:
    """Offer every acknowledged event of ``namespace`` to ``take`` on the connection's reader thread.

    Events ``take`` declines, unacknowledged ones and other namespaces' go python-socketio's own way
    (a thread per event when ``async_handlers``). ``take`` must answer with :func:`send_ack`.
    """
    handle = server._handle_event

    def handle_event(eio_sid: str, ns: str | None, ack_id: int | None, data: Any) -> None:
        mine = (ns or "/") == namespace and ack_id is not None and isinstance(data, list)
        if not (mine and take(eio_sid, ack_id, data)):  # type: ignore[arg-type]
            handle(eio_sid, ns, ack_id, data)

    server._handle_event = handle_event


RESERVED = ("connect", "disconnect")  # event names python-socketio gives its own handlers of these


def refuse_reserved_events(server: socketio.Server, answer: Callable[[str, str, int, str], None]) -> None:
    """A client's *event* named ``connect`` or ``disconnect`` (a fuzzer's, never a real client's) is not
    given to the namespace's connect/disconnect handlers: acknowledged, it goes to ``answer(eio_sid,
    namespace, ack_id, name)``; without an ack request it is dropped. python-socketio (5.x) would run the
    handler as if the client had connected again (a refusal then raised in an event thread) or left
    (its token forgotten while the connection stays). Wraps ``Server._handle_event``.
    """
    handle = server._handle_event

    def handle_event(eio_sid: str, ns: str | None, ack_id: int | None, data: Any) -> None:
        if isinstance(data, list) and data and data[0] in RESERVED:
            if ack_id is not None:
                answer(eio_sid, ns or "/", ack_id, data[0])
            return
        handle(eio_sid, ns, ack_id, data)

    server._handle_event = handle_event


class BoundedJson:
    """The ``json`` of Socket.IO packets: the standard module, except that a packet nested too deep for
    its decoder (a RecursionError, past ~1,000 levels) decodes as ``[<event name>, <a value nested 300
    levels>]``, so the event is refused by name (``malformed``: JSON cannot hold it, feeds.checks) and
    acknowledged, instead of a traceback in the log and no answer. Set on ``packet.Packet`` (global)."""

    @staticmethod
    def dumps(obj: Any, **kw: Any) -> str:
        """As ``json.dumps``."""
        return json.dumps(obj, **kw)

    @staticmethod
    def loads(s: Any, **kw: Any) -> Any:
        """As ``json.loads``, but a RecursionError gives the stand-in above."""
        try:
            return json.loads(s, **kw)
        except RecursionError:
            pass
        text = s.decode("utf-8", "replace") if isinstance(s, bytes | bytearray) else str(s)
        m = _EVENT_NAME.match(text)
        name = json.loads(m.group(1)) if m else "?"
        deep: list[Any] = []
        for _ in range(300):
            deep = [deep]
        return [name, deep]


_EVENT_NAME = re.compile(r'\s*\[\s*("(?:[^"\\]|\\.){0,200}")')


def bound_packet_json() -> None:
    """Decode every Socket.IO packet with :class:`BoundedJson`."""
    packet.Packet.json = BoundedJson


def _close_quietly(self: Any) -> None:
    """``SimpleWebSocketWSGI.close`` on a socket the connection's other thread has already closed."""
    with contextlib.suppress(OSError):
        if self.ws.connected:
            self.ws.close()


def quiet_closed_sockets() -> None:
    """A websocket closed by its reader (the client went away, or a frame past the size limit) while
    its writer thread closes it too: the writer's ``close()`` raised ``OSError: Bad file descriptor``,
    a traceback in the log for nothing lost (found by bench fuzz). The socket is gone: nothing to do."""
    from engineio.async_drivers import _websocket_wsgi

    _websocket_wsgi.SimpleWebSocketWSGI.close = _close_quietly


def send_ack(server: socketio.Server, eio_sid: str, namespace: str, ack_id: int, args: list[Any]) -> None:
    """Acknowledge event ``ack_id`` of a connection with ``args`` (what a handler's return value sends)."""
    encoded = server.packet_class(packet.ACK, namespace=namespace, id=ack_id, data=args).encode()
    for part in encoded if isinstance(encoded, list) else (encoded,):
        server.eio.send(eio_sid, part)


def _eio_socket(server: socketio.Server, sid: str, namespace: str) -> Any:
    """The Engine.IO socket of a Socket.IO client (None when gone)."""
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    return None if eio_sid is None else server.eio.sockets.get(eio_sid)


def queued(server: socketio.Server, sid: str, namespace: str) -> int:
    """Packets waiting in a client's Engine.IO send queue (0 when it is gone)."""
    try:
        sock = _eio_socket(server, sid, namespace)
        return 0 if sock is None else int(sock.queue.qsize())
    except (KeyError, AttributeError):
        return 0


def cut(server: socketio.Server, sid: str, namespace: str) -> None:
    """Close a client's Engine.IO connection at once and discard what is queued for it.

    The transport is closed, not only the namespace: a Socket.IO client reconnects by itself after a
    transport close (after a namespace ``disconnect`` from the server it would not). The disconnect
    handlers run now; no packet is queued behind the backlog; the connection's writer ends once its
    blocked send returns (or times out).
    """
    sock = _eio_socket(server, sid, namespace)
    if sock is None:
        server.disconnect(sid, namespace=namespace, ignore_queue=True)
        return
    sock.close(wait=False, abort=True)
    empty = server.eio.get_queue_empty_exception()
    while True:
        try:
            sock.queue.get_nowait()
        except empty:
            break
        sock.queue.task_done()
    sock.queue.put(None)  # the writer's end-of-connection mark (taken out with the backlog above)


def inline_messages(client: socketio.Client) -> None:
    """Run a client's message handlers on its reader thread, in the order the messages arrived.

    Safe only when the handlers never block (they record or count): the reader waits for them.
    """
    eio: engineio.Client = client.eio
    trigger = eio._trigger_event

    def inline(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return trigger(event, *args, **kwargs)

    eio._trigger_event = inline


RESUBSCRIBE_S = 0.5  # seconds between attempts to subscribe to the message queue again


def _listen_steadily(self: Any) -> Any:
    """``RedisManager._redis_listen_with_retries`` trying again every :data:`RESUBSCRIBE_S` (no backoff)."""
    failing = False
    while True:
        try:
            self._redis_connect()
            self.pubsub.subscribe(self.channel)
            if failing:
                log.warning("message queue %s: subscribed again", self.channel)
                failing = False
            yield from self.pubsub.listen()
        except Exception as exc:
            if not failing:
                log.warning("message queue %s lost (%s); subscribing again every %.1f s", self.channel, exc,
                            RESUBSCRIBE_S)  # fmt: skip
                failing = True
            time.sleep(RESUBSCRIBE_S)


def steady_message_queue() -> None:
    """Every python-socketio ``RedisManager`` of this process subscribes again within
    :data:`RESUBSCRIBE_S` of Redis coming back (idempotent; one subscription attempt a half second while
    Redis is down costs nothing)."""
    socketio.RedisManager._redis_listen_with_retries = _listen_steadily
