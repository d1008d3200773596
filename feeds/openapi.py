"""The OpenAPI 3.1 document of ``/api/v1`` and Open311 ``/open311/v2``, built from pydantic models.

Request bodies reuse the feed payload models of ``feeds.schemas`` (``FixIn``, ``ReportIn``) where
the HTTP body is the same; the models below describe what only HTTP has (optional ``id``/``at`` of a
report, command bodies, the answers). Served at ``/api/v1/openapi.json``; ``tests/test_openapi.py``
generates requests from it (hypothesis) against a live server.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from feeds.http import API_PREFIX, COMMANDS, OPEN311_PREFIX
from feeds.schemas import MAX_BATCH, Crs, FixIn, Key, Reason, Text

_DOC = ConfigDict(extra="allow")
Instant = Annotated[str | int, Field(description="ISO 8601 with a zone, or epoch milliseconds")]


class PositionsBody(BaseModel):
    """A batch of fixes (as the ``positions`` event of ``/device``)."""

    model_config = _DOC
    fixes: Annotated[list[FixIn], Field(max_length=MAX_BATCH)]


class ReportBody(BaseModel):
    """A case report: a point (lon, lat), or only an address or a grid code (the case needs location)."""

    model_config = _DOC
    id: Key | None = Field(None, description="idempotency key (or the Idempotency-Key header); default: new")
    at: Instant | None = Field(None, description="when it was reported; default: now")
    supervisor: str | None = Field(None, description="supervisor keys only: report as this supervisor")
    kind: Literal["component", "event"]
    class_code: Annotated[str, Field(min_length=1, max_length=8)]
    condition_code: Annotated[str, Field(max_length=8)] | None = None
    lon: float | None = None
    lat: float | None = None
    crs: Crs = "wgs84"
    address: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    grid_code: Annotated[str, Field(pattern=r"^[0-9]{15}$")] | None = None
    component_id: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        None, description="部件 reports: the object (16-digit identifier, a pick of /components/nearest); "
        "the dispatcher's default department becomes its handling unit"
    )  # fmt: skip
    description: Text = ""
    media: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=10)] = []
    source: Literal["supervisor", "public", "hotline", "leader", "video", "department"] | None = Field(
        None, description="default by the key's role: call_center hotline, leader leader, department "
        "department, supervisor supervisor, others public"
    )  # fmt: skip


class CommandBody(BaseModel):
    """A lifecycle command on the case of the path; fields as the action needs them."""

    model_config = _DOC
    id: Key | None = Field(None, description="idempotency key (or the Idempotency-Key header); default: new")
    at: Instant | None = Field(None, description="when it happened; default: now")
    actor: str | None = Field(None, description="supervisor keys: the supervisor; default api:<key name>")
    opinion: Text = Field("", description="意见: required by void, return, extend, suspend, reject, …")
    confirmed: bool | None = Field(None, description="verify: the report is real")
    passed: bool | None = Field(None, description="check: the handling passed")
    department: str | None = Field(None, description="dispatch: department code (default: the class's)")
    extra: str | None = Field(None, description="extend: extra time, e.g. '2 work_days'")
    special: bool | None = Field(None, description="close: 特殊结案 (needs an opinion)")
    error: bool | None = Field(None, description="close: 差错结案 of a dispatched, unhandled case (opinion)")
    self_handled: bool | None = Field(
        None, description="accept of a 自处置 report: false refuses the fix (to 待立案; opinion)"
    )
    class_code: str | None = Field(None, description="file: reclassify")
    condition_code: str | None = Field(None, description="file: filing condition")
    assignee: str | None = Field(None, description="accept, feedback, assign: the task's supervisor")
    order: int | None = Field(None, description="urge_reply: the 督办单 answered (default: the oldest open)")
    lon: float | None = Field(None, description="locate: the case's point (with lat, in crs)")
    lat: float | None = Field(None, description="locate: the case's point (with lon, in crs)")
    crs: Crs | None = Field(None, description="locate: the CRS of lon/lat (default wgs84)")
    address_id: int | None = Field(None, description="locate: a gazetteer address (a candidate of /geocode)")
    data: dict[str, str | int | float | bool | None] | None = None


class Rejected(BaseModel):
    """One refused input."""

    id: str
    reason: str = Field(description="a name from docs/protocol.md §4")
    message: str


class CaseBrief(BaseModel):
    """A case's status (``events`` only on GET)."""

    model_config = _DOC
    id: str
    status: str
    stage: str | None
    stage_key: str | None
    open: bool
    needs_location: bool
    address: str | None
    grid: str | None
    lon: float | None
    lat: float | None
    department: str | None
    reported_at: str
    updated_at: str
    deadline: str | None
    handling_deadline: str | None
    deadlines: dict[str, dict[str, Any]]
    events: list[dict[str, Any]] | None = None


