"""Track retention: fixes are kept at full rate for the retention period, then thinned to one a minute."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from store.db import UTCDateTime

_BUCKET = {
    "sqlite": "CAST(strftime('%s', at) AS INTEGER) / 60",
    "postgresql": "FLOOR(EXTRACT(EPOCH FROM at) / 60)",
}


def thin_positions(engine: Engine, before: datetime) -> int:
    """Keep one fix per supervisor and minute among fixes older than ``before``; returns rows removed."""
    bucket = _BUCKET[engine.dialect.name]
    stmt = text(
        "DELETE FROM positions WHERE at < :cut AND id NOT IN ("
        f"SELECT MIN(id) FROM positions WHERE at < :cut GROUP BY supervisor_id, {bucket})"
    ).bindparams(bindparam("cut", type_=UTCDateTime()))
    with engine.begin() as conn:
        return int(conn.execute(stmt, {"cut": before}).rowcount or 0)
