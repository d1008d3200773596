"""Duplicate problems through the running system (issue 21), over real HTTP on SQLite and PostgreSQL:
two hotline reports of one problem a few metres apart get the first as the second's candidate; the
acceptor merges the second (``POST /api/v1/cases/<id>/merge``), which ends it, answers its caller
on Open311 and leaves the first open; another problem of the class far away gets no candidate; a
merge into a closed case is refused by name; 不合并 clears a candidate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from store.accounts import issue_token
from store.db import transaction
from tests.live_server import LiveServer, start_live_server
from tests.test_api import command, get, post, report

M_LAT = 1 / 111_195.0  # degrees of latitude per metre


@pytest.fixture(scope="module")
def srv(city_engine: Engine) -> Iterator[LiveServer]:
    server = start_live_server(city_engine, interval=0.2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(srv: LiveServer) -> dict[str, str]:
    with transaction(srv.engine) as s:
        roles = ("call_center", "acceptor", "shift_leader")
        return {r: issue_token(s, "api", f"dup key {r}", role=r)[1] for r in roles}


def hotline(srv: LiveServer, keys: dict[str, str], lon: float, lat: float, **extra: Any) -> dict[str, Any]:
    r = post(srv, "/reports", keys["call_center"], report(lon=lon, lat=lat, **extra))
    assert r.status_code == 201, r.text
    return dict(r.json()["case"])


def test_a_repeat_gets_its_candidate_and_is_merged(srv: LiveServer, keys: dict[str, str]) -> None:
    spot = srv.spot()
    first = hotline(srv, keys, spot.lon, spot.lat)
    assert first["duplicate_of"] is None
    again = hotline(srv, keys, spot.lon, spot.lat + 12 * M_LAT)  # 12 m north, moments later
    assert again["duplicate_of"] == first["id"]
    far = next(
        s
        for s in (srv.spot() for _ in range(20))
        if abs(s.lat - spot.lat) > 0.002 or abs(s.lon - spot.lon) > 0.003
    )
    elsewhere = hotline(srv, keys, far.lon, far.lat)  # another grid, over 200 m away: another problem
    assert elsewhere["duplicate_of"] is None
    r = command(srv, keys["call_center"], again["id"], "merge", into=first["id"])
    assert r.status_code == 403 and r.json()["error"] == "wrong_role"
    r = command(srv, keys["acceptor"], again["id"], "merge", into=first["id"])
    assert r.status_code == 200, r.text
    merged = r.json()["case"]
    assert merged["status"] == "voided" and merged["merged_into"] == first["id"] and not merged["open"]
    assert merged["source"] == "hotline"
    assert get(srv, f"/cases/{first['id']}", keys["acceptor"]).json()["open"]
    view = get(srv, f"/cases/{again['id']}", keys["acceptor"]).json()
    assert [e["action"] for e in view["events"]] == ["report", "merge"]


def test_merge_into_a_closed_case_is_refused_and_keep_apart_clears(srv: LiveServer, keys: dict[str, str]
                                                                   ) -> None:  # fmt: skip
    spot = srv.spot()
    lon, lat = spot.lon, spot.lat  # a spot no other test used
    first = hotline(srv, keys, lon, lat)
    again = hotline(srv, keys, lon, lat + 8 * M_LAT)
    assert again["duplicate_of"] == first["id"]
    assert command(srv, keys["shift_leader"], first["id"], "void", opinion="不属实").status_code == 200
    r = command(srv, keys["acceptor"], again["id"], "merge", into=first["id"])
    assert r.status_code in (409, 422) and r.json()["error"] == "missing_merge_target", r.text
    r = command(srv, keys["acceptor"], again["id"], "keep_apart")
    assert r.status_code == 200 and r.json()["case"]["duplicate_of"] is None
    third = hotline(srv, keys, lon, lat + 4 * M_LAT)  # the first is closed, the second still open
    assert third["duplicate_of"] == again["id"]
