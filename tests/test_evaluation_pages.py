"""Evaluation pages (issue 8 item 9): periods, rankings from the stored daily aggregates, the CSV export
over real HTTP checked against an independent pandas computation, and the page in Debian's Chromium.

The data is a simulated backfill (three days of cases through the lifecycle, with the CJ/T 292
daily counters it saves), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import requests
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from dashboard.evaluation_data import (
    LEVELS,
    BadRequest,
    Period,
    local_today,
    parse_level,
    parse_period,
    parse_street,
    ranking,
)
from domain.evaluation import (
    COUNTER_NAMES,
    GRADE_COLOURS,
    SHANGHAI,
    STOCK_COUNTERS,
    DailyAggregates,
    ObjectType,
    evaluation_table,
)
from feeds.counters import street_ranking
from feeds.simulator import Simulation
from store.accounts import provision_embedded
from store.counters import load_rows
from store.evaluation import overdue_unhandled
from store.models import Community, Grid, Street
from tests.conftest import ARTIFACTS
from tests.desk_login import add_desk_user, login_browser, login_http
from tests.live_server import LiveServer, start_live_server

LEADER, PASSWORD = "leader-eval", "eval-pages-password-123"


# -- periods and levels (pure) -----------------------------------------------------------------------


def test_periods_hold_the_anchor_day() -> None:
    today = date(2026, 11, 27)  # a Friday
    assert parse_period("day", "2026-11-03", None, today) == Period(
        "day", date(2026, 11, 3), date(2026, 11, 3)
    )
    assert parse_period("week", None, None, today) == Period("week", date(2026, 11, 23), date(2026, 11, 29))
    assert parse_period("month", "2024-02-10", None, today) == Period(
        "month", date(2024, 2, 1), date(2024, 2, 29)
    )
    assert parse_period(None, None, None, today).kind == "month"
    custom = parse_period(None, "2026-10-30", "2026-11-02", today)
    assert (custom.kind, custom.days) == ("custom", 4)


@pytest.mark.parametrize(
    ("kind", "start", "end", "reason"),
    [
        ("year", None, None, "bad_period"),
        ("custom", "2026-11-02", None, "bad_period"),
        ("custom", "2026-11-02", "2026-11-01", "bad_period"),
        ("custom", "2024-01-01", "2026-01-01", "bad_period"),
        ("day", "2026-13-01", None, "bad_date"),
    ],
)
def test_bad_periods_are_named(kind: str, start: str | None, end: str | None, reason: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_period(kind, start, end, date(2026, 11, 27))
    assert err.value.reason == reason


def test_streets() -> None:
    assert parse_street(None) is None and parse_street("110101903") == "110101903"
    for bad in ("11010190", "1101019031", "11010190x"):
        with pytest.raises(BadRequest) as err:
            parse_street(bad)
        assert err.value.reason == "bad_street"


def test_levels() -> None:
    assert parse_level(None) is ObjectType.STREET
    assert parse_level("shift_leader") is ObjectType.SHIFT_LEADER
    with pytest.raises(BadRequest, match="level"):
        parse_level("district")  # one object: nothing to rank
    with pytest.raises(BadRequest):
        parse_level("planet")


# -- stored data, both backends -------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The built-in district with its people and three simulated days of cases and daily counters."""
    engine = city_engine
    provision_embedded(engine, kiosk_secret="kiosk-secret-for-evaluation-pages-0123456789")
    now = datetime.now(UTC)
    Simulation.prepare(
        engine,
        tmp_path_factory.mktemp("sim"),
        seed=11,
        reports_per_day=300,
        clock=lambda: now,
        backfill_days=3,
    )
    add_desk_user(engine, LEADER, PASSWORD, role="leader")
    return engine


def _past(engine: Engine) -> Period:
    """From the first stored day to yesterday: closed days, so no live overdue count enters."""
    today = local_today()
    with engine.connect() as conn:
        first = min(day for (_, _, day), _ in load_rows(conn)[0])
    return Period("custom", first, today - timedelta(days=1))


