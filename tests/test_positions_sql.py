"""The pipeline's positions SQL (``store.ingest``) on SQLite and PostgreSQL: what ``PositionWriter``
stores and reports as stored now (duplicates of the store and of the batch included), and
``latest_fixes`` (PostgreSQL's lateral probe against the portable query)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from store import ingest as sql
from store.db import create_engine
from store.models import Position

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POSITIONS: Table = Position.__table__  # type: ignore[assignment]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    POSITIONS.create(eng)
    yield eng
    eng.dispose()


def row(w: sql.PositionWriter, sup: str, at: datetime, lon: float, **kw: Any) -> tuple[Any, ...]:
    """One row in ``POS_COLUMNS`` order, as ``feeds.pipeline`` builds it."""
    return (sup, w.instant(at), w.instant(NOW), lon, 39.9, kw.get("accuracy"), kw.get("speed"),
            kw.get("grid"), kw.get("source", "device"))  # fmt: skip


def stored(engine: Engine) -> dict[tuple[str, datetime], tuple[Any, ...]]:
    """Every stored fix by (supervisor, instant), read through the ORM types (aware UTC instants)."""
    p = Position
    cols = (p.supervisor_id, p.at, p.received_at, p.lon, p.lat, p.accuracy, p.speed, p.grid_code, p.source)
    with engine.connect() as conn:
        return {(r[0], r[1]): tuple(r) for r in conn.execute(select(*cols)).all()}


def insert(engine: Engine, w: sql.PositionWriter, rows: list[tuple[Any, ...]]) -> list[bool]:
    """Insert in one transaction; for each row whether ``insert`` says it was stored now."""
    with engine.begin() as conn:
        now = w.insert(conn, rows)
    return [now is None or (r[0], r[1]) in now for r in rows]


def test_position_writer_stores_rows_and_tells_which_were_stored_now(engine: Engine) -> None:
    w = sql.PositionWriter(engine.dialect)
    first = [row(w, f"S{i % 7}", T0 + timedelta(seconds=i), 116.0 + i / 1000, accuracy=float(i),
                 speed=None if i % 2 else 1.5, grid="110101001001001" if i % 3 else None)
             for i in range(300)]  # fmt: skip
    assert insert(engine, w, first) == [True] * 300
    got = stored(engine)
    assert len(got) == 300
    r = got[("S3", T0 + timedelta(seconds=10))]
    assert r[1] == T0 + timedelta(seconds=10) and r[1].tzinfo is not None and r[2] == NOW
    assert (r[3], r[4], r[5], r[6], r[7], r[8]) == (116.01, 39.9, 10.0, 1.5, "110101001001001", "device")
    assert got[("S1", T0 + timedelta(seconds=1))][6:8] == (None, "110101001001001")
    assert got[("S2", T0 + timedelta(seconds=9))][5:8] == (9.0, None, None)

    # a retry after the judge's window: every other row was stored earlier (with another point)
    again = [row(w, f"S{i % 7}", T0 + timedelta(seconds=i), 120.0, source="gateway") for i in range(290, 310)]
    assert insert(engine, w, again) == [i >= 300 for i in range(290, 310)]
    got = stored(engine)
    assert len(got) == 310
    assert got[("S3", T0 + timedelta(seconds=290))][3] == pytest.approx(116.29)  # the first one stays
    assert got[("S6", T0 + timedelta(seconds=300))][3:9:5] == (120.0, "gateway")

    # nothing new: no row stored now
    assert insert(engine, w, again[:5]) == [False] * 5
    assert len(stored(engine)) == 310


def test_position_writer_stores_the_first_of_a_key_repeated_in_one_batch(engine: Engine) -> None:
    w = sql.PositionWriter(engine.dialect)
    at = T0 + timedelta(minutes=5)
    rows = [row(w, "S1", at, 116.1), row(w, "S2", at, 116.2), row(w, "S1", at, 116.3)]
    assert insert(engine, w, rows) == [True, True, True]  # the key was stored now (as before)
    got = stored(engine)
    assert len(got) == 2 and got[("S1", at)][3] == pytest.approx(116.1)


def test_position_writer_stores_large_groups(engine: Engine) -> None:
    """A group of the writer's size (``max_group``), half of it already stored."""
    w = sql.PositionWriter(engine.dialect)
    rows = [row(w, f"S{i % 500}", T0 + timedelta(milliseconds=i), 116.0) for i in range(5000)]
    assert insert(engine, w, rows[::2]) == [True] * 2500
    assert insert(engine, w, rows) == [i % 2 == 1 for i in range(5000)]
    assert len(stored(engine)) == 5000


def test_latest_fixes_are_each_supervisors_latest(engine: Engine) -> None:
    w = sql.PositionWriter(engine.dialect)
    rows = [row(w, f"S{i % 40}", T0 + timedelta(seconds=7 * i), 116.0 + i / 1000) for i in range(400)]
    insert(engine, w, rows)
    with engine.connect() as conn:
        latest = sql.latest_fixes(conn, [f"S{i}" for i in range(45)])
        portable = sql._latest_fixes_select(conn, [f"S{i}" for i in range(45)])
        assert sql.latest_fixes(conn, []) == {}
    assert set(latest) == {f"S{i}" for i in range(40)}  # S40…S44 have no fix
    assert latest["S3"] == (T0 + timedelta(seconds=7 * 363), pytest.approx(116.363), pytest.approx(39.9))
    assert all(at.utcoffset() == timedelta(0) for at, _, _ in latest.values())
    assert latest == portable  # PostgreSQL's own query answers as the portable one
