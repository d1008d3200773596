"""The supervisor's handset app (城管通, ``/m``, issue 16) in Debian's Chromium with mobile emulation,
against the shared ``python app.py run`` (tests.conftest ``app_server``: SQLite, the simulation on).

Each test pairs its own new supervisor (``app.py user add … --password-stdin``) through the app's
sign-in, with the browser's geolocation granted and overridden to a point inside the supervisor's
area, and checks the outcome where it lands: rows in the database (read-only), ticks on ``/live``
(a real python-socketio client with the kiosk token), the desk's command path. Nothing is faked: the
app speaks ``/device`` to the real server over a real socket.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from domain.catalogue import load_catalogue
from tests.conftest import ARTIFACTS, SHARED
from tests.desk_login import add_user_cli, login_browser, login_http
from tests.serve import Server

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "handset-pass-2026"
WAIT = 60.0  # seconds: a condition that must come (the app sends a fix at once, answers within 1 s)
CATALOGUE = load_catalogue("cjt214")
EVENT = next(c for c in CATALOGUE.classes if c.kind.value == "event" and not c.emergency)


@pytest.fixture(scope="module")
def server(app_server: Server) -> Server:
    return app_server  # tests.conftest: one running app for the browser modules


def db_rows(server: Server, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the running app's SQLite database."""
    path = server.cwd / "var" / "gridwall.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        return db.execute(sql, params).fetchall()


def wait_until(cond: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``cond`` until it returns something truthy (that value), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def ensure_user(server: Server, user: str, role: str, *extra: str) -> str:
    """A desk person with :data:`PASSWORD` (made once per app, through the CLI); returns the id."""
    if not db_rows(server, "SELECT id FROM people WHERE id = ?", user):
        add_user_cli(server.cwd, user, PASSWORD, role, *extra)
    return user


@dataclass(frozen=True)
class Supervisor:
    person: str
    lon: float
    lat: float
    near: tuple[float, float]  # a second point in the same area, ~40 m away


@pytest.fixture(scope="module")
def new_supervisor(server: Server) -> Callable[[], Supervisor]:
    """Make a new supervisor with a password, on an area's grid, each call another area."""
    from shapely.geometry import shape

    rows = db_rows(
        server,
        "SELECT area_code, geometry FROM grids WHERE area_code IS NOT NULL AND area_m2 > 6000 "
        "ORDER BY code LIMIT 40",
    )
    made: list[str] = []

    def make() -> Supervisor:
        area, geom = rows[len(made) * 3 % len(rows)]
        person = f"sup-m-{uuid.uuid4().hex[:8]}"
        add_user_cli(server.cwd, person, PASSWORD, "supervisor", "--area", area)
        made.append(person)
        poly = shape(json.loads(geom))
        p = poly.representative_point()
        near = next(
            (q for q in ((p.x + 0.0004, p.y), (p.x - 0.0004, p.y), (p.x, p.y + 0.0003), (p.x, p.y - 0.0003))
             if poly.contains(type(p)(q))),
            (p.x, p.y),
        )  # fmt: skip
        return Supervisor(person, round(p.x, 7), round(p.y, 7), (round(near[0], 7), round(near[1], 7)))

    return make


class Phone:
    """One phone: a Chromium context at 390×844 with touch, geolocation granted and set."""

    def __init__(self, browser: Any, server: Server, lon: float, lat: float, name: str) -> None:
        self.server, self.name = server, name
        self.ctx = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
            geolocation={"longitude": lon, "latitude": lat, "accuracy": 6}, permissions=["geolocation"],
            locale="zh-CN",
        )  # fmt: skip
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, person: str, password: str = PASSWORD) -> None:
        """Open /m and sign in; wait until the socket is up."""
        self.page.goto(f"{self.server.base}/m/")
        self.page.fill("#person", person)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("#net[data-state=on]", timeout=WAIT * 1000)

    def outbox(self) -> int:
        """Items waiting on the phone."""
        return int(self.page.evaluate("window.gwHandset.outboxCount()"))

    def shot(self, what: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"handset-{self.name}-{what}.png"))

    def close(self) -> None:
        assert not self.errors, self.errors
        self.ctx.close()


@pytest.fixture
def phone(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Callable[..., Phone]]:
    phones: list[Phone] = []

    def make(sup: Supervisor) -> Phone:
        p = Phone(browser, server, sup.lon, sup.lat, request.node.name)
        phones.append(p)
        return p

    yield make
    for p in phones:
        p.close()


