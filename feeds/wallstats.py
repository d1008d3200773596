"""The wall's statistics beside the street ranking: what the seed's evaluation is for (issue 19 item 6).

- **Departments** by CJ/T 292 综合指标值, month to date (the same evaluation table as the desk's
  department level, 超时未处置 now in 应结案), best first; only departments with a score (a
  街道分中心 that handles nothing itself has none).
- **部件 / 事件** and **sources** (案件来源) of the reports, today and this month.
- **高发问题**: the most reported minor classes, today and this month (``TOP_N`` each).

Computed by the ranking chore every minute (``feeds.chores``) and sent to the wall's room as
``stats`` (docs/protocol.md): the KPI tiles are live within a second, these minute by minute.
Pure reads: the daily counters (:class:`feeds.counters.DailyCounters`) and one grouped query on
the case table.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, tzinfo
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from store.models import Case

TOP_N = 5


def period_starts(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The starts of the city's month and day at ``now``."""
    today: date = now.astimezone(tz).date()
    return (
        datetime.combine(today.replace(day=1), time(), tz),
        datetime.combine(today, time(), tz),
    )


def case_mix(
    conn: Connection, month_start: datetime, today_start: datetime, top: int = TOP_N
) -> dict[str, Any]:
    """Reports since ``month_start`` (and since ``today_start``) by kind, by source, and the ``top``
    minor classes (``"<kind>:<code>"`` with their count, most first; ties by key)."""
    today = sql_case((Case.reported_at >= today_start, 1), else_=0).label("today")
    q = (
        select(Case.kind, Case.class_code, Case.source, today, func.count())
        .where(Case.reported_at >= month_start)
        .group_by(Case.kind, Case.class_code, Case.source, today)
    )
    out: dict[str, Any] = {}
    periods = {"month": (Counter[str](), Counter[str](), Counter[str]()),
               "today": (Counter[str](), Counter[str](), Counter[str]())}  # fmt: skip
    for kind, code, source, is_today, n in conn.execute(q):
        for name in ("month", "today") if is_today else ("month",):
            kinds, sources, classes = periods[name]
            kinds[str(kind)] += int(n)
            sources[str(source)] += int(n)
            classes[f"{kind}:{code}"] += int(n)
    for name, (kinds, sources, classes) in periods.items():
        ranked = sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out[name] = {
            "reports": sum(kinds.values()),
            "kinds": dict(sorted(kinds.items())),
            "sources": dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))),
            "top": [{"key": k, "n": n} for k, n in ranked],
        }
    return out
