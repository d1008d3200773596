"""The desk and a 部件 (issue 18), over real HTTP on SQLite and PostgreSQL: a report of a broken sewer
cover that names the cover; the dispatcher's case page offers the cover's own unit first; once
dispatched, the case page (its 部件 line and department) and the component page (its handler, its
cases, its history) agree.

The inventory is GENERATED here (tests/component_inventory.py): objects of common classes placed
along the real Dongcheng roads of ``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02),
with owners from the department list; no public inventory is at hand.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from dashboard import ids
from domain.catalogue import load_catalogue
from gridwall.runtime import Runtime, Seams, build
from gridwall.settings import Settings
from store.accounts import issue_token, provision_embedded
from store.components import import_components
from store.db import transaction
from tests.component_inventory import ROADS, Generated, generate
from tests.conftest import SHARED, require
from tests.desk_login import add_desk_user, login_http
from tests.live_server import KIOSK_SECRET, QuietHandler, free_port
from tests.test_address_desk import _components, _page, _texts

PASSWORD = "desk-password-0123"
ROLES = ("call_center", "acceptor", "shift_leader", "dispatcher", "supervisor")
SEWER = "0102"


@dataclass
class Desk:
    url: str
    core: Runtime
    keys: dict[str, str]
    inv: Generated


@pytest.fixture(scope="module")
def desk(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    if not (SHARED / ROADS).exists():
        require("../shared/data/roads/dongcheng_roads_gcj02.geojson (the Dongcheng roads)")
    provision_embedded(city_engine, kiosk_secret=KIOSK_SECRET)
    add_desk_user(city_engine, "disp-cmp", PASSWORD, "dispatcher")
    add_desk_user(city_engine, "boss-cmp", PASSWORD, "leader")
    add_desk_user(city_engine, "adm-cmp", PASSWORD, "admin")
    seams = Seams(engine=city_engine, patrol_every=timedelta(0), media=False, secret_key="component-tests")
    core = build(Settings(Path("."), str(city_engine.url), interval=0.2), "embedded", seams).start()
    port = free_port()
    http = make_server("127.0.0.1", port, core.web.server, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    index = core.pipeline.index
    inv = generate(
        SHARED, 300, seed=11, inside=lambda x, y: np.asarray([g is not None for g in index.lookup(x, y)])
    )
    path = inv.write_csv(tmp_path_factory.mktemp("desk_components") / "inventory_gcj02.csv")
    assert import_components(city_engine, path, index, load_catalogue("cjt214"), "110101").rejected_count == 0
    with transaction(city_engine) as s:
        keys = {r: issue_token(s, "api", f"desk component {r}", role=r)[1] for r in ROLES}
    yield Desk(f"http://127.0.0.1:{port}", core, keys, inv)
    http.shutdown()
    thread.join(timeout=10)
    core.stop()


def _command(d: Desk, role: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{d.url}/api/v1{path}", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {d.keys[role]}"})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def _by_id(tree: Any, key: str) -> str:
    return _texts([c for c in _components(tree) if c["props"].get("id") == key])


def test_case_page_and_component_page_agree_on_the_cover_and_its_owner(desk: Desk) -> None:
    d = desk
    i = next(i for i, c in enumerate(d.inv.classes) if c == SEWER and d.inv.units[i][2] == "0102")
    code = d.inv.ids[i]
    body = {"kind": "component", "class_code": SEWER, "component_id": code, "description": "井盖破损"}
    case = _command(d, "call_center", "/reports", body)["case"]
    for role, action, step in [("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}),
                               ("shift_leader", "file", {})]:  # fmt: skip
        _command(d, role, f"/cases/{case['id']}/{action}", step)
    disp = login_http(d.url, "disp-cmp", PASSWORD)
    before = _page(disp, d.url, f"/case/{case['id']}")
    select = next(c for c in _components(before) if c["props"].get("name") == "department")
    first = next(c for c in _components(select) if c["props"].get("value"))
    assert first["props"]["value"] == "0102"  # the cover's 养护 unit offered first, not the class's 12
    assert code in _by_id(before, ids.CASE_COMPONENT) and "破损" not in _by_id(before, ids.CASE_COMPONENT)
    out = _command(d, "dispatcher", f"/cases/{case['id']}/dispatch", {})
    assert out["case"]["department"] == "0102"
    boss = login_http(d.url, "boss-cmp", PASSWORD)
    case_page = _page(boss, d.url, f"/case/{case['id']}")
    assert code in _by_id(case_page, ids.CASE_COMPONENT) and "污水井盖" in _by_id(
        case_page, ids.CASE_COMPONENT
    )
    assert "区市政设施管理中心 (0102)" in _texts(case_page)
    comp_page = _page(boss, d.url, f"/component/{code}")
    assert _by_id(comp_page, ids.COMPONENT_ID) == code
    assert "区市政设施管理中心 (0102)" in _by_id(comp_page, ids.COMPONENT_HANDLER)
    cases = _by_id(comp_page, ids.COMPONENT_CASES)
    assert case["id"] in cases and "区市政设施管理中心 (0102)" in cases
    assert "新增" in _by_id(comp_page, ids.COMPONENT_HISTORY)
    assert "排水集团 (12)" in _texts(comp_page)  # its 权属 unit is shown too
    drawn = next(c for c in _components(comp_page) if c["props"].get("id") == ids.COMPONENT_MAP)
    xs = [x for tr in drawn["props"]["figure"]["data"] for x in (tr.get("lon") or tr.get("x") or [])]
    assert any(x is not None and abs(x - d.inv.lon[i]) < 1e-6 for x in xs)  # its point on the map
    grid = out["case"]["grid"]
    grid_page = _page(boss, d.url, f"/grid/{grid}")
    listed = _by_id(grid_page, ids.GRID_COMPONENTS)
    assert code in listed and "污水井盖" in listed  # the grid page lists its objects by class
    missing = _page(boss, d.url, "/component/1101010102999999")
    assert not [c for c in _components(missing) if c["props"].get("id") == ids.COMPONENT_ID]  # not found


def _button(tree: Any, action: str, **data: str) -> dict[str, Any]:
    for c in _components(tree):
        p = c["props"]
        if p.get("data-gw-action") == action and all(
            json.loads(p.get("data-gw-data") or "{}").get(k) == v for k, v in data.items()
        ):
            return dict(p)
    raise AssertionError(f"no {action} button with {data}")


def test_an_admin_updates_a_component_from_its_page(desk: Desk) -> None:
    """What gw-desk.js posts for the component page's buttons goes through the one pipeline: the state
    and the 养护 unit change, the page shows them and their history; a leader sees no buttons."""
    d = desk
    i = next(i for i, c in enumerate(d.inv.classes) if c == "0118")  # a street light
    code = d.inv.ids[i]
    boss = login_http(d.url, "boss-cmp", PASSWORD)
    assert not [c for c in _components(_page(boss, d.url, f"/component/{code}"))
                if c["props"].get("id") == ids.COMPONENT_UPDATE]  # fmt: skip
    adm = login_http(d.url, "adm-cmp", PASSWORD)
    page = _page(adm, d.url, f"/component/{code}")
    panel = next(c for c in _components(page) if c["props"].get("data-gw-case") == code)
    broken = _button(panel, "component_state", state="破损")
    body = {"action": "component_state", "case_id": code, "id": broken["data-gw-key"] + "-0",
            "opinion": "灯杆撞弯", **json.loads(broken["data-gw-data"])}  # fmt: skip
    r = adm.post(f"{d.url}/api/v1/commands", json=body, timeout=15)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    care = _button(panel, "component_owners", role="unit_care")
    body = {"action": "component_owners", "case_id": code, "id": care["data-gw-key"] + "-0",
            "department": "0102", **json.loads(care["data-gw-data"])}  # fmt: skip
    r = adm.post(f"{d.url}/api/v1/commands", json=body, timeout=15)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    boss_page = _page(boss, d.url, f"/component/{code}")
    assert _by_id(boss_page, ids.COMPONENT_STATE) == "破损"
    assert "区市政设施管理中心 (0102)" in _by_id(boss_page, ids.COMPONENT_HANDLER)
    history = _by_id(boss_page, ids.COMPONENT_HISTORY)
    assert "灯杆撞弯" in history and "adm-cmp" in history and '"0103" → "0102"' in history
    again = adm.post(f"{d.url}/api/v1/commands", json=body, timeout=15)
    assert again.status_code == 200 and (again.json()["duplicates"] or again.json()["accepted"]), again.text
    r = boss.post(f"{d.url}/api/v1/commands", timeout=15,
                  json={"action": "component_retire", "case_id": code, "id": "boss-retire"})  # fmt: skip
    assert r.status_code == 403 and r.json()["error"] == "not_allowed", r.text
