"""What every HTTP entry point shares: prefixes, command names, JSON answers, bodies, keys, refusals.

``/api/v1`` (:mod:`feeds.api`), Open311 (:mod:`feeds.open311`), the OpenAPI document
(:mod:`feeds.openapi`), media uploads (:mod:`feeds.media`) and the desk's command path
(:mod:`dashboard.commands`) all answer JSON, read bodies with the same limits, authenticate API keys
the same way and refuse with the same reasons and HTTP statuses. They import these from here and
not from one another, so no HTTP module needs another one to be loaded first (the feeds used to
import each other inside functions to hide a circle).

Refusals before the pipeline are dead-lettered through :class:`Rejecter` (the pipeline's
``reject``), a protocol so that this module does not depend on the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from flask import Response, current_app, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from domain.lifecycle import Action, Role
from feeds.schemas import Reason
from store.accounts import AuthError, Principal, authenticate

API_PREFIX = "/api/v1"
OPEN311_PREFIX = "/open311/v2"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MAX_BODY_BYTES = 4 * 1024 * 1024  # read at most this much; the pipeline refuses > MAX_PAYLOAD_BYTES by name
POSITION_ROLES = frozenset({Role.SUPERVISOR.value, Role.ADMIN.value})

# Lifecycle commands by the name HTTP clients use (``/api/v1/cases/<id>/<action>`` and the desk's
# ``/api/v1/commands``): every Action but a report, plus the names that are not Action values.
ACTION_ALIASES: dict[str, Action] = {
    "handle": Action.FEEDBACK,
    "return": Action.REQUEST_RETURN,
    "extend": Action.REQUEST_EXTENSION,
    "suspend": Action.REQUEST_SUSPENSION,
}
COMMANDS: dict[str, Action] = {a.value: a for a in Action if a is not Action.REPORT} | ACTION_ALIASES
# body fields of a command copied into its data (domain.lifecycle handlers read them; lon, lat, crs and
# address_id: a locate's point or gazetteer candidate, resolved to a grid by feeds.intake; into: the
# case a merge joins, issue 21)
COMMAND_DATA = ("confirmed", "passed", "department", "extra", "special", "error", "self_handled",
                "class_code", "condition_code", "assignee", "media", "order",
                "lon", "lat", "crs", "address_id", "into")  # fmt: skip

# HTTP status of a refusal by reason (input reasons, lifecycle rules, auth); others are 422
HTTP_STATUS: dict[str, int] = {
    Reason.MALFORMED.value: 400,
    Reason.TOO_LARGE.value: 413,
    Reason.NOT_ALLOWED.value: 403,
    "wrong_role": 403,
    "wrong_department": 403,
    Reason.UNKNOWN_CASE.value: 404,
    Reason.UNKNOWN_HANDOVER.value: 404,
    Reason.HANDOVER_EXISTS.value: 409,
    Reason.ALREADY_ACKNOWLEDGED.value: 409,
    Reason.SELF_ACKNOWLEDGE.value: 403,
    "no_case": 404,
    "case_exists": 409,
    "wrong_status": 409,
    "case_closed": 409,
    "request_pending": 409,
    "no_request": 409,
    "no_open_order": 409,
    "instant_before_case": 409,
    "idempotency_key_conflict": 409,
    Reason.RATE_LIMITED.value: 429,
    Reason.UNAVAILABLE.value: 503,
    "token_missing": 401,
    "token_unknown": 401,
    "token_revoked": 401,
    "token_wrong_kind": 401,
}


class Rejecter(Protocol):
    """Where a refusal before parsing is answered and dead-lettered (``feeds.pipeline.Pipeline``)."""

    def reject(self, kind: str, raw: Any, source: str, reason: Reason, message: str) -> dict[str, Any]:
        """The acknowledgement of one refused input (recorded as a dead letter)."""
        ...


@dataclass(frozen=True)
class ApiSpeaker:
    """An API key as a pipeline speaker (``feeds.pipeline.Speaker``), acting as ``api:<name>``."""

    token_id: int
    name: str
    role: str
    kind: str = "api"
    person_id: str | None = None

    @property
    def actor_id(self) -> str:
        """The actor id the key's commands and reports carry."""
        return f"api:{self.name}"[:64]

    def may_speak_for(self, person_id: str) -> bool:
        """Itself; keys of a ``POSITION_ROLES`` role also for every supervisor (as a gateway with ``*``)."""
        return person_id == self.actor_id or self.role in POSITION_ROLES

    @classmethod
    def of(cls, who: Principal) -> ApiSpeaker:
        """The speaker of an authenticated API key."""
        return cls(who.token_id, who.name, who.role or "")


