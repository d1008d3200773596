"""The supervisor's handset app (城管通) at ``/m``: a web app served by GridWall that speaks ``/device``.

The app is static files (``assets/handset/``: HTML shell, script, style, service worker, manifest, icon)
plus the vendored Socket.IO client; nothing is loaded from outside the server. It talks to GridWall as
any third-party handset would (docs/protocol.md): fixes, reports, task answers over ``/device`` with a
device token, photos to ``POST /api/v1/media``. This module adds what a phone needs besides:

- ``POST /m/api/pair``: the supervisor's person id and password → a new device token (shown once, kept
  on the phone). Throttled like the desk's login (:class:`dashboard.auth.LoginLimiter`); a pairing
  revokes the person's earlier app tokens (one phone per supervisor: a lost phone stops when the
  supervisor signs in on the new one).
- ``GET /m/api/me``, ``/m/api/catalogue``, ``/m/api/tasks``, ``/m/api/district`` with the device token
  (``Authorization: Bearer``): who I am, the classes to report, my open 核实/核查 tasks (a ``task`` is
  pushed once; the inbox is rebuilt from here after a restart), and the street and community names
  the map shows.
- ``GET /m/api/components/nearest`` (the objects of a 部件 class around a point) and
  ``GET /m/api/proposals`` (my proposals of 部件 updates and their outcome, issue 18); a proposal itself
  is the ``proposal`` event of ``/device``.

Every refusal is JSON ``{"reason", "message"}`` with a name from docs/protocol.md §4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request, send_file
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard.i18n import CATALOGUE as TEXT
from dashboard.i18n import LANGS, pick_lang
from domain.catalogue import Catalogue
from feeds.http import secret_of_request
from store.accounts import AuthError, Principal, authenticate, check_password
from store.db import session_factory
from store.handsets import issue_app_token, record_hello
from store.models import Case, Community, Person, Street, Task

HANDSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "handset"
SOCKET_IO_JS = HANDSET_DIR.parent / "a-socket.io-4.8.1.min.js"
PAIR_MAX_BYTES = 4096  # a pairing body: a person id and a password; a hello
FILES = {  # what /m/<name> serves, with its type
    "app.js": "text/javascript",
    "app.css": "text/css",
    "sw.js": "text/javascript",
    "manifest.webmanifest": "application/manifest+json",
    "icon.svg": "image/svg+xml",
}


def _json(body: Any, status: int = 200) -> Response:
    resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def refusal(reason: str, message: str, status: int) -> Response:
    """A named refusal as JSON (401 answers also say how to authenticate)."""
    resp = _json({"reason": reason, "message": message}, status)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="gridwall"'
    return resp


def texts() -> dict[str, dict[str, str]]:
    """The handset's UI text (keys ``m.*``, ``kind.*``, ``task.*``, ``component.state.*``) from the one
    catalogue."""
    keep = ("m.", "kind.", "task.", "app.title", "component.state.")
    return {k: v for k, v in TEXT.items() if k.startswith(keep)}


def catalogue_json(cat: Catalogue) -> dict[str, Any]:
    """The classes a supervisor picks from: kind → major classes → minor classes with 立案条件."""
    out: dict[str, Any] = {"edition": cat.edition, "kinds": {}}
    for c in cat.classes:
        majors = out["kinds"].setdefault(c.kind.value, {})
        major = majors.setdefault(c.major_code, {"code": c.major_code, "name": c.major_name, "classes": []})
        major["classes"].append(
            {
                "code": c.code,
                "name": c.name,
                "emergency": c.emergency,
                "conditions": [{"code": f.code, "text": f.text} for f in c.conditions],
            }
        )
    out["kinds"] = {k: list(v.values()) for k, v in out["kinds"].items()}
    return out


def open_tasks(engine: Engine, person: str, tz: Any = UTC) -> list[dict[str, Any]]:
    """The open 核实/核查 tasks assigned to a supervisor, nearest deadline first, as ``task`` messages."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Task.case_id,
                Task.kind,
                Task.deadline,
                Task.acked_at,
                Case.lon,
                Case.lat,
                Case.grid_code,
                Case.kind.label("case_kind"),
                Case.class_code,
                Case.description,
            )
            .join(Case, Case.id == Task.case_id)
            .where(Task.assignee == person, Task.done_at.is_(None))
            .order_by(Task.deadline, Task.case_id)
            .limit(200)
        ).all()
    out = []
    for r in rows:
        deadline = r.deadline if r.deadline.tzinfo else r.deadline.replace(tzinfo=UTC)
        out.append(
            {
                "case_id": r.case_id,
                "task": r.kind,
                "supervisor": person,
                "deadline": deadline.astimezone(tz).isoformat(),
                "lon": None if r.lon is None else round(float(r.lon), 7),
                "lat": None if r.lat is None else round(float(r.lat), 7),
                "grid": r.grid_code,
                "kind": r.case_kind,
                "class_code": r.class_code,
                "description": r.description or "",
                "acked": r.acked_at is not None,
            }
        )
    return out


