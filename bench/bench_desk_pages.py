"""Desk pages at scale (issue 8 "Speed"): the grid page and the case page over 1,000,000 cases.

Target: with 1,000,000 cases and 10,000,000 case events, ``/grid/<code>`` and ``/case/<id>`` answer
in ≤ 150 ms at p95 on PostgreSQL (≤ 300 ms on SQLite).

Data. The Dongcheng district is built as ``bench_desk_eval`` builds it (``build_city``,
``provision_embedded``, the catalogue's departments), then bulk-loaded with two years of cases:
1,000,000 cases (about 5 % open, spread over every stage; most closed, a few voided), about ten
events per case (1 % with long timelines of 30–60 events: urges, reworks, extensions,
suspensions), their stage timers and 核实/核查 tasks, a seven-force roster per grid, a week of patrol
fixes (one a minute, 08:00–18:00, every area supervisor) and the grids' daily counters of the last
two months. A few hot grids hold 4,000–20,000 cases each; the others follow a log-normal spread.

Every case is a real lifecycle history: a few thousand template histories are run through
``domain.lifecycle.apply`` (report → accept → [assign, verify] → file → dispatch → [return,
extension, suspension, urges] → feedback → [rework] → check → close; open cases are prefixes
of such histories), and each generated case is one template moved by whole weeks (so deadlines
keep their work-calendar alignment) with its own id, grid, point, reporter, description and photos.
Loading bypasses the pipeline on purpose, like other bench provisioning: PostgreSQL gets ``COPY``
(psycopg ``cursor.copy``) with secondary indexes dropped and rebuilt, SQLite ``executemany`` in
large transactions with bulk-load pragmas. The daily-counter mark is set to the newest event so the
live core loads the stored counters instead of rebuilding them from ten million events.

The generated databases are kept between runs (PostgreSQL database ``gw_bench_pages`` on the server
of ``$GW_BENCH_PG``, SQLite file ``/tmp/gw-bench-pages/gw.db``; never in the repository) with a
marker (a database comment, a file next to the SQLite file) that lets a rerun skip generation;
migrations newer than the data are applied on every run. Generation time is reported on its own row,
which fails when the database holds another number of cases than planned.

Measurement. The app is composed as ``app.py run`` composes it (``gridwall.runtime.build``: a read-only
engine for pages, the desk's session check, counters and pipeline) and
served in process by Werkzeug's threaded server on a real loopback port. A leader logs in through
the real form (CSRF), then one client asks the Dash router callback (``POST
/_dash-update-component`` with pathname ``/grid/<code>`` or ``/case/<id>``) for 250 pages each,
after a warm-up, one request at a time: grids are the ten hottest plus random ones; cases are open
ones, closed ones and the longest timelines. The figure given is the loopback round trip, an upper
bound of the server time; the server's own time per request (a WSGI wrapper around the Flask app,
from the call to the finished body) is shown alongside. Every page must answer 200 with its content
(the grid-code or case-id component), and every planned page must be asked for; otherwise the row fails.

Smoke run (``python -m bench desk_pages --smoke``, :data:`SMOKE`): the same generation, serving,
login and measuring on 2,000 cases from 100 templates, a day of patrol, 10 pages of each kind after
2 warm-ups, in a database of its own that is generated on every run and dropped afterwards
(PostgreSQL ``gw_bench_pages_smoke_<random>``, SQLite in a temporary folder): the kept data is never
touched. Speed is not judged (rows ``—``); the case count and the pages are.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bench import FAIL, INFO, PASS, SKIP, SMOKE_NOTE, Result, console, print_table
from bench._server import load_line, percentile

# the server's maintenance connection (databases are created and dropped through it)
PG_ADMIN = os.environ.get("GW_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
PG_DB = "gw_bench_pages"
SQLITE_DIR = Path("/tmp/gw-bench-pages")
GEN_VERSION = 1  # bump when the generated data changes: a rerun regenerates

N_CASES = 1_000_000
OPEN_SHARE = 0.05
LONG_SHARE = 0.01
WEEKS = 104  # closed cases are reported over the last two years
HOT_SHARES = (0.020, 0.015, 0.012, 0.010, 0.008, 0.006, 0.005, 0.004)  # of all cases, hottest first
N_TEMPLATES = 4000
CHUNK = 20_000  # cases per load batch (SQLite: per transaction)
PATROL_DAYS = 7
TARGET_MS = {"postgresql": 150.0, "sqlite": 300.0}
REQUESTS = 250
WARMUP = 30
SEED = 20261127
HOT_PAGES, HOT_REPEAT = 10, 4  # grid pages: the ten hottest grids four times each, the rest random ones
OPEN_PAGES, CLOSED_PAGES = 100, 100  # case pages: open, closed, the rest the longest timelines
LONG_VERSION = 30  # a long timeline: at least this many events
PASSWORD = "bench-pages-leader-0123"
KIOSK = "bench-desk-pages-kiosk-0123456789abcdef"

WEEK_S = 7 * 86400
LOCAL_S = 8 * 3600  # Asia/Shanghai, no daylight saving


@dataclass(frozen=True)
class Workload:
    """What is generated and asked for, and whether the data is the kept one or a throwaway copy."""

    cases: int
    templates: int  # closed templates (and a quarter as many open ones)
    long_share: float  # of the templates: long timelines
    chunk: int  # cases per load batch
    patrol_days: int  # days of patrol fixes before today
    fix_every: int  # minutes between a supervisor's fixes
    requests: int  # timed pages of each kind
    warmup: int  # untimed pages first (half grid, half case pages)
    hot_pages: int  # grid pages: the hottest grids …
    hot_repeat: int  # … asked for this many times each
    open_pages: int  # case pages: open cases, closed ones, the rest the longest timelines
    closed_pages: int
    ids_per_day: int  # closed case pages are random ids R<day><k>, 1 ≤ k ≤ this
    smoke: bool = False  # its own database, generated on every run and dropped after; speed not judged


FULL = Workload(N_CASES, N_TEMPLATES, LONG_SHARE, CHUNK, PATROL_DAYS, 1, REQUESTS, WARMUP, HOT_PAGES,
                HOT_REPEAT, OPEN_PAGES, CLOSED_PAGES, 900)  # fmt: skip
# the smoke run (python -m bench desk_pages --smoke): the same generation, serving, login and measuring
# on 2,000 cases from 100 templates (long ones more common, so that some long timelines exist), a day
# of patrol (a fix every 10 minutes), 10 pages of each kind after 2 warm-ups; a fresh database on every
# run, so that a change of the stored format shows
SMOKE = Workload(2_000, 100, 0.10, 500, 1, 10, 10, 2, 2, 2, 4, 3, 4, smoke=True)

# -- templates: real lifecycle histories ----------------------------------------------------------------

SUP = "@@SUP@@"  # the grid's area supervisor, per case
DESCRIPTIONS = (
    "道路破损，影响通行",
    "井盖缺失，存在安全隐患",
    "路灯不亮",
    "垃圾堆放未清运",
    "共享单车乱停放",
    "绿地植被损坏",
    "占道经营",
    "广告牌破损",
    "积水严重",
    "护栏倾斜",
)


@dataclass
class Template:
    """One lifecycle history at its own base instant; instants are seconds after ``t0`` (epoch)."""

    t0: int
    events: list[tuple[Any, ...]]  # seq, action, actor, role, from, to, off, opinion, data json, placeholders
    timers: list[
        tuple[Any, ...]
    ]  # stage, limit value, unit, started, deadline, paused, paused s, ended, overdue
    tasks: list[tuple[Any, ...]]  # kind, assignee, created, deadline, done, result
    state: list[str | tuple[int, int] | None]  # JSON pieces: text, instant (offset, zone s), None: case id
    case: dict[str, Any]  # the cases columns that come from the state (offsets for instants)
    last: int  # offset of the last event


def _off(at: datetime | None, t0: int) -> int | None:
    return None if at is None else round(at.timestamp()) - t0


_TS_RE = re.compile(r"@@ID@@|@@SUP@@|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:\d\d")


def _state_pieces(state_json: str, t0: int) -> list[str | tuple[int, int] | None]:
    """The state JSON as text pieces, instants (offset from ``t0``, zone offset s) and case-id holes."""
    pieces: list[str | tuple[int, int] | None] = []
    pos = 0
    for m in _TS_RE.finditer(state_json):
        pieces.append(state_json[pos : m.start()])
        token = m.group(0)
        if token == "@@ID@@":
            pieces.append(None)
        elif token == SUP:
            pieces.append(SUP)
        else:
            at = datetime.fromisoformat(token)
            zone = at.utcoffset()
            pieces.append((round(at.timestamp()) - t0, int(zone.total_seconds()) if zone else 0))
        pos = m.end()
    pieces.append(state_json[pos:])
    return pieces


def _history(rng: random.Random, ctx: Any, t0: datetime, long: bool) -> list[tuple[Any, datetime]]:
    """One case history (commands with instants) with random side paths."""
    from domain.lifecycle import Action, Actor, Command, Role

    minor = rng.choice(ctx.catalogue.classes)
    dept = minor.department
    sup = Actor(SUP, Role.SUPERVISOR)
    acc = Actor(f"acc-{rng.randint(1, 4)}", Role.ACCEPTOR)
    lead = Actor(f"lead-{rng.randint(1, 3)}", Role.SHIFT_LEADER)
    disp = Actor(f"disp-{rng.randint(1, 3)}", Role.DISPATCHER)
    dep = Actor(f"dept-{dept}", Role.DEPARTMENT, department=dept)
    boss = Actor("leader-1", Role.LEADER)
    at = t0
    steps: list[tuple[Any, datetime]] = []

    def c(action: Action, actor: Actor, minutes: float, opinion: str = "", **data: Any) -> None:
        nonlocal at
        at = at + timedelta(seconds=round(minutes * 60))
        steps.append((Command(action, "@@ID@@", actor, opinion, data), at))

    public = rng.random() < 0.35
    source = rng.choice(("hotline", "public")) if public else "supervisor"
    report: dict[str, Any] = {
        "kind": minor.kind.value, "class_code": minor.code, "condition_code": minor.conditions[0].code,
        "source": source, "grid": "@@GRID@@", "lon": "@@LON@@", "lat": "@@LAT@@", "description": "@@DESC@@",
    }  # fmt: skip
    if not public and rng.random() < 0.7:
        report["media"] = "@@M1@@" if rng.random() < 0.7 else "@@M1@@,@@M2@@"
    c(Action.REPORT, acc if public else sup, 0, **report)
    c(Action.ACCEPT, acc, rng.uniform(1, 30), assignee=SUP)  # the pipeline adds the area's supervisor
    if public:
        if rng.random() < 0.08:
            c(Action.ASSIGN, lead, rng.uniform(2, 20), assignee=SUP)
        confirmed = rng.random() < 0.9
        c(Action.VERIFY, sup, rng.uniform(10, 120), "" if confirmed else "现场未发现", confirmed=confirmed)
        if not confirmed:
            c(Action.VOID, lead, rng.uniform(5, 60), "核实不属实")
            return steps
    elif rng.random() < 0.02:
        c(Action.VOID, lead, rng.uniform(5, 60), "重复上报")
        return steps
    c(Action.FILE, lead, rng.uniform(3, 60))
    c(Action.DISPATCH, disp, rng.uniform(3, 60))
    loops = rng.randint(2, 5) if long else 1
    urges = rng.randint(10, 30) if long else min(8, round(rng.expovariate(1 / 2.0)))
    for loop in range(loops):
        if rng.random() < (0.6 if long else 0.10):
            c(Action.REQUEST_RETURN, dep, rng.uniform(10, 120), "非本单位职责")
            c(Action.APPROVE, disp, rng.uniform(5, 60))
            c(Action.DISPATCH, disp, rng.uniform(5, 60))
        if rng.random() < (0.6 if long else 0.12):
            c(
                Action.REQUEST_EXTENSION,
                dep,
                rng.uniform(30, 600),
                "需协调多部门",
                extra=f"{rng.randint(1, 3)}工作日",
            )
            c(Action.APPROVE, disp, rng.uniform(5, 60))
        if rng.random() < (0.4 if long else 0.04):
            c(Action.REQUEST_SUSPENSION, dep, rng.uniform(30, 600), "待上级审批")
            c(Action.APPROVE, disp, rng.uniform(5, 60))
            c(Action.RESUME, disp, rng.uniform(600, 4000))
        for _ in range(urges // loops):
            c(Action.URGE, rng.choice((disp, lead, boss)), rng.uniform(30, 300), "请尽快处置")
        photo = {"media": "@@M3@@"} if rng.random() < 0.3 else {}
        c(Action.FEEDBACK, dep, rng.uniform(60, 2000), "已处置", assignee=SUP, **photo)
        if loop < loops - 1:  # 返工: back to handling for the next round
            c(Action.CHECK, sup, rng.uniform(20, 360), "现场仍未修复", passed=False)
        elif rng.random() < 0.15:
            c(Action.CHECK, sup, rng.uniform(20, 360), "现场仍未修复", passed=False)
            c(Action.FEEDBACK, dep, rng.uniform(60, 1500), "已返工", assignee=SUP)
    c(Action.CHECK, sup, rng.uniform(20, 360), passed=True)
    c(Action.CLOSE, lead, rng.uniform(10, 120))
    return steps


def build_templates(
    ctx: Any, t_week: int, n: int, seed: int, long_share: float = LONG_SHARE
) -> tuple[list[Template], list[Template]]:
    """``n`` closed (or voided) and ``n // 4`` open templates starting within the week from ``t_week``."""
    from domain.lifecycle import DISPLAY_STAGE, Accepted, Action, CaseState, Status, apply, state_to_json
    from store.cases import _plain, _running_deadline, _timer_values

    rng = random.Random(seed)
    tasks_of = {Status.VERIFYING: "verify", Status.TO_CHECK: "check"}
    closed: list[Template] = []
    opened: list[Template] = []
    for i in range(n + n // 4):
        want_open = i >= n
        day = rng.randrange(7)
        minute = int(rng.triangular(7 * 60, 22 * 60, 10 * 60))
        t0 = t_week + day * 86400 + minute * 60 - LOCAL_S
        start = datetime.fromtimestamp(t0, UTC)
        steps = _history(rng, ctx, start, long=rng.random() < long_share)
        if want_open:
            if steps[-1][0].action is not Action.CLOSE:
                continue  # voided: no open prefix worth having
            steps = steps[: rng.randint(1, len(steps) - 1)]
        state: CaseState | None = None
        events: list[tuple[Any, ...]] = []
        tasks: list[list[Any]] = []
        for seq, (cmd, at) in enumerate(steps):
            before = state
            out = apply(state, cmd, at, ctx)
            assert isinstance(out, Accepted), out
            state = out.state
            ev = out.events[0]
            data = orjson.dumps(_plain(ev.data)).decode()
            holes = "@@" in data
            data = data.replace('"@@LON@@"', "@@LON@@").replace('"@@LAT@@"', "@@LAT@@")
            events.append(
                (seq, ev.action.value, ev.actor, ev.role.value,
                 ev.from_status.value if ev.from_status else None, ev.to_status.value,
                 _off(ev.at, t0), ev.opinion, data, holes)
            )  # fmt: skip
            action = cmd.action
            if action in (Action.ASSIGN, Action.VERIFY, Action.CHECK):  # as store.cases._write
                kind = tasks_of.get(state.status, "verify") if action is Action.ASSIGN else action.value
                for t in tasks:
                    if t[0] == kind and t[4] is None:
                        t[4] = _off(at, t0)
                        if action is not Action.ASSIGN:
                            t[5] = bool(cmd.data.get("confirmed" if kind == "verify" else "passed"))
            kind = tasks_of.get(state.status)
            if kind and (before is None or before.status != state.status or action is Action.ASSIGN):
                assignee = cmd.data.get("assignee")
                tasks.append(
                    [kind, assignee, _off(at, t0), _off(state.timers[kind].deadline, t0), None, None]
                )
        assert state is not None
        timers = []
        for tm in state.timers.values():
            v = _timer_values(tm)
            timers.append(
                (v["stage"], v["limit_value"], v["limit_unit"], _off(v["started_at"], t0),
                 _off(v["deadline"], t0), _off(v["paused_since"], t0), v["paused_seconds"],
                 _off(v["ended_at"], t0), v["overdue"])
            )  # fmt: skip
        stage = DISPLAY_STAGE.get(state.status)
        case = {
            "kind": state.kind.value, "class_code": state.class_code, "condition_code": state.condition_code,
            "source": state.source.value, "status": state.status.value,
            "stage": stage.value if stage else None, "open": state.is_open, "emergency": state.emergency,
            "department_code": state.department, "reporter": state.reporter,
            "updated_at": _off(state.updated_at, t0), "closed_at": _off(state.closed_at, t0),
            "deadline": _off(_running_deadline(state), t0),
            "archive": state.archive.value if state.archive else None, "reworks": state.reworks,
            "returns": state.returns, "urges": state.urges, "version": len(events),
        }  # fmt: skip
        pieces = _state_pieces(orjson.dumps(state_to_json(state)).decode(), t0)
        tpl = Template(t0, events, timers, [tuple(t) for t in tasks], pieces, case, events[-1][6])
        (opened if want_open else closed).append(tpl)
    return closed, opened


# -- generation ------------------------------------------------------------------------------------------


@dataclass
class GridRow:
    """A grid as generation needs it."""

    code: str
    community: str
    street: str
    area: str | None
    lon: float
    lat: float
    dx: float
    dy: float


@dataclass
class Plan:
    """What every generated case is: template, shift, grid; in reporting order."""

    templates: list[Template]
    tpl: np.ndarray
    base: np.ndarray  # epoch of each case's template t0 after its shift
    grid: np.ndarray
    grids: list[GridRow]
    sup_of_area: dict[str, str]
    hot: list[str]


def _grids(engine: Engine) -> tuple[list[GridRow], dict[str, str]]:
    from store.models import Grid, Person

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Grid.code, Grid.community_code, Grid.street_code, Grid.area_code, Grid.centroid_lon,
                Grid.centroid_lat, Grid.min_lon, Grid.min_lat, Grid.max_lon, Grid.max_lat,
            ).where(Grid.active).order_by(Grid.code)
        ).all()  # fmt: skip
        sups = conn.execute(
            select(Person.area_code, Person.id).where(
                Person.role == "supervisor", Person.area_code.is_not(None)
            )
        ).all()
    grids = [GridRow(r[0], r[1], r[2], r[3], r[4], r[5], (r[8] - r[6]) / 8, (r[9] - r[7]) / 8) for r in rows]
    return grids, {str(a): str(p) for a, p in sups}


