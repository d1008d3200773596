"""Supervisor page and "who was where at T" (issue 8 items 7 and 8).

The who-was-where query runs on SQLite and PostgreSQL against known fixes; the pages are served on
a real port (404 for an unknown supervisor) and opened in Debian's Chromium: the playback moves the
marker along the stored track, the scrubber puts it where the track was at that instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest
import requests
import shapely
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Engine

from dashboard import ids
from dashboard.figures import SUPERVISOR_COLOURS, supervisor_map, when_map
from dashboard.people_data import (
    _PROBE_SQLITE,
    Track,
    day_start,
    parse_instant,
    patrol_minutes,
    status_of,
    thin,
    track,
    where_at,
)
from domain.supervisor import SupervisorStatus
from layouts.when import href, local_text
from store.db import transaction
from store.models import Grid, Person, Position
from tests.conftest import ARTIFACTS, CityClock
from tests.desk_login import add_desk_user, login_browser, login_http
from tests.live_server import LiveServer, start_live_server

ROOT = Path(__file__).resolve().parents[1]
LEADER, PASSWORD = "leader-people", "people-pages-password-123"
T = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


# -- pure parts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("area", "grid", "grid_area", "found", "still", "status"),
    [
        ("A", "g1", "A", False, False, SupervisorStatus.OFFLINE),
        ("A", "g1", "A", True, False, SupervisorStatus.ON_DUTY),
        ("A", "g1", "A", True, True, SupervisorStatus.STATIONARY),
        ("A", "g2", "B", True, True, SupervisorStatus.OUT_OF_AREA),  # out of area wins over stationary
        ("A", None, None, True, False, SupervisorStatus.OUT_OF_AREA),  # outside every grid
        (None, "g2", "B", True, False, SupervisorStatus.ON_DUTY),  # no area: nowhere is outside
    ],
)
def test_status_rules(
    area: str | None,
    grid: str | None,
    grid_area: str | None,
    found: bool,
    still: bool,
    status: SupervisorStatus,
) -> None:
    assert status_of(area, grid, grid_area, found, still) is status


def test_instants_are_local_unless_they_say_otherwise() -> None:
    now = datetime(2026, 11, 27, 9, 31, 45, tzinfo=UTC)
    assert parse_instant("2026-11-27T10:05", now) == datetime(2026, 11, 27, 2, 5, tzinfo=UTC)
    assert parse_instant("2026-11-27T10:05+00:00", now) == datetime(2026, 11, 27, 10, 5, tzinfo=UTC)
    assert parse_instant("", now) == datetime(2026, 11, 27, 9, 31, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_instant("yesterday", now)
    assert local_text(T) == "2026-11-27T10:00"
    assert "at=2026-11-27T10%3A05" in href(T + timedelta(minutes=5), "zh")


def test_patrol_minutes_and_thinning() -> None:
    tr = Track([0, 60, 120, 600, 660], [0.0] * 5, [0.0] * 5, ["a", "a", "b", "b", None], 5)
    # 60 s to a, 60 s to a, a 480 s gap credits nothing (> 2 min), 60 s to b
    assert patrol_minutes(tr) == {"a": 2.0, "b": 1.0}
    long = Track([float(i) for i in range(10_001)], [0.0] * 10_001, [0.0] * 10_001, [None] * 10_001, 10_001)
    drawn = thin(long, 4000)
    assert len(drawn.t) <= 4001 and drawn.t[0] == 0 and drawn.t[-1] == 10_000 and drawn.stored == 10_001


def test_people_figures() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    features: list[dict[str, object]] = [
        {"type": "Feature", "id": g, "geometry": square, "properties": {}} for g in ("a", "b")
    ]
    fig = supervisor_map(
        lang="zh", area_features=features, minutes={"a": 3.0, "b": 0.0}, track_lon=[0.1, 0.2],
        track_lat=[0.3, 0.4], live=(0.2, 0.4), bounds=(0, 0, 1, 1), status="offline",
    )  # fmt: skip
    by = {tr.uid: tr for tr in fig.data}
    assert list(by["area"].z) == [1, 0]  # walked, not walked
    assert list(by["play"].lon) == [0.1] and list(by["live"].lon) == [0.2]
    assert by["live"].marker.color == SUPERVISOR_COLOURS["offline"]
    fig = when_map(
        streets=(), bounds=(0, 0, 1, 1), lang="en", ids=["x", "y", "z"], lon=[0.5, None, 0.7],
        lat=[0.5, None, 0.7], status=["on_duty", "offline", "stationary"],
    )  # fmt: skip
    sups = next(tr for tr in fig.data if tr.uid == "supervisors")
    assert list(sups.lon) == [0.5, 0.7]  # no fix, no marker
    assert list(sups.marker.color) == [SUPERVISOR_COLOURS["on_duty"], SUPERVISOR_COLOURS["stationary"]]


# -- who was where, both backends ---------------------------------------------------------------------


def _areas(engine: Engine) -> list[tuple[str, str, float, float]]:
    """(area, grid, lon, lat): a point inside the first grid of each of two areas."""
    out: list[tuple[str, str, float, float]] = []
    with engine.connect() as conn:
        rows = conn.execute(
            select(Grid.area_code, Grid.code, Grid.geometry)
            .where(Grid.area_code.is_not(None), Grid.active)
            .order_by(Grid.area_code, Grid.code)
        ).all()
    for area, code, geom in rows:
        if out and out[-1][0] == area:
            continue
        p = shapely.geometry.shape(geom).representative_point()
        out.append((area, code, p.x, p.y))
        if len(out) == 2:
            break
    return out


def _fix(sup: str, at: datetime, lon: float, lat: float, grid: str | None) -> dict[str, Any]:
    return {"supervisor_id": sup, "at": at, "received_at": at, "lon": lon, "lat": lat, "grid_code": grid}


def test_who_was_where_at_an_instant(city_engine: Engine) -> None:
    engine = city_engine
    (area_x, grid_x, lon, lat), (_, grid_y, lon_y, lat_y) = _areas(engine)
    m = timedelta(minutes=1)
    people = ["w-moving", "w-gone", "w-astray", "w-still", "w-never", "w-exact"]
    fixes = [
        _fix("w-moving", T - 10 * m, lon - 0.005, lat, grid_x),
        _fix("w-moving", T - 3 * m, lon, lat, grid_x),
        _fix("w-moving", T + m, lon + 0.001, lat, grid_x),  # after T: not yet
        _fix("w-gone", T - 6 * m, lon, lat, grid_x),  # beyond the 5-minute window: offline
        _fix("w-astray", T - 2 * m, lon_y, lat_y, grid_y),  # another area's grid
        _fix("w-still", T - 22 * m, lon, lat, grid_x),
        _fix("w-still", T - 12 * m, lon + 0.0001, lat, grid_x),
        _fix("w-still", T - m, lon + 0.0001, lat + 0.0001, grid_x),  # ~15 m from 21 minutes earlier
        _fix("w-exact", T, lon, lat, grid_x),  # at T exactly: counts
    ]
    with transaction(engine) as s:
        s.execute(delete(Position).where(Position.supervisor_id.in_(people)))
        s.execute(delete(Person).where(Person.id.in_(people)))
        s.execute(
            insert(Person),
            [
                {"id": p, "name": p, "role": "supervisor", "area_code": area_x, "source": "manual"}
                for p in people
            ],
        )
        s.execute(insert(Position), fixes)
    with engine.connect() as conn:
        rows = {r.id: r for r in where_at(conn, T) if r.id in people}
        later = {r.id: r for r in where_at(conn, T + m) if r.id in people}
        much_later = {r.id: r for r in where_at(conn, T + 20 * m) if r.id in people}
    assert set(rows) == set(people)
    status = {k: v.status for k, v in rows.items()}
    assert status == {
        "w-moving": "on_duty",
        "w-gone": "offline",
        "w-astray": "out_of_area",
        "w-still": "stationary",
        "w-never": "offline",
        "w-exact": "on_duty",
    }
    assert rows["w-moving"].at == T - 3 * m and rows["w-moving"].lon == pytest.approx(lon)
    assert rows["w-moving"].grid == grid_x and rows["w-astray"].grid == grid_y
    assert rows["w-gone"].at is None and rows["w-gone"].lon is None and rows["w-never"].at is None
    assert later["w-moving"].at == T + m and later["w-moving"].lon == pytest.approx(lon + 0.001)
    assert all(r.status == "offline" for r in much_later.values())


def test_who_was_where_probes_the_index(city_engine: Engine) -> None:
    if city_engine.dialect.name != "sqlite":  # PostgreSQL: the LATERAL form, planned by the server
        with city_engine.connect() as conn:
            rows = where_at(conn, T)
        assert rows  # runs; its plan depends on table statistics
        return
    sql = _PROBE_SQLITE
    for name in ("t_from", "s_from", "t", "s"):
        sql = sql.replace(f":{name}", "'2026-11-27 02:00:00'")
    with city_engine.connect() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert plan.count("ix_positions_supervisor_at") == 2, plan  # one index probe per supervisor, twice
    assert "SCAN positions" not in plan


# -- pages over HTTP and in Chromium -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(city_engine: Engine) -> Iterator[tuple[LiveServer, str]]:
    """GridWall on a real port with the city's clock at 10:00; one supervisor walked east for 40 minutes
    up to a minute ago, a fix every 10 s (as a handset sends them)."""
    from store.accounts import provision_embedded

    engine = city_engine
    provision_embedded(engine, kiosk_secret="kiosk-secret-for-people-pages-0123456789")
    with engine.connect() as conn:
        person, area = conn.execute(
            select(Person.id, Person.area_code).where(Person.role == "supervisor", Person.id.like("sup-%"))
        ).first()  # type: ignore[misc]
        code, geom = conn.execute(
            select(Grid.code, Grid.geometry).where(Grid.area_code == area).order_by(Grid.code)
        ).first()  # type: ignore[misc]
    p = shapely.geometry.shape(geom).representative_point()
    clock = CityClock(dtime(10, 0))  # the city's clock: mid-morning, whatever the hour of the run
    now = clock().replace(microsecond=0)
    step = timedelta(seconds=10)
    first = max(day_start(now) + step, now - timedelta(minutes=41))
    n = int((now - timedelta(minutes=1) - first) / step) + 1
    with transaction(engine) as s:
        s.execute(delete(Position).where(Position.supervisor_id == person))
        s.execute(
            insert(Position),
            [_fix(person, first + step * i, p.x + 0.00005 * i, p.y, code) for i in range(n)],
        )
    add_desk_user(engine, LEADER, PASSWORD, role="leader")
    srv = start_live_server(engine, clock=clock)
    try:
        yield srv, person
    finally:
        srv.stop()


def test_supervisor_pages_over_http(served: tuple[LiveServer, str]) -> None:
    srv, person = served
    client = login_http(srv.url, LEADER, PASSWORD)
    assert client.get(f"{srv.url}/supervisor/{person}", timeout=30).status_code == 200
    for unknown in (
        "nobody-here",
        "acceptor-A",
        f"{person}/more",
    ):  # acceptor-A is a person, not a supervisor
        r = client.get(f"{srv.url}/supervisor/{unknown}", timeout=30)
        assert r.status_code == 404, (unknown, r.status_code)
    assert client.get(f"{srv.url}/desk/when?at=2026-11-27T10:00", timeout=30).status_code == 200
    anonymous = requests.get(f"{srv.url}/supervisor/{person}", allow_redirects=False, timeout=30)
    assert anonymous.status_code in (302, 401)


PLAY_MARKER = (
    """() => { const gd = document.querySelector('#SUP_MAP .js-plotly-plot');
  const tr = gd && gd.data ? gd.data.find(t => t.uid === 'play') : null;
  return tr && tr.lon && tr.lon.length ? [tr.lon[0], tr.lat[0]] : null; }"""
).replace("SUP_MAP", ids.SUP_MAP)


def test_supervisor_page_plays_back_the_track(served: tuple[LiveServer, str], browser: Any) -> None:
    srv, person = served
    with srv.engine.connect() as conn:
        now = srv.core.web.clock()  # the server's (the city's) clock
        tr = track(conn, person, day_start(now), now)
    assert len(tr.t) >= 10
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login_browser(page, srv.url, LEADER, PASSWORD, next_path=f"/supervisor/{person}")
    page.wait_for_selector(f"#{ids.SUP_MAP} .maplibregl-canvas", timeout=30_000)
    page.wait_for_function("() => window.__gwPlayback && window.__gwPlayback.frames > 0", timeout=30_000)
    start = page.evaluate(PLAY_MARKER)
    assert start == pytest.approx([tr.lon[0], tr.lat[0]], abs=1e-6)  # the playback starts at the first fix
    assert page.inner_text(f"#{ids.SUP_STATUS}") == "在岗"  # a fix a minute ago, in its own grid
    # play at 60×: 40 minutes of track pass in 40 s; the marker moves east along it
    page.select_option(f"#{ids.SUP_SPEED} select", "60")
    page.click(f"#{ids.SUP_PLAY} button")
    page.wait_for_function(
        "(x0) => { const s = window.__gwPlayback; return s.playing && s.index >= 3 && s.lon > x0; }",
        arg=tr.lon[0],
        timeout=30_000,
    )
    moved = page.evaluate(PLAY_MARKER)
    assert moved[0] > tr.lon[0] and moved[1] == pytest.approx(tr.lat[0], abs=1e-6)
    page.screenshot(path=str(_artifacts() / "supervisor-playback.png"), full_page=True)
    page.click(f"#{ids.SUP_PLAY} button")  # pause
    # the scrubber puts the marker where the track was: halfway between fixes 5 and 6
    mid = (tr.t[5] + tr.t[6]) / 2
    page.evaluate(
        "(v) => { const r = document.querySelector('#SCRUB input'); r.value = String(v);"
        " r.dispatchEvent(new Event('input', {bubbles: true})); }".replace("SCRUB", ids.SUP_SCRUB),
        round(mid),
    )
    page.wait_for_function("() => window.__gwPlayback.index === 5", timeout=10_000)
    state = page.evaluate("() => window.__gwPlayback")
    assert not state["playing"] and state["index"] == 5
    x5, x6 = round(tr.lon[5], 6), round(tr.lon[6], 6)  # the page carries 6 decimals (about 0.1 m)
    want = x5 + (round(mid) - tr.t[5]) / (tr.t[6] - tr.t[5]) * (x6 - x5)
    assert state["lon"] == pytest.approx(want, abs=1e-7)
    page.wait_for_function(
        "(x) => { const gd = document.querySelector('#SUP_MAP .js-plotly-plot');"
        " const tr = gd.data.find(t => t.uid === 'play'); return Math.abs(tr.lon[0] - x) < 1e-7; }".replace(
            "SUP_MAP", ids.SUP_MAP
        ),
        arg=want,
        timeout=10_000,
    )
    assert "已巡" in page.inner_text(f"#{ids.SUP_COVERAGE}")
    assert not errors, errors
    page.close()


def _artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def test_who_was_where_page_steps_in_minutes(served: tuple[LiveServer, str], browser: Any) -> None:
    srv, _ = served
    at = srv.core.web.clock().replace(second=0, microsecond=0) - timedelta(minutes=2)
    with srv.engine.connect() as conn:
        rows = where_at(conn, at)
    seen = sum(1 for r in rows if r.at is not None)
    assert seen >= 1  # the supervisor walking for the playback test
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login_browser(page, srv.url, LEADER, PASSWORD, next_path=href(at, "zh"))
    page.wait_for_selector(f"#{ids.WHEN_MAP} .maplibregl-canvas", timeout=30_000)
    markers = page.evaluate(
        "() => { const gd = document.querySelector('#WHEN_MAP .js-plotly-plot');"
        " return gd.data.find(t => t.uid === 'supervisors').lon.length; }".replace("WHEN_MAP", ids.WHEN_MAP)
    )
    assert markers == seen
    assert page.inner_text(f"#{ids.WHEN_AT}") == local_text(at).replace("T", " ")
    page.screenshot(path=str(_artifacts() / "who-was-where.png"), full_page=True)
    page.click(f"#{ids.WHEN_STEP}-5")
    page.wait_for_function(
        f"(t) => document.querySelector('#{ids.WHEN_AT}')?.innerText === t",
        arg=local_text(at - timedelta(minutes=5)).replace("T", " "),
        timeout=30_000,
    )
    assert page.url.endswith(href(at - timedelta(minutes=5), "zh").split("?")[1])
    assert not errors, errors
    page.close()


def _cli_supervisor(cwd: Path, person: str) -> tuple[str, float, float]:
    """A supervisor with a device token, added with the CLI to a running app's data; a point in its area."""
    import json
    import sqlite3
    import subprocess
    import sys

    db = sqlite3.connect(cwd / "var" / "gridwall.db")
    area, geom = db.execute(
        "SELECT area_code, geometry FROM grids WHERE area_code IS NOT NULL LIMIT 1"
    ).fetchone()
    db.close()
    cli = [sys.executable, str(ROOT / "app.py")]
    run = {"cwd": cwd, "check": True, "capture_output": True, "text": True, "stdin": subprocess.DEVNULL}
    subprocess.run([*cli, "user", "add", person, "--role", "supervisor", "--area", area], **run)  # type: ignore[call-overload]
    out = subprocess.run([*cli, "token", "add", "device", "--name", person, "--person", person], **run).stdout  # type: ignore[call-overload]
    point = shapely.geometry.shape(json.loads(geom)).representative_point()
    return out.strip().splitlines()[-1].split(": ", 1)[1], round(point.x, 6), round(point.y, 6)


