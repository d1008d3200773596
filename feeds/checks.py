"""The pipeline's stateless checks: pure functions of an input, its speaker and the clock.

They run in the caller's thread before anything is queued (``feeds.intake``), so a refused input never
reaches the writer, and they need no state: each answers ``(reason, message)`` — a named
:class:`feeds.schemas.Reason` and a sentence for the acknowledgement — or ``(None, "")`` when the input
passes. Keeping them here, apart from the writer and the store, lets them be tested over generated
inputs (``tests/test_checks.py``) and read in one place.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from domain.lifecycle import Actor, Role
from feeds.schemas import MAX_PAYLOAD_BYTES, Reason

SIMULATION_GATEWAY = "simulator"  # the gateway token name of feeds.simulator
REPLAY_GATEWAY = "replay"  # gateway tokens named "replay" or "replay:<what>" (feeds.replay)
# component: an online update of the 部件 inventory (issue 18; admin API keys, admin/surveyor sessions);
# proposal: a supervisor's proposal of one (handsets); proposal_decision: a surveyor's decision (desk)
KINDS: tuple[str, ...] = (
    "position", "positions", "report", "task_ack", "task_result", "command", "component", "proposal",
    "proposal_decision",
)  # fmt: skip
KINDS += ("handover",)  # the shift handover (交班/接班, issue 21): desk sessions of shift leaders only
Verdict = tuple[Reason | None, str]  # a named reason (None: passed) and its message
PASS: Verdict = (None, "")


class Speaker(Protocol):
    """Who sent an input (a store.accounts.Principal)."""

    @property
    def kind(self) -> str:
        """device | gateway | kiosk | api."""
        ...

    @property
    def name(self) -> str:
        """The credential's name."""
        ...

    @property
    def person_id(self) -> str | None:
        """The person a device token belongs to."""
        ...

    def may_speak_for(self, person_id: str) -> bool:
        """Whether this credential may send for that person."""
        ...


def envelope(kind: str, raw: Any) -> Verdict:
    """Whether an event is one the pipeline knows, serialisable, small enough and a JSON object."""
    if kind not in KINDS:
        return Reason.MALFORMED, f"unknown event {kind!r}"
    try:
        size = len(orjson.dumps(raw, default=str))
    except (TypeError, orjson.JSONEncodeError):
        return Reason.MALFORMED, unstorable(raw)
    if size > MAX_PAYLOAD_BYTES:
        return Reason.TOO_LARGE, f"{size} bytes > {MAX_PAYLOAD_BYTES}"
    if not isinstance(raw, dict):
        return Reason.MALFORMED, "payload must be a JSON object"
    return PASS


def coordinates(lon: float, lat: float) -> Verdict:
    """A point's coordinates: finite and in range (bad_coordinates), not 0,0 (zero_coordinates)."""
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
        return Reason.BAD_COORDINATES, f"coordinates out of range: {lon}, {lat}"
    if lon == 0 and lat == 0:
        return Reason.ZERO_COORDINATES, "coordinates 0,0 (no GPS fix)"
    return PASS


def instant(
    at: datetime, now: datetime, future_tolerance: timedelta, retention: timedelta, old_ok: bool = False
) -> Verdict:
    """An input's instant: not later than now + tolerance (in_future), not older than the retention
    (too_old; ``old_ok`` for case events, which may be recorded late)."""
    if at > now + future_tolerance:
        return Reason.IN_FUTURE, f"instant {at.isoformat()} is later than now ({now.isoformat()})"
    if not old_ok and at < now - retention:
        return Reason.TOO_OLD, f"instant {at.isoformat()} is older than the retention period"
    return PASS


def speaker_for(given: str | None, speaker: Speaker) -> tuple[str | None, Reason | None, str]:
    """The person an input is for (the one named, else the token's own) and whether the token may
    speak for them (missing_field, not_allowed)."""
    pid = given or speaker.person_id
    if not pid:
        return None, Reason.MISSING_FIELD, "missing field supervisor"
    if not speaker.may_speak_for(pid):
        return pid, Reason.NOT_ALLOWED, f"this token may not speak for {pid!r}"
    return pid, None, ""


def api_actor(speaker: Speaker) -> Actor | None:
    """Who an API key acts as: ``api:<name>`` in the key's lifecycle role (None: not a valid role).

    The key's role (``store.accounts`` ``tokens.role``) is a ``Role`` value or ``department:<code>``.
    """
    role = getattr(speaker, "role", None)
    if not isinstance(role, str):
        return None
    name, _, dept = role.partition(":")
    try:
        r = Role(name)
    except ValueError:
        return None
    if (r is Role.DEPARTMENT) != bool(dept):
        return None
    return Actor(f"api:{speaker.name}"[:64], r, dept or None)


def scoped_key(speaker: str, ref: str) -> str:
    """An idempotency key scoped by who speaks (≤ 128 characters)."""
    key = f"{speaker}:{ref}"
    return key if len(key) <= 128 else "h:" + hashlib.sha256(key.encode()).hexdigest()


def replayed(kind: str, name: str) -> bool:
    """Whether a credential (kind, name) is a replay of real data (feeds.replay): cases.origin = replay."""
    return kind == "gateway" and (name == REPLAY_GATEWAY or name.startswith(REPLAY_GATEWAY + ":"))


def simulated(speaker: Speaker) -> bool:
    """Whether the speaker is the built-in simulation (its cases and fixes are marked simulated)."""
    return speaker.kind == "gateway" and speaker.name == SIMULATION_GATEWAY


def position_source(source: str) -> str:
    """``positions.source`` of an input source (``<kind>:<name>``): simulation, replay or device."""
    if source == f"gateway:{SIMULATION_GATEWAY}":
        return "simulation"
    kind, _, name = source.partition(":")
    return "replay" if replayed(kind, name) else "device"


def ref_of(raw: Any, default: str = "?") -> str:
    """The client's id of an input, for the acknowledgement."""
    if isinstance(raw, dict):
        ref = raw.get("id")
        if isinstance(ref, str | int) and not isinstance(ref, bool):
            return str(ref)[:100]
    return default


MAX_DEPTH = 254  # nesting orjson writes (and so the store keeps); deeper is refused by name
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # integers orjson writes


def unstorable(raw: Any) -> str:
    """Why a payload cannot be stored as JSON: too deep, an integer out of range, or another value."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list | tuple):
            if depth > MAX_DEPTH:
                return f"payload nested deeper than {MAX_DEPTH} levels"
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
        elif isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
            return "payload holds an integer outside the 64-bit range"
    return "payload is not JSON"


def _storable(value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value, default=str))
    except TypeError:  # orjson.JSONEncodeError too: too deep, an integer out of range
        return repr(value)[:200]


def raw_json(raw: Any) -> dict[str, Any]:
    """A raw payload as a JSON object for the dead-letter table (never fails, bounded size).

    What orjson cannot write (nesting past :data:`MAX_DEPTH`, an integer past 64 bits) is kept as a
    short ``repr``, field by field, so the rest of the payload (its id, its point) stays readable.
    """
    try:
        text = orjson.dumps(raw, default=str)
    except TypeError:
        if isinstance(raw, dict):
            text = orjson.dumps({str(k): _storable(v) for k, v in raw.items()})
        else:
            text = orjson.dumps(repr(raw)[:4000])
    if len(text) > 4000:
        return {"truncated": text[:4000].decode("utf-8", "replace"), "bytes": len(text)}
    if isinstance(raw, dict):
        return dict(orjson.loads(text))
    return {"raw": orjson.loads(text)}
