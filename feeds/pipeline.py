"""The feed pipeline: one ordered path from raw input to a committed, published change.

Every input — a fix, a batch of fixes, a report, a task acknowledgement or result, a lifecycle
command — takes the same steps, in this order::

    parse (pydantic)                                    feeds.schemas → malformed / missing_field / …
    filters with named reasons (in the caller's thread, no state needed):
        coordinates: bad (NaN, out of range), zero (0,0)                  bad_coordinates, zero_coordinates
        instant: later than now + tolerance, older than the retention     in_future, too_old
        speaker: the token may speak for that supervisor / operator       not_allowed
        known ids: supervisor, class                                      unknown_supervisor, unknown_class
        CRS → WGS-84; reports: point → grid (outside every grid)          outside_district
    queue to the single writer (ordered); there, once per group, no state needed:
        fixes: point → grid (outside every grid)                          outside_district
    then, with state:
        duplicate fix (same supervisor, same instant, other point)        duplicate
        impossible speed since the supervisor's latest fix                impossible_speed
        pure transition (case lifecycle, via store.cases.execute)         the lifecycle rule's name
    persist: one transaction for the whole group (group commit: until ~1.5 ms without input, ≤ 20 ms)
    acknowledge and publish only after the commit: live state, tasks to devices

A failed commit publishes nothing: the group is retried one input per transaction, so one bad
input cannot sink the others, and what still fails is answered ``unavailable`` (devices retry;
idempotency keys make retries safe). Rejections go to the dead-letter table with the raw payload,
at most ``reject_cap`` rows per source per minute; beyond the cap one count row per source, minute
and reason records how many more there were.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table, and_, insert, select, update
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError

from domain.catalogue import CatalogueError
from domain.crs import to_wgs84
from domain.index import PointGridIndex
from domain.lifecycle import (
    TASK_OF_STATUS,
    Action,
    Actor,
    CaseEvent,
    CaseState,
    Command,
    Context,
    Role,
)
from domain.supervisor import Fix, SupervisorRules, distance_m
from feeds.counters import CounterKeeper
from feeds.live import MemoryLiveState, Place
from feeds.media import MediaStore, check_refs
from feeds.schemas import (
    MAX_PAYLOAD_BYTES,
    CommandIn,
    FixIn,
    PositionsIn,
    Reason,
    ReportIn,
    TaskAckIn,
    TaskResultIn,
    ValidPositionsIn,
    describe,
)
from store.cases import execute, sqlite_utc_text
from store.models import Case, CaseEventRow, Person, Position, Reject, Task

log = logging.getLogger(__name__)
_POSITIONS: Table = Position.__table__  # type: ignore[assignment]
_TASKS: Table = Task.__table__  # type: ignore[assignment]
Kind = Literal["position", "positions", "report", "task_ack", "task_result", "command"]
SIMULATION_GATEWAY = "simulator"  # the gateway token name of feeds.simulator
REPLAY_GATEWAY = "replay"  # gateway tokens named "replay" or "replay:<what>" (feeds.replay)
KINDS: tuple[str, ...] = ("position", "positions", "report", "task_ack", "task_result", "command")
# Point → grid runs on one long-lived thread: pyproj builds a PROJ transformer per thread (~17 ms CPU)
# and python-socketio handles every event in a new thread, so locating in the caller's thread paid
# that on every event (python -m bench ingest).
_LOCATE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-locate")


_FIX_LIST: TypeAdapter[list[FixIn]] = TypeAdapter(list[FixIn])  # a batch's fixes in one validation call
_POS_COLUMNS = (
    "supervisor_id", "at", "received_at", "lon", "lat", "accuracy", "speed", "grid_code", "source"
)  # fmt: skip
_SQLITE_CACHE_KIB = 16_384  # page cache of a connection the writer used (SQLite's default: 2 MiB)
_SQLITE_CHECKPOINT_PAGES = 4000  # WAL pages between automatic checkpoints (SQLite's default: 1000)
_POS_CHUNK = 512  # rows per SQLite statement, a multiple of 64 (9 parameters a row; SQLite allows 32,766)


def _aware(value: datetime) -> datetime:
    """An instant for a PostgreSQL ``timestamptz`` parameter (naive ones refused, as ``UTCDateTime``)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: GridWall stores aware UTC instants only")
    return value


