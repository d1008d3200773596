"""The read model and the Flask side of the units' evaluation by their objects (issue 18 item 6): the
table of ``/evaluation/owners`` (``layouts.component_stats``) and ``GET /evaluation/owners.csv``, the
same table as CSV (pandas).

The path is under ``/evaluation``, which the login module guards (a desk session); the period, role
and language are checked like the page's, a bad one refused by name (400).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

import pandas as pd
from flask import Flask, Response, request
from sqlalchemy.engine import Engine

from dashboard.evaluation_data import BadRequest, Period, local_today, parse_period
from domain.component import Role
from domain.evaluation import SHANGHAI
from store.component_stats import ROLES, RecurringRule, StatsRequestError, owner_evaluation


def period_instants(period: Period) -> tuple[datetime, datetime]:
    """The UTC instants of a period's first local midnight and the midnight after its last day."""
    start = datetime.combine(period.start, time(), SHANGHAI)
    return start, datetime.combine(period.end + timedelta(days=1), time(), SHANGHAI)


def parse_role(value: str | None) -> Role | None:
    """The ``role`` filter: main, owner or care (None: all three)."""
    if not value:
        return None
    for r in ROLES:
        if value == r.name.lower():
            return r
    raise StatsRequestError("bad_role", f"role={value[:12]!r} is not one of main, owner, care")


def owner_table(
    engine: Engine, period: Period, now: datetime, role: Role | None, rule: RecurringRule | None = None
) -> pd.DataFrame:
    """The owner evaluation of a period (recurring objects as of the period's end, or now if sooner)."""
    start, end = period_instants(period)
    with engine.connect() as conn:
        return owner_evaluation(
            conn, start, end, rule, roles=(role,) if role else ROLES, recurring_at=min(now, end)
        )


def export_href(period: Period, role: Role | None, lang: str) -> str:
    """The CSV link of a period and role."""
    q = {"period": period.kind, "from": period.start.isoformat(), "to": period.end.isoformat(), "lang": lang}
    if role is not None:
        q["role"] = role.name.lower()
    return "/evaluation/owners.csv?" + urlencode(q)


def export_csv(frame: pd.DataFrame, period: Period) -> bytes:
    """The owner evaluation as CSV (UTF-8 with BOM, for spreadsheet programs)."""
    out = frame.copy()
    out.insert(3, "from", period.start.isoformat())
    out.insert(4, "to", period.end.isoformat())
    return out.to_csv(index=False).encode("utf-8-sig")


def install(server: Flask, engine: Engine, clock: Callable[[], datetime]) -> None:
    """Register ``/evaluation/owners.csv`` (the clock: the city's, injectable)."""

    @server.get("/evaluation/owners.csv")
    def owners_export() -> Response:
        args = request.args
        now = clock()
        try:
            period = parse_period(
                (args.get("period") or "")[:10] or None,
                (args.get("from") or "")[:10] or None,
                (args.get("to") or "")[:10] or None,
                local_today(now),
            )
            role = parse_role((args.get("role") or "")[:10] or None)
            rule = RecurringRule.parse(args.get("min"), args.get("days"))
        except (BadRequest, StatsRequestError) as exc:
            return Response(f"{exc.reason}: {exc}\n", status=400, mimetype="text/plain")
        frame = owner_table(engine, period, now, role, rule)
        scope = f"-{role.name.lower()}" if role else ""
        name = f"owners{scope}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
        return Response(
            export_csv(frame, period),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