def plan(engine: Engine, ctx: Any, now: int, w: Workload = FULL) -> Plan:
    """Sample templates, shifts and grids for every case (deterministic for a seed and a week)."""
    grids, sup_of_area = _grids(engine)
    week0 = (now + LOCAL_S) // 86400 * 86400 - LOCAL_S  # local midnight today
    t_week = week0 - 8 * 86400  # templates start within the week that ended yesterday
    closed, opened = build_templates(ctx, t_week, w.templates, SEED, w.long_share)
    templates = closed + opened
    rs = np.random.default_rng(SEED)
    n_cases = w.cases
    n_open = int(n_cases * OPEN_SHARE)
    tpl = np.concatenate(
        [rs.integers(0, len(closed), n_cases - n_open), len(closed) + rs.integers(0, len(opened), n_open)]
    )
    t0 = np.array([t.t0 for t in templates], dtype=np.int64)[tpl]
    last = np.array([t.last for t in templates], dtype=np.int64)[tpl]
    kmin = np.maximum(0, np.ceil((t0 + last - (now - 60)) / WEEK_S)).astype(np.int64)
    is_open = np.arange(n_cases) >= n_cases - n_open
    extra = np.where(is_open, np.minimum(rs.geometric(0.7, n_cases) - 1, 8), rs.integers(0, WEEKS, n_cases))
    base = t0 - (kmin + extra) * WEEK_S
    weights = rs.lognormal(0.0, 0.8, len(grids))
    hot_idx = rs.choice(len(grids), len(HOT_SHARES), replace=False)
    rest = 1.0 - sum(HOT_SHARES)
    weights[hot_idx] = 0.0
    weights = weights / weights.sum() * rest
    weights[hot_idx] = HOT_SHARES
    grid = rs.choice(len(grids), n_cases, p=weights)
    order = np.argsort(base, kind="stable")
    return Plan(
        templates, tpl[order], base[order], grid[order], grids, sup_of_area, [grids[i].code for i in hot_idx]
    )


