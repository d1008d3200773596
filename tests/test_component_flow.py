"""Reports that name a 部件 object (issue 18), end to end on SQLite and PostgreSQL through real HTTP: the
object is checked in the intake (unknown_component, component_class_mismatch), the case keeps it, the
dispatcher's default department is the object's handling unit (养护 first), not the class's default,
and ``GET /api/v1/components/nearest`` picks it.

The inventory is GENERATED here (tests/component_inventory.py): objects of common classes placed
along the real Dongcheng roads of ``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02),
with owners from the department list; no public inventory is at hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from feeds.api import API_PREFIX
from store.accounts import issue_token
from store.components import import_components
from store.db import transaction
from store.models import Case, ComponentHistory
from tests.component_inventory import ROADS, Generated, generate
from tests.conftest import SHARED, require
from tests.live_server import LiveServer, start_live_server

CATALOGUE = load_catalogue("cjt214")
ROLES = ("call_center", "acceptor", "shift_leader", "dispatcher", "leader", "supervisor", "admin")
SEWER = "0102"  # 污水井盖: the class's default department is 12 (排水集团)


@dataclass(frozen=True)
class World:
    srv: LiveServer
    keys: dict[str, str]
    inv: Generated


@pytest.fixture(scope="module")
def world(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not (SHARED / ROADS).exists():
        require("../shared/data/roads/dongcheng_roads_gcj02.geojson (the Dongcheng roads)")
    srv = start_live_server(city_engine, interval=0.2)
    index = srv.core.pipeline.index
    inv = generate(
        SHARED, 400, seed=7, inside=lambda x, y: np.asarray([g is not None for g in index.lookup(x, y)])
    )
    path = inv.write_csv(tmp_path_factory.mktemp("components") / "inventory_gcj02.csv")
    summary = import_components(srv.engine, path, index, CATALOGUE, "110101")
    assert summary.rejected_count == 0
    with transaction(srv.engine) as s:
        keys = {r: issue_token(s, "api", f"component key {r}", role=r)[1] for r in ROLES}
    yield World(srv, keys, inv)
    srv.stop()


def _post(w: World, path: str, role: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{w.srv.url}{API_PREFIX}{path}", json=body,
                         headers={"Authorization": f"Bearer {w.keys[role]}"}, timeout=30)  # fmt: skip


def _get(w: World, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{w.srv.url}{API_PREFIX}{path}", params=params,
                        headers={"Authorization": f"Bearer {w.keys['leader']}"}, timeout=30)  # fmt: skip


def _cover(w: World, care: str) -> int:
    """A sewer cover whose 养护 unit is ``care``."""
    return next(i for i, c in enumerate(w.inv.classes) if c == SEWER and w.inv.units[i][2] == care)


def test_a_broken_cover_named_by_a_report_goes_to_its_own_unit(world: World) -> None:
    w = world
    i = _cover(w, "0102")  # 主管 01, 权属 12, 养护 0102 (区市政设施管理中心)
    code = w.inv.ids[i]
    assert CATALOGUE.minor("component", SEWER).department == "12"
    r = _post(w, "/reports", "call_center", {"kind": "component", "class_code": SEWER, "component_id": code,
                                             "description": "井盖破损"})  # fmt: skip
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["component"] == code
    # reported by the object alone: the case is at the object's point, in its grid
    assert abs(case["lon"] - w.inv.lon[i]) < 1e-6 and abs(case["lat"] - w.inv.lat[i]) < 1e-6
    steps = [("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}),
             ("shift_leader", "file", {}), ("dispatcher", "dispatch", {})]  # fmt: skip
    for role, action, body in steps:
        r = _post(w, f"/cases/{case['id']}/{action}", role, body)
        assert r.status_code == 200, (action, r.text)
    assert r.json()["case"]["department"] == "0102"  # the cover's 养护 unit, not the class's 12
    with w.srv.engine.connect() as conn:
        row = conn.execute(select(Case.component_id, Case.department_code).where(Case.id == case["id"])).one()
    assert tuple(row) == (code, "0102")


def test_the_dispatcher_may_still_name_another_department(world: World) -> None:
    w = world
    code = w.inv.ids[_cover(w, "12")]
    at = {"lon": float(w.inv.lon[0]), "lat": float(w.inv.lat[0])}  # a point given: the report's own
    r = _post(
        w, "/reports", "call_center", {"kind": "component", "class_code": SEWER, "component_id": code, **at}
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["case"]["id"]
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}),
        ("shift_leader", "file", {}), ("dispatcher", "dispatch", {"department": "0102"}),
    ]  # fmt: skip
    for role, action, body in steps:
        r = _post(w, f"/cases/{case_id}/{action}", role, body)
        assert r.status_code == 200, (action, r.text)
    assert r.json()["case"]["department"] == "0102"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "component", "class_code": SEWER, "component_id": "1101010102999999"}, "unknown_component"),
        ({"kind": "component", "class_code": SEWER, "component_id": "not-a-code"}, "unknown_component"),
        ({"kind": "component", "class_code": "0101"}, "component_class_mismatch"),  # id of a sewer cover
        ({"kind": "event", "class_code": "0101"}, "component_class_mismatch"),
    ],
)
def test_a_report_naming_a_wrong_object_is_refused_by_name(
    world: World, body: dict[str, Any], reason: str
) -> None:
    w = world
    body = {"component_id": w.inv.ids[_cover(w, "12")], **body, "description": "x"}
    r = _post(w, "/reports", "call_center", body)
    assert r.status_code == 422 and r.json()["error"] == reason, r.text


def test_the_nearest_objects_of_a_class_are_picked(world: World) -> None:
    w = world
    i = _cover(w, "0102")
    gx, gy = w.inv.gcj02()
    r = _get(w, "/components/nearest", **{"class": SEWER, "lon": gx[i], "lat": gy[i], "crs": "gcj02", "k": 3})
    assert r.status_code == 200, r.text
    found = r.json()["components"]
    assert found[0]["id"] == w.inv.ids[i] and found[0]["distance_m"] < 1.0
    assert found[0]["handler"] == "0102" and found[0]["units"] == {"主管": "01", "权属": "12", "养护": "0102"}
    assert all(f["class_code"] == SEWER for f in found)
    assert _get(w, "/components/nearest", **{"class": SEWER}).json()["error"] == "missing_field"
    assert _get(w, "/components/nearest", **{"class": "x", "lon": 1, "lat": 1}).status_code == 400
    one = _get(w, f"/components/{w.inv.ids[i]}")
    assert one.status_code == 200 and one.json()["handler"] == "0102"
    assert _get(w, "/components/1101010102999999").json()["error"] == "unknown_component"


def _dispatched_to(w: World, code: str) -> str:
    r = _post(
        w, "/reports", "call_center", {"kind": "component", "class_code": code[6:10], "component_id": code}
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["case"]["id"]
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}),
        ("shift_leader", "file", {}), ("dispatcher", "dispatch", {}),
    ]  # fmt: skip
    for role, action, body in steps:
        r = _post(w, f"/cases/{case_id}/{action}", role, body)
        assert r.status_code == 200, (action, r.text)
    return str(r.json()["case"]["department"])


def test_online_updates_go_through_the_pipeline_with_history(world: World) -> None:
    """Add, move, change state and owners, retire — each by an admin's key, each kept in the history;
    a report naming the object follows its owners at once, and a retired object cannot be named."""
    w = world
    code = "1101010102900001"  # a new sewer cover
    x, y = float(w.inv.lon[3]), float(w.inv.lat[3])
    add = {"component_id": code, "name": "污水井盖", "lon": x, "lat": y, "state": "完好",
           "unit_main": "01", "unit_owner": "12", "unit_care": "12", "reason": "新建小区接入"}  # fmt: skip
    assert _post(w, "/components", "leader", add).json()["error"] == "not_allowed"
    r = _post(w, "/components", "admin", add)
    assert r.status_code == 201, r.text
    assert r.json()["component"]["grid"] and r.json()["component"]["handler"] == "12"
    assert _post(w, "/components", "admin", add).json()["error"] == "component_exists"
    near = _get(w, "/components/nearest", **{"class": SEWER, "lon": x, "lat": y, "k": 1}).json()["components"]
    assert near[0]["id"] == code  # the nearest-objects index was reloaded at once
    assert _dispatched_to(w, code) == "12"
    owners = {"unit_main": "01", "unit_owner": "12", "unit_care": "0102", "reason": "移交养护"}
    r = _post(w, f"/components/{code}/owners", "admin", owners)
    assert r.status_code == 200 and r.json()["component"]["handler"] == "0102", r.text
    assert _dispatched_to(w, code) == "0102"  # the next report goes to the new 养护 unit
    x2, y2 = float(w.inv.lon[4]), float(w.inv.lat[4])
    r = _post(w, f"/components/{code}/move", "admin", {"lon": x2, "lat": y2, "reason": "复测"})
    assert r.status_code == 200 and abs(r.json()["component"]["lon"] - x2) < 1e-6, r.text
    r = _post(w, f"/components/{code}/state", "admin", {"state": "破损", "reason": "巡查发现"})
    assert r.status_code == 200 and r.json()["component"]["state"] == "破损", r.text
    again = _post(w, f"/components/{code}/state", "admin", {"state": "破损", "id": "same-state"})
    assert again.status_code == 200 and again.json()["duplicates"], again.text  # nothing to change
    refusals: list[tuple[str, dict[str, Any], str]] = [
        (f"/components/{code}/owners", {"unit_care": "99"}, "wrong_type"),
        (f"/components/{code}/move", {"lon": 121.47, "lat": 31.23}, "outside_district"),
        (f"/components/{code}/state", {"state": "坏了"}, "wrong_type"),
        ("/components/1101010102999999/move", {"lon": x, "lat": y}, "unknown_component"),
        ("/components", {**add, "component_id": "3205080102000001"}, "wrong_type"),  # another county
    ]
    for path, body, reason in refusals:
        r = _post(w, path, "admin", body)
        assert r.json()["error"] == reason, (path, r.text)
    r = _post(w, f"/components/{code}/retire", "admin", {"reason": "道路改造拆除"})
    assert r.status_code == 200 and r.json()["component"] is None, r.text
    assert _get(w, f"/components/{code}").json()["error"] == "unknown_component"
    gone = _post(
        w, "/reports", "call_center", {"kind": "component", "class_code": SEWER, "component_id": code}
    )
    assert gone.json()["error"] == "unknown_component"
    with w.srv.engine.connect() as conn:
        hist = conn.execute(select(ComponentHistory.action, ComponentHistory.changes, ComponentHistory.reason,
                                   ComponentHistory.actor).where(ComponentHistory.component_id == code)
                            .order_by(ComponentHistory.id)).all()  # fmt: skip
    assert [h.action for h in hist] == ["add", "change", "change", "change", "retire"]
    assert hist[1].changes == {"unit_care": ["12", "0102"]} and hist[1].reason == "移交养护"
    assert {"geometry", "lon", "lat"} <= set(hist[2].changes) and hist[2].reason == "复测"
    assert hist[3].changes == {"state": ["完好", "破损"]} and hist[4].changes == {"state": ["破损", "废弃"]}
    assert all(h.actor.startswith("api:") for h in hist)