def kiosk_token(server: Server) -> str:
    return parse_qs(urlsplit(server.wall_url).query)["token"][0]


def columns(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(cols)
    n = len(cols[keys[0]]) if keys else 0
    return [{k: cols[k][i] for k in keys} for i in range(n)]


def jpeg(width: int, height: int, shade: int) -> bytes:
    """A camera-sized photo (Pillow), different per ``shade``."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (shade, 120, 200 - shade // 2))
    ImageDraw.Draw(img).rectangle((width // 4, height // 4, width // 2, height // 2), fill=(250, 250, 20))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def media_refs(server: Server, case_id: str) -> list[str]:
    """The media references kept in a case's event log."""
    rows = db_rows(server, "SELECT data FROM case_events WHERE case_id = ? ORDER BY seq", case_id)
    refs: list[str] = []
    for (data,) in rows:
        d = json.loads(data) if isinstance(data, str) else (data or {})
        if d.get("media"):
            refs += str(d["media"]).split(",")
    return refs


# -- pairing, fixes, the wall -----------------------------------------------------------------------


def test_pair_then_fixes_move_the_supervisor_on_the_wall(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor]
) -> None:
    import socketio

    sup = new_supervisor()
    seen: list[dict[str, Any]] = []
    wall = socketio.Client()
    wall.on("tick", lambda m: seen.append(m), namespace="/live")
    wall.on("snapshot", lambda m: seen.append(m), namespace="/live")
    wall.connect(
        server.base, namespaces=["/live"], auth={"token": kiosk_token(server)}, transports=["websocket"]
    )
    try:
        p = phone(sup)
        p.sign_in(sup.person)
        # the pairing made a device token named for the app, and the first fix is stored with its accuracy
        tokens = db_rows(server, "SELECT name, revoked_at FROM tokens WHERE person_id = ?", sup.person)
        assert tokens == [(f"城管通 {sup.person}", None)]
        first = wait_until(
            lambda: db_rows(
                server, "SELECT lon, lat, accuracy FROM positions WHERE supervisor_id = ?", sup.person
            ),
            "the phone's first fix in the database",
        )
        assert abs(first[0][0] - sup.lon) < 1e-6 and abs(first[0][1] - sup.lat) < 1e-6 and first[0][2] == 6.0

        def on_wall(lon: float, lat: float) -> bool:
            for m in list(seen):
                for r in columns(m.get("sup") or {}):
                    if (
                        r.get("id") == sup.person
                        and abs(r["lon"] - lon) < 1e-5
                        and abs(r["lat"] - lat) < 1e-5
                    ):
                        return True
            return False

        wait_until(lambda: on_wall(sup.lon, sup.lat), "the supervisor at the first point on /live")
        if (SHARED / "data" / "roads").exists():  # the basemap tests.conftest.app_server imported: the
            p.page.wait_for_function(  # map holds the server's drawn street tiles under the grids
                "() => { const bm = window.gwHandset.state.basemap;"
                " return !!bm && [...bm.tiles.values()].some(img => img && img.width === 512); }",
                timeout=WAIT * 1000,
            )
        p.shot("home")
        # the supervisor walks ~40 m: the browser reports it, the app sends it, the wall moves
        p.ctx.set_geolocation({"longitude": sup.near[0], "latitude": sup.near[1], "accuracy": 5})
        wait_until(lambda: on_wall(*sup.near), "the supervisor at the second point on /live")
        # the line under the map names the place: the grid's street, community and code
        grid = db_rows(
            server, "SELECT grid_code FROM positions WHERE supervisor_id = ? ORDER BY at", sup.person
        )
        wait_until(lambda: grid[-1][0] in p.page.inner_text("#where"), "the grid code under the map")
    finally:
        wall.disconnect()


