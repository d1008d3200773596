"""Fan-out (issue 4): 10,000 supervisors' fixes at 2,000/s to 50 wall screens, ticks vs one event per fix.

Setup: Chaoyang (``build_city(engine, BuildRequest(district="110105", area_size=5))``: 10,952
responsibility areas of about 5 unit grids) in a SQLite file in WAL mode, one supervisor per area by
``provision_embedded``, a gateway token with scope ``*``. The first 10,000 supervisors report.

Per mode, a fresh copy of the database and a fresh server (``python -m bench._server``, a
subprocess, so its CPU time is its own):

* **ticks** (production): ``start_live_core`` as composed by ``app.py run``; the 1 s ``tick``
  carries the supervisors that moved (columnar) to room ``wall``;
* **naive** (baseline, bench only): the same server with ticks stopped and one Socket.IO ``fix``
  event per accepted fix emitted to room ``wall`` (``bench._server --naive``).

Load: 4 python-socketio ``AsyncClient`` gateway connections in this process send ``positions``
batches of 25 fixes every 50 ms each (2,000 fixes/s, every supervisor every 5 s), each fix's
instant ``at`` = its send time in epoch milliseconds. Screens: 50 raw Engine.IO websocket clients
(aiohttp, one asyncio process) with the kiosk token, all in room ``wall``; they count bytes,
check that ``seq`` has no gaps and note when a fix of one of 500 tagged supervisors (every 20th)
first shows up. Latency = that receive time − the fix's send time (same host clock). A wall tick
carries a supervisor's id and position but not the fix's instant (``feeds.ticks.WALL_SUP_COLUMNS``),
so a tick's row is matched to the gateways' send log by supervisor and position (see
:func:`tick_latencies`); a ``fix`` event carries ``at`` in ms.
Server CPU = process CPU seconds / wall time over the sending window. Server, screens and
gateways share the machine's 2 cores.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import socketio
from rich import box
from rich.table import Table

from bench import FAIL, INFO, PASS, Result, console, judged
from bench._server import (
    City,
    copy_city,
    cpu_seconds,
    load_line,
    percentile,
    prepare_city,
    server_stats,
    start_server,
    stop_server,
)

SUPERVISORS = 10_000
RATE = 2_000  # fixes per second, all gateways together
GATEWAYS = 4
PERIOD = 0.05  # seconds between two batches of one gateway
CLIENTS = 50
TAG_EVERY = 20  # every 20th supervisor is tagged for latency
SECONDS = 30.0
AREA_SIZE = 5
TICK = 1.0
P50_TARGET, P99_TARGET = TICK + 0.1, 1.5


@dataclass(frozen=True)
class Workload:
    """What one fan-out run offers: the city, the reporting supervisors, the rate, the screens."""

    district: str | None  # None: the built-in Dongcheng
    area_size: int
    supervisors: int
    rate: int  # fixes per second, all gateways together
    clients: int
    tag_every: int
    seconds: float

    @property
    def city(self) -> str:
        """The city's name in the table."""
        return "Chaoyang" if self.district == "110105" else (self.district or "built-in Dongcheng")


FULL = Workload("110105", AREA_SIZE, SUPERVISORS, RATE, CLIENTS, TAG_EVERY, SECONDS)
# the smoke run (python -m bench fanout --smoke): the same code path in seconds; every supervisor
# still reports less often than once a tick (200 supervisors at 80 fixes/s: every 2.5 s)
SMOKE = Workload(None, 8, 200, 80, 3, 4, 4.0)


# -- the screens (a separate process) -------------------------------------------------------------


@dataclass
class Screen:
    """What one /live client saw."""

    connected: bool = False
    snapshot_seq: int | None = None
    last_seq: int | None = None
    gaps: int = 0
    ticks: int = 0
    alerts: int = 0
    fixes: int = 0
    closed: str = ""
    bytes_by_second: Counter[int] = field(default_factory=Counter)
    msgs_by_second: Counter[int] = field(default_factory=Counter)
    # ticks: every row of a tagged supervisor as (sup, lon, lat, receive time); matched to the sends later
    tick_rows: list[tuple[str, float, float, float]] = field(default_factory=list)
    fix_latency: list[tuple[str, int, float]] = field(default_factory=list)  # naive: (sup, at ms, recv)


