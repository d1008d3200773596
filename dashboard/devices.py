"""The desk's handset actions: pair a supervisor's new phone by QR code, revoke a device token.

``POST /desk/api/devices/pair`` ``{"person"}`` issues a new app token for the supervisor (revoking the
person's earlier app token, as a sign-in on the phone does) and answers the pairing link
``<host>/m/#pair=<secret>`` and its QR code (SVG, segno) to show once; the phone that opens the link
keeps the token (the fragment never reaches a server log). ``POST /desk/api/devices/<id>/revoke``
revokes a supervisor's device token; the phone holding it is cut within seconds
(``feeds.sockets.TokenWatch``). Both need a desk session of an admin or shift leader (值班长) and the
session's CSRF token; refusals are JSON ``{"error", "message"}`` with a name.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Any

import orjson
import segno
from flask import Flask, Response, request
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard.auth import CSRF_HEADER, csrf_ok, current_person
from dashboard.handset import BodyRefused, printable, read_json
from store.accounts import AccountError
from store.db import session_factory
from store.handsets import issue_app_token
from store.models import Person, Token

DEVICE_ROLES = frozenset({"admin", "shift_leader"})
MAX_BODY = 2048


def _json(body: dict[str, Any], status: int = 200) -> Response:
    resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _refused(error: str, message: str, status: int) -> Response:
    return _json({"error": error, "message": message}, status)


def qr_svg(text: str) -> str:
    """A QR code of ``text`` as an SVG data URL (error correction M, 8 px modules, a quiet zone)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=8, border=4, dark="#000", light="#fff")
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def install(server: Flask, engine: Engine) -> None:
    """Register the two routes on the desk's Flask app (``engine`` writes the token rows)."""

    def allowed() -> Response | dict[str, Any]:
        me = current_person()
        if me is None:
            return _refused("login_required", "log in at /login", 401)
        if me.get("role") not in DEVICE_ROLES:
            return _refused("wrong_role", "an admin or a shift leader (值班长) manages devices", 403)
        if not csrf_ok(request.headers.get(CSRF_HEADER)):
            return _refused("csrf", "missing or wrong CSRF token", 403)
        return me

    @server.post("/desk/api/devices/pair")
    def pair_device() -> Response:
        me = allowed()
        if isinstance(me, Response):
            return me
        try:
            body = read_json(MAX_BODY, empty=b"{}")
        except BodyRefused as exc:
            return _refused(exc.reason, exc.message, exc.status)
        person = body.get("person") if isinstance(body, dict) else None
        if not isinstance(person, str) or not 0 < len(person) <= 64 or not printable(person):
            return _refused("missing_field", "person: a supervisor's id", 400)
        with engine.connect() as conn:  # a read of its own: SQLite cannot upgrade a read to a write
            role = conn.scalar(select(Person.role).where(Person.id == person, Person.active))
        if role != "supervisor":
            return _refused("unknown_supervisor", "not an active supervisor", 404)
        try:
            with session_factory(engine)() as s, s.begin():  # the first statement writes (revokes)
                token_id, secret = issue_app_token(s, person)
        except AccountError as exc:
            return _refused("unknown_supervisor", str(exc), 404)
        except SQLAlchemyError as exc:
            return _refused("unavailable", f"the database: {type(exc).__name__}; try again", 503)
        link = f"{request.host_url}m/#pair={secret}"
        return _json({"token_id": token_id, "person": person, "link": link, "qr": qr_svg(link)}, 201)

    @server.post("/desk/api/devices/<int:token_id>/revoke")
    def revoke_device(token_id: int) -> Response:
        me = allowed()
        if isinstance(me, Response):
            return me
        try:
            with engine.begin() as conn:  # the first statement writes: no read-to-write lock upgrade
                conn.execute(
                    update(Token)
                    .where(Token.id == token_id, Token.kind == "device", Token.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC))
                )
                kind = conn.scalar(select(Token.kind).where(Token.id == token_id))
        except SQLAlchemyError as exc:
            return _refused("unavailable", f"the database: {type(exc).__name__}; try again", 503)
        if kind != "device":
            return _refused("unknown_token", "no device token with this id", 404)
        return _json({"token_id": token_id, "revoked": True})

    @server.route("/desk/api/devices/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def no_such_device_route(rest: str) -> Response:
        """Any other path or method under the device routes: a named 404, not Dash's page."""
        return _refused("not_found", "POST /desk/api/devices/pair or /desk/api/devices/<id>/revoke", 404)
