"""Slow background chores of a deployment: thinning old fixes, the street ranking, the daily counters,
giving freed memory back.

Each is a :class:`feeds.loop.BackgroundLoop` the composition root (:mod:`gridwall.runtime`) builds and
starts; none holds state another part reads except through the live state it is given. In scale-out
they run in the aggregator and only while it holds the producer lock (``leading``), so exactly one
process of a deployment does each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from domain.lifecycle import Context
from feeds.core import trim_malloc
from feeds.counters import DailyCounters
from feeds.live import LiveWriter
from feeds.loop import BackgroundLoop
from feeds.outage import Outages
from store.tracks import thin_positions

log = logging.getLogger(__name__)

THIN_EVERY = 3600.0  # seconds between passes that thin fixes past the retention period
RANK_EVERY = 60.0  # seconds between street-ranking refreshes (embedded)
COUNT_EVERY = 5.0  # seconds between daily-counter updates from the case log (scale-out aggregator)
CHECK_EVERY = 300.0  # seconds between checks that the counters hold every event below their mark
TRIM_EVERY = 60.0  # seconds between giving glibc's free heap pages back to the system


def always() -> bool:
    """A deployment part that never stands by (embedded: it is the only process)."""
    return True


def grids_per_street(area_of_grid: Mapping[str, Any]) -> dict[str, int]:
    """How many unit grids each street (the code's first 9 digits) has: the ranking's denominator."""
    out: dict[str, int] = {}
    for g in area_of_grid:
        out[g[:9]] = out.get(g[:9], 0) + 1
    return out


class Thinning(BackgroundLoop):
    """Hourly: thin fixes older than the retention period to one a minute (store.tracks)."""

    thread_name = "gw-maintenance"

    def __init__(
        self,
        engine: Engine,
        retention: timedelta,
        clock: Callable[[], datetime],
        *,
        leading: Callable[[], bool] = always,
        every: float = THIN_EVERY,
    ) -> None:
        super().__init__()
        self.engine, self.retention, self.clock, self.leading, self.every = (
            engine, retention, clock, leading, every,
        )  # fmt: skip

    def _run(self) -> None:
        outages = Outages(log, "thinning positions")
        while not self._stop.wait(self.every):
            if not self.leading():
                continue
            try:
                thin_positions(self.engine, self.clock() - self.retention)
                outages.ok()
            except Exception as exc:
                outages.failed(exc)


class MallocTrim(BackgroundLoop):
    """Every minute: glibc's free heap pages back to the system (:func:`feeds.core.trim_malloc`), in
    every process: what a burst of work freed in the middle of the heap stays resident otherwise."""

    thread_name = "gw-malloc-trim"

    def __init__(self, trim: Callable[[], bool] = trim_malloc, *, every: float = TRIM_EVERY) -> None:
        super().__init__()
        self.trim, self.every = trim, every

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if not self.trim():
                return  # no glibc: nothing to give back


class Ranking(BackgroundLoop):
    """Every minute: the wall's street ranking, month to date, from the daily counters, and its
    statistics (:mod:`feeds.wallstats`)."""

    thread_name = "gw-ranking"

    def __init__(
        self,
        counters: DailyCounters,  # the keeper (embedded) or the case-log follower
        live: LiveWriter,
        per_street: dict[str, int],
        tz: ZoneInfo,
        clock: Callable[[], datetime],
        *,
        every: float = RANK_EVERY,
    ) -> None:
        super().__init__()
        self.counters, self.live, self.per_street, self.tz, self.clock, self.every = (
            counters, live, per_street, tz, clock, every,
        )  # fmt: skip

    def _run(self) -> None:
        outages = Outages(log, "street ranking")
        while True:
            try:
                now = self.clock()
                self.live.set_ranking(self.counters.street_ranking(now, self.per_street))
                self.live.set_stats(self.counters.wall_stats(now))
                outages.ok()
            except Exception as exc:
                outages.failed(exc)
            if self._stop.wait(self.every):
                return


class CounterFollower(BackgroundLoop):
    """Scale-out, by the producing aggregator: daily counters from the case log, then the ranking.

    A new lead (``takeovers`` changed) starts a new :class:`feeds.counters.LogFollower`, which reloads
    what the previous leader saved; a standing-by aggregator drops its follower.
    """

    thread_name = "gw-counters"

    def __init__(
        self,
        engine: Engine,
        ctx: Context,
        responsible: dict[str, str],
        live: LiveWriter,
        per_street: dict[str, int],
        *,
        leading: Callable[[float], bool],
        takeovers: Callable[[], int],
        clock: Callable[[], datetime],
        rank_every: float = 300.0,
    ) -> None:
        super().__init__()
        self.engine, self.ctx, self.responsible, self.live, self.per_street = (
            engine, ctx, responsible, live, per_street,
        )  # fmt: skip
        self.leading, self.takeovers, self.clock, self.rank_every = leading, takeovers, clock, rank_every

    def _run(self) -> None:
        from feeds.counters import LogFollower, Superseded

        follower: LogFollower | None = None
        lead = 0  # the takeover the follower belongs to
        next_rank = next_check = 0.0
        outages = Outages(log, "daily counters")
        while not self._stop.is_set():
            if not self.leading(5.0):
                follower = None
                continue
            try:
                if follower is None or lead != self.takeovers():
                    follower, lead = LogFollower(self.engine, self.ctx, self.responsible), self.takeovers()
                    if follower.start():
                        log.info("daily counters rebuilt from the case log")
                    next_check = time.monotonic() + CHECK_EVERY
                    next_rank = 0.0
                else:
                    follower.follow()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + CHECK_EVERY
                    follower.check()
                if time.monotonic() >= next_rank:
                    next_rank = time.monotonic() + self.rank_every
                    now = self.clock()
                    self.live.set_ranking(follower.street_ranking(now, self.per_street))
                    self.live.set_stats(follower.wall_stats(now))
                outages.ok()
            except Superseded as exc:
                log.warning("daily counters: %s; reloading", exc)
                follower = None
            except Exception as exc:
                outages.failed(exc)
                if follower is not None and follower.saved is None:
                    follower = None  # not started: start again
            self._stop.wait(COUNT_EVERY)
