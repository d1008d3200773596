"""Desk login: server-side sessions, CSRF, a login rate limit and the guard of the desk's paths.

The session cookie (``gw_session``, HttpOnly, SameSite=Lax) holds only a random id; the ``sessions``
table keeps its SHA-256, the person and the session's CSRF token. :class:`ServerSessions` is Flask's
session interface, so ``flask.session["person_id"]`` is what every reader sees (``feeds.media``,
``/live``); it never writes: rows are made at login and removed at logout (:func:`install_auth`).

The login form is protected by a double-submit token: a random ``gw_login`` cookie and, in the form,
its HMAC under the app's secret key. A logged-in page sends the session's CSRF token in the
``X-CSRF-Token`` header (``POST /api/v1/commands``) or a ``csrf`` form field (``POST /logout``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from flask import Flask, Request, Response, redirect, request, session
from flask.sessions import SessionInterface, SessionMixin
from markupsafe import escape
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from werkzeug.datastructures import CallbackDict
from werkzeug.wrappers import Response as BaseResponse

from dashboard import ids
from dashboard.callback_shape import request_body
from dashboard.i18n import pick_lang, t
from dashboard.worklist import QUEUE_ROLES
from store.accounts import check_password
from store.db import session_factory
from store.models import Person, WebSession

SESSION_COOKIE = "gw_session"
NONCE_COOKIE = "gw_login"
CSRF_HEADER = "X-CSRF-Token"
DESK_ROLES = frozenset(
    {"leader", "acceptor", "shift_leader", "dispatcher", "department", "admin", "surveyor"}
)
SESSION_TTL = timedelta(hours=12)
CACHE_S = 5.0  # a session row is re-read at most this often per process (logout clears it at once)
# the paths behind the login (prefixes); the wall's Dash requests pass with a kiosk cookie instead.
# /media/* is guarded by feeds.media itself (same answers: 302 to /login?next=…, 401 for XHR/JSON;
# API and gateway keys may fetch too), reading the person from this module's sessions.
GUARDED = (
    "/desk",
    "/street/",
    "/community/",
    "/grid/",
    "/case/",
    "/supervisor/",
    "/evaluation",
    "/_dash-",
)
DEEP_LINKS = ("street", "community", "grid", "case")  # /supervisor/<id>: dashboard.desk_people


def hash_id(value: str) -> str:
    """The stored form of a session cookie value (SHA-256 hex)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class DeskSession(CallbackDict[str, Any], SessionMixin):
    """The session of one request: ``person_id``, ``role``, ``name``, ``csrf`` when logged in."""

    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        super().__init__(initial or {})
        self.sid = sid  # the stored hash of the cookie value (None: no login)
        self.modified = False


