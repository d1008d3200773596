"""The ``surveyor`` role, supervisors' handset proposals of 部件 updates, and idempotent component events
(issue 18), on SQLite and PostgreSQL over real HTTP and a real ``/device`` socket.

A supervisor's phone uploads a photo (``POST /api/v1/media``) and sends a ``proposal`` over ``/device``
(as the handset app does); the surveyor sees it on ``/desk/proposals`` and accepts or refuses it with
what ``assets/gw-desk.js`` posts to ``POST /api/v1/commands``; the handset reads the outcome from
``GET /m/api/proposals``. Bad proposals are refused by name and dead-lettered.

The inventory is GENERATED here (tests/component_inventory.py): objects of common classes placed
along the real Dongcheng roads of ``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02),
with owners from the department list; no public inventory is at hand.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import Engine

from dashboard import ids
from domain.catalogue import load_catalogue
from store.accounts import issue_token
from store.components import import_components
from store.db import transaction
from store.models import Component, ComponentHistory, Proposal, Reject
from tests.component_inventory import ROADS, Generated, generate
from tests.conftest import SHARED, require
from tests.desk_login import add_desk_user, login_http
from tests.live_server import LiveServer, Peer, Spot, start_live_server
from tests.test_address_desk import _components, _page, _texts

CATALOGUE = load_catalogue("cjt214")
PASSWORD = "proposal-password-0123"
SEWER = "0102"  # 污水井盖
LIGHT = "0118"  # 路灯


@dataclass
class World:
    srv: LiveServer
    inv: Generated
    admin_key: str
    sup: Spot
    phone: Peer
    surveyor: requests.Session
    leader: requests.Session


def jpeg(shade: int) -> bytes:
    """A small photo (Pillow), different per ``shade``."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (shade % 256, 120, 80)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def world(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not (SHARED / ROADS).exists():
        require("../shared/data/roads/dongcheng_roads_gcj02.geojson (the Dongcheng roads)")
    srv = start_live_server(city_engine, interval=0.2, media_dir=tmp_path_factory.mktemp("proposal_media"))
    index = srv.core.pipeline.index
    inv = generate(
        SHARED, 300, seed=5, inside=lambda x, y: np.asarray([g is not None for g in index.lookup(x, y)])
    )
    path = inv.write_csv(tmp_path_factory.mktemp("proposal_components") / "inventory_gcj02.csv")
    assert import_components(srv.engine, path, index, CATALOGUE, "110101").rejected_count == 0
    add_desk_user(srv.engine, "svy-1", PASSWORD, "surveyor")
    add_desk_user(srv.engine, "boss-p", PASSWORD, "leader")
    with transaction(srv.engine) as s:
        admin_key = issue_token(s, "api", "proposal tests admin", role="admin")[1]
    sup = srv.spot()
    phone = srv.peer("/device", sup.secret)
    yield World(
        srv,
        inv,
        admin_key,
        sup,
        phone,
        login_http(srv.url, "svy-1", PASSWORD),
        login_http(srv.url, "boss-p", PASSWORD),
    )
    srv.stop()


def photo(w: World, shade: int) -> str:
    """Upload a photo as the supervisor's phone does; its media reference."""
    r = requests.post(
        f"{w.srv.url}/api/v1/media",
        files={"file": ("p.jpg", jpeg(shade), "image/jpeg")},
        data={"kind": "near"},
        headers={"Authorization": f"Bearer {w.sup.secret}"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["ref"])


def propose(w: World, **body: Any) -> dict[str, Any]:
    """Send a ``proposal`` over ``/device``; the acknowledgement."""
    body.setdefault("id", f"prop-{uuid.uuid4().hex[:10]}")
    body.setdefault("at", datetime.now(UTC).isoformat())
    return dict(w.phone.call("proposal", body))


def decide(
    w: World, who: requests.Session, action: str, number: str, opinion: str = "", key: str = ""
) -> Any:
    """What gw-desk.js posts for a button of /desk/proposals."""
    body = {
        "action": action,
        "case_id": number,
        "id": key or f"desk-{uuid.uuid4().hex}-0",
        "opinion": opinion,
    }
    return who.post(f"{w.srv.url}/api/v1/commands", json=body, timeout=30)


def mine(w: World) -> dict[str, dict[str, Any]]:
    """The handset's list of its proposals, by number."""
    r = requests.get(
        f"{w.srv.url}/m/api/proposals", headers={"Authorization": f"Bearer {w.sup.secret}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return {f"#{p['number']}": p for p in r.json()["proposals"]}


def history(w: World, code: str) -> list[Any]:
    with w.srv.engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    ComponentHistory.action,
                    ComponentHistory.actor,
                    ComponentHistory.reason,
                    ComponentHistory.changes,
                )
                .where(ComponentHistory.component_id == code)
                .order_by(ComponentHistory.id)
            ).all()
        )