class Clock:
    """Fast text of epoch seconds: database (``pg``/``sqlite``) and ISO (``state`` JSON)."""

    def __init__(self, backend: str, first: int, last: int) -> None:
        d0 = first // 86400 - 1
        self.d0 = d0
        days = range(d0, last // 86400 + 2)
        self.day = [datetime.fromtimestamp(d * 86400, UTC).strftime("%Y-%m-%d") for d in days]
        self.tod = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
        self.suffix = "+00" if backend == "postgresql" else ".000000"

    def db(self, t: int | None) -> str | None:
        """Database text of an instant (None stays None)."""
        if t is None:
            return None
        d, s = divmod(t, 86400)
        return f"{self.day[d - self.d0]} {self.tod[s]}{self.suffix}"

    def iso(self, t: int, zone: int = 0) -> str:
        """``datetime.isoformat()`` of a whole-second instant in a fixed zone (offset seconds)."""
        d, s = divmod(t + zone, 86400)
        sign = "-" if zone < 0 else "+"
        return f"{self.day[d - self.d0]}T{self.tod[s]}{sign}{self.tod[abs(zone)][:5]}"

    def local_day(self, t: int) -> str:
        """The local (UTC+8) date, ``YYYYMMDD``."""
        return self.day[(t + LOCAL_S) // 86400 - self.d0].replace("-", "")


CASE_COLS = (
    "id", "kind", "class_code", "condition_code", "source", "status", "stage", "open", "emergency",
    "grid_code", "community_code", "street_code", "lon", "lat", "department_code", "reporter", "description",
    "reported_at", "updated_at", "closed_at", "deadline", "archive", "reworks", "returns", "urges", "version",
    "state", "origin", "needs_location", "address",
)  # fmt: skip
EVENT_COLS = ("id", "case_id", "seq", "action", "actor", "role", "from_status", "to_status", "at", "opinion",
              "data", "key", "fingerprint")  # fmt: skip
TIMER_COLS = ("case_id", "stage", "limit_value", "limit_unit", "started_at", "deadline", "paused_since",
              "paused_seconds", "ended_at", "overdue")  # fmt: skip
TASK_COLS = ("id", "case_id", "kind", "assignee", "created_at", "deadline", "done_at", "result", "acked_at")
POSITION_COLS = ("id", "supervisor_id", "at", "received_at", "lon", "lat", "accuracy", "speed", "grid_code",
                 "source")  # fmt: skip
STAFF_COLS = ("grid_code", "duty", "name", "phone", "imported_at")


@dataclass
class Batch:
    """Rows of one chunk of cases, per table."""

    cases: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    timers: list[tuple[Any, ...]] = field(default_factory=list)
    tasks: list[tuple[Any, ...]] = field(default_factory=list)


def _media(case_id: str, n: int) -> str:
    return "sha256:" + hashlib.sha256(f"{case_id}/{n}".encode()).hexdigest()


def batches(
    p: Plan, clock: Clock, counts: dict[tuple[str, str, str], int], chunk: int = CHUNK
) -> Iterator[Batch]:
    """The rows of every case, ``chunk`` cases at a time, in reporting order (ids count per local day)."""
    rng = random.Random(SEED + 1)
    per_day: Counter[str] = Counter()
    event_id = task_id = 0
    db, iso = clock.db, clock.iso
    batch = Batch()
    for i in range(len(p.tpl)):
        t = p.templates[int(p.tpl[i])]
        base = int(p.base[i])
        g = p.grids[int(p.grid[i])]
        day = clock.local_day(base)
        per_day[day] += 1
        cid = f"R{day}{per_day[day]:05d}"
        sup = p.sup_of_area.get(g.area or "", "sup-unknown")
        lon = round(g.lon + rng.uniform(-g.dx, g.dx), 6)
        lat = round(g.lat + rng.uniform(-g.dy, g.dy), 6)
        c = t.case
        desc = rng.choice(DESCRIPTIONS)
        reporter = sup if c["reporter"] == SUP else c["reporter"]
        state = "".join(
            iso(base + x[0], x[1]) if type(x) is tuple else cid if x is None else sup if x == SUP else str(x)
            for x in t.state
        )
        batch.cases.append(
            (cid, c["kind"], c["class_code"], c["condition_code"], c["source"], c["status"], c["stage"],
             c["open"], c["emergency"], g.code, g.community, g.street, lon, lat, c["department_code"],
             reporter, desc, db(base), db(base + c["updated_at"]),
             db(None if c["closed_at"] is None else base + c["closed_at"]),
             db(None if c["deadline"] is None else base + c["deadline"]), c["archive"], c["reworks"],
             c["returns"], c["urges"], c["version"], state, "live", False, None)
        )  # fmt: skip
        for seq, action, actor, role, frm, to, off, opinion, data, holes in t.events:
            if holes:
                data = (
                    data.replace("@@GRID@@", g.code).replace("@@LON@@", repr(lon))
                    .replace("@@LAT@@", repr(lat)).replace("@@DESC@@", desc).replace(SUP, sup)
                    .replace("@@M1@@", _media(cid, 1)).replace("@@M2@@", _media(cid, 2))
                    .replace("@@M3@@", _media(cid, 3))
                )  # fmt: skip
            event_id += 1
            batch.events.append(
                (event_id, cid, seq, action, sup if actor == SUP else actor, role, frm, to, db(base + off),
                 opinion, data, None, f"{cid}:{seq}")
            )  # fmt: skip
        for stage, lv, lu, started, deadline, paused, paused_s, ended, overdue in t.timers:
            batch.timers.append(
                (cid, stage, lv, lu, db(base + started), db(base + deadline),
                 db(None if paused is None else base + paused), paused_s,
                 db(None if ended is None else base + ended), overdue)
            )  # fmt: skip
        for kind, assignee, created, deadline, done, result in t.tasks:
            task_id += 1
            batch.tasks.append(
                (task_id, cid, kind, sup if assignee == SUP else assignee,
                 db(base + created), db(base + deadline), db(None if done is None else base + done), result,
                 None)
            )  # fmt: skip
        counts[("reported", g.code, day)] += 1
        if c["status"] == "closed":
            counts[("closed", g.code, clock.local_day(base + c["closed_at"]))] += 1
        if len(batch.cases) >= chunk:
            yield batch
            batch = Batch()
    if batch.cases:
        yield batch


def patrol_rows(
    p: Plan, clock: Clock, now: int, days: int = PATROL_DAYS, every: int = 1
) -> Iterator[tuple[Any, ...]]:
    """Fixes of the ``days`` days before today (a week) and of today so far: every area supervisor,
    one every ``every`` minutes (one a minute) 08:00–18:00 local, 20 minutes per grid."""
    rng = random.Random(SEED + 2)
    by_area: dict[str, list[GridRow]] = {}
    for g in p.grids:
        if g.area:
            by_area.setdefault(g.area, []).append(g)
    today = (now + LOCAL_S) // 86400 * 86400 - LOCAL_S
    pid = 0
    for d in range(days, -1, -1):
        start = today - d * 86400 + 8 * 3600
        for area, grids in sorted(by_area.items()):
            sup = p.sup_of_area.get(area)
            if sup is None:
                continue
            for m in range(0, 600, every):
                at = start + m * 60 + rng.randint(0, 20)
                if at > now - 5:
                    break
                g = grids[(m // 20 + d) % len(grids)]
                pid += 1
                lon = round(g.lon + rng.uniform(-g.dx, g.dx), 6)
                lat = round(g.lat + rng.uniform(-g.dy, g.dy), 6)
                yield (pid, sup, clock.db(at), clock.db(at + 2), lon, lat, 8.0, 1.1, g.code, "device")


# -- loading ---------------------------------------------------------------------------------------------


class Loader:
    """Bulk rows into one backend (COPY on PostgreSQL, executemany on SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self.raw: Any = engine.raw_connection()
        self.dropped: list[str] = []
        cur = self.raw.cursor()
        if self.backend == "postgresql":
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
        else:
            cur.execute("PRAGMA foreign_keys = OFF")
            cur.execute("PRAGMA synchronous = OFF")
            cur.execute("PRAGMA cache_size = -400000")
            cur.execute("PRAGMA temp_store = MEMORY")
        cur.close()
        self.raw.commit()

    def drop_indexes(self, tables: tuple[str, ...]) -> None:
        """Drop the secondary (non-constraint) indexes of some tables; ``restore`` recreates them."""
        cur = self.raw.cursor()
        if self.backend == "postgresql":
            cur.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() "
                "AND i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conname = i.indexname)",
                (list(tables),),
            )
        else:
            marks = ",".join("?" * len(tables))
            cur.execute(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                f"AND tbl_name IN ({marks})",
                tables,
            )
        found = cur.fetchall()
        for name, ddl in found:
            cur.execute(f'DROP INDEX "{name}"')
            self.dropped.append(ddl)
        cur.close()
        self.raw.commit()

    def restore_indexes(self) -> None:
        """Recreate the dropped indexes."""
        cur = self.raw.cursor()
        for ddl in self.dropped:
            cur.execute(ddl)
            self.raw.commit()
        cur.close()
        self.dropped = []

    def put(
        self, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]] | Iterator[tuple[Any, ...]]
    ) -> None:
        """Append rows (one transaction)."""
        cur = self.raw.cursor()
        if self.backend == "postgresql":
            names = ", ".join(cols)
            with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(cols))
            cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)
        cur.close()
        self.raw.commit()

    def finish(self) -> None:
        """Sequences past the loaded ids, statistics, close."""
        cur = self.raw.cursor()
        if self.backend == "postgresql":
            for table in ("case_events", "tasks", "positions", "grid_staff"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
            cur.execute("SET session_replication_role = origin")
            self.raw.commit()
            old = self.raw.driver_connection.autocommit
            self.raw.driver_connection.autocommit = True
            cur.execute("VACUUM ANALYZE")
            self.raw.driver_connection.autocommit = old
        else:
            cur.execute("ANALYZE")
            self.raw.commit()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
        self.raw.close()


@dataclass
class Generated:
    """What the marker remembers about a generated database."""

    cases: int
    events: int
    timers: int
    tasks: int
    fixes: int
    seconds: float
    at: str
    hot: list[str]
    version: int = GEN_VERSION


def generate(engine: Engine, w: Workload = FULL) -> Generated:
    """Build the district, then bulk-load cases, events, timers, tasks, roster, fixes and counters."""
    from domain.evaluation import COUNTER_NAMES, ObjectType
    from feeds.core import build_context
    from store.accounts import provision_embedded
    from store.build import BuildRequest, build_city
    from store.counters import save_rows
    from store.migrate import upgrade
    from store.roster import DUTIES

    t_start = time.perf_counter()
    upgrade(engine)
    build_city(engine, BuildRequest())
    provision_embedded(engine, kiosk_secret=KIOSK)
    ctx = build_context(engine)
    now = int(time.time())
    console.print(f"  building {w.templates:,} lifecycle templates …", highlight=False)
    p = plan(engine, ctx, now, w)
    backend = engine.dialect.name
    clock = Clock(backend, int(p.base.min()) - 86400, now + 400 * 86400)
    load = Loader(engine)
    load.drop_indexes(("cases", "case_events", "stage_timers", "tasks", "positions"))
    counts: Counter[tuple[str, str, str]] = Counter()
    n = {"cases": 0, "events": 0, "timers": 0, "tasks": 0, "fixes": 0}
    for b in batches(p, clock, counts, w.chunk):
        load.put("cases", CASE_COLS, b.cases)
        load.put("case_events", EVENT_COLS, b.events)
        load.put("stage_timers", TIMER_COLS, b.timers)
        load.put("tasks", TASK_COLS, b.tasks)
        n["cases"] += len(b.cases)
        n["events"] += len(b.events)
        n["timers"] += len(b.timers)
        n["tasks"] += len(b.tasks)
        if n["cases"] % 200_000 == 0:
            console.print(
                f"  {n['cases']:,} cases, {n['events']:,} events ({time.perf_counter() - t_start:.0f} s)",
                highlight=False,
            )

    def counted(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            n["fixes"] += 1
            yield row

    load.put("positions", POSITION_COLS, counted(patrol_rows(p, clock, now, w.patrol_days, w.fix_every)))
    imported = clock.db(now)
    staff = [
        (g.code, duty, f"{duty[:3]}{k:05d}", f"1390000{k % 10000:04d}", imported)
        for k, g in enumerate(p.grids)
        for duty in DUTIES
    ]
    load.put("grid_staff", STAFF_COLS, staff)
    console.print(
        f"  rows loaded ({time.perf_counter() - t_start:.0f} s); rebuilding indexes …", highlight=False
    )
    load.restore_indexes()
    load.finish()
    # the grids' daily counters of the last two months, and the mark at the newest event
    first_day = datetime.fromtimestamp(now - 62 * 86400 + LOCAL_S, UTC).strftime("%Y%m%d")
    rows: dict[Any, dict[str, int]] = {}
    for (name, grid, day), k in counts.items():
        if day < first_day:
            continue
        key = (ObjectType.GRID, grid, datetime.strptime(day, "%Y%m%d").date())
        row = rows.setdefault(key, dict.fromkeys(COUNTER_NAMES, 0))
        if name == "reported":
            row.update(reported=row["reported"] + k, accepted=row["accepted"] + k)
        else:
            row.update(closed=row["closed"] + k, closed_on_time=row["closed_on_time"] + k)
    with engine.begin() as conn:
        save_rows(conn, rows, {}, n["events"])
    seconds = time.perf_counter() - t_start
    return Generated(
        n["cases"], n["events"], n["timers"], n["tasks"], n["fixes"], seconds,
        datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), p.hot,
    )  # fmt: skip


# -- the kept databases ----------------------------------------------------------------------------------


def _marker_pg(admin: Engine) -> Generated | None:
    with admin.connect() as conn:
        raw = conn.execute(
            text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :d"),
            {"d": PG_DB},
        ).scalar()
    return _parse_marker(raw)


def _parse_marker(raw: str | None) -> Generated | None:
    if not raw:
        return None
    try:
        g = Generated(**json.loads(raw))
    except (TypeError, ValueError):
        return None
    return g if g.version == GEN_VERSION and g.cases == FULL.cases else None


def _marker_text(g: Generated) -> str:
    return json.dumps(g.__dict__)


def _pg_url(database: str) -> str:
    """The URL of a database on the :data:`PG_ADMIN` server (its query options left out)."""
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN).set(database=database, query={})
    return url.render_as_string(hide_password=False)


def _pg_admin() -> Engine:
    """An autocommit connection pool to the server; raises ``OperationalError`` when it is unreachable."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except Exception:
        admin.dispose()
        raise
    return admin


def pg_database(admin: Engine) -> tuple[Engine, Generated, bool]:
    """The kept PostgreSQL database (generated when it has no current marker)."""
    from store.db import create_engine

    gen = _marker_pg(admin)
    fresh = gen is None
    if gen is None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{PG_DB}"')
        engine = create_engine(_pg_url(PG_DB))
        gen = generate(engine)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"COMMENT ON DATABASE \"{PG_DB}\" IS '{_marker_text(gen)}'")
    else:
        engine = create_engine(_pg_url(PG_DB))
    return engine, gen, fresh


def sqlite_database() -> tuple[Engine, Generated, bool]:
    """The kept SQLite file (generated when it has no current marker)."""
    from store.db import create_engine

    db = SQLITE_DIR / "gw.db"
    marker = SQLITE_DIR / "gw.db.generated.json"
    gen = _parse_marker(marker.read_text() if marker.exists() and db.exists() else None)
    fresh = gen is None
    if gen is None:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        engine = create_engine(f"sqlite:///{db}")
        gen = generate(engine)
        marker.write_text(_marker_text(gen))
    else:
        engine = create_engine(f"sqlite:///{db}")
    return engine, gen, fresh


@contextmanager
def database(backend: str, w: Workload) -> Iterator[tuple[Engine, Generated, bool]]:
    """One backend's generated data: the kept database (full run) or, for a smoke run, a database of
    its own (PostgreSQL ``gw_bench_pages_smoke_<random>``, SQLite in a temporary folder) generated now
    and dropped afterwards, so that the kept data is never touched and every smoke run generates."""
    from store.db import create_engine

    if backend == "sqlite" and not w.smoke:
        engine, gen, fresh = sqlite_database()
        try:
            yield engine, gen, fresh
        finally:
            engine.dispose()
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gw-bench-pages-smoke-") as tmp:
            engine = create_engine(f"sqlite:///{Path(tmp) / 'gw.db'}")
            try:
                yield engine, generate(engine, w), True
            finally:
                engine.dispose()
    else:
        admin = _pg_admin()
        try:
            if not w.smoke:
                engine, gen, fresh = pg_database(admin)
                try:
                    yield engine, gen, fresh
                finally:
                    engine.dispose()
                return
            name = f"{PG_DB}_smoke_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                engine = create_engine(_pg_url(name))
                try:
                    yield engine, generate(engine, w), True
                finally:
                    engine.dispose()
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()


# -- measuring -------------------------------------------------------------------------------------------


@dataclass
class Served:
    """The app on a port, and the server-side time of each Dash callback request."""

    url: str
    stop: Callable[[], None]
    server_ms: list[float]


def serve(url: str) -> Served:
    """Compose the app as ``app.py run`` does and serve it in process on a free loopback port."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from gridwall.runtime import Seams, build
    from gridwall.settings import Settings

    seams = Seams(media=False, secret_key="bench-desk-pages")
    core = build(Settings(Path("."), url), "embedded", seams).start()
    web = core.web
    web.cache.current()
    times: list[float] = []
    inner = web.server.wsgi_app

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        t0 = time.perf_counter()
        body = inner(environ, start_response)
        if environ.get("PATH_INFO") == "/_dash-update-component":
            times.append((time.perf_counter() - t0) * 1000)
        return body

    web.server.wsgi_app = timed

    class Quiet(WSGIRequestHandler):
        def log_request(self, *a: Any, **k: Any) -> None:
            return None

    http = make_server("127.0.0.1", 0, web.server, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=http.serve_forever, name="bench-pages-http", daemon=True)
    thread.start()

    def stop() -> None:
        http.shutdown()
        thread.join(timeout=10)
        core.stop()

    return Served(f"http://127.0.0.1:{http.server_port}", stop, times)


def samples(engine: Engine, w: Workload = FULL) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Grid pages (the ten hottest grids four times each, random others) and case pages (open,
    closed, the longest timelines) as (group, path), shuffled; ``w.requests`` of each."""
    from store.models import Case, Grid

    rng = random.Random(SEED + 3)
    n_long = w.requests - w.open_pages - w.closed_pages
    with engine.connect() as conn:
        codes = list(conn.scalars(select(Grid.code).where(Grid.active).order_by(Grid.code)))
        top = [
            str(g)
            for g in conn.scalars(
                select(Case.grid_code)
                .group_by(Case.grid_code)
                .order_by(func.count().desc())
                .limit(w.hot_pages)
            )
        ]
        n_open = conn.scalar(select(func.count()).select_from(Case).where(Case.open)) or 0
        open_ids = list(
            conn.scalars(
                select(Case.id)
                .where(Case.open)
                .order_by(Case.id)
                .offset(rng.randrange(max(1, n_open - 500)))
                .limit(400)
            )
        )
        closed_ids = [f"R{d}{k:05d}" for d, k in _random_ids(conn, rng, w.closed_pages, w.ids_per_day)]
        long_ids = list(
            conn.scalars(
                select(Case.id)
                .where(Case.version >= LONG_VERSION)
                .order_by(Case.version.desc())
                .limit(n_long + 10)
            )
        )
    others = rng.sample([c for c in codes if c not in top], w.requests - w.hot_repeat * len(top))
    grids = [("hot", f"/grid/{g}") for g in top for _ in range(w.hot_repeat)] + [
        ("random", f"/grid/{g}") for g in others
    ]
    cases = (
        [("open", f"/case/{c}") for c in rng.sample(open_ids, w.open_pages)]
        + [("closed", f"/case/{c}") for c in closed_ids]
        + [("long", f"/case/{c}") for c in long_ids[:n_long]]
    )
    rng.shuffle(grids)
    rng.shuffle(cases)
    return grids, cases


def _random_ids(conn: Any, rng: random.Random, n: int, per_day: int = 900) -> list[tuple[str, int]]:
    """``n`` closed cases picked by random id ``R<day><k>`` (10–700 days ago, ``k`` ≤ ``per_day``)."""
    from store.models import Case

    out: list[tuple[str, int]] = []
    for _ in range(1000 * n):
        if len(out) == n:
            return out
        day = (datetime.now(UTC) - timedelta(days=rng.randint(10, 700))).strftime("%Y%m%d")
        k = rng.randint(1, per_day)
        row = conn.execute(select(Case.id, Case.open).where(Case.id == f"R{day}{k:05d}")).first()
        if row is not None and not row.open:
            out.append((day, k))
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} of {n} closed cases found by random id (R<day><k ≤ {per_day}>)")
    return out


def _body(path: str) -> dict[str, Any]:
    from dashboard import ids

    return {
        "output": f"{ids.PAGE}.children",
        "outputs": {"id": ids.PAGE, "property": "children"},
        "inputs": [
            {"id": ids.LOCATION, "property": "pathname", "value": path},
            {"id": ids.LOCATION, "property": "search", "value": ""},
        ],
        "changedPropIds": [f"{ids.LOCATION}.pathname"],
        "state": [],
    }


@dataclass
class Timed:
    """Round trips and server times of one page kind (ms), with the page sizes and failures."""

    rtt: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    groups: dict[str, list[float]] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)
    bad: int = 0


def measure(served: Served, client: Any, paths: list[tuple[str, str]], marker: str) -> Timed:
    """Ask for each path once, one at a time; a page must carry ``marker`` (its id component).

    A page that fails (an error instead of the page) is counted in ``bad`` and not timed.
    """
    out = Timed()
    for group, path in paths:
        t0 = time.perf_counter()
        r = client.post(f"{served.url}/_dash-update-component", json=_body(path), timeout=60)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200 or marker not in r.text:
            out.bad += 1
            continue
        out.rtt.append(ms)
        out.server.append(served.server_ms[-1] if served.server_ms else float("nan"))
        out.groups.setdefault(group, []).append(ms)
        out.sizes.append(len(r.content))
    return out


def _login(served: Served, engine: Engine) -> Any:
    from store.accounts import add_person
    from store.db import transaction
    from store.models import Person
    from tests.desk_login import login_http

    with engine.connect() as conn:
        have = conn.scalar(select(Person.id).where(Person.id == "bench-leader"))
    if have is None:
        with transaction(engine) as s:
            add_person(s, "bench-leader", "leader", password=PASSWORD)
    return login_http(served.url, "bench-leader", PASSWORD)


def _row(backend: str, page: str, t: Timed, target: float, w: Workload = FULL) -> Result:
    p50, p95, top = percentile(t.rtt, 50), percentile(t.rtt, 95), max(t.rtt, default=float("nan"))
    # every planned page answered with its content: correctness, judged in a smoke run too
    asked = len(t.rtt) + t.bad
    complete = not t.bad and asked == w.requests
    if not complete:
        status = FAIL
    elif w.smoke:  # a tiny database proves no speed
        status = INFO
    else:
        status = PASS if p95 <= target else FAIL
    groups = "; ".join(f"{g} p95 {percentile(v, 95):.0f}" for g, v in sorted(t.groups.items()))
    return Result(
        f"{backend}: {page} page",
        len(t.rtt),
        sum(t.rtt) / 1000,
        "pages",
        f"p95 ≤ {target:.0f} ms",
        status,
        f"round trip p50 {p50:.0f} / p95 {p95:.0f} / max {top:.0f} ms; server p50 "
        f"{percentile(t.server, 50):.0f} / p95 {percentile(t.server, 95):.0f} ms; {groups}; "
        f"{sum(t.sizes) / max(1, len(t.sizes)) / 1e3:.0f} kB avg"
        + (f"; {t.bad} pages failed (HTTP error or no {page} content), not timed" if t.bad else "")
        + (f"; {asked} pages asked for, {w.requests} planned" if asked != w.requests else "")
        + (f"; {SMOKE_NOTE}" if w.smoke else ""),
    )


def run_backend(backend: str, w: Workload = FULL) -> list[Result]:
    """Generate (or reuse) one backend's database, serve it and time both pages."""
    from sqlalchemy.exc import OperationalError

    if backend == "postgresql":
        try:
            _pg_admin().dispose()
        except OperationalError as exc:  # no server: the SQLite figures stand alone
            skip = Result(
                "postgresql: desk pages", None, None, "", "", SKIP, f"PostgreSQL unavailable: {exc}"
            )
            return [skip]
    with database(backend, w) as (engine, gen, fresh):
        return _measure(backend, engine, gen, fresh, w)


def _measure(backend: str, engine: Engine, gen: Generated, fresh: bool, w: Workload) -> list[Result]:
    from dashboard import ids
    from store.migrate import upgrade
    from store.models import Case

    upgrade(engine)  # indexes added after the data was generated
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(Case)) or 0
    complete = stored == w.cases  # the generated cases are all there: judged in a smoke run too
    out = [
        Result(
            f"{backend}: generation", gen.cases, gen.seconds, "cases", "", INFO if complete else FAIL,
            f"{gen.events:,} events, {gen.timers:,} timers, {gen.tasks:,} tasks, {gen.fixes:,} fixes; "
            + ("generated now" if fresh else f"kept from {gen.at}")
            + ("" if complete else f"; {stored:,} cases stored, {w.cases:,} planned"),
        )
    ]  # fmt: skip
    grids_s, cases_s = samples(engine, w)
    engine.dispose()
    url = str(engine.url.render_as_string(hide_password=False))
    t0 = time.perf_counter()
    served = serve(url)
    start_s = time.perf_counter() - t0
    try:
        client = _login(served, engine)
        measure(served, client, grids_s[-w.warmup // 2 :] + cases_s[-w.warmup // 2 :], "")  # warm-up
        console.print(f"  {backend}: {load_line()}", highlight=False)
        grids = measure(served, client, grids_s, ids.GRID_CODE)
        case_t = measure(served, client, cases_s, ids.CASE_ID)
    finally:
        served.stop()
    target = TARGET_MS[backend]
    out[0].notes += f"; app start {start_s:.1f} s"
    out += [_row(backend, "grid", grids, target, w), _row(backend, "case", case_t, target, w)]
    return out


def run(backend: str = "both", smoke: bool = False) -> list[Result]:
    """Run the desk-page benchmark on SQLite and/or PostgreSQL and print its table (``smoke``:
    :data:`SMOKE`, 2,000 cases in a database of its own)."""
    w = SMOKE if smoke else FULL
    rows: list[Result] = []
    for name in ("sqlite", "postgresql"):
        if backend in (name, "both"):
            rows += run_backend(name, w)
    title = (
        f"Desk pages (issue 8, smoke): grid and case pages over {w.cases:,} cases"
        if w.smoke
        else "Desk pages (issue 8): grid and case pages over 1M cases, 10M events"
    )
    print_table(title, rows)
    for r in rows:  # the notes in full (the table cuts them when the output is piped)
        console.print(f"{r.benchmark}: {r.status}; {r.notes}", highlight=False, soft_wrap=True)
    console.print(load_line(), highlight=False)
    return rows
