"""Fuzz (issue 20, build item 2): the bugs ``bench/bench_fuzz.py`` found, each pinned on an in-process
server (``tests.live_server``).

The bounded slice of the fuzz itself is its smoke run (``tests/test_bench_smoke.py::test_smoke[fuzz]``):
every input schema of a real server (gunicorn, its log captured) with a few hundred seeded payloads
each, failing on any 5xx, traceback, ``unavailable``, missing acknowledgement or lost valid item
(the database check included).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine

from feeds.http import MAX_BODY_BYTES
from tests.live_server import LiveServer, Peer, start_live_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The built-in district on SQLite, served in process, with an API key of role call_center."""
    from domain.catalogue import load_catalogue
    from store.build import BuildRequest, build_city
    from store.cases import sync_departments
    from store.db import create_engine, transaction

    eng: Engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'gw.db'}")
    build_city(eng, BuildRequest())
    with transaction(eng) as s:
        sync_departments(s, load_catalogue("cjt214"))
    server = start_live_server(eng)
    yield server
    server.stop()
    eng.dispose()


@pytest.fixture(scope="module")
def keys(srv: LiveServer) -> dict[str, str]:
    """API keys by role, and the gateway token (scope ``*``) under ``gateway``."""
    from store.accounts import issue_token
    from store.db import transaction

    with transaction(srv.engine) as s:
        out = {
            role: issue_token(s, "api", f"fuzz {role}", role=role)[1]
            for role in ("call_center", "supervisor")
        }
        out["gateway"] = issue_token(s, "gateway", "fuzz gateway", scope=["*"])[1]
    return out


def _past_the_cap() -> Iterator[bytes]:
    yield b'{"kind": "'
    for _ in range(MAX_BODY_BYTES // 65536 + 2):
        yield b"x" * 65536
    yield b'"}'


def test_a_chunked_body_past_the_cap_is_refused_by_name(srv: LiveServer, keys: dict[str, str]) -> None:
    """A chunked body over 4 MiB to /api/v1/reports and to Open311 got Werkzeug's HTML 413 page (the
    app's MAX_CONTENT_LENGTH cut the stream inside feeds.http.read_body): it must be the named
    ``too_large`` refusal in each endpoint's JSON, as a body with Content-Length gets."""
    api = {"Authorization": f"Bearer {keys['call_center']}", "Content-Type": "application/json"}
    r = requests.post(f"{srv.url}/api/v1/reports", data=_past_the_cap(), headers=api, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text[:200]
    for ctype in ("application/json", "application/x-www-form-urlencoded"):
        r = requests.post(
            f"{srv.url}/open311/v2/requests.json",
            data=_past_the_cap(),
            headers={"Content-Type": ctype},
            timeout=60,
        )
        assert r.status_code == 413, (ctype, r.text[:200])
        assert r.json()[0]["description"].startswith("too_large:"), (ctype, r.text[:200])


def test_device_events_named_connect_or_disconnect_are_refused(srv: LiveServer, keys: dict[str, str]) -> None:
    """A /device event named ``disconnect`` ran the disconnect handler (the token was forgotten while
    the connection stayed: every later event ``token_unknown``), one named ``connect`` re-ran the
    connect handler (a traceback, no acknowledgement). Both are unknown events: ``malformed``."""
    spot = srv.spot()
    peer = srv.peer("/device", keys["gateway"])
    for name in ("disconnect", "connect"):
        ack = peer.call(name, {"x": 1})
        assert [r["reason"] for r in ack["rejected"]] == ["malformed"], (name, ack)
    fix = {
        "id": "f-after",
        "supervisor": spot.person,
        "lon": spot.lon,
        "lat": spot.lat,
        "at": "2020-01-01T00:00:00Z",
    }
    ack = peer.call("position", fix)
    assert [r["reason"] for r in ack["rejected"]] == ["too_old"], ack  # still authenticated
    live = srv.peer("/live", srv.kiosk)
    assert live.call("disconnect", {}) is None  # ignored, as any unknown /live event
    assert live.call("join", {"room": "wall"}) == {"ok": True, "room": "wall"}


class _Deep:
    """Writes a /device payload nested deeper than a JSON decoder can recurse; reads as ``decoder``."""

    decoder: Any = None  # the packet json the server decodes with (client and server share the class)

    @classmethod
    def dumps(cls, obj: Any, **kw: Any) -> str:
        """The event with its payload nested 5,000 levels deep."""
        import json

        if isinstance(obj, list) and obj and obj[-1] == "DEEP":
            return "[" + json.dumps(obj[0]) + ',{"fixes":' + "[" * 5000 + "]" * 5000 + "}]"
        return str(cls.decoder.dumps(obj, **kw))

    @classmethod
    def loads(cls, s: Any, **kw: Any) -> Any:
        """As the server's packet json."""
        return cls.decoder.loads(s, **kw)


def test_a_device_event_nested_too_deep_for_the_decoder_is_acknowledged(
    srv: LiveServer, keys: dict[str, str]
) -> None:
    """A /device event nested 5,000 levels deep made python-socketio's packet decoder raise
    RecursionError: a traceback in the log and no acknowledgement ever (the sender waits and retries
    for good). It is refused ``malformed`` like any payload JSON cannot hold."""
    import socketio.packet as packet

    peer = srv.peer("/device", keys["gateway"])
    _Deep.decoder = packet.Packet.json  # what the server's namespace set up
    packet.Packet.json = _Deep  # the client writes the raw text; the server decodes as before
    try:
        ack = peer.client.call("positions", "DEEP", namespace="/device", timeout=15)
    finally:
        packet.Packet.json = _Deep.decoder
    assert [r["reason"] for r in ack["rejected"]] == ["malformed"], ack
    assert isinstance(peer, Peer) and peer.connected
