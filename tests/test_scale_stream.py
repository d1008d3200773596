"""The ingest stream across a Redis restart: devices are told ``unavailable`` while Redis is down, and
no acknowledged fix or command is missing from PostgreSQL afterwards.

The deployment (aggregator, ingest, web) runs on this test's own ``redis-server`` (append-only file,
``appendfsync everysec``, as README "Production" says) on a free port, so restarting it disturbs no one.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from store.db import create_engine
from store.models import CaseEventRow, Position
from tests.conftest import require
from tests.live_server import Peer, free_port
from tests.test_scale_support import Deployment, Spot, deployed


class OwnRedis:
    """A redis-server of this test (AOF on), started and stopped at will on one port and directory."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL (database 0: the server is this test's alone)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers."""
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("own redis-server did not start")

    def stop(self) -> None:
        """Shut it down cleanly (SIGTERM: the append-only file is flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        require("redis-server binary")
    r = OwnRedis(tmp_path_factory.mktemp("redis"))
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def deployment(
    pg_server_url: str, own_redis: OwnRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One web process, on a Redis of the module's own (the tests stop and start it)."""
    with deployed(pg_server_url, own_redis.url, tmp_path_factory.mktemp("dep"), webs=1) as dep:
        yield dep


def report(spot: Spot, ref: str) -> dict[str, Any]:
    """A supervisor's report (a lifecycle command) at the spot, now."""
    return {"id": ref, "kind": "component", "class_code": "0101", "condition_code": "03", "lon": spot.lon,
            "lat": spot.lat, "at": datetime.now(UTC).isoformat(), "description": "stream test"}  # fmt: skip


def test_restarting_redis_mid_stream_loses_no_acknowledged_fix_or_report(
    deployment: Deployment, own_redis: OwnRedis, people: list[Spot]
) -> None:
    web = next(p for p in deployment.parts if p.role == "web")
    spot, reporter = people[0], people[1]
    acked: dict[str, datetime] = {}  # fix id → instant
    reports: list[str] = []
    answers: list[str] = []  # reasons of every rejection seen
    stop = threading.Event()
    start = datetime.now(UTC) - timedelta(seconds=120)

    def send(dev: Peer, event: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return dict(dev.call(event, body, timeout=10))
        except Exception:  # the connection dropped or the answer timed out: not acknowledged
            return None

    def feed() -> None:
        dev = Peer(web.url, "/device", spot.secret)
        rep = Peer(web.url, "/device", reporter.secret)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                at = start + timedelta(milliseconds=250 * i)
                ref = f"f{i}"
                ack = send(
                    dev, "position", {"id": ref, "lon": spot.lon, "lat": spot.lat, "at": at.isoformat()}
                )
                if ack is not None:
                    answers.extend(r["reason"] for r in ack["rejected"])
                    if ack["accepted"] == [ref]:
                        acked[ref] = at
                if i % 10 == 0:
                    ref = f"r{i}"
                    ack = send(rep, "report", report(reporter, ref))
                    if ack is not None:
                        answers.extend(r["reason"] for r in ack["rejected"])
                        if ack["accepted"] == [ref]:
                            reports.append(ref)
                time.sleep(0.12)  # under the device rate limit (10/s)
        finally:
            dev.close()
            rep.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        time.sleep(3)
        before = len(acked)
        own_redis.stop()  # Redis goes away mid-stream ...
        time.sleep(2)
        during = len(acked)
        own_redis.start()  # ... and comes back from its append-only file
        time.sleep(6)
    finally:
        stop.set()
        feeder.join(timeout=30)
    assert before > 10 and len(acked) > during + 10  # the stream flowed before and after
    assert "unavailable" in answers  # while Redis was down: a named rejection, not a silent drop
    assert set(answers) <= {"unavailable"}
    assert len(reports) >= 2
    eng = create_engine(deployment.db_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            with eng.connect() as conn:
                q = sa.select(Position.at).where(Position.supervisor_id == spot.person)
                fixes = {r[0] for r in conn.execute(q)}
                q2 = sa.select(CaseEventRow.key).where(CaseEventRow.action == "report")
                refs = {str(k).rsplit(":", 1)[-1] for (k,) in conn.execute(q2) if k}
            missing = [ref for ref, at in acked.items() if at not in fixes]
            lost = [ref for ref in reports if ref not in refs]
            if (not missing and not lost) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert missing == [] and lost == []
    finally:
        eng.dispose()


class TcpProxy:
    """A loopback TCP relay to PostgreSQL that the test can cut (``down``) and restore (``up``)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        """Accept connections again."""
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        ls, self._listener = self._listener, None
        if ls is not None:
            ls.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def test_postgresql_down_inputs_wait_in_the_stream_and_are_persisted_after(
    deployment: Deployment, people: list[Spot]
) -> None:
    web = next(p for p in deployment.parts if p.role == "web")
    for part in [p for p in deployment.parts if p.role == "ingest"]:
        deployment.kill(part, signal.SIGTERM)
    proxy = TcpProxy(5432)
    proxy.up()
    proxied = deployment.db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    deployment.start("ingest", "--db", proxied)  # the last --db wins: this consumer reaches PG via the proxy
    spot = people[2]
    acked: dict[str, datetime] = {}
    down_acks = 0
    dev = Peer(web.url, "/device", spot.secret)
    start = datetime.now(UTC) - timedelta(seconds=60)
    try:
        for i in range(1, 61):
            if i == 15:
                proxy.down()  # PostgreSQL unreachable for the consumer
            if i == 40:
                proxy.up()
            at = start + timedelta(milliseconds=500 * i)
            ref = f"pg{i}"
            ack = dev.call("position", {"id": ref, "lon": spot.lon, "lat": spot.lat, "at": at.isoformat()})
            if ack["accepted"] == [ref]:
                acked[ref] = at
                down_acks += 15 <= i < 40
            time.sleep(0.12)
    finally:
        dev.close()
    assert down_acks == 25  # the web process kept acknowledging: the inputs wait in the stream
    eng = create_engine(deployment.db_url)
    try:
        deadline = time.monotonic() + 60  # entries the database refused are claimed again after 10 s
        while True:
            with eng.connect() as conn:
                q = sa.select(Position.at).where(Position.supervisor_id == spot.person)
                fixes = {r[0] for r in conn.execute(q)}
            missing = sorted(ref for ref, at in acked.items() if at not in fixes)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert missing == []
    finally:
        eng.dispose()
        proxy.down()
