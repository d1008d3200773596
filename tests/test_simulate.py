"""The simulate command: seeded cases through the lifecycle, evaluated per CJ/T 292."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from feeds.simulate import simulate
from store.build import BuildRequest, build_city
from store.db import create_engine
from tests.serve import ROOT

START = datetime(2025, 9, 22, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday


def test_street_table_names_the_real_streets(shared_data: Path, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    build_city(engine, BuildRequest(streets=shared_data / "boundaries" / "dongcheng_streets_gcj02.geojson"))
    report = simulate(engine, days=2, start=START, seed=7, reports_per_day=400)
    streets = report.streets
    assert len(streets) == 17
    assert "东华门街道" in set(streets["name"]) and "天坛街道" in set(streets["name"])
    assert set(streets["object_id"]) == {f"110101{n:03d}" for n in range(1, 18)}
    # every case is reported in exactly one street: the street counts add up to all cases
    assert int(streets["reported"].sum()) == report.figures["cases"]
    assert streets["score"].is_monotonic_decreasing
    assert set(streets["grade"]) <= {"A", "B", "C", "D", "E"}
    # departments carry catalogue names; supervisors are one per responsibility area
    assert "区环卫中心" in set(report.departments["name"])
    # the 17 街道分中心 have their own table with their 二级派遣 numbers, not zeros among the units
    subs = report.subcentres
    assert len(subs) == 17 and not set(subs["object_id"]) & set(report.departments["object_id"])
    assert int(subs["sub_received"].sum()) > 0 and int(subs["sub_dispatched"].sum()) > 0
    assert int(report.departments["sub_received"].sum()) == 0
    assert subs["sub_dispatch_on_time_rate"].notna().any()
    assert all(s.startswith("sup-110101") and "R" in s for s in report.supervisors["object_id"])


def test_cli_prints_simulated_tables(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "simulate", "--days", "1", "--start", "2025-09-22",
         "--reports-per-day", "300", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=True, timeout=300,
    )  # fmt: skip
    text = out.stdout
    assert "模拟数据" in text
    assert "片区01（生成）" in text  # built-in district with generated streets, marked as such
    headers = ("街道 streets", "专业部门 departments", "街道分中心 sub-centres", "按时二级派遣率",
               "监督员 supervisors", "综合指标值", "等级")  # fmt: skip
    for header in headers:
        assert header in text
