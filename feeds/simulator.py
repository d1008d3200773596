"""The live simulation of embedded mode: supervisors patrol, cases flow, all through ``/device``.

Everything it produces is simulated data (``source=simulation`` on fixes; the wall shows 模拟数据
while it runs). It is made of the two pure, seeded generators:

- :mod:`feeds.sources.patrol` — supervisors walking their responsibility areas on shift;
- :mod:`feeds.sources.caseflow` — calibrated case histories (reports, 核实, filing, dispatch,
  handling with returns, extensions, suspensions and reworks, 核查, closing, urges).

On the first start :meth:`Simulation.prepare` backfills 7 days of case history in bulk (the
commands were applied by the state machine; only the writes are batched) and today's patrol at
one fix a minute (the last five minutes at full rate). Then :meth:`Simulation.start` runs live:
a Socket.IO client of ``/device`` with a gateway token (at most ``connections`` sockets) sends
each second's fixes as ``positions`` batches, and each case command when its instant comes —
supervisors' reports as ``report``, their 核实/核查 results as ``task_result``, centre and
department steps as ``command`` — and acknowledges the ``task`` events it receives. After a
restart it regenerates the same stream (same seed and start) and sends what the database does not
have yet.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import logging
import math
import os
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import requests
import socketio
from PIL import Image, ImageDraw
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import Engine

from domain.duplicates import EARTH_M
from domain.errors import SimulationError
from domain.evaluation import CaseInfo, DailyAggregates
from domain.geo import spot_point
from domain.lifecycle import Accepted, Action, CaseEvent, CaseState, Command, Context, Policy, Role, apply
from feeds.core import build_context
from feeds.pipeline import SIMULATION_GATEWAY, scoped_key
from feeds.simulate import supervisor_of_area
from feeds.sources.caseflow import CASE_PREFIX, CaseFlow, generate
from feeds.sources.patrol import FixArrays, Patrol, areas_from_store
from store.accounts import issue_token
from store.counters import last_event_id, save_rows
from store.db import session_factory, transaction
from store.geography import load_index
from store.history import CaseHistory, bulk_insert, bulk_insert_histories
from store.models import Case, CaseEventRow, Grid, Position, Token

log = logging.getLogger(__name__)
STATE_FILE = "simulation.json"
GATEWAY_NAME = SIMULATION_GATEWAY
BACKFILL_DAYS = 7
# a task the plan does not hold (a desk sent a simulated supervisor): answered after a walk and a look
ANSWER_AFTER_S = (60.0, 240.0)
ANSWER_YES = 0.9  # 属实 / 核查通过
ANSWER_OPINIONS = {
    ("verify", True): "模拟数据：现场核实属实",
    ("verify", False): "模拟数据：现场未发现该问题",
    ("check", True): "模拟数据：已处置到位",
    ("check", False): "模拟数据：未处置到位，请返工",
}
HORIZON_DAYS = 3650
__all__ = ["Simulation", "SimulationError", "SimulationStats"]


def _write_plan(path: Path, start: datetime, seed: int, *, backfilled: bool) -> None:
    """Write the simulation plan atomically (a stop mid-write leaves the previous one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps({"start": start.isoformat(), "seed": seed, "backfilled": backfilled}), encoding="utf-8"
    )
    os.replace(tmp, path)


class Simulated(Protocol):
    """The running process the simulation feeds: it marks what it shows as simulated (模拟数据)."""

    simulating: threading.Event


@dataclass
class SimulationStats:
    """What the live simulation has sent and what came back."""

    fixes_sent: int = 0
    commands_sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    tasks_received: int = 0


