"""The feed pipeline: one ordered path from raw input to a committed, published change.

Every input — a fix, a batch of fixes, a report, a task acknowledgement or result, a lifecycle
command — takes the same steps, in this order (each step's module in brackets)::

    parse (pydantic)                                    [feeds.schemas] malformed / missing_field / …
    stateless checks with named reasons, in the caller's thread         [feeds.checks, feeds.intake]
        coordinates: bad (NaN, out of range), zero (0,0)                  bad_coordinates, zero_coordinates
        instant: later than now + tolerance, older than the retention     in_future, too_old
        speaker: the token may speak for that supervisor / operator       not_allowed
        known ids: supervisor, class                                      unknown_supervisor, unknown_class
        CRS → WGS-84; reports: point → grid (outside every grid)          outside_district
    queue to the single writer (ordered, group commit)                  [feeds.writer]
    then, once per group, in one transaction:
        fixes: point → grid (outside every grid)                          outside_district
        judge each fix against the supervisor's committed ones  [domain.fixjudge]
            duplicate fix (same supervisor, same instant, other point)    duplicate
            impossible speed since the supervisor's latest fix            impossible_speed
        task acknowledgements                                   [store.ingest]  unknown_task
        pure transition (case lifecycle, via store.cases.execute)         the lifecycle rule's name
        persist fixes, dead letters                             [store.ingest]
    commit: one transaction for the whole group (until ~1.5 ms without input, ≤ 20 ms)
    only after the commit: the judge learns the group's fixes, then publish   [feeds.publish]
        (live state, counters, tasks to devices) and acknowledge   [feeds.writer: acknowledgement thread]

A failed commit publishes nothing and teaches the judge nothing: the group is retried one input per
transaction, so one bad input cannot sink the others, and what still fails is answered
``unavailable`` (devices retry; idempotency keys make retries safe). Rejections go to the
dead-letter table with the raw payload, at most ``reject_cap`` rows per source per minute; beyond the
cap one count row per source, minute and reason records how many more there were.

:class:`Pipeline` is the in-process implementation of :class:`feeds.ingest.Ingest`;
``feeds.stream.StreamPipeline`` is the other (scale-out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from domain.fixjudge import ACCEPT, RETRY, FixJudge
from domain.index import PointGridIndex
from domain.lifecycle import TASK_OF_STATUS, Action, CaseState, Command, Context
from feeds.checks import (
    KINDS,
    REPLAY_GATEWAY,
    SIMULATION_GATEWAY,
    Speaker,
    api_actor,
    position_source,
    raw_json,
    scoped_key,
)
from feeds.counters import CounterKeeper
from feeds.duplicates import DuplicateWatch
from feeds.ingest import PipelineConfig, Reply
from feeds.intake import Ack, Intake, Item, Job, People, locate, refused
from feeds.live import LiveWriter, Place
from feeds.media import MediaStore
from feeds.outage import Outages, is_outage
from feeds.publish import LivePublisher, Published, Publisher, TaskOut
from feeds.schemas import Reason
from feeds.writer import GroupWriter
from store import ingest as sql
from store.addresses import AddressBook
from store.cases import execute
from store.components import ComponentBook, apply_update, expire_books
from store.handover import ack_handover, open_handover
from store.proposals import decide, propose

log = logging.getLogger(__name__)
Kind = Literal["position", "positions", "report", "task_ack", "task_result", "command"]
# commands that may send a 核实/核查 task out: without an ``assignee`` it goes to the grid's supervisor
_TASK_GIVERS = frozenset({Action.ACCEPT, Action.FEEDBACK, Action.REVIEW, Action.SEND_CHECK})
__all__ = [
    "KINDS", "REPLAY_GATEWAY", "SIMULATION_GATEWAY", "Ack", "DeadLetter", "Kind", "Pipeline",
    "PipelineConfig", "Speaker", "TaskOut", "api_actor", "scoped_key",
]  # fmt: skip


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
                 "payload": raw_json(raw), "count": 1}
            )  # fmt: skip
        else:
            k = (source, minute, str(reason))
            n, _ = self._over.get(k, (0, {}))
            self._over[k] = (n + 1, raw_json(raw))
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
    """Validate, persist, then publish: the one write path of the feeds (in process)."""

    # an acknowledgement follows the commit (a stream pipeline acknowledges after the append: the
    # store does not hold the input yet when the sender is answered)
    acks_after_commit: bool = True

    def __init__(
        self,
        engine: Engine,
        index: PointGridIndex,
        ctx: Context,
        live: LiveWriter,
        *,
        config: PipelineConfig | None = None,
        on_tasks: Callable[[Sequence[TaskOut]], None] | None = None,
        on_published: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        record_source: str = "device",
        counters: CounterKeeper | None = None,
        media: MediaStore | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.engine = engine
        self.index = index
        self.config = cfg = config or PipelineConfig()
        # one tolerance for instants ahead of the clock, in the checks and in the lifecycle
        self.ctx = replace(ctx, policy=replace(ctx.policy, future_tolerance=cfg.future_tolerance))
        self.live = live
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.record_source = record_source
        # the database down: one warning when the groups begin to fail and one line when they are back
        self._group_outages = Outages(log, "pipeline: a group's transaction")
        self.stats = {"groups": 0, "inputs": 0, "fixes": 0, "commands": 0, "rejected": 0, "failed": 0}
        # the steps, in order
        self.people = People(engine)
        self.addresses = AddressBook.shared(engine)  # the gazetteer address-only reports are placed with
        self.intake = Intake(
            index, self.ctx, self.people, future_tolerance=cfg.future_tolerance, retention=cfg.retention,
            clock=self.clock, media=media, addresses=self.addresses,
            components=ComponentBook.shared(engine),
        )  # fmt: skip
        self.writer: GroupWriter[list[Any]] = GroupWriter(
            self._group, self._finish, window_s=cfg.window_s, idle_s=cfg.idle_s, max_group=cfg.max_group,
            on_exit=self._close, on_idle=self._flush_dead_letters, idle_every_s=cfg.flush_every_s,
        )  # fmt: skip
        self.judge = FixJudge(cfg.rules.max_speed_kmh, cfg.recent_per_supervisor)
        self.positions = sql.PositionWriter(engine.dialect)
        self.case_numbers = sql.CaseNumbers(self.ctx.calendar.tz)
        lat0 = float(index.geoms[0].centroid.y) if len(index.geoms) else 0.0
        self.duplicates = DuplicateWatch(engine, lat0=lat0)  # duplicate problems (issue 21)
        self.dead = DeadLetter(cfg.reject_cap)
        self.publisher: Publisher = publisher or LivePublisher(
            live, counters=counters, on_tasks=on_tasks, on_published=on_published
        )

    @property
    def media(self) -> MediaStore | None:
        """The media store references are checked against (given when the pipeline is made)."""
        return self.intake.media

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and acknowledgement threads."""
        self.writer.start()

    def stop(self) -> None:
        """Finish queued inputs and stop the writer."""
        self.writer.stop()

    def reload_people(self) -> None:
        """Reload the people table (supervisors, operators) into the checks' cache."""
        self.people.reload()

    # -- entry points (caller's thread): the stateless steps, then the writer's queue --------------

    def submit(self, kind: str, raw: Any, speaker: Speaker, *, source: str | None = None) -> dict[str, Any]:
        """Run one event through the pipeline and return its acknowledgement (blocks until commit)."""
        items = self.intake.prepare(kind, raw, speaker)
        return self._wait(Job(items, source or f"{speaker.kind}:{speaker.name}"), "writer timed out")

    def submit_nowait(self, kind: str, raw: Any, speaker: Speaker, reply: Reply, *, source: str) -> None:
        """``submit`` without waiting: returns after the stateless steps; the acknowledgement goes to
        ``reply`` after the commit, on the pipeline's acknowledgement thread (no thread waits per event)."""
        self.enqueue(Job(self.intake.prepare(kind, raw, speaker), source, reply=reply))

    def reject(self, kind: str, raw: Any, source: str, reason: Reason, message: str) -> dict[str, Any]:
        """Answer and dead-letter an input refused before parsing (rate limits, bad tokens)."""
        return self._wait(Job([refused(kind, raw, reason, message)], source), None)

    def reject_nowait(
        self, kind: str, raw: Any, source: str, reason: Reason, message: str, reply: Reply
    ) -> None:
        """``reject`` without waiting (the acknowledgement goes to ``reply``, as ``submit_nowait``)."""
        self.enqueue(Job([refused(kind, raw, reason, message)], source, reply=reply))

    def enqueue(self, job: Job) -> None:
        """Queue prepared items to the writer (``feeds.stream`` dead-letters its refusals here)."""
        self.writer.put(job)

    def _wait(self, job: Job, timeout_message: str | None) -> dict[str, Any]:
        self.writer.put(job)
        if not job.done.wait(timeout=60) and timeout_message is not None:
            for it in job.items:
                if not it.outcome:
                    it.outcome, it.reason, it.message = "rejected", Reason.UNAVAILABLE, timeout_message
        return Ack.of(job.items).as_dict()

    # -- the writer: one group ---------------------------------------------------------------------

    def _group(self, jobs: list[Job]) -> list[Any]:
        """One group: locate, one transaction (on failure each input alone), publish after commit."""
        locate(
            [it for job in jobs for it in job.items if it.point is not None],
            self.index,
            self.writer.in_writer(),
        )
        try:
            pub = self._transaction(jobs)
        except Exception as exc:  # a database error or a bug: either way the transaction was rolled back
            if is_outage(exc):  # every group fails until the database is back: not a line per group
                self._group_outages.failed(exc)
            else:  # a conflict of one input (retried one by one below) or a bug (with its traceback)
                bug = not isinstance(exc, SQLAlchemyError)
                log.warning(
                    "group of %d inputs failed (%s); retrying one by one", len(jobs), exc, exc_info=bug
                )
            self.stats["failed"] += 1
            pub = self._one_by_one(jobs)
        else:
            self._group_outages.ok()
        self.publisher.changes(pub)
        if pub.cases:
            try:
                self.duplicates.committed(pub.cases)
            except Exception:  # a bug here must not stop the feed: the candidates are hints
                log.exception("duplicate grouping: keeping the committed cases failed")
        return pub.fixes  # published on the acknowledgement thread (``_finish``)

    def _one_by_one(self, jobs: list[Job]) -> Published:
        pub = Published()
        for job in jobs:
            for it in job.items:
                it.reset()
            for it in job.items:
                try:
                    pub.add(self._transaction([Job([it], job.source)]))
                except Exception as exc:
                    it.reset()
                    it.outcome, it.reason, it.recorded = "rejected", Reason.UNAVAILABLE, True
                    what = "database error" if isinstance(exc, SQLAlchemyError) else "internal error"
                    it.message = f"{what}: {(str(exc).splitlines() or [''])[0][:200]}"
        return pub

    def _transaction(self, jobs: list[Job]) -> Published:
        """The stateful steps of a group in one transaction; the judge learns only once it committed."""
        now = self.clock()
        pub = Published()
        fixes: list[tuple[Item, str]] = []
        touched = False  # the 部件 inventory changed: this process's books look again after commit
        with self.engine.begin() as conn:
            sql.tune_writer(conn)
            for job in jobs:
                for it in job.items:
                    if it.reason is not None or it.outcome:
                        continue
                    if it.fix is not None:
                        fixes.append((it, job.source))
                    elif it.task is not None:
                        self._task_ack(conn, it, pub)
                    elif it.handover is not None:
                        self._handover(conn, it, pub)
                    elif it.cmd is not None:
                        self._command(conn, it, job.source, pub)
                    elif it.component is not None:
                        touched |= self._component(conn, it)
                    elif it.proposal is not None:
                        touched |= self._proposal(conn, it, now)
            judgement = self._judge(conn, fixes) if fixes else None
            if fixes:
                self._store_fixes(conn, fixes, now, pub)
            rejected = self._dead_letters(conn, jobs, now)
        if judgement is not None:
            self.judge.remember(judgement)
        if touched:
            expire_books()
        self.stats["groups"] += 1
        self.stats["inputs"] += sum(len(j.items) for j in jobs)
        self.stats["fixes"] += len(pub.fixes)
        self.stats["rejected"] += rejected
        return pub

    def _judge(self, conn: Connection, fixes: list[tuple[Item, str]]) -> Any:
        """Duplicate, retry and speed rules (``domain.fixjudge``); ``fixes`` keeps those to store."""
        unseen = self.judge.unseen(it.fix.supervisor for it, _ in fixes)  # type: ignore[union-attr]
        if unseen:  # met for the first time since start: their latest fix is in the store
            self.judge.seed(unseen, sql.latest_fixes(conn, unseen))
        judgement = self.judge.judge([it.fix for it, _ in fixes])  # type: ignore[misc]
        kept = []
        for (it, source), verdict in zip(fixes, judgement.verdicts, strict=True):
            if verdict.outcome == ACCEPT:
                kept.append((it, source))
            elif verdict.outcome == RETRY:
                it.outcome = "duplicate"
            else:
                it.reason, it.message = Reason(verdict.outcome), verdict.message
        fixes[:] = kept
        return judgement

    def _store_fixes(
        self, conn: Connection, fixes: list[tuple[Item, str]], now: datetime, pub: Published
    ) -> None:
        w = self.positions
        instant, received = w.instant, w.instant(now)
        rows = []
        labels: dict[str, str] = {}  # positions.source of each input source (a few per group)
        for it, source in fixes:
            f = it.fix
            assert f is not None
            label = labels.get(source)
            if label is None:
                label = labels[source] = position_source(source)
            rows.append(
                (f.supervisor, instant(f.at), received, f.lon, f.lat, f.accuracy, f.speed, f.grid, label)
            )
        if not rows:
            return
        inserted = w.insert(conn, rows)
        for (it, _), row in zip(fixes, rows, strict=True):
            if inserted is None or (row[0], row[1]) in inserted:
                it.outcome = "accepted"
                pub.fixes.append(it.fix)  # type: ignore[arg-type]
            else:
                it.outcome = "duplicate"  # stored earlier (a retry after the recent window)

    def _task_ack(self, conn: Connection, it: Item, pub: Published) -> None:
        assert it.task is not None and it.at is not None
        case_id, kind, pid = it.task
        if sql.ack_task(conn, case_id, kind, pid, it.at):
            it.outcome = "accepted"
            pub.acked.append(case_id)
        else:
            it.reason, it.message = Reason.UNKNOWN_TASK, f"no open {kind} task of case {case_id} for {pid}"

    def _command(self, conn: Connection, it: Item, source: str, pub: Published) -> None:
        cmd = it.cmd
        assert cmd is not None and it.at is not None
        if cmd.action is Action.REPORT and not cmd.case_id:
            # a retry must reach the case its key made (a new number would be a key conflict)
            seen = sql.case_of_key(conn, cmd.key)
            cmd = replace(cmd, case_id=seen or self.case_numbers.next(conn, it.at))
        if cmd.action in _TASK_GIVERS and "assignee" not in cmd.data:
            where = sql.open_case_place(conn, cmd.case_id)
            who = self.people.supervisor_of_area(where.area) if where and where.area else None
            if who is not None:
                cmd = replace(cmd, data={**cmd.data, "assignee": who})
        if it.answers:
            kind = "verify" if cmd.action is Action.VERIFY else "check"
            # a task sent to someone else (指派) is no longer this supervisor's to answer
            holder = sql.task_holder(conn, cmd.case_id, kind)
            if holder is not None and holder[0] is not None and holder[0] != cmd.actor.id:
                it.reason = Reason.UNKNOWN_TASK
                it.message = f"the {kind} task of case {cmd.case_id} is now {holder[0]}'s"
                return
        if cmd.action is Action.REPORT:  # issue 21: its likeliest twin, found here (never from the input)
            data = {k: v for k, v in cmd.data.items() if k != "duplicate_of"}
            src, who = str(data.get("source", "")), cmd.actor.id
            twin = self.duplicates.candidate(conn, data, cmd.case_id, it.at, it.place, who, src)
            cmd = replace(cmd, data={**data, "duplicate_of": twin.id} if twin is not None else data)
        ctx = replace(self.ctx, now=self.clock())
        # the rejection's dead letter is this pipeline's, capped with every other (_dead_letters)
        result = execute(conn, cmd, it.at, ctx, source=source[:32], record=False)
        it.case_id = result.case.id if result.case is not None else cmd.case_id
        if result.outcome == "applied":
            it.outcome = "accepted"
            assert result.case is not None
            pub.cases.append((result.case, result.events, it.place))
            self.stats["commands"] += 1
            self._task_for(conn, result.case, cmd, it, pub)
        elif result.outcome == "duplicate":
            it.outcome = "duplicate"
        else:
            assert result.rejection is not None
            it.outcome, it.reason, it.message = (
                "rejected",
                result.rejection.rule.value,
                result.rejection.message,
            )

    def _component(self, conn: Connection, it: Item) -> bool:
        """An online update of the 部件 inventory (add, move, state, owners, retire) with its history."""
        assert it.component is not None and it.at is not None
        result = apply_update(conn, it.component, it.at, str(it.component["actor"]))
        if result == "accepted":
            it.outcome = "accepted"
            return True
        if result == "duplicate":
            it.outcome = "duplicate"
        else:
            it.outcome, it.reason = "rejected", Reason(result)
            it.message = f"component {it.component['id']}: {result}"
        return False

    def _proposal(self, conn: Connection, it: Item, now: datetime) -> bool:
        """A supervisor's proposal of a 部件 update (stored, 待审) or a surveyor's decision on one (accepting
        applies it to the inventory with its history): ``store.proposals``."""
        assert it.proposal is not None and it.at is not None
        if it.proposal.get("decide"):
            result, number, message = decide(conn, it.proposal, it.at)
        else:
            (result, number), message = propose(conn, it.proposal, it.at, now), ""
        it.case_id = f"#{number}"
        if result in ("accepted", "duplicate"):
            it.outcome = result
            return result == "accepted" and bool(it.proposal.get("decide"))
        it.outcome, it.reason, it.message = "rejected", Reason(result), message
        return False

    def _handover(self, conn: Connection, it: Item, pub: Published) -> None:
        """A shift handover (交班: its snapshot taken now) or its acknowledgement (接班): ``store.handover``;
        refusals by name (handover_exists, unknown_handover, already_acknowledged, self_acknowledge)."""
        h = it.handover
        assert h is not None and it.at is not None
        outcome, number = (open_handover if h["action"] == "open" else ack_handover)(conn, h, it.at)
        if outcome in ("accepted", "duplicate"):
            it.outcome = outcome
            if outcome == "accepted":
                pub.handovers.append(it.at)
            return
        it.outcome, it.reason = "rejected", Reason(outcome)
        it.message = f"handover {number or h.get('handover')}: {outcome}"

    def _task_for(self, conn: Connection, state: CaseState, cmd: Command, it: Item, pub: Published) -> None:
        """The task a transition gives a supervisor (核实/核查), to send after commit."""
        kind = TASK_OF_STATUS.get(state.status)
        who = cmd.data.get("assignee")
        if kind is None or not who:
            return
        timer = state.timers.get(kind)
        if timer is None or timer.ended_at is not None:
            return
        place = it.place
        if place is None:
            at = sql.open_case_place(conn, state.id)
            place = Place(at.grid, at.street, at.lon, at.lat) if at else Place(None, None, None, None)
        pub.tasks.append(
            TaskOut(state.id, kind, str(who), timer.deadline, place, state.class_code, state.kind.value)
        )

    def _dead_letters(self, conn: Connection, jobs: list[Job], now: datetime) -> int:
        """Every item without an outcome is rejected; its dead-letter row (capped) is written."""
        dead: list[dict[str, Any]] = []
        for job in jobs:
            for it in job.items:
                if it.outcome in ("accepted", "duplicate"):
                    continue
                if it.reason is None:
                    it.reason, it.message = Reason.UNAVAILABLE, "not processed"
                it.outcome = "rejected"
                if not it.recorded:
                    dead += self.dead.rows(job.source, str(it.reason), it.message, it.raw, now)
                    it.recorded = True
        dead += self.dead.flush(now)
        sql.insert_rejects(conn, dead)
        return len(dead)

    # -- after the commit (acknowledgement thread) --------------------------------------------------

    def _finish(self, jobs: list[Job], fixes: list[Any] | None) -> None:
        """The group's fixes into the live state, then wake the waiting callers and send the
        acknowledgements of ``reply`` jobs — in commit order, so the writer can start on the next group."""
        if fixes:
            self.publisher.fixes(fixes)
        for job in jobs:
            job.done.set()
            if job.reply is not None:
                try:
                    job.reply(Ack.of(job.items).as_dict())
                except Exception:
                    log.exception("sending an acknowledgement failed")

    def _flush_dead_letters(self, force: bool = False) -> None:
        """Write the count rows of minutes that are over (every one when ``force``): when inputs stop,
        the last minute's overflow is not left waiting for a rejection that may never come."""
        rows = self.dead.flush(self.clock(), force=force)
        if rows:
            try:
                with self.engine.begin() as conn:
                    sql.insert_rejects(conn, rows)
            except SQLAlchemyError:
                log.exception("dead-letter count rows lost")

    def _close(self) -> None:
        """The writer stopped: dead-letter count rows and counters are saved."""
        self._flush_dead_letters(force=True)
        self.publisher.close()
