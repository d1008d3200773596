"""The live core of one process: pipeline, live state, ``/device`` and ``/live``, the tick producer.

:func:`start_live_core` composes them on an existing Flask-SocketIO server, after rebuilding the
live state from the database (so a restart shows what was shown before).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask_socketio import SocketIO
from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from domain.lifecycle import Context
from domain.workcalendar import load_calendar
from feeds.counters import CounterKeeper
from feeds.ingest import Ingest
from feeds.live import PATROL_EVERY, MemoryLiveState, grid_areas, rebuild, supervisor_areas
from feeds.pipeline import Pipeline, PipelineConfig
from feeds.sockets import Broadcaster, DeviceNamespace, LiveNamespace
from store.build import stored_district
from store.cases import sync_departments
from store.counters import load_or_rebuild
from store.db import session_factory, transaction
from store.geography import load_index
from store.tracks import thin_positions

log = logging.getLogger(__name__)


@dataclass
class LiveCore:
    """The running live core."""

    ctx: Context
    live: MemoryLiveState
    pipeline: Ingest
    broadcaster: Broadcaster
    device: DeviceNamespace
    adcode: str
    counters: CounterKeeper | None = None
    simulating: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Stop ticks and drain the pipeline."""
        self.stopped.set()
        self.broadcaster.stop()
        self.pipeline.stop()


def build_context(engine: Engine, edition: str = "cjt214") -> Context:
    """The lifecycle context of the stored city: catalogue (departments synced) and calendar."""
    catalogue = load_catalogue(edition)
    with transaction(engine) as s:
        sync_departments(s, catalogue)
    return Context(catalogue=catalogue, calendar=load_calendar())


def start_live_core(
    engine: Engine,
    socketio: SocketIO,
    *,
    edition: str = "cjt214",
    interval: float = 1.0,
    config: PipelineConfig | None = None,
    clock: Callable[[], datetime] | None = None,
    session_ok: Callable[[], bool] = lambda: False,
    patrol_every: timedelta = PATROL_EVERY,
) -> LiveCore:
    """Rebuild the live state, start the writer and the tick producer, register the namespaces."""
    adcode = stored_district(engine)
    if adcode is None:
        raise LookupError("no district is built; run: python app.py init")
    ctx = build_context(engine, edition)
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    now = (clock or (lambda: datetime.now(UTC)))()
    areas = supervisor_areas(engine)
    live = MemoryLiveState(
        tz=ctx.calendar.tz,
        catalogue=ctx.catalogue,
        areas=areas,
        area_of_grid=grid_areas(engine),
        now=now,
        patrol_every=patrol_every,
    )
    rebuild(engine, live, now)
    person_of_area = {a: p for p, a in areas.items() if a}  # the supervisor in charge of each grid
    responsible = {g: person_of_area[a] for g, a in live.area_of_grid.items() if a in person_of_area}
    aggregates, rebuilt = load_or_rebuild(engine, ctx, responsible)
    if rebuilt:
        log.info("daily counters rebuilt from the case log")
    counters = CounterKeeper(engine, aggregates)
    simulating = threading.Event()
    broadcaster = Broadcaster(socketio, live, interval=interval, simulated=simulating.is_set, clock=clock)
    holder: dict[str, DeviceNamespace] = {}
    pipeline = Pipeline(
        engine,
        index,
        ctx,
        live,
        config=config,
        clock=clock,
        on_tasks=lambda tasks: holder["device"].send_tasks(socketio, tasks),
        counters=counters,
    )
    device = DeviceNamespace(engine, pipeline)
    holder["device"] = device
    socketio.on_namespace(device)
    socketio.on_namespace(LiveNamespace(engine, broadcaster, session_ok=session_ok))
    pipeline.start()
    broadcaster.start()
    core = LiveCore(ctx, live, pipeline, broadcaster, device, adcode, counters, simulating)
    retention = pipeline.config.retention
    tick_clock = clock or (lambda: datetime.now(UTC))

    def maintain() -> None:  # hourly: thin fixes past the retention period to one a minute
        while not core.stopped.wait(3600):
            try:
                thin_positions(engine, tick_clock() - retention)
            except Exception:
                log.exception("thinning positions failed")

    threading.Thread(target=maintain, name="gw-maintenance", daemon=True).start()
    grids_per_street: dict[str, int] = {}
    for g in live.area_of_grid:
        grids_per_street[g[:9]] = grids_per_street.get(g[:9], 0) + 1

    def rank() -> None:  # the wall's street ranking, month to date, every minute
        while True:
            try:
                today = tick_clock().astimezone(ctx.calendar.tz).date()
                live.set_ranking(counters.street_ranking(today, grids_per_street))
            except Exception:
                log.exception("street ranking failed")
            if core.stopped.wait(60):
                return

    threading.Thread(target=rank, name="gw-ranking", daemon=True).start()
    settle_gc()
    return core


GC_THRESHOLDS = (20_000, 50, 100)  # CPython's default (2,000, 10, 10) collects every few ms at full ingest


def settle_gc() -> None:
    """Move what start-up loaded (city, index, live state) out of the collector's way; collect less often.

    A server that has loaded its city keeps those objects for its life: ``gc.freeze`` stops every full
    collection from walking them again, and a higher first threshold spaces out the young collections
    the ingest path triggers with its short-lived objects (python -m bench ingest).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