async def _screen(port: int, kiosk: str, tagged: frozenset[str], st: Screen, session: Any) -> None:
    import aiohttp
    import orjson

    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    try:
        async with session.ws_connect(url, max_msg_size=0, compress=0) as ws:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        break
                    continue
                now = time.time()
                data: str = msg.data
                sec = int(now)
                st.bytes_by_second[sec] += len(data.encode())
                st.msgs_by_second[sec] += 1
                if data.startswith("42/live,"):
                    event, body = orjson.loads(data[8:])
                    seq = body.get("seq")
                    if event == "snapshot":
                        st.snapshot_seq = st.last_seq = seq
                        continue
                    if event == "fix":
                        st.fixes += 1
                        if st.last_seq is None or seq != st.last_seq + 1:
                            st.gaps += seq - (st.last_seq or 0) - 1
                        st.last_seq = max(seq, st.last_seq or 0)
                        if body["id"] in tagged:
                            st.fix_latency.append((body["id"], body["at"], now))
                        continue
                    if st.last_seq is not None and seq != st.last_seq + 1:
                        st.gaps += abs(seq - st.last_seq - 1)
                    st.last_seq = seq
                    if event == "tick":
                        st.ticks += 1
                        sup = body["sup"]
                        rows = st.tick_rows
                        for sid, lon, lat in zip(sup["id"], sup["lon"], sup["lat"], strict=True):
                            if sid in tagged:
                                rows.append((sid, lon, lat, now))
                    elif event == "alert":
                        st.alerts += 1
                elif data == "2":
                    await ws.send_str("3")
                elif data.startswith("0"):
                    await ws.send_str("40/live," + orjson.dumps({"token": kiosk}).decode())
                elif data.startswith("40/live"):
                    st.connected = True
                elif data.startswith("44/live"):
                    st.closed = f"refused: {data[8:]}"
                    break
            if not st.closed:
                st.closed = f"closed by server ({ws.close_code})"
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        st.closed = f"error: {exc!r}"


async def _screens(port: int, kiosk: str, n: int, tagged: frozenset[str], ready: Any, stop: Any,
                   progress: Any) -> list[Screen]:  # fmt: skip
    import aiohttp

    screens = [Screen() for _ in range(n)]
    async with aiohttp.ClientSession() as session:
        tasks = []
        for i, st in enumerate(screens):
            tasks.append(asyncio.create_task(_screen(port, kiosk, tagged, st, session)))
            if i % 10 == 9:  # in waves: each join renders a full snapshot under the tick lock
                while sum(s.snapshot_seq is not None or bool(s.closed) for s in screens[: i + 1]) < i + 1:
                    await asyncio.sleep(0.05)
        while not all(s.snapshot_seq is not None or s.closed for s in screens):
            await asyncio.sleep(0.05)
        ready.set()
        while not stop.is_set():
            progress.value = sum(s.fixes + s.ticks for s in screens)
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return screens


def _screens_main(port: int, kiosk: str, n: int, tagged: list[str], ready: Any, stop: Any, progress: Any,
                  out: Any) -> None:  # fmt: skip
    """Entry point of the screens process."""
    screens = asyncio.run(_screens(port, kiosk, n, frozenset(tagged), ready, stop, progress))
    out.put(screens)


# -- the gateways (this process) --------------------------------------------------------------------


@dataclass
class Sent:
    """What the gateways sent and what the server answered."""

    fixes: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    ack_ms: list[float] = field(default_factory=list)
    # per tagged supervisor, in send order: (at ms, lon, lat) with lon/lat rounded as a tick rounds them
    tagged: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0

    @property
    def tagged_fixes(self) -> int:
        """How many fixes of tagged supervisors were sent."""
        return sum(len(v) for v in self.tagged.values())


# a tick row is matched to one of the last few sends of its supervisor (see tick_latencies)
MATCH_BACK = 4


def tick_latencies(sent: Sent, screens: list[Screen]) -> list[float]:
    """Receive time − send time of every tagged fix on every screen, from the screens' tick rows.

    Why this matching is exact enough: every accepted fix that is newer than a supervisor's last one
    marks it changed (``domain.supervisor.advance``), so each fix shows up in one tick, with its
    position (rounded to 5 decimals, as ``feeds.ticks`` renders it). A row is the fix of that
    supervisor sent last before the row arrived *at that position*; looking back a few sends covers
    a tick that arrives after the supervisor's next send. Each (screen, fix) counts once, so a fix
    that is repeated in a later tick (a status change) is not counted twice.
    """
    times = {sid: [ms for ms, _, _ in sends] for sid, sends in sent.tagged.items()}
    out: list[float] = []
    for st in screens:
        counted: set[tuple[str, int]] = set()
        for sid, lon, lat, recv in st.tick_rows:
            sends = sent.tagged.get(sid)
            if not sends:
                continue
            last = bisect_right(times[sid], recv * 1000) - 1
            for i in range(last, max(-1, last - MATCH_BACK), -1):
                if sends[i][1] == lon and sends[i][2] == lat:
                    if (sid, i) not in counted:
                        counted.add((sid, i))
                        out.append(recv - sends[i][0] / 1000)
                    break
    return out


