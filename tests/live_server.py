"""An in-process GridWall live core on a real loopback port, and recording Socket.IO clients.

:func:`start_live_server` provisions the embedded accounts, builds the process with the composition
root (:func:`gridwall.runtime.build`, as ``app.py run`` does, without the simulator) and serves it
with Werkzeug's threaded server in a daemon thread: the named seam of these in-process tests (a
server whose worker forks cannot run inside the test process; ``tests/serve.py`` runs the production
server). :class:`Peer` is a ``socketio.Client`` on one namespace (websocket transport) that
records every event the server sends, so a test can wait for a message with a deadline.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import shapely
import socketio
from sqlalchemy import select
from sqlalchemy.engine import Engine
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from domain.index import PointGridIndex
from feeds import socketlib
from feeds.ingest import PipelineConfig
from feeds.media import MediaLimits, MediaStore
from gridwall.runtime import Runtime, Seams, build
from gridwall.settings import Settings
from store.accounts import provision_embedded
from store.db import session_factory
from store.models import Grid

KIOSK_SECRET = "kiosk-secret-for-feeds-tests-0123456789"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Spot:
    """A supervisor with its device secret and a point inside one of its own grids."""

    person: str
    area: str
    secret: str
    grid: str
    lon: float
    lat: float


@dataclass
class LiveServer:
    """A running server: the core, the URL and the provisioned secrets."""

    engine: Engine
    core: Runtime
    http: BaseWSGIServer
    thread: threading.Thread
    url: str
    kiosk: str
    devices: dict[str, str]  # person id → device secret
    spots: list[Spot]
    _next: int = 0
    peers: list[Peer] = field(default_factory=list)
    media: MediaStore | None = None  # with media_dir: POST /api/v1/media, GET /media/<ref>

    def spot(self) -> Spot:
        """A supervisor no other caller got (each test works with its own people)."""
        s = self.spots[self._next]
        self._next += 1
        return s

    def peer(self, namespace: str, token: str | None, **kw: Any) -> Peer:
        """A connected client (closed at teardown)."""
        p = Peer(self.url, namespace, token, **kw)
        self.peers.append(p)
        return p

    def stop(self) -> None:
        """Close the clients, stop serving, stop the core."""
        for p in self.peers:
            p.close()
        self.http.shutdown()
        self.thread.join(timeout=10)
        self.core.stop()


def provisioned_spots(engine: Engine, index: PointGridIndex, devices: dict[str, str]) -> list[Spot]:
    """One point per provisioned supervisor: the representative point of the first grid of its area
    that the pipeline's own index places in that grid."""
    with session_factory(engine)() as s:
        rows = s.execute(
            select(Grid.code, Grid.area_code, Grid.geometry)
            .where(Grid.active, Grid.area_code.is_not(None))
            .order_by(Grid.area_code, Grid.code)
        ).all()
    out: list[Spot] = []
    done: set[str] = set()
    for code, area, geometry in rows:
        person = f"sup-{area}"
        if area in done or person not in devices:
            continue
        pt = shapely.geometry.shape(geometry).representative_point()
        hit = index.locate(pt.x, pt.y)
        if hit is None or hit.grid != code:
            continue
        done.add(area)
        out.append(Spot(person, area, devices[person], code, pt.x, pt.y))
    return out


def start_live_server(
    engine: Engine,
    *,
    interval: float = 0.2,
    config: PipelineConfig | None = None,
    media_dir: Path | None = None,
    media_limits: MediaLimits | None = None,
    clock: Callable[[], datetime] | None = None,
) -> LiveServer:
    """Provision, compose and serve the live core of a built district on a free port (with the media
    routes when ``media_dir`` is given)."""
    made = provision_embedded(engine, kiosk_secret=KIOSK_SECRET)
    devices = dict(made.devices)
    # patrol-only grid changes every tick (the default, 30 s, would outlast the tests' waits)
    seams = Seams(
        engine=engine, pipeline=config, patrol_every=timedelta(0), media=media_dir is not None,
        media_dir=media_dir, media_limits=media_limits, secret_key="feeds-tests", clock=clock,
    )  # fmt: skip
    settings = Settings(data_dir=media_dir or Path("."), db_url=str(engine.url), interval=interval)
    core = build(settings, "embedded", seams).start()
    media = core.media
    port = free_port()
    http = make_server("127.0.0.1", port, core.web.server, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=http.serve_forever, name="gw-test-http", daemon=True)
    thread.start()
    spots = provisioned_spots(engine, core.pipeline.index, devices)
    url = f"http://127.0.0.1:{port}"
    return LiveServer(engine, core, http, thread, url, KIOSK_SECRET, devices, spots, media=media)