class AckOut(BaseModel):
    """The pipeline's acknowledgement (partial batches: some accepted, some rejected)."""

    model_config = _DOC
    accepted: list[str]
    duplicates: list[str]
    rejected: list[Rejected]
    cases: dict[str, str] | None = None
    case: CaseBrief | None = None


class ErrorOut(BaseModel):
    """A refusal: ``error`` is the reason (auth reason, input reason or lifecycle rule)."""

    model_config = _DOC
    error: str
    message: str
    accepted: list[str] | None = None
    duplicates: list[str] | None = None
    rejected: list[Rejected] | None = None


class AddressOut(BaseModel):
    """A gazetteer address (门牌), WGS-84; ``grid``: the unit grid its point lies in."""

    model_config = _DOC
    address_id: int
    address: str
    name: str
    number: str | None = Field(description="the 门牌 (甲35), null without one")
    community: str | None
    lon: float
    lat: float
    grid: str | None


class CandidateOut(AddressOut):
    """A geocoding candidate: the address with its score and whether name and 门牌 are the same."""

    score: float = Field(ge=0, le=1)
    exact: bool


class GeocodeOut(BaseModel):
    """An address → candidates best first; ``placed``: where a report with this address is placed
    (null: not safe to place without a person: below the threshold, another road, a 门牌 not in the
    gazetteer, or the same address twice far apart)."""

    model_config = _DOC
    query: str
    parsed: dict[str, Any]
    threshold: float
    placed: CandidateOut | None
    candidates: list[CandidateOut]


class ReverseOut(BaseModel):
    """A point → the nearest gazetteer address within ``max_m`` metres (null: none that near)."""

    model_config = _DOC
    lon: float
    lat: float
    max_m: float
    address: AddressOut | None
    distance_m: float | None


class ComponentOut(BaseModel):
    """A 部件 object of the inventory, WGS-84; ``units`` by role (主管/权属/养护); ``handler``: the unit a
    report naming it goes to by default."""

    model_config = _DOC
    id: str
    class_code: str
    name: str
    lon: float
    lat: float
    grid: str | None
    state: str
    units: dict[str, str | None]
    handler: str | None
    distance_m: float | None = None


class ComponentBody(BaseModel):
    """An online update of the 部件 inventory (the ``component`` event of docs/protocol.md); admin keys."""

    model_config = _DOC
    id: Key | None = Field(None, description="idempotency key (or the Idempotency-Key header): a retry with "
                           "it is applied once and answered as a duplicate; default: new")  # fmt: skip
    at: Instant | None = Field(None, description="when; default: now")
    component_id: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        None, description="POST /components: the new object's 16-digit identifier (the path's otherwise)"
    )
    action: Literal["add", "move", "state", "owners", "retire"] | None = Field(
        None, description="POST /components: add (the default); the path's otherwise"
    )
    name: Annotated[str, Field(max_length=64)] | None = None
    lon: float | None = Field(None, description="add, move: the point (with lat, in crs, in the district)")
    lat: float | None = None
    crs: Crs = "wgs84"
    state: Annotated[str, Field(max_length=8)] | None = Field(None, description="add, state: 完好/破损/…")
    unit_main: Annotated[str, Field(max_length=16)] | None = Field(None, description="add, owners: 主管")
    unit_owner: Annotated[str, Field(max_length=16)] | None = Field(None, description="add, owners: 权属")
    unit_care: Annotated[str, Field(max_length=16)] | None = Field(None, description="add, owners: 养护")
    reason: Text = Field("", description="why (the history's 原因)")


class ComponentAckOut(AckOut):
    """The acknowledgement of an inventory update and the object after it (null: retired or refused)."""

    component: ComponentOut | None = None


