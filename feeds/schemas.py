"""Input payloads of the feeds (pydantic) and the named reasons an input is rejected.

Every event a device or gateway sends is parsed here first; what does not parse is rejected with
``malformed`` (not a JSON object), ``missing_field``, ``wrong_type`` or ``too_large``, and the
message names the field. Nothing else in the pipeline sees raw input.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_BATCH = 1000  # fixes per ``positions`` event
MAX_PAYLOAD_BYTES = 256 * 1024  # one event, as received


class Reason(StrEnum):
    """Named rejection reasons (the protocol reference lists each with its meaning)."""

    MALFORMED = "malformed"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    TOO_LARGE = "too_large"
    BAD_COORDINATES = "bad_coordinates"
    ZERO_COORDINATES = "zero_coordinates"
    OUTSIDE_DISTRICT = "outside_district"
    IN_FUTURE = "in_future"
    TOO_OLD = "too_old"
    DUPLICATE = "duplicate"
    IMPOSSIBLE_SPEED = "impossible_speed"
    UNKNOWN_SUPERVISOR = "unknown_supervisor"
    UNKNOWN_CLASS = "unknown_class"
    UNKNOWN_CASE = "unknown_case"
    UNKNOWN_TASK = "unknown_task"
    UNKNOWN_HANDOVER = "unknown_handover"  # handover ack: no such handover
    HANDOVER_EXISTS = "handover_exists"  # handover open: this shift was handed over already
    ALREADY_ACKNOWLEDGED = "already_acknowledged"  # handover ack: another shift leader took it over already
    SELF_ACKNOWLEDGE = "self_acknowledge"  # handover ack: by the shift leader who handed it over
    NOT_ALLOWED = "not_allowed"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # feeds.media: content is not an accepted type
    UNKNOWN_MEDIA = "unknown_media"  # a media reference that is malformed or was never uploaded
    UNKNOWN_ADDRESS = "unknown_address"  # locate: an address_id that is not in the gazetteer
    UNKNOWN_COMPONENT = "unknown_component"  # report: a component_id not in the inventory (or retired)
    COMPONENT_CLASS_MISMATCH = "component_class_mismatch"  # report: the object is of another class
    COMPONENT_EXISTS = "component_exists"  # component add: the identifier is in the inventory already
    PHOTO_REQUIRED = "photo_required"  # proposal: a proposal of a 部件 update carries a photo
    UNKNOWN_PROPOSAL = "unknown_proposal"  # proposal_decision: no such proposal
    PROPOSAL_DECIDED = "proposal_decided"  # proposal_decision: the proposal was accepted or refused already


_BASE = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)
Crs = Literal["wgs84", "gcj02", "bd09"]
Text = Annotated[str, Field(max_length=1000)]
Key = Annotated[str, Field(min_length=1, max_length=100)]
PersonId = Annotated[str, Field(min_length=1, max_length=64)]


def _aware(value: Any) -> Any:
    """Epoch milliseconds or ISO 8601; naive instants are refused (the sender must say its zone)."""
    if isinstance(value, bool):
        raise ValueError("an instant, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("instant must be finite")
        if not 1e11 <= value < 1e14:  # seconds (or nonsense) would land in 1970 or far ahead
            raise ValueError("epoch instants are milliseconds since 1970 (13 digits)")
        return datetime.fromtimestamp(value / 1000.0, UTC)
    return value


class _Instant(BaseModel):
    model_config = _BASE

    at: datetime

    @field_validator("at", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> Any:
        return _aware(value)

    @field_validator("at")
    @classmethod
    def _zone(cls, value: datetime) -> datetime:
        if value.tzinfo is UTC:  # epoch milliseconds (already UTC)
            return value
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("instant needs a time zone (use Z or +08:00, or epoch milliseconds)")
        return value.astimezone(UTC)


class FixIn(_Instant):
    """One position fix of a handset."""

    id: Key | None = None
    supervisor: PersonId | None = None
    lon: float
    lat: float
    crs: Crs = "wgs84"
    accuracy: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    speed: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None  # m/s


class PositionsIn(BaseModel):
    """A batch of fixes (``positions``)."""

    model_config = _BASE
    fixes: Annotated[list[dict[str, Any]], Field(max_length=MAX_BATCH)]


class ValidPositionsIn(BaseModel):
    """A batch of fixes that are all valid (``positions``' fast path: one validation call a batch)."""

    model_config = _BASE
    fixes: Annotated[list[FixIn], Field(max_length=MAX_BATCH)]


class ReportIn(_Instant):
    """A new case found on patrol (``report``)."""

    id: Key  # idempotency key
    supervisor: PersonId | None = None
    case_id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    kind: Literal["component", "event"]
    class_code: Annotated[str, Field(min_length=1, max_length=8)]
    condition_code: Annotated[str, Field(max_length=8)] | None = None
    lon: float | None = None  # without a point: an address or a grid_code, and the case needs location
    lat: float | None = None
    crs: Crs = "wgs84"
    address: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    grid_code: Annotated[str, Field(pattern=r"^[0-9]{15}$")] | None = None
    # a 部件 report may name the object (16-digit identifier, issue 18): checked against the inventory
    component_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    description: Text = ""
    media: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=10)] = []
    source: Literal["supervisor", "public", "hotline", "leader", "video", "department"] = "supervisor"
    # 自处置: the supervisor fixed it on the spot; ``media`` are the photos before, ``handled_media`` after
    self_handled: bool = False
    handled_media: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=10)] = []

    @model_validator(mode="after")
    def _somewhere(self) -> ReportIn:
        if (self.lon is None) != (self.lat is None):
            raise PydanticCustomError(
                "missing", "missing field {field}", {"field": "lat" if self.lat is None else "lon"}
            )
        if self.lon is None and self.address is None and self.grid_code is None and self.component_id is None:
            raise PydanticCustomError(
                "missing", "a report needs a point (lon, lat), an address, a grid_code or a component_id"
            )
        if self.self_handled and not (self.media and self.handled_media):
            raise PydanticCustomError(
                "missing", "missing field {field}", {"field": "handled_media" if self.media else "media"}
            )
        return self

    @property
    def needs_location(self) -> bool:
        """No point: the case enters 待受理 flagged "needs location" (an address or a grid only)."""
        return self.lon is None or self.lat is None