async def _gateways(
    port: int,
    city: City,
    sups: list[str],
    tagged: frozenset[str],
    seconds: float,
    rate: int | None = None,
    sent: Sent | None = None,
) -> Sent:
    """Send for ``seconds`` at ``rate`` over the gateway sockets; ``sent`` (if given) is filled as it goes."""
    rng = np.random.default_rng(20261127)
    sent = Sent() if sent is None else sent
    clients = []
    for _ in range(GATEWAYS):
        c = socketio.AsyncClient(reconnection=False, request_timeout=120)
        await c.connect(f"http://127.0.0.1:{port}", namespaces=["/device"], auth={"token": city.gateway},
                        transports=["websocket"], wait_timeout=30)  # fmt: skip
        clients.append(c)
    per_batch = max(1, round((rate or RATE) * PERIOD / GATEWAYS))
    pending: set[asyncio.Future[Any]] = set()

    async def gateway(k: int, c: socketio.AsyncClient) -> None:
        mine = sups[k::GATEWAYS]
        pos = 0
        loop = asyncio.get_running_loop()
        next_at = sent.started + k * PERIOD / GATEWAYS
        while True:
            delay = next_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.time() >= sent.ended:
                return
            at_ms = int(time.time() * 1000)
            batch = []
            jit = rng.uniform(-1.0, 1.0, size=(per_batch, 2))
            for j in range(per_batch):
                sid = mine[pos % len(mine)]
                pos += 1
                lon, lat, r, _ = city.points[sid]
                # Python floats: numpy's round differs from Python's (the server's) at half-way values
                fix_lon, fix_lat = round(float(lon + r * jit[j, 0]), 7), round(float(lat + r * jit[j, 1]), 7)
                batch.append({"supervisor": sid, "at": at_ms, "lon": fix_lon, "lat": fix_lat})
                if sid in tagged:
                    sent.tagged.setdefault(sid, []).append((at_ms, round(fix_lon, 5), round(fix_lat, 5)))
            sent.fixes += len(batch)
            fut: asyncio.Future[Any] = loop.create_future()
            pending.add(fut)
            t0 = time.perf_counter()

            def done(ack: Any = None, t0: float = t0, fut: asyncio.Future[Any] = fut) -> None:
                sent.ack_ms.append((time.perf_counter() - t0) * 1000)
                if isinstance(ack, dict):
                    sent.accepted += len(ack.get("accepted", ()))
                    for r in ack.get("rejected", ()):
                        sent.rejected[str(r.get("reason"))] += 1
                if not fut.done():
                    fut.set_result(None)

            await c.emit("positions", {"fixes": batch}, namespace="/device", callback=done)
            next_at += PERIOD

    sent.started = time.time() + 0.2
    sent.ended = sent.started + seconds
    await asyncio.gather(*(gateway(k, c) for k, c in enumerate(clients)))
    if pending:
        await asyncio.wait(pending, timeout=60)
    for c in clients:
        await c.disconnect()
    return sent


