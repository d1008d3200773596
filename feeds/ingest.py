"""The one ingest interface: what ``/device``, ``/api/v1``, Open311, media uploads and the desk call.

Two implementations, neither a subclass of the other:

- ``feeds.pipeline.Pipeline`` (embedded, ``--role ingest``): every step in this process; the
  acknowledgement follows the commit (``acks_after_commit``);
- ``feeds.stream.StreamPipeline`` (``--role web``): the stateless steps here, then an append to the
  ingest stream; acknowledged after the append, committed later by an ingest process.

Callers annotate with :class:`Ingest` and never need to know which one they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from domain.supervisor import SupervisorRules

if TYPE_CHECKING:
    from domain.index import PointGridIndex
    from domain.lifecycle import Context
    from feeds.checks import Speaker
    from feeds.media import MediaStore
    from feeds.schemas import Reason


@dataclass(frozen=True)
class PipelineConfig:
    """Filters, group commit and dead-letter settings."""

    future_tolerance: timedelta = timedelta(seconds=60)
    retention: timedelta = timedelta(days=7)  # fixes older than this are refused (too_old)
    window_s: float = 0.02  # group-commit window (the longest a group stays open)
    idle_s: float = 0.0015  # a group closes earlier once no input arrived for this long
    max_group: int = 5000  # inputs per transaction
    reject_cap: int = 100  # dead-letter rows per source per minute
    flush_every_s: float = 10.0  # without input for this long, finished minutes' count rows are written
    recent_per_supervisor: int = 64  # recent fix instants kept to tell a retry from a clash
    rules: SupervisorRules = field(default_factory=SupervisorRules)


Reply = Callable[[dict[str, Any]], None]  # receives an acknowledgement (``feeds.intake.Ack.as_dict``)


class Ingest(Protocol):
    """Submit inputs, record refusals, start and stop: the write path as its callers see it."""

    index: PointGridIndex  # the grids inputs are located in
    ctx: Context  # catalogue, calendar, policy of the lifecycle rules
    config: PipelineConfig  # filters, group commit, dead letters
    stats: dict[str, int]
    clock: Callable[[], datetime]

    @property
    def acks_after_commit(self) -> bool:
        """True when an acknowledgement means committed (False: only appended to the stream)."""
        ...

    @property
    def media(self) -> MediaStore | None:
        """The media store references are checked against (None: checked for form only)."""
        ...

    def submit(self, kind: str, raw: Any, speaker: Speaker, *, source: str | None = None) -> dict[str, Any]:
        """Run one event through and return its acknowledgement (blocks)."""
        ...

    def submit_nowait(self, kind: str, raw: Any, speaker: Speaker, reply: Reply, *, source: str) -> None:
        """``submit`` whose acknowledgement goes to ``reply`` later (no thread waits)."""
        ...

    def reject(self, kind: str, raw: Any, source: str, reason: Reason, message: str) -> dict[str, Any]:
        """Answer and dead-letter an input refused before parsing (rate limits, bad tokens)."""
        ...

    def reject_nowait(
        self, kind: str, raw: Any, source: str, reason: Reason, message: str, reply: Reply
    ) -> None:
        """``reject`` whose acknowledgement goes to ``reply``."""
        ...

    def start(self) -> None:
        """Start the threads."""
        ...

    def stop(self) -> None:
        """Finish what is queued and stop."""
        ...
