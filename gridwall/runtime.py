"""The composition root: :func:`build` makes every running part of a GridWall process, in order.

settings → engines → city (context, point→grid index) → live state → counters → Socket.IO server →
task sender → pipeline → namespaces → web app (Flask + Dash, HTTP feeds, media) → chores.

Each part is given what it needs when it is made (constructor injection); nothing is assigned into a
part afterwards. ``app.py run`` (every ``--role``), the test servers (``tests/live_server.py``) and
the benchmark server (``bench/_server.py``) all call :func:`build`; a test replaces a part only at a
named seam of :class:`Seams`. The four roles differ in which parts they make:

============  ===========================  ==============================  ===========================
role          live state                   ingest (``/device``, HTTP)      ticks
============  ===========================  ==============================  ===========================
embedded      memory (feeds.live)          in-process pipeline             local broadcaster
web           Redis (feeds.redis_live)     stream appender (feeds.stream)  relay of the aggregator's
ingest        Redis                        stream consumer → pipeline      —
aggregator    Redis                        —                               producer under a Redis lock
============  ===========================  ==============================  ===========================
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from domain.index import PointGridIndex
from domain.lifecycle import Context
from feeds.chores import CounterFollower, MallocTrim, Ranking, Thinning, grids_per_street
from feeds.core import build_context, limit_malloc_arenas, settle_gc
from feeds.counters import DailyCounters
from feeds.ingest import PipelineConfig
from feeds.live import PATROL_EVERY, LiveState, MemoryLiveState, grid_areas, rebuild, supervisor_areas
from feeds.loop import BackgroundLoop
from feeds.pipeline import Pipeline
from gridwall.settings import Role, Settings
from store.build import stored_district
from store.db import create_engine, session_factory
from store.geography import load_index

if TYPE_CHECKING:
    from feeds.redis_live import RedisLiveState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seams:
    """The parts a test or a benchmark may give instead of the ones :func:`build` would make."""

    engine: Engine | None = None  # the write engine (default: from settings.db_url)
    read_engine: Engine | None = None  # pages and tokens (default: a read-only engine, or ``engine``)
    clock: Callable[[], datetime] | None = None  # the city's clock (tests move it)
    pipeline: PipelineConfig | None = None  # filters, group commit, dead-letter cap
    patrol_every: timedelta = PATROL_EVERY  # how often patrol-only grid changes reach a tick
    media: bool = True  # serve /api/v1/media and /media (the pipeline then checks references)
    media_dir: Path | None = None  # the folder whose media/ keeps photos and voice notes (default: data-dir)
    media_limits: Any = None  # feeds.media.MediaLimits
    session_ok: Callable[[], bool] | None = None  # /live: a desk session (default: dashboard.auth)
    secret_key: str | None = None  # Flask session key (default: <data-dir>/secrets.json)


@dataclass
class Runtime:
    """The running parts of one process, and their start and stop in dependency order."""

    settings: Settings
    role: Role
    engine: Engine
    ctx: Context
    adcode: str
    live: LiveState  # memory (embedded) or feeds.redis_live.RedisLiveState; every role has one
    pipeline: Any = None  # what /device, /api/v1 and the desk write through (the ingest path)
    broadcaster: Any = None  # embedded: the tick producer; web: the relay; aggregator: the Aggregator
    device: Any = None  # the /device namespace (embedded, web)
    counters: DailyCounters | None = None  # the daily-counter keeper (embedded)
    web: Any = None  # gridwall.web.WebApp (embedded, web)
    media: Any = None  # feeds.media.MediaStore (embedded, with a media folder)
    consumer: Any = None  # ingest: the stream consumer
    chores: list[BackgroundLoop] = field(default_factory=list)
    simulating: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Runtime:
        """Start the writer, the consumers, the ticks and the chores (in that order)."""
        if self.pipeline is not None:
            self.pipeline.start()
        if self.consumer is not None:
            self.consumer.start()
        if self.broadcaster is not None:
            self.broadcaster.start()
        for chore in self.chores:
            chore.start()
        # the roles that run the pipeline (an ingest process under CPython's default thresholds:
        # 1.4 s of full collections while it took in 80,000 fixes in 6 s)
        if self.role in ("embedded", "ingest"):
            settle_gc()
        return self

    def stop(self) -> None:
        """Stop in reverse order: chores, ticks, consumers, then drain the writer (idempotent)."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        for chore in self.chores:
            chore.stop()
        if self.broadcaster is not None:
            self.broadcaster.stop()
        if self.web is not None:  # end every websocket: a stopping server would wait for them
            self.web.socketio.server.eio.disconnect()
        if self.consumer is not None:
            self.consumer.stop()
        if self.pipeline is not None:
            self.pipeline.stop()


