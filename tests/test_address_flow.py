"""Addresses end to end, on SQLite and PostgreSQL: ``import addresses`` (bad rows named, re-import
updates and reaches the running geocoder), address-only reports placed by the real pipeline over
HTTP (or left waiting with candidates), the LOCATE command (allowed and refused by name, the store,
the live state and the case view pick up the point), and ``GET /api/v1/geocode`` / ``/reverse``.

One server per backend (tests/live_server.py, as ``app.py run`` composes it); the gazetteer is a
small file written here at points inside the provisioned supervisors' grids.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from domain.catalogue import load_catalogue
from domain.crs import wgs84_to_gcj02
from feeds.api import API_PREFIX
from store.accounts import issue_token
from store.addresses import AddressBook, import_addresses
from store.db import transaction
from store.models import Address, Case, CaseEventRow
from tests.live_server import LiveServer, Spot, start_live_server

CATALOGUE = load_catalogue("cjt214")
EVENT = next(c for c in CATALOGUE.classes if c.kind.value == "event" and not c.emergency)


@dataclass(frozen=True)
class World:
    """The server, its API keys by role, and the spots the gazetteer's addresses lie at."""

    srv: LiveServer
    keys: dict[str, str]
    a: Spot  # 测试东街1号
    b: Spot  # 测试东街2号
    c: Spot  # 测试西街1号
    folder: Path


