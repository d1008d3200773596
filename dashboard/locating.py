"""The desk's read side of 定位: the cases waiting for a location, their candidates, a case's nearest 门牌.

Read-only (the desk's read engine); placing a case is the ``locate`` command through the one command
path (``assets/gw-desk.js`` → ``POST /api/v1/commands`` → ``feeds.intake`` → the lifecycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.address import Address, Candidate
from domain.lifecycle import Status
from store.addresses import AddressBook
from store.models import Case

WAITING_ROWS = 50  # cases drawn on the page (the count shows all)


@dataclass(frozen=True)
class Waiting:
    """A 待受理 case reported without a point, with the gazetteer's candidates for its address."""

    id: str
    kind: str
    class_code: str
    reported_at: datetime
    address: str | None
    grid: str | None  # a grid the report named (without a point)
    candidates: tuple[Candidate, ...]


def waiting_cases(engine: Engine, limit: int = WAITING_ROWS) -> tuple[list[Waiting], int]:
    """The open cases that need a location and may still be placed (待受理), oldest first, with the
    candidates of each address; and how many there are in all."""
    where = (Case.open, Case.needs_location, Case.status == Status.REPORTED.value)
    with engine.connect() as conn:
        total = int(conn.scalar(select(func.count()).select_from(Case).where(*where)) or 0)
        rows = conn.execute(
            select(Case.id, Case.kind, Case.class_code, Case.reported_at, Case.address, Case.grid_code)
            .where(*where)
            .order_by(Case.reported_at, Case.id)
            .limit(limit)
        ).all()
    book = AddressBook.shared(engine)
    out = [
        Waiting(r[0], r[1], r[2], r[3], r[4], r[5], book.geocode(r[4]).candidates if r[4] else ())
        for r in rows
    ]
    return out, total


def nearest_address(engine: Engine, lon: float | None, lat: float | None) -> tuple[Address, float] | None:
    """The gazetteer's nearest address to a case's point (within 500 m) and its distance."""
    if lon is None or lat is None:
        return None
    return AddressBook.shared(engine).reverse(lon, lat, 500.0)
