"""The shift handover (交班, issue 21 part 4): what a snapshot and its PDF cost with many open cases.

A SQLite store (the embedded default) is filled with ``n`` open cases spread over the display stages
and ages, one running stage timer each (a tenth near their deadline, a third past it), a 核实/核查
task out for every tenth case and a 督办单 for every fiftieth; then, at the city's 15:55:

- ``store.handover.snapshot`` (what ``/desk/handover`` draws as its draft on every visit and what
  ``handover_open`` stores): target ≤ 1 s at 50,000 open cases;
- the printable page (``layouts.handover.print_html``) and its PDF (WeasyPrint, Noto CJK): ≤ 10 s.

``python -m bench handover`` (``--smoke``: 500 cases).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from bench import Result, at_most, print_table
from domain.lifecycle import DISPLAY_STAGE, Stage
from store.db import create_engine
from store.handover import Handover, snapshot
from store.migrate import upgrade
from store.models import Case, StageTimerRow, Task

N_FULL, N_SMOKE = 50_000, 500
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 15, 55, tzinfo=TZ).astimezone(UTC)
SHIFT = (
    datetime(2026, 12, 2, 8, tzinfo=TZ).astimezone(UTC),
    datetime(2026, 12, 2, 16, tzinfo=TZ).astimezone(UTC),
)
STATUS_OF = {stage: status for status, stage in DISPLAY_STAGE.items()}


def fill(engine_url: str, n: int) -> None:
    """``n`` open cases with their running stage timers, tasks out and 督办单."""
    engine = create_engine(engine_url)
    upgrade(engine)
    stages = list(Stage)
    cases, timers, tasks = [], [], []
    for i in range(n):
        stage = stages[i % len(stages)]
        reported = NOW - timedelta(minutes=7 * (i % 6000) + 3)
        started = NOW - timedelta(minutes=40 + i % 30)
        deadline = (
            (started + timedelta(minutes=45)) if i % 10 == 0 else NOW + timedelta(minutes=(i % 3 - 1) * 60)
        )
        urged = i % 50 == 0
        order = [
            1,
            "lead",
            "10",
            started.isoformat(),
            (NOW + timedelta(hours=1)).isoformat(),
            None,
            "",
            "请尽快",
        ]
        state: dict[str, object] = {"orders": [order]} if urged else {}
        cases.append(
            {
                "id": f"B{i:09d}",
                "kind": "event",
                "class_code": "0101",
                "condition_code": "01",
                "source": "public",
                "status": STATUS_OF[stage].value,
                "stage": stage.value,
                "open": True,
                "emergency": i % 97 == 0,
                "grid_code": None,
                "reporter": "bench",
                "description": "",
                "reported_at": reported,
                "updated_at": reported,
                "deadline": deadline,
                "urges": 1 if urged else 0,
                "state": state,
                "department_code": None,
            }
        )
        timers.append(
            {
                "case_id": f"B{i:09d}",
                "stage": "handle",
                "limit_value": 1.0,
                "limit_unit": "hours",
                "started_at": started,
                "deadline": deadline,
                "paused_since": None,
                "paused_seconds": 0.0,
                "ended_at": None,
                "overdue": False,
            }
        )
        if i % 10 == 0:
            tasks.append(
                {
                    "case_id": f"B{i:09d}",
                    "kind": "verify",
                    "assignee": "sup-1",
                    "created_at": started,
                    "deadline": deadline,
                }
            )
    with engine.begin() as conn:
        for rows, table in ((cases, Case), (timers, StageTimerRow), (tasks, Task)):
            for k in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[k : k + 5000])
    engine.dispose()


def run(smoke: bool = False) -> list[Result]:
    """Fill a store, then time the snapshot (3 runs, median) and the PDF of the handover."""
    from layouts.handover import PRINT_ROWS, Names, pdf_bytes, print_html

    n = N_SMOKE if smoke else N_FULL
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'handover.db'}"
        fill(url, n)
        engine = create_engine(url)
        times, cpu = [], []
        snap: dict[str, Any] = {}
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            with engine.connect() as conn:
                snap = snapshot(conn, NOW, *SHIFT)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        engine.dispose()
    snap_s = statistics.median(times)
    total = int(snap["open"]["total"])
    h = Handover(
        1, SHIFT[0], SHIFT[1], "sl", "值班长", NOW, dict(snap), "交班说明：基准测试", "sl2", "接班长", NOW, ""
    )
    t0, c0 = time.perf_counter(), time.process_time()
    document = print_html(h, "zh", Names({"event:0101": "私搭乱建"}, {}, {"10": "区城管委"}), "东城区")
    pdf = pdf_bytes(document)
    pdf_s, pdf_cpu = time.perf_counter() - t0, time.process_time() - c0
    ok = total == n and pdf.startswith(b"%PDF")
    rows = [
        Result(
            "handover snapshot",
            n,
            snap_s,
            "open cases",
            "≤ 1 s at 50,000 open cases",
            at_most(snap_s, 1.0) if ok else "FAIL",
            f"median of 3 ({statistics.median(cpu):.2f} s CPU); counted {total:,} open (must be {n:,}); "
            "overdue "
            f"{snap['overdue']['count']:,}, near deadline {snap['near_deadline']['count']:,}, tasks "
            f"{snap['tasks']['count']:,}, 督办单 {snap['orders']['count']:,}",
        ),
        Result(
            "handover printable page + PDF",
            1,
            pdf_s,
            "documents",
            "≤ 10 s",
            at_most(pdf_s, 10.0) if ok else "FAIL",
            f"WeasyPrint, {pdf_cpu:.1f} s CPU, {len(pdf):,} bytes; on paper {PRINT_ROWS} rows a list",
        ),
    ]
    print_table(f"handover (issue 21 part 4): {n:,} open cases, SQLite", rows)
    return rows
