"""The desk over real HTTP: login and guard, deep links and 404s, the command path, the case page.

A real server on a real port (Werkzeug, threaded) composed as ``app.py run`` composes it — web app,
``/api/v1``, live core with the desk's session check — on the built-in district, on SQLite and on
PostgreSQL. Pages are rendered through Dash's own ``/_dash-update-component`` request, as the
browser asks for them.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import Engine
from werkzeug.serving import BaseWSGIServer, make_server

import app as cli
from dashboard import ids
from dashboard.auth import SESSION_COOKIE, LoginLimiter, hash_id, safe_next
from dashboard.deskdata import segments
from domain.errors import RosterError
from domain.lifecycle import Policy
from domain.supervisor import distance_m
from feeds.sockets import KIOSK_COOKIE
from gridwall.runtime import Runtime, Seams, build
from gridwall.settings import Settings
from gridwall.web import WebApp
from store.accounts import provision_embedded
from store.db import session_factory
from store.models import Case, CaseEventRow, Grid, GridStaff, Task, WebSession
from store.roster import import_roster
from tests.desk_login import add_desk_user, login_form, login_http
from tests.live_server import KIOSK_SECRET, Peer, QuietHandler, Spot, free_port, provisioned_spots

PASSWORD = "desk-password-0123"
PEOPLE = {  # person id → (role, department)
    "boss": ("leader", None),
    "acc": ("acceptor", None),
    "lead": ("shift_leader", None),
    "disp": ("dispatcher", None),
    "dept10": ("department", "10"),
    "sub9101": ("department", "9101"),  # 东华门街道分中心 (二级派遣)
    "unit910101": ("department", "910101"),  # its 城管执法队
    "sup-login": ("supervisor", None),
}


@dataclass
class DeskServer:
    """A running server with the desk wired as ``app.py run`` wires it."""

    url: str
    engine: Engine
    web: WebApp
    core: Runtime
    http: BaseWSGIServer
    thread: threading.Thread
    spots: list[Spot]
    peers: list[Peer]

    def stop(self) -> None:
        """Stop clients, server and core."""
        for p in self.peers:
            p.close()
        self.http.shutdown()
        self.thread.join(timeout=10)
        self.core.stop()


@pytest.fixture(scope="module")
def srv(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskServer]:
    made = provision_embedded(city_engine, kiosk_secret=KIOSK_SECRET)
    for pid, (role, dept) in PEOPLE.items():
        add_desk_user(city_engine, pid, PASSWORD, role, department=dept)
    seams = Seams(
        engine=city_engine, patrol_every=timedelta(0), media_dir=tmp_path_factory.mktemp("media"),
        secret_key="desk-tests",
    )  # fmt: skip
    core = build(Settings(Path("."), str(city_engine.url), interval=0.2), "embedded", seams).start()
    web = core.web
    port = free_port()
    http = make_server("127.0.0.1", port, web.server, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    server = DeskServer(
        f"http://127.0.0.1:{port}",
        city_engine,
        web,
        core,
        http,
        thread,
        provisioned_spots(city_engine, core.pipeline.index, dict(made.devices)),
        [],
    )
    yield server
    server.stop()


def dash_page(client: requests.Session, url: str, path: str, search: str = "") -> requests.Response:
    """Ask the router for a page as the browser does."""
    body: dict[str, Any] = {
        "output": f"{ids.PAGE}.children",
        "outputs": {"id": ids.PAGE, "property": "children"},
        "inputs": [
            {"id": ids.LOCATION, "property": "pathname", "value": path},
            {"id": ids.LOCATION, "property": "search", "value": search},
        ],
        "changedPropIds": [f"{ids.LOCATION}.pathname"],
        "state": [],
    }
    return client.post(f"{url}/_dash-update-component", json=body, timeout=30)


def texts(tree: Any) -> list[str]:
    """Every string in a Dash response tree, in order."""
    out: list[str] = []
    if isinstance(tree, str):
        out.append(tree)
    elif isinstance(tree, list):
        for x in tree:
            out.extend(texts(x))
    elif isinstance(tree, dict):
        for k, v in tree.items():
            if k in ("children", "props", "response") or isinstance(v, dict | list):
                out.extend(texts(v))
    return out


def find(tree: Any, component_id: str) -> Any:
    """The props of the component with an id in a Dash response tree (None when absent)."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and props.get("id") == component_id:
            return props
        for v in tree.values():
            found = find(v, component_id)
            if found is not None:
                return found
    elif isinstance(tree, list):
        for x in tree:
            found = find(x, component_id)
            if found is not None:
                return found
    return None


def some_grid(engine: Engine) -> str:
    with session_factory(engine)() as s:
        return str(s.scalar(select(Grid.code).where(Grid.active).order_by(Grid.code).limit(1)))


# -- guard -----------------------------------------------------------------------------------------------