class Refusal(Exception):
    """A request refused before or by the pipeline: HTTP status and body (each blueprint formats it)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status, self.body = status, body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (orjson: instants and other values without a JSON type as strings)."""
    return Response(orjson.dumps(body, default=str), status=status, mimetype="application/json",
                    headers=headers)  # fmt: skip


def remote() -> str:
    """The client's address, for dead-letter sources."""
    return str(request.remote_addr or "?")


def secret_of_request(*, form_key: str | None = None) -> str | None:
    """The key of a request: ``Authorization: Bearer``, ``X-API-Key`` or (Open311) a parameter."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    given = request.headers.get("X-API-Key")
    if given:
        return given.strip()
    if form_key is not None:
        value = request.form.get(form_key) if request.form else None
        return value or request.args.get(form_key)
    return None


def status_of(ack: dict[str, Any], ok: int = 200) -> int:
    """The HTTP status of a one-input acknowledgement: ``ok``, or the first rejection's status."""
    if ack.get("accepted") or ack.get("duplicates") or not ack.get("rejected"):
        return ok
    return HTTP_STATUS.get(str(ack["rejected"][0].get("reason")), 422)


def refused(ack: dict[str, Any]) -> dict[str, Any]:
    """An acknowledgement with its first rejection's reason and message on top (``error``)."""
    first = ack["rejected"][0] if ack.get("rejected") else {"reason": "unavailable", "message": ""}
    return {"error": first.get("reason"), "message": first.get("message", ""), **ack}


def read_body(limit: int) -> bytes | None:
    """The request's body, read at most ``limit + 1`` bytes far (None: it is longer than ``limit``).

    A body without Content-Length (chunked) is read while it streams and abandoned past the limit,
    before any authentication work, so a client cannot make the server hold a body of any size.
    """
    if request.content_length is not None:
        return request.get_data(cache=False) if request.content_length <= limit else None
    stream, got = request.stream, 0
    parts: list[bytes] = []
    while got <= limit:
        try:
            part = stream.read(min(65536, limit + 1 - got))
        except RequestEntityTooLarge:  # the app's MAX_CONTENT_LENGTH cut the stream first: the same refusal
            return None
        if not part:
            return b"".join(parts)
        parts.append(part)
        got += len(part)
    return None


def parse_body(pipeline: Rejecter, kind: str, source: str, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body (None when empty); too large or not JSON is refused by name (dead-lettered).

    Raises :class:`Refusal` (413 or 400) with the acknowledgement of the refusal as its body.
    """
    size = request.content_length
    if size is not None and size > limit:
        ack = pipeline.reject(kind, {"bytes": size}, source, Reason.TOO_LARGE, f"{size} bytes > {limit}")
        raise Refusal(413, refused(ack))
    data = read_body(limit)
    if data is None:  # a chunked body (no Content-Length): reading stopped past the limit
        msg = f"chunked body > {limit} bytes"
        ack = pipeline.reject(kind, {"bytes": f"> {limit}"}, source, Reason.TOO_LARGE, msg)
        raise Refusal(413, refused(ack))
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError as exc:
        text = data[:2000].decode("utf-8", "replace")
        ack = pipeline.reject(kind, {"body": text}, source, Reason.MALFORMED, f"body is not JSON: {exc}")
        raise Refusal(400, refused(ack)) from None


def authenticate_api(engine: Engine, pipeline: Rejecter, secret: str | None, kind: str) -> ApiSpeaker:
    """The speaker of the request's API key; 401 with the auth reason (dead-lettered) otherwise."""
    try:
        with engine.connect() as conn:
            who = authenticate(conn, secret, ("api",))
    except AuthError as exc:
        msg = f"refused {request.method} {request.path}: {exc.reason}"
        pipeline.reject(kind, {"path": request.path, "remote": remote()}, f"api:{remote()}",
                        exc.reason, msg)  # type: ignore[arg-type]  # fmt: skip
        raise Refusal(401, {"error": exc.reason, "message": msg}) from None
    return ApiSpeaker.of(who)


def other_methods(catch_all: str | None) -> bool:
    """Whether the request's path is a route of another endpoint for some other method (405, not 404)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in ALL_METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != catch_all:
            return True
    return False
