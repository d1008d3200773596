"""The Flask side of the desk's people and evaluation pages (issue 8 items 7–9).

:func:`install` adds the CSV export and the HTTP 404 of an unknown supervisor to the web app and
keeps the read engine and the live state in ``server.extensions``, where the pages
(``layouts.people``: ``/supervisor/<id>``, ``/desk/when``, ``/evaluation``) find them with
:func:`people`. Guarding these paths (a session) is the login module's (``/supervisor/*``,
``/desk*``, ``/evaluation*``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, Response, current_app, request
from sqlalchemy.engine import Engine

from dashboard.auth import not_found_page
from dashboard.data import Overview
from dashboard.evaluation_data import (
    BadRequest,
    export_csv,
    local_today,
    parse_level,
    parse_period,
    parse_street,
    ranking,
)
from dashboard.i18n import pick_lang
from dashboard.people_data import supervisor
from feeds.live import LiveReader

EXTENSION = "gridwall.desk_people"


@dataclass
class DeskPeople:
    """What the pages read: the read engine, the live state (once the core runs) and a clock."""

    engine: Engine
    live: Callable[[], LiveReader | None]
    overview: Callable[[], Overview | None]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def people() -> DeskPeople:
    """What the people pages read, from the current Flask app (set by :func:`install`)."""
    found: DeskPeople = current_app.extensions[EXTENSION]
    return found


def install(
    server: Flask,
    engine: Engine,
    live: Callable[[], LiveReader | None],
    overview: Callable[[], Overview | None],
    clock: Callable[[], datetime] | None = None,
) -> DeskPeople:
    """Register the export route and the 404 check of ``/supervisor/<id>``; keep what the pages read."""
    shared = DeskPeople(engine, live, overview, clock or (lambda: datetime.now(UTC)))
    server.extensions[EXTENSION] = shared

    @server.before_request
    def unknown_supervisor() -> Response | None:
        path = request.path.rstrip("/")
        if not path.startswith("/supervisor/"):
            return None
        pid = path.removeprefix("/supervisor/")
        with engine.connect() as conn:
            found = supervisor(conn, pid) if pid and "/" not in pid else None
        if found is not None:
            return None
        return not_found_page(pick_lang(request.args.get("lang")))  # the desk's 404 page

    @server.get("/evaluation/export.csv")
    def evaluation_export() -> Response:
        args = request.args
        try:
            kind = parse_level(args.get("level"))
            period = parse_period(
                args.get("period"), args.get("from"), args.get("to"), local_today(shared.clock())
            )
            street = parse_street(args.get("street"))
        except BadRequest as exc:
            return Response(f"{exc.reason}: {exc}\n", status=400, mimetype="text/plain")
        r = ranking(engine, kind, period, now=shared.clock(), within=street)
        body = export_csv(r)
        scope = f"-{r.within}" if r.within else ""
        name = f"evaluation-{kind.value}{scope}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
        return Response(
            body,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return shared
