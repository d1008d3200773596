"""Soak (issue 20, Build 2): the scale-out deployment under steady load for 30 minutes, simulation on.

Deployment and load are ``bench_scale``'s (:func:`bench.bench_scale.deployed`): Chaoyang
(``area_size=5``, 10,952 supervisors) in a fresh PostgreSQL schema, a fresh Redis key prefix on
database 14, one aggregator, one ingest consumer and web processes A and B as real processes
(``python app.py run --role …``); 4 python-socketio gateways (``bench_fanout._gateways``) send
``positions`` to web A at ``GW_BENCH_SOAK_RATE`` fixes/s (default 2,000) over the first 10,000
supervisors for ``GW_BENCH_SOAK_MINUTES`` minutes (default 30); 50 raw Engine.IO ``/live`` screens
(``bench_scale._screens``), alternately on A and B, check ``seq`` and note when a fix of a tagged
supervisor (every 50th: 200 supervisors, 40 fixes/s) first shows in a tick. Latency = receive time −
send time, matched as ``bench_fanout.tick_latencies`` matches, but incrementally: the screens process
hands its tick rows over every 5 s, so 30 minutes of rows never pile up in one place.

**The simulation.** ``app.py run`` starts the built-in simulation only in embedded mode (``not
args.role``): no role of the scale-out deployment runs it. So this benchmark runs it as embedded mode
does, in a process of its own: ``feeds.simulator.Simulation.prepare`` (7 days of cases and today's
patrol backfilled, before the deployment starts, as an embedded start does before serving), then
``Simulation.start`` — a ``/device`` client of web A with its own gateway token sending the patrol's
fixes every second and each case command (reports, 核实, dispatch, handling, 核查, closing, urges)
when its instant comes. Its patrol walks only the supervisors the gateways do not drive (952 of
10,952, one fix every 10 s while on shift: about 95 fixes/s): two sources moving one supervisor
would make the speed check reject the jumps and the latency matching miss. Its case flow covers the
whole district.

**Samples.** Every minute (the sending window split in ``GW_BENCH_SOAK_MINUTES`` intervals): the
RSS (``VmRSS`` from ``/proc/PID/status``, summed over the process tree: gunicorn's arbiter and its
worker for a web process) of every deployment process and of the load processes (simulation,
screens, this process's gateways: shown, not judged), fixes acknowledged in the interval and the
gateways' acknowledgement p99, the load average, the Redis server's ``used_memory`` (shared with
other work; the stream keeps a day of entries by design); latency p50/p99 of the fixes sent in that
interval.

**Bars.** Warm-up = the first 5 minutes. Per deployment process, RSS at the end of minute 5 vs the
last sample, and the largest deviation of any later sample from the minute-5 value: *flat* = every
deviation within ±10 %. ``seq`` gaps summed over all screens: 0, and no screen cut or closed before
the end (a cut screen would hide its gaps). p99 *unchanged*: p99 of the fixes sent in minutes 6–10
(the first 5 after warm-up) vs minutes 26–30 (the last 5): last ≤ first × 1.25 + 0.1 s (25 % and one
tenth of the 1 s tick of slack, because the cores are shared). Lost = fixes acknowledged as accepted
but not in ``positions`` after the consumer drained the stream (the simulation stopped first): 0.
Gaps and lost FAIL in a smoke run too; RSS and p99 are speed-like (``bench.judged``: not judged in a
smoke run). Sustained throughput = fixes acknowledged / offered.

Shorter runs (``GW_BENCH_SOAK_MINUTES`` < 15) scale the warm-up to a third of the run and the
windows to half the rest. ``--smoke``: built-in Dongcheng, 200 supervisors at 80 fixes/s, 4 screens,
4 samples of 5 s (warm-up 1, windows of 1), a 6-hour case backfill.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import threading
import time
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import redis
from rich import box
from rich.table import Table

from bench import FAIL, PASS, HarnessRow, Result, console, harness_results, judged, print_harness
from bench._server import City, load_line, percentile
from bench.bench_fanout import MATCH_BACK, Screen, Sent, _gateways
from bench.bench_scale import REDIS_URL, TICK, Deployment, Workload, _backlog, _screens_main, deployed

MINUTES = float(os.environ.get("GW_BENCH_SOAK_MINUTES", "30"))
RATE = int(os.environ.get("GW_BENCH_SOAK_RATE", "2000"))
WARMUP, WINDOW = 5, 5  # minutes (samples): warm-up; the first and the last window compared
RSS_BAND = 0.10  # ±10 % of the RSS after warm-up
P99_FACTOR, P99_SLACK = 1.25, 0.1  # p99 unchanged: last ≤ first × 1.25 + 0.1 s
FLUSH_S = 5.0  # the screens hand their tick rows over this often
DEPLOYMENT = ("web A", "web B", "ingest", "aggregator")
LOAD = ("simulation", "screens", "gateways")


@dataclass(frozen=True)
class Plan:
    """One soak run: the load, how often to sample, how many samples, warm-up and window (samples)."""

    workload: Workload
    sample_s: float
    samples: int
    warmup: int
    window: int
    backfill_days: float

    @property
    def minutes(self) -> float:
        """Length of the sending window in minutes."""
        return self.samples * self.sample_s / 60


def plan(smoke: bool = False, minutes: float = MINUTES, rate: int = RATE) -> Plan:
    """The full soak (``minutes`` at ``rate``) or the smoke run."""
    if smoke:
        w = Workload(None, 8, 200, 80, 4, 4, 20.0, 0)
        return Plan(w, 5.0, 4, 1, 1, 0.25)
    n = max(1, round(minutes))
    w = Workload("110105", 5, 10_000, rate, 50, 50, n * 60.0, 0)
    warm = WARMUP if n >= 3 * WARMUP else max(1, n // 3)
    return Plan(w, 60.0, n, warm, max(1, min(WINDOW, (n - warm) // 2)), 7.0)


# -- the screens process's side: hand the tick rows over every few seconds -------------------------


class Flush:
    """Called by the screens process every 0.2 s: every ``every`` s it puts each screen's new tick rows
    and counters on ``out`` (so rows never pile up there)."""

    def __init__(self, out: Any, every: float = FLUSH_S) -> None:
        self.out, self.every, self.next = out, every, 0.0

    def __call__(self, screens: list[Screen]) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.every
        chunk = []
        for st in screens:
            rows, st.tick_rows = st.tick_rows, []
            chunk.append((rows, st.gaps, st.last_seq, st.ticks, st.closed))
        self.out.put(chunk)


@dataclass
class Matcher:
    """Matches the screens' tick rows to the gateways' sends as they come (``tick_latencies``, online)."""

    sent: Sent
    sample_s: float
    screens: int
    latencies: defaultdict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    rows: int = 0
    matched: int = 0
    shown: list[dict[str, int]] = field(default_factory=list)  # per screen: supervisor → last send counted

    def add(self, per_screen: list[list[tuple[str, float, float, float]]]) -> None:
        """Count each screen's rows: a row is its supervisor's last send at that position before it came."""
        while len(self.shown) < len(per_screen):
            self.shown.append({})
        at = itemgetter(0)
        for k, rows in enumerate(per_screen):
            shown = self.shown[k]
            for sid, lon, lat, recv in rows:
                self.rows += 1
                sends = self.sent.tagged.get(sid)
                if not sends:
                    continue
                last = bisect_right(sends, recv * 1000, key=at) - 1
                for i in range(last, max(-1, last - MATCH_BACK), -1):
                    if sends[i][1] == lon and sends[i][2] == lat:
                        if i > shown.get(sid, -1):  # the live state only moves forward: once per fix
                            shown[sid] = i
                            sent_s = sends[i][0] / 1000
                            self.latencies[int((sent_s - self.sent.started) // self.sample_s)].append(
                                recv - sent_s
                            )
                            self.matched += 1
                        break


# -- the simulation process --------------------------------------------------------------------------


def _sim_main(
    db_url: str, data_dir: str, exclude: list[str], backfill_days: float, ctl: Any, out: Any
) -> None:
    """Entry point of the simulation process: prepare (backfill), wait for web A's URL, run until told."""
    import types

    import feeds.simulator as simulator
    from store.db import create_engine

    skip = set(exclude)
    areas = simulator.areas_from_store

    def others(engine: Any, adcode: str | None = None) -> Any:  # the patrol walks the others only
        return {k: v for k, v in areas(engine, adcode).items() if k not in skip}

    simulator.areas_from_store = others
    engine = create_engine(db_url)
    t = time.perf_counter()
    sim = simulator.Simulation.prepare(engine, Path(data_dir), seed=1, backfill_days=backfill_days)
    out.put(("prepared", time.perf_counter() - t, len(sim.patrol.supervisors)))
    url = ctl.get()
    if url is None:
        return
    sim.start(types.SimpleNamespace(simulating=threading.Event()), url)
    ctl.get()  # stop
    sim.stop()
    s = sim.stats
    out.put(("stopped", s.fixes_sent, s.commands_sent, s.accepted, s.duplicates, dict(s.rejected)))
    engine.dispose()