def _city(engine: Engine, settings: Settings) -> tuple[str, Context, PointGridIndex]:
    """The stored district, its lifecycle context and its point→grid index."""
    adcode = stored_district(engine)
    if adcode is None:
        raise LookupError("no district is built; run: python app.py init")
    ctx = build_context(engine, settings.edition, settings.policy())
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    return adcode, ctx, index


def _responsible(areas: dict[str, str | None], area_of_grid: dict[str, str | None]) -> dict[str, str]:
    """The supervisor in charge of each grid (the CJ/T 292 position counters charge them)."""
    person_of_area = {a: p for p, a in areas.items() if a}
    return {g: person_of_area[a] for g, a in area_of_grid.items() if a in person_of_area}


def build(settings: Settings, role: Role = "embedded", seams: Seams | None = None) -> Runtime:
    """Make every part of a ``role`` process from ``settings`` (started by :meth:`Runtime.start`)."""
    seams = seams or Seams()
    limit_malloc_arenas()  # before this process's threads exist
    engine = seams.engine or create_engine(settings.db_url)
    if role != "embedded" and settings.redis_url is None:
        raise ValueError(f"role {role} needs a Redis URL")
    parts = {"embedded": _embedded, "web": _web, "ingest": _ingest, "aggregator": _aggregator}.get(role)
    if parts is None:
        raise ValueError(f"unknown role {role!r}")
    runtime = parts(settings, engine, seams)
    runtime.chores.append(MallocTrim())  # every process: freed heap pages back to the system
    if runtime.web is not None:
        limit_dash_calls(runtime.web.dash)
    return runtime


# Dash callbacks (page renders, their live refreshes) one web process runs at once; the others wait.
# One Python thread runs at a time anyway: twelve renders over ~15,000 open cases interleaved each held
# their temporaries twelve times as long, and the worker kept the high-water (BENCHMARKS.md "Fuzz,
# full run #4")
DASH_CALLS_AT_ONCE = 2


def limit_dash_calls(app: Any, at_once: int = DASH_CALLS_AT_ONCE) -> threading.BoundedSemaphore:
    """Let at most ``at_once`` requests of the Dash app's ``_dash-update-component`` run at once."""
    server = app.server
    endpoint = app.config.routes_pathname_prefix + "_dash-update-component"
    view = server.view_functions[endpoint]
    turns = threading.BoundedSemaphore(at_once)

    @functools.wraps(view)
    def in_turn(*args: Any, **kwargs: Any) -> Any:
        with turns:
            return view(*args, **kwargs)

    server.view_functions[endpoint] = in_turn
    return turns


def _read_engine(settings: Settings, engine: Engine, seams: Seams) -> Engine:
    if seams.read_engine is not None:
        return seams.read_engine
    if seams.engine is not None:
        return seams.engine
    return create_engine(settings.db_url, write=False)


def _session_ok(seams: Seams) -> Callable[[], bool]:
    if seams.session_ok is not None:
        return seams.session_ok
    from dashboard.auth import session_ok

    return session_ok


