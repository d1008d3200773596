"""The desk's 待定位 page and the case page's address, over real HTTP (as tests/test_desk.py does).

Pages and the list's refresh callback are rendered through Dash's own ``/_dash-update-component``;
the buttons are posted to ``/api/v1/commands`` with the body ``assets/gw-desk.js`` builds from them
(``data-gw-action``, ``data-gw-data``, the point box's ``lon``/``lat``): the one command path.
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from dashboard import ids
from domain.catalogue import load_catalogue
from gridwall.runtime import Runtime, Seams, build
from gridwall.settings import Settings
from store.accounts import issue_token, provision_embedded
from store.addresses import import_addresses
from store.db import transaction
from tests.desk_login import add_desk_user, login_http
from tests.live_server import KIOSK_SECRET, QuietHandler, Spot, free_port, provisioned_spots

PASSWORD = "desk-password-0123"
EVENT = next(c for c in load_catalogue("cjt214").classes if c.kind.value == "event" and not c.emergency)


@dataclass
class Desk:
    url: str
    core: Runtime
    spots: list[Spot]
    hotline: str  # an API key of the 12345 hotline


@pytest.fixture(scope="module")
def desk(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    made = provision_embedded(city_engine, kiosk_secret=KIOSK_SECRET)
    add_desk_user(city_engine, "acc-loc", PASSWORD, "acceptor")
    add_desk_user(city_engine, "boss-loc", PASSWORD, "leader")
    seams = Seams(engine=city_engine, patrol_every=timedelta(0), media=False, secret_key="locate-tests")
    core = build(Settings(Path("."), str(city_engine.url), interval=0.2), "embedded", seams).start()
    port = free_port()
    http = make_server("127.0.0.1", port, core.web.server, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    spots = provisioned_spots(city_engine, core.pipeline.index, dict(made.devices))
    with transaction(city_engine) as s:
        hotline = issue_token(s, "api", "locate hotline", role="call_center")[1]
    path = tmp_path_factory.mktemp("gaz") / "desk_addresses.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "lon", "lat"])
        w.writerows(
            [("台基厂头条3号", spots[0].lon, spots[0].lat), ("台基厂头条5号", spots[1].lon, spots[1].lat)]
        )
    assert import_addresses(city_engine, path, core.pipeline.index, crs="wgs84").added == 2
    yield Desk(f"http://127.0.0.1:{port}", core, spots, hotline)
    http.shutdown()
    thread.join(timeout=10)
    core.stop()


def _dash(
    client: requests.Session,
    url: str,
    output: str,
    inputs: list[dict[str, Any]],
    state: list[Any] | None = None,
) -> Any:
    body: dict[str, Any] = {
        "output": output,
        "outputs": {"id": output.split(".")[0], "property": output.split(".")[1]},
        "inputs": inputs,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
        "state": state or [],
    }
    r = client.post(f"{url}/_dash-update-component", json=body, timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r.json()


def _page(client: requests.Session, url: str, path: str) -> Any:
    return _dash(
        client,
        url,
        f"{ids.PAGE}.children",
        [
            {"id": ids.LOCATION, "property": "pathname", "value": path},
            {"id": ids.LOCATION, "property": "search", "value": ""},
        ],
    )


def _components(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        if isinstance(tree.get("props"), dict):
            yield tree
        for v in tree.values():
            yield from _components(v)
    elif isinstance(tree, list):
        for x in tree:
            yield from _components(x)


def _texts(tree: Any) -> str:
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, list):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for k, v in x.items():
                if k in ("children", "props", "response") or isinstance(v, dict | list):
                    walk(v)

    walk(tree)
    return " ".join(out)


def _panel(tree: Any, case_id: str) -> dict[str, Any]:
    return next(c for c in _components(tree) if c["props"].get("data-gw-case") == case_id)


def _report(d: Desk, address: str) -> str:
    r = requests.post(
        f"{d.url}/api/v1/reports",
        headers={"Authorization": f"Bearer {d.hotline}"},
        timeout=30,
        json={"kind": EVENT.kind.value, "class_code": EVENT.code, "address": address},
    )
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["needs_location"]
    return str(case["id"])


def test_the_acceptor_places_a_waiting_case_on_a_candidate_and_it_leaves_the_list(desk: Desk) -> None:
    case_id = _report(desk, "北京市东城区台基厂头条四号")  # 4号 is not in the gazetteer: 3号 and 5号 are near
    acc = login_http(desk.url, "acc-loc", PASSWORD)
    page = _page(acc, desk.url, "/desk/locate")
    menu = _texts([c for c in _components(page) if c["props"].get("id") == ids.DESK_MENU])
    assert "待定位" in menu
    panel = _panel(page, case_id)
    assert "北京市东城区台基厂头条四号" in _texts(panel)
    buttons = [c["props"] for c in _components(panel) if c["props"].get("data-gw-action") == "locate"]
    picks = [b for b in buttons if "data-gw-data" in b]
    assert len(picks) == 2 and len(buttons) == 3  # two candidates and the point box
    assert "台基厂头条3号" in _texts(panel) and "台基厂头条5号" in _texts(panel)
    body = {
        "action": "locate",
        "case_id": case_id,
        "id": picks[0]["data-gw-key"] + "-0",
        **json.loads(picks[0]["data-gw-data"]),
    }  # what gw-desk.js sends
    r = acc.post(f"{desk.url}/api/v1/commands", json=body, timeout=15)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    live = desk.core.live.open_case(case_id)
    assert live is not None and live.grid in (desk.spots[0].grid, desk.spots[1].grid)
    refreshed = _dash(
        acc,
        desk.url,
        f"{ids.LOCATE_BODY}.children",
        [{"id": ids.LOCATE_REFRESH, "property": "data", "value": 1}],
        [{"id": ids.LOCATION, "property": "search", "value": ""}],
    )
    assert not [c for c in _components(refreshed) if c["props"].get("data-gw-case") == case_id]
    case_page = _page(acc, desk.url, f"/case/{case_id}")
    address = _texts([c for c in _components(case_page) if c["props"].get("id") == ids.CASE_ADDRESS])
    assert "北京市东城区台基厂头条四号" in address and "最近门牌 台基厂头条" in address and "(0 m)" in address


def test_a_point_typed_in_places_the_case_and_refusals_are_named(desk: Desk) -> None:
    case_id = _report(desk, "不在门牌库的地址")
    acc = login_http(desk.url, "acc-loc", PASSWORD)
    panel = _panel(_page(acc, desk.url, "/desk/locate"), case_id)
    assert "门牌库中没有相近的地址" in _texts(panel)
    names = {c["props"].get("name") for c in _components(panel)}
    assert {"lon", "lat"} <= names  # the point box
    outside = acc.post(
        f"{desk.url}/api/v1/commands",
        timeout=15,
        json={"action": "locate", "case_id": case_id, "lon": 121.47, "lat": 31.23},
    )
    assert outside.status_code == 422 and outside.json()["error"] == "outside_district"
    spot = desk.spots[2]
    ok = acc.post(
        f"{desk.url}/api/v1/commands",
        timeout=15,
        json={"action": "locate", "case_id": case_id, "lon": spot.lon, "lat": spot.lat},
    )
    assert ok.status_code == 200, ok.text
    assert desk.core.live.open_case(case_id).grid == spot.grid  # type: ignore[union-attr]
    boss = login_http(desk.url, "boss-loc", PASSWORD)
    again = boss.post(
        f"{desk.url}/api/v1/commands",
        timeout=15,
        json={"action": "locate", "case_id": case_id, "lon": spot.lon, "lat": spot.lat},
    )
    assert again.status_code == 403 and again.json()["error"] == "wrong_role"


def test_a_leader_sees_the_list_without_buttons(desk: Desk) -> None:
    case_id = _report(desk, "台基厂头条七号")
    boss = login_http(desk.url, "boss-loc", PASSWORD)
    panel = _panel(_page(boss, desk.url, "/desk/locate"), case_id)
    assert "台基厂头条5号" in _texts(panel)
    assert not [c for c in _components(panel) if "data-gw-action" in c["props"]]