def independent_sums(engine: Engine, level: str, period: Period) -> pd.DataFrame:
    """Counters per object over the period, straight from ``daily_counters`` with pandas."""
    with engine.connect() as conn:
        raw = pd.read_sql_query(text("SELECT object_type, object_id, day, counts FROM daily_counters"), conn)
    raw = raw[raw["object_type"] == level]
    days = pd.to_datetime(raw["day"]).dt.date
    raw = raw[(days >= period.start) & (days <= period.end)]
    counts = pd.DataFrame(
        [json.loads(c) if isinstance(c, str) else c for c in raw["counts"]], index=raw.index
    )
    counts = counts.reindex(columns=list(COUNTER_NAMES)).fillna(0).astype("int64")
    counts["object_id"] = raw["object_id"].astype(str)
    summed = counts.groupby("object_id").sum()
    # a stock (超时未处置 at a day's end) is the period's last day's, not a sum
    last = counts[(days[raw.index] == period.end).to_numpy()].set_index("object_id")
    for name in STOCK_COUNTERS:
        summed[name] = last[name].reindex(summed.index).fillna(0).astype("int64")
    return summed


def test_rankings_sum_the_stored_days(evaluated: Engine) -> None:
    period = _past(evaluated)
    assert period.days >= 2
    with evaluated.connect() as conn:
        rows, _, _ = load_rows(conn)
        streets = set(conn.scalars(select(Street.code).where(Street.active)))
        grids: dict[str, int] = {}
        for code in conn.scalars(select(Grid.code).where(Grid.active)):
            grids[code[:9]] = grids.get(code[:9], 0) + 1
    every_day = DailyAggregates()
    every_day.load(rows)
    for level in LEVELS:
        r = ranking(evaluated, level, period, now=datetime.now(UTC))
        expected = independent_sums(evaluated, level.value, period)
        got = r.frame.set_index("object_id")
        assert set(expected.index) <= set(got.index)
        for oid, row in expected.iterrows():
            assert got.loc[oid, list(COUNTER_NAMES)].astype("int64").tolist() == row.tolist(), (level, oid)
        quiet = got.drop(index=list(expected.index))
        assert (quiet[list(COUNTER_NAMES)] == 0).all().all()  # listed (every known object) with nothing
        assert list(r.frame["rank"]) == list(range(1, len(r.frame) + 1))
    # the street table is the domain's evaluation_table over the daily rows, day by day, with the
    # cases still handling late at the period's end in 应结案 (超时未处置)
    now = datetime.now(UTC)
    r = ranking(evaluated, ObjectType.STREET, period, now=now)
    assert set(r.frame["object_id"]) == streets
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(), SHANGHAI)
    with evaluated.connect() as conn:
        late = overdue_unhandled(conn, ObjectType.STREET, min(now, end))
    direct = evaluation_table(
        every_day, ObjectType.STREET, streets, period.start, period.end, grids_per_region=grids,
        overdue_unhandled=late,
    )  # fmt: skip
    cols = ["object_id", "score", "grade", *COUNTER_NAMES]
    pd.testing.assert_frame_equal(r.frame[cols].reset_index(drop=True), direct[cols].reset_index(drop=True))
    assert r.frame["grade"].notna().sum() >= 10  # a simulated district is graded


def test_the_wall_ranking_and_the_desk_agree_on_the_month(evaluated: Engine) -> None:
    """One definition (issue 19): the wall's street ranking (month to date, from the daily counters the
    live core keeps, 超时未处置 now added) and the desk's month ranking give every street one score."""
    now = datetime.now(UTC)
    today = local_today(now)
    with evaluated.connect() as conn:
        rows, holders, _ = load_rows(conn)
        late = overdue_unhandled(conn, ObjectType.STREET, now)
        per_street: dict[str, int] = {}
        for code in conn.scalars(select(Grid.code).where(Grid.active)):
            per_street[code[:9]] = per_street.get(code[:9], 0) + 1
    kept = DailyAggregates()
    kept.load(rows, holders)
    wall = {r["code"]: r["score"] for r in street_ranking(kept, today, per_street, late)}
    desk = ranking(evaluated, ObjectType.STREET, parse_period("month", None, None, today), now=now).frame
    scored = {
        str(oid): None if score is None or score != score else round(float(score), 1)
        for oid, score in zip(desk["object_id"], desk["score"], strict=True)
    }
    assert any(v is not None for v in wall.values())
    assert {k: v for k, v in scored.items() if k in wall} == wall