def _write_csv(path: Path, rows: list[tuple[str, Any, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "lon", "lat"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def world(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    srv = start_live_server(city_engine, interval=0.2)
    with transaction(srv.engine) as s:
        keys = {r: issue_token(s, "api", f"addr key {r}", role=r)[1]
                for r in ("call_center", "acceptor", "leader")}  # fmt: skip
    a, b, c = srv.spot(), srv.spot(), srv.spot()
    yield World(srv, keys, a, b, c, tmp_path_factory.mktemp("addresses"))
    srv.stop()


def _get(w: World, path: str, key: str | None = "leader", **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {w.keys[key]}"} if key else {}
    return requests.get(f"{w.srv.url}{API_PREFIX}{path}", params=params, headers=headers, timeout=30)


def _post(w: World, path: str, key: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{w.srv.url}{API_PREFIX}{path}", json=body, headers={"Authorization": f"Bearer {w.keys[key]}"},
        timeout=30,
    )  # fmt: skip


def _report(w: World, address: str) -> dict[str, Any]:
    r = _post(w, "/reports", "call_center", {"kind": EVENT.kind.value, "class_code": EVENT.code,
                                             "address": address, "description": "address test"})  # fmt: skip
    assert r.status_code == 201, r.text
    return dict(r.json()["case"])


def _import(w: World, rows: list[tuple[str, Any, Any]], name: str = "addresses.csv") -> Any:
    path = _write_csv(w.folder / name, rows)
    return import_addresses(w.srv.engine, path, w.srv.core.pipeline.index, crs="wgs84")


def test_import_names_bad_rows_and_keeps_the_good_ones(world: World) -> None:
    w = world
    rows = [
        ("测试东街1号", w.a.lon, w.a.lat),
        ("测试东街2号", w.b.lon, w.b.lat),
        ("测试西街1号", w.c.lon, w.c.lat),
        ("", w.a.lon, w.a.lat),  # line 5: missing_address
        ("测试东街3号", "east", w.a.lat),  # 6: bad_point
        ("测试东街4号", 0, 0),  # 7: bad_point
        ("测试东街5号", 121.47, 31.23),  # 8: outside_district (Shanghai)
        ("测试东街 一 号", w.a.lon, w.a.lat),  # 9: duplicate_address of line 2 once normalised
        ("测" * 201, w.a.lon, w.a.lat),  # 10: too_long
    ]
    summary = _import(w, rows)
    assert (summary.added, summary.updated) == (3, 0)
    assert summary.rejected == {
        "missing_address": [5], "bad_point": [6, 7], "outside_district": [8], "duplicate_address": [9],
        "too_long": [10],
    }  # fmt: skip
    text = "\n".join(summary.lines())
    assert "3 added, 0 updated, 6 rejected" in text and "bad_point: 2 (lines 6, 7)" in text
    with w.srv.engine.connect() as conn:
        stored = {r.normalised: r for r in conn.execute(select(Address))}
    assert set(stored) == {"测试东街1号", "测试东街2号", "测试西街1号"}
    assert stored["测试东街1号"].grid_code == w.a.grid and stored["测试东街1号"].number == "1"


def test_a_csv_must_name_its_crs_and_geojson_points_in_gcj02_are_converted(world: World) -> None:
    w = world
    from domain.errors import GeoInputError

    path = _write_csv(w.folder / "nocrs.csv", [("测试东街1号", w.a.lon, w.a.lat)])
    with pytest.raises(GeoInputError, match="--crs"):
        import_addresses(w.srv.engine, path, w.srv.core.pipeline.index)
    gx, gy = wgs84_to_gcj02(np.array([w.c.lon]), np.array([w.c.lat]))
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"地址": "测试南街8号", "社区": "测试社区"},
         "geometry": {"type": "Point", "coordinates": [float(gx[0]), float(gy[0])]}},
        {"type": "Feature", "properties": {"地址": "测试南街9号"}, "geometry": {"type": "LineString",
         "coordinates": [[0, 0], [1, 1]]}},
    ]}  # fmt: skip
    gj = w.folder / "points_gcj02.geojson"
    gj.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    summary = import_addresses(w.srv.engine, gj, w.srv.core.pipeline.index)
    assert summary.crs.value == "gcj02" and summary.added == 1 and summary.rejected == {"bad_point": [2]}
    with Session(w.srv.engine) as s:
        row = s.execute(select(Address).where(Address.normalised == "测试南街8号")).scalar_one()
    assert abs(row.lon - w.c.lon) < 1e-6 and abs(row.lat - w.c.lat) < 1e-6  # back to WGS-84
    assert row.community == "测试社区" and row.grid_code == w.c.grid


def test_a_report_with_a_known_address_is_placed_by_the_geocoder(world: World) -> None:
    w = world
    case = _report(w, "北京市东城区 测试东街 一号")
    assert not case["needs_location"]
    assert case["grid"] == w.a.grid
    assert abs(case["lon"] - w.a.lon) < 1e-6 and abs(case["lat"] - w.a.lat) < 1e-6
    with w.srv.engine.connect() as conn:
        data = conn.scalar(select(CaseEventRow.data).where(CaseEventRow.case_id == case["id"]))
    assert data is not None and data["located_by"] == "geocoder" and data["geocode_score"] >= 0.85
    live = w.srv.core.live.open_case(case["id"])
    assert live is not None and live.grid == w.a.grid and live.lon is not None


def test_an_open311_request_with_only_an_address_string_is_placed_too(world: World) -> None:
    w = world
    form = {"api_key": w.keys["call_center"], "service_code": f"E{EVENT.code}",
            "address_string": "测试东街一号", "description": "open311"}  # fmt: skip
    r = requests.post(f"{w.srv.url}/open311/v2/requests.json", data=form, timeout=30)
    assert r.status_code == 201, r.text
    case_id = r.json()[0]["service_request_id"]
    case = _get(w, f"/cases/{case_id}").json()
    assert not case["needs_location"] and case["grid"] == w.a.grid


@pytest.mark.parametrize("address", ["测试东街99号", "测试北街1号", "测试东街"])
def test_a_report_with_an_unknown_address_waits_for_a_person(world: World, address: str) -> None:
    case = _report(world, address)
    assert case["needs_location"] and case["grid"] is None and case["lon"] is None
    assert case["address"] == address


def test_reimport_updates_the_point_and_the_running_geocoder_sees_it(world: World) -> None:
    w = world
    moved = [("测试东街2号", w.c.lon, w.c.lat)]
    summary = _import(w, moved, "moved.csv")
    assert (summary.added, summary.updated) == (0, 1)
    case = _report(w, "测试东街2号")
    assert case["grid"] == w.c.grid  # the new point, no restart
    back = _import(w, [("测试东街2号", w.b.lon, w.b.lat)], "back.csv")
    assert back.updated == 1
    assert _report(w, "测试东街2号")["grid"] == w.b.grid


def test_another_process_sees_an_import_within_its_check_interval(world: World) -> None:
    now = [0.0]
    book = AddressBook(world.srv.engine, check_every_s=5.0, clock=lambda: now[0])
    before = len(book.gazetteer())
    with world.srv.engine.begin() as conn:  # what an import in another process does, seen from here
        from store.models import AddressImport

        conn.execute(insert(AddressImport).values(at=_now(), source="x", added=0, updated=0, rejected=0))
        conn.execute(insert(Address).values(
            address="测试中街7号", normalised="测试中街7号", lon=world.a.lon, lat=world.a.lat,
            grid_code=world.a.grid, source="x", imported_at=_now()))  # fmt: skip
    assert len(book.gazetteer()) == before  # looked at less than 5 s ago
    now[0] += 5.1
    assert len(book.gazetteer()) == before + 1


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- the LOCATE command -----------------------------------------------------------------------------------


def _locate(w: World, case_id: str, key: str = "acceptor", **body: Any) -> requests.Response:
    return _post(w, f"/cases/{case_id}/locate", key, body)


def test_locate_a_case_by_a_candidate(world: World) -> None:
    w = world
    case = _report(w, "测试西街一百号")
    g = _get(w, "/geocode", q="测试西街一百号").json()
    assert g["placed"] is None and g["candidates"][0]["address"] == "测试西街1号"
    pick = g["candidates"][0]
    r = _locate(w, case["id"], address_id=pick["address_id"])
    assert r.status_code == 200, r.text
    after = r.json()["case"]
    assert not after["needs_location"] and after["grid"] == w.c.grid
    assert (after["lon"], after["lat"]) == (pick["lon"], pick["lat"])
    assert after["stage"] == "待受理"  # the stage and its clock stay
    with Session(w.srv.engine) as conn:
        row = conn.execute(select(Case).where(Case.id == case["id"])).scalar_one()
        ev = conn.execute(
            select(CaseEventRow).where(CaseEventRow.case_id == case["id"], CaseEventRow.action == "locate")
        ).scalar_one()
    assert (row.grid_code, row.street_code, row.community_code) == (w.c.grid, w.c.grid[:9], w.c.grid[:12])
    assert ev.data["located_by"] == "candidate" and ev.data["address_id"] == pick["address_id"]
    assert row.state["needs_location"] is False
    live = w.srv.core.live.open_case(case["id"])
    assert live is not None and live.grid == w.c.grid and live.lon == pick["lon"]
    count = w.srv.core.live.grid_count(w.c.grid)
    assert count is not None and count.open >= 1


def test_locate_a_case_by_a_point(world: World) -> None:
    w = world
    case = _report(w, "不知道在哪")
    r = _locate(w, case["id"], lon=w.b.lon, lat=w.b.lat)
    assert r.status_code == 200, r.text
    assert r.json()["case"]["grid"] == w.b.grid
    gx, gy = wgs84_to_gcj02(np.array([w.a.lon]), np.array([w.a.lat]))
    other = _report(w, "也不知道")
    r = _locate(w, other["id"], lon=float(gx[0]), lat=float(gy[0]), crs="gcj02")
    assert r.status_code == 200 and r.json()["case"]["grid"] == w.a.grid


def test_locate_refusals_are_named(world: World) -> None:
    w = world
    waiting = _report(w, "测试东街77号")
    placed = _report(w, "测试东街1号")
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        (waiting["id"], "call_center", {"lon": w.a.lon, "lat": w.a.lat}, 403, "wrong_role"),
        (waiting["id"], "acceptor", {}, 422, "missing_location"),
        (waiting["id"], "acceptor", {"grid": w.a.grid}, 422, "missing_location"),  # a grid is not a point
        (waiting["id"], "acceptor", {"address_id": 10**9}, 422, "unknown_address"),
        (waiting["id"], "acceptor", {"lon": 121.47, "lat": 31.23}, 422, "outside_district"),
        (waiting["id"], "acceptor", {"lon": "x", "lat": 1}, 422, "bad_coordinates"),
        (placed["id"], "acceptor", {"lon": w.a.lon, "lat": w.a.lat}, 422, "location_known"),
    ]
    for case_id, key, body, status, reason in cases:
        r = _locate(w, case_id, key, **body)
        assert (r.status_code, r.json().get("error")) == (status, reason), (body, r.text)
    accepted = _post(w, f"/cases/{waiting['id']}/accept", "acceptor", {})
    assert accepted.status_code == 200, accepted.text  # 核实 goes out: the case leaves 待受理
    r = _locate(w, waiting["id"], lon=w.a.lon, lat=w.a.lat)
    assert (r.status_code, r.json()["error"]) == (409, "wrong_status")