# -- one mode -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One mode's measurements."""

    mode: str
    sent: Sent
    screens: list[Screen]
    server_cores: float
    screens_cores: float
    gateways_cores: float
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]
    latencies: list[float]
    expected: int  # tagged fixes × screens
    drain_s: float


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _mode(city: City, tmp: Path, naive: bool, w: Workload) -> Outcome:
    name = "naive" if naive else "ticks"
    served = copy_city(city, tmp / f"{name}.db")
    log = tmp / f"{name}.log"
    proc, port = start_server(served, naive=naive, log=log)
    sups = sorted(city.points)[: w.supervisors]
    tagged = frozenset(sups[:: w.tag_every])
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    progress = ctx.Value("q", 0, lock=False)
    screens_proc = ctx.Process(
        target=_screens_main, args=(port, city.kiosk, w.clients, sorted(tagged), ready, stop, progress, out),
        name="bench-screens",
    )  # fmt: skip
    screens_proc.start()
    try:
        if not ready.wait(timeout=300):
            raise RuntimeError("the /live screens did not all get a snapshot in 300 s")
        time.sleep(1.0)
        before = server_stats(port)
        c0, s0, g0, t0 = cpu_seconds(proc.pid), cpu_seconds(screens_proc.pid or 0), _own_cpu(), time.time()
        sent = asyncio.run(_gateways(port, city, sups, tagged, w.seconds, w.rate))
        wall = time.time() - t0
        server_cores = (cpu_seconds(proc.pid) - c0) / wall
        screens_cores = (cpu_seconds(screens_proc.pid or 0) - s0) / wall
        gateways_cores = (_own_cpu() - g0) / wall
        # drain: ticks need one more tick; the naive backlog until every screen has every fix
        d0 = time.time()
        if naive:
            want, last, still = sent.accepted * w.clients, -1, time.time()
            while progress.value < want and time.time() - still < 5 and time.time() - d0 < 60:
                if progress.value != last:
                    last, still = progress.value, time.time()
                time.sleep(0.25)
        else:
            time.sleep(TICK * 2.5)
        drain = time.time() - d0
        after = server_stats(port)
        stop.set()
        screens: list[Screen] = out.get(timeout=120)
    finally:
        stop.set()
        screens_proc.join(timeout=30)
        if screens_proc.is_alive():
            screens_proc.kill()
        stop_server(proc)
    if naive:
        lat = [recv - at / 1000 for st in screens for sid, at, recv in st.fix_latency if sid in sent.tagged]
    else:
        lat = tick_latencies(sent, screens)
    return Outcome(name, sent, screens, server_cores, screens_cores, gateways_cores, before, after, lat,
                   sent.tagged_fixes * len(screens), drain)  # fmt: skip


# -- table ------------------------------------------------------------------------------------------


def _rows(o: Outcome, seconds: float) -> tuple[list[str], Result, str]:
    s = o.sent
    window = range(int(s.started) + 1, int(s.ended))  # whole seconds inside the sending window
    per_client_bps = [sum(st.bytes_by_second[t] for t in window) / max(1, len(window)) for st in o.screens]
    per_client_mps = [sum(st.msgs_by_second[t] for t in window) / max(1, len(window)) for st in o.screens]
    gaps = sum(st.gaps for st in o.screens)
    closed = [st.closed for st in o.screens if st.closed]
    p50, p99 = percentile(o.latencies, 50), percentile(o.latencies, 99)
    delivered = len(o.latencies) / o.expected if o.expected else 0.0
    if o.mode == "ticks":
        got = [st.ticks for st in o.screens]
        last = {st.last_seq for st in o.screens}
        every = gaps == 0 and not closed and o.stats_after["dropped"] == 0 and len(last) == 1
        # every screen got every tick and every tagged fix: correctness, judged in a smoke run too
        complete = every and delivered >= 0.999
        status = judged(p50 <= P50_TARGET and p99 <= P99_TARGET) if complete else FAIL
        target = f"no gaps, p50 ≤ {P50_TARGET:.1f} s, p99 ≤ {P99_TARGET:.1f} s"
        events = f"{min(got):,}–{max(got):,} ticks"
        mode = "ticks (production: 1 s tick)"
    else:
        got = [st.fixes for st in o.screens]
        emitted = o.stats_after["naive"].get("emitted", 0)
        status, target = INFO, ""
        events = f"{min(got):,}–{max(got):,} fixes (sent {emitted:,})"
        mode = "naive (baseline: 1 event per fix)"
    notes = [
        f"accepted {s.accepted:,} of {s.fixes:,} sent"
        + (f", rejected {dict(s.rejected)}" if s.rejected else ""),
        f"gateway ack p50 {percentile(s.ack_ms, 50):,.0f} ms",
        f"screens process {o.screens_cores:.2f} cores, gateways {o.gateways_cores:.2f} cores",
        f"{np.mean(per_client_mps):,.0f} messages/client/s",
        f"drain {o.drain_s:.1f} s",
    ]
    if o.mode == "ticks":
        notes.insert(
            0,
            f"server sent {o.stats_after['ticks'] - o.stats_before['ticks']} ticks while sending + drain; "
            f"screens' last seq {sorted({st.last_seq for st in o.screens}, key=str)}",
        )
    if closed:
        notes.append(f"{len(closed)} screens closed: {Counter(closed).most_common(2)}")
    if o.stats_after.get("dropped"):
        notes.append(f"{o.stats_after['dropped']} slow screens dropped")
    row = [
        mode, f"{s.accepted / seconds:,.0f}", events, f"{gaps:,}", f"{p50:.3f} s", f"{p99:.3f} s",
        f"{delivered:.1%}", f"{o.server_cores:.2f}", f"{np.mean(per_client_bps) / 1024:,.1f}", target, status,
    ]  # fmt: skip
    summary = f"p50 {p50:.3f} s, p99 {p99:.3f} s, gaps {gaps}, server {o.server_cores:.2f} cores"
    res = Result(f"fanout: {mode}", s.accepted, seconds, "fixes", target, status, summary)
    return row, res, "; ".join(notes)