class ServerSessions(SessionInterface):
    """Flask sessions read from the ``sessions`` table (joined with an active person of a desk role)."""

    def __init__(self, engine: Engine, *, cache_s: float = CACHE_S) -> None:
        self.engine = engine
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, sid: str) -> dict[str, Any] | None:
        """The session values of a stored id (None: unknown, expired or person inactive)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(sid)
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    WebSession.person_id,
                    WebSession.csrf,
                    WebSession.expires_at,
                    Person.role,
                    Person.name,
                    Person.active,
                    Person.department_code,
                )
                .join(Person, Person.id == WebSession.person_id)
                .where(WebSession.id == sid)
            ).first()
        value: dict[str, Any] | None = None
        if row is not None and row.active and row.role in DESK_ROLES:
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
            if expires > datetime.now(UTC):
                value = {
                    "person_id": row.person_id,
                    "role": row.role,
                    "name": row.name,
                    "csrf": row.csrf,
                    "department": row.department_code,
                }
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[sid] = (now, value)
        return value

    def forget(self, sid: str) -> None:
        """Drop a cached session (after logout)."""
        with self._lock:
            self._cache.pop(sid, None)

    def open_session(self, app: Flask, request: Request) -> DeskSession:
        """The request's session: the stored login of its cookie, or an empty one."""
        value = request.cookies.get(SESSION_COOKIE)
        if not value or len(value) > 200:
            return DeskSession()
        sid = hash_id(value)
        found = self.lookup(sid)
        return DeskSession(found, sid) if found else DeskSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing: sessions are written only by login and logout."""


@dataclass
class LoginLimiter:
    """Failed logins slow the one who fails, never the right password from another place.

    Failures are counted per user name *and address* and per address (in this process, over
    ``window_s``). Past ``per_user`` failures of one name from one address, that name from that
    address waits ``first_wait_s``, doubling with each further failure up to ``max_wait_s``; past
    ``per_ip`` failures from one address (any names), that address waits the same way. The same
    name from another address is not held back (a five-guess lockout of ``admin`` was a weapon),
    and behind a proxy the address is the client's (``X-Forwarded-For`` of the trusted proxies).
    """

    per_user: int = 5
    per_ip: int = 20
    first_wait_s: float = 30.0
    max_wait_s: float = 900.0
    window_s: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _fails: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def _left(self, q: deque[float], limit: int, now: float) -> float:
        past = len(q) - limit + 1
        if past <= 0:
            return 0.0
        wait = min(self.max_wait_s, self.first_wait_s * 2 ** (past - 1))
        return max(0.0, q[-1] + wait - now)

    def refused(self, user: str, ip: str) -> tuple[str, float] | None:
        """(``"user"`` or ``"address"``, seconds left) while that key must wait, else None."""
        now = self.clock()
        with self._lock:
            left = self._left(self._recent(f"u:{user.lower()}@{ip}", now), self.per_user, now)
            if left > 0:
                return "user", left
            left = self._left(self._recent(f"ip:{ip}", now), self.per_ip, now)
            if left > 0:
                return "address", left
        return None

    def failed(self, user: str, ip: str) -> None:
        """Count one failed attempt."""
        now = self.clock()
        with self._lock:
            if len(self._fails) > 50_000:
                self._fails.clear()
            self._recent(f"u:{user.lower()}@{ip}", now).append(now)
            self._recent(f"ip:{ip}", now).append(now)

    def succeeded(self, user: str, ip: str) -> None:
        """Forget a name's failures from this address after a good login."""
        with self._lock:
            self._fails.pop(f"u:{user.lower()}@{ip}", None)


def safe_next(value: str | None) -> str:
    """A local path to go to after login (anything else: ``/desk``)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/desk"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return "/desk"
    return value


def logged_in() -> bool:
    """Whether the current request has a desk session."""
    return bool(session.get("person_id"))


def current_person() -> dict[str, Any] | None:
    """The logged-in person of the current request (``person_id``, ``role``, ``name``, ``csrf``)."""
    return dict(session) if session.get("person_id") else None


def wants_json(req: Request) -> bool:
    """Whether a refusal should be a 401 rather than a redirect (XHR, JSON, Dash, non-GET)."""
    if req.path.startswith("/_dash-") or req.method not in ("GET", "HEAD"):
        return True
    if req.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    best = req.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _page(title: str, body: str, lang: str, status: int = 200) -> Response:
    html_lang = "zh-CN" if lang == "zh" else "en"
    doc = (
        f'<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="/assets/gridwall.css"></head>'
        f'<body class="gw-login-body">{body}</body></html>'
    )
    resp = Response(doc, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def not_found_page(lang: str) -> Response:
    """The desk's 404 page (a real status code)."""
    body = (
        f'<main class="gw-login gw-notfound"><h1>{escape(t("page.not_found", lang))}</h1>'
        f'<p><a href="/desk">{escape(t("page.not_found.back", lang))}</a></p></main>'
    )
    return _page(t("page.not_found", lang), body, lang, 404)