# -- RSS ---------------------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/PID/task/*/children``)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        for c in kids:
            out += _tree(c)
    return out


def _vmrss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int, tree: bool = True) -> float:
    """VmRSS of a process (and its descendants) in MiB."""
    return sum(_vmrss_kb(p) for p in (_tree(pid) if tree else [pid])) / 1024


@dataclass
class Sample:
    """One minute's sample."""

    minute: int
    at: float
    accepted: int
    rss: dict[str, float]
    load1: float
    gaps: int
    acks: int  # acknowledgements received so far (their round trips are sent.ack_ms[:acks])
    redis_mb: float  # the Redis server's used_memory (shared: other deployments' keys count)


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Soak:
    """Everything one soak run measured."""

    plan: Plan
    sent: Sent
    matcher: Matcher
    samples: list[Sample]
    screens: list[Screen]
    gaps: int
    closed: list[str]
    persisted: dict[str, int]
    backlog: dict[str, Any]
    sim_prepare: tuple[float, int]
    sim_stats: tuple[Any, ...]
    tracebacks: dict[str, int]
    loads: list[str]


def _soak(
    dep: Deployment,
    city: City,
    p: Plan,
    sim_ctl: Any,
    sim_out: Any,
    sim_prepared: tuple[float, int],
    sim_proc: Any,
) -> Soak:
    import sqlalchemy as sa

    def say(m: str) -> None:
        console.print(m, highlight=False)

    w = p.workload
    web_a, web_b = [x for x in dep.procs if x.role == "web"]
    assert web_a.port and web_b.port
    sups = sorted(city.points)[: w.supervisors]
    tagged = frozenset(sups[:: w.tag_every])
    ctx = mp.get_context("spawn")
    ready, stop, out, rows_q = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    screens_proc = ctx.Process(
        target=_screens_main,
        args=(
            [web_a.port, web_b.port],
            city.kiosk,
            sorted(tagged),
            ready,
            stop,
            out,
            w.clients,
            Flush(rows_q),
        ),
        name="bench-soak-screens",
    )
    screens_proc.start()
    sent = Sent()
    matcher = Matcher(sent, p.sample_s, w.clients)
    pids = {x: q.proc.pid for x, q in zip(DEPLOYMENT, [web_a, web_b], strict=False)}
    pids.update({q.role: q.proc.pid for q in dep.procs if q.role != "web"})
    samples: list[Sample] = []
    gaps, state = 0, []
    loads = [load_line()]
    failure: list[BaseException] = []

    def drain(block: float = 0.0) -> None:
        nonlocal gaps, state
        while True:
            try:
                chunk = rows_q.get(timeout=block) if block else rows_q.get_nowait()
            except Exception:  # queue.Empty
                return
            matcher.add([c[0] for c in chunk])
            state = [c[1:] for c in chunk]
            gaps = sum(c[1] for c in chunk)
            block = 0.0

    rds = redis.Redis.from_url(REDIS_URL)

    def sample(k: int) -> Sample:
        rss = {name: rss_mb(pid) for name, pid in pids.items()}
        rss["simulation"] = rss_mb(sim_proc.pid or 0)
        rss["screens"] = rss_mb(screens_proc.pid or 0)
        rss["gateways"] = rss_mb(os.getpid(), tree=False)
        used = float(rds.info("memory")["used_memory"]) / 2**20
        return Sample(k, time.time(), sent.accepted, rss, os.getloadavg()[0], gaps, len(sent.ack_ms), used)

    def gateways() -> None:
        try:
            asyncio.run(_gateways(web_a.port or 0, city, sups, tagged, w.seconds, w.rate, sent))
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    try:
        if not ready.wait(timeout=300):
            raise RuntimeError("the /live screens did not all get a snapshot in 300 s")
        sim_ctl.put(f"http://127.0.0.1:{web_a.port}")  # the simulation goes live
        time.sleep(2.0)
        drain()
        samples.append(sample(0))
        gw = threading.Thread(target=gateways, name="bench-soak-gateways", daemon=True)
        gw.start()
        while not sent.started and gw.is_alive():
            time.sleep(0.05)
        k = 1
        while k <= p.samples:
            if failure:
                raise RuntimeError(f"the gateways failed: {failure[0]!r}")
            due = sent.started + k * p.sample_s
            drain(block=max(0.0, min(1.0, due - time.time())))
            if time.time() < due:
                continue
            s = sample(k)
            samples.append(s)
            prev = samples[-2]
            rate = (s.accepted - prev.accepted) / max(1e-9, s.at - prev.at)
            rss = ", ".join(f"{n} {s.rss[n]:,.0f}" for n in DEPLOYMENT)
            say(
                f"soak: minute {k}/{p.samples}: {rate:,.0f} fixes/s acked, gaps {gaps}, RSS MiB {rss}, "
                f"load {s.load1:.2f}"
            )
            if k == 1 or k == p.samples or k % 10 == 0:
                loads.append(load_line())
            k += 1
        gw.join(timeout=120)
        if failure:
            raise RuntimeError(f"the gateways failed: {failure[0]!r}")
        sim_ctl.put("stop")  # the simulation stops first, so that the stream drains
        sim_stats: tuple[Any, ...] = sim_out.get(timeout=60)
        backlog = _backlog(redis.Redis.from_url(REDIS_URL), dep.prefix)
        deadline = time.time() + 300
        while time.time() < deadline:
            drain()
            b = _backlog(redis.Redis.from_url(REDIS_URL), dep.prefix)
            if not b["lag"] and not b["pending"]:
                break
            time.sleep(0.5)
        time.sleep(TICK * 2.5)
        stop.set()
        final: list[Screen] = out.get(timeout=120)
        drain(block=2.0)
        drain()
        matcher.add([st.tick_rows for st in final])
        gaps = sum(st.gaps for st in final)
    finally:
        stop.set()
        screens_proc.join(timeout=30)
        if screens_proc.is_alive():
            screens_proc.kill()
    eng = sa.create_engine(dep.db_url)
    with eng.connect() as conn:
        persisted = {
            str(src): int(n)
            for src, n in conn.exec_driver_sql("SELECT source, count(*) FROM positions GROUP BY source")
        }
    eng.dispose()
    tracebacks = {}
    for q in dep.procs:
        tracebacks[f"{q.role} {q.log.name}"] = q.log.read_text(errors="replace").count("Traceback")
    closed = [st.closed for st in final if st.closed and not st.closed.startswith("error: Cancelled")]
    loads.append(load_line())
    return Soak(
        p,
        sent,
        matcher,
        samples,
        final,
        gaps,
        closed,
        persisted,
        backlog,
        sim_prepared,
        sim_stats,
        tracebacks,
        loads,
    )


