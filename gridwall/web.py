"""The web app: Flask, Flask-SocketIO (threading) and the Dash app with the pages' router on top."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dash
import orjson
from dash import Input, Output, dcc, html
from flask import Flask, Response, abort, make_response, redirect, request
from flask_socketio import SocketIO
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard import callback_shape, component_export, desk_people, devices, ids
from dashboard.auth import Auth, current_person, install_auth, logged_in
from dashboard.basemap import basemap_blueprint
from dashboard.commands import install_commands
from dashboard.component_tiles import component_tiles_blueprint
from dashboard.data import Overview, OverviewCache
from dashboard.deskdata import DeskData
from dashboard.handset import install_handset
from dashboard.heat import MODES as HEAT_MODES
from dashboard.heat import HeatCanvas
from dashboard.heat import render as render_heat
from dashboard.i18n import pick_lang, t
from feeds.counters import DailyCounters
from feeds.http import MAX_BODY_BYTES, secret_of_request
from feeds.live import LiveReader
from feeds.sockets import KIOSK_COOKIE
from layouts import handover, router
from store.accounts import AuthError, authenticate
from store.components import ComponentBook

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass
class WebApp:
    """The composed web application and the running parts its pages read (gridwall.runtime builds it)."""

    server: Flask
    socketio: SocketIO
    dash: dash.Dash
    cache: OverviewCache
    live: LiveReader | None = None
    simulated: Callable[[], bool] = lambda: False  # whether the built-in simulation feeds the live state
    desk: DeskData | None = None  # the desk's read models (issue 8)
    auth: Auth | None = None  # desk login and sessions (dashboard.auth)
    counters: DailyCounters | None = None  # desk scores; None in scale-out web processes
    pipeline: Any = None  # the ingest path the desk's commands go to (feeds.pipeline / feeds.stream)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # the city's clock (tests move it)


# on every answer (issue 20 item 10): no page of GridWall may be framed by another site (clickjacking a
# desk action), content types are not sniffed, and the wall's ?token= URL never leaves as a Referer
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
KIOSK_TRUST_S = 5.0  # a kiosk secret found active is believed this long (dashboard.auth.CACHE_S for sessions)
KIOSK_SEEN_MAX = 64
MAX_FRAME_BYTES = 4 * 1024 * 1024  # one Engine.IO message (docs/protocol.md, Limits: max_http_buffer_size)


def socket_server(message_queue: str | None = None, channel: str = "flask-socketio") -> SocketIO:
    """The process's Socket.IO server, before any Flask app: namespaces are registered on it first.

    With ``message_queue`` (a Redis URL) emits reach the clients of every web process on ``channel``
    (scale-out). Frames up to 4 MB are read so that oversized payloads get a named rejection
    (feeds.schemas) instead of a dropped connection.
    """
    # cors_allowed_origins=None: a request that names an Origin must come from the page's own host
    # (Host, or X-Forwarded-Proto/-Host behind the proxy); handsets and gateways send none. An empty
    # list would switch the check off: a foreign page could open /live with a kiosk or desk cookie.
    sio = SocketIO(async_mode="threading", cors_allowed_origins=None, max_http_buffer_size=MAX_FRAME_BYTES)
    if message_queue:  # given to SocketIO() without an app it would make a write-only emitter now
        sio.server_options.update(message_queue=message_queue, channel=channel)
    return sio


def create_web_app(
    engine: Engine,
    *,
    secret_key: str,
    socketio: SocketIO | None = None,
    live: LiveReader | None = None,
    pipeline: Any = None,
    counters: DailyCounters | None = None,
    simulated: Callable[[], bool] = lambda: False,
    trusted_proxies: int = 0,
    clock: Callable[[], datetime] | None = None,
    data_dir: Path | None = None,
) -> WebApp:
    """Compose Flask + Socket.IO + Dash on a read-only engine (kiosk tokens are checked in the store).

    ``socketio`` (from :func:`socket_server`, namespaces already registered) is bound to the new Flask
    app; ``live``, ``pipeline`` and ``counters`` are the running parts the pages read and the desk's
    commands go to (None: a web app without a live core, e.g. a page test). ``clock``: the city's
    clock every page reads for "now" and "today" (the runtime's; tests move it). ``data_dir``: where
    an imported basemap lives (``store.basemap``; None: the maps' dark background alone).
    """
    now_of: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
    server = Flask("gridwall")
    server.config["SECRET_KEY"] = secret_key
    # every request body (forms too, chunked or not) is read at most this far; /api/v1/media raises it
    # for its own uploads (feeds.media), the JSON feeds refuse past it by name (feeds.http.read_body)
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if socketio is None:
        socketio = socket_server()
    socketio.init_app(server)
    if trusted_proxies:  # the client's address, scheme and host as the proxies in front saw them
        server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            server.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies, x_host=trusted_proxies
        )
    cache = OverviewCache(engine)

    kiosk_seen: dict[str, float] = {}  # SHA-256 of a kiosk secret found active → until when it is believed

    def kiosk_ok() -> bool:
        given = request.args.get("token") or request.cookies.get(KIOSK_COOKIE) or ""
        if not given:
            return False
        key = hashlib.sha256(given.encode("utf-8", "replace")).hexdigest()
        if kiosk_seen.get(key, 0.0) > time.monotonic():  # a wall asks for its map tiles by the dozen
            return True
        try:  # the embedded kiosk token or any other active one (python app.py token add kiosk)
            with engine.connect() as conn:
                authenticate(conn, given, ("kiosk",))
        except AuthError:
            return False
        if len(kiosk_seen) >= KIOSK_SEEN_MAX:  # only secrets found active are kept: a handful
            kiosk_seen.clear()
        kiosk_seen[key] = time.monotonic() + KIOSK_TRUST_S  # a revocation is felt within that, as sessions'
        return True

    desk_data = DeskData(engine, cache)
    auth = install_auth(server, engine, kiosk_ok=kiosk_ok, exists=desk_data.exists)  # before other guards

    @server.before_request
    def guard_wall() -> Response | None:
        if request.path.rstrip("/") == "/wall" and not kiosk_ok():
            lang = pick_lang(request.args.get("lang"))
            return Response(f"<h1>{t('kiosk.denied', lang)}</h1>", status=403, mimetype="text/html")
        return None

    @server.after_request
    def remember_kiosk(resp: Response) -> Response:
        if request.path.rstrip("/") == "/wall" and request.args.get("token") and resp.status_code == 200:
            resp.set_cookie(KIOSK_COOKIE, request.args["token"], httponly=True, samesite="Strict",
                            secure=request.is_secure)  # fmt: skip
        return resp

    @server.after_request
    def security_headers(resp: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp

    @server.get("/healthz")
    def healthz() -> Response:
        ov = cache.current()
        body = {
            "ok": True,
            "district": ov.summary.adcode if ov else None,
            "grids": ov.summary.grids if ov else 0,
        }
        return make_response(body)

    def district_file(adcode: str, body: Callable[[Overview], bytes], mimetype: str) -> Response:
        ov = cache.current()
        if ov is None or ov.summary.adcode != adcode:
            abort(404)
        resp = make_response(body(ov))
        resp.mimetype = mimetype
        resp.cache_control.max_age = 300
        return resp

    @server.get("/geo/<adcode>/grids.geojson")
    def grids_file(adcode: str) -> Response:
        return district_file(adcode, lambda ov: ov.grids_json, "application/geo+json")

    @server.get("/geo/<adcode>/labels.png")
    def labels_file(adcode: str) -> Response:
        return district_file(adcode, lambda ov: ov.labels_png, "image/png")

    heat_canvas: dict[str, HeatCanvas] = {}
    heat_cache: dict[str, tuple[float, bytes, str]] = {}

    @server.get("/geo/<adcode>/heat/<mode>.png")
    def heat_file(adcode: str, mode: str) -> Response:
        ov = cache.current()
        if ov is None or ov.summary.adcode != adcode or mode not in HEAT_MODES:
            abort(404)
        if not kiosk_ok():
            abort(403)
        live = web.live
        if live is None:
            abort(503)
        canvas = heat_canvas.get(adcode)
        if canvas is None:
            features = orjson.loads(ov.grids_json)["features"]
            canvas = heat_canvas[adcode] = HeatCanvas.build(features, ov.summary.bounds)
        hit = heat_cache.get(mode)
        if hit is None or time.monotonic() - hit[0] > 3:  # at most one render per mode every 3 s
            counts = live.grid_counts()
            values = {
                g: float(c.open if mode == "open" else c.overdue if mode == "overdue" else c.patrol_s / 60)
                for g, c in counts.items()
            }
            png = render_heat(canvas, values, mode)
            hit = heat_cache[mode] = (time.monotonic(), png, hashlib.blake2b(png, digest_size=12).hexdigest())
        resp = make_response(hit[1])
        resp.mimetype = "image/png"
        # the wall asks again every 10 s: revalidate by ETag, so an unchanged image costs a 304
        resp.cache_control.no_cache = True
        resp.set_etag(hit[2])
        resp.make_conditional(request)  # 304 Not Modified when the browser's copy is current
        return resp

    @server.get("/")
    def root() -> Response:
        return redirect("/desk")  # type: ignore[return-value]

    app = dash.Dash(
        __name__,
        server=server,  # type: ignore[arg-type]
        assets_folder=str(ASSETS),
        assets_path_ignore=["handset"],  # the handset app's own files (/m), not the desk's
        title=t("app.title"),
        update_title=None,  # type: ignore[arg-type]
        serve_locally=True,
        suppress_callback_exceptions=True,
    )
    app.layout = html.Div([dcc.Location(id=ids.LOCATION), html.Div(id=ids.PAGE)])

    @app.callback(
        Output(ids.PAGE, "children"), Input(ids.LOCATION, "pathname"), Input(ids.LOCATION, "search")
    )
    def render(pathname: str | None, search: str | None) -> html.Div:
        path = (pathname or "/").rstrip("/") or "/"
        q = parse_qs((search or "").lstrip("?"))
        lang = pick_lang(q.get("lang", [""])[0])
        if path == "/wall":  # the kiosk's page (guard_wall checked the token)
            ov = cache.current()
            rules = web.pipeline.ctx if web.pipeline is not None else None
            return router.wall_page(
                q, lang, district=ov, live=web.live, simulated=web.simulated(), now=now_of(), rules=rules
            )
        if not logged_in():  # a kiosk cookie opens the wall only
            return router.message(t("login.required", lang), "desk")
        # each page module declares its paths (ROUTES); layouts.router collects them
        ov = cache.current()
        return router.desk_page(path, q, lang, district=ov, context=lambda: page_context(lang, q))

    def page_context(lang: str, q: dict[str, list[str]]) -> router.PageContext | None:
        ov, me = cache.current(), current_person()
        if ov is None or me is None:
            return None
        rules = web.pipeline.ctx if web.pipeline is not None else None
        now = now_of()
        return router.PageContext(lang, q, me, desk_data, ov, web.live, web.counters, now, rules)

    router.register_callbacks(app, page_context)

    @server.before_request
    def dash_request_shape() -> Response | None:
        """A ``/_dash-update-component`` body must name a callback of this app with inputs Dash can read;
        anything else is refused 400 ``malformed`` here instead of failing inside Dash (a 500)."""
        if request.path != "/_dash-update-component" or request.method != "POST":
            return None
        why = callback_shape.refusal(callback_shape.request_body(request), app.callback_map)
        if why is not None:
            refusal = {"error": "malformed", "message": f"not a callback request of this app: {why}"}
            return Response(orjson.dumps(refusal), 400, mimetype="application/json")
        return None

    web = WebApp(
        server=server, socketio=socketio, dash=app, cache=cache, live=live, simulated=simulated,
        desk=desk_data, auth=auth, counters=counters, pipeline=pipeline, clock=now_of,
    )  # fmt: skip
    install_commands(server, lambda: web.pipeline)  # POST /api/v1/commands (session + CSRF)

    def city_ctx() -> Any:
        return getattr(web.pipeline, "ctx", None)

    def city_adcode() -> str | None:
        ov = cache.current()
        return ov.summary.adcode if ov is not None else None

    install_handset(  # the supervisor's handset app at /m (issue 16)
        server, engine, limiter=auth.limiter, adcode=city_adcode,
        catalogue=lambda: ctx.catalogue if (ctx := city_ctx()) is not None else None,
        tz=lambda: ctx.calendar.tz if (ctx := city_ctx()) is not None else UTC,
    )  # fmt: skip
    desk_people.install(server, engine, lambda: web.live, cache.current, now_of)  # issue 8 items 7–9
    devices.install(server, engine)  # pair a phone by QR code, revoke a device token (issue 16)
    handover.install(server, engine, city_ctx)  # 交接班: the printable page and its PDF (issue 21 part 4)
    component_export.install(server, engine, now_of)  # /evaluation/owners.csv (issue 18 item 6)

    def map_reader() -> bool:  # a desk session, a wall (kiosk token) or a paired handset (Bearer)
        if logged_in() or kiosk_ok():
            return True
        given = secret_of_request()
        if not given:
            return False
        try:
            with engine.connect() as conn:
                authenticate(conn, given, ("device",))
        except AuthError:
            return False
        return True

    server.register_blueprint(basemap_blueprint(data_dir, map_reader))  # the map style and tiles (issue 17)
    components = ComponentBook.shared(engine)  # the desk maps' 部件 layer (issue 18), same readers
    server.register_blueprint(component_tiles_blueprint(lambda: components, map_reader))
    return web