# -- HTTP ---------------------------------------------------------------------------------------------------


def test_geocode_and_reverse_routes(world: World) -> None:
    w = world
    assert _get(w, "/geocode", None, q="测试东街1号").status_code == 401
    assert _get(w, "/reverse", None, lon=w.a.lon, lat=w.a.lat).status_code == 401
    g = _get(w, "/geocode", q="东城区测试东街1号", limit=3)
    assert g.status_code == 200, g.text
    body = g.json()
    assert body["placed"]["address"] == "测试东街1号" and body["placed"]["grid"] == w.a.grid
    assert body["parsed"] == {"name": "测试东街", "number": 1, "qualifier": None, "suffix": ""}
    assert len(body["candidates"]) <= 3 and body["threshold"] == 0.85
    refusals: list[tuple[dict[str, Any], int, str]] = [
        ({}, 400, "missing_field"),
        ({"q": "测" * 201}, 413, "too_large"),
        ({"q": "x", "limit": "many"}, 400, "wrong_type"),
        ({"q": "x", "limit": 0}, 400, "wrong_type"),
    ]
    for params, status, reason in refusals:
        r = _get(w, "/geocode", **params)
        assert (r.status_code, r.json()["error"]) == (status, reason), params
    rv = _get(w, "/reverse", lon=w.a.lon + 0.0001, lat=w.a.lat)
    assert rv.status_code == 200, rv.text
    near = rv.json()
    assert near["address"]["address"] in ("测试东街1号", "测试中街7号") and 5 < near["distance_m"] < 12
    far = _get(w, "/reverse", lon=w.a.lon + 0.02, lat=w.a.lat, max_m=50).json()
    assert far["address"] is None and far["distance_m"] is None
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"lon": "x", "lat": 1}, 400, "wrong_type"),
        ({"lon": 1}, 400, "missing_field"),
        ({"lon": 200, "lat": 1}, 422, "bad_coordinates"),
        ({"lon": 1, "lat": 1, "max_m": 10**6}, 400, "wrong_type"),
    ]
    for params, status, reason in bad:
        r = _get(w, "/reverse", **params)
        assert (r.status_code, r.json()["error"]) == (status, reason), params