def run(smoke: bool = False) -> list[Result]:
    """The soak: deployment, simulation and load for the plan's minutes; print the tables."""
    p = plan(smoke)
    w = p.workload

    def say(m: str) -> None:
        console.print(m, highlight=False)

    ctx = mp.get_context("spawn")
    sim_ctl, sim_out = ctx.Queue(), ctx.Queue()
    sim_proc: Any = None
    prepared: list[tuple[float, int]] = []

    def with_simulation(url: str, data_dir: Path, city: City) -> None:
        nonlocal sim_proc
        exclude = sorted(city.points)[: w.supervisors]
        say(f"soak: simulation: preparing ({p.backfill_days:g} days of cases, today's patrol) …")
        sim_proc = ctx.Process(
            target=_sim_main,
            args=(url, str(data_dir / "sim"), exclude, p.backfill_days, sim_ctl, sim_out),
            name="bench-soak-simulation",
        )
        (data_dir / "sim").mkdir(parents=True, exist_ok=True)
        sim_proc.start()
        msg = sim_out.get(timeout=900)
        prepared.append((float(msg[1]), int(msg[2])))
        say(f"soak: simulation prepared in {msg[1]:.0f} s; its patrol walks {msg[2]:,} supervisors")

    try:
        with deployed(w, "soak", setup=with_simulation) as (dep, city):
            say(
                f"soak: {w.supervisors:,} supervisors at {w.rate:,} fixes/s to web A, {w.clients} screens on "
                f"A and B, simulation on, {p.samples} samples of {p.sample_s:.0f} s …"
            )
            soak = _soak(dep, city, p, sim_ctl, sim_out, prepared[0], sim_proc)
    finally:
        if sim_proc is not None:
            sim_ctl.put(None)
            sim_ctl.put(None)
            sim_proc.join(timeout=30)
            if sim_proc.is_alive():
                sim_proc.kill()
    return _report(soak)


