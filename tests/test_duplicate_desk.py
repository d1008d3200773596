"""The desk and duplicate problems (issue 21), over real HTTP on SQLite and PostgreSQL: the acceptor's
case page of a repeat names its candidate (疑似重复, how far, when) and offers 合并 and 不合并; the 合并
button's body, posted to ``/api/v1/commands`` as ``assets/gw-desk.js`` does, merges it (已合并到 on
the page, the live state drops it); a leader sees the line without the buttons."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from dashboard import ids
from gridwall.runtime import Runtime, Seams, build
from gridwall.settings import Settings
from store.accounts import issue_token, provision_embedded
from store.db import transaction
from tests.desk_login import add_desk_user, login_http
from tests.live_server import KIOSK_SECRET, QuietHandler, Spot, free_port, provisioned_spots
from tests.test_address_desk import EVENT, _components, _page, _texts

PASSWORD = "desk-password-0123"
M_LAT = 1 / 111_195.0


@dataclass
class Desk:
    url: str
    core: Runtime
    spots: list[Spot]
    hotline: str


@pytest.fixture(scope="module")
def desk(city_engine: Engine) -> Iterator[Desk]:
    made = provision_embedded(city_engine, kiosk_secret=KIOSK_SECRET)
    add_desk_user(city_engine, "acc-dup", PASSWORD, "acceptor")
    add_desk_user(city_engine, "boss-dup", PASSWORD, "leader")
    seams = Seams(engine=city_engine, patrol_every=timedelta(0), media=False, secret_key="dup-tests")
    core = build(Settings(Path("."), str(city_engine.url), interval=0.2), "embedded", seams).start()
    port = free_port()
    http = make_server("127.0.0.1", port, core.web.server, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    spots = provisioned_spots(city_engine, core.pipeline.index, dict(made.devices))
    with transaction(city_engine) as s:
        hotline = issue_token(s, "api", "dup hotline", role="call_center")[1]
    yield Desk(f"http://127.0.0.1:{port}", core, spots, hotline)
    http.shutdown()
    thread.join(timeout=10)
    core.stop()


def _report(desk: Desk, lon: float, lat: float) -> dict[str, object]:
    body = {
        "kind": EVENT.kind.value,
        "class_code": EVENT.code,
        "description": "井盖? 路上有坑",
        "lon": lon,
        "lat": lat,
    }
    r = requests.post(
        f"{desk.url}/api/v1/reports", json=body, headers={"X-API-Key": desk.hotline}, timeout=15
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["case"])


def _line(page: object) -> str:
    return _texts([c for c in _components(page) if c["props"].get("id") == ids.CASE_DUPLICATE])


def test_the_acceptor_merges_a_repeat_from_its_case_page(desk: Desk) -> None:
    spot = desk.spots[0]
    first = _report(desk, spot.lon, spot.lat)
    again = _report(desk, spot.lon, spot.lat + 9 * M_LAT)
    assert again["duplicate_of"] == first["id"]
    boss = login_http(desk.url, "boss-dup", PASSWORD)
    seen = _page(boss, desk.url, f"/case/{again['id']}")
    assert str(first["id"]) in _line(seen) and "相距 9 米" in _line(seen) and "疑似重复" in _texts(seen)
    assert not [c for c in _components(seen) if c["props"].get("data-gw-action") in ("merge", "keep_apart")]
    acc = login_http(desk.url, "acc-dup", PASSWORD)
    queue = _page(acc, desk.url, "/desk/queue/acceptor")  # the acceptor's 待办 flags the repeat
    rows = {c["props"]["data-gw-case"]: _texts(c) for c in _components(queue) if "data-gw-case" in c["props"]}
    assert f"疑似重复 {first['id']}" in rows[str(again["id"])] and "疑似重复" not in rows[str(first["id"])]
    page = _page(acc, desk.url, f"/case/{again['id']}")
    buttons = {c["props"]["data-gw-action"]: c["props"] for c in _components(page)
               if c["props"].get("data-gw-action") in ("merge", "keep_apart")}  # fmt: skip
    assert set(buttons) == {"merge", "keep_apart"}
    merge = buttons["merge"]
    assert json.loads(merge["data-gw-data"]) == {"into": first["id"]}
    body = {
        "action": "merge",
        "case_id": again["id"],
        "id": merge["data-gw-key"] + "-0",
        **json.loads(merge["data-gw-data"]),
    }  # fmt: skip  (what gw-desk.js sends)
    r = acc.post(f"{desk.url}/api/v1/commands", json=body, timeout=15)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    assert desk.core.live.open_case(str(again["id"])) is None  # gone from the live state: one problem
    assert desk.core.live.open_case(str(first["id"])) is not None
    after = _page(acc, desk.url, f"/case/{again['id']}")
    assert _line(after) == str(first["id"]) and "已合并到" in _texts(after)
    assert not [c for c in _components(after) if c["props"].get("data-gw-action") == "merge"]
