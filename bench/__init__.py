"""GridWall benchmarks (``python -m bench``); their smoke runs (``--smoke``) are in the test suite.

Shared helpers: where the real data lives, the machine description, timing and the result table.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "SKIP", "—"

# Set by ``python -m bench --smoke``: every benchmark runs a tiny workload through the same code, so
# that a format or API change breaks a test (tests/test_bench_smoke.py), not a benchmark found weeks
# later. Speed targets mean nothing on a tiny workload, so they are not judged (:func:`judged`);
# correctness checks (row counts, same answers, no gaps) still fail.
SMOKE = False
SMOKE_NOTE = "smoke run: speed not judged"

# Wide enough for the tables when the output is piped into a file (rich defaults to 80 columns).
console = Console(width=None if sys.stdout.isatty() else 170)


def shared_dir() -> Path:
    """The ``shared`` folder: ``$GW_SHARED_DIR`` or ``../shared`` next to the repo root."""
    return Path(os.environ.get("GW_SHARED_DIR", ROOT.parent / "shared"))


def shared_data() -> Path:
    """The real data folder ``shared/data`` (read-only; never copied into the repo)."""
    return shared_dir() / "data"


@dataclass
class Result:
    """One row of a benchmark table."""

    benchmark: str
    n: int | None
    seconds: float | None
    unit: str = ""
    target: str = ""
    status: str = INFO
    notes: str = ""

    @property
    def rate(self) -> str:
        if not self.n or not self.seconds:
            return ""
        return f"{self.n / self.seconds:,.0f} {self.unit}/s".strip()


def judged(ok: bool) -> str:
    """Status of a speed target: PASS or FAIL, or INFO in a smoke run (a tiny workload proves no speed)."""
    if SMOKE:
        return INFO
    return PASS if ok else FAIL


def at_most(seconds: float, limit: float) -> str:
    """Status of a 'takes at most ``limit`` seconds' target."""
    return judged(seconds <= limit)


def at_least(rate: float, limit: float) -> str:
    """Status of a 'at least ``limit`` per second' target."""
    return judged(rate >= limit)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    box_: list[float] = [0.0]
    start = time.perf_counter()
    try:
        yield box_
    finally:
        box_[0] = time.perf_counter() - start


def print_table(title: str, results: list[Result]) -> None:
    """Print the results as a rich table: benchmark, n, seconds, rate, target, pass/fail, notes."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", show_lines=False)
    table.add_column("benchmark")
    table.add_column("n", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("target")
    table.add_column("pass/fail")
    table.add_column("notes")
    colour = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
    for r in results:
        status = f"[{colour[r.status]}]{r.status}[/]" if r.status in colour else r.status
        table.add_row(
            r.benchmark,
            f"{r.n:,}" if r.n is not None else "",
            f"{r.seconds:.3f}" if r.seconds is not None else "",
            r.rate,
            r.target,
            status,
            r.notes,
        )
    console.print(table)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_lines() -> list[str]:
    """CPU model, cores, RAM, Python and library versions, date."""
    import numpy
    import shapely
    import sqlalchemy

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return [
        f"date     {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"cpu      {_cpu_model()} ({cores} cores usable, {os.cpu_count()} online)",
        f"ram      {_ram_gib()}",
        f"python   {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}",
        f"libs     shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), "
        f"numpy {numpy.__version__}, SQLAlchemy {sqlalchemy.__version__}",
        f"data     {shared_data()}",
    ]


@dataclass
class HarnessRow:
    """One row of the fault/fuzz/soak table (issue 20): what was tried and what came of it."""

    case: str  # e.g. "fuzz /device positions", "kill -9 ingest consumer", "soak 30 min"
    tried: int  # inputs sent (fuzz), acknowledged inputs (faults), fixes offered (soak)
    refused: int = 0  # answered with a named rejection (malformed, too_large, …)
    server_errors: int = 0  # 5xx answers, tracebacks in a log, `unavailable` outside an outage
    lost: int = 0  # acknowledged or valid inputs missing afterwards; missing acks
    recovered_s: float | None = None  # seconds until walls tick again after the fault
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    status: str = INFO
    notes: str = ""


def print_harness(title: str, rows: list[HarnessRow]) -> None:
    """Print the harness table: tried / refused by name / 5xx / lost / recovered in s / RSS start–end."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    right = ("tried", "refused by name", "5xx", "lost", "recovered in s", "RSS start–end MB")
    for name in ("case", *right, "pass/fail", "notes"):
        table.add_column(name, justify="right" if name in right else "left")
    colour = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
    for r in rows:
        rss = (
            f"{r.rss_start_mb:,.0f}–{r.rss_end_mb:,.0f}"
            if r.rss_start_mb is not None and r.rss_end_mb is not None
            else ""
        )
        status = f"[{colour[r.status]}]{r.status}[/]" if r.status in colour else r.status
        table.add_row(
            r.case, f"{r.tried:,}", f"{r.refused:,}", f"{r.server_errors:,}", f"{r.lost:,}",
            f"{r.recovered_s:.1f}" if r.recovered_s is not None else "", rss, status, r.notes,
        )  # fmt: skip
    console.print(table)


def harness_results(benchmark: str, rows: list[HarnessRow]) -> list[Result]:
    """The harness rows as ordinary result rows (``python -m bench`` counts their pass/fail)."""
    out = []
    for r in rows:
        notes = f"refused {r.refused}, 5xx {r.server_errors}, lost {r.lost}"
        if r.recovered_s is not None:
            notes += f", recovered {r.recovered_s:.1f} s"
        out.append(
            Result(f"{benchmark}: {r.case}", r.tried, None, status=r.status, notes=f"{notes}; {r.notes}")
        )
    return out