def test_a_street_scope_narrows_grids_and_communities(evaluated: Engine) -> None:
    period = _past(evaluated)
    now = datetime.now(UTC)
    for level in (ObjectType.GRID, ObjectType.COMMUNITY):
        whole = ranking(evaluated, level, period, now=now).frame
        street = str(whole["object_id"].iloc[0])[:9]
        part = ranking(evaluated, level, period, now=now, within=street)
        assert part.within == street and len(part.frame) >= 1
        assert all(str(o).startswith(street) for o in part.frame["object_id"])
        want = whole[whole["object_id"].str.startswith(street)]
        assert sorted(part.frame["object_id"]) == sorted(want["object_id"])
        cols = ["object_id", "score", "grade", *COUNTER_NAMES]
        pd.testing.assert_frame_equal(  # the same rows, ranked among themselves
            part.frame[cols].reset_index(drop=True), want[cols].reset_index(drop=True)
        )
        assert list(part.frame["rank"]) == list(range(1, len(part.frame) + 1))
    # other levels ignore a street scope
    streets = ranking(evaluated, ObjectType.STREET, period, now=now, within="110101901")
    assert streets.within is None and len(streets.frame) == 17


@pytest.fixture(scope="module")
def served(evaluated: Engine) -> Iterator[LiveServer]:
    """GridWall on a real port over the evaluated database."""
    srv = start_live_server(evaluated)
    try:
        yield srv
    finally:
        srv.stop()


def _csv(client: requests.Session, url: str) -> pd.DataFrame:
    r = client.get(url, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    return pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype={"object_id": str})


def test_csv_export_matches_an_independent_computation(served: LiveServer) -> None:
    engine = served.engine
    client = login_http(served.url, LEADER, PASSWORD)
    period = _past(engine)
    span = f"from={period.start.isoformat()}&to={period.end.isoformat()}"
    for level in ("street", "community", "department", "supervisor"):
        frame = _csv(client, f"{served.url}/evaluation/export.csv?level={level}&{span}")
        expected = independent_sums(engine, level, period)
        got = frame.set_index("object_id")
        assert (frame["from"] == period.start.isoformat()).all() and (
            frame["to"] == period.end.isoformat()
        ).all()
        for oid, row in expected.iterrows():
            assert got.loc[oid, list(COUNTER_NAMES)].astype("int64").tolist() == row.tolist(), (level, oid)
        # the rates behind the score, recomputed from the summed counters (domain.md §1.4)
        # 超时未处置 at the period's end: the last day's stock in the counters, and the cases whose
        # handling clock still runs late since then, counted on the case table
        end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(), SHANGHAI)
        with engine.connect() as conn:
            late = overdue_unhandled(conn, ObjectType(level), end)
        for oid, c in expected.iterrows():
            if level in ("street", "community", "department"):
                to_close = max(0, c["handled"] - c["reworked"]) + c["overdue_eod"] + late.get(str(oid), 0)
                want = c["closed"] / to_close if to_close else math.nan
                have = got.loc[oid, "close_rate"]
                assert (math.isnan(want) and math.isnan(have)) or abs(have - round(want, 4)) < 1e-9, (
                    level,
                    oid,
                )
            else:
                want = c["valid_reported"] / c["patrol_reported"] if c["patrol_reported"] else math.nan
                have = got.loc[oid, "valid_report_rate"]
                assert (math.isnan(want) and math.isnan(have)) or abs(have - round(want, 4)) < 1e-9, (
                    level,
                    oid,
                )
        # best first, grades by the A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40 floors
        scored = frame.dropna(subset=["score"])
        assert list(scored["score"]) == sorted(scored["score"], reverse=True)
        for score, letter in zip(scored["score"], scored["grade"], strict=True):
            floor = {"A": 90, "B": 75, "C": 60, "D": 40, "E": -1}[letter]
            ceiling = {"A": 1e9, "B": 90, "C": 75, "D": 60, "E": 40}[letter]
            assert floor <= score < ceiling
    streets = _csv(client, f"{served.url}/evaluation/export.csv?level=street&{span}")
    with engine.connect() as conn:
        names = dict(conn.execute(select(Street.code, Street.name)).all())
    assert dict(zip(streets["object_id"], streets["name"], strict=True)) == names
    scoped = _csv(client, f"{served.url}/evaluation/export.csv?level=grid&street=110101902&{span}")
    assert len(scoped) >= 1 and all(o.startswith("110101902") for o in scoped["object_id"])
    communities = _csv(client, f"{served.url}/evaluation/export.csv?level=community&{span}")
    with engine.connect() as conn:
        assert set(communities["object_id"]) == set(
            conn.scalars(select(Community.code).where(Community.active))
        )


