"""Track retention: thinning keeps one fix per supervisor and minute, only before the cut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from store.db import create_engine
from store.migrate import upgrade
from store.models import Position
from store.tracks import thin_positions


def test_thinning_keeps_one_fix_a_minute_before_the_cut(db_url: str) -> None:
    engine = create_engine(db_url)
    upgrade(engine)
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    rows = [
        {"supervisor_id": sup, "at": t0 + timedelta(seconds=10 * i), "received_at": t0, "lon": 116.4,
         "lat": 39.9, "grid_code": None, "source": "device"}
        for sup in ("sup-a", "sup-b")
        for i in range(60)  # 10 minutes at one fix per 10 s
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Position), rows)
    cut = t0 + timedelta(minutes=5)
    removed = thin_positions(engine, cut)
    with engine.connect() as conn:
        per_sup = select(Position.supervisor_id, func.count()).where(Position.at < cut)
        before = conn.execute(per_sup.group_by(Position.supervisor_id)).all()
        after = conn.scalar(select(func.count()).select_from(Position).where(Position.at >= cut))
    assert removed == 2 * (30 - 5)
    assert sorted(before) == [("sup-a", 5), ("sup-b", 5)]  # one per minute and supervisor
    assert after == 2 * 30  # nothing at or after the cut is touched
    assert thin_positions(engine, cut) == 0  # idempotent