def test_no_session_redirects_pages_and_refuses_xhr_with_401(srv: DeskServer) -> None:
    grid = some_grid(srv.engine)
    for path in ("/desk", f"/grid/{grid}", "/street/110101001", "/case/R1", "/evaluation"):
        r = requests.get(srv.url + path + "?lang=en", allow_redirects=False, timeout=10)
        assert r.status_code == 302, path
        assert r.headers["Location"] == f"/login?next={path}%3Flang%3Den"
    r = requests.get(f"{srv.url}/grid/{grid}", headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "login_required"
    r = requests.post(f"{srv.url}/_dash-update-component", json={}, timeout=10)  # anonymous
    assert r.status_code == 401
    assert requests.get(f"{srv.url}/_dash-layout", timeout=10).status_code == 401
    r = requests.post(f"{srv.url}/api/v1/commands", json={"action": "urge", "case_id": "R1"}, timeout=10)
    assert r.status_code == 401


def test_a_malformed_dash_request_is_refused_by_name(srv: DeskServer) -> None:
    """Issue 20 item 10: a malformed /_dash-update-component body from a logged-in user answered 500."""
    client = login_http(srv.url, "boss", PASSWORD)
    bodies: list[Any] = [
        {}, [], "x", {"output": "nope.children", "inputs": []},
        {"output": f"{ids.PAGE}.children", "inputs": "x"},
        {"output": f"{ids.PAGE}.children", "inputs": [1, 2]},
        {"output": f"{ids.PAGE}.children", "inputs": [{"value": "/desk"}]},
    ]  # fmt: skip
    # found by bench fuzz (issue 20): the right callback with slots Dash indexes or values the callback
    # reads as its renderer writes them — each a 500 and a traceback before
    slot: list[dict[str, Any]] = [
        {"id": ids.LOCATION, "property": "pathname", "value": "/desk"},
        {"id": ids.LOCATION, "property": "search", "value": ""},
    ]
    page: dict[str, Any] = {
        "output": f"{ids.PAGE}.children",
        "outputs": {"id": ids.PAGE, "property": "children"},
        "inputs": [
            {"id": ids.LOCATION, "property": "pathname", "value": "/desk"},
            {"id": ids.LOCATION, "property": "search", "value": ""},
        ],
        "changedPropIds": [f"{ids.LOCATION}.pathname"],
        "state": [],
    }
    bodies += [
        {**page, "outputs": {"property": "children"}},  # KeyError 'id' in Dash
        {**page, "outputs": "x"},
        {**page, "inputs": slot[:1]},  # IndexError in Dash
        {**page, "changedPropIds": 3},  # TypeError in Dash
        {**page, "inputs": [{**slot[0], "value": {"a": 1}}, slot[1]]},  # AttributeError in the router
        {**page, "inputs": [slot[0], {**slot[1], "value": 1.5}]},
        {**page, "inputs": [{**slot[0], "value": 2**70}, slot[1]]},
        {**page, "inputs": [slot[1], slot[0]]},  # the slots swapped
        {**page, "state": [{"id": ids.LOCATION, "property": "search", "value": ""}]},
        {
            "output": f"{ids.DESK_NAV}.href",
            "outputs": {"id": ids.DESK_NAV, "property": "href"},
            "inputs": [{"id": ids.DESK_MAP, "property": "clickData", "value": {"points": "xy"}}],
            "state": [{"id": ids.LOCATION, "property": "search", "value": ""}],
            "changedPropIds": [f"{ids.DESK_MAP}.clickData"],
        },
    ]
    for body in bodies:
        r = client.post(f"{srv.url}/_dash-update-component", json=body, timeout=30)
        assert r.status_code == 400 and r.json()["error"] == "malformed", (body, r.status_code, r.text[:200])
    deep = '{"output": "' + f"{ids.PAGE}.children" + '", "inputs": ' + "[" * 5000 + "]" * 5000 + "}"
    json_type = {"Content-Type": "application/json"}  # RecursionError in Flask's JSON decoder before
    r = client.post(f"{srv.url}/_dash-update-component", data=deep, headers=json_type, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "malformed", (r.status_code, r.text[:200])
    assert dash_page(client, srv.url, "/desk").status_code == 200  # a real one still works


def test_every_answer_forbids_framing_and_referrers(srv: DeskServer) -> None:
    """Issue 20 item 10: desk pages had no X-Frame-Options / CSP; the wall's ?token= URL could leave as
    a Referer."""
    from gridwall.web import SECURITY_HEADERS

    for path in ("/login", f"/wall?token={KIOSK_SECRET}", "/desk", "/healthz", "/api/v1/openapi.json"):
        r = requests.get(srv.url + path, allow_redirects=False, timeout=10)
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (path, name, r.headers.get(name))
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


def test_a_wall_token_renders_the_wall_but_no_desk_page(srv: DeskServer) -> None:
    wall = requests.Session()
    wall.cookies.set(KIOSK_COOKIE, KIOSK_SECRET)
    ok = dash_page(wall, srv.url, "/wall")
    assert ok.status_code == 200
    assert find(ok.json(), ids.WALL_MAP) is not None
    for path in ("/desk", "/street/110101001", "/evaluation"):
        assert dash_page(wall, srv.url, path).status_code == 401, path
    assert wall.get(f"{srv.url}/desk", allow_redirects=False, timeout=10).status_code == 302
    bogus = requests.Session()
    bogus.cookies.set(KIOSK_COOKIE, "not-a-kiosk-token-at-all-000000")
    assert dash_page(bogus, srv.url, "/wall").status_code == 401


def test_a_wall_token_calls_only_the_walls_callback(srv: DeskServer) -> None:
    """Issue 20 item 1: the guard let a kiosk call any callback whose inputs held a ``/wall`` pathname,
    e.g. the evaluation page's (every supervisor's scores). Now only the router rendering ``/wall``."""
    wall = requests.Session()
    wall.cookies.set(KIOSK_COOKIE, KIOSK_SECRET)
    evaluation: dict[str, Any] = {
        "output": f"..{ids.EVAL_BODY}.children...{ids.EVAL_PERIOD}.value..",
        "outputs": [
            {"id": ids.EVAL_BODY, "property": "children"},
            {"id": ids.EVAL_PERIOD, "property": "value"},
        ],
        "inputs": [{"id": ids.LOCATION, "property": "pathname", "value": "/wall"}],
        "changedPropIds": [f"{ids.LOCATION}.pathname"],
        "state": [],
    }
    r = wall.post(f"{srv.url}/_dash-update-component", json=evaluation, timeout=30)
    assert r.status_code == 401, r.text[:300]
    router_elsewhere: dict[str, Any] = {  # the router's output, but its pathname read from another component
        "output": f"{ids.PAGE}.children", "outputs": {"id": ids.PAGE, "property": "children"},
        "inputs": [{"id": "gw-other", "property": "pathname", "value": "/wall"},
                   {"id": ids.LOCATION, "property": "pathname", "value": "/evaluation"}],
        "changedPropIds": [], "state": [],
    }  # fmt: skip
    r = wall.post(f"{srv.url}/_dash-update-component", json=router_elsewhere, timeout=30)
    assert r.status_code == 401
    assert dash_page(wall, srv.url, "/wall").status_code == 200


# -- login ---------------------------------------------------------------------------------------------------


def _post_login(url: str, user: str, password: str, nxt: str = "/desk") -> requests.Response:
    client = requests.Session()
    token = login_form(client, url)
    return client.post(
        f"{url}/login?lang=en",
        data={"user": user, "password": password, "csrf": token, "next": nxt},
        allow_redirects=False,
        timeout=10,
    )


def _error(r: requests.Response) -> str:
    m = re.search(r'class="gw-login-error"[^>]*>([^<]*)<', r.text)
    assert m is not None, r.text[:500]
    return m.group(1)


def test_wrong_password_and_unknown_user_get_the_same_answer(srv: DeskServer) -> None:
    wrong = _post_login(srv.url, "boss", "not-the-password")
    unknown = _post_login(srv.url, "nobody-such", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert _error(wrong) == _error(unknown) == "Wrong user name or password"
    assert SESSION_COOKIE not in wrong.cookies and SESSION_COOKIE not in unknown.cookies
    # a supervisor's right password opens no desk
    assert _post_login(srv.url, "sup-login", PASSWORD).status_code == 403
    # no form token: refused before the password is looked at
    r = requests.post(
        f"{srv.url}/login", data={"user": "boss", "password": PASSWORD}, allow_redirects=False, timeout=10
    )
    assert r.status_code == 400


def test_login_is_rate_limited_per_user(srv: DeskServer) -> None:
    add_desk_user(srv.engine, "limited", PASSWORD, "leader")
    for _ in range(LoginLimiter().per_user):
        assert _post_login(srv.url, "limited", "bad-guess").status_code == 401
    r = _post_login(srv.url, "limited", PASSWORD)  # even the right password, from here, for a while
    assert r.status_code == 429 and "Too many failed logins for this user" in _error(r)
    assert 0 < int(r.headers["Retry-After"]) <= LoginLimiter().first_wait_s


def test_behind_a_trusted_proxy_the_limiter_tells_clients_apart(srv: DeskServer) -> None:
    """Issue 20 item 4: behind the shipped nginx every user shared the proxy's address, so twenty
    failures from anyone held everyone. With ``--trusted-proxies 1`` the address is the client's from
    X-Forwarded-For; without it, a client cannot pick its address with that header."""
    from gridwall.web import create_web_app
    from tests.desk_login import CSRF_RE

    add_desk_user(srv.engine, "proxied", PASSWORD, "leader")

    def attempt(web: Any, client_ip: str, password: str) -> int:
        client = web.server.test_client()
        headers = {"X-Forwarded-For": client_ip, "X-Forwarded-Proto": "https"}
        page = client.get("/login", headers=headers)
        token = CSRF_RE.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        form = {"user": "proxied", "password": password, "csrf": token, "next": "/desk"}
        r = client.post("/login", headers=headers, data=form)
        if r.status_code == 303:  # behind TLS the session cookie is Secure
            cookies = [c for c in r.headers.getlist("Set-Cookie") if c.startswith(f"{SESSION_COOKIE}=")]
            assert len(cookies) == 1 and "Secure" in cookies[0], cookies
        return r.status_code

    proxied = create_web_app(srv.engine, secret_key="proxy-tests", trusted_proxies=1)
    for _ in range(LoginLimiter().per_user):
        assert attempt(proxied, "10.0.0.1", "bad-guess") == 401
    assert attempt(proxied, "10.0.0.1", PASSWORD) == 429  # the guesser waits
    assert attempt(proxied, "10.0.0.2", PASSWORD) == 303  # the right password from elsewhere gets in
    direct = create_web_app(srv.engine, secret_key="direct-tests")  # no proxy: the header is not believed
    for _ in range(LoginLimiter().per_user):
        assert attempt(direct, "10.0.0.3", "bad-guess") == 401
    assert attempt(direct, "10.0.0.4", PASSWORD) == 429  # same connection address: held


def test_limiter_slows_the_guesser_not_the_right_password_elsewhere_and_safe_next() -> None:
    """Issue 20 item 4: five wrong passwords locked a name (admin included) for 15 minutes everywhere;
    twenty from one address locked every user there. Now waits double per failure, per name and
    address; the same name from another address is not held back."""
    now = [0.0]
    lim = LoginLimiter(per_user=2, per_ip=3, first_wait_s=10, max_wait_s=40, window_s=600,
                       clock=lambda: now[0])  # fmt: skip
    lim.failed("a", "ip1")
    assert lim.refused("a", "ip1") is None
    lim.failed("A", "ip1")  # names are case-insensitive
    assert lim.refused("a", "ip1") == ("user", 10)
    assert lim.refused("a", "ip2") is None  # the right password from another place still works
    lim.failed("b", "ip1")
    assert lim.refused("c", "ip1") == ("address", 10)
    now[0] = 10.0
    assert lim.refused("a", "ip1") is None and lim.refused("c", "ip1") is None  # the wait is over
    lim.failed("a", "ip1")  # one more failure: the wait doubles, then stops at max_wait_s
    assert lim.refused("a", "ip1") == ("user", 20)
    for _ in range(5):
        lim.failed("a", "ip1")
    assert lim.refused("a", "ip1") == ("user", 40)
    lim.succeeded("a", "ip1")  # the name's failures from here are forgotten; the address's are not
    assert lim.refused("a", "ip1") == ("address", 40)
    assert safe_next("/grid/1?lang=en") == "/grid/1?lang=en"
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil", "desk", None, "/a\nb"):
        assert safe_next(bad) == "/desk"


def test_session_cookie_is_a_random_id_and_logout_ends_it(srv: DeskServer) -> None:
    r = _post_login(srv.url, "boss", PASSWORD, nxt=f"/grid/{some_grid(srv.engine)}")
    assert r.status_code == 303 and r.headers["Location"].startswith("/grid/")
    raw = r.headers["Set-Cookie"]
    assert "HttpOnly" in raw and "SameSite=Lax" in raw
    value = str(r.cookies[SESSION_COOKIE])
    assert "boss" not in value and len(value) >= 40
    with srv.engine.connect() as conn:
        stored = conn.scalar(select(WebSession.person_id).where(WebSession.id == hash_id(value)))
        assert stored == "boss"
        assert conn.scalar(select(WebSession.id).where(WebSession.id == value)) is None  # only the hash
    client = login_http(srv.url, "boss", PASSWORD)
    assert client.get(f"{srv.url}/desk", timeout=10).status_code == 200
    me = client.get(f"{srv.url}/auth/session", timeout=10).json()
    assert me["person_id"] == "boss" and me["role"] == "leader"
    old = str(client.cookies[SESSION_COOKIE])
    assert client.post(f"{srv.url}/logout", data={"csrf": "wrong"}, allow_redirects=False).status_code == 403
    out = client.post(f"{srv.url}/logout", data={"csrf": me["csrf"]}, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    replay = requests.get(f"{srv.url}/desk", cookies={SESSION_COOKIE: old}, allow_redirects=False, timeout=10)
    assert replay.status_code == 302  # the old cookie no longer opens the desk


# -- pages ------------------------------------------------------------------------------------------


def test_deep_links_answer_404_for_unknown_codes_and_render_known_ones(srv: DeskServer) -> None:
    client = login_http(srv.url, "boss", PASSWORD)
    grid = some_grid(srv.engine)
    for path in (
        "/street/110101999",
        "/community/110101999999",
        "/grid/110101999999999",
        "/case/R999",
        f"/grid/{grid}/more",
    ):
        assert client.get(srv.url + path, timeout=10).status_code == 404, path
    h = srv.web.desk.hierarchy() if srv.web.desk else None
    assert h is not None
    community = h.grids[grid].community
    ov = srv.web.cache.current()
    assert ov is not None
    streets = {s.code: s.name for s in ov.streets}
    for path, crumb in (
        (f"/street/{grid[:9]}", None),
        (f"/community/{community}", h.communities[community].name),
        (f"/grid/{grid}", grid),
    ):
        assert client.get(srv.url + path, timeout=10).status_code == 200
        page = dash_page(client, srv.url, path)
        assert page.status_code == 200
        crumbs = texts(find(page.json(), ids.DESK_CRUMBS))
        assert crumbs[-1] == (crumb or streets[grid[:9]]), (path, crumbs)


def test_the_district_map_marks_the_overdue_cases_and_a_street_map_all_open_ones(srv: DeskServer) -> None:
    """Every open case of a district covered its map (600 dots in the simulation) so that no grid could be
    clicked between them: the district's map marks the overdue ones, a street's map every open case."""
    client = login_http(srv.url, "boss", PASSWORD)

    def shown(path: str) -> tuple[dict[str, Any], int, int]:
        tree = dash_page(client, srv.url, path).json()
        fig = find(tree, ids.DESK_MAP)["figure"]
        tiles = {k: texts(find(tree, f"{ids.DESK_KPIS}-{k}"))[0] for k in ("open", "overdue")}
        return fig["data"][-1], int(tiles["open"].replace(",", "")), int(tiles["overdue"].replace(",", ""))

    trace, n_open, n_late = shown("/desk")
    assert trace["name"] == "超期案件"
    assert len(trace["customdata"]) == n_late  # the simulation's cases all lie in grids
    street = some_grid(srv.engine)[:9]
    trace, n_open, _ = shown(f"/street/{street}")
    assert trace["name"] == "在办案件" and len(trace["customdata"]) == n_open


def test_every_desk_page_has_the_role_s_menu_and_title(srv: DeskServer) -> None:
    """Issue 19 item 7: the header offers the work list, the evaluation and who-was-where on every page
    (they could be reached only by typing their URL), and the desk is named for the role."""
    grid = some_grid(srv.engine)
    # a leader also has the shift handover (issue 21); everyone the recurring 部件 (issue 18)
    roles: tuple[tuple[str, str, str, list[str]], ...] = (
        ("boss", "领导桌面", "待办", ["交接班"]),
        ("disp", "业务工作台", "我的待办", []),
    )
    for user, title, queue, extra in roles:
        client = login_http(srv.url, user, PASSWORD)
        for path in ("/desk", f"/grid/{grid}", "/evaluation", "/desk/when", "/desk/queue/acceptor"):
            page = dash_page(client, srv.url, path)
            assert page.status_code == 200, (user, path)
            menu = texts(find(page.json(), ids.DESK_MENU))
            expected = ["全区概览", queue, "督办单", *extra, "综合评价", "监督员位置", "重复发案部件"]
            assert menu == expected, (user, path, menu)
        district = texts(dash_page(client, srv.url, "/desk").json())
        assert any(s.endswith(f"· {title}") for s in district), (user, district[:10])
        lost = dash_page(client, srv.url, "/desk/nowhere").json()
        assert texts(find(lost, ids.DESK_BACK)) == ["返回首页"], lost


def test_grid_page_shows_the_roster_imported_from_csv(srv: DeskServer, tmp_path: Path) -> None:
    grid = some_grid(srv.engine)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"grid,duty,name,phone\n{grid},网格管理员,王力,1380000\n110101999999999,manager,李,1\n"
        f"{grid},cook,赵,2\n{grid},police,,3\n",
        encoding="utf-8",
    )
    with pytest.raises(RosterError) as err:
        import_roster(srv.engine, bad)
    msg = str(err.value)
    assert "3 bad rows" in msg and "line 3: unknown_grid" in msg and "line 4: unknown_duty" in msg
    assert "line 5: bad_name" in msg
    with srv.engine.connect() as conn:
        assert conn.scalar(select(GridStaff.id).where(GridStaff.grid_code == grid)) is None  # nothing written
    client = login_http(srv.url, "boss", PASSWORD)
    before = dash_page(client, srv.url, f"/grid/{grid}").json()
    assert "python app.py import roster" in " ".join(texts(find(before, ids.GRID_ROSTER)))
    good = tmp_path / "roster.csv"
    good.write_text(
        f"grid,duty,name,phone\n{grid},网格管理员,王力,13800000000\n{grid},police,李警官,110\n",
        encoding="utf-8",
    )
    url = str(srv.engine.url.render_as_string(hide_password=False))
    assert cli.main(["import", "roster", str(good), "--db", url]) == 0
    after = texts(find(dash_page(client, srv.url, f"/grid/{grid}").json(), ids.GRID_ROSTER))
    assert "王力" in after and "李警官" in after and "网格管理员" in after and "网格警员" in after


# -- commands and the case page -------------------------------------------------------------------


def test_one_command_path_acks_refuses_by_rule_and_is_idempotent(srv: DeskServer) -> None:
    spot = srv.spots[0]
    case_id, _ = _report(srv, spot)
    boss = login_http(srv.url, "boss", PASSWORD)
    key = f"urge-{uuid.uuid4().hex[:8]}"
    body = {"action": "urge", "case_id": case_id, "opinion": "请尽快", "id": key}
    first = boss.post(f"{srv.url}/api/v1/commands", json=body, timeout=15)
    assert first.status_code == 200 and first.json()["accepted"] == [key]
    again = boss.post(f"{srv.url}/api/v1/commands", json=body, timeout=15)
    assert again.status_code == 200 and again.json()["duplicates"] == [key]
    other = boss.post(f"{srv.url}/api/v1/commands", json={**body, "opinion": "另一条"}, timeout=15)
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_conflict"
    closing = boss.post(
        f"{srv.url}/api/v1/commands", json={"action": "close", "case_id": case_id}, timeout=15
    )
    assert closing.status_code == 403 and closing.json()["error"] == "wrong_role"
    nothing = boss.post(f"{srv.url}/api/v1/commands", json={"action": "fly", "case_id": case_id}, timeout=15)
    assert nothing.status_code == 400 and nothing.json()["error"] == "malformed"
    no_csrf = requests.post(f"{srv.url}/api/v1/commands", json=body, cookies=boss.cookies, timeout=15)
    assert no_csrf.status_code == 403 and no_csrf.json()["error"] == "csrf"
    with srv.engine.connect() as conn:
        urges = conn.execute(
            select(CaseEventRow.actor, CaseEventRow.role).where(
                CaseEventRow.case_id == case_id, CaseEventRow.action == "urge"
            )
        ).all()
    assert [tuple(u) for u in urges] == [("boss", "leader")]


def _report(srv: DeskServer, spot: Spot, media: list[str] | None = None, **more: Any) -> tuple[str, Peer]:
    """A supervisor's report over ``/device`` (with photo references and ``more`` fields); the new case
    id and the handset."""
    peer = Peer(srv.url, "/device", spot.secret)
    srv.peers.append(peer)
    rid = f"rep-{uuid.uuid4().hex[:8]}"
    ack = peer.call(
        "report",
        {
            "id": rid,
            "at": datetime.now(UTC).isoformat(),
            "kind": "component",
            "class_code": "0101",
            "condition_code": "03",
            "lon": spot.lon,
            "lat": spot.lat,
            "description": "井盖弹跳",
            "source": "supervisor",
            **({"media": media} if media else {}),
            **more,
        },
    )
    assert ack["accepted"] == [rid], ack
    return str(ack["cases"][rid]), peer


def test_a_replayed_case_timeline_lists_all_its_events(srv: DeskServer) -> None:
    spot = srv.spots[1]
    case_id, peer = _report(srv, spot)
    clients = {pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "disp", "boss", "dept10")}
    steps = [
        ("acc", "accept", ""),
        ("lead", "file", ""),
        ("disp", "dispatch", "派往供水集团"),
        ("boss", "urge", "今天处理"),
        ("dept10", "handle", "已更换井盖"),
    ]
    for pid, action, opinion in steps:
        r = clients[pid].post(
            f"{srv.url}/api/v1/commands",
            json={"action": action, "case_id": case_id, "opinion": opinion},
            timeout=15,
        )
        assert r.status_code == 200 and r.json()["accepted"], (action, r.text)
    # the reporting supervisor is the grid's: the 核查 task goes to their handset, the result comes back
    ack = peer.call(
        "task_result",
        {
            "id": f"chk-{case_id}",
            "case_id": case_id,
            "task": "check",
            "result": True,
            "at": datetime.now(UTC).isoformat(),
            "opinion": "已修复",
        },
    )
    assert ack["accepted"], ack
    r = clients["lead"].post(
        f"{srv.url}/api/v1/commands", json={"action": "close", "case_id": case_id}, timeout=15
    )
    assert r.status_code == 200 and r.json()["accepted"], r.text
    with srv.engine.connect() as conn:
        events = conn.execute(
            select(CaseEventRow.seq, CaseEventRow.action, CaseEventRow.actor)
            .where(CaseEventRow.case_id == case_id)
            .order_by(CaseEventRow.seq)
        ).all()
    assert [e.action for e in events] == [
        "report",
        "accept",
        "file",
        "dispatch",
        "urge",
        "feedback",
        "check",
        "close",
    ]
    page = dash_page(clients["boss"], srv.url, f"/case/{case_id}", "?lang=en")
    assert page.status_code == 200
    timeline = find(page.json(), ids.CASE_TIMELINE)
    rows = timeline["children"][1]["props"]["children"]
    assert len(rows) == len(events)
    for row, ev in zip(rows, events, strict=True):
        cells = texts(row)
        assert ev.actor in cells, (ev, cells)
    all_text = " ".join(texts(timeline))
    for word in ("reported", "accepted", "filed", "dispatched", "urged", "handled", "checked", "closed"):
        assert word in all_text
    for opinion in ("派往供水集团", "今天处理", "已更换井盖", "已修复"):
        assert opinion in all_text
    gantt = find(page.json(), ids.CASE_GANTT)
    bars = gantt["figure"]["data"][0]
    assert len(bars["y"]) == 6  # reported, to file, to dispatch, handling, to check, to close
    assert "Closed" in " ".join(texts(page.json()))


# -- actions and work lists (issue 8 items 5–6) -----------------------------------------------------------


def _components(tree: Any) -> Iterator[dict[str, Any]]:
    """Every component of a Dash response tree, depth first."""
    if isinstance(tree, dict):
        if isinstance(tree.get("props"), dict):
            yield tree
        for v in tree.values():
            yield from _components(v)
    elif isinstance(tree, list):
        for x in tree:
            yield from _components(x)


def _actions(tree: Any) -> list[str]:
    """The ``data-gw-action`` of every action button in a Dash response tree, in order."""
    return [c["props"]["data-gw-action"] for c in _components(tree) if "data-gw-action" in c["props"]]


def _command(client: requests.Session, srv: DeskServer, **body: Any) -> requests.Response:
    return client.post(f"{srv.url}/api/v1/commands", json=body, timeout=15)


def _case_page(client: requests.Session, srv: DeskServer, case_id: str) -> Any:
    page = dash_page(client, srv.url, f"/case/{case_id}", "?lang=en")
    assert page.status_code == 200
    return page.json()


def test_the_case_page_offers_what_the_role_may_do_at_this_stage(srv: DeskServer) -> None:
    case_id, _ = _report(srv, srv.spots[2])
    who = {pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "disp", "boss")}
    assert _actions(_case_page(who["acc"], srv, case_id)) == ["accept"]
    assert _actions(_case_page(who["boss"], srv, case_id)) == ["urge"]
    assert _actions(_case_page(who["lead"], srv, case_id)) == ["void", "urge"]
    assert _command(who["acc"], srv, action="accept", case_id=case_id).json()["accepted"]
    # a supervisor's own report needs no 核实: 待立案, the shift leader's turn (file, or void with an opinion)
    assert _actions(_case_page(who["lead"], srv, case_id)) == ["file", "void", "urge"]
    assert _actions(_case_page(who["acc"], srv, case_id)) == []
    void = _command(who["lead"], srv, action="void", case_id=case_id)  # no opinion: refused by its rule
    assert void.status_code == 422 and void.json()["error"] == "missing_opinion", void.text
    assert _command(who["lead"], srv, action="file", case_id=case_id).json()["accepted"]
    assert _actions(_case_page(who["lead"], srv, case_id)) == ["void", "urge"]  # 立案后作废, before dispatch
    page = _case_page(who["disp"], srv, case_id)
    assert _actions(page) == ["dispatch", "urge"]
    # the dispatch form offers the class's own department first
    options = [
        c["props"]["value"] for c in _components(find(page, ids.CASE_ACTIONS)) if c["type"] == "Option"
    ]
    assert options and options[0] == "10", options
    assert _command(who["disp"], srv, action="dispatch", case_id=case_id).json()["accepted"]
    # dispatched: no 作废 any more; the shift leader may close it as an error (差错结案, its own button)
    buttons = [
        c["props"]
        for c in _components(_case_page(who["lead"], srv, case_id))
        if "data-gw-action" in c["props"]
    ]
    assert [(b["data-gw-action"], b.get("data-gw-data")) for b in buttons] == [
        ("urge", None), ("close", '{"error": true}'),
    ]  # fmt: skip
    assert buttons[1]["children"] == "Close as an error"
    dept = login_http(srv.url, "dept10", PASSWORD)
    assert _actions(_case_page(dept, srv, case_id)) == [
        "feedback", "request_extension", "request_suspension", "request_return",
    ]  # fmt: skip
    asked = _command(dept, srv, action="extend", case_id=case_id, opinion="材料未到", extra="2工作日")
    assert asked.json()["accepted"], asked.text
    page = _case_page(who["disp"], srv, case_id)  # a pending request: the dispatcher decides it
    assert _actions(page) == ["approve", "reject", "urge"]
    assert any("dept10" in x and "2工作日" in x for x in texts(find(page, ids.CASE_ACTIONS)))


def _photo(srv: DeskServer, spot: Spot, shade: int, kind: str) -> str:
    """A JPEG uploaded by the spot's handset as ``kind``; its media reference."""
    img = io.BytesIO()
    Image.new("RGB", (32, 32), (shade, 80, 120)).save(img, "JPEG")
    up = requests.post(
        f"{srv.url}/api/v1/media",
        files={"file": ("p.jpg", img.getvalue(), "image/jpeg")},
        data={"kind": kind},
        headers={"Authorization": f"Bearer {spot.secret}"},
        timeout=30,
    )
    assert up.status_code == 201, up.text
    return str(up.json()["ref"])


def test_a_self_handled_report_goes_from_the_acceptor_s_review_to_closing_without_a_department(
    srv: DeskServer,
) -> None:
    """自处置 over ``/device``: photos before and after; the acceptor confirms (to 待结案) or refuses the
    fix with an opinion (to 待立案); the shift leader closes; no department ever holds it."""
    spot = srv.spots[3]
    before, after = _photo(srv, spot, 10, "near"), _photo(srv, spot, 200, "after")
    peer = Peer(srv.url, "/device", spot.secret)
    srv.peers.append(peer)
    base = {"at": datetime.now(UTC).isoformat(), "kind": "component", "class_code": "0101",
            "lon": spot.lon, "lat": spot.lat, "self_handled": True}  # fmt: skip
    # without the photos after the fix: refused by name (and dead-lettered), no case
    ack = peer.call("report", {**base, "id": "self-no-after", "media": [before]})
    assert (
        ack["rejected"][0]["reason"] == "missing_field" and "handled_media" in ack["rejected"][0]["message"]
    )
    # an emergency class is always dispatched
    ack = peer.call("report", {**base, "id": "self-emerg", "kind": "event", "class_code": "0401",
                               "media": [before], "handled_media": [after]})  # fmt: skip
    assert ack["rejected"][0]["reason"] == "not_self_handleable", ack
    case_id, _ = _report(srv, spot, [before], self_handled=True, handled_media=[after])
    acc, lead = login_http(srv.url, "acc", PASSWORD), login_http(srv.url, "lead", PASSWORD)
    page = _case_page(acc, srv, case_id)
    buttons = [c["props"] for c in _components(page) if "data-gw-action" in c["props"]]
    assert [b["children"] for b in buttons] == ["Confirm the on-the-spot fix", "Refuse the fix (to filing)"]
    assert "Photos after the fix 1" in " ".join(texts(find(page, ids.CASE_TIMELINE)))
    assert _command(acc, srv, action="accept", case_id=case_id).json()["accepted"]
    assert _actions(_case_page(lead, srv, case_id)) == ["close", "urge"]
    assert _command(lead, srv, action="close", case_id=case_id).json()["accepted"]
    with session_factory(srv.engine)() as s:
        case = s.get(Case, case_id)
        assert case is not None
        assert (case.status, case.archive, case.department_code) == ("closed", "normal", None)
        assert case.state["self_handled"] is True
    # another one, refused: the refusal needs an opinion, then it is an ordinary report to file
    other, _ = _report(srv, spot, [before], self_handled=True, handled_media=[after])
    refused = _command(acc, srv, action="accept", case_id=other, self_handled=False)
    assert refused.status_code == 422 and refused.json()["error"] == "missing_opinion"
    ok = _command(acc, srv, action="accept", case_id=other, self_handled=False, opinion="照片看不出已修复")
    assert ok.json()["accepted"], ok.text
    assert _actions(_case_page(lead, srv, other)) == ["file", "void", "urge"]


def test_an_urging_order_reaches_the_department_s_list_and_case_page_and_its_reply_closes_it(
    srv: DeskServer,
) -> None:
    """督办: a leader urges a case a department holds: a 督办单 with a reply deadline, listed at
    /desk/orders (the department sees its own) and on the case page, where the department replies."""
    case_id, _ = _report(srv, srv.spots[4])
    who = {pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "disp", "boss", "dept10")}
    for pid, action in (("acc", "accept"), ("lead", "file"), ("disp", "dispatch")):
        assert _command(who[pid], srv, action=action, case_id=case_id).json()["accepted"], action
    urged = _command(who["boss"], srv, action="urge", case_id=case_id, opinion="请今天处理")
    assert urged.json()["accepted"], urged.text
    for pid in ("boss", "dept10"):
        listed = texts(
            find(dash_page(who[pid], srv.url, "/desk/orders", "?lang=en").json(), ids.ORDERS_TABLE)
        )
        assert case_id in listed and "boss" in " ".join(listed), (pid, listed)
        assert "请今天处理" in listed, (pid, listed)  # what the leader asks for, beside the order
    page = _case_page(who["dept10"], srv, case_id)
    orders = texts(find(page, ids.CASE_ORDERS))
    assert "Awaiting reply" in orders and "boss" in orders and "请今天处理" in orders, orders
    assert "urge_reply" in _actions(page)
    refused = _command(who["dept10"], srv, action="urge_reply", case_id=case_id)  # the reply is the opinion
    assert refused.status_code == 422 and refused.json()["error"] == "missing_opinion"
    replied = _command(who["dept10"], srv, action="urge_reply", case_id=case_id, opinion="已派班组，今日完成")
    assert replied.json()["accepted"], replied.text
    assert "已派班组，今日完成" in " ".join(
        texts(find(_case_page(who["boss"], srv, case_id), ids.CASE_ORDERS))
    )
    listed = find(dash_page(who["boss"], srv.url, "/desk/orders", "?lang=en").json(), ids.ORDERS_TABLE)
    assert listed is None or case_id not in texts(listed)
    again = _command(who["dept10"], srv, action="urge_reply", case_id=case_id, opinion="再次回复")
    assert again.status_code == 409 and again.json()["error"] == "no_open_order"