def test_a_new_object_proposed_on_the_handset_is_accepted_by_the_surveyor(world: World) -> None:
    w = world
    ref = photo(w, 1)
    pid = f"prop-{uuid.uuid4().hex[:10]}"
    body = {
        "id": pid,
        "action": "add",
        "class_code": SEWER,
        "name": "新井盖",
        "lon": w.sup.lon,
        "lat": w.sup.lat,
        "note": "新修人行道上的井盖",
        "media": [ref],
    }
    ack = propose(w, **body)
    assert ack["accepted"] == [pid] and ack["cases"][pid].startswith("#"), ack
    number = ack["cases"][pid]
    again = propose(w, **body)  # the outbox's retry: the same proposal, not a second one
    assert again["duplicates"] == [pid] and again["cases"][pid] == number, again
    assert mine(w)[number]["status"] == "待审"
    # the surveyor's page lists it with its photo, its point and its grid; a leader's does not
    page = _page(w.surveyor, w.srv.url, "/desk/proposals")
    card = next(c for c in _components(page) if c["props"].get("data-gw-case") == number[1:])
    assert "新井盖" in _texts(card) and w.sup.grid in _texts(card) and "新修人行道上的井盖" in _texts(card)
    assert any(c["props"].get("src") == f"/media/{ref}" for c in _components(card))
    assert any(c["props"].get("data-gw-action") == "proposal_accept" for c in _components(card))
    assert any(isinstance(c["props"].get("id"), dict) for c in _components(card))  # its map
    boss = _page(w.leader, w.srv.url, "/desk/proposals")
    assert not [c for c in _components(boss) if c["props"].get("data-gw-action")]
    r = decide(w, w.leader, "proposal_accept", number[1:])
    assert r.status_code == 403 and r.json()["error"] == "not_allowed", r.text
    key = f"desk-{uuid.uuid4().hex}-0"
    r = decide(w, w.surveyor, "proposal_accept", number[1:], "核实无误", key)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    got = mine(w)[number]
    assert got["status"] == "已采纳" and got["decider"] == "svy-1" and got["result_component"]
    code = got["result_component"]
    assert code.startswith("110101" + SEWER) and len(code) == 16
    with w.srv.engine.connect() as conn:
        obj = conn.execute(select(Component).where(Component.id == code)).one()
    assert (obj.name, obj.grid_code, obj.state) == ("新井盖", w.sup.grid, "完好")
    assert abs(obj.lon - w.sup.lon) < 1e-6 and abs(obj.lat - w.sup.lat) < 1e-6
    hist = history(w, code)
    assert [(h.action, h.actor) for h in hist] == [("add", "svy-1")]
    assert hist[0].reason == f"proposal {number} by {w.sup.person}: 核实无误"
    near = requests.get(
        f"{w.srv.url}/m/api/components/nearest",
        params={"class": SEWER, "lon": str(w.sup.lon), "lat": str(w.sup.lat), "k": "1"},
        headers={"Authorization": f"Bearer {w.sup.secret}"},
        timeout=30,
    ).json()
    assert near["components"][0]["id"] == code  # on the maps at once
    # the same click again is the same decision; another one is refused by name
    r = decide(w, w.surveyor, "proposal_accept", number[1:], "核实无误", key)
    assert r.status_code == 200 and r.json()["duplicates"], r.text
    r = decide(w, w.surveyor, "proposal_refuse", number[1:], "重复")
    assert r.json()["error"] == "proposal_decided", r.text
    assert decide(w, w.surveyor, "proposal_accept", "999999").json()["error"] == "unknown_proposal"
    comp = _page(w.surveyor, w.srv.url, f"/component/{code}")
    assert f"proposal {number} by {w.sup.person}" in _texts(
        [c for c in _components(comp) if c["props"].get("id") == ids.COMPONENT_HISTORY]
    )


