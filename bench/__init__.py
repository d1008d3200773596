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
