"""The live keeper of the CJ/T 292 daily counters: every committed case event, saved every few seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.evaluation import CaseInfo, DailyAggregates, ObjectType, evaluation_table
from domain.lifecycle import CaseEvent, CaseState
from store.counters import last_event_id, save_rows
from store.models import Case

log = logging.getLogger(__name__)


class CounterKeeper:
    """Adds committed case events to the daily aggregates and saves the changed rows (writer thread)."""

    def __init__(self, engine: Engine, aggregates: DailyAggregates, *, save_every: float = 5.0) -> None:
        self.engine = engine
        self.aggregates = aggregates
        self.save_every = save_every
        self._saved = time.monotonic()
        self._lock = threading.Lock()
        with engine.connect() as conn:
            self._grid: dict[str, str] = {
                cid: g for cid, g in conn.execute(select(Case.id, Case.grid_code).where(Case.open)) if g
            }

    def add(self, state: CaseState, events: Sequence[CaseEvent], grid: str | None) -> None:
        """Count a committed command's events (cases without a grid are in no region yet)."""
        grid = grid or self._grid.get(state.id)
        if grid is None:
            return
        with self._lock:
            info = CaseInfo.from_state(state, grid)
            for ev in events:
                self.aggregates.add(info, ev, state)
            if state.is_open:
                self._grid[state.id] = grid
            else:
                self._grid.pop(state.id, None)

    def street_ranking(self, today: date, grids_per_street: Mapping[str, int]) -> list[dict[str, Any]]:
        """Streets by CJ/T 292 composite score, month to date (best first): code, score, grade, colour."""
        with self._lock:
            table = evaluation_table(
                self.aggregates, ObjectType.STREET, None, today.replace(day=1), today,
                grids_per_region=grids_per_street,
            )  # fmt: skip
        out = []
        for row in table.itertuples():
            score = None if row.score is None or row.score != row.score else round(float(row.score), 1)
            out.append({"code": row.object_id, "score": score, "grade": row.grade, "colour": row.colour})
        return out

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
        except Exception:
            log.exception("saving daily counters failed; will retry")
            with self._lock:
                self.aggregates.dirty |= set(rows)
            return 0
        return len(rows)
