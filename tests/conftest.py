"""Shared fixtures: real services (PostgreSQL, Redis, Chromium) and ../shared/data.

With ``GW_REQUIRE_SERVICES=1`` (set by .ci/run) a missing service or data set fails the test;
elsewhere it skips with a loud reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GW_SHARED_DIR", ROOT.parent / "shared"))
PG_BASE = os.environ.get("GW_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GW_TEST_REDIS", "redis://127.0.0.1:6379/15")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# The test files that take longest (minutes of servers and browsers, measured in CI-like runs), longest
# first. The suite's workers take a file at a time in collection order (``--dist loadfile``): started
# last, alphabetically, these ran alone at the end (test_run.py began at 94 % and took 170 s).
LONGEST_FIRST = (
    "test_run.py", "test_desk_browser.py", "test_browser.py", "test_scale_roles.py", "test_scale_slow.py",
    "test_desk.py", "test_live_parity.py", "test_desk_people.py", "test_openapi.py", "test_simulator.py",
    "test_accounts.py", "test_evaluation_pages.py", "test_scale_stream.py", "test_city_hours.py",
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the longest files first (the others keep their order), so no long file starts last."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def require(reason: str) -> None:
    """Fail (GW_REQUIRE_SERVICES=1) or skip loudly: a needed service or data set is missing."""
    if os.environ.get("GW_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required by GW_REQUIRE_SERVICES=1 but missing: {reason}", pytrace=False)
    warnings.warn(f"SKIPPED (missing service/data): {reason}", stacklevel=2)
    pytest.skip(f"MISSING: {reason}")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder (real data no one on the team wrote)."""
    data = SHARED / "data"
    if not (data / "boundaries").is_dir():
        require(f"shared data folder {data}")
    return data


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema for this test session (dropped afterwards)."""
    if not _port_open("127.0.0.1", 5432):
        require("PostgreSQL on 127.0.0.1:5432")
    import sqlalchemy as sa

    schema = f"gw_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_BASE)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        require(f"PostgreSQL at {PG_BASE}: {exc}")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


def empty_schema(url: str) -> None:
    """Drop everything in the current schema of a PostgreSQL URL (the schema itself stays)."""
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng.dispose()


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose schema is emptied after the test."""
    yield pg_server_url
    empty_schema(pg_server_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite (a file) and on the machine's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gridwall.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis (database 15 for tests)."""
    if not _port_open("127.0.0.1", 6379):
        require("Redis on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium binary."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        require("Debian's chromium (apt-get install chromium)")
    assert path
    return path


# headless Debian Chromium for the browser tests: software GL, nothing fetched on its own behalf
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of the browser tests


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    """One Chromium (Playwright ``Browser``) for a test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An engine with the built-in district and the catalogue's departments, on each backend."""
    from domain.catalogue import load_catalogue
    from store.build import BuildRequest, build_city
    from store.cases import sync_departments
    from store.db import create_engine, transaction

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('city') / 'gw.db'}"
    else:
        url = str(request.getfixturevalue("pg_server_url"))
    eng = create_engine(url)
    build_city(eng, BuildRequest())
    with transaction(eng) as s:
        sync_departments(s, load_catalogue("cjt214"))
    yield eng
    eng.dispose()
    if request.param == "postgresql":
        empty_schema(url)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One ``python app.py run`` with its simulation, from an empty folder, shared by the browser test
    modules (a first start builds the district and a week of history: about half a minute each).
    The centre has both of the two centres' optional steps (反馈审核, 派发核查): the simulation and the
    desk's loop go through them."""
    from tests.serve import run_app

    cwd = tmp_path_factory.mktemp("app")
    roads = SHARED / "data" / "roads" / "dongcheng_roads_gcj02.geojson"
    if roads.exists():  # the centre's basemap (issue 17), imported as an operator would: the wall's and
        import subprocess  # the desk's screenshots show the roads under the grids, names on the desk

        cmd = [sys.executable, str(ROOT / "app.py"), "import", "basemap", str(roads), "--name", "roads"]
        subprocess.run(cmd, cwd=cwd, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    # the cap is a safety net (the start prints its URLs when it is ready): ~1 min idle, over 240 s
    # at load 11 on 2 cores (the suite beside the fuzz and a busy loop, 2026-12-07)
    with run_app(cwd, "--feedback-review", "--acceptor-check", timeout=600) as srv:
        yield srv


@pytest.fixture(scope="module")
def deployment(
    pg_server_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """A scale-out deployment for one test module (``tests.test_scale_support.deployed``: an
    aggregator, an ingest consumer and two web processes on the machine's PostgreSQL and Redis)."""
    from tests.test_scale_support import deployed

    with deployed(pg_server_url, redis_url, tmp_path_factory.mktemp("scale")) as dep:
        yield dep


@pytest.fixture(scope="module")
def people(deployment: object) -> Iterator[object]:
    """One supervisor of the module's ``deployment`` per area, at a point inside a grid of its own."""
    from sqlalchemy import create_engine

    from tests.test_scale_support import Deployment, spots

    assert isinstance(deployment, Deployment)
    eng = create_engine(deployment.db_url)
    yield spots(eng, deployment.devices())
    eng.dispose()


# -- the city's clock (issue 20 item 11) ------------------------------------------------------------------

CITY_TZ = ZoneInfo("Asia/Shanghai")
CITY_DAY = date(2026, 12, 2)  # a Wednesday, a working day (no holiday near it)
# the hours of the city's day the time-dependent tests run at (tests/test_city_hours.py)
CITY_HOURS = {
    "night": dtime(3, 0),
    "morning_peak": dtime(8, 30),
    "lunch_break": dtime(12, 10),
    "before_midnight": dtime(23, 59, 30),
}


class CityClock:
    """The city's clock of a test: it starts at a local time on :data:`CITY_DAY` and runs at real speed
    (so waits for conditions work); :meth:`move` jumps it. Pass it as the server's clock."""

    def __init__(self, local: dtime, day: date = CITY_DAY) -> None:
        self.start = datetime.combine(day, local, tzinfo=CITY_TZ).astimezone(UTC)
        self._t0 = time.monotonic()
        self._shift = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        """Now on this clock (UTC)."""
        with self._lock:
            return self.start + self._shift + timedelta(seconds=time.monotonic() - self._t0)

    def move(self, by: timedelta) -> None:
        """Jump the clock forward (or back) by ``by``."""
        with self._lock:
            self._shift += by

    def local(self) -> datetime:
        """Now on this clock in the city's time zone."""
        return self().astimezone(CITY_TZ)