@contextmanager
def centre_policy(srv: DeskServer, policy: Policy) -> Iterator[None]:
    """Run the server's lifecycle with another centre policy (as ``--feedback-review`` and
    ``--acceptor-check`` set it at start), then put the old one back."""
    pipeline = srv.core.pipeline
    before = pipeline.ctx
    pipeline.ctx = replace(before, policy=policy)
    try:
        yield
    finally:
        pipeline.ctx = before


def test_the_command_centre_reviews_the_feedback_and_the_acceptor_sends_the_check_task(
    srv: DeskServer,
) -> None:
    """The two centres on the desk: the dispatcher (指挥中心) sends a 处理反馈 back with an opinion,
    then passes the next one; the acceptor (监督中心) sends the 核查 task, which goes to the grid's
    supervisor; each step is on the role's work list and case page, and in the stage strip's words."""
    both = Policy(feedback_review=True, acceptor_issues_check=True)
    with centre_policy(srv, both):
        case_id, _ = _report(srv, srv.spots[7])
        who = {pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "disp", "dept10")}
        steps = (("acc", "accept"), ("lead", "file"), ("disp", "dispatch"), ("dept10", "handle"))
        for pid, action in steps:
            done = _command(who[pid], srv, action=action, case_id=case_id, opinion="已处置")
            assert done.json()["accepted"], (action, done.text)

        def listed(role: str) -> list[str]:
            page = dash_page(who["disp" if role == "dispatcher" else "acc"], srv.url, f"/desk/queue/{role}")
            return texts(find(page.json(), ids.QUEUE_BODY))

        assert case_id in listed("dispatcher") and "审核处置反馈" in listed("dispatcher")
        page = _case_page(who["disp"], srv, case_id)
        buttons = [c["props"]["children"] for c in _components(page) if "data-gw-action" in c["props"]]
        review = ["Pass the feedback (to check)", "Send back to the department"]
        assert [b for b in buttons if b in review] == review, buttons
        assert "To review" in texts(page)
        assert "review" not in _actions(_case_page(who["acc"], srv, case_id))  # the 指挥中心's, not his
        bare = _command(who["disp"], srv, action="review", case_id=case_id, passed=False)
        assert bare.status_code == 422 and bare.json()["error"] == "missing_opinion"
        back = _command(who["disp"], srv, action="review", case_id=case_id, passed=False, opinion="照片不清")
        assert back.json()["accepted"], back.text
        assert "feedback" in _actions(_case_page(who["dept10"], srv, case_id))  # his again: 返工
        again = _command(who["dept10"], srv, action="handle", case_id=case_id, opinion="已重新处置")
        assert again.json()["accepted"]
        passed = _command(who["disp"], srv, action="review", case_id=case_id, passed=True)
        assert passed.json()["accepted"], passed.text
        with session_factory(srv.engine)() as s:
            case = s.get(Case, case_id)
            assert case is not None and case.status == "to_send_check"
            assert not s.scalars(select(Task).where(Task.case_id == case_id, Task.kind == "check")).all()
        assert case_id in listed("acceptor") and "派发核查" in listed("acceptor")
        assert "send_check" in _actions(_case_page(who["acc"], srv, case_id))
        sent = _command(who["acc"], srv, action="send_check", case_id=case_id)
        assert sent.json()["accepted"], sent.text
        with session_factory(srv.engine)() as s:
            case = s.get(Case, case_id)
            tasks = s.scalars(select(Task).where(Task.case_id == case_id, Task.kind == "check")).all()
            assert case is not None and case.status == "to_check"
            assert [t.assignee for t in tasks] == [srv.spots[7].person], "the grid's supervisor has it"
            q = select(CaseEventRow.action).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)
            events = list(s.scalars(q))
        assert events[-5:] == ["feedback", "review", "feedback", "review", "send_check"], events
        timeline = " ".join(texts(find(_case_page(who["lead"], srv, case_id), ids.CASE_TIMELINE)))
        assert "照片不清" in timeline


