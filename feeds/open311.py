"""Open311 GeoReport v2 at ``/open311/v2``: services from the catalogue, public requests in and out.

* ``GET services.json``: one service per minor class of the catalogue. Components (部件) and events
  (事件) reuse 4-digit class codes, so ``service_code`` is the class code prefixed by the kind:
  ``C0101`` (component 0101) or ``E0101`` (event 0101). ``metadata`` is true: the definition has one
  optional attribute ``condition_code`` (立案条件, a single-value list).
* ``GET services/{code}.json``: that definition.
* ``POST requests.json`` (form-encoded as the spec says, or JSON): ``api_key`` (an API key, see
  ``feeds.api``), ``service_code``, ``lat`` + ``long`` or ``address_string`` (alone: the case enters
  待受理 flagged "needs location"), ``description``, ``media_url``, ``attribute[condition_code]``.
  It goes through the pipeline as a ``report`` of source ``public``; the answer is
  ``[{"service_request_id", "service_notice", "account_id"}]``.
* ``GET requests.json`` (filters ``service_request_id``, ``service_code``, ``start_date``,
  ``end_date``, ``status``; without ids or dates: the last 90 days, at most 1,000, newest first) and
  ``GET requests/{id}.json``: ``status`` is ``open`` while the case has a display stage, else
  ``closed``; ``status_notes`` names the stage (or how it ended); ``expected_datetime`` is the
  handling deadline (处置时限); ``agency_responsible`` the department (before dispatch: the class's
  default department).

Errors use Open311's format, ``[{"code": <HTTP status>, "description": "<reason>: <message>"}]``.
Only JSON is served (``.xml`` answers 400).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, request
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from domain.catalogue import Catalogue, CatalogueError, MinorClass
from domain.lifecycle import CaseState, Stage, Status, state_from_json
from feeds.http import (
    ALL_METHODS,
    HTTP_STATUS,
    MAX_BODY_BYTES,
    OPEN311_PREFIX,
    Refusal,
    authenticate_api,
    json_response,
    other_methods,
    parse_body,
    read_body,
    secret_of_request,
)
from feeds.ingest import Ingest
from feeds.schemas import Reason
from store.models import Case

KIND_PREFIX = {"component": "C", "event": "E"}
MAX_RESULTS = 1000
DEFAULT_DAYS = 90
STAGE_EN = {
    Stage.TO_ACCEPT: "to accept", Stage.TO_VERIFY: "to verify", Stage.TO_FILE: "to file",
    Stage.TO_DISPATCH: "to dispatch", Stage.TO_SUB_DISPATCH: "with the street's sub-centre",
    Stage.HANDLING: "being handled", Stage.SUSPENDED: "suspended",
    Stage.TO_REVIEW: "handled, under review", Stage.TO_SEND_CHECK: "handled, check to send",
    Stage.TO_CHECK: "to check", Stage.TO_CLOSE: "to close",
}  # fmt: skip


def service_code(minor: MinorClass) -> str:
    """The Open311 service code of a minor class: ``C``/``E`` + its 4-digit code."""
    return KIND_PREFIX[minor.kind.value] + minor.code


def minor_of(catalogue: Catalogue, code: str) -> MinorClass | None:
    """The minor class of a service code (None when unknown)."""
    kinds = {v: k for k, v in KIND_PREFIX.items()}
    kind = kinds.get(code[:1].upper()) if code else None
    if kind is None:
        return None
    try:
        return catalogue.minor(kind, code[1:])
    except (CatalogueError, KeyError, ValueError):
        return None


def error(status: int, reason: str, message: str) -> Response:
    """An Open311 error response."""
    return json_response([{"code": status, "description": f"{reason}: {message}"}], status)


def _service(minor: MinorClass) -> dict[str, Any]:
    return {
        "service_code": service_code(minor),
        "service_name": minor.name,
        "description": f"{minor.kind.label_zh} {minor.major_name} / {minor.name}",
        "metadata": True,
        "type": "realtime",
        "keywords": ",".join([minor.kind.value, minor.kind.label_zh, minor.major_name]),
        "group": minor.major_name,
    }


def _definition(minor: MinorClass) -> dict[str, Any]:
    return {
        "service_code": service_code(minor),
        "attributes": [
            {
                "variable": True,
                "code": "condition_code",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "立案条件 (filing condition); default: the first",
                "order": 1,
                "description": "filing condition",
                "values": [{"key": c.code, "name": c.text} for c in minor.conditions],
            }
        ],
    }


def status_notes(state: CaseState, needs_location: bool) -> str:
    """The stage (or how the case ended) in Chinese and English."""
    stage = state.stage
    if stage is not None:
        note = f"{stage.value} ({STAGE_EN[stage]})"
    elif state.status is Status.VOIDED and state.merged_into:
        note = f"已合并到 {state.merged_into} (merged into {state.merged_into}, the same problem)"
    elif state.status is Status.VOIDED:
        note = "作废 (voided)"
    else:
        archive = state.archive.value if state.archive else "normal"
        note = f"结案 (closed, {archive})"
    return note + ("; 待定位 (needs location)" if needs_location else "")


def request_view(row: Case, catalogue: Catalogue, tz: Any) -> dict[str, Any]:
    """One case as an Open311 service request."""
    state = state_from_json(row.state)

    def local(at: datetime | None) -> str | None:
        return None if at is None else at.astimezone(tz).isoformat()

    try:
        minor: MinorClass | None = catalogue.minor(state.kind, state.class_code)
    except (CatalogueError, KeyError):
        minor = None
    dept = state.department or (minor.department if minor else None)
    agency = catalogue.departments.get(dept) if dept else None
    handle = state.timers.get("handle")
    return {
        "service_request_id": row.id,
        "status": "open" if state.is_open else "closed",
        "status_notes": status_notes(state, bool(row.needs_location)),
        "service_name": minor.name if minor else state.class_code,
        "service_code": service_code(minor) if minor else state.class_code,
        "description": row.description,
        "agency_responsible": agency.name if agency else dept,
        "service_notice": None,
        "requested_datetime": local(state.reported_at),
        "updated_datetime": local(state.updated_at),
        "expected_datetime": local(handle.deadline) if handle else None,
        "address": row.address,
        "address_id": row.grid_code,
        "zipcode": None,
        "lat": row.lat,
        "long": row.lon,
        "media_url": None,
    }


def _instant(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal(
            400, {"reason": Reason.WRONG_TYPE.value, "message": f"{name}: not a W3C date"}
        ) from None
    if at.tzinfo is None:
        raise Refusal(400, {"reason": Reason.WRONG_TYPE.value, "message": f"{name}: needs a time zone"})
    return at.astimezone(UTC)


def _number(value: Any) -> Any:
    """A form value as a number; anything else is passed on for the pipeline to name (wrong_type)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def create_open311_blueprint(engine: Engine, pipeline: Callable[[], Ingest | None]) -> Blueprint:
    """``/open311/v2`` on a (read) engine; requests are filed through ``pipeline()`` when attached."""
    bp = Blueprint("open311_v2", __name__, url_prefix=OPEN311_PREFIX)

    def running() -> Ingest:
        p = pipeline()
        if p is None:
            raise Refusal(503, {"reason": "unavailable", "message": "the live core is starting; retry"})
        return p

    def json_only(fmt: str) -> None:
        if fmt != "json":
            raise Refusal(400, {"reason": Reason.MALFORMED.value, "message": f"format {fmt!r}: only json"})

    @bp.errorhandler(Refusal)
    def on_refusal(exc: Refusal) -> Response:
        b = exc.body
        return error(exc.status, str(b.get("reason") or b.get("error") or "error"), str(b.get("message", "")))

    @bp.route("/", defaults={"rest": ""}, methods=ALL_METHODS)
    @bp.route("/<path:rest>", methods=ALL_METHODS)
    def elsewhere(rest: str) -> Response:
        """Anything else under the prefix (the app's Dash pages would answer it otherwise)."""
        if other_methods(request.endpoint):
            return error(405, "method_not_allowed", f"{request.method} {request.path}")
        return error(404, "not_found", request.path)

    @bp.get("/services.<fmt>")
    def services(fmt: str) -> Response:
        json_only(fmt)
        return json_response([_service(m) for m in running().ctx.catalogue.classes])

    @bp.get("/services/<code>.<fmt>")
    def service(code: str, fmt: str) -> Response:
        json_only(fmt)
        minor = minor_of(running().ctx.catalogue, code)
        if minor is None:
            return error(404, Reason.UNKNOWN_CLASS.value, f"unknown service_code {code!r}")
        return json_response(_definition(minor))

    @bp.post("/requests.<fmt>")
    def post_request(fmt: str) -> Response:
        json_only(fmt)
        p = running()
        form: dict[str, Any]
        if request.is_json:
            body = parse_body(p, "report", f"open311:{request.remote_addr}")
            if not isinstance(body, dict):
                raise Refusal(400, {"reason": Reason.MALFORMED.value, "message": "body must be an object"})
            form = body
        elif request.mimetype == "application/x-www-form-urlencoded":
            body = read_body(MAX_BODY_BYTES)  # streamed, abandoned past the limit, before the key is read
            if body is None:
                msg = f"body > {MAX_BODY_BYTES} bytes"
                ack = p.reject("report", {"bytes": f"> {MAX_BODY_BYTES}"}, f"open311:{request.remote_addr}",
                               Reason.TOO_LARGE, msg)  # fmt: skip
                raise Refusal(413, {"reason": ack["rejected"][0]["reason"], "message": msg})
            form = {}
            for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                form.setdefault(key, value)  # the first value of a repeated field, as request.form gives
        else:
            form = request.form.to_dict()  # multipart: bounded by the app's MAX_CONTENT_LENGTH
        given = form.get("api_key")
        if given is not None and not isinstance(given, str):  # a JSON body can carry any type
            msg = f"api_key must be a string, not {type(given).__name__}"
            p.reject("report", form, f"open311:{request.remote_addr}", Reason.MALFORMED, msg)
            raise Refusal(400, {"reason": Reason.MALFORMED.value, "message": msg})
        secret = secret_of_request(form_key="api_key") or given
        try:
            who = authenticate_api(engine, p, secret, "report")
        except Refusal as exc:
            status = 400 if exc.body.get("error") == "token_missing" else 403  # the spec's codes
            raise Refusal(
                status, {"reason": exc.body.get("error"), "message": exc.body.get("message")}
            ) from None
        source = f"open311:{who.name}"
        code = str(form.get("service_code") or "")
        minor = minor_of(p.ctx.catalogue, code)
        if minor is None:
            msg = f"unknown service_code {code!r}" if code else "missing service_code"
            reason = Reason.UNKNOWN_CLASS if code else Reason.MISSING_FIELD
            ack = p.reject("report", form, source, reason, msg)
            raise Refusal(400, {"reason": ack["rejected"][0]["reason"], "message": msg})
        raw: dict[str, Any] = {
            "id": f"o311-{uuid.uuid4().hex}",
            "at": p.clock().isoformat(),
            "kind": minor.kind.value,
            "class_code": minor.code,
            "source": "public",
            "description": str(form.get("description") or "")[:1000],
        }
        lat, lon = _number(form.get("lat")), _number(form.get("long"))
        if lat is not None or lon is not None:
            raw["lat"], raw["lon"] = lat, lon
        if form.get("address_string"):
            raw["address"] = str(form["address_string"])
        media = str(form.get("media_url") or "")
        if media.startswith("sha256:"):  # uploaded to /api/v1/media (feeds.media)
            raw["media"] = [media]
        elif media:  # a photo elsewhere: kept with the description (references must be uploads)
            raw["description"] = f"{raw['description']}\nmedia_url: {media}"[:1000]
        cond: Any = form.get("attribute[condition_code]")
        attrs = form.get("attribute")
        if cond is None and isinstance(attrs, dict):  # a JSON body: {"attribute": {"condition_code": …}}
            cond = attrs.get("condition_code")
        if cond:
            raw["condition_code"] = str(cond)
        ack = p.submit("report", raw, who, source=source)
        case_id = next(iter(ack.get("cases", {}).values()), None)
        if case_id is None:
            first: dict[str, Any] = ack["rejected"][0] if ack.get("rejected") else {"reason": "unavailable"}
            status = HTTP_STATUS.get(str(first["reason"]), 400)
            raise Refusal(status if status in (403, 503) else 400, first)
        notice = "待定位 (needs location)" if "lat" not in raw else None
        return json_response([{"service_request_id": case_id, "service_notice": notice, "account_id": None}],
                             201)  # fmt: skip

    def tz() -> Any:
        return running().ctx.calendar.tz

    @bp.get("/requests.<fmt>")
    def get_requests(fmt: str) -> Response:
        json_only(fmt)
        catalogue = running().ctx.catalogue
        q = select(Case)
        ids = [s.strip() for s in request.args.get("service_request_id", "").split(",") if s.strip()]
        if ids:
            q = q.where(Case.id.in_(ids[:MAX_RESULTS]))
        else:
            start = _instant("start_date", request.args.get("start_date"))
            end = _instant("end_date", request.args.get("end_date"))
            if start is None and end is None:
                start = running().clock() - timedelta(days=DEFAULT_DAYS)
            if start is not None:
                q = q.where(Case.reported_at >= start)
            if end is not None:
                q = q.where(Case.reported_at <= end)
            codes = [s.strip() for s in request.args.get("service_code", "").split(",") if s.strip()]
            if codes:
                minors = [minor_of(catalogue, c) for c in codes]
                pairs = [(m.kind.value, m.code) for m in minors if m is not None]
                if not pairs:
                    return json_response([])
                q = q.where(or_(*(and_(Case.kind == k, Case.class_code == c) for k, c in pairs)))
            statuses = {s.strip() for s in request.args.get("status", "").split(",") if s.strip()}
            unknown = statuses - {"open", "closed"}
            if unknown:
                raise Refusal(400, {"reason": Reason.WRONG_TYPE.value,
                                    "message": f"status: {sorted(unknown)}; use open or closed"})  # fmt: skip
            if statuses == {"open"}:
                q = q.where(Case.open.is_(True))
            elif statuses == {"closed"}:
                q = q.where(Case.open.is_(False))
        q = q.order_by(Case.reported_at.desc()).limit(MAX_RESULTS)
        zone = tz()
        with Session(engine) as session:
            rows = session.execute(q).scalars().all()
            return json_response([request_view(r, catalogue, zone) for r in rows])

    @bp.get("/requests/<case_id>.<fmt>")
    def get_request(case_id: str, fmt: str) -> Response:
        json_only(fmt)
        catalogue = running().ctx.catalogue
        with Session(engine) as session:
            row = session.get(Case, case_id)
            if row is None:
                return error(404, Reason.UNKNOWN_CASE.value, f"no service request {case_id!r}")
            return json_response([request_view(row, catalogue, tz())])

    return bp