def test_csv_export_refuses_bad_input_by_name(served: LiveServer) -> None:
    client = login_http(served.url, LEADER, PASSWORD)
    for query, reason in (
        ("level=planet", "bad_level"),
        ("level=street&from=2026-02-30&to=2026-03-01", "bad_date"),
        ("level=street&period=custom&from=2026-03-02&to=2026-03-01", "bad_period"),
        ("level=grid&street=1101", "bad_street"),
    ):
        r = client.get(f"{served.url}/evaluation/export.csv?{query}", timeout=30)
        assert r.status_code == 400 and r.text.startswith(reason), (query, r.status_code, r.text)
    anonymous = requests.get(
        f"{served.url}/evaluation/export.csv?level=street", allow_redirects=False, timeout=30
    )
    assert anonymous.status_code in (302, 401)  # the desk's guard: no session, no data


# -- the page in Chromium -----------------------------------------------------------------------------


GRADE_CELLS = """() => [...document.querySelectorAll('td[data-dash-column="grade"]')].map(
  td => [td.innerText.trim(), getComputedStyle(td).backgroundColor])"""


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return f"rgb({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)})"


def test_evaluation_page_renders_grades(served: LiveServer, browser: Any) -> None:
    period = _past(served.engine)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    path = (
        f"/evaluation?level=street&period=custom&from={period.start.isoformat()}&to={period.end.isoformat()}"
    )
    login_browser(page, served.url, LEADER, PASSWORD, next_path=path)
    page.wait_for_selector('td[data-dash-column="grade"]', timeout=30_000)
    cells = page.evaluate(GRADE_CELLS)
    expected = ranking(served.engine, ObjectType.STREET, period, now=datetime.now(UTC)).frame
    assert len(cells) == len(expected)  # 17 streets on one table page
    shown = [g for g, _ in cells]
    assert shown == [g if isinstance(g, str) else "–" for g in expected["grade"]]
    for letter, colour in cells:
        if letter in GRADE_COLOURS:
            assert colour == _rgb(GRADE_COLOURS[letter]), (letter, colour)
    assert any(letter in GRADE_COLOURS for letter in shown)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "evaluation-streets.png"), full_page=True)
    # another level through the controls (a read-only callback), the export link follows
    page.click("text=专业部门")
    page.wait_for_function(
        "() => !!document.querySelector('#gw-eval-export')?.href.includes('level=department')", timeout=30_000
    )
    depts = ranking(served.engine, ObjectType.DEPARTMENT, period, now=datetime.now(UTC)).frame
    page.wait_for_function(
        f"() => !!document.querySelector('.gw-eval-period')?.innerText.includes('{len(depts):,}')",
        timeout=30_000,
    )
    page.screenshot(path=str(ARTIFACTS / "evaluation-departments.png"), full_page=True)
    assert not errors, errors
    page.close()