def test_supervisor_page_follows_the_live_position(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    """Against ``app.py run``: the page joins /live room supervisor:<id> with the desk session; a fix
    sent through /device moves the live marker and sets the status."""
    import socketio

    from tests.desk_login import add_user_cli
    from tests.serve import run_app

    cwd = tmp_path_factory.mktemp("live-people")
    with run_app(cwd, "--no-simulation", timeout=120) as app:
        add_user_cli(cwd, LEADER, PASSWORD)
        person = "sup-live-page"
        secret, lon, lat = _cli_supervisor(cwd, person)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        login_browser(page, app.base, LEADER, PASSWORD, next_path=f"/supervisor/{person}")
        page.wait_for_selector(f"#{ids.SUP_MAP} .maplibregl-canvas", timeout=60_000)
        assert page.get_attribute(f"#{ids.SUP_STATUS}", "data-status") == "offline"  # never seen
        page.wait_for_function(  # the page's socket has joined its room (its snapshot came)
            "(room) => window.__gwPlayback && window.__gwPlayback.joined === room",
            arg=f"supervisor:{person}", timeout=30_000,
        )  # fmt: skip
        client = socketio.Client()
        client.connect(app.base, namespaces=["/device"], auth={"token": secret}, transports=["websocket"])
        try:
            fix = {"id": "page-fix", "at": datetime.now(UTC).isoformat(), "lon": lon, "lat": lat}
            assert client.call("position", fix, namespace="/device", timeout=30)["accepted"] == ["page-fix"]
        finally:
            client.disconnect()
        page.wait_for_function(
            "([lon, lat]) => { const gd = document.querySelector('#SUP_MAP .js-plotly-plot');"
            " const t = gd.data.find(t => t.uid === 'live');"
            " return t.lon.length === 1 && Math.abs(t.lon[0] - lon) < 2e-5"
            " && Math.abs(t.lat[0] - lat) < 2e-5; }".replace("SUP_MAP", ids.SUP_MAP),
            arg=[lon, lat],
            timeout=20_000,
        )
        page.wait_for_function(
            "(id) => document.getElementById(id)?.getAttribute('data-status') === 'on_duty'",
            arg=ids.SUP_STATUS,
            timeout=20_000,
        )
        assert page.inner_text(f"#{ids.SUP_STATUS}") == "在岗"
        track_points = page.evaluate(  # today's track grew by the live fix
            "() => document.querySelector('#SUP_MAP .js-plotly-plot')"
            ".data.find(t => t.uid === 'track').lon".replace("SUP_MAP", ids.SUP_MAP)
        )
        assert track_points == pytest.approx([lon], abs=2e-5)
        page.screenshot(path=str(_artifacts() / "supervisor-live.png"))
        assert not errors, errors
        page.close()