class ProposalOut(BaseModel):
    """A supervisor's proposal of a 部件 update (the ``proposal`` event) and its outcome."""

    model_config = _DOC
    number: int
    id: str = Field(description="the handset's idempotency key")
    supervisor: str
    at: str
    action: Literal["add", "move", "state"]
    class_code: str
    component_id: str | None
    grid: str | None
    name: str
    lon: float | None
    lat: float | None
    state: str | None
    note: str
    media: str | None
    status: Literal["待审", "已采纳", "已退回"]
    decided_at: str | None
    decider: str | None
    reason: str = Field(description="the surveyor's reason (a refusal always has one)")
    result_component: str | None = Field(description="accepted: the object changed or added")


class ProposalsOut(BaseModel):
    """The handset's supervisor's latest proposals, newest first."""

    proposals: list[ProposalOut]


class HandsetRefusal(BaseModel):
    """A refusal of the handset's API (``/m/api``): a name from docs/protocol.md §4 and a message."""

    reason: str
    message: str


class NearestOut(BaseModel):
    """The objects of a class nearest a point (within ``max_m``), nearest first."""

    model_config = _DOC
    lon: float
    lat: float
    max_m: float
    components: list[ComponentOut]


class Service(BaseModel):
    """An Open311 service: one minor class."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class ServiceDefinition(BaseModel):
    """An Open311 service definition."""

    service_code: str
    attributes: list[dict[str, Any]]


class ServiceRequest(BaseModel):
    """An Open311 service request (a case)."""

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str
    updated_datetime: str
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class RequestCreated(BaseModel):
    """The answer to an Open311 POST."""

    service_request_id: str
    service_notice: str | None
    account_id: str | None


class Open311Error(BaseModel):
    """An Open311 error."""

    code: int
    description: str


class Open311Form(BaseModel):
    """The form of an Open311 POST requests.json."""

    api_key: str
    service_code: str = Field(description="C<4-digit class> (component) or E<4-digit class> (event)")
    lat: float | None = None
    long: float | None = None
    address_string: str | None = Field(None, description="alone (no lat/long): the case needs location")
    description: str | None = None
    media_url: str | None = None
    attribute_condition_code: str | None = Field(None, alias="attribute[condition_code]")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed body",
        401: "missing or wrong key (error: the auth reason)",
        403: "the key's role may not do this",
        404: "unknown case or command",
        409: "the case's state forbids it",
        413: "body too large",
        422: "a field is wrong (error names it)",
        503: "the live core is not running yet",
    }
    return {str(c): _json(_ref("ErrorOut"), text[c]) for c in codes}


def _handset(*codes: int) -> dict[str, Any]:
    text = {400: "a query value is wrong (reason names it)", 401: "missing or wrong device token",
            403: "not a device token (token_wrong_kind)", 422: "a query value is wrong"}  # fmt: skip
    return {str(c): _json(_ref("HandsetRefusal"), text[c]) for c in codes}


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _o311_errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json({"type": "array", "items": _ref("Open311Error")}, "Open311 error") for c in codes}


_MODELS: tuple[type[BaseModel], ...] = (
    PositionsBody, ReportBody, CommandBody, AckOut, ErrorOut, CaseBrief, Rejected, Service,
    ServiceDefinition, ServiceRequest, RequestCreated, Open311Error, Open311Form, AddressOut, CandidateOut,
    GeocodeOut, ReverseOut, ComponentOut, NearestOut, ComponentBody, ComponentAckOut, ProposalOut,
    ProposalsOut, HandsetRefusal,
)  # fmt: skip
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    fmt = {"name": "fmt", "in": "path", "required": True, "schema": {"type": "string", "enum": ["json"]}}
    case_id = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}
    query = [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
        for n, d in (("service_request_id", "comma-separated case ids"),
                     ("service_code", "comma-separated service codes"),
                     ("start_date", "W3C date-time with a zone"), ("end_date", "W3C date-time with a zone"),
                     ("status", "open, closed or open,closed"))
    ]  # fmt: skip
    api = API_PREFIX
    o311 = OPEN311_PREFIX
    body = {"required": True, "content": {"application/json": {"schema": _ref("ComponentBody")}}}
    paths: dict[str, Any] = {
        f"{api}/positions": {
            "post": {
                "summary": "Batch positions (keys of role supervisor or admin)",
                "security": SECURITY,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PositionsBody")}},
                },
                "responses": {
                    "200": _json(_ref("AckOut"), "per-fix acknowledgement (partial batches too)"),
                    **_errors(400, 401, 403, 413, 422, 503),
                },
            }
        },
        f"{api}/reports": {
            "post": {
                "summary": "Report a case (a point, or only an address or a grid code: needs location)",
                "security": SECURITY,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ReportBody")}},
                },
                "responses": {
                    "201": _json(_ref("AckOut"), "reported"),
                    "200": _json(_ref("AckOut"), "a retry"),
                    **_errors(400, 401, 403, 409, 413, 422, 503),
                },
            }
        },
        f"{api}/cases/{{case_id}}": {
            "get": {
                "summary": "A case's stage, status, deadlines and events",
                "security": SECURITY,
                "parameters": [case_id],
                "responses": {"200": _json(_ref("CaseBrief"), "the case"), **_errors(401, 404, 503)},
            }
        },
        f"{api}/cases/{{case_id}}/{{action}}": {
            "post": {
                "summary": "A lifecycle command",
                "security": SECURITY,
                "parameters": [
                    case_id,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": sorted(COMMANDS)},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CommandBody")}},
                },
                "responses": {
                    "200": _json(_ref("AckOut"), "applied (or a retry)"),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            }
        },
        f"{api}/geocode": {
            "get": {
                "summary": "Geocode an address (门牌): candidates, and the point a report would be placed at",
                "security": SECURITY,
                "parameters": [
                    _query("q", "the address (at most 200 characters)", {"type": "string", "maxLength": 200},
                           required=True),
                    _query("limit", "candidates (1–20)",
                           {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}),
                ],
                "responses": {
                    "200": _json(_ref("GeocodeOut"), "candidates"),
                    **_errors(400, 401, 413, 503),
                },
            }
        },
        f"{api}/reverse": {
            "get": {
                "summary": "Reverse geocode: the nearest address to a point, and its distance",
                "security": SECURITY,
                "parameters": [
                    _query("lon", "longitude (in crs)", {"type": "number"}, required=True),
                    _query("lat", "latitude (in crs)", {"type": "number"}, required=True),
                    _query("max_m", "how far to look, metres (at most 5000)",
                           {"type": "number", "exclusiveMinimum": 0, "maximum": 5000, "default": 500}),
                    _query("crs", "the CRS of lon/lat",
                           {"type": "string", "enum": ["wgs84", "gcj02", "bd09"], "default": "wgs84"}),
                ],
                "responses": {
                    "200": _json(_ref("ReverseOut"), "the nearest address (or null)"),
                    **_errors(400, 401, 422, 503),
                },
            }
        },
        f"{api}/components/nearest": {
            "get": {
                "summary": "The 部件 objects of a class nearest a point (to pick the one a report names)",
                "security": SECURITY,
                "parameters": [
                    _query("class", "the 4-digit 部件 class code",
                           {"type": "string", "pattern": "^[0-9]{4}$"}, required=True),
                    _query("lon", "longitude (in crs)", {"type": "number"}, required=True),
                    _query("lat", "latitude (in crs)", {"type": "number"}, required=True),
                    _query("k", "how many (1-50)",
                           {"type": "integer", "minimum": 1, "maximum": 50, "default": 5}),
                    _query("max_m", "how far to look, metres (at most 2000)",
                           {"type": "number", "exclusiveMinimum": 0, "maximum": 2000, "default": 500}),
                    _query("crs", "the CRS of lon/lat",
                           {"type": "string", "enum": ["wgs84", "gcj02", "bd09"], "default": "wgs84"}),
                ],
                "responses": {
                    "200": _json(_ref("NearestOut"), "the nearest objects"),
                    **_errors(400, 401, 422, 503),
                },
            }
        },
        f"{api}/components": {
            "post": {
                "summary": "Add a 部件 object to the inventory (admin keys; history kept; idempotent by id)",
                "security": SECURITY,
                "requestBody": body,
                "responses": {
                    "201": _json(_ref("ComponentAckOut"), "added (or a duplicate: 200)"),
                    "200": _json(_ref("ComponentAckOut"), "a retry of an applied update (duplicates)"),
                    **_errors(400, 401, 403, 413, 422, 503),
                },
            }
        },
        f"{api}/components/{{component_id}}/{{action}}": {
            "post": {
                "summary": "Move a 部件 object, change its state or owners, or retire it (admin keys)",
                "security": SECURITY,
                "parameters": [
                    {"name": "component_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "action", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": ["move", "state", "owners", "retire"]}},
                ],
                "requestBody": body,
                "responses": {
                    "200": _json(_ref("ComponentAckOut"), "applied, or a duplicate (a retry)"),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            }
        },
        "/m/api/proposals": {
            "get": {
                "summary": "The handset's supervisor's 部件 proposals and their outcome (device tokens); a "
                "proposal itself is the proposal event of /device, a decision a desk command",
                "security": [{"bearer": []}],
                "responses": {
                    "200": _json(_ref("ProposalsOut"), "newest first"),
                    **_handset(401, 403),
                },
            }
        },
        "/m/api/components/nearest": {
            "get": {
                "summary": "The 部件 objects of a class nearest a point, for a proposal's move or state "
                "(device tokens)",
                "security": [{"bearer": []}],
                "parameters": [
                    _query("class", "the 4-digit 部件 class code",
                           {"type": "string", "pattern": "^[0-9]{4}$"}, required=True),
                    _query("lon", "longitude (WGS-84)", {"type": "number"}, required=True),
                    _query("lat", "latitude (WGS-84)", {"type": "number"}, required=True),
                    _query("k", "how many (1-50)",
                           {"type": "integer", "minimum": 1, "maximum": 50, "default": 8}),
                    _query("max_m", "how far to look, metres (at most 2000)",
                           {"type": "number", "exclusiveMinimum": 0, "maximum": 2000, "default": 300}),
                ],
                "responses": {
                    "200": _json(_ref("NearestOut"), "the nearest objects"),
                    **_handset(400, 401, 403, 422),
                },
            }
        },
        f"{api}/components/{{component_id}}": {
            "get": {
                "summary": "One 部件 object: class, point, grid, state, units and who handles its reports",
                "security": SECURITY,
                "parameters": [
                    {"name": "component_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _json(_ref("ComponentOut"), "the object"), **_errors(401, 404, 503)},
            }
        },
        f"{api}/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        f"{o311}/services.{{fmt}}": {
            "get": {
                "summary": "Open311 services (minor classes)",
                "parameters": [fmt],
                "responses": {
                    "200": _json({"type": "array", "items": _ref("Service")}, "services"),
                    **_o311_errors(400, 503),
                },
            }
        },
        f"{o311}/services/{{service_code}}.{{fmt}}": {
            "get": {
                "summary": "Open311 service definition",
                "parameters": [
                    {"name": "service_code", "in": "path", "required": True, "schema": {"type": "string"}},
                    fmt,
                ],
                "responses": {
                    "200": _json(_ref("ServiceDefinition"), "definition"),
                    **_o311_errors(400, 404, 503),
                },
            }
        },
        f"{o311}/requests.{{fmt}}": {
            "get": {
                "summary": "Open311 service requests",
                "parameters": [fmt, *query],
                "responses": {
                    "200": _json({"type": "array", "items": _ref("ServiceRequest")}, "requests"),
                    **_o311_errors(400, 503),
                },
            },
            "post": {
                "summary": "File an Open311 service request (source public)",
                "parameters": [fmt],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": _ref("Open311Form")}},
                },
                "responses": {
                    "201": _json({"type": "array", "items": _ref("RequestCreated")}, "filed"),
                    **_o311_errors(400, 403, 503),
                },
            },
        },
        f"{o311}/requests/{{case_id}}.{{fmt}}": {
            "get": {
                "summary": "One Open311 service request",
                "parameters": [case_id, fmt],
                "responses": {
                    "200": _json({"type": "array", "items": _ref("ServiceRequest")}, "the request"),
                    **_o311_errors(400, 404, 503),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GridWall HTTP API and Open311 GeoReport v2",
            "version": "1",
            "description": "Writes go through the feed pipeline; rejection reasons: "
            + ", ".join(r.value for r in Reason),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
