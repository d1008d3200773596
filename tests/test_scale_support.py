"""Helpers of the scale-out tests (no tests here): real ``app.py run --role …`` processes on one
PostgreSQL schema and one Redis key prefix."""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from sqlalchemy.engine import Engine

from store.build import stored_district
from store.db import session_factory
from store.geography import load_index
from tests.conftest import empty_schema
from tests.live_server import free_port, provisioned_spots

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Part:
    """One running process of the deployment."""

    role: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        """The web process's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace")


@dataclass(frozen=True)
class Spot:
    """A supervisor with its device secret and a point in one of its grids."""

    person: str
    secret: str
    grid: str
    lon: float
    lat: float


@dataclass
class Deployment:
    """Aggregators and web processes of one test module (``stop`` ends every process it started)."""

    db_url: str
    redis_url: str
    prefix: str
    data_dir: Path
    lock_ttl: float = 2.0
    parts: list[Part] = field(default_factory=list)

    def start(self, role: str, *extra: str, timeout: float = 120.0) -> Part:
        """Start ``app.py run --role role`` and wait until it is ready (web: /healthz answers)."""
        port = free_port() if role == "web" else None
        log = self.data_dir / f"{role}-{len(self.parts)}.log"
        cmd = [sys.executable, str(ROOT / "app.py"), "run", "--role", role, "--redis", self.redis_url,
               "--redis-prefix", self.prefix, "--db", self.db_url, "--data-dir", str(self.data_dir),
               "--no-simulation", "--lock-ttl", str(self.lock_ttl), *extra]  # fmt: skip
        if port is not None:
            cmd += ["--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        part = Part(role, proc, log, port)
        self.parts.append(part)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"{role} exited:\n{part.text()}")
            if role != "web" and "standing by" in part.text():
                return part
            if role == "web":
                try:
                    if requests.get(part.url + "/healthz", timeout=2).status_code == 200:
                        return part
                except requests.RequestException:  # not listening yet, or the worker not yet built
                    pass
            time.sleep(0.2)
        raise AssertionError(f"{role} not ready in {timeout}s:\n{part.text()}")

    def kill(self, part: Part, sig: int = signal.SIGKILL) -> None:
        """Signal one process and wait for it."""
        part.proc.send_signal(sig)
        part.proc.wait(timeout=15)

    def stop(self) -> None:
        """Terminate every process started here."""
        for part in self.parts:
            if part.proc.poll() is None:
                part.proc.terminate()
        for part in self.parts:
            try:
                part.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                part.proc.kill()

    def leader(self, token: str | None) -> Part | None:
        """The aggregator whose lock token is ``token``."""
        for part in self.parts:
            if part.role == "aggregator" and token and f"aggregator {token[:8]}" in part.text():
                return part
        return None

    @property
    def kiosk(self) -> str:
        """The kiosk token the first process wrote."""
        return str(json.loads((self.data_dir / "secrets.json").read_text())["kiosk_token"])

    def devices(self) -> dict[str, str]:
        """Person id → device secret (written on first start)."""
        with (self.data_dir / "device-tokens.csv").open() as f:
            return {row["person_id"]: row["secret"] for row in csv.DictReader(f)}


def spots(engine: Engine, devices: dict[str, str]) -> list[Spot]:
    """One point per provisioned supervisor inside a grid of its own area (as the pipeline's index says)."""
    adcode = stored_district(engine)
    assert adcode is not None
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    return [Spot(p.person, p.secret, p.grid, p.lon, p.lat) for p in provisioned_spots(engine, index, devices)]


@contextmanager
def deployed(pg_url: str, redis_url: str, folder: Path, webs: int = 2) -> Iterator[Deployment]:
    """An aggregator, an ingest consumer and ``webs`` web processes on a fresh key prefix; afterwards
    the processes stopped, the prefix's Redis keys deleted (when Redis answers) and the PostgreSQL
    schema emptied."""
    prefix = f"gwtest-{uuid.uuid4().hex[:10]}"
    dep = Deployment(pg_url, redis_url, prefix, folder)
    try:
        dep.start("aggregator")
        dep.start("ingest")
        for _ in range(webs):
            dep.start("web")
        yield dep
    finally:
        dep.stop()
        with contextlib.suppress(redis.RedisError):  # a test's own Redis may be gone already
            r = redis.Redis.from_url(redis_url)
            keys = list(r.scan_iter(f"{prefix}:*", count=1000))
            if keys:
                r.delete(*keys)
        empty_schema(pg_url)
