"""The pipeline's last step: what a commit changed, told to the live state, the counters and the devices.

The pipeline publishes only after its transaction committed, through one small interface,
:class:`Publisher`: accepted fixes (on the acknowledgement thread) and the rest of a group's changes
(applied case transitions, acknowledged tasks, tasks to send). A failed transaction publishes nothing.
:class:`LivePublisher` is the one implementation: the live state (memory or Redis), the CJ/T 292
daily counters, the task sender (``feeds.sockets.DeviceNamespace``) and the "something changed" hook
of the tick broadcaster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from domain.lifecycle import CaseEvent, CaseState
from domain.supervisor import Fix
from feeds.counters import CounterKeeper
from feeds.live import LiveWriter, Place  # feeds.stream imports LiveWriter from here too
from feeds.outage import Outages

log = logging.getLogger(__name__)


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


@dataclass
class Published:
    """What one committed transaction changed, to publish."""

    fixes: list[Fix] = field(default_factory=list)
    cases: list[tuple[CaseState, tuple[CaseEvent, ...], Place | None]] = field(default_factory=list)
    tasks: list[TaskOut] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)  # cases whose task a handset acknowledged
    handovers: list[datetime] = field(default_factory=list)  # instants of handovers opened or acknowledged

    def add(self, other: Published) -> None:
        """Take in another transaction's changes (the one-by-one retry of a failed group)."""
        self.fixes += other.fixes
        self.cases += other.cases
        self.tasks += other.tasks
        self.acked += other.acked
        self.handovers += other.handovers


class Publisher(Protocol):
    """Where the pipeline tells what a commit changed."""

    def changes(self, pub: Published) -> None:
        """Case transitions, acknowledged tasks and tasks to send (the writer, after commit)."""
        ...

    def fixes(self, fixes: Sequence[Fix]) -> None:
        """Accepted fixes (the acknowledgement thread, after commit, before the acknowledgements)."""
        ...

    def close(self) -> None:
        """The writer stopped: save what is buffered."""
        ...


class LivePublisher:
    """Live state, daily counters, tasks to devices and the broadcaster's wake-up."""

    def __init__(
        self,
        live: LiveWriter,
        *,
        counters: CounterKeeper | None = None,
        on_tasks: Callable[[Sequence[TaskOut]], None] | None = None,
        on_published: Callable[[], None] | None = None,
    ) -> None:
        self.live = live
        self._fix_outages = Outages(log, "live state: applying fixes")
        self.counters = counters  # CJ/T 292 daily counters, fed after each commit
        self.on_tasks = on_tasks
        self.on_published = on_published

    def changes(self, pub: Published) -> None:
        """Counters, then the live state, then tasks; wake the broadcaster when no fixes will."""
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
        if pub.handovers and self.counters is not None:  # the wall's 交班 line now, not at the minute
            try:
                self.live.set_stats(self.counters.wall_stats(max(pub.handovers)))
            except Exception:
                log.exception("refreshing the wall's statistics after a handover failed")
        # with fixes: in ``fixes``
        if self.on_published is not None and (pub.cases or pub.acked) and not pub.fixes:
            self.on_published()

    def fixes(self, fixes: Sequence[Fix]) -> None:
        """Fixes into the live state, then wake the broadcaster."""
        if not fixes:
            return
        try:
            self.live.apply_fixes(fixes)
            self._fix_outages.ok()
        except Exception as exc:  # Redis down: the fixes are stored; the state catches up after
            self._fix_outages.failed(exc)
        if self.on_published is not None:
            self.on_published()

    def close(self) -> None:
        """Save the daily counters."""
        if self.counters is not None:
            self.counters.save(force=True)