@dataclass
class Auth:
    """The installed login: sessions, limiter and the helpers the other routes use."""

    engine: Engine
    sessions: ServerSessions
    limiter: LoginLimiter
    secret_key: bytes

    def form_token(self, nonce: str) -> str:
        """The login form's CSRF token for a ``gw_login`` nonce."""
        return hmac.new(self.secret_key, f"login:{nonce}".encode(), hashlib.sha256).hexdigest()

    def start(self, person_id: str, remote: str) -> str:
        """Store a new session for a person; returns the cookie value."""
        value = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(WebSession).where(WebSession.expires_at < now))
            conn.execute(
                insert(WebSession).values(
                    id=hash_id(value),
                    person_id=person_id,
                    csrf=secrets.token_urlsafe(24),
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                    remote=remote[:64],
                )
            )
            conn.execute(update(Person).where(Person.id == person_id).values(last_login_at=now))
        return value

    def end(self, sid: str) -> None:
        """Remove a stored session."""
        with self.engine.begin() as conn:
            conn.execute(delete(WebSession).where(WebSession.id == sid))
        self.sessions.forget(sid)


def csrf_ok(given: str | None) -> bool:
    """Whether ``given`` is the current session's CSRF token."""
    want = session.get("csrf")
    return bool(want and given and hmac.compare_digest(str(given), str(want)))


