"""``/api/v1`` over a real port, on SQLite and PostgreSQL: API keys by role, every endpoint with the
right key, a wrong key and the wrong role; batch positions stored; reports with a point, only an
address or only a grid code (needs location); the whole lifecycle driven by keys of the right roles;
named refusals (HTTP status + reason) that are dead-lettered; 503 until the pipeline is attached.

The tests share one server per backend (tests/live_server.py, as ``app.py run`` composes it) and run
in file order; each works with its own supervisors and cases.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from domain.catalogue import load_catalogue
from feeds.api import API_PREFIX, COMMANDS, POSITION_ROLES, register_http_feeds
from feeds.live import MemoryLiveState, grid_areas, rebuild, supervisor_areas
from feeds.schemas import MAX_BATCH
from store.accounts import issue_token, revoke_token
from store.db import transaction
from store.models import Case, Position, Reject
from tests.live_server import LiveServer, Peer, free_port, start_live_server

CATALOGUE = load_catalogue("cjt214")
EVENT = next(c for c in CATALOGUE.classes if c.kind.value == "event" and not c.emergency)
DEPT = EVENT.department
OTHER_DEPT = next(d for d in CATALOGUE.departments if d != DEPT)
ROLES = ("call_center", "acceptor", "shift_leader", "dispatcher", "leader", "supervisor", "admin",
         f"department:{DEPT}", f"department:{OTHER_DEPT}")  # fmt: skip
WAIT = 5.0


@dataclass(frozen=True)
class Keys:
    """API key secrets by role, and refused ones."""

    by_role: dict[str, str]
    revoked: str
    gateway: str

    def __getitem__(self, role: str) -> str:
        return self.by_role[role]


@pytest.fixture(scope="module")
def srv(city_engine: Engine) -> Iterator[LiveServer]:
    server = start_live_server(city_engine, interval=0.2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(srv: LiveServer) -> Keys:
    with transaction(srv.engine) as s:
        by_role = {r: issue_token(s, "api", f"key {r}", role=r)[1] for r in ROLES}
        tok, revoked = issue_token(s, "api", "revoked key", role="call_center")
        revoke_token(s, tok.id)
        _, gateway = issue_token(s, "gateway", "api-test gateway", scope=["*"])
    return Keys(by_role, revoked, gateway)


def url(srv: LiveServer, path: str) -> str:
    return f"{srv.url}{API_PREFIX}{path}"


def post(srv: LiveServer, path: str, key: str | None, body: Any, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(body, bytes | str):
        return requests.post(url(srv, path), data=body, headers=headers, timeout=30, **kw)
    return requests.post(url(srv, path), json=body, headers=headers, timeout=30, **kw)


def get(srv: LiveServer, path: str, key: str | None) -> requests.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return requests.get(url(srv, path), headers=headers, timeout=30)


def reject_mark(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.coalesce(func.max(Reject.id), 0))) or 0)


def dead_letters(engine: Engine, after: int) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(select(Reject.source, Reject.reason, Reject.payload).where(Reject.id > after)))


def report(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": EVENT.kind.value, "class_code": EVENT.code, "description": "api test"}
    body.update(extra)
    return body


def new_case(srv: LiveServer, keys: Keys, **where: Any) -> str:
    spot = where.pop("spot", None) or srv.spot()
    loc = where or {"lon": spot.lon, "lat": spot.lat}
    r = post(srv, "/reports", keys["call_center"], report(**loc))
    assert r.status_code == 201, r.text
    return str(r.json()["case"]["id"])


def command(srv: LiveServer, key: str, case_id: str, action: str, **body: Any) -> requests.Response:
    return post(srv, f"/cases/{case_id}/{action}", key, body)


# -- keys -------------------------------------------------------------------------------------------------


ENDPOINTS = [
    ("post", "/positions", {"fixes": []}),
    ("post", "/reports", report(address="东城区 某街 1 号")),
    ("post", "/cases/R00000000000001/accept", {}),
    ("get", "/cases/R00000000000001", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_every_endpoint_refuses_a_missing_wrong_revoked_or_foreign_key(
    srv: LiveServer, keys: Keys, method: str, path: str, body: Any
) -> None:
    mark = reject_mark(srv.engine)
    for given, reason in [(None, "token_missing"), ("not-a-key-0123456789", "token_unknown"),
                          (keys.revoked, "token_revoked"), (keys.gateway, "token_wrong_kind")]:  # fmt: skip
        r = post(srv, path, given, body) if method == "post" else get(srv, path, given)
        assert r.status_code == 401, (path, given, r.text)
        assert r.json()["error"] == reason
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    rows = dead_letters(srv.engine, mark)
    assert sorted(row.reason for row in rows) == sorted(
        ["token_missing", "token_unknown", "token_revoked", "token_wrong_kind"]
    )
    assert all(row.source == "api:127.0.0.1" and row.payload["path"] == API_PREFIX + path for row in rows)


def test_the_key_is_taken_from_bearer_or_x_api_key(srv: LiveServer, keys: Keys) -> None:
    case_id = new_case(srv, keys)
    assert get(srv, f"/cases/{case_id}", keys["leader"]).status_code == 200  # X-API-Key
    r = requests.get(url(srv, f"/cases/{case_id}"), headers={"Authorization": f"bearer {keys['leader']}"},
                     timeout=30)  # fmt: skip
    assert r.status_code == 200 and r.json()["id"] == case_id


# -- positions --------------------------------------------------------------------------------------------


def test_batch_positions_are_stored_per_fix_with_partial_answers(srv: LiveServer, keys: Keys) -> None:
    a, b = srv.spot(), srv.spot()
    t0 = datetime.now(UTC) - timedelta(seconds=30)

    def at(i: int) -> str:
        return (t0 + timedelta(seconds=i)).isoformat()

    fixes = [{"supervisor": s.person, "lon": s.lon, "lat": s.lat, "at": at(i)} for i in range(5)
             for s in (a, b)]  # fmt: skip
    bad = [{"supervisor": a.person, "lon": 0, "lat": 0, "at": t0.isoformat(), "id": "zero"},
           {"supervisor": "nobody", "lon": a.lon, "lat": a.lat, "at": t0.isoformat(), "id": "who"},
           {"supervisor": a.person, "lat": a.lat, "at": t0.isoformat(), "id": "nolon"}]  # fmt: skip
    mark = reject_mark(srv.engine)
    for role in sorted(POSITION_ROLES):
        body = {"fixes": fixes + bad} if role == "supervisor" else {"fixes": []}
        r = post(srv, "/positions", keys[role], body)
        assert r.status_code == 200, r.text
    ack = post(srv, "/positions", keys["supervisor"], {"fixes": fixes}).json()  # the retry
    assert len(ack["duplicates"]) == 10 and not ack["accepted"]
    with srv.engine.connect() as c:
        stored = c.execute(
            select(Position.supervisor_id, Position.source).where(
                Position.supervisor_id.in_([a.person, b.person])
            )
        ).all()
    assert len(stored) == 10 and {s for _, s in stored} == {"device"}
    rows = dead_letters(srv.engine, mark)
    assert sorted(r.reason for r in rows) == ["missing_field", "unknown_supervisor", "zero_coordinates"]
    assert {r.source for r in rows} == {"api:key supervisor"}


def test_positions_refuse_other_roles_and_malformed_batches(srv: LiveServer, keys: Keys) -> None:
    spot = srv.spot()
    fix = {"supervisor": spot.person, "lon": spot.lon, "lat": spot.lat, "at": datetime.now(UTC).isoformat()}
    mark = reject_mark(srv.engine)
    for role in ROLES:
        if role in POSITION_ROLES:
            continue
        r = post(srv, "/positions", keys[role], {"fixes": [fix]})
        assert r.status_code == 403 and r.json()["error"] == "not_allowed", (role, r.text)
    key = keys["supervisor"]
    cases = [
        (b"{not json", 400, "malformed"),
        ("[1, 2]", 400, "malformed"),
        ({"fixes": "no"}, 422, "wrong_type"),
        ({}, 422, "missing_field"),
        ({"fixes": [fix] * (MAX_BATCH + 1)}, 413, "too_large"),
    ]
    for body, status, reason in cases:
        r = post(srv, "/positions", key, body, headers={"Content-Type": "application/json"})
        assert r.status_code == status and r.json()["error"] == reason, (
            body if len(str(body)) < 80 else "…",
            r.text,
        )
    reasons = [r.reason for r in dead_letters(srv.engine, mark)]
    assert reasons.count("not_allowed") == len(ROLES) - len(POSITION_ROLES)
    assert {"malformed", "wrong_type", "missing_field", "too_large"} <= set(reasons)
    with srv.engine.connect() as c:
        assert not c.scalar(
            select(func.count()).select_from(Position).where(Position.supervisor_id == spot.person)
        )


# -- reports ----------------------------------------------------------------------------------------------


def test_report_with_a_point_then_its_retry(srv: LiveServer, keys: Keys) -> None:
    spot = srv.spot()
    body = report(lon=spot.lon, lat=spot.lat, at=datetime.now(UTC).isoformat())  # a retry sends the same `at`
    r = post(srv, "/reports", keys["call_center"], body, headers={"Idempotency-Key": "hotline-1"})
    assert r.status_code == 201, r.text
    out = r.json()
    case = out["case"]
    assert out["accepted"] == ["hotline-1"] and out["cases"]["hotline-1"] == case["id"]
    assert case["stage"] == "待受理" and case["status"] == "reported" and case["source"] == "hotline"
    assert case["grid"] == spot.grid and not case["needs_location"]
    assert case["deadline"] and case["deadlines"]["accept"]["deadline"] == case["deadline"]
    again = post(srv, "/reports", keys["call_center"], body, headers={"Idempotency-Key": "hotline-1"})
    assert again.status_code == 200 and again.json()["duplicates"] == ["hotline-1"]
    assert again.json()["case"]["id"] == case["id"]
    later = post(
        srv, "/reports", keys["call_center"], {**body, "at": None}, headers={"Idempotency-Key": "hotline-1"}
    )
    assert later.status_code == 409 and later.json()["error"] == "idempotency_key_conflict"  # another instant


def test_report_with_only_an_address_needs_location(srv: LiveServer, keys: Keys) -> None:
    r = post(srv, "/reports", keys["call_center"], report(address="东城区东四北大街 107 号"))
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["needs_location"] and case["stage"] == "待受理"
    assert case["grid"] is None and case["lon"] is None and case["address"] == "东城区东四北大街 107 号"
    with srv.engine.connect() as c:
        row = c.execute(
            select(Case.needs_location, Case.address, Case.grid_code).where(Case.id == case["id"])
        ).one()
    assert row == (True, "东城区东四北大街 107 号", None)
    live = srv.core.live.open_case(case["id"])  # counted, not drawn
    assert live is not None and live.lon is None and live.grid is None


def test_report_with_only_a_grid_code_gets_the_grid_and_street(srv: LiveServer, keys: Keys) -> None:
    spot = srv.spot()
    before = srv.core.live.grid_counts().get(spot.grid)
    r = post(srv, "/reports", keys["leader"], report(grid_code=spot.grid))
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["needs_location"] and case["grid"] == spot.grid and case["street"] == spot.grid[:9]
    assert case["source"] == "leader" and case["lon"] is None
    after = srv.core.live.grid_counts()[spot.grid]
    assert after.open == (before.open if before else 0) + 1
    wall = Peer(srv.url, "/live", srv.kiosk)  # the wall's snapshot carries it without a point
    try:
        snap = wall.wait("snapshot", timeout=WAIT)
        i = snap["cases"]["id"].index(case["id"])
        assert snap["cases"]["lon"][i] is None and snap["cases"]["grid"][i] == spot.grid
    finally:
        wall.close()
    unknown = post(srv, "/reports", keys["leader"], report(grid_code="110101999999999"))
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_grid"


def test_report_refusals_are_named(srv: LiveServer, keys: Keys) -> None:
    spot = srv.spot()
    mark = reject_mark(srv.engine)
    cases = [
        (keys["call_center"], report(), 422, "missing_field"),
        (keys["call_center"], report(lon=spot.lon), 422, "missing_field"),
        (keys["call_center"], report(address="x", class_code="9999"), 422, "unknown_class"),
        (keys["call_center"], report(lon=116.30, lat=39.99), 422, "outside_district"),
        (keys["call_center"], report(address="x", at="2025-01-01T00:00:00"), 422, "wrong_type"),
        (keys["call_center"], report(address="x", case_id="MINE-1"), 403, "not_allowed"),
        (keys["shift_leader"], report(address="x"), 403, "wrong_role"),
        (keys["dispatcher"], report(address="x"), 403, "wrong_role"),
        (keys["call_center"], b"\xff\xfe", 400, "malformed"),
    ]
    for key, body, status, reason in cases:
        r = post(srv, "/reports", key, body, headers={"Content-Type": "application/json"})
        assert r.status_code == status and r.json()["error"] == reason, (body, r.text)
    assert len(dead_letters(srv.engine, mark)) == len(cases)


# -- lifecycle commands -----------------------------------------------------------------------------------


def test_whole_lifecycle_through_the_api_with_keys_of_the_right_roles(srv: LiveServer, keys: Keys) -> None:
    case_id = new_case(srv, keys)
    d = f"department:{DEPT}"
    steps: list[tuple[str, str, dict[str, Any], int]] = [
        ("call_center", "accept", {}, 403),  # wrong role first: nothing changes
        ("acceptor", "accept", {}, 200),
        ("supervisor", "verify", {"confirmed": True}, 200),
        ("shift_leader", "file", {}, 200),
        ("dispatcher", "dispatch", {}, 200),
        ("leader", "urge", {"opinion": "快办"}, 200),
        (f"department:{OTHER_DEPT}", "handle", {}, 403),  # not its case
        (d, "extend", {"opinion": "材料未到", "extra": "2 work_days"}, 200),
        ("dispatcher", "approve", {}, 200),
        (d, "handle", {}, 200),
        ("supervisor", "check", {"passed": True}, 200),
        ("dispatcher", "close", {}, 403),
        ("shift_leader", "close", {}, 200),
        ("shift_leader", "close", {}, 409),  # closed
    ]
    stages = []
    for role, action, body, status in steps:
        r = command(srv, keys[role], case_id, action, **body)
        assert r.status_code == status, (role, action, r.text)
        if status == 200:
            stages.append(r.json()["case"]["status"])
        else:
            assert r.json()["error"] in ("wrong_role", "wrong_department", "case_closed")
    assert stages == ["verifying", "to_file", "to_dispatch", "handling", "handling", "handling", "handling",
                      "to_check", "to_close", "closed"]  # fmt: skip
    view = get(srv, f"/cases/{case_id}", keys["call_center"]).json()
    assert view["status"] == "closed" and view["stage"] is None and not view["open"]
    assert view["department"] == DEPT and view["archive"] == "normal"
    assert view["handling_deadline"] and view["deadlines"]["handle"]["ended_at"]
    actions = [e["action"] for e in view["events"]]
    assert actions == ["report", "accept", "verify", "file", "dispatch", "urge", "request_extension",
                       "approve", "feedback", "check", "close"]  # fmt: skip
    assert {e["actor"] for e in view["events"]} >= {"api:key acceptor", f"api:key {d}"}


def test_void_suspend_resume_return_and_reject(srv: LiveServer, keys: Keys) -> None:
    d = f"department:{DEPT}"
    voided = new_case(srv, keys, address="某地")
    assert command(srv, keys["shift_leader"], voided, "void").status_code == 422  # needs an opinion
    r = command(srv, keys["shift_leader"], voided, "void", opinion="重复")
    assert r.status_code == 200 and r.json()["case"]["status"] == "voided"
    case_id = new_case(srv, keys)
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}),
        ("shift_leader", "file", {}), ("dispatcher", "dispatch", {}),
        (d, "suspend", {"opinion": "待施工"}), ("dispatcher", "approve", {}),
        ("dispatcher", "resume", {}), (d, "return", {"opinion": "非本单位"}),
        ("dispatcher", "reject", {"opinion": "属本单位"}),
    ]  # fmt: skip
    for role, action, body in steps:
        r = command(srv, keys[role], case_id, action, **body)
        assert r.status_code == 200, (action, r.text)
    assert r.json()["case"]["status"] == "handling" and r.json()["case"]["pending_request"] is None
    assert command(srv, keys["dispatcher"], case_id, "approve").json()["error"] == "no_request"


@pytest.mark.parametrize("action", sorted(COMMANDS))
def test_every_command_with_a_wrong_key_and_a_wrong_role(srv: LiveServer, keys: Keys, action: str) -> None:
    case_id = new_case(srv, keys, address="某地")
    r = command(srv, "wrong-key-0123456789", case_id, action)
    assert r.status_code == 401 and r.json()["error"] == "token_unknown"
    # call_center may do none of them (only report), and acts as itself (api:key call_center)
    r = command(srv, keys["call_center"], case_id, action, opinion="x", confirmed=True, passed=True)
    assert r.status_code == 403 and r.json()["error"] == "wrong_role", r.text
    with srv.engine.connect() as c:
        assert c.scalar(select(Case.status).where(Case.id == case_id)) == "reported"


def test_command_refusals_are_named(srv: LiveServer, keys: Keys) -> None:
    case_id = new_case(srv, keys, address="某地")
    acc = keys["acceptor"]
    checks = [
        (command(srv, acc, "NO-SUCH-CASE", "accept"), 404, "no_case"),
        (command(srv, acc, case_id, "teleport"), 404, "malformed"),
        (command(srv, acc, case_id, "file"), 403, "wrong_role"),
        (command(srv, keys["shift_leader"], case_id, "file"), 409, "wrong_status"),
        (command(srv, acc, case_id, "accept", at="yesterday"), 422, "wrong_type"),
        (command(srv, acc, case_id, "accept", actor="someone-else"), 403, "not_allowed"),
        (post(srv, f"/cases/{case_id}/accept", acc, b"{", headers={"Content-Type": "application/json"}), 400,
         "malformed"),
        (command(srv, acc, case_id, "accept", at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()), 422,
         "in_future"),
    ]  # fmt: skip
    for r, status, reason in checks:
        assert (r.status_code, r.json()["error"]) == (status, reason), r.text
    ok = command(srv, acc, case_id, "accept", id="acc-1")
    assert ok.status_code == 200 and ok.json()["accepted"] == ["acc-1"]
    again = command(srv, acc, case_id, "accept", id="acc-1", at=ok.json()["case"]["updated_at"])
    assert again.status_code == 200 and again.json()["duplicates"] == ["acc-1"]
    clash = command(srv, acc, case_id, "accept", id="acc-1", opinion="different")
    assert clash.status_code == 409 and clash.json()["error"] == "idempotency_key_conflict"


def test_case_query(srv: LiveServer, keys: Keys) -> None:
    r = get(srv, "/cases/NOPE", keys["leader"])
    assert r.status_code == 404 and r.json()["error"] == "unknown_case"
    case_id = new_case(srv, keys)
    view = get(srv, f"/cases/{case_id}", keys[f"department:{DEPT}"]).json()
    assert (
        view["id"] == case_id and view["stage_key"] == "reported" and view["events"][0]["action"] == "report"
    )


def test_503_until_the_pipeline_is_attached(city_engine: Engine) -> None:
    app = Flask("api-test")
    ref = register_http_feeds(app, city_engine)
    port = free_port()
    http = make_server("127.0.0.1", port, app, threaded=True)
    t = threading.Thread(target=http.serve_forever, daemon=True)
    t.start()
    try:
        base = f"http://127.0.0.1:{port}"
        r = requests.post(f"{base}{API_PREFIX}/reports", json=report(address="x"), timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "unavailable" and r.headers["Retry-After"]
        r = requests.get(f"{base}/open311/v2/services.json", timeout=10)
        assert r.status_code == 503 and r.json()[0]["code"] == 503
        assert requests.get(f"{base}{API_PREFIX}/openapi.json", timeout=10).status_code == 200
        assert ref() is None
    finally:
        http.shutdown()
        t.join(5)


def test_report_ids_are_unique_per_request(srv: LiveServer, keys: Keys) -> None:
    ids = {new_case(srv, keys, address=f"addr {uuid.uuid4().hex[:4]}") for _ in range(3)}
    assert len(ids) == 3


def test_cases_without_a_point_survive_a_restart(srv: LiveServer, keys: Keys) -> None:
    """The live state rebuilt from the database keeps the address-only and grid-only cases as they are."""
    spot = srv.spot()
    ids = [new_case(srv, keys, address="重启后"), new_case(srv, keys, grid_code=spot.grid)]
    ctx = srv.core.ctx
    at = datetime.now(UTC)
    fresh = MemoryLiveState(
        tz=ctx.calendar.tz, catalogue=ctx.catalogue, areas=supervisor_areas(srv.engine),
        area_of_grid=grid_areas(srv.engine), now=at,
    )  # fmt: skip
    rebuild(srv.engine, fresh, at)
    for case_id in ids:
        running, rebuilt = srv.core.live.open_case(case_id), fresh.open_case(case_id)
        assert running is not None and rebuilt is not None
        assert (rebuilt.grid, rebuilt.street, rebuilt.lon, rebuilt.lat) == (
            running.grid, running.street, None, None
        )  # fmt: skip
    assert fresh.grid_counts()[spot.grid].open == srv.core.live.grid_counts()[spot.grid].open


def test_a_chunked_body_past_the_limit_is_refused_while_it_streams(srv: LiveServer, keys: Keys) -> None:
    """Issue 20 item 2: a chunked body (no Content-Length) was read whole, past the 4 MiB cap, before
    the key was checked: /api/v1 and the Open311 POST now stop reading at the cap and answer 413."""
    from feeds.http import MAX_BODY_BYTES
    from feeds.open311 import OPEN311_PREFIX

    JSON = "application/json"

    def chunks() -> Iterator[bytes]:
        yield b'{"fixes": ["'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):  # just past the cap: the refusal must not need more
            yield b"x" * 65536
        yield b'"]}'

    open311 = f"{srv.url}{OPEN311_PREFIX}/requests.json"
    for target, headers in (
        (url(srv, "/positions"), {"Authorization": f"Bearer {keys['supervisor']}", "Content-Type": JSON}),
        (open311, {"Content-Type": JSON}),
        (open311, {"Content-Type": "application/x-www-form-urlencoded"}),
    ):
        r = requests.post(target, data=chunks(), timeout=60, headers=headers)
        assert r.status_code == 413, (target, headers, r.status_code, r.text[:300])
