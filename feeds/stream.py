"""The ingest stream (scale-out): web processes append accepted inputs to a Redis Stream and acknowledge
after the append; ingest processes (a consumer group) persist them through the pipeline.

Web side — :class:`StreamPipeline` is the pipeline of a ``--role web`` process. ``/device`` and
``/api/v1`` call it as they call :class:`feeds.pipeline.Pipeline`; it runs the stateless steps (parse,
coordinates, instants, who may speak for whom, known ids) in the caller's thread and then:

- if nothing passed, the input goes the ordinary way (dead letter, acknowledgement with the reasons);
- otherwise one appender thread adds the input to the stream ``P:ingest`` (``XADD`` in a Redis
  pipeline, many inputs per round trip, trimmed by time: ``MINID`` of now − :data:`RETAIN`) and only
  then acknowledges: passed items ``accepted``, the others with their named reasons. Reports'
  ``cases`` (report id → case id) are not known yet and are not in the acknowledgement.
- if Redis does not answer, every item is rejected ``unavailable`` (dead-lettered; devices retry) —
  never a silent drop.

Loss window: an acknowledged input is in Redis's memory; with ``appendonly yes`` and ``appendfsync
everysec`` a crash of the Redis machine loses at most the last second (a clean restart loses nothing).

Ingest side — :class:`StreamConsumer` reads with ``XREADGROUP`` (group ``ingest``), submits each entry
to its own pipeline (the state-dependent steps — duplicates, speed, the lifecycle — run there; their
rejections are dead-lettered) and ``XACK``\\ s an entry once the pipeline answered every item of it;
an entry answered ``unavailable`` (PostgreSQL down) stays pending and is claimed again after
:data:`RETRY_IDLE`, as are entries of a consumer that died. Redelivery is safe: fixes are
deduplicated by supervisor and instant, commands and reports by their idempotency keys.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
import redis
from sqlalchemy.engine import Engine

from domain.index import PointGridIndex
from domain.lifecycle import Context
from feeds.checks import Speaker
from feeds.ingest import Ingest, Reply
from feeds.intake import Ack, Item, Job
from feeds.loop import BackgroundLoop
from feeds.media import MediaStore
from feeds.pipeline import Pipeline
from feeds.publish import LiveWriter
from feeds.schemas import Reason
from store.accounts import Principal

log = logging.getLogger(__name__)

RETAIN = timedelta(days=1)  # entries older than this are trimmed (consumed or not)
GROUP = "ingest"
RETRY_IDLE_MS = 10_000  # a pending entry is claimed again after this long without an acknowledgement
BATCH = 500  # entries per XREADGROUP and per appender round trip
ANSWER_WAIT_S = 0.01  # while entries are in flight, their answers are awaited this long between reads


def speaker_json(speaker: Speaker) -> bytes:
    """A speaker as stored with a stream entry."""
    scope: frozenset[str] = getattr(speaker, "scope", frozenset())
    return orjson.dumps({
        "token_id": getattr(speaker, "token_id", 0), "kind": speaker.kind, "name": speaker.name,
        "person_id": speaker.person_id, "role": getattr(speaker, "role", None), "scope": sorted(scope),
    })  # fmt: skip


def speaker_of(raw: bytes | str) -> Speaker:
    """The speaker of :func:`speaker_json` (API keys as :class:`feeds.api.ApiSpeaker`)."""
    d = orjson.loads(raw)
    if d["kind"] == "api":
        from feeds.api import ApiSpeaker

        return ApiSpeaker(int(d["token_id"]), d["name"], d["role"] or "")
    return Principal(
        int(d["token_id"]), d["kind"], d["name"], d["person_id"], d["role"], frozenset(d["scope"])
    )


@dataclass
class _Append:
    kind: str
    raw: Any
    speaker: Speaker
    source: str
    items: list[Item]
    reply: Reply | None
    done: threading.Event
    ack: dict[str, Any] | None = None


class StreamPipeline:
    """A web process's ingest: the stateless steps here, then the stream; the rest in ``ingest``.

    It implements :class:`feeds.ingest.Ingest` as :class:`feeds.pipeline.Pipeline` does, and holds one:
    its stateless steps (``Pipeline.intake``) and its writer, which only dead-letters what is refused
    here (inputs of which nothing passed, and inputs the stream did not take).
    """

    acks_after_commit: bool = False

    def __init__(
        self,
        engine: Engine,
        index: PointGridIndex,
        ctx: Context,
        live: LiveWriter,
        *,
        stream: redis.Redis,
        prefix: str = "gw",
        **kwargs: Any,
    ) -> None:
        self.local = Pipeline(engine, index, ctx, live, **kwargs)  # intake and the dead letters
        self.intake = self.local.intake
        self.addresses = self.local.addresses  # the gazetteer (the HTTP routes geocode with it)
        self.index, self.ctx, self.config = index, self.local.ctx, self.local.config
        self.clock, self.stats = self.local.clock, self.local.stats
        self.stream = stream
        self.key = f"{prefix}:ingest"
        self._pending: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self._appender: threading.Thread | None = None
        self.appended = 0

    @property
    def media(self) -> MediaStore | None:
        """The media store references are checked against (given when the pipeline is made)."""
        return self.intake.media

    def start(self) -> None:
        """Start the writer (dead letters) and the appender."""
        self.local.start()
        if self._appender is None:
            self._appender = threading.Thread(target=self._append_loop, name="gw-stream-append", daemon=True)
            self._appender.start()

    def stop(self) -> None:
        """Stop the appender and the writer."""
        if self._appender is not None:
            self._pending.put(None)
            self._appender.join(timeout=10)
            self._appender = None
        self.local.stop()

    def reject(self, kind: str, raw: Any, source: str, reason: Reason, message: str) -> dict[str, Any]:
        """Answer and dead-letter an input refused before parsing (as the pipeline does)."""
        return self.local.reject(kind, raw, source, reason, message)

    def reject_nowait(
        self, kind: str, raw: Any, source: str, reason: Reason, message: str, reply: Reply
    ) -> None:
        """``reject`` whose acknowledgement goes to ``reply``."""
        self.local.reject_nowait(kind, raw, source, reason, message, reply)

    def submit_nowait(self, kind: str, raw: Any, speaker: Speaker, reply: Reply, *, source: str) -> None:
        """Stateless steps now; the acknowledgement goes to ``reply`` after the append."""
        self._route(kind, raw, speaker, source, reply)

    def submit(self, kind: str, raw: Any, speaker: Speaker, *, source: str | None = None) -> dict[str, Any]:
        """Stateless steps, append, and the acknowledgement (blocks until appended)."""
        src = source or f"{speaker.kind}:{speaker.name}"
        job = self._route(kind, raw, speaker, src, None)
        if isinstance(job, Job):
            job.done.wait(timeout=60)
            return Ack.of(job.items).as_dict()
        if not job.done.wait(timeout=60) or job.ack is None:
            return self._unavailable(job, "stream append timed out")
        return job.ack

    def _route(
        self, kind: str, raw: Any, speaker: Speaker, source: str, reply: Reply | None
    ) -> Job | _Append:
        items = self.intake.prepare(kind, raw, speaker)
        if not any(it.reason is None for it in items):  # nothing passed: dead letters, reasons
            job = Job(items, source, reply=reply)
            self.local.enqueue(job)
            return job
        app = _Append(kind, raw, speaker, source, items, reply, threading.Event())
        self._pending.put(app)
        return app

    def _unavailable(self, app: _Append, message: str) -> dict[str, Any]:
        items = [Item(it.ref, it.kind, it.raw, Reason.UNAVAILABLE, message) for it in app.items]
        self.local.enqueue(Job(items, app.source))  # dead-lettered by the writer
        why = Reason.UNAVAILABLE.value
        return {
            "accepted": [], "duplicates": [],
            "rejected": [{"id": it.ref, "reason": why, "message": message} for it in items],
        }  # fmt: skip

    def _append_loop(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < BATCH:
                try:
                    nxt = self._pending.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._pending.put(None)
                    break
                batch.append(nxt)
            self._append(batch)

    def _append(self, batch: list[_Append]) -> None:
        minid = f"{int((time.time() - RETAIN.total_seconds()) * 1000)}-0"
        try:
            pipe = self.stream.pipeline(transaction=False)
            for app in batch:
                fields: dict[Any, Any] = {
                    "k": app.kind, "raw": orjson.dumps(app.raw, default=str), "sp": speaker_json(app.speaker),
                    "src": app.source,
                }  # fmt: skip
                pipe.xadd(self.key, fields, minid=minid, approximate=True)
            pipe.execute()
            self.appended += len(batch)
            ok = True
        except redis.RedisError as exc:
            log.warning("ingest stream unavailable (%s): %d inputs answered unavailable", exc, len(batch))
            ok = False
        for app in batch:
            if ok:
                ack: dict[str, Any] = {
                    "accepted": [it.ref for it in app.items if it.reason is None],
                    "duplicates": [],
                    "rejected": [
                        {"id": it.ref, "reason": str(it.reason), "message": it.message}
                        for it in app.items
                        if it.reason is not None
                    ],
                }
            else:
                ack = self._unavailable(app, "ingest stream unavailable; retry")
            app.ack = ack
            app.done.set()
            if app.reply is not None:
                try:
                    app.reply(ack)
                except Exception:
                    log.exception("sending an acknowledgement failed")


class StreamConsumer(BackgroundLoop):
    """One member of the ingest consumer group: stream entries → the pipeline → ``XACK``.

    After ``stop`` the entries in flight stay pending in the group and are claimed again.
    """

    thread_name = "gw-ingest"

    def __init__(self, client: redis.Redis, pipeline: Ingest, *, prefix: str = "gw", name: str | None = None):
        super().__init__()
        self.r = client
        self.pipeline = pipeline
        self.key = f"{prefix}:ingest"
        self.name = name or f"ingest-{uuid.uuid4().hex[:8]}"
        self.done: queue.SimpleQueue[str] = queue.SimpleQueue()  # entry ids answered: to acknowledge
        self.inflight: set[str] = set()
        self._lock = threading.Lock()
        self._answered = threading.Event()  # the pipeline answered an entry (wakes the loop to XACK)
        self.consumed = 0
        self.retried = 0

    def _group(self) -> None:
        try:
            self.r.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _submit(self, entry_id: str, fields: dict[Any, Any]) -> None:
        f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        try:
            kind = f["k"].decode() if isinstance(f["k"], bytes) else str(f["k"])
            raw = orjson.loads(f["raw"])
            speaker = speaker_of(f["sp"])
            source = f["src"].decode() if isinstance(f["src"], bytes) else str(f["src"])
        except (KeyError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            log.error("malformed stream entry %s (%s): acknowledged without effect", entry_id, exc)
            self.done.put(entry_id)
            return

        def reply(ack: dict[str, Any]) -> None:
            if any(r.get("reason") == Reason.UNAVAILABLE.value for r in ack.get("rejected", [])):
                with self._lock:  # the database did not take it: leave it pending, claimed again later
                    self.inflight.discard(entry_id)
                self.retried += 1
                self._answered.set()
                return
            self.done.put(entry_id)
            self._answered.set()

        with self._lock:
            self.inflight.add(entry_id)
        self.pipeline.submit_nowait(kind, raw, speaker, reply, source=source)

    def _ack_done(self) -> None:
        ids: list[str] = []
        while True:
            try:
                ids.append(self.done.get_nowait())
            except queue.Empty:
                break
        if ids:
            try:
                self.r.xack(self.key, GROUP, *ids)
            except redis.RedisError:
                for i in ids:  # acknowledge on the next round
                    self.done.put(i)
                raise
            with self._lock:
                self.inflight.difference_update(ids)
            self.consumed += len(ids)

    def _take(self, entries: Any) -> None:
        for _stream, rows in entries or []:
            for entry_id, fields in rows:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                with self._lock:
                    if eid in self.inflight:
                        continue
                if fields:
                    self._submit(eid, fields)
                else:  # trimmed before it was consumed
                    self.done.put(eid)

    def _run(self) -> None:
        """Read, submit, acknowledge.

        While entries are in flight the loop never blocks in Redis: it reads without ``BLOCK`` and
        otherwise waits for the pipeline's next answer (at most :data:`ANSWER_WAIT_S`), so an entry is
        acknowledged as soon as it is answered. A blocking read would hold the last answers of a burst
        unacknowledged for up to its 200 ms (python -m bench scale times until nothing is pending).
        """
        grouped = False
        next_claim = 0.0
        while not self._stop.is_set():
            try:
                if not grouped:
                    self._group()
                    grouped = True
                    self._take(
                        self.r.xreadgroup(GROUP, self.name, {self.key: "0"}, count=BATCH)
                    )  # own pending
                self._answered.clear()  # answers from here on wake the waits below
                self._ack_done()
                if time.monotonic() >= next_claim:  # entries of dead consumers or answered unavailable
                    next_claim = time.monotonic() + RETRY_IDLE_MS / 2000
                    got = self.r.xautoclaim(self.key, GROUP, self.name, RETRY_IDLE_MS, "0-0", count=BATCH)
                    self._take([(self.key, got[1])])
                with self._lock:
                    inflight = len(self.inflight)
                if inflight >= 2 * BATCH:  # bounded: the pipeline is behind
                    self._answered.wait(0.05)
                    continue
                if not inflight:
                    self._take(self.r.xreadgroup(GROUP, self.name, {self.key: ">"}, count=BATCH, block=200))
                    continue
                new = self.r.xreadgroup(GROUP, self.name, {self.key: ">"}, count=BATCH)
                if new:
                    self._take(new)
                else:
                    self._answered.wait(ANSWER_WAIT_S)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the stream (restart without persistence)
                    grouped = False
                    continue
                log.warning("ingest: %s", exc)
                self._stop.wait(0.5)
            except redis.RedisError as exc:
                log.warning("ingest: Redis unavailable (%s); retrying", exc)
                grouped = False
                self._stop.wait(0.5)
        with contextlib.suppress(redis.RedisError):
            self._ack_done()


if TYPE_CHECKING:  # both write paths implement the one ingest interface (checked by mypy)

    def _ingests(embedded: Pipeline, web: StreamPipeline) -> tuple[Ingest, Ingest]:
        return embedded, web