def test_a_street_sub_centre_dispatches_on_to_its_units_from_its_work_list(srv: DeskServer) -> None:
    """二级派遣 on the desk: the dispatcher sends a case to a 街道分中心; the sub-centre's work list has
    it; its case page offers only its own units; a unit's 回退 comes back to the sub-centre's list."""
    case_id, _ = _report(srv, srv.spots[8])
    who = {
        pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "disp", "sub9101", "unit910101")
    }
    for pid, action, more in (
        ("acc", "accept", {}),
        ("lead", "file", {}),
        ("disp", "dispatch", {"department": "9101"}),
    ):
        done = _command(who[pid], srv, action=action, case_id=case_id, **more)
        assert done.json()["accepted"], (action, done.text)

    def listed(pid: str) -> list[str]:
        page = dash_page(who[pid], srv.url, "/desk/queue/department", "?lang=en")
        return texts(find(page.json(), ids.QUEUE_BODY))

    assert case_id in listed("sub9101") and "Dispatch to a unit" in listed("sub9101")
    assert case_id not in listed("unit910101")
    page = _case_page(who["sub9101"], srv, case_id)
    assert "To dispatch to a unit" in texts(page) or "待二级派遣" in texts(page)
    assert "dispatch" in _actions(page) and "dispatch" not in _actions(_case_page(who["disp"], srv, case_id))
    options = [c["props"]["value"] for c in _components(page) if c.get("type") == "Option"]
    assert options == ["910101", "910102"], options  # its own units, nothing else
    wrong = _command(who["sub9101"], srv, action="dispatch", case_id=case_id, department="10")
    assert wrong.status_code == 422 and wrong.json()["error"] == "not_a_unit", wrong.text
    sent = _command(who["sub9101"], srv, action="dispatch", case_id=case_id, department="910101")
    assert sent.json()["accepted"], sent.text
    assert case_id in listed("unit910101") and case_id not in listed("sub9101")
    asked = _command(who["unit910101"], srv, action="return", case_id=case_id, opinion="属环卫职责")
    assert asked.json()["accepted"], asked.text
    assert case_id in listed("sub9101")  # the sub-centre decides its unit's request
    back = _command(who["sub9101"], srv, action="approve", case_id=case_id)
    assert back.json()["accepted"], back.text
    with session_factory(srv.engine)() as s:
        case = s.get(Case, case_id)
        assert case is not None and (case.status, case.department_code) == ("sub_dispatching", "9101")
    assert "Dispatch to a unit" in listed("sub9101")