def district_names(engine: Engine) -> dict[str, Any]:
    """Street and community names by code (the map shows them under the pin)."""
    with engine.connect() as conn:
        streets = {r[0]: r[1] for r in conn.execute(select(Street.code, Street.name).where(Street.active))}
        names = select(Community.code, Community.name).where(Community.active)
        communities = {r[0]: r[1] for r in conn.execute(names)}
    return {"streets": streets, "communities": communities}


def printable(text: str, *, spaces: bool = False) -> bool:
    """Whether ``text`` is printable UTF-8 (no control characters, no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return text.replace(" ", "").isprintable() if spaces else text.isprintable()


class BodyRefused(Exception):
    """A request body refused before it is used: a named reason, a message and the HTTP status."""

    def __init__(self, reason: str, message: str, status: int) -> None:
        super().__init__(message)
        self.reason, self.message, self.status = reason, message, status


def read_json(limit: int, *, empty: bytes = b"") -> Any:
    """The request's JSON body, read at most ``limit`` bytes (chunked or not; ``empty`` stands for no
    body); raises :class:`BodyRefused` (``too_large`` 413, ``malformed`` 400)."""
    too_large = BodyRefused("too_large", f"the body is at most {limit} bytes", 413)
    if (request.content_length or 0) > limit:
        raise too_large
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise too_large
    try:
        return orjson.loads(raw or empty)
    except orjson.JSONDecodeError:
        raise BodyRefused("malformed", "the body is not JSON", 400) from None


def handset_blueprint(
    engine: Engine,
    *,
    limiter: Any,
    catalogue: Callable[[], Catalogue | None],
    adcode: Callable[[], str | None],
    tz: Callable[[], Any] = lambda: UTC,
) -> Blueprint:
    """The app's files and its API on ``engine`` (pairing writes a token row, as a login writes a session).

    ``limiter`` is the desk's login throttle; ``catalogue`` and ``adcode`` read the running city
    (None while there is none); ``tz`` is the city's zone (task deadlines are shown in it).
    """
    bp = Blueprint("handset", __name__)

    def static(path: Path, mimetype: str) -> Response:
        resp = send_file(path, mimetype=mimetype, conditional=True, etag=True)
        resp.cache_control.no_cache = True  # the service worker keeps the copy; revalidated by ETag
        return resp

    def principal() -> Principal | Response:
        try:
            with engine.connect() as conn:
                who = authenticate(conn, secret_of_request(), ("device",))
        except AuthError as exc:
            status = 403 if exc.reason == "token_wrong_kind" else 401
            return refusal(exc.reason, f"the handset's token: {exc.reason}", status)
        return who

    def small_json() -> dict[str, Any] | Response:
        """The request's JSON object, read at most ``PAIR_MAX_BYTES``."""
        try:
            body = read_json(PAIR_MAX_BYTES)
        except BodyRefused as exc:
            return refusal(exc.reason, exc.message, exc.status)
        if not isinstance(body, dict):
            return refusal("wrong_type", "the body must be a JSON object", 400)
        return body

    def zone() -> str:
        """The city's time zone by name: the phone shows times in it, whatever its own."""
        return str(getattr(tz(), "key", "") or "UTC")

    # the page in each language, made once: the template with the catalogue's texts in it
    html = (HANDSET_DIR / "index.html").read_text(encoding="utf-8")
    text = orjson.dumps(texts()).decode().replace("</", "<\\/")
    shells = {
        lang: html.replace("{{lang}}", lang)
        .replace("{{text}}", text)
        .replace("{{title}}", str(escape(TEXT["m.title"][lang])))
        .replace("{{langs}}", ",".join(LANGS))
        for lang in LANGS
    }

    @bp.get("/m")
    @bp.get("/m/")
    def shell() -> Response:
        resp = Response(shells[pick_lang(request.args.get("lang"))], mimetype="text/html")
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @bp.get("/m/<name>")
    def file(name: str) -> Response:
        if name == "socket.io.min.js":
            return static(SOCKET_IO_JS, "text/javascript")
        if name not in FILES:
            return refusal("not_found", f"no file {name[:64]!r}", 404)
        resp = static(HANDSET_DIR / name, FILES[name])
        if name == "sw.js":
            resp.headers["Service-Worker-Allowed"] = "/m/"
        return resp

    @bp.post("/m/api/pair")
    def pair() -> Response:
        body = small_json()
        if isinstance(body, Response):
            return body
        person, password = body.get("person"), body.get("password")
        if not isinstance(person, str) or not isinstance(password, str) or not person.strip() or not password:
            return refusal("missing_field", "person and password (strings) are required", 400)
        if len(person) > 64 or len(password) > 200:
            return refusal("too_large", "person ≤ 64 characters, password ≤ 200", 400)
        if not printable(person) or not printable(password, spaces=True):
            return refusal("wrong_type", "person and password: printable UTF-8 text", 400)
        person = person.strip()
        ip = str(request.remote_addr or "?")
        held = limiter.refused(person, ip)
        if held is not None:
            resp = refusal("rate_limited", "too many failed sign-ins: wait and try again", 429)
            resp.headers["Retry-After"] = str(math.ceil(held[1]))
            return resp
        with session_factory(engine)() as s:  # a read of its own: SQLite cannot upgrade a read to a write
            who = check_password(s, person, password)
            role, name = (who.role, who.name) if who is not None else (None, "")
        if who is None:
            limiter.failed(person, ip)
            return refusal("login_failed", "wrong person id or password", 401)
        if role != "supervisor":
            return refusal("not_a_supervisor", "the handset app is for supervisors (监督员)", 403)
        limiter.succeeded(person, ip)
        try:
            with session_factory(engine)() as s, s.begin():  # the first statement writes (revokes)
                _, secret = issue_app_token(s, person)
        except SQLAlchemyError as exc:
            return refusal("unavailable", f"the database: {type(exc).__name__}; try again", 503)
        return _json({"token": secret, "person": person, "name": name}, 201)

    @bp.post("/m/api/hello")
    def hello() -> Response:
        """What the app says of itself on each connect: its version, battery and charging (if known)."""
        who = principal()
        if isinstance(who, Response):
            return who
        body = small_json()
        if isinstance(body, Response):
            return body
        version, battery, charging = body.get("version"), body.get("battery"), body.get("charging")
        if not isinstance(version, str) or not 0 < len(version) <= 32 or not printable(version):
            return refusal("wrong_type", "version: a string of 1-32 characters", 400)
        if battery is not None and (
            isinstance(battery, bool) or not isinstance(battery, int | float) or not 0 <= battery <= 1
        ):
            return refusal("wrong_type", "battery: a number from 0 to 1, or null", 400)
        if charging is not None and not isinstance(charging, bool):
            return refusal("wrong_type", "charging: true, false or null", 400)
        assert who.person_id is not None
        try:
            with engine.begin() as conn:
                record_hello(
                    conn, who.token_id, who.person_id, version=version,
                    user_agent=request.headers.get("User-Agent", "")[:300],
                    battery=None if battery is None else round(float(battery), 2), charging=charging,
                    at=datetime.now(UTC),
                )  # fmt: skip
        except SQLAlchemyError as exc:
            return refusal("unavailable", f"the database: {type(exc).__name__}; try again", 503)
        return _json({"ok": True})

    @bp.get("/m/api/me")
    def me() -> Response:
        who = principal()
        if isinstance(who, Response):
            return who
        with engine.connect() as conn:
            row = conn.execute(select(Person.id, Person.name).where(Person.id == who.person_id)).first()
        return _json(
            {"person": who.person_id, "name": row.name if row else "", "adcode": adcode(), "tz": zone()}
        )

    @bp.get("/m/api/reverse")
    def near() -> Response:
        """The nearest 门牌 of the gazetteer to a point (within 100 m), for the line under the map."""
        who = principal()
        if isinstance(who, Response):
            return who
        from feeds.geocoding import GeocodeRefusal, reverse
        from store.addresses import AddressBook

        try:
            args = request.args
            body = reverse(AddressBook.shared(engine), None, args.get("lon"), args.get("lat"), 100)
        except GeocodeRefusal as exc:
            return refusal(exc.reason.value, str(exc), exc.status)
        return _json({"address": body["address"], "distance_m": body["distance_m"]})

    @bp.get("/m/api/catalogue")
    def classes() -> Response:
        who = principal()
        if isinstance(who, Response):
            return who
        cat = catalogue()
        if cat is None:
            return refusal("unavailable", "no city is running yet", 503)
        return _json(catalogue_json(cat))

    @bp.get("/m/api/tasks")
    def tasks() -> Response:
        who = principal()
        if isinstance(who, Response):
            return who
        assert who.person_id is not None
        return _json({"tasks": open_tasks(engine, who.person_id, tz())})

    @bp.get("/m/api/components/nearest")
    def nearest_components() -> Response:
        """The objects of a 部件 class nearest a point (a proposal's move or state names one of them)."""
        who = principal()
        if isinstance(who, Response):
            return who
        from feeds.geocoding import GeocodeRefusal
        from feeds.inventory import nearest
        from store.components import ComponentBook

        a = request.args
        try:
            body = nearest(ComponentBook.shared(engine), a.get("class"), a.get("lon"), a.get("lat"),
                           a.get("k", 8), a.get("max_m", 300))  # fmt: skip
        except GeocodeRefusal as exc:
            return refusal(exc.reason.value, str(exc), exc.status)
        return _json(body)

    @bp.get("/m/api/proposals")
    def my_proposals() -> Response:
        """The supervisor's latest 部件 proposals and their outcome (待审/已采纳/已退回, the reason)."""
        who = principal()
        if isinstance(who, Response):
            return who
        from store.proposals import of_supervisor

        assert who.person_id is not None
        with engine.connect() as conn:
            return _json({"proposals": of_supervisor(conn, who.person_id, limit=30)})

    @bp.get("/m/api/district")
    def district() -> Response:
        who = principal()
        if isinstance(who, Response):
            return who
        return _json({"adcode": adcode(), "tz": zone(), **district_names(engine)})

    return bp


def install_handset(server: Flask, engine: Engine, **kw: Any) -> None:
    """Register the handset app on the web app (see :func:`handset_blueprint`)."""
    server.register_blueprint(handset_blueprint(engine, **kw))
