"""The live core at several hours of the city's day (issue 20 item 11).

Each run serves a fresh built-in district on a real port with the city's clock injected
(:class:`tests.conftest.CityClock`: night, morning peak, lunch break, 23:59:30 on a working day). A
real handset sends a fix and a report through ``/device``; a real ``/live`` client sees the
supervisor on duty and today's report count; the web app reads the same clock. Then the city's
midnight passes (the clock jumps to 00:00:30 the next day) and "today" starts again from zero.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from domain.catalogue import load_catalogue
from store.build import BuildRequest, build_city
from store.cases import sync_departments
from store.db import create_engine, transaction
from tests.conftest import CITY_HOURS, CITY_TZ, CityClock
from tests.live_server import LiveServer, Spot, start_live_server

CATALOGUE = load_catalogue("cjt214")
PLAIN_EVENT = next(c for c in CATALOGUE.classes if c.kind.value == "event" and not c.emergency)
WAIT = 10.0  # seconds for a message that must come (ticks every 0.2 s)


@pytest.fixture(params=list(CITY_HOURS))
def at_hour(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, CityClock]]:
    """A fresh district served with the city's clock at one hour of the day."""
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    build_city(engine, BuildRequest())
    with transaction(engine) as s:
        sync_departments(s, CATALOGUE)
    clock = CityClock(CITY_HOURS[request.param])
    srv = start_live_server(engine, clock=clock)
    try:
        yield srv, clock
    finally:
        srv.stop()
        engine.dispose()


def _fix(spot: Spot, at: datetime, ref: str) -> dict[str, Any]:
    return {"id": ref, "lon": spot.lon, "lat": spot.lat, "at": at.isoformat()}


def _report(spot: Spot, at: datetime) -> dict[str, Any]:
    return {"id": f"rep-{uuid.uuid4().hex[:8]}", "kind": PLAIN_EVENT.kind.value,
            "class_code": PLAIN_EVENT.code, "lon": spot.lon, "lat": spot.lat, "at": at.isoformat(),
            "description": "整点测试"}  # fmt: skip


def _sup(msg: dict[str, Any], person: str) -> dict[str, Any] | None:
    sup = msg["sup"]
    for i, pid in enumerate(sup["id"]):
        if pid == person:
            return {k: sup[k][i] for k in sup}
    return None


def test_a_fix_and_a_report_count_for_the_city_day_they_happen_in(
    at_hour: tuple[LiveServer, CityClock],
) -> None:
    srv, clock = at_hour
    spot = srv.spot()
    wall = srv.peer("/live", srv.kiosk)
    snap = wall.wait("snapshot", timeout=WAIT)
    assert snap["kpi"]["reported"] == 0 and snap["kpi"]["on_duty"] == 0  # a fresh city
    dev = srv.peer("/device", spot.secret)
    mark = wall.mark()
    assert dev.call("position", _fix(spot, clock() - timedelta(seconds=5), "h-1"))["accepted"] == ["h-1"]
    tick = wall.wait("tick", lambda m: (_sup(m, spot.person) or {}).get("status") == "on_duty", since=mark,
                     timeout=WAIT)  # fmt: skip
    assert tick["kpi"]["on_duty"] == 1
    # a report now counts for today, whatever the hour (at 23:59:30 too: it is still today)
    body = _report(spot, clock())
    mark = wall.mark()
    ack = dev.call("report", body)
    assert ack["accepted"] == [body["id"]], ack
    tick = wall.wait("tick", lambda m: m.get("kpi", {}).get("reported") == 1, since=mark, timeout=WAIT)
    # the desk's pages read the same clock (the web app's "now" and "today")
    assert abs(srv.core.web.clock() - clock()) < timedelta(seconds=5)
    # the city's midnight passes: today starts from zero again, and the supervisor's fix is yesterday's
    local = clock.local()
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=CITY_TZ)
    clock.move(midnight + timedelta(seconds=30) - local)
    assert clock.local().hour == 0
    mark = wall.mark()
    tick = wall.wait("tick", lambda m: m.get("kpi", {}).get("reported") == 0, since=mark, timeout=WAIT)
    assert tick["kpi"]["reported"] == 0
    # a fix after midnight is today's again and counts the supervisor on duty
    mark = wall.mark()
    assert dev.call("position", _fix(spot, clock(), "h-2"))["accepted"] == ["h-2"]
    wall.wait("tick", lambda m: (_sup(m, spot.person) or {}).get("status") == "on_duty", since=mark,
              timeout=WAIT)  # fmt: skip
    # still serving (a liveness guard, not a speed target: the first /healthz builds the district's
    # overview, which beside a CPU hog took more than 10 s)
    assert requests.get(f"{srv.url}/healthz", timeout=120).status_code == 200