def test_a_move_and_a_state_change_of_an_existing_object(world: World) -> None:
    w = world
    i = next(i for i, c in enumerate(w.inv.classes) if c == LIGHT)
    code = w.inv.ids[i]
    x, y = float(w.inv.lon[i]), float(w.inv.lat[i])
    near = requests.get(
        f"{w.srv.url}/m/api/components/nearest",
        params={"class": LIGHT, "lon": str(x), "lat": str(y)},
        headers={"Authorization": f"Bearer {w.sup.secret}"},
        timeout=30,
    )
    assert near.status_code == 200 and near.json()["components"][0]["id"] == code, near.text
    to = (round(x + 0.0001, 7), round(y + 0.00005, 7))
    ack = propose(
        w,
        action="move",
        class_code=LIGHT,
        component_id=code,
        lon=to[0],
        lat=to[1],
        media=[photo(w, 2)],
        note="灯杆已迁到路口",
    )
    assert ack["accepted"], ack
    number = next(iter(ack["cases"].values()))
    ack2 = propose(w, action="state", class_code=LIGHT, component_id=code, state="破损", media=[photo(w, 3)])
    assert ack2["accepted"], ack2
    number2 = next(iter(ack2["cases"].values()))
    page = _page(w.surveyor, w.srv.url, "/desk/proposals")
    card = next(c for c in _components(page) if c["props"].get("data-gw-case") == number[1:])
    assert code in _texts(card)  # the existing object is named (and linked)
    assert decide(w, w.surveyor, "proposal_accept", number[1:]).status_code == 200
    assert decide(w, w.surveyor, "proposal_accept", number2[1:]).status_code == 200
    with w.srv.engine.connect() as conn:
        obj = conn.execute(select(Component).where(Component.id == code)).one()
    assert (round(obj.lon, 7), round(obj.lat, 7), obj.state) == (to[0], to[1], "破损")
    hist = history(w, code)[-2:]
    assert {"lon", "lat", "geometry"} <= set(hist[0].changes) and hist[1].changes == {
        "state": ["完好", "破损"]
    }
    assert hist[0].reason == f"proposal {number} by {w.sup.person}"
    assert mine(w)[number]["status"] == mine(w)[number2]["status"] == "已采纳"


def test_a_refused_proposal_shows_its_reason_on_the_handset(world: World) -> None:
    w = world
    ack = propose(w, action="add", class_code=LIGHT, lon=w.sup.lon, lat=w.sup.lat, media=[photo(w, 4)])
    number = next(iter(ack["cases"].values()))
    r = decide(w, w.surveyor, "proposal_refuse", number[1:])
    assert r.status_code == 422 and r.json()["error"] == "missing_field", r.text  # a refusal says why
    r = decide(w, w.surveyor, "proposal_refuse", number[1:], "该处已有路灯")
    assert r.status_code == 200 and r.json()["accepted"], r.text
    got = mine(w)[number]
    assert (got["status"], got["reason"], got["result_component"]) == ("已退回", "该处已有路灯", None)
    assert not [h for h in history_of_proposal(w, number)]  # nothing applied to the inventory


