"""The CJ/T 292 daily counters kept current: every committed case event, saved every few seconds.

Two keepers, one interface (:class:`DailyCounters`, what the desk pages and the ranking read):

- :class:`CounterKeeper` (embedded mode): the pipeline's writer adds each command's events after
  its commit.
- :class:`LogFollower` (scale-out: the producing aggregator): several ingest consumers commit, so the
  counters follow the case-event log instead. Every few seconds the events with an id above the
  saved mark are read, each touched case's log is replayed up to them (the on-time decisions need
  the state before each event) and only the new events are counted; the changed rows and the new
  mark are saved in one transaction. Concurrent transactions may commit ids out of order: an id
  below the mark that is still missing is watched for :data:`HOLE_WAIT` seconds and counted if it
  appears (else taken as rolled back). A full rebuild (one snapshot of the log) runs only when
  nothing was saved yet, and to heal: when the log holds more events at or below the mark than were
  counted (an id committed after it was given up).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from domain.evaluation import (
    CaseInfo,
    Counters,
    DailyAggregates,
    Holder,
    ObjectType,
    Record,
    RowKey,
    evaluation_table,
)
from domain.lifecycle import Action, CaseEvent, CaseState, Context, Role, Status
from feeds.outage import Outages
from feeds.wallstats import case_mix, period_starts
from store.component_stats import wall_recurring
from store.counters import MARK, forget_all_rows, last_event_id, load_rows, save_rows
from store.evaluation import EVENT_COLUMNS, overdue_unhandled, replay
from store.handover import wall_line as handover_line
from store.models import Case, CaseEventRow, CounterMark

log = logging.getLogger(__name__)
HOLE_WAIT = 30.0  # seconds an id below committed ones may stay missing before it is taken as rolled back
_CHUNK = 1000  # case ids per replay query
_BATCH = 50_000  # new events per step
PENDING = "daily:pending"  # counter_marks row: the ids pending at the mark (saved with it)
_RECENT = 50_000  # missing ids are watched only among this many below the newest (older: rolled back)


class DailyCounters(Protocol):
    """The daily counters as their readers see them (desk scores, indicator panels, street ranking)."""

    def table(
        self, kind: ObjectType, codes: Sequence[str], start: date, end: date, grids: Mapping[str, int]
    ) -> pd.DataFrame:
        """The CJ/T 292 evaluation table of some objects over a period (score, grade, colour per row)."""
        ...

    def period(self, kind: ObjectType, code: str, start: date, end: date) -> Counters:
        """One object's counts over a period, both days included."""
        ...

    def street_ranking(self, now: datetime, grids_per_street: Mapping[str, int]) -> list[dict[str, Any]]:
        """Streets by CJ/T 292 composite score, month to date at ``now`` (best first)."""
        ...

    def wall_stats(self, now: datetime) -> dict[str, Any]:
        """The wall's statistics at ``now`` (:mod:`feeds.wallstats`): departments, report mix, 高发问题."""
        ...


class _Readable:
    """The reads of :class:`DailyCounters` over ``aggregates``, under the keeper's own lock."""

    aggregates: DailyAggregates
    engine: Engine
    reader: Engine | None = None  # the ranking's and the wall's reads (default: ``engine``)
    _lock: threading.Lock

    def table(
        self, kind: ObjectType, codes: Sequence[str], start: date, end: date, grids: Mapping[str, int]
    ) -> pd.DataFrame:
        """The CJ/T 292 evaluation table of some objects over a period (score, grade, colour per row)."""
        with self._lock:  # the writer thread adds events under this lock
            return evaluation_table(self.aggregates, kind, list(codes), start, end, grids_per_region=grids)

    def period(self, kind: ObjectType, code: str, start: date, end: date) -> Counters:
        """One object's counts over a period, both days included."""
        with self._lock:
            return self.aggregates.period(kind, code, start, end)

    def street_ranking(self, now: datetime, grids_per_street: Mapping[str, int]) -> list[dict[str, Any]]:
        """Streets by CJ/T 292 composite score, month to date at ``now`` (best first): code, score,
        grade, colour; 应结案 includes the cases handling past their deadline now (超时未处置)."""
        with (self.reader or self.engine).connect() as conn:
            overdue = overdue_unhandled(conn, ObjectType.STREET, now)
        with self._lock:
            today = now.astimezone(self.aggregates.tz).date()
            return street_ranking(self.aggregates, today, grids_per_street, overdue)

    def wall_stats(self, now: datetime) -> dict[str, Any]:
        """The wall's statistics at ``now`` (:mod:`feeds.wallstats`): departments by 综合指标值 month to
        date (超时未处置 now in 应结案), the reports' 部件/事件 and sources, 高发问题, today and month."""
        tz = self.aggregates.tz
        month_start, today_start = period_starts(now, tz)
        with (self.reader or self.engine).connect() as conn:
            overdue = overdue_unhandled(conn, ObjectType.DEPARTMENT, now)
            line = handover_line(conn)  # the wall's status line: the last 交班 and its 接班 (issue 21)
            mix = {**case_mix(conn, month_start, today_start), "recurring": wall_recurring(conn, now)}
        with self._lock:
            table = evaluation_table(
                self.aggregates, ObjectType.DEPARTMENT, None, month_start.date(), today_start.date(),
                overdue_unhandled=overdue,
            )  # fmt: skip
        return {"departments": ranked_rows(table), **mix, "handover": line}


