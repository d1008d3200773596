"""Supervisors' proposals of 部件 updates (issue 18) in the store: made on the handset, decided on the desk.

A supervisor proposes a new object (class, name, point, photo, note), a move or a state change of an
existing one (``feeds.intake`` checks and locates it; the pipeline's writer calls :func:`propose`).
The proposal waits (待审) until a surveyor or an admin decides (:func:`decide`, in the pipeline's
transaction too): accepting applies it as a ``component`` update (``store.components.apply_update``,
history "proposal #n by <supervisor>", a new object's identifier numbered next in its class) and marks
it 已采纳; refusing marks it 已退回 with the reason, which the supervisor's handset shows.

Both are idempotent by the client's key: a proposal repeated with its key is the first one; a decision
repeated with its key is answered as the first, and any other decision of a decided proposal is
refused ``proposal_decided``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from store.components import apply_update
from store.models import Component, Proposal

_proposals: Table = Proposal.__table__  # type: ignore[assignment]
_components: Table = Component.__table__  # type: ignore[assignment]


class Status(StrEnum):
    """Where a proposal is: waiting for the surveyor, accepted (applied) or refused (sent back)."""

    PENDING = "待审"
    ACCEPTED = "已采纳"
    REFUSED = "已退回"


def propose(conn: Connection, proposal: Mapping[str, Any], at: datetime, now: datetime) -> tuple[str, int]:
    """Store one proposal (checked and located by ``feeds.intake``): ``("accepted", number)``, or
    ``("duplicate", number)`` when its key was stored before (a retry of the phone's outbox)."""
    key = str(proposal["key"])
    seen = conn.scalar(select(_proposals.c.id).where(_proposals.c.key == key))
    if seen is not None:
        return "duplicate", int(seen)
    payload = {k: proposal[k] for k in ("name", "lon", "lat", "state", "note", "adcode") if k in proposal}
    row = {
        "key": key,
        "supervisor": str(proposal["supervisor"]),
        "at": at,
        "received_at": now,
        "action": str(proposal["action"]),
        "class_code": str(proposal["class_code"]),
        "component_id": proposal.get("component_id"),
        "grid_code": proposal.get("grid_code"),
        "payload": payload,
        "media": proposal.get("media") or None,
        "status": Status.PENDING.value,
        "reason": "",
    }
    number = conn.execute(_proposals.insert().values(row)).inserted_primary_key[0]  # type: ignore[index]
    return "accepted", int(number)


def next_identifier(conn: Connection, adcode: str, class_code: str) -> str:
    """The next free identifier of a class in the district: county + class + the next 6-digit serial."""
    prefix = f"{adcode}{class_code}"
    top = conn.scalar(select(func.max(_components.c.id)).where(_components.c.id.like(f"{prefix}%")))
    serial = int(str(top)[10:]) + 1 if top else 1
    if serial > 999_999:
        raise ValueError(f"no serial left in class {class_code}")
    return f"{prefix}{serial:06d}"


def decide(conn: Connection, decision: Mapping[str, Any], at: datetime) -> tuple[str, int, str]:
    """A surveyor's decision on a proposal: ``(outcome, number, message)`` where outcome is
    ``accepted``, ``duplicate`` (this decision's key decided it before) or a named refusal
    (``unknown_proposal``, ``proposal_decided``, or the component update's own: ``component_exists``,
    ``unknown_component``). Accepting applies the proposal as a ``component`` update."""
    number, key, actor = int(decision["proposal"]), str(decision["key"]), str(decision["actor"])
    p = conn.execute(select(_proposals).where(_proposals.c.id == number)).mappings().first()
    if p is None:
        return "unknown_proposal", number, f"no proposal #{number}"
    if p["status"] != Status.PENDING.value:
        if p["decision_key"] == key:
            return "duplicate", number, ""
        return "proposal_decided", number, f"proposal #{number} is {p['status']} already"
    reason = str(decision.get("reason") or "")[:200]
    values: dict[str, Any] = {"decided_at": at, "decider": actor[:64], "reason": reason, "decision_key": key}
    if decision["decision"] == "refuse":
        values["status"] = Status.REFUSED.value
        conn.execute(_proposals.update().where(_proposals.c.id == number).values(values))
        return "accepted", number, ""
    update = proposal_update(conn, p, number, key)
    why = f"proposal #{number} by {p['supervisor']}" + (f": {reason}" if reason else "")
    result = apply_update(conn, {**update, "reason": why[:200]}, at, actor)
    if result not in ("accepted", "duplicate"):  # duplicate: the object is already as proposed
        return result, number, f"proposal #{number}: component {update['id']}: {result}"
    values.update(status=Status.ACCEPTED.value, result_component=update["id"])
    conn.execute(_proposals.update().where(_proposals.c.id == number).values(values))
    return "accepted", number, ""


def proposal_update(conn: Connection, p: Mapping[Any, Any], number: int, key: str) -> dict[str, Any]:
    """The ``component`` update (``store.components.apply_update``) that accepting a proposal applies."""
    d = dict(p["payload"] or {})
    update: dict[str, Any] = {"action": p["action"], "key": key}
    if p["action"] in ("add", "move"):
        lon, lat = float(d["lon"]), float(d["lat"])
        update.update(
            lon=lon,
            lat=lat,
            grid_code=p["grid_code"],
            geometry=json.dumps({"type": "Point", "coordinates": [lon, lat]}),
        )
    if p["action"] == "add":
        update.update(
            id=next_identifier(conn, str(d["adcode"]), p["class_code"]),
            class_code=p["class_code"],
            name=str(d.get("name") or ""),
            state=d.get("state") or "完好",
            unit_main=None,
            unit_owner=None,
            unit_care=None,
            attributes={"proposal": number},
        )
    else:
        update["id"] = p["component_id"]
        if p["action"] == "state":
            update["state"] = d["state"]
    return update


def as_json(p: Mapping[Any, Any]) -> dict[str, Any]:
    """One proposal as the handset and the desk show it."""
    d = dict(p["payload"] or {})
    return {
        "number": int(p["id"]),
        "id": str(p["key"]).split(":", 1)[-1],
        "supervisor": p["supervisor"],
        "at": p["at"].isoformat(),
        "action": p["action"],
        "class_code": p["class_code"],
        "component_id": p["component_id"],
        "grid": p["grid_code"],
        "name": d.get("name") or "",
        "lon": d.get("lon"),
        "lat": d.get("lat"),
        "state": d.get("state"),
        "note": d.get("note") or "",
        "media": p["media"],
        "status": p["status"],
        "decided_at": p["decided_at"].isoformat() if p["decided_at"] else None,
        "decider": p["decider"],
        "reason": p["reason"] or "",
        "result_component": p["result_component"],
    }


def of_supervisor(conn: Connection, supervisor: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """A supervisor's latest proposals with their outcome, newest first (the handset's list)."""
    rows = (
        conn.execute(
            select(_proposals)
            .where(_proposals.c.supervisor == supervisor)
            .order_by(_proposals.c.id.desc())
            .limit(limit)
        )
        .mappings()
        .all()
    )
    return [as_json(r) for r in rows]


def listing(
    conn: Connection, status: str = Status.PENDING.value, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Proposals of one status (the desk's list: the pending ones, oldest first; decided: newest first)."""
    order = _proposals.c.id if status == Status.PENDING.value else _proposals.c.id.desc()
    rows = (
        conn.execute(select(_proposals).where(_proposals.c.status == status).order_by(order).limit(limit))
        .mappings()
        .all()
    )
    return [as_json(r) for r in rows]


def pending_count(conn: Connection) -> int:
    """How many proposals wait for a decision."""
    return int(conn.scalar(select(func.count()).where(_proposals.c.status == Status.PENDING.value)) or 0)