class _PositionWriter:
    """``INSERT … ON CONFLICT DO NOTHING`` of fixes as driver SQL, built once per dialect.

    The rows are what ``insert(Position)`` would store (instants as ``UTCDateTime`` gives them), without
    SQLAlchemy's per-row bind and result processing (python -m bench ingest: most of the writer's time).
    ``insert`` tells which rows were stored now (the others were stored earlier: retries).

    PostgreSQL takes the rows as one array per column (``unnest``) and returns the stored keys. SQLite
    takes multi-row ``VALUES`` of a few fixed sizes (up to 64 rows a power of two, then multiples of 64
    up to ``_POS_CHUNK``), padded with repeats of the last row, which conflict with it and store nothing:
    15 statements stay in sqlite3's statement cache (preparing one costs more than running it). SQLite
    gets no ``RETURNING`` (sqlite3 releases the GIL for every row fetched, and the writer then waits to
    get it back): the row count says whether every row was stored; only when not are the stored ones
    read back by rowid (rows that one statement stores get consecutive rowids, and the writer is the
    only one writing).
    """

    def __init__(self, dialect: Dialect) -> None:
        q = dialect.identifier_preparer.quote
        self.postgres = dialect.name == "postgresql"
        self.instant: Callable[[datetime], Any] = _aware if self.postgres else sqlite_utc_text
        cols = ", ".join(q(c) for c in _POS_COLUMNS)
        key = f"{q('supervisor_id')}, {q('at')}"
        self._head = f"INSERT INTO {q(_POSITIONS.name)} ({cols}) "
        self._tail = f" ON CONFLICT ({key}) DO NOTHING"
        arrays = ", ".join(
            f"CAST(%({c})s AS {_POSITIONS.c[c].type.compile(dialect)}[])" for c in _POS_COLUMNS
        )
        self._unnest = f"{self._head}SELECT * FROM unnest({arrays}){self._tail} RETURNING {key}"
        self._stored = f"SELECT {key} FROM {q(_POSITIONS.name)} WHERE rowid > ? AND rowid <= ?"
        self._values: dict[int, str] = {}

    def _sqlite_sql(self, n: int) -> str:
        sql = self._values.get(n)
        if sql is None:
            row = "(" + ", ".join("?" * len(_POS_COLUMNS)) + ")"
            sql = self._values[n] = f"{self._head}VALUES {', '.join([row] * n)}{self._tail}"
        return sql

    def insert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> set[tuple[Any, Any]] | None:
        """Insert rows (values in ``_POS_COLUMNS`` order, instants through ``instant``); the keys
        (supervisor, instant) of the rows stored now, or None when all of them were."""
        if self.postgres:
            params = {c: [r[i] for r in rows] for i, c in enumerate(_POS_COLUMNS)}
            return {(a, b) for a, b in conn.exec_driver_sql(self._unnest, params).fetchall()}
        out: set[tuple[Any, Any]] | None = None
        for i in range(0, len(rows), _POS_CHUNK):
            chunk = rows[i : i + _POS_CHUNK]
            n = len(chunk)
            size = 1 << (n - 1).bit_length() if n <= 64 else -(-n // 64) * 64
            flat = tuple(chain.from_iterable(chunk))
            if size > n:
                flat += chunk[-1] * (size - n)
            res = conn.exec_driver_sql(self._sqlite_sql(size), flat)
            stored, last = res.rowcount, res.lastrowid
            if stored == n and out is None:
                continue
            if out is None:
                out = {(r[0], r[1]) for r in rows[:i]}
            if stored == n:
                out.update((r[0], r[1]) for r in chunk)
            elif stored > 0:
                found = conn.exec_driver_sql(self._stored, (last - stored, last)).fetchall()
                out.update((a, b) for a, b in found)
        return out


class Speaker(Protocol):
    """Who sent an input (a store.accounts.Principal)."""

    @property
    def kind(self) -> str:
        """device | gateway | kiosk | api."""
        ...

    @property
    def name(self) -> str:
        """The credential's name."""
        ...

    @property
    def person_id(self) -> str | None:
        """The person a device token belongs to."""
        ...

    def may_speak_for(self, person_id: str) -> bool:
        """Whether this credential may send for that person."""
        ...


@dataclass(frozen=True)
class PipelineConfig:
    """Filters, group commit and dead-letter settings."""

    future_tolerance: timedelta = timedelta(seconds=60)
    retention: timedelta = timedelta(days=7)  # fixes older than this are refused (too_old)
    window_s: float = 0.02  # group-commit window (the longest a group stays open)
    idle_s: float = 0.0015  # a group closes earlier once no input arrived for this long
    max_group: int = 5000  # inputs per transaction
    reject_cap: int = 100  # dead-letter rows per source per minute
    recent_per_supervisor: int = 64  # recent fix instants kept to tell a retry from a clash
    rules: SupervisorRules = field(default_factory=SupervisorRules)


@dataclass
class Ack:
    """The answer to one event: accepted ids, duplicates (retries) and named rejections."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)  # report id → case id

    def as_dict(self) -> dict[str, Any]:
        """The acknowledgement as sent to the client."""
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }
        if self.cases:
            out["cases"] = self.cases
        return out


@dataclass(frozen=True)
class TaskOut:
    """A 核实/核查 task to send to a supervisor's handset after commit."""

    case_id: str
    task: str  # verify | check
    supervisor: str
    deadline: datetime
    place: Place
    class_code: str
    kind: str


@dataclass(slots=True)
class _Item:
    ref: str
    kind: str
    raw: Any
    reason: Reason | str | None = None
    message: str = ""
    fix: Fix | None = None
    point: tuple[str, FixIn, float, float] | None = None  # a fix to locate: supervisor, input, WGS-84
    speed: float | None = None
    accuracy: float | None = None
    cmd: Command | None = None
    at: datetime | None = None
    place: Place | None = None
    task: tuple[str, str, str] | None = None  # task_ack: case, kind, supervisor
    answers: bool = False  # a task_result: only the supervisor who holds the task may answer it
    outcome: str = ""  # accepted | duplicate | rejected
    case_id: str | None = None
    recorded: bool = False  # its dead-letter row is written (by us or by store.cases.execute)
    prepared: bool = False  # passed the stateless steps

    def reset(self) -> None:
        """Forget what a rolled-back transaction decided (stateless rejections stay)."""
        self.outcome, self.recorded = "", False
        if self.prepared:
            self.reason, self.message = None, ""


@dataclass
class _Job:
    items: list[_Item]
    source: str
    done: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=_time.monotonic)
    reply: Callable[[dict[str, Any]], None] | None = None  # submit(..., reply=…): called after commit


@dataclass
class _Published:
    fixes: list[Fix] = field(default_factory=list)
    cases: list[tuple[CaseState, tuple[CaseEvent, ...], Place | None]] = field(default_factory=list)
    tasks: list[TaskOut] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)  # cases whose task a handset acknowledged


def _raw_json(raw: Any) -> dict[str, Any]:
    """A raw payload as a JSON object for the dead-letter table (never fails, bounded size)."""
    try:
        text = orjson.dumps(raw, default=str)
    except TypeError:
        text = orjson.dumps(repr(raw))
    if len(text) > 4000:
        return {"truncated": text[:4000].decode("utf-8", "replace"), "bytes": len(text)}
    if isinstance(raw, dict):
        return dict(orjson.loads(text))
    return {"raw": orjson.loads(text)}


def scoped_key(speaker: str, ref: str) -> str:
    """An idempotency key scoped by who speaks (≤ 128 characters)."""
    key = f"{speaker}:{ref}"
    return key if len(key) <= 128 else "h:" + hashlib.sha256(key.encode()).hexdigest()


