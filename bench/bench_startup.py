"""Start-up (issue 4, "Done when"): ``python app.py run`` from an empty folder serves a living Dongcheng.

Each run starts ``app.py run`` (embedded defaults: SQLite, the built-in district, the simulation with
its 7-day backfill) in a new empty folder with stdin closed, and times, from the process start:

* the wall and desk URLs printed (the district is built, the week backfilled, accounts provisioned);
* a third-party python-socketio client on ``/live`` with the printed kiosk token: its ``snapshot``
  and the first ``tick`` after it that changes something (supervisors that moved, cases that moved
  on, ticker lines). Simulated supervisors patrol in the city's working hours, so in the evening
  (Asia/Shanghai) only cases move and "on duty" is 0; the table says how many were on duty.

Target: that tick within 30 s, with the simulation's data (``sim: true``). A second start on the
same folder (the district and history already there) is timed too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import socketio
from rich import box
from rich.table import Table

from bench import FAIL, ROOT, Result, console, judged
from bench._server import load_line
from tests.serve import free_port

TARGET_S = 30.0


@dataclass
class Start:
    """One start's timings (seconds from the process start)."""

    label: str
    urls: float | None = None
    snapshot: float | None = None
    tick: float | None = None
    first_tick: float | None = None  # any tick after the snapshot, changing or not
    supervisors: int = 0
    on_duty: int = 0
    simulated: bool = False


def _start(folder: Path, label: str, timeout: float = 180.0, any_tick: bool = False) -> Start:
    """Start ``app.py run`` in ``folder``; wait for the first changing tick (``any_tick``: any tick)."""
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "run", "--port", str(port)],
        cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out = Start(label)
    wall = None
    try:
        assert proc.stdout is not None
        while wall is None and time.monotonic() - t0 < timeout:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"app.py run exited with {proc.returncode}")
            if m := re.match(r"wall: (http://\S+)", line):
                wall = m.group(1)
        if wall is None:
            raise RuntimeError("app.py run printed no wall URL")
        out.urls = time.monotonic() - t0
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        base, token = wall.split("/wall?token=")
        got = threading.Event()
        client = socketio.Client(reconnection=True)

        def on_snapshot(msg: dict) -> None:
            if out.snapshot is None:
                out.snapshot = time.monotonic() - t0
                out.supervisors = len(msg["sup"]["id"])
                out.on_duty = sum(1 for s in msg["sup"]["status"] if s != "offline")
                out.simulated = bool(msg["sim"])

        def on_tick(msg: dict) -> None:
            moved = msg["sup"]["id"] or msg["cases"]["id"] or msg["gone"] or msg["events"]
            if out.snapshot is not None and out.first_tick is None:
                out.first_tick = time.monotonic() - t0
                if any_tick:  # the smoke run: the format is read; a changing tick may take a while
                    got.set()
            if out.snapshot is not None and out.tick is None and moved:
                out.tick = time.monotonic() - t0  # the first tick in which the simulated city changed
                got.set()

        client.on("snapshot", on_snapshot, namespace="/live")
        client.on("tick", on_tick, namespace="/live")
        while True:  # the URLs are printed just before the server listens
            try:
                client.connect(base, namespaces=["/live"], auth={"token": token}, transports=["websocket"])
                break
            except socketio.exceptions.ConnectionError:
                if time.monotonic() - t0 > timeout:
                    raise
                time.sleep(0.05)
        got.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        client.disconnect()
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(smoke: bool = False) -> list[Result]:
    """Start from an empty folder, then again on the same folder; print the table.

    ``smoke``: the first start only, until its first tick (changing or not).
    """
    console.print(f"startup: {load_line()}", highlight=False)
    folder = Path(tempfile.mkdtemp(prefix="gw-bench-startup-"))
    try:
        starts = [_start(folder, "first start, empty folder", any_tick=smoke)]
        if not smoke:
            starts.append(_start(folder, "second start, same folder"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    console.print(f"startup: {load_line()}", highlight=False)
    table = Table(title="startup: python app.py run (embedded defaults, simulation on)", box=box.SIMPLE_HEAD)
    for col in ("start", "URLs printed", "snapshot", "first changing tick", "supervisors", "on duty", "sim",
                "target", "pass/fail"):  # fmt: skip
        table.add_column(col, justify="left" if col == "start" else "right")
    results: list[Result] = []

    def s(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} s"

    for st in starts:
        living = st.simulated and st.supervisors > 0 and st.first_tick is not None
        if smoke:  # the first changing tick is the target: not judged on a smoke run
            status = judged(True) if living else FAIL
        else:
            status = judged(st.tick is not None and st.tick <= TARGET_S) if living else FAIL
        target = f"≤ {TARGET_S:.0f} s"
        table.add_row(st.label, s(st.urls), s(st.snapshot), s(st.tick), f"{st.supervisors:,}",
                      f"{st.on_duty:,}", str(st.simulated), target, status)  # fmt: skip
        results.append(Result(f"startup: {st.label}", None, st.tick, target=target, status=status))
    console.print(table)
    return results