def history_of_proposal(w: World, number: str) -> list[Any]:
    with w.srv.engine.connect() as conn:
        return list(
            conn.execute(
                select(ComponentHistory.id).where(ComponentHistory.reason.like(f"proposal {number} %"))
            ).all()
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"note": "长" * 501}, "too_large"),
        ({"class_code": "9999"}, "unknown_class"),
        ({"class_code": "0198"}, "unknown_class"),  # an 事件 class, not a 部件 one
        ({"lon": 121.47, "lat": 31.23}, "outside_district"),
        ({"media": []}, "photo_required"),
        ({"media": ["sha256:" + "0" * 64]}, "unknown_media"),
        ({"action": "move", "component_id": "1101010102999999"}, "unknown_component"),
        ({"action": "state", "state": "坏了", "component_id": None}, "missing_field"),
        ({"lon": None, "lat": None}, "missing_field"),
    ],
)
def test_bad_proposals_are_refused_by_name_and_dead_lettered(
    world: World, change: dict[str, Any], reason: str
) -> None:
    w = world
    pid = f"bad-{uuid.uuid4().hex[:10]}"
    body = {
        "id": pid,
        "action": "add",
        "class_code": SEWER,
        "lon": w.sup.lon,
        "lat": w.sup.lat,
        "media": [photo(w, 5)],
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    ack = propose(w, **body)
    assert ack["rejected"][0]["reason"] == reason, ack
    with w.srv.engine.connect() as conn:
        dead = conn.execute(select(Reject.reason, Reject.payload).where(Reject.reason == reason)).all()
        stored = conn.scalar(select(Proposal.id).where(Proposal.key.like(f"%:{pid}")))
    assert any(isinstance(d.payload, dict) and d.payload.get("id") == pid for d in dead), dead
    assert stored is None


def test_the_surveyor_role_updates_components_and_others_are_refused(world: World) -> None:
    w = world
    code = w.inv.ids[next(i for i, c in enumerate(w.inv.classes) if c == SEWER and i > 20)]
    comp = _page(w.surveyor, w.srv.url, f"/component/{code}")
    assert [c for c in _components(comp) if c["props"].get("id") == ids.COMPONENT_UPDATE]  # the panel
    assert not [
        c
        for c in _components(_page(w.leader, w.srv.url, f"/component/{code}"))
        if c["props"].get("id") == ids.COMPONENT_UPDATE
    ]
    body = {"action": "component_state", "case_id": code, "state": "丢失", "opinion": "井盖丢失"}
    r = w.leader.post(f"{w.srv.url}/api/v1/commands", json={**body, "id": "boss-1"}, timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "not_allowed", r.text
    r = w.surveyor.post(f"{w.srv.url}/api/v1/commands", json={**body, "id": "svy-state-1"}, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    assert history(w, code)[-1].actor == "svy-1"
    menu = _page(w.surveyor, w.srv.url, "/desk")
    assert any(c["props"].get("href") == "/desk/proposals" for c in _components(menu))
    assert not any(
        c["props"].get("href") == "/desk/proposals" for c in _components(_page(w.leader, w.srv.url, "/desk"))
    )


def test_a_component_event_repeated_with_its_key_is_applied_once(world: World) -> None:
    """A client retry of ``POST /api/v1/components/<id>/move`` (and of the desk's command) after a later
    change is answered as the first and changes nothing: the object is not moved back."""
    w = world
    i = next(i for i, c in enumerate(w.inv.classes) if c == SEWER and i > 40)
    code = w.inv.ids[i]
    x, y = float(w.inv.lon[i]), float(w.inv.lat[i])
    head = {"Authorization": f"Bearer {w.admin_key}"}
    first: dict[str, Any] = {"id": "move-a", "lon": round(x + 0.0001, 7), "lat": y, "reason": "复测一"}
    r = requests.post(f"{w.srv.url}/api/v1/components/{code}/move", json=first, headers=head, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == ["move-a"], r.text
    second: dict[str, Any] = {"id": "move-b", "lon": round(x + 0.0002, 7), "lat": y, "reason": "复测二"}
    r = requests.post(f"{w.srv.url}/api/v1/components/{code}/move", json=second, headers=head, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == ["move-b"], r.text
    r = requests.post(f"{w.srv.url}/api/v1/components/{code}/move", json=first, headers=head, timeout=30)
    assert r.status_code == 200 and r.json()["duplicates"] == ["move-a"], r.text
    with w.srv.engine.connect() as conn:
        lon = conn.scalar(select(Component.lon).where(Component.id == code))
    assert lon is not None and round(float(lon), 7) == second["lon"]  # not moved back by the retry
    assert [h.reason for h in history(w, code)][-2:] == ["复测一", "复测二"]
    # the desk's command: the same key after another state is a duplicate, not a second change
    desk: dict[str, Any] = {"action": "component_state", "case_id": code, "id": "svy-key-1", "state": "破损"}
    assert w.surveyor.post(f"{w.srv.url}/api/v1/commands", json=desk, timeout=30).json()["accepted"]
    other = {**desk, "id": "svy-key-2", "state": "完好"}
    assert w.surveyor.post(f"{w.srv.url}/api/v1/commands", json=other, timeout=30).json()["accepted"]
    r = w.surveyor.post(f"{w.srv.url}/api/v1/commands", json=desk, timeout=30)
    assert r.status_code == 200 and r.json()["duplicates"] == ["svy-key-1"], r.text
    with w.srv.engine.connect() as conn:
        assert conn.scalar(select(Component.state).where(Component.id == code)) == "完好"
