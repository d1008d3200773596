"""Replays of real data (issue 5): US 311 requests and GeoLife traces into a real server on a real port.

Every replay runs subsets of the real files in ``shared/data`` through ``/device`` (python-socketio
clients with a gateway token) against :func:`tests.live_server.start_live_server` on SQLite and on
PostgreSQL. Expected counts are computed here from the files with pandas and the server's own
point → grid index (which is what decides ``outside_district``), never taken from the replay.
The test server keeps every rejection as its own dead-letter row (a large ``reject_cap``), so the
``rejects`` table can be counted without waiting for the cap's per-minute count rows.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from domain.lifecycle import T_HANDLE, Accepted, Action, Actor, Command, Context, Rejection, Role, Rule, apply
from domain.workcalendar import load_calendar
from feeds.ingest import PipelineConfig
from feeds.replay import Plan, ReplayError, Summary, parse_speed, run_plan, setup_people
from feeds.replay.geolife import load_tracks, plan_geolife, read_plt, select_files
from feeds.replay.r311 import MAPPINGS, check_mapping, load_mapping, plan_311, read_rows
from store.db import session_factory
from store.models import Case, Person, Position, Reject, Token
from tests.live_server import LiveServer, start_live_server

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def srv(city_engine: Engine) -> Iterator[LiveServer]:
    """The live core of the built district on a free port; every rejection is its own dead-letter row."""
    server = start_live_server(city_engine, interval=0.5, config=PipelineConfig(reject_cap=1_000_000))
    yield server
    server.stop()


def replay(srv: LiveServer, plan: Plan, speed: float | None = None) -> Summary:
    """Set the plan's people and token up in the server's database, then send the plan."""
    token = setup_people(srv.engine, plan.people, plan.token_name)
    return run_plan(plan, srv.url, token, speed=speed, connections=3, window=48)


def rejects(srv: LiveServer, source: str) -> Counter[str]:
    """Dead-letter rows of a source by reason (count rows summed)."""
    with session_factory(srv.engine)() as s:
        rows = s.execute(
            select(Reject.reason, func.sum(Reject.count))
            .where(Reject.source == source)
            .group_by(Reject.reason)
        ).all()
    return Counter({r: int(n) for r, n in rows})


def cases_of(srv: LiveServer, prefix: str) -> dict[str, Case]:
    """The stored cases whose id starts with ``prefix``."""
    with session_factory(srv.engine)() as s:
        found = s.scalars(select(Case).where(Case.id.like(prefix + "%"))).all()
        s.expunge_all()
    return {c.id: c for c in found}


def expected_311(srv: LiveServer, mapping: str, rows: pd.DataFrame) -> tuple[Counter[str], pd.DataFrame]:
    """Report outcomes computed from the rows: the replay's own refusals, then the pipeline's order
    (coordinates, then the district's grids, then the class); and the rows whose report is accepted."""
    m = load_mapping(mapping)
    out: Counter[str] = Counter()
    lon, lat = rows["lon"].to_numpy(float), rows["lat"].to_numpy(float)
    missing = ~(np.isfinite(lon) & np.isfinite(lat))
    zero = ~missing & (lon == 0) & (lat == 0)
    sw, ss, se, sn = m.source_box
    tw, ts, te, tn = m.target_box
    x = tw + (lon - sw) / (se - sw) * (te - tw)
    y = ts + (lat - ss) / (sn - ss) * (tn - ts)
    usable = ~missing & ~zero
    idx = np.full(len(rows), -1)
    idx[usable] = srv.core.pipeline.index.lookup_indices(np.round(x[usable], 7), np.round(y[usable], 7))
    outside = usable & (idx < 0)
    unmapped = rows["type"].map(lambda t: m.types.get(t, "unmapped") == "unmapped").to_numpy(bool)
    unknown = usable & ~outside & unmapped
    out["not sent: missing_field"] = int(missing.sum())
    out["zero_coordinates"] = int(zero.sum())
    out["outside_district"] = int(outside.sum())
    out["unknown_class"] = int(unknown.sum())
    ok = usable & ~outside & ~unmapped
    out["accepted"] = int(ok.sum())
    return +out, rows[ok]


def report_outcomes(summary: Summary) -> Counter[str]:
    """The summary's report outcomes in the form of ``expected_311``."""
    got = Counter(summary.outcomes.get("reports", Counter()))
    for reason, n in summary.not_sent.get("reports", Counter()).items():
        got[f"not sent: {reason}"] += n
    return +got


# -- mappings and time zones (files only) -----------------------------------------------------------------


@pytest.mark.parametrize("name", MAPPINGS)
def test_mapping_covers_every_request_type_of_its_file(name: str, shared_data: Path) -> None:
    m = load_mapping(name)
    assert check_mapping(m) == []  # every mapped type is a real class of the catalogue
    raw = pd.read_csv(shared_data / m.file, dtype=str, keep_default_na=False)
    types = set(raw[m.columns["type"]].str.strip())
    assert types - set(m.types) == set(), "types of the file with neither a class nor an explicit unmapped"
    assert set(raw[m.columns["source"]].str.strip()) - set(m.sources) <= {""}


def test_a_mapping_with_a_wrong_class_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = (ROOT / "feeds/replay/mappings/la.toml").read_text(encoding="utf-8")
    bad.write_text(text.replace('"event/0107"', '"event/9999"', 1), encoding="utf-8")
    m = load_mapping(str(bad))
    assert any("9999" in p for p in check_mapping(m))
    with pytest.raises(ReplayError, match="9999"):
        plan_311(m, _empty_rows(), start=datetime.now(UTC), speed=None)


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame(columns=["id", "created", "closed", "sla", "type", "status", "source", "address",
                                 "lon", "lat"])  # fmt: skip


@pytest.mark.parametrize(
    ("name", "row", "column", "zone"),
    [
        ("la", 0, "createddate", "America/Los_Angeles"),  # January: PST, UTC-8
        ("sf", 0, "created_date", "America/Los_Angeles"),  # July: PDT, UTC-7; the +00:00 suffix is wrong
        ("boston", 0, "open_dt", "America/New_York"),  # January: EST, UTC-5
        ("boston", 0, "sla_target_dt", "America/New_York"),
    ],
)
def test_time_zone_of_each_mapping(name: str, row: int, column: str, zone: str, shared_data: Path) -> None:
    m = load_mapping(name)
    raw = pd.read_csv(shared_data / m.file, dtype=str, keep_default_na=False, nrows=row + 1)
    text = raw[column].iloc[row]
    wall = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")  # the wall-clock part, offset ignored
    want = wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert want.utcoffset() is not None and want - wall.replace(tzinfo=UTC) != 0  # a real shift
    got = read_rows(m, shared_data / m.file, limit=row + 1)
    key = {"createddate": "created", "created_date": "created", "open_dt": "created"}.get(column, "sla")
    assert got[key].iloc[row].to_pydatetime() == want
    hours = (want - wall.replace(tzinfo=UTC)).total_seconds() / 3600
    assert hours == {"la": 8, "sf": 7, "boston": 5}[name]


def test_speed_option() -> None:
    assert parse_speed("max", default=1.0) is None
    assert parse_speed("600", default=None) == 600.0
    for bad in ("0.5", "601", "fast"):
        with pytest.raises(ReplayError):
            parse_speed(bad, default=None)


# -- 311 replays against the server -------------------------------------------------------------------


def test_la_replay_counts_origin_lifecycle(srv: LiveServer, shared_data: Path) -> None:
    m = load_mapping("la")
    rows = read_rows(m, shared_data / m.file, limit=300)
    want, ok_rows = expected_311(srv, "la", rows)
    plan = plan_311(m, rows, start=datetime.now(UTC), speed=None, tag="T1")
    summary = replay(srv, plan)

    assert report_outcomes(summary) == want
    assert summary.rejected("commands") == Counter()  # every command of an accepted report applies
    dead = rejects(srv, "gateway:replay:311-la")
    answered = {k: v for k, v in want.items() if k != "accepted" and not k.startswith("not sent")}
    assert dead == Counter(answered)

    cases = cases_of(srv, "LAT1-")
    assert len(cases) == len(ok_rows) == summary.count("reports", "accepted")
    assert {c.origin for c in cases.values()} == {"replay"}
    by_id = {f"LAT1-{r.id}": r for r in ok_rows.itertuples()}
    assert set(cases) == set(by_id)
    for cid, c in cases.items():
        r = by_id[cid]
        finished = r.status == "Closed" and not pd.isna(r.closed)
        want_status = "closed" if finished else "voided" if r.status == "Cancelled" else "handling"
        assert c.status == want_status, cid
        assert c.reported_at == r.created.to_pydatetime() + plan.shift  # UTC instant + the replay's shift
        if finished:
            assert c.closed_at == r.closed.to_pydatetime() + plan.shift
    assert Counter(c.status for c in cases.values())["closed"] > 0


def test_sf_rows_at_zero_are_rejected_by_name(srv: LiveServer, shared_data: Path) -> None:
    m = load_mapping("sf")
    rows = read_rows(m, shared_data / m.file, limit=400)
    raw = pd.read_csv(shared_data / m.file, nrows=400)
    at_zero = int(((raw.latitude == 0) & (raw.longitude == 0)).sum())
    assert at_zero > 10  # the sample's known caveat (4,264 of 10,000), counted from the file
    want, _ = expected_311(srv, "sf", rows)
    assert want["zero_coordinates"] == at_zero
    summary = replay(srv, plan_311(m, rows, start=datetime.now(UTC), speed=None, tag="T2"))
    assert report_outcomes(summary) == want
    assert summary.count("reports", "zero_coordinates") == at_zero
    assert rejects(srv, "gateway:replay:311-sf")["zero_coordinates"] == at_zero
    assert {c.origin for c in cases_of(srv, "SFT2-").values()} == {"replay"}


def test_boston_sla_becomes_the_handling_deadline(srv: LiveServer, shared_data: Path) -> None:
    m = load_mapping("boston")
    rows = read_rows(m, shared_data / m.file, limit=80)
    want, ok_rows = expected_311(srv, "boston", rows)
    plan = plan_311(m, rows, start=datetime.now(UTC), speed=None, tag="T3")
    summary = replay(srv, plan)
    assert report_outcomes(summary) == want
    cases = cases_of(srv, "BOST3-")
    assert len(cases) == len(ok_rows) > 0
    for r in ok_rows.itertuples():
        c = cases[f"BOST3-{r.id}"]
        assert c.status == "handling"  # every Boston row is open
        assert c.deadline == r.sla.to_pydatetime() + plan.shift


def test_as_of_sends_nothing_after_it(srv: LiveServer, shared_data: Path) -> None:
    m = load_mapping("la")
    rows = read_rows(m, shared_data / m.file, limit=300)
    as_of = rows["created"].iloc[150].to_pydatetime()
    plan = plan_311(m, rows, start=datetime.now(UTC), speed=None, as_of=as_of, tag="T4")
    assert plan.info["anchor"] == as_of  # T lands at the start (speed max)
    summary = replay(srv, plan)
    before = rows[rows["created"] <= as_of]
    want, ok_rows = expected_311(srv, "la", before)
    got = report_outcomes(summary)
    got.pop("not sent: after_as_of")
    assert got == want
    assert summary.not_sent["reports"]["after_as_of"] == int((rows["created"] > as_of).sum())
    cases = cases_of(srv, "LAT4-")
    assert set(cases) == {f"LAT4-{r.id}" for r in ok_rows.itertuples()}
    for r in ok_rows.itertuples():
        c = cases[f"LAT4-{r.id}"]
        if not pd.isna(r.closed) and r.closed.to_pydatetime() > as_of:
            assert c.open, "closed after --as-of: still open at T"
        assert c.updated_at <= as_of + plan.shift


# -- GeoLife ------------------------------------------------------------------------------------------


def test_geolife_replay_counts_fixes(srv: LiveServer, shared_data: Path) -> None:
    root = shared_data / "trajectories" / "geolife"
    index = pd.read_csv(root / "index.csv", dtype={"user": str})
    partly = index[index.n_points > index.n_points_in_dongcheng]  # trips that leave the district
    small = partly.sort_values("n_points").head(2)["file"].tolist()
    files = select_files(root, pattern="*", limit=None)
    assert set(small) <= set(files)
    tracks = load_tracks(root, small)
    total = 0
    outside = 0
    for f in small:
        us, lon, lat = read_plt(root / f)
        assert len(us) == int(index.loc[index.file == f, "n_points"].iloc[0])
        total += len(us)
        outside += int((srv.core.pipeline.index.lookup_indices(lon, lat) < 0).sum())
    assert outside > 0
    plan = plan_geolife(tracks, start=datetime.now(UTC), speed=None)
    assert plan.inputs == total
    summary = replay(srv, plan)
    fixes = summary.outcomes["fixes"]
    assert sum(fixes.values()) == total
    assert fixes["outside_district"] == outside
    assert rejects(srv, "gateway:replay:geolife")["outside_district"] == outside
    with session_factory(srv.engine)() as s:
        ids = [t.supervisor for t in tracks]
        stored = s.scalar(select(func.count()).select_from(Position).where(Position.supervisor_id.in_(ids)))
        sources = set(s.scalars(select(Position.source).where(Position.supervisor_id.in_(ids))))
        people = s.scalars(select(Person.source).where(Person.id.in_(ids))).all()
        first = s.scalars(select(Position.at).where(Position.supervisor_id == tracks[0].supervisor)).all()
    assert stored == fixes["accepted"] > 0
    assert sources == {"replay"}
    assert set(people) == {"replay"}
    # stored instants are the file's instants (UTC) plus the track's shift: spacing kept
    shift = plan.info["shifts"][tracks[0].supervisor]
    raw = {datetime.fromtimestamp(int(u) / 1e6, UTC) for u in tracks[0].at_us}
    assert first and {a - shift for a in first} <= raw
    assert min(raw) == datetime.strptime(Path(small[0]).stem, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def test_geolife_plan_at_a_speed_keeps_spacing_and_never_runs_ahead(shared_data: Path) -> None:
    root = shared_data / "trajectories" / "geolife"
    tracks = load_tracks(root, select_files(root, users=["000"], limit=2))
    start, speed = datetime(2026, 1, 1, tzinfo=UTC), 600.0
    plan = plan_geolife(tracks, start=start, speed=speed)
    assert plan.inputs == sum(len(t.at_us) for t in tracks)
    sent_ms = int(start.timestamp() * 1000)
    by_sup: dict[str, list[int]] = {}
    for ev in plan.events:
        goes = sent_ms + ev.due / speed * 1000  # when the batch may go
        for f in ev.body["fixes"]:
            assert f["at"] <= goes + 1000  # at most its second ahead of the batch (tolerance: 60 s)
            by_sup.setdefault(f["supervisor"], []).append(f["at"])
    for t in tracks:
        got = sorted(by_sup[t.supervisor])
        assert [b - a for a, b in itertools.pairwise(got)] == [int(d) // 1000 for d in np.diff(t.at_us)]
        span_s = (t.at_us[-1] - t.at_us[0]) / 1e6
        assert abs(got[-1] - (sent_ms + span_s / speed * 1000)) <= 1  # the last fix lands as playback ends


# -- the command line -----------------------------------------------------------------------------------


def test_cli_replays_311_and_prints_the_summary(srv: LiveServer, shared_data: Path) -> None:
    url = srv.engine.url.render_as_string(hide_password=False)
    cmd = [sys.executable, str(ROOT / "app.py"), "replay", "311", "--mapping", "la", "--rows", "60", "--tag",
           "T5", "--url", srv.url, "--db", url, "--shared", str(shared_data), "--connections", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    table = {tuple(ln.split()[:2]): ln.split()[-1] for ln in lines if ln.startswith(("reports", "commands"))}
    cases = cases_of(srv, "LAT5-")
    assert table[("reports", "accepted")] == str(len(cases)) and cases
    with session_factory(srv.engine)() as s:
        tokens = s.scalars(select(Token).where(Token.name == "replay:311-la")).all()
    assert sum(t.revoked_at is None for t in tokens) == 1  # each setup revokes the earlier token
    # a wrong token: refused by the server, one clear line, exit status 2
    bad = cmd[: cmd.index("--db")] + ["--token", "not-a-token"]
    done = subprocess.run(bad, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "cannot connect" in done.stderr


# -- the lifecycle's agreed deadline (a 311 SLA) ---------------------------------------------------------


def test_dispatch_deadline_replaces_the_handling_limit_or_is_refused_by_name() -> None:
    ctx = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    report: dict[str, object] = {"kind": "event", "class_code": "0120", "source": "public"}
    steps: list[tuple[Action, Actor, dict[str, object]]] = [
        (Action.REPORT, Actor("a", Role.ACCEPTOR), report),
        (Action.ACCEPT, Actor("a", Role.ACCEPTOR), {}),
        (Action.VERIFY, Actor("s", Role.SUPERVISOR), {"confirmed": True}),
        (Action.FILE, Actor("l", Role.SHIFT_LEADER), {}),
    ]
    state = None
    for action, actor, data in steps:
        out = apply(state, Command(action, "C1", actor, data=data), t0, ctx)
        assert isinstance(out, Accepted), out
        state = out.state
    due = datetime(2025, 3, 20, 12, 30, tzinfo=ZoneInfo("America/New_York"))
    dispatcher = Actor("d", Role.DISPATCHER)
    ok = apply(state, Command(Action.DISPATCH, "C1", dispatcher, data={"deadline": due.isoformat()}), t0, ctx)
    assert isinstance(ok, Accepted)
    assert ok.state.timers[T_HANDLE].deadline == due
    plain = apply(state, Command(Action.DISPATCH, "C1", dispatcher), t0, ctx)
    assert isinstance(plain, Accepted) and plain.state.timers[T_HANDLE].deadline != due
    for bad in ("next week", "2025-03-20T12:30:00"):  # not an instant; no zone
        out = apply(state, Command(Action.DISPATCH, "C1", dispatcher, data={"deadline": bad}), t0, ctx)
        assert isinstance(out, Rejection) and out.rule is Rule.BAD_DEADLINE