class ComponentUpdateIn(_Instant):
    """An online update of the 部件 inventory (``component``, issue 18): ``add`` an object (its point,
    class from the identifier, owners), ``move`` it, change its ``state`` or ``owners``, ``retire`` it."""

    id: Key  # idempotency key
    action: Literal["add", "move", "state", "owners", "retire"]
    component_id: Annotated[str, Field(min_length=1, max_length=32)]
    name: Annotated[str, Field(max_length=64)] | None = None
    lon: float | None = None  # add, move
    lat: float | None = None
    crs: Crs = "wgs84"
    state: Annotated[str, Field(max_length=8)] | None = None  # add, state: 完好/破损/丢失/占用/其他
    unit_main: Annotated[str, Field(max_length=16)] | None = None  # add, owners: department codes
    unit_owner: Annotated[str, Field(max_length=16)] | None = None
    unit_care: Annotated[str, Field(max_length=16)] | None = None
    reason: Text = ""  # why (kept in the history)


MAX_PROPOSAL_PHOTOS = 3
MAX_PROPOSAL_NOTE = 500


class ProposalIn(_Instant):
    """A supervisor's proposal of a 部件 update from the handset (``proposal``, issue 18): ``add`` a new
    object (class, name, point), ``move`` an object or change its ``state``; with a photo."""

    id: Key  # idempotency key
    supervisor: PersonId | None = None
    action: Literal["add", "move", "state"]
    class_code: Annotated[str, Field(min_length=1, max_length=8)]
    component_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None  # move, state
    name: Annotated[str, Field(max_length=64)] | None = None  # add
    lon: float | None = None  # add, move: the new point (the phone's position or a tap on its map)
    lat: float | None = None
    crs: Crs = "wgs84"
    state: Annotated[str, Field(max_length=8)] | None = None  # add (default 完好), state
    note: Annotated[str, Field(max_length=MAX_PROPOSAL_NOTE)] = ""
    media: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=MAX_PROPOSAL_PHOTOS)] = []


class ProposalDecisionIn(_Instant):
    """A surveyor's (or admin's) decision on a proposal (``proposal_decision``): ``accept`` applies it as a
    ``component`` update, ``refuse`` sends it back with a reason."""

    id: Key  # idempotency key
    proposal: Annotated[int, Field(ge=1, le=2**62)]
    decision: Literal["accept", "refuse"]
    reason: Annotated[str, Field(max_length=200)] = ""


class TaskAckIn(_Instant):
    """A handset confirms it received a 核实/核查 task (``task_ack``)."""

    id: Key
    supervisor: PersonId | None = None
    case_id: Annotated[str, Field(min_length=1, max_length=32)]
    task: Literal["verify", "check"]


class TaskResultIn(_Instant):
    """The result of a 核实 (verify: is the report real?) or 核查 (check: is it fixed?) task."""

    id: Key
    supervisor: PersonId | None = None
    case_id: Annotated[str, Field(min_length=1, max_length=32)]
    task: Literal["verify", "check"]
    result: bool  # verify: confirmed; check: passed
    opinion: Text = ""
    media: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=10)] = []


class CommandIn(_Instant):
    """A lifecycle command from a gateway speaking for a centre or department operator (``command``)."""

    id: Key
    action: Annotated[str, Field(min_length=1, max_length=24)]
    case_id: Annotated[str, Field(min_length=1, max_length=32)]
    actor: PersonId
    role: Annotated[str, Field(min_length=1, max_length=24)]
    department: Annotated[str, Field(max_length=16)] | None = None
    opinion: Text = ""
    data: dict[str, str | int | float | bool | None] = {}


MAX_HANDOVER_NOTES = 2000  # characters of a handover's (or its acknowledgement's) notes


class HandoverIn(_Instant):
    """The shift handover from the desk (``handover``, issue 21): ``open`` (交班: the outgoing shift leader's
    snapshot of the shift ``shift_start``–``shift_end`` and notes) or ``ack`` (接班确认 of ``handover``)."""

    id: Key  # idempotency key
    action: Literal["open", "ack"]
    handover: Annotated[int, Field(ge=1, le=2**62)] | None = None  # ack: the handover's number
    shift_start: datetime | None = None  # open: set by the desk from the centre's shifts (domain.shift)
    shift_end: datetime | None = None
    notes: Annotated[str, Field(max_length=MAX_HANDOVER_NOTES)] = ""


def describe(exc: ValidationError) -> tuple[Reason, str]:
    """The reason and a one-line message for a pydantic error (first error wins)."""
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else {"type": "value_error", "loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
    kind = str(first.get("type", ""))
    if kind == "missing":
        return Reason.MISSING_FIELD, f"missing field {where}" if first.get("loc") else str(first.get("msg"))
    lists = ("fixes", "media", "handled_media", "note")
    if kind in ("too_long", "list_too_long", "string_too_long") and where in lists:
        return Reason.TOO_LARGE, f"{where}: {first.get('msg', '')}"
    if kind == "model_type" and where == "payload":
        return Reason.MALFORMED, "payload must be a JSON object"
    return Reason.WRONG_TYPE, f"{where}: {first.get('msg', '')}"
