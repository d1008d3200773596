"""Open311 GeoReport v2 at ``/open311/v2`` over a real port, on SQLite and PostgreSQL.

Services come from the catalogue; a request filed by an Open311 client (form-encoded, ``api_key``)
becomes a public case that appears in the ``/live`` stream, and ``GET requests`` follows it as it is
moved through its lifecycle with ``/api/v1`` keys of the right roles (open → closed, status notes,
expected datetime = handling deadline, agency = department). Errors come in Open311's format.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from feeds.api import API_PREFIX
from feeds.open311 import OPEN311_PREFIX, service_code
from store.accounts import issue_token
from store.db import transaction
from store.models import Case, Reject
from tests.live_server import LiveServer, start_live_server

CATALOGUE = load_catalogue("cjt214")
EVENT = next(c for c in CATALOGUE.classes if c.kind.value == "event" and not c.emergency)
COMPONENT = next(c for c in CATALOGUE.classes if c.kind.value == "component" and c.code == EVENT.code)
ROLES = (
    "call_center",
    "acceptor",
    "supervisor",
    "shift_leader",
    "dispatcher",
    f"department:{EVENT.department}",
)
WAIT = 5.0


@pytest.fixture(scope="module")
def srv(city_engine: Engine) -> Iterator[LiveServer]:
    server = start_live_server(city_engine, interval=0.2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(srv: LiveServer) -> dict[str, str]:
    with transaction(srv.engine) as s:
        return {r: issue_token(s, "api", f"o311 {r}", role=r)[1] for r in ROLES}


def o311(srv: LiveServer, path: str) -> str:
    return f"{srv.url}{OPEN311_PREFIX}{path}"


def file_request(srv: LiveServer, key: str | None, **form: Any) -> requests.Response:
    data = {"service_code": service_code(EVENT), "description": "路灯不亮", **form}
    if key is not None:
        data["api_key"] = key
    return requests.post(o311(srv, "/requests.json"), data=data, timeout=30)


def one(srv: LiveServer, case_id: str) -> dict[str, Any]:
    r = requests.get(o311(srv, f"/requests/{case_id}.json"), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    return dict(body[0])


def move(srv: LiveServer, keys: dict[str, str], case_id: str, role: str, action: str, **body: Any) -> None:
    r = requests.post(f"{srv.url}{API_PREFIX}/cases/{case_id}/{action}", json=body,
                      headers={"Authorization": f"Bearer {keys[role]}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, (action, r.text)


def is_error(r: requests.Response, status: int, reason: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, list) and body[0]["code"] == status, body
    assert body[0]["description"].startswith(f"{reason}:"), body


def test_services_are_the_catalogue(srv: LiveServer) -> None:
    r = requests.get(o311(srv, "/services.json"), timeout=30)
    assert r.status_code == 200
    services = r.json()
    assert len(services) == len(CATALOGUE.classes)
    codes = [s["service_code"] for s in services]
    assert len(set(codes)) == len(codes)  # components and events reuse class codes: the prefix tells
    assert service_code(EVENT) in codes and service_code(COMPONENT) in codes
    ev = next(s for s in services if s["service_code"] == service_code(EVENT))
    assert ev["service_name"] == EVENT.name and ev["group"] == EVENT.major_name and ev["metadata"] is True
    d = requests.get(o311(srv, f"/services/{service_code(EVENT)}.json"), timeout=30).json()
    values = d["attributes"][0]["values"]
    assert d["service_code"] == service_code(EVENT)
    assert [v["key"] for v in values] == [c.code for c in EVENT.conditions]
    is_error(requests.get(o311(srv, "/services/X0101.json"), timeout=30), 404, "unknown_class")
    is_error(requests.get(o311(srv, "/services.xml"), timeout=30), 400, "malformed")
    is_error(requests.get(o311(srv, "/nothing.json"), timeout=30), 404, "not_found")


def test_round_trip_post_then_get_follows_the_case_through_its_lifecycle(
    srv: LiveServer, keys: dict[str, str]
) -> None:
    spot = srv.spot()
    wall = srv.peer("/live", srv.kiosk)
    wall.wait("snapshot", timeout=WAIT)
    mark = wall.mark()
    r = file_request(srv, keys["call_center"], lat=spot.lat, long=spot.lon, media_url="https://x.test/1.jpg",
                     **{"attribute[condition_code]": EVENT.conditions[-1].code})  # fmt: skip
    assert r.status_code == 201, r.text
    [created] = r.json()
    case_id = created["service_request_id"]
    assert created["service_notice"] is None and created["account_id"] is None
    # an Open311 client's report appears in the /live stream
    wall.wait("tick", lambda m: case_id in m["cases"]["id"], since=mark, timeout=WAIT)
    with srv.engine.connect() as c:
        row = c.execute(
            select(Case.source, Case.grid_code, Case.condition_code).where(Case.id == case_id)
        ).one()
    assert row == ("public", spot.grid, EVENT.conditions[-1].code)

    req = one(srv, case_id)
    dept_name = CATALOGUE.departments[EVENT.department].name
    assert req["status"] == "open" and req["status_notes"].startswith("待受理")
    assert req["service_code"] == service_code(EVENT) and req["service_name"] == EVENT.name
    assert req["agency_responsible"] == dept_name  # the class's department until dispatched
    assert req["expected_datetime"] is None and req["long"] == pytest.approx(spot.lon, abs=1e-6)
    assert req["description"] == "路灯不亮\nmedia_url: https://x.test/1.jpg"  # not an upload: kept as text
    assert req["address_id"] == spot.grid

    seen = []
    steps = [("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}),
             ("shift_leader", "file", {}), ("dispatcher", "dispatch", {}),
             (f"department:{EVENT.department}", "handle", {}), ("supervisor", "check", {"passed": True}),
             ("shift_leader", "close", {})]  # fmt: skip
    for role, action, body in steps:
        move(srv, keys, case_id, role, action, **body)
        got = one(srv, case_id)
        seen.append((got["status"], got["status_notes"].split(" ")[0]))
        if action == "dispatch":
            api = requests.get(f"{srv.url}{API_PREFIX}/cases/{case_id}",
                               headers={"X-API-Key": keys["dispatcher"]}, timeout=30).json()  # fmt: skip
            expected = datetime.fromisoformat(got["expected_datetime"])
            assert expected == datetime.fromisoformat(api["handling_deadline"])
            assert got["agency_responsible"] == dept_name
    assert seen == [("open", "待核实"), ("open", "待立案"), ("open", "待派遣"), ("open", "处置中"),
                    ("open", "待核查"), ("open", "待结案"), ("closed", "结案")]  # fmt: skip
    closed = one(srv, case_id)
    assert closed["updated_datetime"] > closed["requested_datetime"]


def test_address_only_request_needs_location(srv: LiveServer, keys: dict[str, str]) -> None:
    r = file_request(srv, keys["acceptor"], address_string="东城区 东直门内大街 5 号")
    assert r.status_code == 201, r.text
    [created] = r.json()
    assert "needs location" in created["service_notice"]
    req = one(srv, created["service_request_id"])
    assert req["address"] == "东城区 东直门内大街 5 号" and req["lat"] is None and req["address_id"] is None
    assert req["status"] == "open" and "needs location" in req["status_notes"]
    json_post = requests.post(o311(srv, "/requests.json"), timeout=30, json={
        "api_key": keys["acceptor"], "service_code": service_code(COMPONENT), "address_string": "某处",
        "attribute": {"condition_code": COMPONENT.conditions[0].code}})  # fmt: skip
    assert json_post.status_code == 201, json_post.text
    got = one(srv, json_post.json()[0]["service_request_id"])
    assert got["service_code"] == service_code(COMPONENT)


def test_post_errors_are_in_open311_format_and_dead_lettered(srv: LiveServer, keys: dict[str, str]) -> None:
    spot = srv.spot()
    with srv.engine.connect() as c:
        mark = int(c.scalar(select(func.coalesce(func.max(Reject.id), 0))) or 0)
    checks = [
        (file_request(srv, None, lat=spot.lat, long=spot.lon), 400, "token_missing"),
        (file_request(srv, "wrong-key-0123456789", lat=spot.lat, long=spot.lon), 403, "token_unknown"),
        (file_request(srv, keys["call_center"], service_code="E9999", lat=spot.lat, long=spot.lon), 400,
         "unknown_class"),
        (file_request(srv, keys["call_center"], service_code="Z1", address_string="x"), 400, "unknown_class"),
        (file_request(srv, keys["call_center"], service_code="", address_string="x"), 400, "missing_field"),
        (file_request(srv, keys["call_center"]), 400, "missing_field"),  # neither point nor address
        (file_request(srv, keys["call_center"], lat="north", long=spot.lon), 400, "wrong_type"),
        (file_request(srv, keys["call_center"], lat=39.99, long=116.30), 400, "outside_district"),
        (file_request(srv, keys["dispatcher"], address_string="x"), 403, "wrong_role"),
        (requests.post(o311(srv, "/requests.json"), data=b"{bad", timeout=30,
                       headers={"Content-Type": "application/json"}), 400, "malformed"),
        (requests.post(o311(srv, "/requests.xml"), data={"api_key": keys["call_center"]}, timeout=30), 400,
         "malformed"),
        (requests.get(o311(srv, "/requests/NOPE.json"), timeout=30), 404, "unknown_case"),
        (requests.delete(o311(srv, "/requests.json"), timeout=30), 405, "method_not_allowed"),
    ]  # fmt: skip
    for r, status, reason in checks:
        is_error(r, status, reason)
    with srv.engine.connect() as c:
        reasons = [r for (r,) in c.execute(select(Reject.reason).where(Reject.id > mark))]
    assert {"token_missing", "token_unknown", "unknown_class", "missing_field", "wrong_type",
            "outside_district", "wrong_role", "malformed"} <= set(reasons)  # fmt: skip


def test_a_json_api_key_that_is_not_a_string_is_refused_by_name(srv: LiveServer) -> None:
    """Issue 20 item 6: a number, list or object as ``api_key`` answered a 500 HTML page."""
    spot = srv.spot()
    with srv.engine.connect() as c:
        mark = int(c.scalar(select(func.coalesce(func.max(Reject.id), 0))) or 0)
    for key in (12345, ["k"], {"k": 1}, True):
        body = {"api_key": key, "service_code": service_code(EVENT), "lat": spot.lat, "long": spot.lon}
        r = requests.post(o311(srv, "/requests.json"), timeout=30, json=body)
        is_error(r, 400, "malformed")
    with srv.engine.connect() as c:
        reasons = [r for (r,) in c.execute(select(Reject.reason).where(Reject.id > mark))]
    assert reasons.count("malformed") >= 1  # dead-lettered (repeats within a minute are counted, not kept)


def test_get_requests_filters(srv: LiveServer, keys: dict[str, str]) -> None:
    spot = srv.spot()
    ids = []
    for cls in (EVENT, COMPONENT):
        r = file_request(
            srv, keys["call_center"], service_code=service_code(cls), lat=spot.lat, long=spot.lon
        )
        ids.append(r.json()[0]["service_request_id"])
    closed_id = file_request(srv, keys["call_center"], address_string="dup").json()[0]["service_request_id"]
    requests.post(f"{srv.url}{API_PREFIX}/cases/{closed_id}/void", json={"opinion": "重复"}, timeout=30,
                  headers={"X-API-Key": keys["shift_leader"]}).raise_for_status()  # fmt: skip

    def listed(**params: str) -> list[str]:
        r = requests.get(o311(srv, "/requests.json"), params=params, timeout=30)
        assert r.status_code == 200, r.text
        return [x["service_request_id"] for x in r.json()]

    assert listed(service_request_id=",".join(ids)) in (ids, ids[::-1])
    recent = listed()
    assert set(ids) | {closed_id} <= set(recent)
    assert ids[0] in listed(service_code=service_code(EVENT)) and ids[1] not in listed(
        service_code=service_code(EVENT)
    )
    assert closed_id in listed(status="closed") and closed_id not in listed(status="open")
    assert ids[0] in listed(status="open,closed")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert listed(start_date=future) == []
    assert ids[0] in listed(end_date=future)
    assert listed(service_code="Z0000") == []
    bad = [{"start_date": "yesterday"}, {"start_date": "2026-01-01T00:00:00"}, {"status": "pending"}]
    for params, reason in [(b, "wrong_type") for b in bad]:
        is_error(requests.get(o311(srv, "/requests.json"), params=params, timeout=30), 400, reason)
    voided = one(srv, closed_id)
    assert voided["status"] == "closed" and voided["status_notes"].startswith("作废")