def _broken(outcomes: list[Outcome]) -> list[str]:
    """What makes a run's figures meaningless (not a missed target): screens that failed, nothing seen."""
    problems = []
    for o in outcomes:
        failed = Counter(st.closed for st in o.screens if st.closed.startswith(("error", "refused")))
        if failed:
            problems.append(f"{o.mode}: {sum(failed.values())} screens failed: {failed.most_common(2)}")
        if not o.latencies:
            problems.append(f"{o.mode}: no tagged fix was recognised on any screen")
    return problems


def run(seconds: float = SECONDS, smoke: bool = False) -> list[Result]:
    """Build the city, run both modes, print the table; raise when the run measured nothing."""
    from store.build import BuildRequest

    w = SMOKE if smoke else FULL
    if seconds != SECONDS and not smoke:
        w = Workload(w.district, w.area_size, w.supervisors, w.rate, w.clients, w.tag_every, seconds)
    seconds = w.seconds

    def say(m: str) -> None:
        console.print(m, highlight=False)

    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-fanout-"))
    try:
        say(f"fanout: {load_line()}")
        say(f"fanout: building {w.city} with area_size={w.area_size} and provisioning accounts …")
        t = time.perf_counter()
        city = prepare_city(tmp / "template.db", BuildRequest(district=w.district, area_size=w.area_size))
        say(f"fanout: {len(city.points):,} supervisors ready in {time.perf_counter() - t:.0f} s")
        if len(city.points) < w.supervisors:
            raise RuntimeError(f"only {len(city.points)} supervisors; need {w.supervisors}")
        outcomes = []
        for naive in (False, True):
            mode = "naive" if naive else "ticks"
            say(f"fanout: {mode}: {w.clients} screens, {w.supervisors:,} supervisors, "
                f"{w.rate:,} fixes/s for {seconds:.0f} s …")  # fmt: skip
            outcomes.append(_mode(city, tmp, naive, w))
        table = Table(
            title=f"fanout: {w.city}, {w.supervisors:,} supervisors at {w.rate:,} fixes/s → "
            f"{w.clients} /live screens (room wall), {seconds:.0f} s per mode",
            box=box.SIMPLE_HEAVY, title_justify="left",
        )  # fmt: skip
        for col in ("mode", "fixes/s", "received per screen", "seq gaps", "latency p50", "latency p99",
                    "tagged seen", "server cores", "KiB/screen/s", "target", "pass/fail"):  # fmt: skip
            table.add_column(col, justify="left" if col in ("mode", "target", "pass/fail") else "right")
        results, notes = [], []
        for o in outcomes:
            row, res, note = _rows(o, seconds)
            colour = {PASS: "green", FAIL: "bold red"}.get(row[-1])
            if colour:
                row[-1] = f"[{colour}]{row[-1]}[/]"
            table.add_row(*row)
            results.append(res)
            notes.append(f"{o.mode}: {note}")
        say(f"fanout: {load_line()}")
        console.print(table)
        for line in notes:
            say(line)
        for name in ("ticks", "naive"):
            lines = [ln for ln in (tmp / f"{name}.log").read_text().splitlines() if ln.strip()]
            if lines:
                say(f"server log ({name}): {len(lines)} lines, last: {lines[-1][:160]}")
        problems = _broken(outcomes)
        if problems:
            raise RuntimeError("fanout measured nothing usable: " + "; ".join(problems))
        return results
    finally:
        if not os.environ.get("GW_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import sys

    sys.exit(1 if any(r.status == FAIL for r in run()) else 0)
