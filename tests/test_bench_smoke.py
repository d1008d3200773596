"""Every benchmark's smoke run: ``python -m bench NAME --smoke`` must finish and print result rows.

A smoke run is the benchmark's own code on a tiny workload (seconds), so a change of a message format,
a constructor or a module that a benchmark uses breaks this test the day it is made, not a benchmark
run weeks later (``python -m bench fanout`` read a tick column the wall had stopped sending). Speed
targets are not judged on a tiny workload; correctness checks are (row counts, same answers, no
``seq`` gaps, every tagged fix seen), and a FAIL row fails the test.

These runs are benchmarks, so they are not part of the suite (``make test``): ``make bench-smoke``
runs them, and CI runs it after the suite. Each benchmark runs in its own process, as a user runs it.
The services and data a benchmark needs are asked for through the suite's fixtures: missing, they skip
loudly, or fail with ``GW_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import BENCHMARKS
from tests.conftest import PG_BASE, REDIS_URL, SHARED

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.bench_smoke  # pyproject's addopts leave these out of the suite

# what each smoke run needs beyond Python: the fixtures that provide it (or skip/fail as the suite does)
NEEDS: dict[str, tuple[str, ...]] = {
    "init": ("pg_server_url",),
    "lifecycle": ("pg_server_url",),
    "wall": ("chromium_path",),
    "handset": ("chromium_path",),
    "replay": ("shared_data",),
    "roadgrid": ("shared_data",),
    "desk_eval": ("pg_server_url",),
    "scale": ("pg_server_url", "redis_url"),
    "desk_pages": ("pg_server_url",),
    "components": ("pg_server_url", "shared_data"),
    "component_tiles": ("shared_data",),
    "risk": ("shared_data",),  # the LA 311 replay
    "faults": ("pg_server_url", "redis_url"),  # it starts private ones from the same binaries
    "soak": ("pg_server_url", "redis_url"),
}
MARKS = {"pg_server_url": pytest.mark.postgres, "chromium_path": pytest.mark.browser,
         "shared_data": pytest.mark.shared_data}  # fmt: skip
SUMMARY = re.compile(r"^(\w+): (\d+) result rows \((\d+) passed, (\d+) failed, (\d+) skipped\)", re.M)


# benchmarks without a smoke run yet, and why (each one is a gap, listed in BENCHMARKS.md); none at present
NO_SMOKE: dict[str, str] = {}
# the scale-out ones (about half the minutes) run from tests/test_bench_smoke_scaleout.py, so that the
# suite's workers (a test file each at a time) share them
SCALE_OUT = ("scale", "faults", "soak", "fanout", "wall")


def smoke_params(names: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> list[Any]:
    """One pytest parameter per benchmark (``names``, default all, less ``exclude``), marked by its needs."""
    out = []
    for name in names or tuple(BENCHMARKS):
        if name in exclude:
            continue
        marks = [MARKS[n] for n in NEEDS.get(name, ()) if n in MARKS]
        if name in NO_SMOKE:
            marks.append(pytest.mark.skip(reason=NO_SMOKE[name]))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", smoke_params(exclude=SCALE_OUT))
def test_smoke(name: str, request: pytest.FixtureRequest) -> None:
    """``python -m bench <name> --smoke`` exits 0 and prints its result rows, none failed."""
    run_smoke(name, request)


def run_smoke(name: str, request: pytest.FixtureRequest) -> None:
    """Run one benchmark's smoke run as a user would and check its result rows."""
    for fixture in NEEDS.get(name, ()):
        request.getfixturevalue(fixture)
    env = dict(os.environ, GW_BENCH_PG=PG_BASE, GW_BENCH_REDIS=REDIS_URL.rsplit("/", 1)[0] + "/14",
               GW_SHARED_DIR=str(SHARED), COLUMNS="200")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "bench", name, "--smoke"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    tail = out[-6000:]
    found = {m.group(1): [int(g) for g in m.groups()[1:]] for m in SUMMARY.finditer(proc.stdout)}
    assert name in found, f"no result rows printed for {name} (exit {proc.returncode}):\n{tail}"
    rows, _passed, failed, _skipped = found[name]
    assert rows > 0, f"{name} printed no result rows:\n{tail}"
    assert failed == 0, f"{name}: {failed} result rows failed:\n{tail}"
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{tail}"
