"""feeds.socketlib, the one module using python-socketio/engine.io internals: pinned to the versions
``pyproject.toml`` allows, every internal it uses exists, and each of its functions behaves on a real
server and client (threading mode, websocket transport, as GridWall runs)."""

from __future__ import annotations

import inspect
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import engineio
import pytest
import socketio
from werkzeug.serving import make_server

from feeds import socketlib

NS = "/t"
ROOT = Path(__file__).resolve().parent.parent


def test_installed_versions_are_the_supported_ones_and_the_pins_say_so() -> None:
    assert socketlib.unsupported() == []
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dist, (low, high) in socketlib.SUPPORTED.items():
        assert f"{dist}>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}" in deps


def test_the_internals_used_exist_with_the_signatures_relied_on() -> None:
    params = list(inspect.signature(socketio.Server._handle_event).parameters)
    assert params == ["self", "eio_sid", "namespace", "id", "data"]
    assert "run_async" in inspect.getsource(engineio.Client._trigger_event)
    assert re.search(r"_trigger_event\('message', pkt\.data, run_async=True\)",
                     inspect.getsource(engineio.Client._receive_packet))  # fmt: skip
    server = socketio.Server(async_mode="threading")
    assert isinstance(server.eio.sockets, dict)
    q = server.eio.create_queue()
    for name in ("qsize", "get_nowait", "task_done", "put"):
        assert callable(getattr(q, name))
    assert issubclass(server.eio.get_queue_empty_exception(), Exception)
    assert "abort" in inspect.signature(engineio.socket.Socket.close).parameters


class Served:
    """A python-socketio server on a free port (Werkzeug, threads), as GridWall serves it."""

    def __init__(self) -> None:
        self.sio = socketio.Server(async_mode="threading")
        self.httpd = make_server("127.0.0.1", 0, socketio.WSGIApp(self.sio), threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def client(self) -> socketio.Client:
        return socketio.Client(reconnection=False)

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_acknowledged_events_are_taken_on_the_reader_thread_and_answered_later(served: Served) -> None:
    sio = served.sio
    threads: list[str] = []
    handled: list[str] = []

    @sio.on("other", namespace=NS)
    def other(sid: str, data: Any) -> str:  # python-socketio's own path: a thread per event
        handled.append(data)
        return "handled"

    def take(eio_sid: str, ack_id: int, data: list[Any]) -> bool:
        if data[0] != "fast":
            return False
        threads.append(threading.current_thread().name)
        later = threading.Timer(0.05, socketlib.send_ack, (sio, eio_sid, NS, ack_id, [{"got": data[1]}]))
        later.start()
        return True

    socketlib.intercept_acked_events(sio, NS, take)
    c = served.client()
    c.connect(served.url, namespaces=[NS], transports=["websocket"])
    try:
        assert c.call("fast", 7, namespace=NS, timeout=5) == {"got": 7}
        assert c.call("other", "x", namespace=NS, timeout=5) == "handled"  # declined: taken the usual way
        c.emit("other", "y", namespace=NS)  # not acknowledged: never offered
        _wait(lambda: handled == ["x", "y"])
        assert len(threads) == 1
    finally:
        c.disconnect()


def test_queued_counts_a_clients_backlog_and_cut_closes_its_transport(served: Served) -> None:
    sio = served.sio
    connected: list[str] = []
    sio.on("connect", lambda sid, environ, auth=None: connected.append(sid), namespace=NS)
    c = served.client()
    gone = threading.Event()
    c.on("disconnect", lambda *a: gone.set(), namespace=NS)
    c.connect(served.url, namespaces=[NS], transports=["websocket"])
    try:
        _wait(lambda: bool(connected))
        sid = connected[0]
        assert socketlib.queued(sio, sid, NS) == 0
        assert socketlib.queued(sio, "nobody", NS) == 0
        sock = sio.eio.sockets[sio.manager.eio_sid_from_sid(sid, NS)]
        sock.queue.put(engineio.packet.Packet(engineio.packet.NOOP))  # what a backlog is made of
        assert socketlib.queued(sio, sid, NS) in (0, 1)  # 0 once the writer took it
        socketlib.cut(sio, sid, NS)
        assert gone.wait(5)  # the client sees its transport closed
        _wait(lambda: not sio.manager.is_connected(sid, NS))
        assert socketlib.queued(sio, sid, NS) == 0
        socketlib.cut(sio, sid, NS)  # a client already gone: no error
    finally:
        c.disconnect()


def test_inline_messages_runs_handlers_on_the_reader_thread_in_arrival_order(served: Served) -> None:
    sio = served.sio
    connected: list[str] = []
    sio.on("connect", lambda sid, environ, auth=None: connected.append(sid), namespace=NS)
    c = served.client()
    socketlib.inline_messages(c)
    got: list[int] = []
    threads: set[str] = set()

    def record(n: int) -> None:
        threads.add(threading.current_thread().name)
        got.append(n)

    c.on("n", record, namespace=NS)
    c.connect(served.url, namespaces=[NS], transports=["websocket"])
    try:
        _wait(lambda: bool(connected))
        for n in range(200):
            sio.emit("n", n, namespace=NS, to=connected[0])
        _wait(lambda: len(got) == 200)
        assert got == list(range(200))
        assert len(threads) == 1  # one reader thread, no thread per message
    finally:
        c.disconnect()