# -- tables ------------------------------------------------------------------------------------------


def _report(s: Soak) -> list[Result]:
    p, w, sent = s.plan, s.plan.workload, s.sent
    unit = "min" if p.sample_s == 60 else f"×{p.sample_s:.0f} s"
    table = Table(
        title=f"soak: per {'minute' if p.sample_s == 60 else f'{p.sample_s:.0f} s'} — {w.city}, "
        f"{w.rate:,} fixes/s offered, {w.clients} screens, simulation on",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    cols = [unit, "fixes/s acked", "ack p99 ms", "p50 s", "p99 s", "latencies", "gaps", "load"]
    cols += [f"{n} MiB" for n in DEPLOYMENT + LOAD] + ["redis MiB"]
    for c in cols:
        table.add_column(c, justify="right")
    for prev, cur in zip(s.samples, s.samples[1:], strict=False):
        lat = s.matcher.latencies.get(cur.minute - 1, [])
        rate = (cur.accepted - prev.accepted) / max(1e-9, cur.at - prev.at)
        mark = " (warm-up)" if cur.minute <= p.warmup else ""
        table.add_row(
            f"{cur.minute}{mark}",
            f"{rate:,.0f}",
            f"{percentile(sent.ack_ms[prev.acks : cur.acks], 99):,.0f}",
            f"{percentile(lat, 50):.3f}",
            f"{percentile(lat, 99):.3f}",
            f"{len(lat):,}",
            f"{cur.gaps:,}",
            f"{cur.load1:.2f}",
            *(f"{cur.rss[n]:,.0f}" for n in DEPLOYMENT + LOAD),
            f"{cur.redis_mb:,.0f}",
        )
    console.print(table)

    # RSS: after warm-up vs the end, the largest deviation in between (deployment processes)
    after = s.samples[p.warmup]
    later = [x for x in s.samples if x.minute >= p.warmup]
    end = s.samples[-1]
    results: list[Result] = []
    rss_ok = True
    rss_notes = []
    for n in DEPLOYMENT:
        base = after.rss[n]
        dev = max(abs(x.rss[n] / base - 1) for x in later) if base else float("inf")
        ok = dev <= RSS_BAND
        rss_ok &= ok
        rss_notes.append(f"{n} {base:,.0f}→{end.rss[n]:,.0f} MiB (max ±{dev:.1%})")
        results.append(
            Result(
                f"soak: RSS flat, {n}",
                None,
                None,
                "",
                f"±{RSS_BAND:.0%} after warm-up",
                judged(ok),
                f"{base:,.0f} → {end.rss[n]:,.0f} MiB, max deviation {dev:.1%}",
            )
        )

    def window(first: int, last: int) -> list[float]:
        return [v for m in range(first, last) for v in s.matcher.latencies.get(m, [])]

    first = window(p.warmup, p.warmup + p.window)
    last = window(p.samples - p.window, p.samples)
    p99_first, p99_last = percentile(first, 99), percentile(last, 99)
    p99_ok = bool(first) and bool(last) and p99_last <= p99_first * P99_FACTOR + P99_SLACK
    results.append(
        Result(
            "soak: p99 unchanged",
            len(first) + len(last),
            None,
            "",
            f"last ≤ first × {P99_FACTOR} + {P99_SLACK} s",
            judged(p99_ok),
            f"first {p99_first:.3f} s (n {len(first):,}), last {p99_last:.3f} s (n {len(last):,})",
        )
    )

    stored = sum(n for src, n in s.persisted.items() if src != "simulation")
    lost = max(0, sent.accepted - stored)
    refused = sum(sent.rejected.values())
    unavailable = sent.rejected.get("unavailable", 0)
    tb = sum(s.tracebacks.values())
    last_seq = {st.last_seq for st in s.screens}
    expected = sent.tagged_fixes * len(s.screens)
    seen = s.matcher.matched / expected if expected else 0.0
    correct = (
        s.gaps == 0 and not s.closed and lost == 0 and len(last_seq) == 1 and tb == 0 and not unavailable
    )
    results.append(
        Result(
            "soak: seq gaps",
            s.gaps,
            None,
            "",
            "0, no screen cut",
            PASS if s.gaps == 0 and not s.closed and len(last_seq) == 1 else FAIL,
            f"screens' last seq {sorted(last_seq, key=str)}; closed early {len(s.closed)}",
        )
    )
    results.append(
        Result(
            "soak: lost fixes",
            lost,
            None,
            "",
            "0",
            PASS if lost == 0 else FAIL,
            f"accepted {sent.accepted:,}, stored {stored:,}",
        )
    )
    status = FAIL if not correct else judged(rss_ok and p99_ok)
    minutes = f"{p.minutes:g} min" if p.sample_s == 60 else f"{p.samples * p.sample_s:.0f} s (smoke)"
    throughput = sent.accepted / sent.fixes if sent.fixes else 0.0
    notes = (
        f"p99 first {p99_first:.3f} s / last {p99_last:.3f} s; gaps {s.gaps}; acked {throughput:.1%} of "
        f"offered ({sent.accepted / (p.samples * p.sample_s):,.0f} fixes/s); tagged seen {seen:.1%}; "
        f"tracebacks {tb}"
    )
    row = HarnessRow(
        f"soak {minutes} at {w.rate:,} fixes/s",
        sent.fixes,
        refused=refused,
        server_errors=tb + unavailable,
        lost=lost,
        rss_start_mb=sum(after.rss[n] for n in DEPLOYMENT),
        rss_end_mb=sum(end.rss[n] for n in DEPLOYMENT),
        status=status,
        notes=notes,
    )
    print_harness("soak: the hardening harness (issue 20)", [row])
    lines = [
        f"offered {sent.fixes:,} fixes, accepted {sent.accepted:,} ({throughput:.1%})"
        + (f", rejected {dict(sent.rejected)}" if sent.rejected else ""),
        f"gateway ack p50 {percentile(sent.ack_ms, 50):,.0f} ms, p99 {percentile(sent.ack_ms, 99):,.0f} ms",
        f"positions stored by source {s.persisted} (lost = accepted − non-simulation rows)",
        f"stream backlog when sending stopped: {s.backlog}",
        f"RSS after warm-up (minute {p.warmup}) → end: " + "; ".join(rss_notes),
        f"p99 minutes {p.warmup + 1}–{p.warmup + p.window}: {p99_first:.3f} s (n {len(first):,}); "
        f"minutes {p.samples - p.window + 1}–{p.samples}: {p99_last:.3f} s (n {len(last):,}); "
        f"bar last ≤ first × {P99_FACTOR} + {P99_SLACK} s",
        f"tagged fixes seen {s.matcher.matched:,} of {expected:,} ({seen:.1%}); tick rows {s.matcher.rows:,}",
        f"simulation: prepared in {s.sim_prepare[0]:.0f} s, patrol of {s.sim_prepare[1]:,} supervisors; "
        f"sent {s.sim_stats[1]:,} fixes and {s.sim_stats[2]:,} commands, accepted {s.sim_stats[3]:,}, "
        f"duplicates {s.sim_stats[4]:,}, rejected {s.sim_stats[5]}",
        f"tracebacks in the deployment's logs: {s.tracebacks}",
    ]
    if s.closed:
        lines.append(f"{len(s.closed)} screens closed early: {Counter(s.closed).most_common(2)}")
    lines += [f"load: {x}" for x in s.loads]
    for line in lines:
        console.print(f"soak: {line}", highlight=False)
    if not s.matcher.matched:
        raise RuntimeError("soak measured nothing usable: no tagged fix was recognised on any screen")
    return harness_results("soak", [row]) + results
