"""The pipeline's single writer (group commit) and its acknowledgement thread.

Inputs are queued in arrival order to one writer thread, which takes them a group at a time: a group
closes after ``window_s`` from its first input, earlier once no input came for ``idle_s`` (closed-loop
senders wait for their acknowledgement: waiting out the window would only add latency), or at
``max_group`` inputs. The group is handed to ``handle`` (one transaction, in ``feeds.pipeline``); what
``handle`` returns is passed, with the group, to ``finish`` on a second thread, in commit order, so the
writer starts on the next group while the previous one is acknowledged and published.

Without ``start`` (tests, tools) every input is handled inline in the caller's thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time as _time
from collections.abc import Callable
from typing import Generic, TypeVar

from feeds.intake import Job
from feeds.outage import Outages
from feeds.schemas import Reason

log = logging.getLogger(__name__)
T = TypeVar("T")


class GroupWriter(Generic[T]):
    """One writer thread that handles queued jobs a group at a time, and one that finishes them."""

    def __init__(
        self,
        handle: Callable[[list[Job]], T],
        finish: Callable[[list[Job], T | None], None],
        *,
        window_s: float,
        idle_s: float,
        max_group: int,
        on_exit: Callable[[], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        idle_every_s: float = 10.0,
    ) -> None:
        self.handle = handle
        self.finish = finish
        self.window_s = window_s
        self.idle_s = idle_s
        self.max_group = max_group
        self.on_exit = on_exit  # on the writer thread once the queue is drained (dead-letter counts …)
        self.on_idle = on_idle  # on the writer thread after ``idle_every_s`` without input (the same)
        self.idle_every_s = idle_every_s
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()  # C: cheaper than queue.Queue
        self._thread: threading.Thread | None = None
        self._outages = Outages(log, "pipeline group")  # the database down: one line, not one per group
        self._done: queue.SimpleQueue[tuple[list[Job], T | None] | None] = queue.SimpleQueue()
        self._finisher: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the writer thread runs (else jobs are handled inline)."""
        return self._thread is not None

    def in_writer(self) -> bool:
        """Whether the calling thread is the writer thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the writer and acknowledgement threads."""
        if self._thread is None:
            self._finisher = threading.Thread(target=self._run_finish, name="gw-pipeline-acks", daemon=True)
            self._finisher.start()
            self._thread = threading.Thread(target=self._run, name="gw-pipeline", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Handle what is queued, then stop both threads."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._finisher is not None:
            self._done.put(None)
            self._finisher.join(timeout=30)
            self._finisher = None

    def put(self, job: Job) -> None:
        """Queue a job (handled inline when the writer does not run)."""
        if self._thread is None:
            self._group([job])
        else:
            self._queue.put(job)

    def _group(self, jobs: list[Job]) -> None:
        try:
            result: T | None = self.handle(jobs)
            self._outages.ok()
        except Exception as exc:  # never let the writer die; every job is answered
            self._outages.failed(exc)
            for job in jobs:
                for it in job.items:
                    if not it.outcome:
                        it.outcome, it.reason, it.message = "rejected", Reason.UNAVAILABLE, "internal error"
            result = None
        if self._finisher is None:
            self.finish(jobs, result)
        else:
            self._done.put((jobs, result))

    def _run_finish(self) -> None:
        while (done := self._done.get()) is not None:
            self.finish(*done)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.idle_every_s if self.on_idle is not None else None)
            except queue.Empty:
                assert self.on_idle is not None
                try:
                    self.on_idle()
                except Exception:  # never let the writer die
                    log.exception("writer idle work failed")
                continue
            if first is None:
                break
            jobs = [first]
            size = len(first.items)
            deadline = first.arrived + self.window_s
            idle = self.idle_s
            while size < self.max_group:
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
            self._group(jobs)
        if self.on_exit is not None:
            self.on_exit()
