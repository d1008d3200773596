"""Aggregates maintained as commands are persisted equal a rebuild from the stored event log."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.evaluation import CaseInfo, DailyAggregates, ObjectType
from domain.lifecycle import Context
from feeds.sources.caseflow import generate
from store.cases import execute
from store.db import session_factory
from store.evaluation import rebuild_aggregates
from store.models import Grid
from tests.test_lifecycle import CAL, CAT

CTX = Context(catalogue=CAT, calendar=CAL)
START = datetime(2025, 9, 29, tzinfo=ZoneInfo("Asia/Shanghai"))  # Mon, then National Day holidays


@pytest.fixture(scope="module")
def engine(city_engine: Engine) -> Engine:
    """The built-in district on SQLite and on PostgreSQL (see conftest)."""
    return city_engine


def test_live_aggregates_equal_a_rebuild_from_the_stored_log(engine: Engine) -> None:
    with session_factory(engine)() as s:
        grids = list(s.scalars(select(Grid.code).order_by(Grid.code)))[::25]  # spread over the district
    flow = generate(START, 3, grids, CTX, seed=3, reports_per_day=120)
    live = DailyAggregates(tz=CAL.tz)
    infos: dict[str, CaseInfo] = {}
    applied = 0
    with engine.connect() as conn:
        for cmd, at in flow:
            with conn.begin():
                res = execute(conn, cmd, at, CTX)
            assert res.outcome == "applied", res.rejection
            applied += 1
            gen = flow.cases[cmd.case_id]
            info = infos.setdefault(
                cmd.case_id,
                CaseInfo(gen.case_id, gen.grid, gen.source, gen.reporter, gen.kind, gen.class_code),
            )
            assert res.case is not None
            for ev in res.events:
                live.add(info, ev, res.case)
    assert applied > 1000
    rebuilt = rebuild_aggregates(engine, CTX)
    assert rebuilt.as_dict() == live.as_dict()
    assert len(rebuilt.ids(ObjectType.STREET)) > 1
    # the holiday week still counts reports on each day it has them
    days = {day for (_, _, day) in live.as_dict()}
    assert len(days) >= 3
