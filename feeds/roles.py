"""``python app.py run --role web|aggregator|ingest --redis URL --db postgresql://…``: one deployment part.

- ``web``: Flask + Dash + Socket.IO (``async_mode="threading"``, message queue on Redis, channel
  :data:`feeds.aggregator.CHANNEL`); ``/device`` and ``/api/v1`` run the stateless steps and append
  to the ingest stream (:class:`feeds.stream.StreamPipeline`); ``/live`` only relays
  (:class:`feeds.aggregator.RelayBroadcaster`).
- ``ingest``: a member of the stream's consumer group: persists to the database through the
  pipeline, then publishes to the Redis live state and sends tasks through the message queue.
- ``aggregator``: no clients; stands by until it holds the producer lock, then produces the ticks of
  the whole deployment (:class:`feeds.aggregator.Aggregator`), keeps the CJ/T 292 daily counters
  from the case log (:class:`feeds.counters.LogFollower`) and refreshes the street ranking.

Run any number of web processes (one worker each, behind nginx ``ip_hash``), one or more ingest
processes and two aggregators (one ticks, one stands by). See README "Production" and ``deploy/``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from feeds.aggregator import CHANNEL, Aggregator, RelayBroadcaster, queue_socketio
from feeds.core import LiveCore, build_context
from feeds.live import grid_areas, supervisor_areas
from feeds.pipeline import Pipeline
from feeds.redis_live import RedisLiveState, connect
from feeds.sockets import DeviceNamespace, LiveNamespace
from feeds.stream import StreamConsumer, StreamPipeline
from store.build import stored_district
from store.db import session_factory
from store.geography import load_index

log = logging.getLogger(__name__)
RANK_EVERY = 300.0  # seconds between street-ranking refreshes
COUNT_EVERY = 5.0  # seconds between daily-counter updates from the case log (producing aggregator)
CHECK_EVERY = 300.0  # seconds between checks that the counters hold every event below their mark


def redis_live(engine: Engine, redis_url: str, prefix: str, edition: str = "cjt214") -> RedisLiveState:
    """The Redis live state of the stored city."""
    ctx = build_context(engine, edition)
    return RedisLiveState(
        connect(redis_url), prefix=prefix, tz=ctx.calendar.tz, catalogue=ctx.catalogue,
        areas=supervisor_areas(engine), area_of_grid=grid_areas(engine), now=datetime.now(UTC),
        patrol_every=timedelta(0),
    )  # fmt: skip


def start_web_core(
    engine: Engine, socketio: Any, redis_url: str, *, prefix: str = "gw", edition: str = "cjt214",
    interval: float = 1.0, session_ok: Any = lambda: False,
) -> LiveCore:  # fmt: skip
    """``/device`` through the pipeline (database, then Redis) and a relaying ``/live`` on ``socketio``."""
    adcode = stored_district(engine)
    if adcode is None:
        raise LookupError("no district is built; run: python app.py init")
    ctx = build_context(engine, edition)
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    live = redis_live(engine, redis_url, prefix, edition)
    relay = RelayBroadcaster(socketio, live, interval=interval)
    pipeline = StreamPipeline(engine, index, ctx, live, stream=live.r, prefix=prefix)
    device = DeviceNamespace(engine, pipeline)
    socketio.on_namespace(device)
    socketio.on_namespace(LiveNamespace(engine, relay, session_ok=session_ok))
    pipeline.start()
    relay.start()
    return LiveCore(ctx, live, pipeline, relay, device, adcode)


def start_ingest(
    engine: Engine, redis_url: str, *, prefix: str = "gw", edition: str = "cjt214"
) -> tuple[StreamConsumer, Pipeline]:
    """A consumer of the ingest stream writing through its own pipeline (database, then Redis)."""
    adcode = stored_district(engine)
    if adcode is None:
        raise LookupError("no district is built; run: python app.py init")
    ctx = build_context(engine, edition)
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    live = redis_live(engine, redis_url, prefix, edition)
    emitter = queue_socketio(redis_url)
    holder: dict[str, DeviceNamespace] = {}
    # no CounterKeeper: its rows are absolute, one writer per database (the producing aggregator
    # follows the case log: feeds.counters.LogFollower)
    pipeline = Pipeline(
        engine, index, ctx, live, on_tasks=lambda tasks: holder["device"].send_tasks(emitter, tasks)
    )
    holder["device"] = DeviceNamespace(engine, pipeline)  # not served: its task sender, to person rooms
    consumer = StreamConsumer(connect(redis_url), pipeline, prefix=prefix)
    pipeline.start()
    consumer.start()
    return consumer, pipeline


def start_aggregator(
    engine: Engine, redis_url: str, *, prefix: str = "gw", edition: str = "cjt214", interval: float = 1.0,
    ttl: float | None = None,
) -> Aggregator:  # fmt: skip
    """Stand by for the producer lock; tick, count and rank while holding it."""
    from feeds.counters import LogFollower, Superseded

    live = redis_live(engine, redis_url, prefix, edition)
    kw: dict[str, Any] = {} if ttl is None else {"ttl": ttl}
    agg = Aggregator(engine, live, queue_socketio(redis_url), interval=interval, **kw)
    ctx = build_context(engine, edition)
    grids_per_street: dict[str, int] = {}
    for g in live.area_of_grid:
        grids_per_street[g[:9]] = grids_per_street.get(g[:9], 0) + 1
    person_of_area = {a: p for p, a in live.areas.items() if a}
    responsible = {g: person_of_area[a] for g, a in live.area_of_grid.items() if a in person_of_area}
    stop = threading.Event()

    def count() -> None:  # by the producing aggregator: daily counters from the case log, the ranking
        follower: LogFollower | None = None
        lead = 0  # the takeover the follower belongs to: a new lead reloads what another leader saved
        next_rank = next_check = 0.0
        while not stop.is_set():
            if not agg.leading.wait(5.0):
                follower = None
                continue
            try:
                if follower is None or lead != agg.takeovers:
                    follower, lead = LogFollower(engine, ctx, responsible), agg.takeovers
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
                    next_rank = time.monotonic() + RANK_EVERY
                    today = datetime.now(UTC).astimezone(ctx.calendar.tz).date()
                    live.set_ranking(follower.street_ranking(today, grids_per_street))
            except Superseded as exc:
                log.warning("daily counters: %s; reloading", exc)
                follower = None
            except Exception:
                log.exception("daily counters failed")
                if follower is not None and follower.saved is None:
                    follower = None  # not started: start again
            stop.wait(COUNT_EVERY)

    def maintain() -> None:  # hourly, by the producing aggregator: thin fixes past the retention period
        from feeds.pipeline import PipelineConfig
        from store.tracks import thin_positions

        retention = PipelineConfig().retention
        while not stop.wait(3600):
            if agg.leading.is_set():
                try:
                    thin_positions(engine, datetime.now(UTC) - retention)
                except Exception:
                    log.exception("thinning positions failed")

    threading.Thread(target=count, name="gw-counters", daemon=True).start()
    threading.Thread(target=maintain, name="gw-maintenance", daemon=True).start()
    agg.start()
    return agg


def _wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass


def run_role(args: argparse.Namespace, db_url: str, secret: dict[str, str]) -> int:
    """Run one role until SIGTERM/SIGINT."""
    from store.db import create_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    engine = create_engine(db_url)
    prefix = args.redis_prefix
    if args.role == "ingest":
        consumer, pipeline = start_ingest(engine, args.redis, prefix=prefix, edition=args.catalogue)
        print(f"{consumer.name}: standing by for the ingest stream", flush=True)
        _wait_for_signal()
        consumer.stop()
        pipeline.stop()
        return 0
    if args.role == "aggregator":
        agg = start_aggregator(engine, args.redis, prefix=prefix, edition=args.catalogue, ttl=args.lock_ttl)
        print(f"aggregator {agg.lock.token[:8]}: standing by for the producer lock", flush=True)
        _wait_for_signal()
        agg.stop()
        return 0
    from dashboard.app import create_web_app
    from feeds.api import register_http_feeds

    web = create_web_app(
        create_engine(db_url, write=False), secret_key=secret["secret_key"], message_queue=args.redis,
        channel=CHANNEL,
    )  # fmt: skip
    http_feeds = register_http_feeds(web.server, create_engine(db_url, write=False))
    core = start_web_core(engine, web.socketio, args.redis, prefix=prefix, edition=args.catalogue)
    web.live = core.live
    http_feeds.attach(core.pipeline)
    host, port = args.host, args.port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    web.cache.current()
    print(f"wall: http://{shown}:{port}/wall?token={secret['kiosk_token']}", flush=True)
    print(f"desk: http://{shown}:{port}/desk", flush=True)
    web.socketio.run(
        web.server, host=host, port=port, debug=False, use_reloader=False, log_output=False,
        allow_unsafe_werkzeug=True,
    )  # fmt: skip
    return 0
