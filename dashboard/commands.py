"""The desk's one command path: a logged-in person's lifecycle command through the pipeline.

:func:`run_command` is what every desk write calls (``POST /api/v1/commands`` and any callback):
it builds the same ``command`` body as the ``/api/v1`` and ``/device`` feeds and submits it with a
:class:`SessionSpeaker`, so the pipeline checks the person (active, in the role they act in), the
lifecycle checks the rule (refusals carry the rule's name: ``wrong_role``, ``wrong_status`` …) and
the client's idempotency key makes a repeated submission a duplicate, not a second command.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, request

from dashboard.auth import CSRF_HEADER, csrf_ok, current_person
from feeds.http import COMMAND_DATA, COMMANDS, Refusal, json_response, parse_body, refused, status_of
from feeds.ingest import Ingest
from feeds.schemas import Reason

MAX_BODY = 64 * 1024
KEEP_KEYS = 20_000  # idempotency keys whose first instant is remembered (a retry repeats the command)


class _Instants:
    """The instant each (person, key) was first submitted at, so a retry is the same command.

    The case log fingerprints a command with its instant: a retry stamped anew would be refused as
    ``idempotency_key_conflict``. The same key on another command gets its own instant (and the
    store's conflict). Kept per process; a client may also send ``at`` itself.
    """

    def __init__(self, cap: int = KEEP_KEYS) -> None:
        self.cap = cap
        self._at: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, command: tuple[str, ...], now: str) -> str:
        """The first instant of a command (person, key, action, case); ``now`` when new."""
        with self._lock:
            found = self._at.get(command)
            if found is not None:
                self._at.move_to_end(command)
                return found
            self._at[command] = now
            while len(self._at) > self.cap:
                self._at.popitem(last=False)
            return now


INSTANTS = _Instants()


@dataclass(frozen=True)
class SessionSpeaker:
    """A logged-in desk person as a pipeline speaker: speaks only for themself."""

    person_id: str
    role: str
    department: str | None = None
    kind: str = "session"

    @property
    def name(self) -> str:
        """The credential's name (dead-letter sources, origins)."""
        return f"desk:{self.person_id}"[:64]

    def may_speak_for(self, person_id: str) -> bool:
        """Only the logged-in person."""
        return person_id == self.person_id


def run_command(
    pipeline: Ingest,
    person: Mapping[str, Any],
    action: str,
    case_id: str,
    data: Mapping[str, Any] | None = None,
    key: str | None = None,
    opinion: str = "",
) -> dict[str, Any]:
    """Submit one lifecycle command as ``person`` (``person_id``, ``role``, ``department``); the ack.

    ``action`` is an ``Action`` value or an ``/api/v1`` alias (``handle``, ``return`` …); ``data``
    keeps the fields the lifecycle reads (``feeds.http.COMMAND_DATA`` and a nested ``data``);
    ``key`` is the client's idempotency key (one is made when missing: then a retry is a new command);
    ``data["at"]`` is the command's instant (default: when the key was first seen in this process).
    """
    speaker = SessionSpeaker(str(person["person_id"]), str(person["role"]), person.get("department"))
    source = speaker.name[:32]
    act = COMMANDS.get(action)
    if act is None:
        msg = f"unknown command {action!r}; use one of {', '.join(sorted(COMMANDS))}"
        return pipeline.reject(
            "command", {"action": action, "case_id": case_id}, source, Reason.MALFORMED, msg
        )
    given = dict(data or {})
    nested = given.pop("data", None)
    fields = {k: given[k] for k in COMMAND_DATA if k in given}
    if isinstance(nested, dict):
        fields = {**nested, **fields}
    key = key or f"desk-{uuid.uuid4().hex}"
    at = given.pop("at", None)
    if not isinstance(at, str | int) or isinstance(at, bool):
        at = INSTANTS.of((speaker.person_id, key, act.value, case_id), pipeline.clock().isoformat())
    raw = {
        "id": key,
        "action": act.value,
        "case_id": case_id,
        "actor": speaker.person_id,
        "role": speaker.role,
        "department": speaker.department if speaker.role == "department" else None,
        "opinion": opinion,
        "at": at,
        "data": fields,
    }
    return pipeline.submit("command", raw, speaker, source=source)


COMPONENT_ACTIONS = {"component_state": "state", "component_owners": "owners", "component_move": "move",
                     "component_retire": "retire"}  # fmt: skip
ROLE_UNITS = ("unit_main", "unit_owner", "unit_care")


def run_component_update(
    pipeline: Ingest,
    person: Mapping[str, Any],
    action: str,
    code: str,
    data: Mapping[str, Any],
    key: str | None,
    opinion: str = "",
) -> dict[str, Any]:
    """An online update of a 部件 from the component page (an admin's session): the ``component`` event
    of the one pipeline, as ``POST /api/v1/components/<id>/<action>`` sends it (``component_owners``:
    the chosen ``department`` for one ``role``; the other units stay)."""
    speaker = SessionSpeaker(str(person["person_id"]), str(person["role"]), person.get("department"))
    key = key or f"desk-{uuid.uuid4().hex}"
    at = INSTANTS.of((speaker.person_id, key, action, code), pipeline.clock().isoformat())
    raw: dict[str, Any] = {"id": key, "action": COMPONENT_ACTIONS[action], "component_id": code, "at": at,
                           "reason": opinion}  # fmt: skip
    for k in ("lon", "lat", "crs", "state"):
        if data.get(k) is not None:
            raw[k] = data[k]
    if action == "component_owners":
        role = str(data.get("role") or "unit_care")
        if role in ROLE_UNITS:
            raw[role] = str(data.get("department") or "")  # "" clears the role's unit
    return pipeline.submit("component", raw, speaker, source=speaker.name[:32])


PROPOSAL_ACTIONS = {"proposal_accept": "accept", "proposal_refuse": "refuse"}


def run_proposal_decision(
    pipeline: Ingest, person: Mapping[str, Any], action: str, number: str, key: str | None, reason: str = ""
) -> dict[str, Any]:
    """A surveyor's (or an admin's) decision on a handset proposal from ``/desk/proposals``: the
    ``proposal_decision`` event of the one pipeline (``proposal_accept`` applies it to the inventory,
    ``proposal_refuse`` sends it back with ``reason``); the pipeline checks the session's role."""
    speaker = SessionSpeaker(str(person["person_id"]), str(person["role"]), person.get("department"))
    key = key or f"desk-{uuid.uuid4().hex}"
    at = INSTANTS.of((speaker.person_id, key, action, number), pipeline.clock().isoformat())
    raw: dict[str, Any] = {"id": key, "proposal": number.lstrip("#"), "decision": PROPOSAL_ACTIONS[action],
                           "reason": reason, "at": at}  # fmt: skip
    return pipeline.submit("proposal_decision", raw, speaker, source=speaker.name[:32])


HANDOVER_ACTIONS = {"handover_open": "open", "handover_ack": "ack"}


def run_handover(
    pipeline: Ingest, person: Mapping[str, Any], action: str, body: Mapping[str, Any], key: str | None
) -> dict[str, Any]:
    """The shift handover from ``/desk/handover`` (issue 21): ``handover_open`` (交班) hands over the shift
    the city's clock is in (``store.handover.shift_plan``) with the notes (``opinion``);
    ``handover_ack`` (接班确认) acknowledges handover ``case_id``; the pipeline checks the role."""
    from domain.shift import shift_of
    from domain.workcalendar import DEFAULT_TZ
    from store.handover import shift_plan

    speaker = SessionSpeaker(str(person["person_id"]), str(person["role"]), person.get("department"))
    key = key or f"desk-{uuid.uuid4().hex}"
    number = str(body.get("case_id") or "")
    at = INSTANTS.of((speaker.person_id, key, action, number), pipeline.clock().isoformat())
    raw: dict[str, Any] = {"id": key, "action": HANDOVER_ACTIONS[action], "at": at,
                           "notes": body.get("opinion") or ""}  # fmt: skip
    if action == "handover_open":
        cal = getattr(getattr(pipeline, "ctx", None), "calendar", None)  # the city's zone
        tz = cal.tz if cal is not None else ZoneInfo(DEFAULT_TZ)
        span = shift_of(datetime.fromisoformat(str(at)), shift_plan(), tz)
        raw.update(shift_start=span.start.isoformat(), shift_end=span.end.isoformat())
    else:
        raw["handover"] = number.lstrip("#")
    return pipeline.submit("handover", raw, speaker, source=speaker.name[:32])


def install_commands(server: Flask, pipeline: Callable[[], Ingest | None]) -> None:
    """``POST /api/v1/commands``: a logged-in person's command (session cookie + ``X-CSRF-Token``).

    Body: ``{"action", "case_id", "opinion"?, "data"?, "id"?}`` (``id`` or the ``Idempotency-Key``
    header is the idempotency key). The answer is the pipeline's acknowledgement with the HTTP status
    of its first refusal (``feeds.http.HTTP_STATUS``), answered with the HTTP helpers the API uses.
    """

    @server.post("/api/v1/commands")
    def desk_command() -> Response:
        me = current_person()
        if me is None:
            return json_response({"error": "login_required", "message": "log in at /login"}, 401)
        if not csrf_ok(request.headers.get(CSRF_HEADER)):
            return json_response({"error": "csrf", "message": f"missing or wrong {CSRF_HEADER} header"}, 403)
        p = pipeline()
        if p is None:
            return json_response({"error": "unavailable", "message": "the live core is starting; retry"}, 503)
        source = f"desk:{me['person_id']}"[:32]
        try:
            body = parse_body(p, "command", source, limit=MAX_BODY)
        except Refusal as exc:
            return json_response(exc.body, exc.status)
        if isinstance(body, dict) and body.get("action") in HANDOVER_ACTIONS:  # /desk/handover (issue 21)
            key = body.get("id") or request.headers.get("Idempotency-Key")
            ack = run_handover(p, me, str(body["action"]), body, str(key) if key else None)
            status = status_of(ack)
            return json_response(refused(ack) if status >= 400 else ack, status)
        if isinstance(body, dict) and body.get("action") in COMPONENT_ACTIONS and body.get("case_id"):
            key = body.get("id") or request.headers.get("Idempotency-Key")  # the 部件 page (issue 18)
            ack = run_component_update(p, me, str(body["action"]), str(body["case_id"]), body,
                                       str(key) if key else None, str(body.get("opinion") or ""))  # fmt: skip
            status = status_of(ack)
            return json_response(refused(ack) if status >= 400 else ack, status)
        if isinstance(body, dict) and body.get("action") in PROPOSAL_ACTIONS and body.get("case_id"):
            key = body.get("id") or request.headers.get("Idempotency-Key")  # /desk/proposals (issue 18)
            why, given = str(body.get("opinion") or ""), str(key) if key else None
            ack = run_proposal_decision(p, me, str(body["action"]), str(body["case_id"]), given, why)
            status = status_of(ack)
            return json_response(refused(ack) if status >= 400 else ack, status)
        if not isinstance(body, dict) or not isinstance(body.get("action"), str) or not body.get("case_id"):
            ack = p.reject("command", {"body": str(body)[:500]}, source, Reason.MISSING_FIELD,
                           "a command needs action and case_id")  # fmt: skip
            return json_response(refused(ack), 400)
        key = body.get("id") or request.headers.get("Idempotency-Key")
        data = {k: v for k, v in body.items() if k not in ("action", "case_id", "opinion", "id")}
        ack = run_command(p, me, body["action"], str(body["case_id"]), data, str(key) if key else None,
                          str(body.get("opinion") or ""))  # fmt: skip
        status = status_of(ack)
        return json_response(refused(ack) if status >= 400 else ack, status)
