"""The live grouping of duplicate problems (issue 21): each new report with a point gets its likeliest
earlier twin among the open reports (``duplicate_of`` on the case), found by
:class:`domain.duplicates.DuplicateIndex`.

The pipeline asks :meth:`DuplicateWatch.candidate` before it applies a report (so the candidate is
written with the case, in the same transaction) and tells :meth:`DuplicateWatch.committed` what each
commit changed (a case that closes leaves the index; a report, or a case placed by 定位, joins it).
The index is the writer thread's alone; it is loaded from the database on first use: the open cases
of the window, and the reports of the trailing weeks for the background rates. Two reports of one
problem in the same group (a few milliseconds apart) do not see each other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from domain.duplicates import Candidate, DuplicateIndex, DuplicateRules, OpenReport
from domain.lifecycle import Action, CaseEvent, CaseState, Source
from feeds.live import Place
from store.models import Case

log = logging.getLogger(__name__)


def open_report(state: CaseState, lon: float, lat: float) -> OpenReport:
    """What the index keeps of a case."""
    return OpenReport(
        state.id, state.kind.value, state.class_code, lon, lat, state.reported_at, state.component,
        state.reporter if state.source is Source.SUPERVISOR else None,
    )  # fmt: skip


class DuplicateWatch:
    """The open reports of the district, for the pipeline's writer thread."""

    def __init__(self, engine: Engine, rules: DuplicateRules | None = None, *, lat0: float = 39.9) -> None:
        self.engine = engine
        self.index = DuplicateIndex(rules, lat0=lat0)
        self._loaded = False
        self._last_expire: datetime | None = None

    def load(self, conn: Connection, now: datetime) -> int:
        """Read the open cases of the window and the reports of the trailing weeks (on the writer's own
        connection, inside its transaction); how many are open."""
        rules = self.index.rules
        since = now - timedelta(days=rules.rate_days)
        cols = (Case.id, Case.kind, Case.class_code, Case.lon, Case.lat, Case.reported_at, Case.component_id,
                Case.source, Case.reporter, Case.open)  # fmt: skip
        q = select(*cols).where(Case.reported_at >= since, Case.lon.is_not(None)).order_by(Case.reported_at)
        n = 0
        for cid, kind, code, lon, lat, at, obj, source, reporter, is_open in conn.execute(q):
            if lon is None or lat is None:
                continue
            at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            sup = reporter if source == Source.SUPERVISOR.value else None
            r = OpenReport(cid, kind, code, float(lon), float(lat), at, obj, sup)
            self.index.rates.count(r)
            if is_open and now - at <= rules.window:
                self.index.add(r, count=False)
                n += 1
        self._loaded = True
        return n

    def candidate(self, conn: Connection, state_data: dict[str, object], case_id: str, at: datetime,
                  place: Place | None, reporter: str, source: str) -> Candidate | None:  # fmt: skip
        """The likeliest earlier open report a new report repeats, or None (no point, or none near)."""
        if place is None or place.lon is None or place.lat is None:
            return None
        if not self._loaded:
            self.load(conn, at)
        obj = state_data.get("component")
        r = OpenReport(
            case_id, str(state_data.get("kind", "")), str(state_data.get("class_code", "")), place.lon,
            place.lat, at, str(obj) if obj else None, reporter if source == Source.SUPERVISOR.value else None,
        )  # fmt: skip
        found = self.index.candidates(r, limit=1)
        return found[0] if found else None

    def committed(self, cases: Iterable[tuple[CaseState, tuple[CaseEvent, ...], Place | None]]) -> None:
        """After a commit: closed cases leave, new (or newly placed) open reports join."""
        if not self._loaded:
            return  # loaded on the first report, with everything committed before it
        latest: datetime | None = None
        for state, events, place in cases:
            if not state.is_open:
                self.index.discard(state.id)
                continue
            joins = any(e.action in (Action.REPORT, Action.LOCATE) for e in events)
            if joins and place is not None and place.lon is not None and place.lat is not None:
                self.index.add(open_report(state, place.lon, place.lat),
                               count=any(e.action is Action.REPORT for e in events))  # fmt: skip
                latest = max(latest or state.reported_at, state.reported_at)
        hour = timedelta(hours=1)
        if latest is not None and (self._last_expire is None or latest - self._last_expire > hour):
            self._last_expire = latest
            self.index.expire(latest)
