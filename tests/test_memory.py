"""Memory: every GridWall process caps glibc's malloc arenas before its threads start (issue 20 item 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a process whose 32 threads allocate at once, then glibc's own count of its arenas (malloc_info's
# <heap nr=…> entries); with ``cap`` it first calls what gridwall.runtime.build calls
PROBE = r"""
import ctypes, sys, tempfile, threading
sys.path.insert(0, sys.argv[2])
if sys.argv[1] == "cap":
    from feeds.core import limit_malloc_arenas
    assert limit_malloc_arenas()
barrier = threading.Barrier(32)
def work():
    barrier.wait()
    keep = [bytearray(4096) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(32)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as f:
    fp = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fp))
    libc.fclose(ctypes.c_void_p(fp))
    print(open(f.name).read().count("<heap nr="))
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(ROOT)], capture_output=True, text=True, check=True,
        stdin=subprocess.DEVNULL, env=env, timeout=120,
    )  # fmt: skip
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas: Linux only")
def test_processes_cap_malloc_arenas() -> None:
    # glibc's default gives busy threads arenas of their own (up to 8 per core); the cap keeps two
    assert _arenas("cap") <= 2
    assert _arenas("default") > 2


def test_malloc_arena_max_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from feeds.core import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # glibc read the operator's value at start


def test_the_trim_chore_gives_freed_heap_pages_back_until_it_stops() -> None:
    import threading

    from feeds.chores import MallocTrim

    calls = threading.Semaphore(0)

    def trim() -> bool:
        calls.release()
        return True

    chore = MallocTrim(trim, every=0.01)
    chore.start()
    try:
        for _ in range(3):  # called again and again, not once
            assert calls.acquire(timeout=30)
    finally:
        chore.stop()
    assert chore._thread is None


def test_the_trim_chore_ends_where_there_is_no_glibc() -> None:
    from feeds.chores import MallocTrim

    chore = MallocTrim(lambda: False, every=0.01)
    chore.start()
    thread = chore._thread
    assert thread is not None
    thread.join(timeout=30)
    assert not thread.is_alive()
    chore.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_glibc_is_trimmed_and_every_process_has_the_chore(tmp_path: Path) -> None:
    from feeds.chores import MallocTrim
    from feeds.core import trim_malloc
    from gridwall.runtime import Seams, build
    from gridwall.settings import Settings
    from store.build import BuildRequest, build_city
    from store.db import create_engine

    assert trim_malloc() is True  # glibc here
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    build_city(engine, BuildRequest())
    core = build(Settings(tmp_path, str(engine.url)), "embedded", Seams(engine=engine, secret_key="memory"))
    assert [c for c in core.chores if isinstance(c, MallocTrim)]  # built, not started
    assert core.web is not None
    assert hasattr(core.web.server.view_functions["/_dash-update-component"], "__wrapped__")  # in turns
    engine.dispose()


def test_dash_callbacks_run_a_few_at_a_time() -> None:
    # twelve page renders at once each held their temporaries twelve times as long (the fuzz's desk pages)
    import threading

    import dash
    from dash import Input, Output, dcc, html

    from gridwall.runtime import DASH_CALLS_AT_ONCE, limit_dash_calls

    app = dash.Dash(__name__)
    app.layout = html.Div([dcc.Input(id="a"), html.Div(id="b")])
    lock, entered, release = threading.Lock(), threading.Semaphore(0), threading.Event()
    inside = most = 0

    @app.callback(Output("b", "children"), Input("a", "value"))
    def slow(value: str) -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        entered.release()
        release.wait(60)
        with lock:
            inside -= 1
        return value

    limit_dash_calls(app)
    body = {
        "output": "b.children", "outputs": {"id": "b", "property": "children"}, "state": [],
        "inputs": [{"id": "a", "property": "value", "value": "x"}], "changedPropIds": ["a.value"],
    }  # fmt: skip
    answers: list[int] = []

    def call() -> None:
        answers.append(app.server.test_client().post("/_dash-update-component", json=body).status_code)

    threads = [threading.Thread(target=call) for _ in range(3 * DASH_CALLS_AT_ONCE)]
    for th in threads:
        th.start()
    for _ in range(DASH_CALLS_AT_ONCE):
        assert entered.acquire(timeout=60)
    assert not entered.acquire(timeout=0.3)  # the others wait for a turn
    release.set()
    for th in threads:
        th.join(timeout=60)
    assert answers == [200] * len(threads)
    assert most == DASH_CALLS_AT_ONCE


def test_the_minutes_ranking_reads_through_the_read_engine_not_the_writers(tmp_path: Path) -> None:
    # the writer's connections keep 16 MiB page caches (store.ingest.tune_writer): the month's cases the
    # ranking read through them stayed there (+34 MB of the fuzz's desk schema)
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import event

    from domain.evaluation import DailyAggregates
    from feeds.counters import CounterKeeper
    from store.db import create_engine
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'gw.db'}"
    writer, reader = create_engine(url), create_engine(url, write=False)
    upgrade(writer)
    used: list[str] = []
    event.listen(writer, "engine_connect", lambda conn: used.append("writer"))
    event.listen(reader, "engine_connect", lambda conn: used.append("reader"))
    keeper = CounterKeeper(writer, DailyAggregates(tz=ZoneInfo("Asia/Shanghai")), reader=reader)
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    used.clear()  # the migrations wrote through the writer
    keeper.street_ranking(now, {})
    keeper.wall_stats(now)
    assert used and set(used) == {"reader"}
    writer.dispose()
    reader.dispose()