def test_sign_in_refusals_are_named(server: Server, new_supervisor: Callable[[], Supervisor]) -> None:
    sup = new_supervisor()
    url = f"{server.base}/m/api/pair"
    r = requests.post(url, json={"person": sup.person, "password": "wrong"}, timeout=30)
    assert r.status_code == 401 and r.json()["reason"] == "login_failed"
    r = requests.post(url, data=b"x" * 5000, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["reason"] == "too_large"
    r = requests.post(url, json=[1, 2], timeout=30)
    assert r.status_code == 400 and r.json()["reason"] == "wrong_type"
    r = requests.post(url, json={"person": sup.person, "password": 5}, timeout=30)
    assert r.status_code == 400 and r.json()["reason"] == "missing_field"
    # a desk person is not a supervisor: no handset token for them
    add_user_cli(server.cwd, "leader-m-test", PASSWORD, "leader")
    r = requests.post(url, json={"person": "leader-m-test", "password": PASSWORD}, timeout=30)
    assert r.status_code == 403 and r.json()["reason"] == "not_a_supervisor"
    # the app's API wants the device token
    r = requests.get(f"{server.base}/m/api/tasks", timeout=30)
    assert r.status_code == 401 and r.json()["reason"] == "token_missing"
    kiosk = {"Authorization": f"Bearer {kiosk_token(server)}"}
    r = requests.get(f"{server.base}/m/api/tasks", headers=kiosk, timeout=30)
    assert r.status_code == 403 and r.json()["reason"] == "token_wrong_kind"
    # pairing again (a new phone) stops the first phone's token
    first = requests.post(url, json={"person": sup.person, "password": PASSWORD}, timeout=30)
    second = requests.post(url, json={"person": sup.person, "password": PASSWORD}, timeout=30)
    assert first.status_code == 201 and second.status_code == 201
    old = requests.get(
        f"{server.base}/m/api/me", headers={"Authorization": f"Bearer {first.json()['token']}"}
    )
    assert old.status_code == 401 and old.json()["reason"] == "token_revoked"
    new = requests.get(
        f"{server.base}/m/api/me", headers={"Authorization": f"Bearer {second.json()['token']}"}
    )
    assert new.status_code == 200 and new.json()["person"] == sup.person


# -- a report with three photos ---------------------------------------------------------------------


def test_report_with_three_photos_reaches_the_case_and_the_desk(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    from PIL import Image

    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    page = p.page
    page.click("button[data-go=report]")
    page.fill("#cls-search", EVENT.name)
    page.click(f"#classes button[data-code='{EVENT.code}']")
    page.wait_for_selector("#picked")
    assert EVENT.conditions[0].text in page.inner_text("#picked")  # the 立案条件 in words
    page.fill("#description", "手机端测试：三张照片")
    for i, kind in enumerate(("near", "far", "reference")):
        path = tmp_path / f"{kind}.jpg"
        path.write_bytes(jpeg(4000, 3000, 40 * i))  # a phone camera's 12 MP
        page.set_input_files(f"input[data-photo={kind}]", str(path))
        page.wait_for_selector(f"label.shot:nth-child({i + 1}) img")
    page.wait_for_selector("#where")
    p.shot("report")
    page.click("#send")
    toast = page.wait_for_selector(".toast.ok", timeout=WAIT * 1000)
    assert toast is not None
    text = toast.inner_text()
    case_id = text.split()[-1]
    assert text.startswith("上报成功") and case_id.startswith("R"), text
    row = db_rows(server, "SELECT reporter, class_code, source, description FROM cases WHERE id = ?", case_id)
    assert row == [(sup.person, EVENT.code, "supervisor", "手机端测试：三张照片")]
    refs = media_refs(server, case_id)
    assert len(refs) == 3 and len(set(refs)) == 3, refs
    for ref in refs:  # stored as JPEG, scaled in the browser to ≤ 1600 px
        digest = ref.split(":", 1)[1]
        files = list((server.cwd / "var" / "media" / digest[:2] / digest[2:4]).glob(f"{digest}.*"))
        assert len(files) == 1
        with Image.open(files[0]) as img:
            assert img.format == "JPEG" and max(img.size) == 1600, img.size
    # the desk's case page shows them
    client = login_http(server.base, *desk_leader(server))
    html = client.get(f"{server.base}/case/{case_id}", timeout=60)
    assert html.status_code == 200
    for ref in refs:
        r = client.get(f"{server.base}/media/{ref}", timeout=60)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"


def desk_leader(server: Server) -> tuple[str, str]:
    """A leader of the desk (made once)."""
    user = "leader-m-desk"
    ensure_user(server, user, "leader")
    return user, PASSWORD


# -- a task from the desk, answered on the phone ----------------------------------------------------


def test_a_verify_task_reaches_the_phone_which_acknowledges_and_answers(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    # the centre's acceptor files a public report and sends its 核实 to this supervisor (the desk's path)
    acceptor = "acceptor-m-test"
    ensure_user(server, acceptor, "acceptor")
    desk = login_http(server.base, acceptor, PASSWORD)
    # a citizen's report comes in over the hotline system's API key (source public: it needs a 核实)
    out = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "token", "add", "api", "--role", "acceptor",
         "--name", f"hotline-{uuid.uuid4().hex[:6]}"],
        cwd=server.cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=True,
    ).stdout  # fmt: skip
    key = out.strip().splitlines()[-1].split(": ", 1)[1]
    report: dict[str, Any] = {"kind": "event", "class_code": EVENT.code, "description": "市民反映",
                              "lon": sup.near[0], "lat": sup.near[1]}  # fmt: skip
    r = requests.post(
        f"{server.base}/api/v1/reports", json=report, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    assert r.status_code == 201, r.text
    case_id = next(iter(r.json()["cases"].values()))
    r = desk.post(
        f"{server.base}/api/v1/commands",
        json={"action": "accept", "case_id": case_id, "data": {"assignee": sup.person}},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["accepted"], r.text
    page = p.page
    page.click("button[data-go=tasks]")
    # the inbox redraws itself (every 5 s, and on each task): elements are found again, never kept
    card = f"button[data-case='{case_id}']"
    page.wait_for_selector(card, timeout=WAIT * 1000)
    assert "核实" in page.inner_text(card) and EVENT.name in page.inner_text(card)
    # its deadline in the city's time (the phone's own zone may differ: this browser's is UTC)
    stored = db_rows(server, "SELECT deadline FROM tasks WHERE case_id = ? AND kind = 'verify'", case_id)[0][
        0
    ]
    due = datetime.fromisoformat(str(stored)).replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{due:%H:%M}" in page.inner_text(card), (stored, page.inner_text(card))
    wait_until(  # the phone said it has it
        lambda: db_rows(
            server, "SELECT acked_at FROM tasks WHERE case_id = ? AND acked_at IS NOT NULL", case_id
        ),
        "the task's receipt (task_ack)",
    )
    p.shot("tasks")
    page.click(card)
    page.wait_for_selector("button[data-answer=true]")
    photo = tmp_path / "verify.jpg"
    photo.write_bytes(jpeg(1200, 900, 90))
    page.set_input_files("input[data-photo=task]", str(photo))
    page.fill("#opinion", "现场属实")
    p.shot("task")
    page.click("button[data-answer=true]")
    wait_until(
        lambda: db_rows(server, "SELECT status FROM cases WHERE id = ? AND status = 'to_file'", case_id),
        "the case in 待立案 after 属实",
    )
    done = db_rows(server, "SELECT done_at, result FROM tasks WHERE case_id = ? AND kind = 'verify'", case_id)
    assert done[0][0] is not None and done[0][1] == 1
    assert len(media_refs(server, case_id)) == 1  # the photo went with the answer
    assert page.query_selector(f"button[data-case='{case_id}']") is None


# -- offline, then back: everything arrives once -----------------------------------------------------


def test_offline_reports_and_fixes_arrive_exactly_once_when_back(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    wait_until(
        lambda: db_rows(server, "SELECT 1 FROM positions WHERE supervisor_id = ?", sup.person),
        "the first fix",
    )
    page = p.page
    p.ctx.set_offline(True)
    page.wait_for_selector("#net[data-state=off]", timeout=WAIT * 1000)
    assert page.is_visible("#banner")
    # moved while offline, and reported with a photo
    p.ctx.set_geolocation({"longitude": sup.near[0], "latitude": sup.near[1], "accuracy": 7})
    wait_until(lambda: p.outbox() >= 1, "the offline fix in the outbox")
    page.click("button[data-go=report]")
    page.fill("#cls-search", EVENT.name)
    page.click(f"#classes button[data-code='{EVENT.code}']")
    page.fill("#description", "离线上报")
    photo = tmp_path / "offline.jpg"
    photo.write_bytes(jpeg(800, 600, 10))
    page.set_input_files("input[data-photo=near]", str(photo))
    page.wait_for_selector("label.shot img")
    page.click("#send")
    page.wait_for_selector("#outbox:not([hidden])")
    assert p.outbox() >= 2
    p.shot("offline")
    before = db_rows(server, "SELECT count(*) FROM cases WHERE reporter = ?", sup.person)[0][0]
    assert before == 0
    # back online: the queue drains; every item is in the database once
    p.ctx.set_offline(False)
    wait_until(lambda: p.outbox() == 0, "the outbox drained", timeout=WAIT * 2)
    cases = db_rows(server, "SELECT id, description FROM cases WHERE reporter = ?", sup.person)
    assert [c[1] for c in cases] == ["离线上报"] and len(media_refs(server, cases[0][0])) == 1
    fixes = db_rows(server, "SELECT lon, lat FROM positions WHERE supervisor_id = ? ORDER BY at", sup.person)
    moved = [f for f in fixes if abs(f[0] - sup.near[0]) < 1e-6 and abs(f[1] - sup.near[1]) < 1e-6]
    assert len(moved) == 1, fixes  # the fix taken offline, once
    assert len(fixes) == len(set(fixes))


# -- revocation --------------------------------------------------------------------------------------


def test_a_revoked_phone_is_cut_at_once_and_says_so(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor]
) -> None:
    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    token_id = db_rows(
        server, "SELECT id FROM tokens WHERE person_id = ? AND revoked_at IS NULL", sup.person
    )[0][0]
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "token", "revoke", str(token_id)],
        cwd=server.cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    p.page.wait_for_selector("#signin-error", timeout=WAIT * 1000)
    p.page.wait_for_function(
        "() => document.querySelector('#signin-error').textContent.includes('停用')", timeout=WAIT * 1000
    )
    assert p.page.evaluate("localStorage.getItem('gw.m.token')") is None
    p.shot("revoked")


# -- the desk: pair a phone by QR code, see it, revoke it ---------------------------------------------


def test_the_desk_pairs_a_phone_by_qr_code_shows_it_and_revokes_it(
    server: Server, browser: Any, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor]
) -> None:
    sup = new_supervisor()
    leader = "shift-m-test"
    ensure_user(server, leader, "shift_leader")
    desk = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        login_browser(desk, server.base, leader, PASSWORD, f"/supervisor/{sup.person}")
        desk.click("button[data-gw-device=pair]", timeout=WAIT * 1000)
        qr = desk.wait_for_selector("img.gw-dev-qr", timeout=WAIT * 1000)
        assert qr is not None
        link = str(qr.get_attribute("alt"))
        assert link.startswith(f"{server.base}/m/#pair=") and str(qr.get_attribute("src")).startswith(
            "data:image/svg+xml;base64,"
        )
        desk.screenshot(path=str(ARTIFACTS / "handset-desk-pair.png"))
        # the phone opens the QR code's link: signed in without a password, the fragment gone
        p = phone(sup)
        p.page.goto(link)
        p.page.wait_for_selector("#net[data-state=on]", timeout=WAIT * 1000)
        assert "#pair" not in p.page.url
        wait_until(
            lambda: db_rows(server, "SELECT app_version FROM handsets WHERE person_id = ?", sup.person),
            "the app's hello",
        )
        # the desk's supervisor page shows the phone: its app version and when it was seen
        desk.goto(f"{server.base}/supervisor/{sup.person}")
        row = desk.wait_for_selector("li.gw-dev:not(.gw-dev-off)", timeout=WAIT * 1000)
        assert row is not None
        version = p.page.evaluate("window.gwHandset.version")
        assert f"城管通 {sup.person}" in row.inner_text() and version in row.inner_text()
        # revoke it from the desk: the phone is cut and says so
        desk.click("li.gw-dev:not(.gw-dev-off) button[data-gw-device=revoke]")
        desk.wait_for_selector("li.gw-dev.gw-dev-off", timeout=WAIT * 1000)
        p.page.wait_for_function(
            "() => (document.querySelector('#signin-error') || {}).textContent?.includes('停用')",
            timeout=WAIT * 1000,
        )
    finally:
        desk.close()


def test_device_routes_check_who_asks(server: Server, new_supervisor: Callable[[], Supervisor]) -> None:
    sup = new_supervisor()
    anon = requests.post(f"{server.base}/desk/api/devices/pair", json={"person": sup.person}, timeout=30)
    assert anon.status_code == 401
    # a leader may look at the desk but does not manage phones; without the CSRF token nobody does
    client = login_http(server.base, *desk_leader(server))
    r = client.post(f"{server.base}/desk/api/devices/pair", json={"person": sup.person}, timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "wrong_role"
    shift = "shift-m-test"
    ensure_user(server, shift, "shift_leader")
    client = login_http(server.base, shift, PASSWORD)
    bare = requests.Session()
    bare.cookies.update(client.cookies)
    r = bare.post(f"{server.base}/desk/api/devices/pair", json={"person": sup.person}, timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = client.post(f"{server.base}/desk/api/devices/pair", json={"person": "leader-m-desk"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"] == "unknown_supervisor"
    r = client.post(f"{server.base}/desk/api/devices/pair", data=b"x" * 3000, timeout=30)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    kiosk = db_rows(server, "SELECT id FROM tokens WHERE kind = 'kiosk'")[0][0]
    r = client.post(f"{server.base}/desk/api/devices/{kiosk}/revoke", timeout=30)
    assert r.status_code == 404 and r.json()["error"] == "unknown_token"
    assert db_rows(server, "SELECT revoked_at FROM tokens WHERE id = ?", kiosk) == [(None,)]


# -- the department's workbench: its work list, a request, 处置反馈 with photos from the desktop --------

EVENTS_OF = "SELECT data FROM case_events WHERE case_id = ?"
DEPARTMENT = "23"  # 区卫生健康委: no class's default department, so the simulation never sends it a case


def test_a_department_handles_a_case_from_its_work_list_with_photos(
    server: Server, browser: Any, new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    import socketio

    sup = new_supervisor()
    paired = requests.post(f"{server.base}/m/api/pair", json={"person": sup.person, "password": PASSWORD})
    handset = socketio.Client()
    handset.connect(server.base, namespaces=["/device"], auth={"token": paired.json()["token"]},
                    transports=["websocket"])  # fmt: skip
    try:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rep = {"id": f"dept-{uuid.uuid4().hex[:8]}", "kind": "event", "class_code": EVENT.code,
               "lon": sup.lon, "lat": sup.lat, "at": at, "description": "部门处置测试"}  # fmt: skip
        ack = handset.call("report", rep, namespace="/device", timeout=60)
    finally:
        handset.disconnect()
    case_id = ack["cases"][rep["id"]]
    for user, role in (("shift-m-test", "shift_leader"), ("dispatch-m-test", "dispatcher"),
                       ("acceptor-m-test", "acceptor")):  # fmt: skip
        ensure_user(server, user, role)
    shift, dispatcher = (
        login_http(server.base, "shift-m-test", PASSWORD),
        login_http(server.base, "dispatch-m-test", PASSWORD),
    )
    commands = f"{server.base}/api/v1/commands"
    acceptor = login_http(server.base, "acceptor-m-test", PASSWORD)
    r = acceptor.post(commands, json={"action": "accept", "case_id": case_id}, timeout=60)
    assert r.status_code == 200 and r.json()["accepted"], r.text  # a supervisor's own: to 待立案
    r = shift.post(commands, json={"action": "file", "case_id": case_id}, timeout=60)
    assert r.status_code == 200 and r.json()["accepted"], r.text
    r = dispatcher.post(commands, json={"action": "dispatch", "case_id": case_id,
                                        "data": {"department": DEPARTMENT}}, timeout=60)  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"], r.text
    dept = f"dept-m-{DEPARTMENT}"
    ensure_user(server, dept, "department", "--department", DEPARTMENT)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        login_browser(page, server.base, dept, PASSWORD, "/desk/queue/department")
        link = f"a.gw-q-case:text-is('{case_id}')"  # the list is rebuilt as cases change: found anew
        page.wait_for_selector(link, timeout=WAIT * 1000)
        page.click(link)
        # 申请延期 with its reason; the dispatcher approves it
        box = page.wait_for_selector(".gw-act-request_extension", timeout=WAIT * 1000)
        assert box is not None
        page.fill(".gw-act-opinion textarea, textarea[name=opinion]", "需协调供电部门，申请延期")
        page.fill(".gw-act-request_extension input[name=extra]", "2工作日")
        page.click(".gw-act-request_extension button[data-gw-action]")
        wait_until(
            lambda: db_rows(server, f"{EVENTS_OF} AND action = 'request_extension'", case_id),
            "the extension request",
        )  # fmt: skip
        r = dispatcher.post(commands, json={"action": "approve", "case_id": case_id}, timeout=60)
        assert r.status_code == 200 and r.json()["accepted"], r.text
        # 处置反馈 with two photos picked on the desktop
        photos = []
        for i in range(2):
            path = tmp_path / f"after-{i}.jpg"
            path.write_bytes(jpeg(1024, 768, 60 * i))
            photos.append(str(path))
        button = ".gw-act-feedback button[data-gw-photos]"  # the case body is rebuilt on live changes
        page.wait_for_selector(button, timeout=WAIT * 1000)
        with page.expect_file_chooser() as chooser:
            page.click(button)
        chooser.value.set_files(photos)
        page.wait_for_selector(".gw-act-feedback button[data-gw-count='2']", timeout=WAIT * 1000)
        page.fill("textarea[name=opinion]", "已拆除并清运")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "handset-department-feedback.png"))
        page.click(".gw-act-feedback button[data-gw-action=feedback]")
        done = wait_until(
            lambda: db_rows(server, f"{EVENTS_OF} AND action = 'feedback'", case_id),
            "the feedback in the case log",
        )  # fmt: skip
        data = json.loads(done[0][0]) if isinstance(done[0][0], str) else done[0][0]
        refs = str(data.get("media", "")).split(",")
        assert len(refs) == 2 and all(ref.startswith("sha256:") for ref in refs), data
        status = db_rows(server, "SELECT status, department_code FROM cases WHERE id = ?", case_id)
        assert status[0][1] == DEPARTMENT and status[0][0] != "handling", status
        # the case page shows the photos
        page.wait_for_selector(f"img.gw-photo[alt='{refs[0]}']", timeout=WAIT * 1000)
    finally:
        page.close()


def test_desk_photo_uploads_need_the_csrf_token_and_commands_known_refs(server: Server) -> None:
    dept = f"dept-m-{DEPARTMENT}"
    ensure_user(server, dept, "department", "--department", DEPARTMENT)
    client = login_http(server.base, dept, PASSWORD)
    photo = {"file": ("after.jpg", jpeg(320, 240, 5), "image/jpeg")}
    bare = requests.Session()
    bare.cookies.update(client.cookies)
    r = bare.post(f"{server.base}/api/v1/media", data={"kind": "after"}, files=photo, timeout=60)
    assert r.status_code == 403 and r.json()["reason"] == "not_allowed"
    r = client.post(f"{server.base}/api/v1/media", data={"kind": "after"}, files=photo, timeout=60)
    assert r.status_code in (200, 201) and r.json()["ref"].startswith("sha256:")
    never = "sha256:" + "0" * 64
    body: dict[str, Any] = {"action": "feedback", "case_id": "R2026010100001", "data": {"media": never}}
    r = client.post(f"{server.base}/api/v1/commands", json=body, timeout=60)
    assert r.json()["rejected"][0]["reason"] == "unknown_media", r.text
    body["data"] = {"media": ",".join([never] * 11)}
    r = client.post(f"{server.base}/api/v1/commands", json=body, timeout=60)
    assert r.json()["rejected"][0]["reason"] == "too_large", r.text


def test_a_self_handled_report_carries_photos_before_and_after(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    page = p.page
    page.click("button[data-go=report]")
    page.fill("#cls-search", EVENT.name)
    page.click(f"#classes button[data-code='{EVENT.code}']")
    page.check("#self-handled")
    for kind, shade in (("near", 30), ("after", 200)):
        path = tmp_path / f"{kind}.jpg"
        path.write_bytes(jpeg(900, 700, shade))
        page.set_input_files(f"input[data-photo={kind}]", str(path))
    page.wait_for_selector("label.shot:nth-child(4) img")
    page.click("#send")
    toast = page.wait_for_selector(".toast.ok", timeout=WAIT * 1000)
    assert toast is not None
    case_id = toast.inner_text().split()[-1]
    first = db_rows(server, "SELECT data FROM case_events WHERE case_id = ? ORDER BY seq LIMIT 1", case_id)
    data = json.loads(first[0][0]) if isinstance(first[0][0], str) else first[0][0]
    assert data["self_handled"] is True, data
    before, after = str(data["media"]).split(","), str(data["handled_media"]).split(",")
    assert len(before) == 1 and len(after) == 1 and before != after


def test_pairings_at_the_same_time_all_succeed_and_leave_one_phone(
    server: Server, new_supervisor: Callable[[], Supervisor]
) -> None:
    """The fuzz found it: a sign-in read the password and then wrote the token in one SQLite transaction,
    and two at once failed the read-to-write upgrade ("database is locked", HTTP 500)."""
    from concurrent.futures import ThreadPoolExecutor

    sup = new_supervisor()
    body = {"person": sup.person, "password": PASSWORD}

    def pair(_: int) -> int:
        return requests.post(f"{server.base}/m/api/pair", json=body, timeout=120).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(pair, range(12)))
    assert statuses == [201] * 12, statuses
    live = db_rows(
        server, "SELECT count(*) FROM tokens WHERE person_id = ? AND revoked_at IS NULL", sup.person
    )
    assert live == [(1,)]


def test_a_check_task_sent_from_the_desk_is_answered_on_the_phone(
    server: Server, phone: Callable[..., Phone], new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    """The loop's last step by the phone: a handled case's 核查 (the centre here has 反馈审核 and 派发核查),
    sent to the supervisor from the desk, passed on the phone with a photo: the case goes to 待结案."""
    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    token = p.page.evaluate("localStorage.getItem('gw.m.token')")
    import socketio

    handset = socketio.Client()
    handset.connect(server.base, namespaces=["/device"], auth={"token": token}, transports=["websocket"])
    try:
        rep = {"id": f"chk-{uuid.uuid4().hex[:8]}", "kind": "event", "class_code": EVENT.code, "lon": sup.lon,
               "lat": sup.lat, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        case_id = handset.call("report", rep, namespace="/device", timeout=60)["cases"][rep["id"]]
    finally:
        handset.disconnect()
    users = {"acceptor-m-test": "acceptor", "shift-m-test": "shift_leader", "dispatch-m-test": "dispatcher"}
    for user, role in users.items():
        ensure_user(server, user, role)
    dept = f"dept-m-{DEPARTMENT}"
    ensure_user(server, dept, "department", "--department", DEPARTMENT)
    desk = {u: login_http(server.base, u, PASSWORD) for u in [*users, dept]}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("acceptor-m-test", {"action": "accept"}),
        ("shift-m-test", {"action": "file"}),
        ("dispatch-m-test", {"action": "dispatch", "data": {"department": DEPARTMENT}}),
        (dept, {"action": "feedback", "opinion": "已处理"}),
        ("dispatch-m-test", {"action": "review", "data": {"passed": True}}),
        ("acceptor-m-test", {"action": "send_check", "data": {"assignee": sup.person}}),
    ]
    for user, body in steps:
        r = desk[user].post(f"{server.base}/api/v1/commands", json={**body, "case_id": case_id}, timeout=60)
        assert r.status_code == 200 and r.json()["accepted"], (body, r.text)
    page = p.page
    page.click("button[data-go=tasks]")
    card = f"button[data-case='{case_id}']"
    page.wait_for_selector(card, timeout=WAIT * 1000)
    assert "核查" in page.inner_text(card)
    page.click(card)
    photo = tmp_path / "check.jpg"
    photo.write_bytes(jpeg(1000, 750, 120))
    page.set_input_files("input[data-photo=task]", str(photo))
    assert page.inner_text("button[data-answer=true]") == "通过"
    page.click("button[data-answer=true]")
    wait_until(
        lambda: db_rows(server, "SELECT 1 FROM cases WHERE id = ? AND status = 'to_close'", case_id),
        "the case in 待结案 after the check passed",
    )
    done = db_rows(server, "SELECT result, acked_at FROM tasks WHERE case_id = ? AND kind = 'check'", case_id)
    assert done[0][0] == 1 and done[0][1] is not None


def test_the_phone_names_the_nearest_house_number(
    server: Server, new_supervisor: Callable[[], Supervisor], tmp_path: Path
) -> None:
    """Reverse geocoding on the handset (issue 17): a 门牌 imported by the centre is named under the
    map; only a paired phone may ask, and a point that is not one is refused by name."""
    sup = new_supervisor()
    house = f"手机测试胡同{uuid.uuid4().int % 900 + 100}号"
    csv_file = tmp_path / "doors.csv"
    csv_file.write_text(f"address,lon,lat\n{house},{sup.lon + 0.00003:.7f},{sup.lat:.7f}\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "import", "addresses", str(csv_file), "--crs", "wgs84"],
        cwd=server.cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    url = f"{server.base}/m/api/reverse?lon={sup.lon:.7f}&lat={sup.lat:.7f}"
    assert requests.get(url, timeout=30).status_code == 401
    token = requests.post(
        f"{server.base}/m/api/pair", json={"person": sup.person, "password": PASSWORD}, timeout=120
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}

    def named() -> dict[str, Any] | None:  # the server reloads its gazetteer within seconds of an import
        body = requests.get(url, headers=auth, timeout=30).json()
        return body if body["address"] and body["address"]["address"] == house else None

    body = wait_until(named, "the imported 门牌 named by the reverse lookup")
    assert body["distance_m"] < 10
    bad = requests.get(f"{server.base}/m/api/reverse?lon=x&lat=1", headers=auth, timeout=30)
    assert bad.status_code == 400 and bad.json()["reason"] == "wrong_type"