def install_auth(
    server: Flask,
    engine: Engine,
    *,
    kiosk_ok: Callable[[], bool],
    exists: Callable[[str, str], bool],
    limiter: LoginLimiter | None = None,
) -> Auth:
    """Server-side sessions, ``/login`` and ``/logout``, and the guard of the desk's paths.

    ``kiosk_ok()`` tells a valid kiosk cookie (the wall's Dash requests pass with it, for ``/wall``
    only); ``exists(kind, code)`` tells whether a deep link's object exists (else 404).
    """
    sessions = ServerSessions(engine)
    server.session_interface = sessions
    auth = Auth(engine, sessions, limiter or LoginLimiter(), str(server.config["SECRET_KEY"]).encode())

    def login_form(
        lang: str, nxt: str, user: str = "", error: str | None = None, status: int = 200
    ) -> Response:
        nonce = request.cookies.get(NONCE_COOKIE) or ""
        fresh = len(nonce) < 20
        if fresh:
            nonce = secrets.token_urlsafe(24)
        err = f'<p class="gw-login-error" role="alert">{escape(error)}</p>' if error else ""
        other = "en" if lang == "zh" else "zh"
        body = (
            f'<main class="gw-login"><h1>{escape(t("app.title", lang))}</h1>'
            f"<h2>{escape(t('login.title', lang))}</h2>{err}"
            f'<form method="post" action="/login?lang={lang}" class="gw-login-form">'
            f'<input type="hidden" name="csrf" value="{auth.form_token(nonce)}">'
            f'<input type="hidden" name="next" value="{escape(nxt)}">'
            f'<label>{escape(t("login.user", lang))}<input name="user" autocomplete="username" '
            f'value="{escape(user)}" required autofocus></label>'
            f'<label>{escape(t("login.password", lang))}<input name="password" type="password" '
            f'autocomplete="current-password" required></label>'
            f'<button type="submit">{escape(t("login.submit", lang))}</button></form>'
            f'<p class="gw-login-lang"><a href="/login?lang={other}&amp;next={quote(nxt)}">'
            f"{escape(t('login.other_lang', lang))}</a></p></main>"
        )
        resp = _page(t("login.title", lang), body, lang, status)
        if fresh:
            resp.set_cookie(NONCE_COOKIE, nonce, httponly=True, samesite="Lax", secure=request.is_secure)
        return resp

    @server.get("/login")
    def login_get() -> BaseResponse:
        lang = pick_lang(request.args.get("lang"))
        nxt = safe_next(request.args.get("next"))
        if logged_in():
            return redirect(nxt)
        return login_form(lang, nxt)

    @server.post("/login")
    def login_post() -> BaseResponse:
        lang = pick_lang(request.args.get("lang"))
        form = request.form
        nxt = safe_next(form.get("next"))
        user = (form.get("user") or "").strip()[:64]
        password = form.get("password") or ""
        nonce = request.cookies.get(NONCE_COOKIE) or ""
        given = form.get("csrf") or ""
        if len(nonce) < 20 or not hmac.compare_digest(given, auth.form_token(nonce)):
            return login_form(lang, nxt, user, t("login.csrf", lang), 400)
        ip = str(request.remote_addr or "?")
        held = auth.limiter.refused(user, ip)
        if held is not None:
            which, left = held
            limited = login_form(lang, nxt, user, t(f"login.rate_limited.{which}", lang), 429)
            limited.headers["Retry-After"] = str(math.ceil(left))
            return limited
        with session_factory(engine)() as s:
            person = check_password(s, user, password)
            role = person.role if person is not None else None
        if person is None:
            auth.limiter.failed(user, ip)
            return login_form(lang, nxt, user, t("login.failed", lang), 401)
        if role not in DESK_ROLES:
            return login_form(lang, nxt, user, t("login.role", lang), 403)
        auth.limiter.succeeded(user, ip)
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            auth.end(hash_id(old))
        value = auth.start(user, ip)
        resp = redirect(nxt, code=303)
        resp.set_cookie(
            SESSION_COOKIE,
            value,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
            max_age=int(SESSION_TTL.total_seconds()),
        )
        resp.delete_cookie(NONCE_COOKIE)
        return resp

    @server.post("/logout")
    def logout() -> BaseResponse:
        sid = getattr(session, "sid", None)
        if sid and not csrf_ok(request.form.get("csrf") or request.headers.get(CSRF_HEADER)):
            return _json({"error": "csrf", "message": "missing or wrong CSRF token"}, 403)
        if sid:
            auth.end(sid)
        resp = redirect("/login", code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @server.get("/auth/session")
    def who_am_i() -> Response:
        """The logged-in person and the session's CSRF token (401 without a login)."""
        me = current_person()
        if me is None:
            return _json({"error": "login_required", "message": "log in at /login"}, 401)
        resp = _json({k: me.get(k) for k in ("person_id", "role", "name", "department", "csrf")}, 200)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.before_request
    def guard_desk() -> BaseResponse | None:
        path = request.path
        if not path.startswith(GUARDED):
            return None
        if logged_in():
            return deep_link_404(path)
        if path.startswith("/_dash-") and kiosk_ok():
            if path == "/_dash-update-component" and not wall_callback(request):
                return _json({"error": "login_required", "message": "the desk needs a login"}, 401)
            return None
        if wants_json(request):
            return _json({"error": "login_required", "message": "log in at /login"}, 401)
        full = request.full_path.rstrip("?") if request.query_string else path
        return redirect(f"/login?next={quote(full, safe='/')}")

    def deep_link_404(path: str) -> Response | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["desk", "queue"] and (len(parts) != 3 or parts[2] not in QUEUE_ROLES):
            return not_found_page(pick_lang(request.args.get("lang")))
        if len(parts) >= 2 and parts[0] in DEEP_LINKS and (len(parts) > 2 or not exists(parts[0], parts[1])):
            return not_found_page(pick_lang(request.args.get("lang")))
        return None

    return auth


WALL_OUTPUT = f"{ids.PAGE}.children"  # the one callback a kiosk may call: the router's


def wall_callback(req: Request) -> bool:
    """Whether a ``/_dash-update-component`` body is the router rendering ``/wall`` (kiosk allowed).

    Dash picks the callback by the body's ``output``; so the output must be the router's, every input
    the location's, and its pathname ``/wall`` — not merely some input that says ``/wall``.
    """
    body = request_body(req)
    if not isinstance(body, dict) or body.get("output") != WALL_OUTPUT or body.get("state"):
        return False
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return False
    if not all(isinstance(i, dict) and i.get("id") == ids.LOCATION for i in inputs):
        return False
    paths = [i.get("value") for i in inputs if i.get("property") == "pathname"]
    return len(paths) == 1 and isinstance(paths[0], str) and paths[0].rstrip("/") == "/wall"


def session_ok() -> bool:
    """For ``/live``: whether the connecting request carries a desk session."""
    return logged_in()
