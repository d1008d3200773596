"""The HTTP API ``/api/v1``: batch positions, case reports, lifecycle commands and case queries.

Clients are systems (the 12345 call centre, department systems, vehicle trackers) authenticated by
API keys (``python app.py token add api --role <role>``), sent as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``. A key's role is the lifecycle role it acts in (``call_center``, ``acceptor``,
``shift_leader``, ``dispatcher``, ``leader``, ``supervisor``, ``admin`` or ``department:<code>``);
the key acts as ``api:<key name>`` in that role. Positions may be sent only by keys of role
``supervisor`` or ``admin`` (``POSITION_ROLES``), which speak for every active supervisor (like a
gateway token of scope ``*``); every other key is refused with 403.

Every write goes through ``Pipeline.submit`` (the one write path: named rejections, dead letters,
persist then publish), so the body answered is the pipeline's acknowledgement; refusals before the
pipeline (key, role, JSON) are recorded with ``Pipeline.reject``. The pipeline is attached after the
blueprint is created (the web app exists before the live core): until then every endpoint but the
OpenAPI document answers 503 ``unavailable``. See docs/api.md. Keys, bodies, JSON answers and
refusals are the HTTP helpers of :mod:`feeds.http`, shared with Open311 and the desk's commands.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, request
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from domain.lifecycle import DISPLAY_STAGE, state_from_json
from feeds import geocoding, inventory
from feeds.checks import api_actor
from feeds.http import (
    ALL_METHODS,
    API_PREFIX,
    COMMAND_DATA,
    COMMANDS,
    POSITION_ROLES,
    ApiSpeaker,
    Refusal,
    authenticate_api,
    json_response,
    other_methods,
    parse_body,
    refused,
    secret_of_request,
    status_of,
)
from feeds.ingest import Ingest
from feeds.open311 import create_open311_blueprint
from feeds.openapi import openapi_document
from feeds.schemas import MAX_BATCH, Reason
from store.addresses import AddressBook
from store.components import ComponentBook
from store.models import Case, CaseEventRow

# the default ``source`` of a report by the key's role (a body may say otherwise)
REPORT_SOURCE = {"call_center": "hotline", "leader": "leader", "department": "department",
                 "supervisor": "supervisor"}  # fmt: skip
STAGE_KEYS = {stage: status.value for status, stage in DISPLAY_STAGE.items()}


class PipelineRef:
    """The pipeline the HTTP feeds write through, attached once the live core runs."""

    def __init__(self, pipeline: Ingest | None = None) -> None:
        self.pipeline = pipeline

    def attach(self, pipeline: Ingest) -> None:
        """Start answering: writes go to this pipeline from now on."""
        self.pipeline = pipeline

    def __call__(self) -> Ingest | None:
        return self.pipeline


# -- case queries -------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC (the API's instants out; naive database values are UTC)."""
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


def case_view(engine: Engine, case_id: str, *, events: bool = True) -> dict[str, Any] | None:
    """A case's status as the API shows it: stage, status, place, deadlines and (optionally) events."""
    with Session(engine) as session:
        row = session.get(Case, case_id)
        return None if row is None else _view(session, row, events=events)


def _view(session: Session, row: Case, *, events: bool) -> dict[str, Any]:
    state = state_from_json(row.state)
    stage = state.stage
    timers = {
        name: {
            "started_at": _iso(t.started_at),
            "deadline": _iso(t.deadline),
            "ended_at": _iso(t.ended_at),
            "paused": t.paused_since is not None,
        }
        for name, t in state.timers.items()
    }
    handle = state.timers.get("handle")
    out: dict[str, Any] = {
        "id": row.id,
        "kind": state.kind.value,
        "class_code": state.class_code,
        "condition_code": state.condition_code,
        "source": state.source.value,
        "status": state.status.value,
        "stage": stage.value if stage else None,
        "stage_key": STAGE_KEYS.get(stage) if stage else None,
        "open": state.is_open,
        "emergency": state.emergency,
        "needs_location": bool(row.needs_location),
        "address": row.address,
        "component": state.component,  # the 部件 object the report names (issue 18)
        "duplicate_of": state.duplicate_of,  # the earlier open report it may repeat (issue 21)
        "merged_into": state.merged_into,  # 合并: the case it was merged into
        "grid": row.grid_code,
        "street": row.street_code,
        "community": row.community_code,
        "lon": row.lon,
        "lat": row.lat,
        "description": row.description,
        "department": state.department,
        "reporter": state.reporter,
        "reported_at": _iso(state.reported_at),
        "updated_at": _iso(state.updated_at),
        "closed_at": _iso(state.closed_at),
        "archive": state.archive.value if state.archive else None,
        "deadline": _iso(row.deadline),
        "handling_deadline": _iso(handle.deadline) if handle else None,
        "deadlines": timers,
        "pending_request": state.request.action.value if state.request else None,
        "reworks": state.reworks,
        "urges": state.urges,
    }
    if events:
        rows = session.execute(
            select(CaseEventRow).where(CaseEventRow.case_id == row.id).order_by(CaseEventRow.seq)
        ).scalars()
        out["events"] = [
            {
                "seq": e.seq,
                "action": e.action,
                "actor": e.actor,
                "role": e.role,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "at": _iso(e.at),
                "opinion": e.opinion,
            }
            for e in rows
        ]
    return out