class QuietHandler(WSGIRequestHandler):
    """No access log: after a websocket session Werkzeug reads the closing frames as a bad request."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Drop the line."""


class Refused(Exception):
    """The server refused the namespace connection; ``reason`` is what it said."""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


def _in_arrival_order(client: socketio.Client) -> None:
    """Handle each incoming message on the client's read loop, in the order it arrived.

    python-engineio's client starts a thread per message, so two ticks close together can reach the
    handlers (and a Peer's record) swapped; tests that check consecutive ``seq`` would then see a
    gap that never happened on the wire. The handlers here only record, so running them inline is safe.
    """
    socketlib.inline_messages(client)


class Peer:
    """A ``socketio.Client`` connected to one namespace that records what the server sends."""

    def __init__(
        self,
        url: str,
        namespace: str,
        token: str | None,
        *,
        query_token: bool = False,
        events: tuple[str, ...] = ("snapshot", "tick", "alert", "task"),
    ) -> None:
        self.namespace = namespace
        self.token = token
        self.client = socketio.Client(reconnection=False)
        _in_arrival_order(self.client)
        self.received: list[tuple[str, Any]] = []
        self.refusal: Any = None
        self._cond = threading.Condition()
        self._settled = threading.Event()
        for name in events:
            self.client.on(name, self._recorder(name), namespace=namespace)
        self.client.on("connect", self._settled.set, namespace=namespace)
        self.client.on("connect_error", self._refused, namespace=namespace)
        auth = None if token is None or query_token else {"token": token}
        target = f"{url}/?token={token}" if query_token and token else url
        self.client.connect(target, namespaces=[namespace], auth=auth, transports=["websocket"], wait=False)
        ws = self.client.eio.ws
        if ws is not None:  # the server never answers the closing handshake: do not wait 3 s for it
            ws.close = functools.partial(ws.close, timeout=0.2)
        if not self._settled.wait(5) or self.refusal is not None:
            self.close()
            raise Refused(self.refusal)

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any) -> None:
            with self._cond:
                self.received.append((name, data))
                self._cond.notify_all()

        return record

    def _refused(self, data: Any = None) -> None:
        self.refusal = data.get("message") if isinstance(data, dict) else data
        self._settled.set()

    @property
    def connected(self) -> bool:
        """Whether the namespace connection is up."""
        return bool(self.client.connected) and self.namespace in self.client.namespaces

    def call(self, event: str, data: Any, timeout: float = 15.0) -> Any:
        """Send an event and return the server's acknowledgement."""
        return self.client.call(event, data, namespace=self.namespace, timeout=timeout)

    def mark(self) -> int:
        """A position in the record (wait for what arrives after it)."""
        with self._cond:
            return len(self.received)

    def messages(self, event: str, since: int = 0) -> list[Any]:
        """What arrived of one event since a mark."""
        with self._cond:
            return [d for e, d in self.received[since:] if e == event]

    def wait(
        self,
        event: str,
        pred: Callable[[Any], bool] = lambda m: True,
        *,
        since: int = 0,
        timeout: float = 5.0,
    ) -> Any:
        """The first message of ``event`` after ``since`` that satisfies ``pred`` (AssertionError if
        none arrives within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e, d in self.received[since:]:
                    if e == event and pred(d):
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [e for e, _ in self.received[since:]]
                    raise AssertionError(f"no matching {event!r} within {timeout}s; got {got}")
                self._cond.wait(left)

    def close(self) -> None:
        """Disconnect (idempotent)."""
        with contextlib.suppress(Exception):  # already gone
            self.client.disconnect()