class DeadLetter:
    """Capped dead-letter writer: rows up to the cap per source per minute, then count rows."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._minute: dict[str, int] = {}  # source → minute index of the window
        self._rows: dict[str, int] = {}  # source → rows written this minute
        self._over: dict[tuple[str, int, str], tuple[int, dict[str, Any]]] = {}

    def rows(self, source: str, reason: str, message: str, raw: Any, now: datetime) -> list[dict[str, Any]]:
        """Rows to insert now for one rejection (empty when it only adds to a count row)."""
        minute = int(now.timestamp() // 60)
        out = self.flush(now)
        if self._minute.get(source) != minute:
            self._minute[source], self._rows[source] = minute, 0
        if self._rows[source] < self.cap:
            self._rows[source] += 1
            out.append(
                {"at": now, "source": source[:32], "reason": str(reason)[:48], "message": message[:1000],
                 "payload": _raw_json(raw), "count": 1}
            )  # fmt: skip
        else:
            k = (source, minute, str(reason))
            n, _ = self._over.get(k, (0, {}))
            self._over[k] = (n + 1, _raw_json(raw))
        return out

    def flush(self, now: datetime, force: bool = False) -> list[dict[str, Any]]:
        """Count rows of past minutes (all of them when ``force``)."""
        minute = int(now.timestamp() // 60)
        out = []
        for k in [k for k in self._over if force or k[1] < minute]:
            n, sample = self._over.pop(k)
            out.append(
                {"at": datetime.fromtimestamp(k[1] * 60, UTC), "source": k[0][:32], "reason": k[2][:48],
                 "message": f"{n} more rejections ({k[2]}) beyond the cap of {self.cap} a minute; "
                 "payload is the last one", "payload": sample, "count": n}
            )  # fmt: skip
        return out


class Pipeline:
    """Validate, persist, then publish: the one write path of the feeds."""

    # an acknowledgement follows the commit (a stream pipeline acknowledges after the append: the
    # store does not hold the input yet when the sender is answered)
    acks_after_commit: ClassVar[bool] = True

    def __init__(
        self,
        engine: Engine,
        index: PointGridIndex,
        ctx: Context,
        live: MemoryLiveState,
        *,
        config: PipelineConfig | None = None,
        on_tasks: Callable[[Sequence[TaskOut]], None] | None = None,
        on_published: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        record_source: str = "device",
        counters: CounterKeeper | None = None,
    ) -> None:
        self.engine = engine
        self.index = index
        self.config = config or PipelineConfig()
        # one tolerance for instants ahead of the clock, in the filters and in the lifecycle
        self.ctx = replace(ctx, policy=replace(ctx.policy, future_tolerance=self.config.future_tolerance))
        self.live = live
        self.on_tasks = on_tasks
        self.on_published = on_published
        self.clock = clock or (lambda: datetime.now(UTC))
        self.record_source = record_source
        self.counters = counters  # CJ/T 292 daily counters, fed after each commit
        self.media: MediaStore | None = None  # feeds.media.install_media; None: refs checked for form only
        self.dialect = engine.dialect.name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # C: cheaper than queue.Queue
        self._thread: threading.Thread | None = None
        self._replies: queue.SimpleQueue[tuple[list[_Job], list[Fix]] | None] = queue.SimpleQueue()
        self._replier: threading.Thread | None = None
        self._dead = DeadLetter(self.config.reject_cap)
        self._people: dict[str, tuple[str, str | None, bool]] = {}  # id → (role, area, active)
        self._people_checked: dict[str, float] = {}
        self._area_person: dict[str, str] = {}
        self._last: dict[str, tuple[datetime, float, float]] = {}
        self._recent: dict[str, OrderedDict[datetime, tuple[float, float]]] = {}
        self._case_seq: dict[date, int] = {}
        self._undo: list[tuple[str, tuple[datetime, float, float] | None, datetime]] = []
        self._lock = threading.Lock()
        self.stats = {"groups": 0, "inputs": 0, "fixes": 0, "commands": 0, "rejected": 0, "failed": 0}
        self.reload_people()
        self._positions = _PositionWriter(engine.dialect)

    # -- lifecycle of the writer thread ----------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._replier = threading.Thread(target=self._run_replies, name="gw-pipeline-acks", daemon=True)
            self._replier.start()
            self._thread = threading.Thread(target=self._run, name="gw-pipeline", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish queued inputs and stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._replier is not None:
            self._replies.put(None)
            self._replier.join(timeout=30)
            self._replier = None

    def reload_people(self) -> None:
        """Reload the people table (supervisors, operators) into the filter cache."""
        with self.engine.connect() as c:
            rows = c.execute(select(Person.id, Person.role, Person.area_code, Person.active)).all()
        with self._lock:
            self._people = {r[0]: (r[1], r[2], bool(r[3])) for r in rows}
            self._area_person = {r[2]: r[0] for r in rows if r[1] == "supervisor" and r[2] and r[3]}

    def _person(self, pid: str) -> tuple[str, str | None, bool] | None:
        found = self._people.get(pid)
        if found is None and _time.monotonic() - self._people_checked.get(pid, -1e9) > 30:
            with self.engine.connect() as c:
                row = c.execute(
                    select(Person.role, Person.area_code, Person.active).where(Person.id == pid)
                ).first()
            if row is None:  # remembered only when absent: a concurrent first use must not see a miss
                self._people_checked[pid] = _time.monotonic()
            else:
                found = (row[0], row[1], bool(row[2]))
                with self._lock:
                    self._people[pid] = found
                    if row[0] == "supervisor" and row[1] and row[2]:
                        self._area_person[row[1]] = pid
        return found

    # -- entry point -----------------------------------------------------------------------------

    def submit_nowait(
        self, kind: str, raw: Any, speaker: Speaker, reply: Callable[[dict[str, Any]], None], *, source: str
    ) -> None:
        """``submit`` without waiting: returns after the stateless steps; the acknowledgement goes to
        ``reply`` after the commit, on the pipeline's acknowledgement thread (no thread waits per event)."""
        self._enqueue(_Job(self._prepare(kind, raw, speaker), source, reply=reply))

    def reject_nowait(
        self,
        kind: str,
        raw: Any,
        source: str,
        reason: Reason,
        message: str,
        reply: Callable[[dict[str, Any]], None],
    ) -> None:
        """``reject`` without waiting (the acknowledgement goes to ``reply``, as ``submit_nowait``)."""
        item = _Item(ref=_ref_of(raw), kind=kind, raw=raw, reason=reason, message=message)
        self._enqueue(_Job([item], source, reply=reply))

    def submit(self, kind: str, raw: Any, speaker: Speaker, *, source: str | None = None) -> dict[str, Any]:
        """Run one event through the pipeline and return its acknowledgement (blocks until commit)."""
        src = source or f"{speaker.kind}:{speaker.name}"
        items = self._prepare(kind, raw, speaker)
        job = _Job(items, src)
        if self._thread is None:
            self._process([job])
        else:
            self._queue.put(job)
            if not job.done.wait(timeout=60):
                for it in items:
                    if not it.outcome:
                        it.outcome, it.reason, it.message = "rejected", Reason.UNAVAILABLE, "writer timed out"
        return self._ack(items).as_dict()

    def reject(self, kind: str, raw: Any, source: str, reason: Reason, message: str) -> dict[str, Any]:
        """Answer and dead-letter an input refused before parsing (rate limits, bad tokens)."""
        item = _Item(ref=_ref_of(raw), kind=kind, raw=raw, reason=reason, message=message)
        job = _Job([item], source)
        if self._thread is None:
            self._process([job])
        else:
            self._queue.put(job)
            job.done.wait(timeout=60)
        return self._ack([item]).as_dict()

    def _enqueue(self, job: _Job) -> None:
        if self._thread is None:
            self._process([job])
        else:
            self._queue.put(job)

    def _finish(self, jobs: list[_Job], fixes: list[Fix]) -> None:
        """After the commit: the group's fixes into the live state, then wake the waiting callers and
        send the acknowledgements of ``reply`` jobs — on the acknowledgement thread, in commit order,
        so that the writer can start on the next group."""
        if self._replier is None:
            self._complete(jobs, fixes)
        else:
            self._replies.put((jobs, fixes))

    def _run_replies(self) -> None:
        while (done := self._replies.get()) is not None:
            self._complete(*done)

    def _complete(self, jobs: list[_Job], fixes: list[Fix]) -> None:
        if fixes:
            try:
                self.live.apply_fixes(fixes)
            except Exception:
                log.exception("live state: applying fixes failed")
            if self.on_published is not None:
                self.on_published()
        for job in jobs:
            job.done.set()
            if job.reply is not None:
                try:
                    job.reply(self._ack(job.items).as_dict())
                except Exception:
                    log.exception("sending an acknowledgement failed")

    @staticmethod
    def _ack(items: Iterable[_Item]) -> Ack:
        ack = Ack()
        for it in items:
            if it.outcome == "accepted":
                ack.accepted.append(it.ref)
                if it.case_id and it.kind == "report":
                    ack.cases[it.ref] = it.case_id
            elif it.outcome == "duplicate":
                ack.duplicates.append(it.ref)
                if it.case_id and it.kind == "report":
                    ack.cases[it.ref] = it.case_id
            else:
                ack.rejected.append(
                    {"id": it.ref, "reason": str(it.reason or Reason.UNAVAILABLE), "message": it.message}
                )
        return ack

    # -- stateless steps (caller's thread) --------------------------------------------------------

    def _prepare(self, kind: str, raw: Any, speaker: Speaker) -> list[_Item]:
        if kind not in KINDS:
            return [_Item(_ref_of(raw), kind, raw, Reason.MALFORMED, f"unknown event {kind!r}")]
        try:
            size = len(orjson.dumps(raw, default=str))
        except (TypeError, orjson.JSONEncodeError):
            return [_Item(_ref_of(raw), kind, raw, Reason.MALFORMED, "payload is not JSON")]
        if size > MAX_PAYLOAD_BYTES:
            return [_Item(_ref_of(raw), kind, raw, Reason.TOO_LARGE, f"{size} bytes > {MAX_PAYLOAD_BYTES}")]
        if not isinstance(raw, dict):
            return [_Item(_ref_of(raw), kind, raw, Reason.MALFORMED, "payload must be a JSON object")]
        now = self.clock()
        if kind in ("position", "positions"):
            items = self._prepare_fixes(kind, raw, speaker, now)
        else:
            items = [self._prepare_case(kind, raw, speaker, now)]
        for it in items:
            it.prepared = it.reason is None
        return items

    def _speaker_for(self, given: str | None, speaker: Speaker) -> tuple[str | None, Reason | None, str]:
        pid = given or speaker.person_id
        if not pid:
            return None, Reason.MISSING_FIELD, "missing field supervisor"
        if not speaker.may_speak_for(pid):
            return pid, Reason.NOT_ALLOWED, f"this token may not speak for {pid!r}"
        return pid, None, ""

    def _instant(self, at: datetime, now: datetime, old_ok: bool = False) -> tuple[Reason | None, str]:
        if at > now + self.config.future_tolerance:
            return Reason.IN_FUTURE, f"instant {at.isoformat()} is later than now ({now.isoformat()})"
        if not old_ok and at < now - self.config.retention:
            return Reason.TOO_OLD, f"instant {at.isoformat()} is older than the retention period"
        return None, ""

    @staticmethod
    def _coordinates(lon: float, lat: float) -> tuple[Reason | None, str]:
        if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
            return Reason.BAD_COORDINATES, f"coordinates out of range: {lon}, {lat}"
        if lon == 0 and lat == 0:
            return Reason.ZERO_COORDINATES, "coordinates 0,0 (no GPS fix)"
        return None, ""

    def _prepare_fixes(self, kind: str, raw: dict[str, Any], speaker: Speaker, now: datetime) -> list[_Item]:
        valid: Sequence[FixIn | ValidationError] | None = None
        if kind == "positions":
            try:  # one call for the batch; only a batch with a bad fix is validated fix by fix (to name it)
                valid = ValidPositionsIn.model_validate(raw).fixes
                raws: Sequence[Any] = raw["fixes"]
            except ValidationError:
                try:
                    raws = PositionsIn.model_validate(raw).fixes
                except ValidationError as exc:
                    return [_Item(_ref_of(raw), kind, raw, *describe(exc))]
        else:
            raws = [raw]
        if valid is None:
            try:
                valid = _FIX_LIST.validate_python(raws)
            except ValidationError:
                valid = [_fix_or_error(r) for r in raws]
        items: list[_Item] = []
        parsed: list[tuple[_Item, FixIn, str]] = []
        speakers: dict[str | None, tuple[str | None, Reason | None, str]] = {}  # per batch
        latest, oldest = now + self.config.future_tolerance, now - self.config.retention
        for i, (r, fix) in enumerate(zip(raws, valid, strict=True)):
            if isinstance(fix, ValidationError):
                item = _Item(_ref_of(r, f"#{i}"), "position", r)
                items.append(item)
                item.reason, item.message = describe(fix)
                continue
            item = _Item(fix.id or f"#{i}", "position", r)  # a valid id is a str of 1–100 characters
            items.append(item)
            reason: Reason | None
            found = speakers.get(fix.supervisor)
            if found is None:
                found = speakers[fix.supervisor] = self._fix_speaker(fix.supervisor, speaker)
            pid, reason, msg = found
            lon, lat = fix.lon, fix.lat
            if reason is None and not (  # the common case in one test; the named reason otherwise
                -180.0 <= lon <= 180.0
                and -90.0 <= lat <= 90.0
                and (lon or lat)
                and oldest <= fix.at <= latest
            ):
                reason, msg = self._coordinates(lon, lat)
                if reason is None:
                    reason, msg = self._instant(fix.at, now)
            if reason is not None:
                item.reason, item.message = reason, msg
                continue
            assert pid is not None
            if fix.id is None:
                item.ref = f"{pid}@{fix.at.isoformat()}"
            parsed.append((item, fix, pid))
        if parsed:
            self._to_wgs84(parsed)
        return items

    def _fix_speaker(self, given: str | None, speaker: Speaker) -> tuple[str | None, Reason | None, str]:
        """Who a fix is for, or why the speaker may not send it."""
        pid, reason, msg = self._speaker_for(given, speaker)
        if reason is None:
            assert pid is not None
            person = self._person(pid)
            if person is None or person[0] != "supervisor" or not person[2]:
                reason, msg = Reason.UNKNOWN_SUPERVISOR, f"unknown supervisor {pid!r}"
        return pid, reason, msg

    @staticmethod
    def _to_wgs84(parsed: list[tuple[_Item, FixIn, str]]) -> None:
        """CRS → WGS-84, vectorised per CRS; point → grid follows in the writer (``_locate``)."""
        crss = {f.crs for _, f, _ in parsed} - {"wgs84"}
        if not crss:
            for item, fix, pid in parsed:
                item.point = (pid, fix, fix.lon, fix.lat)
            return
        lon = np.array([f.lon for _, f, _ in parsed], dtype=np.float64)
        lat = np.array([f.lat for _, f, _ in parsed], dtype=np.float64)
        for crs in crss:
            sel = np.array([f.crs == crs for _, f, _ in parsed])
            lon[sel], lat[sel] = to_wgs84(lon[sel], lat[sel], crs)
        for k, (item, fix, pid) in enumerate(parsed):
            item.point = (pid, fix, float(lon[k]), float(lat[k]))

    def _locate(self, jobs: list[_Job]) -> None:
        """Point → grid for every fix of a group in one vectorised lookup (outside_district).

        It runs in the writer, once per group (pyproj keeps a PROJ transformer per thread, and the writer
        is one long-lived thread): a handoff per event to a locating thread cost more than the lookup.
        """
        todo = [it for job in jobs for it in job.items if it.point is not None]
        if not todo:
            return
        lon = np.fromiter((it.point[2] for it in todo), np.float64, len(todo))  # type: ignore[index]
        lat = np.fromiter((it.point[3] for it in todo), np.float64, len(todo))  # type: ignore[index]
        if self._thread is not None and threading.current_thread() is self._thread:
            idx = self.index.lookup_indices(lon, lat)
        else:  # no writer thread (inline): the caller's thread may be new, so not here
            idx = _LOCATE.submit(self.index.lookup_indices, lon, lat).result()
        codes = self.index.codes
        for k, it in enumerate(todo):
            assert it.point is not None
            pid, fix, x, y = it.point
            it.point = None
            if idx[k] < 0:
                it.reason, it.prepared = Reason.OUTSIDE_DISTRICT, False
                it.message = f"{fix.lon:.6f},{fix.lat:.6f} ({fix.crs}) is outside the district's grids"
                continue
            it.fix = Fix(
                supervisor=pid,
                at=fix.at,
                lon=round(x, 7),
                lat=round(y, 7),
                grid=str(codes[idx[k]]),
                speed=fix.speed,
                accuracy=fix.accuracy,
            )

    def _prepare_case(self, kind: str, raw: dict[str, Any], speaker: Speaker, now: datetime) -> _Item:
        item = _Item(_ref_of(raw), kind, raw)
        model: dict[str, type[ReportIn | TaskAckIn | TaskResultIn | CommandIn]] = {
            "report": ReportIn, "task_ack": TaskAckIn, "task_result": TaskResultIn, "command": CommandIn
        }  # fmt: skip
        try:
            parsed = model[kind].model_validate(raw)
        except ValidationError as exc:
            item.reason, item.message = describe(exc)
            return item
        item.ref = parsed.id
        reason, msg = self._instant(parsed.at, now, old_ok=True)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        item.at = parsed.at
        if isinstance(parsed, CommandIn):
            return self._prepare_command(item, parsed, speaker)
        if speaker.kind == "api" and not parsed.supervisor:  # an API key reports as itself (feeds.api)
            key = api_actor(speaker)
            if not isinstance(parsed, ReportIn) or key is None:
                item.reason, item.message = Reason.NOT_ALLOWED, f"an api key may not send {kind}"
                return item
            return self._prepare_report(item, parsed, key, False)
        pid, reason, msg = self._speaker_for(parsed.supervisor, speaker)
        if reason is None:
            assert pid is not None
            person = self._person(pid)
            if person is None or person[0] != "supervisor" or not person[2]:
                reason, msg = Reason.UNKNOWN_SUPERVISOR, f"unknown supervisor {pid!r}"
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        assert pid is not None
        actor = Actor(pid, Role.SUPERVISOR)
        if isinstance(parsed, ReportIn):
            return self._prepare_report(item, parsed, actor, speaker.kind == "gateway", _simulated(speaker))
        if isinstance(parsed, TaskAckIn):
            item.task = (parsed.case_id, parsed.task, pid)
            return item
        assert isinstance(parsed, TaskResultIn)
        action = Action.VERIFY if parsed.task == "verify" else Action.CHECK
        result_key = "confirmed" if parsed.task == "verify" else "passed"
        data: dict[str, Any] = {result_key: parsed.result}
        reason, msg = check_refs(parsed.media, self.media)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        if parsed.media:
            data["media"] = ",".join(parsed.media)
        item.cmd = Command(action, parsed.case_id, actor, parsed.opinion, data, scoped_key(pid, parsed.id))
        item.answers = True
        return item

    def _prepare_report(
        self, item: _Item, rep: ReportIn, actor: Actor, gateway: bool, simulated: bool = False
    ) -> _Item:
        point = None if rep.lon is None or rep.lat is None else (rep.lon, rep.lat)
        reason, msg = (None, "") if point is None else self._coordinates(*point)
        if reason is None:
            try:
                self.ctx.catalogue.minor(rep.kind, rep.class_code)
                if rep.condition_code:
                    self.ctx.catalogue.condition(rep.kind, rep.class_code, rep.condition_code)
            except (CatalogueError, KeyError) as exc:
                reason, msg = Reason.UNKNOWN_CLASS, str(exc)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        data: dict[str, Any] = {
            "kind": rep.kind,
            "class_code": rep.class_code,
            "source": rep.source,
            "description": rep.description,
            **({"origin": "simulation"} if simulated else {}),
        }
        if point is not None:
            lon, lat = to_wgs84(np.array([point[0]]), np.array([point[1]]), rep.crs)
            hit = _LOCATE.submit(self.index.locate, float(lon[0]), float(lat[0])).result()
            if hit is None:
                item.reason = Reason.OUTSIDE_DISTRICT
                item.message = f"{point[0]:.6f},{point[1]:.6f} ({rep.crs}) is outside the district's grids"
                return item
            item.place = Place(hit.grid, hit.street, round(float(lon[0]), 7), round(float(lat[0]), 7))
            data.update(grid=hit.grid, lon=item.place.lon, lat=item.place.lat)
        else:  # 待受理 flagged "needs location": a grid (unknown ones: unknown_grid) or only an address
            g = rep.grid_code
            item.place = Place(g, g[:9] if g else None, None, None)
            data["needs_location"] = True
            if g:
                data["grid"] = g
        if rep.address:
            data["address"] = rep.address
        if rep.condition_code:
            data["condition_code"] = rep.condition_code
        reason, msg = check_refs(rep.media, self.media)
        if reason is not None:
            item.reason, item.message, item.place = reason, msg, None
            return item
        if rep.media:
            data["media"] = ",".join(rep.media)
        item.cmd = Command(Action.REPORT, rep.case_id or "", actor, "", data, scoped_key(actor.id, rep.id))
        if rep.case_id and not gateway:
            item.cmd, item.reason = None, Reason.NOT_ALLOWED
            item.message = "only a gateway may number its own cases (case_id)"
        return item

    def _prepare_command(self, item: _Item, c: CommandIn, speaker: Speaker) -> _Item:
        # a desk session (dashboard.commands) speaks only for its own person, in that person's role
        if speaker.kind not in ("gateway", "api", "session") or not speaker.may_speak_for(c.actor):
            item.reason, item.message = Reason.NOT_ALLOWED, f"this token may not speak for {c.actor!r}"
            return item
        try:
            action, role = Action(c.action), Role(c.role)
        except ValueError as exc:
            item.reason, item.message = Reason.WRONG_TYPE, str(exc)
            return item
        if speaker.kind == "session" and c.department != getattr(speaker, "department", None):
            item.reason = Reason.NOT_ALLOWED
            item.message = f"{c.actor!r} may not act for department {c.department}"
            return item
        key = api_actor(speaker) if speaker.kind == "api" else None
        if speaker.kind == "api" and (
            key is None
            or (key.role, key.department) != (role, c.department if role is Role.DEPARTMENT else None)
        ):  # an API key acts in its own role only
            item.reason = Reason.NOT_ALLOWED
            item.message = f"this api key's role is {getattr(speaker, 'role', None)}, not {c.role}"
            return item
        person = self._person(c.actor)
        if person is not None and (person[0] != role.value or not person[2]):
            item.reason = Reason.NOT_ALLOWED
            state = "an inactive " if not person[2] else ""
            item.message = f"{c.actor!r} is {state}{person[0]}, not {role.value}"
            return item
        if person is None and not speaker.may_speak_for("*") and (key is None or c.actor != key.id):
            item.reason, item.message = Reason.NOT_ALLOWED, f"unknown person {c.actor!r} (not in people)"
            return item
        data: dict[str, Any] = dict(c.data)
        place: Place | None = None
        if action is Action.REPORT:
            lon, lat = data.get("lon"), data.get("lat")
            if isinstance(lon, int | float) and isinstance(lat, int | float):
                reason, msg = self._coordinates(float(lon), float(lat))
                if reason is not None:
                    item.reason, item.message = reason, msg
                    return item
                hit = _LOCATE.submit(self.index.locate, float(lon), float(lat)).result()
                if hit is None:
                    item.reason, item.message = (
                        Reason.OUTSIDE_DISTRICT,
                        f"{lon},{lat} is outside the district",
                    )
                    return item
                data["grid"] = hit.grid
                place = Place(hit.grid, hit.street, float(lon), float(lat))
            elif data.get("grid"):
                g = str(data["grid"])
                place = Place(g, g[:9], None, None)
        item.place = place
        if (who := data.get("assignee")) is not None:  # a task goes to an active supervisor only
            found = self._person(str(who))
            if found is None or found[0] != Role.SUPERVISOR.value or not found[2]:
                item.reason = Reason.UNKNOWN_SUPERVISOR
                item.message = f"assignee {who!r} is not an active supervisor"
                return item
        actor = Actor(c.actor, role, c.department)
        replayed = _replayed(speaker.kind, speaker.name)
        origin = "simulation" if _simulated(speaker) else "replay" if replayed else ""
        if action is Action.REPORT and origin:
            data["origin"] = origin  # cases.origin: the wall says 模拟数据 for simulation
        item.cmd = Command(action, c.case_id, actor, c.opinion, data, scoped_key(c.actor, c.id))
        return item

    # -- the writer --------------------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            size = len(first.items)
            # closed-loop senders wait for their ack: close the group once inputs stop coming
            # (idle_s) rather than always waiting out the window (python -m bench ingest)
            deadline = first.arrived + self.config.window_s
            idle = self.config.idle_s
            while size < self.config.max_group:
                wait = min(deadline - _time.monotonic(), idle)
                try:
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
                size += len(nxt.items)
            try:
                self._process(jobs)
            except Exception:  # never let the writer die; every job is answered
                log.exception("pipeline group failed")
                for job in jobs:
                    for it in job.items:
                        if not it.outcome:
                            it.outcome, it.reason, it.message = (
                                "rejected",
                                Reason.UNAVAILABLE,
                                "internal error",
                            )
                self._finish(jobs, [])
        self._flush_dead_letters()
        if self.counters is not None:
            self.counters.save(force=True)

    def _flush_dead_letters(self) -> None:
        rows = self._dead.flush(self.clock(), force=True)
        if rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(Reject), rows)
            except SQLAlchemyError:
                log.exception("dead-letter count rows lost")

    def _process(self, jobs: list[_Job]) -> None:
        """One group: one transaction; on failure each input alone; publish after commit."""
        self._locate(jobs)
        try:
            pub = self._transaction(jobs)
        except Exception as exc:  # a database error or a bug: either way the transaction was rolled back
            bug = not isinstance(exc, SQLAlchemyError)
            log.warning("group of %d inputs failed (%s); retrying one by one", len(jobs), exc, exc_info=bug)
            self.stats["failed"] += 1
            self._rollback_filters()
            pub = _Published()
            for job in jobs:
                for it in job.items:
                    it.reset()
                for it in job.items:
                    try:
                        one = self._transaction([_Job([it], job.source)])
                    except Exception as exc2:
                        self._rollback_filters()
                        it.reset()
                        it.outcome, it.reason, it.recorded = "rejected", Reason.UNAVAILABLE, True
                        what = "database error" if isinstance(exc2, SQLAlchemyError) else "internal error"
                        it.message = f"{what}: {(str(exc2).splitlines() or [''])[0][:200]}"
                        continue
                    pub.fixes += one.fixes
                    pub.cases += one.cases
                    pub.tasks += one.tasks
                    pub.acked += one.acked
        self._publish(pub)
        self._finish(jobs, pub.fixes)

    def _rollback_filters(self) -> None:
        """Undo the duplicate/speed filter state of a rolled-back transaction."""
        for sup, prev, at in reversed(self._undo):
            if prev is None:
                self._last.pop(sup, None)
            else:
                self._last[sup] = prev
            self._recent.get(sup, OrderedDict()).pop(at, None)
        self._undo.clear()

    def _publish(self, pub: _Published) -> None:
        if self.counters is not None:
            for state, events, place in pub.cases:
                self.counters.add(state, events, place.grid if place else None)
            self.counters.save()
        for state, events, place in pub.cases:
            self.live.apply_case(state, events, place)
        for case_id in pub.acked:
            self.live.touch_case(case_id)
        if pub.tasks and self.on_tasks is not None:
            try:
                self.on_tasks(pub.tasks)
            except Exception:
                log.exception("sending tasks failed")
        # with fixes: in _complete
        if self.on_published is not None and (pub.cases or pub.acked) and not pub.fixes:
            self.on_published()

    def _transaction(self, jobs: list[_Job]) -> _Published:
        now = self.clock()
        pub = _Published()
        self._undo.clear()
        dead: list[dict[str, Any]] = []
        fixes: list[tuple[_Item, str]] = []
        with self.engine.begin() as conn:
            if self.dialect == "sqlite" and not conn.info.get("gw_pipeline"):
                # the writer's connection: the right edges of the positions indexes stay in SQLite's
                # own page cache, and a hot page is checkpointed once per 16 MB of WAL, not per 4 MB
                conn.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {_SQLITE_CHECKPOINT_PAGES}")
                conn.info["gw_pipeline"] = True
            for job in jobs:
                for it in job.items:
                    if it.reason is not None or it.outcome:
                        continue
                    if it.fix is not None:
                        self._judge_fix(it)
                        if it.reason is None:
                            fixes.append((it, job.source))
                    elif it.task is not None:
                        self._task_ack(conn, it, pub)
                    elif it.cmd is not None:
                        self._command(conn, it, job.source, pub)
            if fixes:
                self._insert_fixes(conn, fixes, now, pub)
            for job in jobs:
                for it in job.items:
                    if it.outcome in ("accepted", "duplicate"):
                        continue
                    if it.reason is None:
                        it.reason, it.message = Reason.UNAVAILABLE, "not processed"
                    it.outcome = "rejected"
                    if not it.recorded:
                        dead += self._dead.rows(job.source, str(it.reason), it.message, it.raw, now)
                        it.recorded = True
            dead += self._dead.flush(now)
            if dead:
                conn.execute(insert(Reject), dead)
        self.stats["groups"] += 1
        self.stats["inputs"] += sum(len(j.items) for j in jobs)
        self.stats["fixes"] += len(pub.fixes)
        self.stats["rejected"] += len(dead)
        return pub

    def _judge_fix(self, it: _Item) -> None:
        """Duplicate and speed filters against the supervisor's earlier accepted fixes."""
        fix = it.fix
        assert fix is not None
        recent = self._recent.get(fix.supervisor)
        if recent is None:
            recent = self._recent[fix.supervisor] = OrderedDict()
        seen = recent.get(fix.at)
        if seen is not None:
            if distance_m(seen[0], seen[1], fix.lon, fix.lat) < 1.0:
                it.outcome = "duplicate"
            else:
                it.reason = Reason.DUPLICATE
                it.message = f"another fix of {fix.supervisor} at {fix.at.isoformat()} was accepted"
            return
        last = self._last.get(fix.supervisor)
        if last is None:
            st = self.live.latest(fix.supervisor)
            if st is not None and st.at is not None:
                last = (st.at, st.lon, st.lat)
        if last is not None and fix.at > last[0]:
            seconds = (fix.at - last[0]).total_seconds()
            kmh = distance_m(last[1], last[2], fix.lon, fix.lat) / seconds * 3.6
            if kmh > self.config.rules.max_speed_kmh:
                it.reason = Reason.IMPOSSIBLE_SPEED
                it.message = f"{kmh:.0f} km/h since the fix at {last[0].isoformat()}"
                return
        self._undo.append((fix.supervisor, self._last.get(fix.supervisor), fix.at))
        if last is None or fix.at > last[0]:
            self._last[fix.supervisor] = (fix.at, fix.lon, fix.lat)
        recent[fix.at] = (fix.lon, fix.lat)
        while len(recent) > self.config.recent_per_supervisor:
            recent.popitem(last=False)

    def _insert_fixes(
        self, conn: Connection, fixes: list[tuple[_Item, str]], now: datetime, pub: _Published
    ) -> None:
        w = self._positions
        instant, received = w.instant, w.instant(now)
        rows = []
        labels: dict[str, str] = {}  # positions.source of each input source (a few per group)
        for it, source in fixes:
            f = it.fix
            assert f is not None
            label = labels.get(source)
            if label is None:
                label = labels[source] = (
                    "simulation" if source == f"gateway:{SIMULATION_GATEWAY}"
                    else "replay" if _replayed(*source.partition(":")[::2]) else "device"
                )  # fmt: skip
            rows.append(
                (f.supervisor, instant(f.at), received, f.lon, f.lat, f.accuracy, f.speed, f.grid, label)
            )
        inserted = w.insert(conn, rows)
        for (it, _), row in zip(fixes, rows, strict=True):
            if inserted is None or (row[0], row[1]) in inserted:
                it.outcome = "accepted"
                pub.fixes.append(it.fix)  # type: ignore[arg-type]
            else:
                it.outcome = "duplicate"  # stored earlier (a retry after the recent window)

    def _task_ack(self, conn: Connection, it: _Item, pub: _Published) -> None:
        assert it.task is not None and it.at is not None
        case_id, kind, pid = it.task
        t = _TASKS
        res = conn.execute(
            update(t)
            .where(and_(t.c.case_id == case_id, t.c.kind == kind, t.c.done_at.is_(None)))
            .where((t.c.assignee == pid) | t.c.assignee.is_(None))
            .values(acked_at=it.at)
        )
        if res.rowcount:
            it.outcome = "accepted"
            pub.acked.append(case_id)
        else:
            it.reason, it.message = Reason.UNKNOWN_TASK, f"no open {kind} task of case {case_id} for {pid}"

    def _new_case_id(self, conn: Connection, at: datetime) -> str:
        day = at.astimezone(self.ctx.calendar.tz).date()
        n = self._case_seq.get(day)
        if n is None:
            prefix = f"R{day:%Y%m%d}"
            top = conn.scalar(select(Case.id).where(Case.id.like(prefix + "%")).order_by(Case.id.desc()))
            n = int(top[len(prefix) :]) if top else 0
        self._case_seq[day] = n + 1
        return f"R{day:%Y%m%d}{n + 1:05d}"

    def _command(self, conn: Connection, it: _Item, source: str, pub: _Published) -> None:
        cmd = it.cmd
        assert cmd is not None and it.at is not None
        if cmd.action is Action.REPORT and not cmd.case_id:
            # a retry must reach the case its key made (a new number would be a key conflict)
            seen = conn.scalar(select(CaseEventRow.case_id).where(CaseEventRow.key == cmd.key))
            cmd = replace(cmd, case_id=seen or self._new_case_id(conn, it.at))
        if cmd.action in (Action.ACCEPT, Action.FEEDBACK) and "assignee" not in cmd.data:
            case = self.live.open_case(cmd.case_id)
            area = self.live.area_of_grid.get(case.grid) if case and case.grid else None
            who = self._area_person.get(area) if area else None
            if who is not None:
                cmd = replace(cmd, data={**cmd.data, "assignee": who})
        if it.answers:
            kind = "verify" if cmd.action is Action.VERIFY else "check"
            t = _TASKS  # a task sent to someone else (指派) is no longer this supervisor's to answer
            holder = conn.execute(
                select(t.c.assignee).where(
                    t.c.case_id == cmd.case_id, t.c.kind == kind, t.c.done_at.is_(None)
                )
            ).first()
            if holder is not None and holder[0] is not None and holder[0] != cmd.actor.id:
                it.reason = Reason.UNKNOWN_TASK
                it.message = f"the {kind} task of case {cmd.case_id} is now {holder[0]}'s"
                return
        ctx = replace(self.ctx, now=self.clock())
        result = execute(conn, cmd, it.at, ctx, source=source[:32])  # rejects.source is 32 characters
        it.case_id = result.case.id if result.case is not None else cmd.case_id
        if result.outcome == "applied":
            it.outcome = "accepted"
            assert result.case is not None
            pub.cases.append((result.case, result.events, it.place))
            self.stats["commands"] += 1
            self._task_for(result.case, cmd, it, pub)
        elif result.outcome == "duplicate":
            it.outcome = "duplicate"
        else:
            assert result.rejection is not None
            it.outcome, it.reason, it.message = (
                "rejected",
                result.rejection.rule.value,
                result.rejection.message,
            )
            it.recorded = True  # execute wrote the dead letter

    def _task_for(self, state: CaseState, cmd: Command, it: _Item, pub: _Published) -> None:
        kind = TASK_OF_STATUS.get(state.status)
        who = cmd.data.get("assignee")
        if kind is None or not who:
            return
        timer = state.timers.get(kind)
        if timer is None or timer.ended_at is not None:
            return
        case = self.live.open_case(state.id)
        place = it.place or (
            Place(case.grid, case.street, case.lon, case.lat) if case else Place(None, None, None, None)
        )
        pub.tasks.append(
            TaskOut(state.id, kind, str(who), timer.deadline, place, state.class_code, state.kind.value)
        )