def test_the_nearest_supervisor_gets_the_check_task_on_a_device_and_the_result_reaches_the_case_page(
    srv: DeskServer,
) -> None:
    spot, near, far = srv.spots[3], srv.spots[4], srv.spots[5]
    case_id, reporter = _report(srv, spot)
    who = {pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "disp", "dept10", "boss")}
    for pid, action in (("acc", "accept"), ("lead", "file"), ("disp", "dispatch"), ("dept10", "handle")):
        r = _command(who[pid], srv, action=action, case_id=case_id)
        assert r.status_code == 200 and r.json()["accepted"], (action, r.text)
    # two other supervisors' handsets come on line, each in its own area
    handsets = {}
    for s in (near, far):
        handsets[s.person] = Peer(srv.url, "/device", s.secret)
        srv.peers.append(handsets[s.person])
        fix = {
            "id": f"p-{uuid.uuid4().hex[:6]}",
            "lon": s.lon,
            "lat": s.lat,
            "at": datetime.now(UTC).isoformat(),
        }
        ack = handsets[s.person].call("position", fix)
        assert ack["accepted"], ack
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while True:  # the live state has the fixes after the next tick
        page = _case_page(who["boss"], srv, case_id)
        listed = [x for x in texts(find(page, ids.CASE_NEAREST) or {}) if x in (near.person, far.person)]
        if len(listed) == 2 or datetime.now(UTC) > deadline:
            break
    by_distance = sorted((near, far), key=lambda s: distance_m(spot.lon, spot.lat, s.lon, s.lat))
    assert listed == [s.person for s in by_distance], listed
    assert "assign" in _actions(page)
    chosen = by_distance[0]
    handset = handsets[chosen.person]
    mark = handset.mark()
    key = f"assign-{uuid.uuid4().hex[:8]}"
    r = _command(who["boss"], srv, action="assign", case_id=case_id, assignee=chosen.person, id=key)
    assert r.status_code == 200 and r.json()["accepted"] == [key], r.text
    task = handset.wait("task", lambda m: m["case_id"] == case_id, since=mark, timeout=10)
    assert (task["task"], task["supervisor"]) == ("check", chosen.person)
    again = _command(who["boss"], srv, action="assign", case_id=case_id, assignee=chosen.person, id=key)
    assert again.json()["duplicates"] == [key]  # a repeated submission is not a second task
    nobody = _command(who["boss"], srv, action="assign", case_id=case_id, assignee="sup-nobody")
    assert nobody.status_code == 422 and nobody.json()["error"] == "unknown_supervisor", nobody.text
    acc_only = _command(who["disp"], srv, action="assign", case_id=case_id, assignee=chosen.person)
    assert acc_only.status_code == 403 and acc_only.json()["error"] == "wrong_role"

    def task_states() -> list[str]:
        return [c for c in texts(find(_case_page(who["boss"], srv, case_id), ids.CASE_TASKS)) if c]

    states = task_states()
    assert "Reassigned" in " ".join(states) and "Not yet received" in states, states
    now = datetime.now(UTC).isoformat()
    # the first assignee's handset no longer holds the task
    stale = reporter.call(
        "task_ack", {"id": f"a-{case_id}-old", "case_id": case_id, "task": "check", "at": now}
    )
    assert [x["reason"] for x in stale["rejected"]] == ["unknown_task"], stale
    late = reporter.call("task_result", {"id": f"r-{case_id}-old", "case_id": case_id, "task": "check",
                                         "result": False, "opinion": "未修复", "at": now})  # fmt: skip
    assert [x["reason"] for x in late["rejected"]] == ["unknown_task"], late  # not theirs to answer now
    ack = handset.call("task_ack", {"id": f"a-{case_id}", "case_id": case_id, "task": "check", "at": now})
    assert ack["accepted"], ack
    assert any(x.startswith("Received") for x in task_states())
    result = handset.call("task_result", {"id": f"r-{case_id}", "case_id": case_id, "task": "check",
                                          "result": True, "at": datetime.now(UTC).isoformat()})  # fmt: skip
    assert result["accepted"], result
    page = _case_page(who["lead"], srv, case_id)
    assert any(x.startswith("Passed") for x in texts(find(page, ids.CASE_TASKS)))
    assert "To close" in texts(page) and _actions(page) == ["close", "urge"]
    with srv.engine.connect() as conn:
        rows = conn.execute(
            select(Task.assignee, Task.done_at.is_not(None), Task.result).where(Task.case_id == case_id)
            .order_by(Task.id)
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [(spot.person, True, None), (chosen.person, True, True)]


def test_work_lists_hold_each_roles_items_by_deadline_and_follow_the_case(srv: DeskServer) -> None:
    case_id, _ = _report(srv, srv.spots[6])
    who = {pid: login_http(srv.url, pid, PASSWORD) for pid in ("acc", "lead", "boss")}

    def listed(client: requests.Session, role: str) -> list[str]:
        page = dash_page(client, srv.url, f"/desk/queue/{role}", "?lang=en")
        assert page.status_code == 200
        return [x for x in texts(find(page.json(), ids.QUEUE_BODY)) if x.startswith("R")]

    assert case_id in listed(who["acc"], "acceptor")
    assert case_id in listed(who["boss"], "acceptor")  # a leader may look at any list
    assert case_id not in listed(who["lead"], "shift_leader")
    page = dash_page(who["acc"], srv.url, "/desk/queue/acceptor").json()
    assert "accept" in _actions(page)  # the acceptor's own list carries the quick command
    assert _actions(dash_page(who["boss"], srv.url, "/desk/queue/acceptor").json()) == []
    assert _command(who["acc"], srv, action="accept", case_id=case_id).json()["accepted"]
    assert case_id not in listed(who["acc"], "acceptor")
    assert case_id in listed(who["lead"], "shift_leader")
    assert who["acc"].get(f"{srv.url}/desk/queue/acceptor", timeout=10).status_code == 200
    for bad in ("/desk/queue/nobody", "/desk/queue/acceptor/x"):
        assert who["acc"].get(srv.url + bad, timeout=10).status_code == 404, bad


def test_the_gantt_draws_instants_at_the_city_clock() -> None:
    from dashboard.case_figures import timeline_figure
    from dashboard.deskdata import Segment

    start = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
    seg = Segment(
        "reported", "待受理", start, start + timedelta(minutes=20), start + timedelta(minutes=15), True, False
    )
    fig = timeline_figure([seg], "zh", start)
    assert fig.data[0].base[0].startswith("2026-01-05T09:00:00+08:00")
    assert fig.data[1].x[0].startswith("2026-01-05T09:15:00+08:00")


def test_segments_follow_status_changes_and_carry_deadlines() -> None:
    t0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def ev(minutes: int, frm: str | None, to: str) -> dict[str, Any]:
        return {"at": t0 + timedelta(minutes=minutes), "from": frm, "to": to}

    @dataclass
    class T:
        started_at: datetime
        deadline: datetime

    events = [
        ev(0, None, "reported"),
        ev(5, "reported", "to_file"),
        ev(9, "to_file", "to_file"),
        ev(30, "to_file", "to_dispatch"),
    ]
    timers = {
        "accept": T(t0, t0 + timedelta(minutes=3)),
        "dispatch": T(t0 + timedelta(minutes=30), t0 + timedelta(hours=2)),
    }
    segs = segments(events, timers, t0 + timedelta(hours=3))
    assert [s.status for s in segs] == ["reported", "to_file", "to_dispatch"]
    assert segs[0].overdue and segs[0].deadline == t0 + timedelta(minutes=3)
    assert segs[1].deadline is None and segs[1].end == t0 + timedelta(
        minutes=30
    )  # the urge-like event kept it
    assert segs[2].open and segs[2].overdue and segs[2].end == t0 + timedelta(hours=3)


def test_photos_show_on_grid_and_case_pages_and_only_to_a_session(srv: DeskServer) -> None:
    spot = srv.spots[2]
    img = io.BytesIO()
    Image.frombytes("RGB", (32, 32), bytes(range(256)) * 12).save(img, "JPEG")
    up = requests.post(
        f"{srv.url}/api/v1/media",
        files={"file": ("p.jpg", img.getvalue(), "image/jpeg")},
        data={"kind": "near"},
        headers={"Authorization": f"Bearer {spot.secret}"},
        timeout=30,
    )
    assert up.status_code == 201, up.text
    ref = up.json()["ref"]
    case_id, _ = _report(srv, spot, [ref])
    url = f"{srv.url}/media/{ref}"
    anon = requests.get(url, headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert anon.status_code == 302 and "/login?next=" in anon.headers["Location"]
    boss = login_http(srv.url, "boss", PASSWORD)
    got = boss.get(url, timeout=10)
    assert got.status_code == 200 and got.content == img.getvalue()
    grid = dash_page(boss, srv.url, f"/grid/{spot.grid}").json()
    cases = find(grid, ids.GRID_CASES)
    assert f"/media/{ref}" in str(cases) and case_id in texts(cases)
    case = dash_page(boss, srv.url, f"/case/{case_id}").json()
    assert str(case).count(f"/media/{ref}") >= 2  # the thumbnail and its link
