"""Replays (issue 5): the 10,000 LA 311 rows at full speed through the whole lifecycle, target ≤ 60 s.

Setup: the built-in Dongcheng district in a SQLite file (WAL) in a temporary folder, accounts by
``provision_embedded``; a real server subprocess (``python -m bench._server``, the composition of
``app.py run --no-simulation``). The replay is what ``python app.py replay 311 --mapping la
--speed max`` does: ``feeds.replay.setup_people`` (the replay's operators and its gateway token,
written into the database before the clock starts), then ``feeds.replay.run_plan`` — python-socketio
clients of ``/device`` in this process, one case's commands in order, every event waiting for its
acknowledgement (4 connections, 256 events in flight, as the command line). Timed: from the first
event to the last acknowledgement (planning — reading the CSV with pandas — is reported
separately). The row count of ``cases`` with origin ``replay`` must equal the accepted reports.
Server, replay and SQLite share the machine's 2 cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.table import Table

from bench import FAIL, PASS, Result, at_most, console, shared_data
from bench._server import cpu_seconds, load_line, prepare_city, server_stats, start_server, stop_server

TARGET_S = 60.0
CONNECTIONS, WINDOW = 4, 256
SMOKE_ROWS = 300  # the smoke run replays the file's first rows


def run(connections: int = CONNECTIONS, window: int = WINDOW, smoke: bool = False) -> list[Result]:
    """Build, serve, replay the LA file at full speed; print the table (``smoke``: its first 300 rows)."""
    from feeds.replay import run_plan, setup_people
    from feeds.replay.r311 import load_mapping, plan_311, read_rows
    from store.build import BuildRequest
    from store.db import create_engine

    def say(m: str) -> None:
        console.print(m, highlight=False)

    m = load_mapping("la")
    path = shared_data() / m.file
    if not path.is_file():
        say(f"replay: SKIP, no {path}")
        target = f"≤ {TARGET_S:.0f} s"
        return [Result("replay: LA 311 at full speed", None, None, target=target, status="SKIP",
                       notes=f"missing {path}")]  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-replay-"))
    try:
        say(f"replay: {load_line()}")
        say("replay: building Dongcheng (built-in) and provisioning accounts …")
        city = prepare_city(tmp / "city.db", BuildRequest())
        proc, port = start_server(city, log=tmp / "server.log")
        try:
            t0 = time.perf_counter()
            rows = read_rows(m, path, limit=SMOKE_ROWS if smoke else None)
            plan = plan_311(m, rows, start=datetime.now(UTC), speed=None, tag="B")
            plan_s = time.perf_counter() - t0
            engine = create_engine(city.url)
            token = setup_people(engine, plan.people, plan.token_name)
            say(f"replay: {len(rows):,} rows → {plan.inputs:,} inputs; planned in {plan_s:.1f} s; "
                f"{connections} connections × {window} in flight …")  # fmt: skip
            before = server_stats(port)
            c0, u0 = cpu_seconds(proc.pid), _own_cpu()
            summary = run_plan(plan, f"http://127.0.0.1:{port}", token, speed=None, connections=connections,
                               window=window)  # fmt: skip
            server_cores = (cpu_seconds(proc.pid) - c0) / summary.seconds
            client_cores = (_own_cpu() - u0) / summary.seconds
            after = server_stats(port)
            from sqlalchemy import func, select

            from store.models import Case

            ours = select(func.count()).select_from(Case).where(Case.id.like("LAB-%"))
            with engine.connect() as c:
                stored = c.scalar(ours.where(Case.origin == "replay"))
                closed = c.scalar(ours.where(Case.status == "closed"))
            engine.dispose()
        finally:
            stop_server(proc)
        sent = sum(summary.sent.values())
        accepted_reports = summary.count("reports", "accepted")
        commands = summary.count("commands", "accepted") + accepted_reports
        groups = after["pipeline"]["groups"] - before["pipeline"]["groups"]
        ok = stored == accepted_reports and not summary.rejected("commands")
        status = at_most(summary.seconds, TARGET_S) if ok else FAIL
        title = f"Replay: LA 311 ({len(rows):,} rows) at --speed max"
        table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
        for col in ("rows", "inputs sent", "seconds", "cases", "closed", "commands applied", "commands/s",
                    "inputs/s", "target", "pass/fail"):  # fmt: skip
            table.add_column(col, justify="right" if col not in ("target", "pass/fail") else "left")
        colour = {PASS: "green", FAIL: "bold red"}.get(status, "")
        table.add_row(
            f"{len(rows):,}", f"{sent:,}", f"{summary.seconds:.1f}", f"{stored:,}", f"{closed:,}",
            f"{commands:,}", f"{commands / summary.seconds:,.0f}", f"{sent / summary.seconds:,.0f}",
            f"≤ {TARGET_S:.0f} s",
            f"[{colour}]{status}[/]" if colour else status,
        )  # fmt: skip
        console.print(table)
        outcomes = "; ".join(f"{k} {o} {n:,}" for k, o, _, n in summary.rows())
        notes = (f"server {server_cores:.2f} cores, replay client {client_cores:.2f} cores; "
                 f"{groups:,} commit groups ({sent / max(groups, 1):.1f} inputs each); "
                 f"{summary.retries} retries; planning {plan_s:.1f} s")  # fmt: skip
        say(f"replay: {notes}")
        say(f"replay: outcomes: {outcomes}")
        say(f"replay: {load_line()}")
        label = f"replay: LA 311 {len(rows):,} rows, --speed max"
        target = f"≤ {TARGET_S:.0f} s"
        return [Result(label, commands, summary.seconds, "commands", target, status if ok else FAIL, notes)]
    finally:
        if not os.environ.get("GW_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


if __name__ == "__main__":
    import sys

    results = run()
    sys.exit(1 if any(r.status == FAIL for r in results) else 0)