# -- the blueprint ----------------------------------------------------------------------------------------


def create_api_blueprint(engine: Engine, pipeline: Callable[[], Ingest | None]) -> Blueprint:
    """``/api/v1`` on a (read) engine for keys and queries; writes go to ``pipeline()`` when attached."""
    bp = Blueprint("api_v1", __name__, url_prefix=API_PREFIX)

    def running() -> Ingest:
        p = pipeline()
        if p is None:
            raise Refusal(503, {"error": "unavailable", "message": "the live core is starting; retry"})
        return p

    @bp.errorhandler(Refusal)
    def on_refusal(exc: Refusal) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="gridwall"'} if exc.status == 401 else None
        if exc.status == 503:
            headers = {"Retry-After": "5"}
        return json_response(exc.body, exc.status, headers)

    def speaker(p: Ingest, kind: str) -> ApiSpeaker:
        return authenticate_api(engine, p, secret_of_request(), kind)

    @bp.route("/", defaults={"rest": ""}, methods=ALL_METHODS)
    @bp.route("/<path:rest>", methods=ALL_METHODS)
    def elsewhere(rest: str) -> Response:
        """Anything else under the prefix (the app's Dash pages would answer it otherwise)."""
        if other_methods(request.endpoint):
            msg = f"{request.method} is not allowed on {request.path}"
            return json_response({"error": "method_not_allowed", "message": msg}, 405)
        return json_response({"error": "not_found", "message": f"no endpoint {request.path}"}, 404)

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return json_response(openapi_document())

    @bp.post("/positions")
    def positions() -> Response:
        p = running()
        who = speaker(p, "positions")
        source = f"api:{who.name}"
        if who.role not in POSITION_ROLES:
            msg = f"role {who.role} may not send positions (only {', '.join(sorted(POSITION_ROLES))})"
            ack = p.reject("positions", {"path": request.path}, source, Reason.NOT_ALLOWED, msg)
            raise Refusal(403, refused(ack))
        body = parse_body(p, "positions", source)
        ack = p.submit("positions", body, who, source=source)
        fixes = body.get("fixes") if isinstance(body, dict) else None
        if not isinstance(fixes, list) or len(fixes) > MAX_BATCH:  # the batch itself was refused
            return json_response(refused(ack), status_of(ack))
        return json_response(ack)

    @bp.post("/reports")
    def reports() -> Response:
        p = running()
        who = speaker(p, "report")
        source = f"api:{who.name}"
        body = parse_body(p, "report", source)
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if v is not None}  # null = not given
            body.setdefault("id", request.headers.get("Idempotency-Key") or f"api-{uuid.uuid4().hex}")
            body.setdefault("at", p.clock().isoformat())
            body.setdefault("source", REPORT_SOURCE.get(who.role.partition(":")[0], "public"))
        ack = p.submit("report", body, who, source=source)
        status = status_of(ack, 201 if ack.get("accepted") else 200)
        if status >= 400:
            return json_response(refused(ack), status)
        out = dict(ack)
        case_id = next(iter(ack.get("cases", {}).values()), None)
        if case_id is not None:
            out["case"] = case_view(engine, case_id, events=False)
        return json_response(out, status)

    @bp.post("/cases/<case_id>/<action>")
    def command(case_id: str, action: str) -> Response:
        p = running()
        who = speaker(p, "command")
        source = f"api:{who.name}"
        body = parse_body(p, "command", source)
        act = COMMANDS.get(action)
        if act is None:
            msg = f"unknown command {action!r}; use one of {', '.join(sorted(COMMANDS))}"
            ack = p.reject("command", body, source, Reason.MALFORMED, msg)
            return json_response(refused(ack), 404)
        raw: Any = body
        if isinstance(body, dict):
            key = api_actor(who)
            data = {k: body[k] for k in COMMAND_DATA if k in body}
            extra = body.get("data")
            if isinstance(extra, dict):
                data = {**extra, **data}
            raw = {
                "id": body.get("id") or request.headers.get("Idempotency-Key") or f"api-{uuid.uuid4().hex}",
                "action": act.value,
                "case_id": case_id,
                "actor": body.get("actor") or who.actor_id,
                "role": key.role.value if key else who.role,
                "department": key.department if key else None,
                "opinion": body.get("opinion", ""),
                "at": body.get("at") or p.clock().isoformat(),
                "data": data,
            }
        ack = p.submit("command", raw, who, source=source)
        status = status_of(ack)
        if status >= 400:
            return json_response(refused(ack), status)
        out = dict(ack)
        if p.acks_after_commit:  # else the consumer has not applied it yet: the case would be stale
            out["case"] = case_view(engine, case_id, events=False)
        return json_response(out, status)

    @bp.get("/geocode")
    def geocode() -> Response:
        """An address → candidates and, when it passes the threshold, the point a report is placed at."""
        p = running()
        speaker(p, "query")
        try:
            body = geocoding.geocode(
                AddressBook.shared(engine), p.index, request.args.get("q"), request.args.get("limit", 5)
            )
        except geocoding.GeocodeRefusal as exc:
            return json_response(exc.body(), exc.status)
        return json_response(body)

    @bp.get("/reverse")
    def reverse() -> Response:
        """A point → the nearest address of the gazetteer and its distance."""
        p = running()
        speaker(p, "query")
        a = request.args
        try:
            body = geocoding.reverse(
                AddressBook.shared(engine), p.index, a.get("lon"), a.get("lat"), a.get("max_m"), a.get("crs")
            )
        except geocoding.GeocodeRefusal as exc:
            return json_response(exc.body(), exc.status)
        return json_response(body)

    @bp.get("/components/nearest")
    def components_nearest() -> Response:
        """The objects of a 部件 class nearest a point (to pick the one a report names), nearest first."""
        p = running()
        speaker(p, "query")
        a = request.args
        try:
            body = inventory.nearest(ComponentBook.shared(engine), a.get("class"), a.get("lon"), a.get("lat"),
                                     a.get("k", 5), a.get("max_m"), a.get("crs"))  # fmt: skip
        except geocoding.GeocodeRefusal as exc:
            return json_response(exc.body(), exc.status)
        return json_response(body)

    @bp.post("/components")
    @bp.post("/components/<component_id>/<action>")
    def component_update(component_id: str | None = None, action: str = "add") -> Response:
        """An online update of the 部件 inventory by an admin's key: add (body with component_id), or
        move, state, owners, retire of one object; written with its history in the one pipeline."""
        p = running()
        who = speaker(p, "component")
        source = f"api:{who.name}"
        body = parse_body(p, "component", source)
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if v is not None}
            if component_id is not None:
                body["component_id"], body["action"] = component_id, action
            else:
                body.setdefault("action", "add")
            body.setdefault("id", request.headers.get("Idempotency-Key") or f"api-{uuid.uuid4().hex}")
            body.setdefault("at", p.clock().isoformat())
        ack = p.submit("component", body, who, source=source)
        status = status_of(ack, 201 if component_id is None and ack.get("accepted") else 200)
        if status >= 400:
            return json_response(refused(ack), status)
        out = dict(ack)
        code = body.get("component_id") if isinstance(body, dict) else None
        obj = ComponentBook.shared(engine).get(str(code)) if code else None
        out["component"] = inventory.component_json(ComponentBook.shared(engine), obj) if obj else None
        return json_response(out, status)

    @bp.get("/components/<component_id>")
    def component(component_id: str) -> Response:
        """One object of the inventory: class, point, grid, state, units and who handles its reports."""
        p = running()
        speaker(p, "query")
        try:
            body = inventory.component(ComponentBook.shared(engine), component_id)
        except geocoding.GeocodeRefusal as exc:
            return json_response(exc.body(), exc.status)
        return json_response(body)

    @bp.get("/cases/<case_id>")
    def case(case_id: str) -> Response:
        p = running()
        speaker(p, "query")
        view = case_view(engine, case_id)
        if view is None:
            return json_response({"error": Reason.UNKNOWN_CASE.value, "message": f"no case {case_id!r}"}, 404)
        return json_response(view)

    return bp


def register_http_feeds(server: Flask, engine: Engine, pipeline: Ingest | None = None) -> PipelineRef:
    """Register ``/api/v1`` and Open311 ``/open311/v2`` on the app; attach the pipeline to the result."""
    ref = PipelineRef(pipeline)
    server.register_blueprint(create_api_blueprint(engine, ref))
    server.register_blueprint(create_open311_blueprint(engine, ref))
    return ref