def _embedded(settings: Settings, engine: Engine, seams: Seams) -> Runtime:
    from feeds.api import register_http_feeds
    from feeds.counters import CounterKeeper
    from feeds.media import media_blueprint
    from feeds.sockets import Broadcaster, Connections, DeviceNamespace, LiveNamespace, TaskSender, TokenWatch
    from gridwall.web import create_web_app, socket_server
    from store.counters import load_or_rebuild

    clock = seams.clock or (lambda: datetime.now(UTC))
    adcode, ctx, index = _city(engine, settings)
    areas = supervisor_areas(engine)
    live = MemoryLiveState(
        tz=ctx.calendar.tz, catalogue=ctx.catalogue, areas=areas, area_of_grid=grid_areas(engine),
        now=clock(), patrol_every=seams.patrol_every,
    )  # fmt: skip
    rebuild(engine, live, clock())
    aggregates, rebuilt = load_or_rebuild(engine, ctx, _responsible(areas, live.area_of_grid))
    if rebuilt:
        log.info("daily counters rebuilt from the case log")
    read = _read_engine(settings, engine, seams)  # pages, tokens and the ranking's reads
    counters = CounterKeeper(engine, aggregates, reader=read)
    simulating = threading.Event()  # set while the built-in simulation feeds this process (模拟数据)
    socketio = socket_server()
    connections = Connections()
    media = _media(settings, seams)  # photos and voice notes; the pipeline checks references against it
    pipeline = Pipeline(
        engine, index, ctx, live, config=seams.pipeline, clock=seams.clock,
        on_tasks=TaskSender(socketio, connections), counters=counters, media=media,
    )  # fmt: skip
    broadcaster = Broadcaster(
        socketio, live, interval=settings.interval, simulated=simulating.is_set, clock=seams.clock
    )
    device = DeviceNamespace(engine, pipeline, connections=connections)
    socketio.on_namespace(device)
    socketio.on_namespace(LiveNamespace(engine, broadcaster, session_ok=_session_ok(seams)))
    web = create_web_app(
        read, secret_key=_secret_key(settings, seams), socketio=socketio, live=live, pipeline=pipeline,
        counters=counters, simulated=simulating.is_set, trusted_proxies=settings.trusted_proxies,
        clock=seams.clock, data_dir=settings.data_dir,
    )  # fmt: skip
    register_http_feeds(web.server, read, pipeline)  # /api/v1, Open311
    if media is not None:
        web.server.register_blueprint(media_blueprint(read, media, pipeline=pipeline))  # /api/v1/media
    chores: list[BackgroundLoop] = [
        TokenWatch(device),  # a revoked handset is cut at once
        Thinning(engine, pipeline.config.retention, clock),
        Ranking(counters, live, grids_per_street(live.area_of_grid), ctx.calendar.tz, clock),
    ]
    return Runtime(
        settings, "embedded", engine, ctx, adcode, live=live, pipeline=pipeline, broadcaster=broadcaster,
        device=device, counters=counters, web=web, media=media, chores=chores, simulating=simulating,
    )  # fmt: skip


def _media(settings: Settings, seams: Seams) -> Any:
    """The media store under ``<data-dir>/media`` (or the seam's folder); None when media is off."""
    if not seams.media:
        return None
    from feeds.media import MediaStore

    folder = seams.media_dir if seams.media_dir is not None else settings.data_dir
    return MediaStore(folder / "media", seams.media_limits)


def _secret_key(settings: Settings, seams: Seams) -> str:
    if seams.secret_key is not None:
        return seams.secret_key
    from gridwall.settings import load_secrets

    return load_secrets(settings.data_dir)["secret_key"]


def _redis_live(engine: Engine, settings: Settings, ctx: Context) -> RedisLiveState:
    """The Redis live state of the stored city (shared by every scale-out process)."""
    from feeds.redis_live import RedisLiveState, connect

    assert settings.redis_url is not None
    return RedisLiveState(
        connect(settings.redis_url), prefix=settings.redis_prefix, tz=ctx.calendar.tz,
        catalogue=ctx.catalogue, areas=supervisor_areas(engine), area_of_grid=grid_areas(engine),
        now=datetime.now(UTC), patrol_every=timedelta(0),
    )  # fmt: skip


