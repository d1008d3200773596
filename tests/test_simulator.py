"""The embedded simulation: a backfill that replays like the command path, then live over /device."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from dashboard.commands import run_command
from domain.lifecycle import state_from_json
from feeds.core import build_context
from feeds.simulator import Simulation, SimulationError
from store.accounts import add_person, provision_embedded
from store.build import BuildRequest, build_city
from store.counters import load_rows
from store.db import create_engine, transaction
from store.evaluation import case_records, rebuild_aggregates
from store.migrate import upgrade
from store.models import Case, CaseEventRow, Grid, Position, Task
from tests.live_server import start_live_server

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _morning(now: datetime) -> datetime:
    """The latest 10:00 in Shanghai not after ``now`` (patrols are on shift then)."""
    local = now.astimezone(SHANGHAI).replace(hour=10, minute=0, second=0, microsecond=0)
    if local > now:
        local -= timedelta(days=1)
    return local.astimezone(UTC)


def test_backfill_is_what_the_command_path_would_have_written(city_engine: Engine, tmp_path: Path) -> None:
    engine = city_engine
    now = _morning(datetime.now(UTC))
    Simulation.prepare(engine, tmp_path, seed=3, reports_per_day=400, clock=lambda: now, backfill_days=2)
    ctx = build_context(engine)
    with engine.connect() as conn:
        stored = {cid: state_from_json(raw) for cid, raw in conn.execute(select(Case.id, Case.state))}
        responsible = {g: f"sup-{a}" for g, a in conn.execute(select(Grid.code, Grid.area_code)) if a}
        open_tasks = conn.execute(
            select(Task.case_id, Task.kind, Task.assignee).where(Task.done_at.is_(None))
        ).all()
        fixes = conn.scalar(select(func.count()).select_from(Position).where(Position.source == "simulation"))
        rows, _, mark = load_rows(conn)
        origins = set(conn.scalars(select(Case.origin).distinct()))
    assert len(stored) > 500
    assert origins == {"simulation"}  # simulated rows say so
    # the stored events replay through the state machine to exactly the stored case states
    last = {}
    for _, _, state in case_records(engine, ctx):
        last[state.id] = state
    assert last == stored
    # the saved daily counters are those of a rebuild from the log
    assert mark is not None
    assert dict(rows) == rebuild_aggregates(engine, ctx, responsible).as_dict()
    # every 核实/核查 in progress has its open task, assigned to the area's supervisor
    waiting = {cid: s for cid, s in stored.items() if s.status.value in ("verifying", "to_check")}
    assert waiting
    tasks = {(cid, kind): who for cid, kind, who in open_tasks}
    for cid, s in waiting.items():
        kind = "verify" if s.status.value == "verifying" else "check"
        assert (cid, kind) in tasks
        assert str(tasks[(cid, kind)]).startswith("sup-")
    assert (fixes or 0) > 1000  # today's patrols so far (one a minute, the last 5 minutes at full rate)
    assert (tmp_path / "simulation.json").exists()


def test_a_second_simulation_on_the_same_database_is_refused(city_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="already holds"):
        Simulation.prepare(city_engine, tmp_path / "elsewhere", seed=3, backfill_days=0.1)


def test_live_simulation_goes_through_the_device_feed(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    upgrade(engine)
    build_city(engine, BuildRequest())
    provision_embedded(engine, kiosk_secret="k" * 24)  # the supervisors the simulation patrols with
    offset = datetime.now(UTC) - _morning(datetime.now(UTC))
    clock = lambda: datetime.now(UTC) - offset  # noqa: E731  # a morning on shift, in the past day
    sim = Simulation.prepare(
        engine, tmp_path, seed=5, reports_per_day=30_000, clock=clock, backfill_days=0.05
    )
    server = start_live_server(engine)
    try:
        sim.start(server.core, server.url)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (sim.stats.commands_sent < 5 or sim.stats.fixes_sent < 100):
            time.sleep(0.25)
        sim.stop()
        assert sim.stats.fixes_sent >= 100
        assert sim.stats.commands_sent >= 5
        assert sim.stats.rejected == {}, sim.stats.rejected
        assert sim.stats.accepted + sim.stats.duplicates >= sim.stats.commands_sent
        assert server.core.simulating.is_set()
        with engine.connect() as conn:
            live_fixes = conn.scalar(
                select(func.count()).select_from(Position).where(Position.received_at > clock())
            )
        assert live_fixes and live_fixes >= 50  # acknowledged fixes are stored
        with engine.connect() as conn:
            live_cases = conn.execute(
                select(Case.origin, func.count()).where(Case.reported_at > clock() - timedelta(seconds=60))
                .group_by(Case.origin)
            ).all()  # fmt: skip
        assert dict(live_cases).keys() == {"simulation"}
    finally:
        server.stop()


def test_a_task_sent_from_the_desk_to_a_simulated_supervisor_is_acknowledged_and_answered(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    upgrade(engine)
    build_city(engine, BuildRequest())
    with transaction(engine) as s:
        add_person(s, "acc-sim", "acceptor")
    server = start_live_server(engine)  # provisions the supervisors and their handsets
    sim: Simulation | None = None
    try:
        sim = Simulation.prepare(engine, tmp_path, seed=7, reports_per_day=10, backfill_days=0.01)
        sim.answer_after = (0.2, 0.6)
        sim.start(server.core, server.url)
        spot, other = server.spot(), server.spot()
        handset = server.peer("/device", spot.secret)
        ref = f"hot-{uuid.uuid4().hex[:6]}"
        ack = handset.call("report", {"id": ref, "at": datetime.now(UTC).isoformat(), "kind": "component",
                                      "class_code": "0101", "lon": spot.lon, "lat": spot.lat,
                                      "source": "hotline"})  # fmt: skip
        case_id = ack["cases"][ref]
        acceptor = {"person_id": "acc-sim", "role": "acceptor"}
        got = run_command(server.core.pipeline, acceptor, "accept", case_id, {"assignee": other.person})
        assert got["accepted"], got
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                task = conn.execute(
                    select(Task.assignee, Task.acked_at, Task.done_at, Task.result).where(
                        Task.case_id == case_id
                    )
                ).one()
            if task.done_at is not None:
                break
            time.sleep(0.2)
        sim.stop()
        assert task.assignee == other.person and task.acked_at is not None and task.done_at is not None
        with engine.connect() as conn:
            verify = conn.execute(
                select(CaseEventRow.actor, CaseEventRow.opinion)
                .where(CaseEventRow.case_id == case_id, CaseEventRow.action == "verify")
            ).one()  # fmt: skip
        assert verify.actor == other.person and verify.opinion.startswith("模拟数据")
        assert sim.stats.rejected == {}, sim.stats.rejected
        # a planned case's task given to someone else: answered by them, the plan's own answer held back
        sent: list[tuple[str, Any]] = []

        class Gateway:  # the seam: what the handler sends back over its socket
            def emit(self, event: str, body: Any, **_: Any) -> None:
                sent.append((event, body))

        handler = sim._on_task(Gateway())
        grid = next(iter(sim.responsible))
        planned = {
            "case_id": "C2026010100001",
            "task": "check",
            "grid": grid,
            "deadline": "2026-01-01T10:00:00+08:00",
        }
        handler({**planned, "supervisor": "sup-someone-else"})
        assert ("C2026010100001", "check") in sim._taken and [e for e, _ in sent] == ["task_ack"]
        assert any(b["case_id"] == "C2026010100001" for _, _, b in sim._answers)
        handler({**planned, "supervisor": sim.responsible[grid]})  # given back: the plan answers again
        assert ("C2026010100001", "check") not in sim._taken
    finally:
        if sim is not None:
            sim.stop()
        server.stop()


def test_a_backfill_stopped_after_its_cases_completes_the_patrols_without_doubling_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")  # its own: the module's city has a simulation
    build_city(engine, BuildRequest())
    provision_embedded(engine, kiosk_secret="k" * 32)
    now = _morning(datetime.now(UTC))

    def stopped(self: Simulation, at: datetime) -> int:
        with engine.begin() as conn:  # one hour of patrols had been written when the process stopped
            conn.execute(Position.__table__.insert(), [  # type: ignore[attr-defined]
                {"supervisor_id": "sup-x", "at": at, "received_at": at, "lon": 116.4, "lat": 39.9,
                 "grid_code": None, "source": "simulation"}
            ])  # fmt: skip
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Simulation, "backfill_patrol", stopped)
        with pytest.raises(KeyboardInterrupt):
            Simulation.prepare(
                engine, tmp_path, seed=5, reports_per_day=300, clock=lambda: now, backfill_days=1
            )
    with engine.connect() as conn:
        cases = conn.scalar(select(func.count()).select_from(Case))
    assert cases and cases > 100  # the cases' transaction had committed
    messages: list[str] = []
    Simulation.prepare(engine, tmp_path, seed=5, reports_per_day=300, clock=lambda: now, backfill_days=1,
                       progress=messages.append)  # fmt: skip
    assert any("completing it" in m for m in messages)
    assert not any("backfilling" in m for m in messages)  # the cases were not written twice
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Case)) == cases
        assert not conn.scalar(
            select(func.count()).select_from(Position).where(Position.supervisor_id == "sup-x")
        )
        assert (conn.scalar(select(func.count()).select_from(Position)) or 0) > 1000  # today's patrols
    # and the plan now says the backfill is complete: the next start goes straight on
    messages.clear()
    Simulation.prepare(engine, tmp_path, seed=5, reports_per_day=300, clock=lambda: now, backfill_days=1,
                       progress=messages.append)  # fmt: skip
    assert messages == []