def api_actor(speaker: Speaker) -> Actor | None:
    """Who an API key acts as: ``api:<name>`` in the key's lifecycle role (None: not a valid role).

    The key's role (``store.accounts`` ``tokens.role``) is a ``Role`` value or ``department:<code>``.
    """
    role = getattr(speaker, "role", None)
    if not isinstance(role, str):
        return None
    name, _, dept = role.partition(":")
    try:
        r = Role(name)
    except ValueError:
        return None
    if (r is Role.DEPARTMENT) != bool(dept):
        return None
    return Actor(f"api:{speaker.name}"[:64], r, dept or None)


def _fix_or_error(raw: Any) -> FixIn | ValidationError:
    try:
        return FixIn.model_validate(raw)
    except ValidationError as exc:
        return exc


def _replayed(kind: str, name: str) -> bool:
    """Whether a credential (kind, name) is a replay of real data (feeds.replay): cases.origin = replay."""
    return kind == "gateway" and (name == REPLAY_GATEWAY or name.startswith(REPLAY_GATEWAY + ":"))


def _simulated(speaker: Speaker) -> bool:
    """Whether the speaker is the built-in simulation (its cases and fixes are marked simulated)."""
    return speaker.kind == "gateway" and speaker.name == SIMULATION_GATEWAY


def _ref_of(raw: Any, default: str = "?") -> str:
    """The client's id of an input, for the acknowledgement."""
    if isinstance(raw, dict):
        ref = raw.get("id")
        if isinstance(ref, str | int) and not isinstance(ref, bool):
            return str(ref)[:100]
    return default