def _web(settings: Settings, engine: Engine, seams: Seams) -> Runtime:
    from feeds.aggregator import Relay, channel
    from feeds.api import register_http_feeds
    from feeds.sockets import DeviceNamespace, LiveNamespace, TokenWatch
    from feeds.stream import StreamPipeline
    from gridwall.web import create_web_app, socket_server

    adcode, ctx, index = _city(engine, settings)
    live = _redis_live(engine, settings, ctx)
    socketio = socket_server(settings.redis_url, channel(settings.redis_prefix))
    relay = Relay(socketio, live, interval=settings.interval)
    media = _media(
        settings, seams
    )  # the data folder's media/, shared by every web process (one host or a mount)
    pipeline = StreamPipeline(
        engine, index, ctx, live, stream=live.r, prefix=settings.redis_prefix, media=media
    )
    device = DeviceNamespace(engine, pipeline)
    socketio.on_namespace(device)
    socketio.on_namespace(LiveNamespace(engine, relay, session_ok=_session_ok(seams)))
    read = _read_engine(settings, engine, seams)
    web = create_web_app(
        read, secret_key=_secret_key(settings, seams), socketio=socketio, live=live, pipeline=pipeline,
        trusted_proxies=settings.trusted_proxies, clock=seams.clock, data_dir=settings.data_dir,
    )  # fmt: skip
    register_http_feeds(web.server, read, pipeline)
    if media is not None:  # photos of handsets and departments reach every web process's pages
        from feeds.media import media_blueprint

        web.server.register_blueprint(media_blueprint(read, media, pipeline=pipeline))
    return Runtime(
        settings, "web", engine, ctx, adcode, live=live, pipeline=pipeline, broadcaster=relay, device=device,
        web=web, media=media, chores=[TokenWatch(device)],
    )  # fmt: skip


def _ingest(settings: Settings, engine: Engine, seams: Seams) -> Runtime:
    from feeds.aggregator import queue_socketio
    from feeds.redis_live import connect
    from feeds.sockets import Connections, TaskSender
    from feeds.stream import StreamConsumer

    assert settings.redis_url is not None
    adcode, ctx, index = _city(engine, settings)
    live = _redis_live(engine, settings, ctx)
    # no counter keeper: its rows are absolute, one writer per database (the producing aggregator
    # follows the case log: feeds.chores.CounterFollower); no /device clients here, so tasks reach
    # handsets through their person rooms on the message queue, and no gateway
    tasks = TaskSender(queue_socketio(settings.redis_url, settings.redis_prefix), Connections())
    pipeline = Pipeline(engine, index, ctx, live, config=seams.pipeline, clock=seams.clock, on_tasks=tasks)
    consumer = StreamConsumer(connect(settings.redis_url), pipeline, prefix=settings.redis_prefix)
    return Runtime(settings, "ingest", engine, ctx, adcode, live=live, pipeline=pipeline, consumer=consumer)


def _aggregator(settings: Settings, engine: Engine, seams: Seams) -> Runtime:
    from feeds.aggregator import Aggregator, queue_socketio

    assert settings.redis_url is not None
    adcode, ctx, _ = _city(engine, settings)
    live = _redis_live(engine, settings, ctx)
    clock = seams.clock or (lambda: datetime.now(UTC))
    kw: dict[str, Any] = {} if settings.lock_ttl is None else {"ttl": settings.lock_ttl}
    queue = queue_socketio(settings.redis_url, settings.redis_prefix)
    agg = Aggregator(engine, live, queue, interval=settings.interval, **kw)
    retention = (seams.pipeline or PipelineConfig()).retention
    responsible = _responsible(live.areas, live.area_of_grid)
    chores: list[BackgroundLoop] = [
        CounterFollower(
            engine, ctx, responsible, live, grids_per_street(live.area_of_grid),
            leading=agg.leading.wait, takeovers=lambda: agg.takeovers, clock=clock,
        ),
        Thinning(engine, retention, clock, leading=agg.leading.is_set),
    ]  # fmt: skip
    return Runtime(settings, "aggregator", engine, ctx, adcode, live=live, broadcaster=agg, chores=chores)