class CounterKeeper(_Readable):
    """Adds committed case events to the daily aggregates and saves the changed rows (writer thread)."""

    def __init__(
        self,
        engine: Engine,
        aggregates: DailyAggregates,
        *,
        save_every: float = 5.0,
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        # the minute's ranking read the month's cases through the writer's connections, whose 16 MiB
        # page caches (store.ingest.tune_writer) then held them: +34 MB under the fuzz's desk pages
        self.reader = reader
        self.aggregates = aggregates
        self.save_every = save_every
        self._saved = time.monotonic()
        self._lock = threading.Lock()
        self._outages = Outages(log, "saving daily counters")
        with engine.connect() as conn:
            self._grid: dict[str, str] = {
                cid: g for cid, g in conn.execute(select(Case.id, Case.grid_code).where(Case.open)) if g
            }

    def add(self, state: CaseState, events: Sequence[CaseEvent], grid: str | None) -> None:
        """Count a committed command's events (cases without a grid are in no region yet; when a 定位
        gives one its grid, its report is counted there, as a rebuild from the log would)."""
        placed = grid is not None and state.id not in self._grid
        placed = placed and any(e.action is Action.LOCATE for e in events)
        grid = grid or self._grid.get(state.id)
        if grid is None:
            return
        earlier = self._report_of(state, grid) if placed else []
        with self._lock:
            for record in earlier:
                self.aggregates.add(*record)
            info = CaseInfo.from_state(state, grid)
            for ev in events:
                self.aggregates.add(info, ev, state)
            if state.is_open:
                self._grid[state.id] = grid
            else:
                self._grid.pop(state.id, None)

    def _report_of(self, state: CaseState, grid: str) -> list[Record]:
        """The report of a case just placed (定位), from the log, to count in its grid's regions (the
        state after the report is the placed case's: a 定位 changes nothing the counters read)."""
        try:
            with self.engine.connect() as conn:
                e = CaseEventRow
                row = conn.execute(
                    select(e.action, e.actor, e.role, e.at, e.opinion, e.data, e.key).where(
                        e.case_id == state.id, e.seq == 0
                    )
                ).first()
        except SQLAlchemyError as exc:  # the report stays uncounted until the next rebuild
            log.warning("case %s: its report not counted in grid %s: %s", state.id, grid, exc)
            return []
        if row is None or row.action != Action.REPORT.value:
            return []
        report = CaseEvent(
            state.id, Action.REPORT, row.actor, Role(row.role), None, Status.REPORTED, row.at, row.opinion,
            dict(row.data or {}), row.key or "",
        )  # fmt: skip
        return [(CaseInfo.from_state(state, grid), report, state)]

    def save(self, force: bool = False) -> int:
        """Save the rows changed since the last save (every ``save_every`` seconds unless forced)."""
        if not force and time.monotonic() - self._saved < self.save_every:
            return 0
        with self._lock:
            rows = self.aggregates.take_dirty()
            holders = self.aggregates.holders()
        self._saved = time.monotonic()
        if not rows:
            return 0
        try:
            with self.engine.begin() as conn:
                save_rows(conn, rows, holders, last_event_id(conn))
            self._outages.ok()
        except Exception as exc:  # kept dirty: saved with the next attempt
            self._outages.failed(exc)
            with self._lock:
                self.aggregates.dirty |= set(rows)
            return 0
        return len(rows)


def street_ranking(
    aggregates: DailyAggregates,
    today: date,
    grids_per_street: Mapping[str, int],
    overdue: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Streets by CJ/T 292 composite score, month to date (best first): code, score, grade, colour
    (``overdue``: 超时未处置数 per street now, added to 应结案)."""
    table = evaluation_table(
        aggregates, ObjectType.STREET, None, today.replace(day=1), today,
        overdue_unhandled=overdue, grids_per_region=grids_per_street,
    )  # fmt: skip
    out = []
    for row in table.itertuples():
        score = None if row.score is None or row.score != row.score else round(float(row.score), 1)
        out.append({"code": row.object_id, "score": score, "grade": row.grade, "colour": row.colour})
    return out


def ranked_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The scored rows of an evaluation table, best first: code, score (1 decimal), grade, colour."""
    out = []
    for row in table.itertuples():
        if row.score is None or row.score != row.score:
            continue
        out.append({"code": row.object_id, "score": round(float(row.score), 1), "grade": row.grade,
                    "colour": row.colour})  # fmt: skip
    return out


class Superseded(RuntimeError):
    """Another process saved the daily counters since this one did: reload before writing again."""


class LogFollower(_Readable):
    """The daily counters of a scale-out deployment, kept by the producing aggregator from the case log."""

    def __init__(
        self, engine: Engine, ctx: Context, responsible: Mapping[str, str] | None = None, *,
        hole_wait: float = HOLE_WAIT,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.ctx = ctx
        self.responsible = responsible
        self.hole_wait = hole_wait
        self.aggregates = DailyAggregates(responsible=responsible, tz=ctx.calendar.tz)
        self.mark = 0  # every event with an id up to this one is counted, but the pending ones
        self.pending: dict[int, float] = {}  # missing ids below the mark → when they were first missed
        self.counted = 0  # stored events at or below the mark that were counted
        self.saved: int | None = None  # the mark of the rows this follower saved (or loaded) last
        self.rebuilds = 0
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Load the saved rows and catch up from their mark, or rebuild when none were saved (True)."""
        with self.engine.connect() as conn:
            rows, holders, mark = load_rows(conn)
            if mark is None:
                below = 0
            else:
                waiting = conn.execute(
                    select(CounterMark.event_id, CounterMark.data).where(CounterMark.name == PENDING)
                ).first()
                now = time.monotonic()
                ids = (waiting[1] or {}).get("ids", []) if waiting is not None and waiting[0] == mark else []
                self.pending = {int(i): now for i in ids}
                below = self._count(conn, mark)
        if mark is None:
            self.rebuild()
            return True
        agg = DailyAggregates(responsible=self.responsible, tz=self.ctx.calendar.tz)
        agg.load(rows, holders)
        with self._lock:
            self.aggregates, self.mark, self.counted = agg, mark, below
        self.saved = mark
        while self.follow() >= _BATCH:  # catch up
            pass
        return False

    def _count(self, conn: Connection, upto: int) -> int:
        """Stored events at or below ``upto`` that are not pending."""
        q = select(func.count()).where(CaseEventRow.id <= upto)
        if self.pending:
            q = q.where(CaseEventRow.id.not_in(list(self.pending)))
        return int(conn.scalar(q) or 0)

    def _watch(self, present: Sequence[int], low: int, high: int, now: float) -> None:
        """Remember the ids in ``(low, high]`` missing from ``present`` (ascending) as pending."""
        low = max(low, high - _RECENT)
        have = set(present)
        for i in range(low + 1, high + 1):
            if i not in have:
                self.pending.setdefault(i, now)

    def rebuild(self) -> None:
        """Count the log again from one snapshot of it and save every row with its mark."""
        agg = DailyAggregates(responsible=self.responsible, tz=self.ctx.calendar.tz)
        eng = self.engine
        if eng.dialect.name == "postgresql":
            eng = eng.execution_options(isolation_level="REPEATABLE READ")  # one snapshot for all reads
        with eng.connect() as conn, conn.begin():
            newest = last_event_id(conn)
            # ids still held by open transactions are missing here: they are watched like any others
            recent = conn.scalars(
                select(CaseEventRow.id).where(CaseEventRow.id > newest - _RECENT).order_by(CaseEventRow.id)
            ).all()
            grids = {r[0]: r[1] for r in conn.execute(select(Case.id, Case.grid_code))}
            q = (
                select(*EVENT_COLUMNS).where(CaseEventRow.id <= newest)
                .order_by(CaseEventRow.case_id, CaseEventRow.seq)
            )  # fmt: skip
            counted = 0

            def rows() -> Iterator[Any]:
                nonlocal counted
                for row in conn.execution_options(yield_per=20_000).execute(q):
                    counted += 1
                    yield row

            agg.rebuild(replay(rows(), grids, self.ctx, lambda _: True))
        with self._lock:
            self.aggregates, self.mark, self.counted, self.pending = agg, newest, counted, {}
            if recent:
                self._watch(recent, recent[0], newest, time.monotonic())
            pending = sorted(self.pending)
        with self.engine.begin() as conn:
            forget_all_rows(conn)
            self._save(conn, agg.take_dirty(), agg.holders(), newest, pending)
        self.saved = newest
        self.rebuilds += 1

    @staticmethod
    def _save(
        conn: Connection, rows: Mapping[RowKey, Mapping[str, int]],
        holders: Mapping[str, Holder], mark: int, pending: Sequence[int],
    ) -> None:  # fmt: skip
        """Save rows and the mark, with the ids still pending at it (for a process that loads them)."""
        save_rows(conn, rows, holders, mark)
        conn.execute(delete(CounterMark).where(CounterMark.name == PENDING))
        conn.execute(insert(CounterMark).values(name=PENDING, event_id=mark, data={"ids": list(pending)}))

    def _claim(self, conn: Connection) -> None:
        """Lock the saved mark; refuse to write over rows another process saved since (a deposed leader)."""
        q = select(CounterMark.event_id).where(CounterMark.name == MARK).with_for_update()
        current = conn.scalar(q)
        if current != self.saved:
            raise Superseded(f"the saved counters moved to event {current}; this process saved {self.saved}")

    def follow(self) -> int:
        """Count the events committed since the last step (at most ``_BATCH`` new ones, and pending ids
        that appeared); save the changed rows and the new mark. Returns how many were counted."""
        with self.engine.connect() as conn:
            cols = (CaseEventRow.id, CaseEventRow.case_id, CaseEventRow.action)
            new = conn.execute(
                select(*cols).where(CaseEventRow.id > self.mark).order_by(CaseEventRow.id).limit(_BATCH)
            ).all()
            late: Sequence[Any] = []
            if self.pending:
                late = conn.execute(select(*cols).where(CaseEventRow.id.in_(list(self.pending)))).all()
            now = time.monotonic()
            upto = new[-1][0] if new else self.mark
            fresh = [*new, *late]
            records: list[Record] = []
            if fresh:
                take = {r[0] for r in fresh}
                # a 定位 gives a case without a grid its grid: its report, in no region until then (the
                # replay skipped it), counts now in that grid's, as the embedded keeper and a rebuild do
                located = sorted({r[1] for r in fresh if r[2] == Action.LOCATE.value})
                for i in range(0, len(located), _CHUNK):
                    q = select(CaseEventRow.id, CaseEventRow.data).where(
                        CaseEventRow.case_id.in_(located[i : i + _CHUNK]), CaseEventRow.seq == 0
                    )
                    take |= {r[0] for r in conn.execute(q) if not (r[1] or {}).get("grid")}
                touched = sorted({r[1] for r in fresh})
                for i in range(0, len(touched), _CHUNK):
                    part = touched[i : i + _CHUNK]
                    grids = {
                        r[0]: r[1]
                        for r in conn.execute(select(Case.id, Case.grid_code).where(Case.id.in_(part)))
                    }
                    q = (
                        select(*EVENT_COLUMNS).where(CaseEventRow.case_id.in_(part), CaseEventRow.id <= upto)
                        .order_by(CaseEventRow.case_id, CaseEventRow.seq)
                    )  # fmt: skip
                    records.extend(replay(conn.execute(q), grids, self.ctx, take.__contains__))
        with self._lock:
            for i, *_ in late:
                del self.pending[i]
            self._watch([r[0] for r in new], self.mark, upto, now)
            for i in [i for i, t in self.pending.items() if now - t >= self.hole_wait]:
                log.info("case event %d never committed: taken as rolled back", i)
                del self.pending[i]
            if not fresh:
                return 0
            for info, event, state in records:
                self.aggregates.add(info, event, state)
            rows, holders = self.aggregates.take_dirty(), self.aggregates.holders()
            self.mark, self.counted = upto, self.counted + len(fresh)
            pending = sorted(self.pending)
        try:
            with self.engine.begin() as conn:
                self._claim(conn)
                self._save(conn, rows, holders, upto, pending)
            self.saved = upto
        except Exception:
            with self._lock:
                self.aggregates.dirty |= set(rows)  # counted in memory: saved with the next mark
            raise
        return len(fresh)

    def check(self) -> bool:
        """Heal: rebuild when the log holds other events at or below the mark than were counted."""
        with self.engine.connect() as conn:
            stored = self._count(conn, self.mark)
        if stored == self.counted:
            return False
        log.warning(
            "daily counters: %d events at or below the mark, %d counted; rebuilding", stored, self.counted
        )
        self.rebuild()
        return True
