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
from store.models import Case
from tests.component_inventory import ROADS, Generated, generate
from tests.conftest import SHARED, require
from tests.live_server import LiveServer, start_live_server

CATALOGUE = load_catalogue("cjt214")
ROLES = ("call_center", "acceptor", "shift_leader", "dispatcher", "leader", "supervisor")
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