class Simulation:
    """A seeded simulation of one district: backfill, then live over ``/device``."""

    def __init__(
        self,
        engine: Engine,
        ctx: Context,
        *,
        start: datetime,
        seed: int,
        gateway_secret: str,
        reports_per_day: float = 1300,
        connections: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.ctx = ctx
        self.start_at = start
        self.seed = seed
        self.gateway_secret = gateway_secret
        self.clock = clock or (lambda: datetime.now(UTC))
        self.photos: dict[str, str] = {}  # 自处置 reports' photos ("near", "after"): uploaded on connect
        self.left_out: set[str] = set()  # 自处置 cases not sent: the server took no photos
        with session_factory(engine)() as s:
            rows = s.execute(
                select(Grid.code, Grid.area_code, Grid.geometry).where(Grid.active).order_by(Grid.code)
            ).all()
        self.grids = [r[0] for r in rows]
        self.responsible = {r[0]: supervisor_of_area(r[1] or r[0][:9]) for r in rows}
        self.points: dict[str, tuple[float, float]] = {}
        self.shapes: dict[str, BaseGeometry] = {}
        for code, _, geom in rows:
            g = self.shapes[code] = shape(geom)
            p = g.representative_point()
            self.points[code] = (round(p.x, 6), round(p.y, 6))
        self.flow: CaseFlow = generate(
            start,
            HORIZON_DAYS,
            self.grids,
            ctx,
            seed=seed,
            reports_per_day=reports_per_day,
            supervisors=[self.responsible[g] for g in self.grids],
            keep=False,
        )
        self.patrol = Patrol(areas_from_store(engine), ctx.calendar.tz, seed=seed)
        sups = sorted(self.patrol.supervisors)
        n = connections or max(1, min(20, -(-len(sups) // 500)))
        self.shard = {s: i % n for i, s in enumerate(sups)}
        self.connections = n
        self.pending: tuple[Command, datetime] | None = None
        self.stats = SimulationStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: list[socketio.Client] = []
        self._answers: list[tuple[datetime, str, dict[str, Any]]] = []  # heap of task results due
        self._answers_lock = threading.Lock()
        self._answer_rng = random.Random(seed ^ 0x7A5C)
        self.answer_after = ANSWER_AFTER_S  # seconds between a desk's task and its simulated result
        self._taken: set[tuple[str, str]] = set()  # planned cases whose task a desk gave to someone else

    # -- first start ------------------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        engine: Engine,
        data_dir: Path,
        *,
        seed: int = 1,
        edition: str = "cjt214",
        reports_per_day: float = 1300,
        clock: Callable[[], datetime] | None = None,
        progress: Callable[[str], None] = lambda msg: None,
        backfill_days: float = BACKFILL_DAYS,
        policy: Policy | None = None,
    ) -> Simulation:
        """Load or create the simulation plan; on the first start backfill 7 days; issue a gateway token.
        ``policy``: the centre's (its optional steps are simulated when it has them)."""
        now = (clock or (lambda: datetime.now(UTC)))()
        path = data_dir / STATE_FILE
        first = not path.exists()
        if first:
            with session_factory(engine)() as s:
                earlier = s.scalar(select(func.count()).select_from(Case).where(Case.id.like("C%")))
            if earlier:
                raise SimulationError(
                    f"the database already holds {earlier:,} simulated cases but {path} is missing; "
                    "start with the data folder of that simulation, an empty database, or --no-simulation"
                )
            tz = build_context(engine, edition).calendar.tz
            local = (now - timedelta(days=backfill_days)).astimezone(tz)
            if backfill_days >= 1:  # whole days: from local midnight
                local = local.replace(hour=0, minute=0, second=0, microsecond=0)
            start = local.astimezone(UTC)
            _write_plan(path, start, seed, backfilled=False)
            backfilled = False
        else:
            plan = json.loads(path.read_text(encoding="utf-8"))
            start, seed = datetime.fromisoformat(plan["start"]), int(plan["seed"])
            backfilled = bool(plan.get("backfilled", True))  # plans from before the flag were complete
        with transaction(engine) as s:
            s.execute(
                update(Token)
                .where(Token.kind == "gateway", Token.name == GATEWAY_NAME, Token.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            _, secret = issue_token(s, "gateway", GATEWAY_NAME, scope=["*"])
        sim = cls(
            engine, build_context(engine, edition, policy), start=start, seed=seed, gateway_secret=secret,
            reports_per_day=reports_per_day, clock=clock,
        )  # fmt: skip
        if backfilled:
            sim.skip_stored(now)
            return sim
        # the first start, or one that was stopped before its backfill was complete (the plan is the
        # same, so the backfill is redone: the cases in one transaction, today's patrols afresh)
        with session_factory(engine)() as s:
            stored = s.scalar(select(func.count()).select_from(Case).where(Case.id.like("C%"))) or 0
        if not first:
            progress("simulation: the first start stopped during the backfill; completing it ...")
        if stored:  # the cases' transaction had committed: go on after them
            sim.skip_stored(now)
        else:
            progress(f"simulation: backfilling {backfill_days:g} days of cases ...")
            n = sim.backfill_cases(now)
            progress(f"simulation: {n:,} case events backfilled; today's patrols ...")
        with engine.begin() as conn:  # hour by hour, so a stop may have left part of them
            conn.execute(delete(Position).where(Position.source == "simulation"))
        sim.backfill_patrol(now)
        _write_plan(path, start, seed, backfilled=True)
        return sim

    def _key(self, cmd: Command) -> str:
        return scoped_key(cmd.actor.id, cmd.key)

    def backfill_cases(self, now: datetime) -> int:
        """Apply every command before ``now`` and write the histories in bulk; returns events written."""
        histories: dict[str, CaseHistory] = {}
        states: dict[str, CaseState] = {}
        # the CJ/T 292 daily counters of the backfill, counted here rather than replayed on start
        aggregates = DailyAggregates(responsible=self.responsible, tz=self.ctx.calendar.tz)
        infos: dict[str, CaseInfo] = {}
        steps: dict[str, list[tuple[Command, datetime, CaseState, tuple[CaseEvent, ...]]]] = {}
        for cmd, at in self.flow:
            if at > now:
                self.pending = (cmd, at)
                break
            out = apply(states.get(cmd.case_id), cmd, at, self.ctx)
            if not isinstance(out, Accepted):
                log.warning("simulation: generated %s of %s rejected: %s", cmd.action, cmd.case_id, out)
                continue
            states[cmd.case_id] = out.state
            steps.setdefault(cmd.case_id, []).append((cmd, at, out.state, out.events))
            if cmd.action is Action.REPORT:
                infos[cmd.case_id] = CaseInfo.from_state(out.state, str(cmd.data.get("grid")))
            for ev in out.events:
                aggregates.add(infos[cmd.case_id], ev, out.state)
            if cmd.action is Action.REPORT:
                grid = str(cmd.data.get("grid"))
                lon, lat = self.point_of(cmd.case_id, grid)
                histories[cmd.case_id] = CaseHistory(
                    steps=steps[cmd.case_id], grid=grid, lon=lon, lat=lat,
                    description="模拟数据 simulated report", assignee=self.responsible.get(grid),
                )  # fmt: skip
            if not out.state.is_open:
                states.pop(cmd.case_id, None)
        with self.engine.begin() as conn:
            written = bulk_insert_histories(conn, histories, key=self._key)
            save_rows(conn, aggregates.take_dirty(), aggregates.holders(), last_event_id(conn))
        return written

    def backfill_patrol(self, now: datetime) -> int:
        """Today's fixes so far: one a minute, the last five minutes at full rate."""
        tz = self.ctx.calendar.tz
        day = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        recent = max(day, now - timedelta(minutes=5))
        with session_factory(self.engine)() as s:
            index = load_index(s, self.grids[0][:6])
        written = 0
        t = day
        while t < now:
            t1 = min(now, t + timedelta(hours=1))
            arr = self.patrol.fix_arrays_between(t, t1)
            secs = arr.at_us // 1_000_000
            keep = (arr.at_us >= int(recent.timestamp() * 1e6)) | (secs % 60 < 10)
            written += self._insert_positions(arr, keep, index, now)
            t = t1
        return written

    def _insert_positions(self, arr: FixArrays, keep: np.ndarray, index: Any, now: datetime) -> int:
        if not keep.any():
            return 0
        lon, lat = arr.lon[keep], arr.lat[keep]
        codes = index.lookup(lon, lat)
        ats = [datetime.fromtimestamp(v / 1e6, UTC) for v in arr.at_us[keep].tolist()]
        rows = [
            {"supervisor_id": s, "at": a, "received_at": now, "lon": lo, "lat": la, "accuracy": ac,
             "speed": sp, "grid_code": g, "source": "simulation"}
            for s, a, lo, la, ac, sp, g in zip(
                arr.supervisor[keep].tolist(), ats, lon.tolist(), lat.tolist(), arr.accuracy[keep].tolist(),
                arr.speed[keep].tolist(), codes.tolist(), strict=True,
            )
        ]  # fmt: skip
        table: Table = Position.__table__  # type: ignore[assignment]
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 20_000):
                bulk_insert(conn, table, rows[i : i + 20_000])
        return len(rows)

    def skip_stored(self, now: datetime) -> None:
        """After a restart: skip the commands the database already has (the stream is the same)."""
        with session_factory(self.engine)() as s:
            last = s.scalar(select(func.max(CaseEventRow.at)).where(CaseEventRow.case_id.like("C%")))
        for cmd, at in self.flow:
            if last is None or at > last:
                self.pending = (cmd, at)
                break

    # -- live ---------------------------------------------------------------------------------------

    def start(self, core: Simulated, url: str) -> None:
        """Run live in a background thread, a client of ``url``'s ``/device``; mark the process 模拟数据."""
        core.simulating.set()
        self._thread = threading.Thread(target=self._run, args=(url,), name="gw-simulation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for c in self._clients:
            with contextlib.suppress(Exception):  # shutting down
                c.disconnect()

    def _connect(self, url: str) -> bool:
        delay = 0.2
        while not self._stop.is_set():
            try:
                for _ in range(self.connections):
                    c = socketio.Client(reconnection=True, request_timeout=30)
                    c.on("task", self._on_task(c), namespace="/device")
                    c.connect(url, namespaces=["/device"], auth={"token": self.gateway_secret},
                              transports=["websocket"], wait_timeout=10)  # fmt: skip
                    self._clients.append(c)
                return True
            except socketio.exceptions.ConnectionError:
                for c in self._clients:
                    c.disconnect()
                self._clients = []
                self._stop.wait(delay)
                delay = min(5.0, delay * 2)
        return False

    def _on_task(self, client: socketio.Client) -> Callable[[dict[str, Any]], None]:
        def handler(task: dict[str, Any]) -> None:
            self.stats.tasks_received += 1
            body = {"id": f"ack-{task.get('case_id')}-{task.get('task')}-{task.get('deadline')}",
                    "supervisor": task.get("supervisor"), "case_id": task.get("case_id"),
                    "task": task.get("task"), "at": self.clock().isoformat()}  # fmt: skip
            client.emit("task_ack", body, namespace="/device", callback=self._count)
            case_id, kind = str(task.get("case_id", "")), str(task.get("task"))
            planned = case_id.startswith(CASE_PREFIX) and task.get("supervisor") == self.responsible.get(
                str(task.get("grid"))
            )  # the plan answers its own cases' tasks as the grid's supervisor
            with self._answers_lock:
                if planned:
                    self._taken.discard((case_id, kind))
                elif case_id.startswith(CASE_PREFIX):
                    self._taken.add((case_id, kind))  # a desk sent another: the plan's answer is not sent
            if not planned:
                self._plan_answer(task)

        return handler

    def _plan_answer(self, task: dict[str, Any]) -> None:
        """Answer a task the plan does not hold (sent from a desk) a few simulated minutes later."""
        with self._answers_lock:
            rng = self._answer_rng
            due = self.clock() + timedelta(seconds=rng.uniform(*self.answer_after))
            yes = rng.random() < ANSWER_YES
        kind = task.get("task")
        opinion = ANSWER_OPINIONS.get((str(kind), yes), "模拟数据")
        ref = f"answer-{task.get('case_id')}-{kind}-{task.get('deadline')}"
        body: dict[str, Any] = {"id": ref,
                "supervisor": task.get("supervisor"), "case_id": task.get("case_id"), "task": kind,
                "result": yes, "opinion": opinion}  # fmt: skip
        with self._answers_lock:
            heapq.heappush(self._answers, (due, ref, body))

    def _send_answers(self, now: datetime) -> None:
        while True:
            with self._answers_lock:
                if not self._answers or self._answers[0][0] > now:
                    return
                due, _, body = heapq.heappop(self._answers)
            ack = self._clients[0].call("task_result", {**body, "at": due.isoformat()}, namespace="/device",
                                        timeout=30)  # fmt: skip
            self._count(ack)

    def _count(self, ack: Any = None) -> None:
        if not isinstance(ack, dict):
            return
        self.stats.accepted += len(ack.get("accepted", ()))
        self.stats.duplicates += len(ack.get("duplicates", ()))
        for r in ack.get("rejected", ()):
            reason = str(r.get("reason"))
            self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

    def _upload_photos(self, url: str) -> bool:
        """Upload the two pictures every simulated 自处置 report shows (before, after), marked 模拟数据."""
        for kind, shade in (("near", (90, 60, 40)), ("after", (40, 90, 60))):
            img = Image.new("RGB", (320, 240), shade)
            ImageDraw.Draw(img).text((16, 16), f"SIMULATED {kind}", fill=(255, 255, 255))
            buf = io.BytesIO()
            img.save(buf, "JPEG")
            try:
                r = requests.post(
                    f"{url}/api/v1/media",
                    files={"file": ("sim.jpg", buf.getvalue(), "image/jpeg")},
                    data={"kind": kind},
                    headers={"Authorization": f"Bearer {self.gateway_secret}"},
                    timeout=30,
                )
            except requests.RequestException:
                return False
            if r.status_code not in (200, 201):
                log.warning("simulation: photo upload answered %s: %s", r.status_code, r.text[:200])
                return False
            self.photos[kind] = str(r.json()["ref"])
        return True

    def _run(self, url: str) -> None:
        if not self._connect(url):
            return
        if not self._upload_photos(url):
            log.warning("simulation: the server took no photos; its 自处置 cases are left out")
        last = self.clock()
        while not self._stop.is_set():
            now = self.clock()
            try:
                self._send_fixes(last, now)
                self._send_commands(now)
                self._send_answers(now)
            except Exception:
                log.exception("simulation step failed")
            last = now
            self._stop.wait(max(0.0, 1.0 - (self.clock() - now).total_seconds()))

    def _send_fixes(self, t0: datetime, t1: datetime) -> None:
        arr = self.patrol.fix_arrays_between(t0, t1)
        if not len(arr):
            return
        per: list[list[dict[str, Any]]] = [[] for _ in self._clients]
        for s, at, lon, lat, sp, ac in zip(
            arr.supervisor.tolist(), arr.at_us.tolist(), arr.lon.tolist(), arr.lat.tolist(),
            arr.speed.tolist(), arr.accuracy.tolist(), strict=True,
        ):  # fmt: skip
            per[self.shard.get(s, 0) % len(per)].append(
                {"supervisor": s, "at": at // 1000, "lon": lon, "lat": lat, "speed": sp, "accuracy": ac}
            )
        for client, fixes in zip(self._clients, per, strict=True):
            for i in range(0, len(fixes), 500):
                chunk = {"fixes": fixes[i : i + 500]}
                client.emit("positions", chunk, namespace="/device", callback=self._count)
                self.stats.fixes_sent += len(chunk["fixes"])

    def _commands_due(self, now: datetime) -> Iterator[tuple[Command, datetime]]:
        while True:
            if self.pending is None:
                try:
                    self.pending = next(self.flow)
                except StopIteration:
                    return
            cmd, at = self.pending
            if at > now:
                return
            self.pending = None
            yield cmd, at

    def _send_commands(self, now: datetime) -> None:
        client = self._clients[0]
        for cmd, at in self._commands_due(now):
            if self._stop.is_set():
                return
            if cmd.action is Action.REPORT and cmd.data.get("self_handled") and len(self.photos) < 2:
                self.left_out.add(cmd.case_id)  # a 自处置 needs its photos (before, after)
            if cmd.case_id in self.left_out:
                if not self.leaves_open(cmd):
                    self.left_out.discard(cmd.case_id)
                continue
            if cmd.action in (Action.VERIFY, Action.CHECK) and cmd.actor.role is Role.SUPERVISOR:
                with self._answers_lock:
                    taken = (cmd.case_id, cmd.action.value) in self._taken
                    self._taken.discard((cmd.case_id, cmd.action.value))
                if taken:  # answered by the supervisor the desk sent (_plan_answer)
                    continue
            event, body = self.event_of(cmd, at)
            ack = client.call(event, body, namespace="/device", timeout=30)  # in order: wait for each ack
            self.stats.commands_sent += 1
            self._count(ack)

    def point_of(self, case_id: str, grid: str) -> tuple[float | None, float | None]:
        """Where a generated case is: its spot in its grid (an injected repeat: near its original's),
        else the grid's representative point."""
        info = self.flow.cases.get(case_id)
        shape_ = self.shapes.get(grid)
        if info is None or shape_ is None:
            return self.points.get(grid, (None, None))
        lon, lat = spot_point(shape_, info.spot)
        if info.offset_m != (0.0, 0.0):
            dx, dy = info.offset_m
            lat_r = math.radians(lat)
            lon += math.degrees(dx / (EARTH_M * math.cos(lat_r)))
            lat += math.degrees(dy / EARTH_M)
            if not shape_.covers(Point(lon, lat)):  # the report's grid is its original's
                lon, lat = spot_point(shape_, info.spot)
        return round(lon, 6), round(lat, 6)

    @staticmethod
    def leaves_open(cmd: Command) -> bool:
        """Whether a generated command leaves its case open (a 结案 or 作废 ends it)."""
        return cmd.action not in (Action.CLOSE, Action.VOID)

    def event_of(self, cmd: Command, at: datetime) -> tuple[str, dict[str, Any]]:
        """The ``/device`` event that carries a generated command."""
        d = cmd.data
        when = at.isoformat()
        if cmd.action is Action.REPORT:
            grid = str(d.get("grid"))
            lon, lat = self.point_of(cmd.case_id, grid)
            if cmd.actor.role is Role.SUPERVISOR:
                return "report", {
                    "id": cmd.key, "supervisor": cmd.actor.id, "case_id": cmd.case_id, "at": when,
                    "kind": d["kind"], "class_code": d["class_code"],
                    "condition_code": d.get("condition_code"), "lon": lon, "lat": lat,
                    "description": "模拟数据 simulated report", "source": d["source"],
                    **({"self_handled": True, "media": [self.photos.get("near", "")],
                        "handled_media": [self.photos.get("after", "")]} if d.get("self_handled") else {}),
                }  # fmt: skip
            plain = {k: v for k, v in d.items() if isinstance(v, str | int | float | bool)}
            return "command", self._command_body(cmd, when, {**plain, "lon": lon, "lat": lat})
        if cmd.action in (Action.VERIFY, Action.CHECK) and cmd.actor.role is Role.SUPERVISOR:
            field = "confirmed" if cmd.action is Action.VERIFY else "passed"
            return "task_result", {
                "id": cmd.key, "supervisor": cmd.actor.id, "case_id": cmd.case_id, "at": when,
                "task": cmd.action.value, "result": bool(d.get(field)), "opinion": cmd.opinion,
            }  # fmt: skip
        rest = {k: v for k, v in d.items() if isinstance(v, str | int | float | bool | None)}
        return "command", self._command_body(cmd, when, rest)

    @staticmethod
    def _command_body(cmd: Command, when: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": cmd.key, "action": cmd.action.value, "case_id": cmd.case_id, "actor": cmd.actor.id,
            "role": cmd.actor.role.value, "department": cmd.actor.department, "opinion": cmd.opinion,
            "at": when, "data": data,
        }  # fmt: skip
