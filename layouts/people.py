"""The desk's people and evaluation pages (issue 8 items 7–9): evaluation, where-when, supervisor.

They read the store themselves (``dashboard.desk_people.people()``: the read engine, the live state
and a clock kept on the Flask app), so they answer before a district is imported: their routes are
:class:`layouts.chrome.QueryRoute`. The page bodies are ``layouts.evaluation``, ``layouts.when`` and
``layouts.supervisor``; callbacks only read. The Flask side (CSV export, the 404 of an unknown
supervisor) is ``dashboard.desk_people``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, State, ctx, html

from dashboard import ids
from dashboard.auth import current_person
from dashboard.desk_people import people as _ext
from dashboard.evaluation_data import (
    SCOPED,
    BadRequest,
    local_today,
    parse_level,
    parse_period,
    parse_street,
    ranking,
    street_names,
)
from dashboard.figures import supervisor_map, when_map
from dashboard.i18n import pick_lang, t
from dashboard.people_data import (
    area_grids,
    day_start,
    parse_instant,
    patrol_minutes,
    reports_today,
    supervisor,
    tasks_today,
    thin,
    track,
    track_km,
    where_at,
)
from domain.supervisor import status_at
from layouts import evaluation, when
from layouts import supervisor as supervisor_layout
from layouts.chrome import ContextOf, QueryRoute
from store.handsets import devices_of


def _role() -> str | None:
    """The logged-in person's role (the router runs only for a desk session; None outside one)."""
    me = current_person()
    return None if me is None else me.get("role")


def _arg(q: Mapping[str, list[str]], name: str) -> str | None:
    values = q.get(name)
    return values[0] if values else None


def _evaluation_page(q: Mapping[str, list[str]], lang: str) -> html.Div:
    people = _ext()
    try:
        kind = parse_level(_arg(q, "level"))
        period = parse_period(_arg(q, "period"), _arg(q, "from"), _arg(q, "to"), local_today(people.clock()))
        street = parse_street(_arg(q, "street"))
    except BadRequest as exc:
        return evaluation.error(str(exc), lang)
    r = ranking(people.engine, kind, period, now=people.clock(), within=street)
    return evaluation.layout(r, lang=lang, streets=street_names(people.engine), role=_role())


def _when_page(q: Mapping[str, list[str]], lang: str) -> html.Div:
    people = _ext()
    try:
        at = parse_instant(_arg(q, "at"), people.clock())
    except ValueError:
        return when.error(t("when.bad_time", lang), lang)
    ov = people.overview()
    with people.engine.connect() as conn:
        rows = where_at(conn, at)
    bounds = ov.summary.bounds if ov else _bounds([r.lon for r in rows], [r.lat for r in rows])
    fig = when_map(
        streets=ov.streets if ov else (), bounds=bounds, lang=lang, ids=[r.id for r in rows],
        lon=[r.lon for r in rows], lat=[r.lat for r in rows], status=[r.status for r in rows],
        labels_url=f"/geo/{ov.summary.adcode}/labels.png" if ov else None,
    )  # fmt: skip
    return when.layout(at, rows, fig, lang=lang, role=_role())


def _bounds(
    lon: list[float | None], lat: list[float | None], pad: float = 0.002
) -> tuple[float, float, float, float]:
    xs = [x for x in lon if x is not None] or [116.4]
    ys = [y for y in lat if y is not None] or [39.9]
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def _supervisor_page(pid: str, lang: str) -> html.Div:
    people = _ext()
    now = people.clock()
    start = day_start(now)
    with people.engine.connect() as conn:
        info = supervisor(conn, pid)
        if info is None:  # the HTTP route answers 404 first; a client-side navigation lands here
            return html.Div(
                html.H1(t("sup.unknown", lang), className="gw-message"), className="gw-page gw-desk"
            )
        full = track(conn, pid, start, now)
        grids = area_grids(conn, info.area)
        reports = reports_today(conn, pid, start)
        tasks = tasks_today(conn, pid, start)
        devices = devices_of(conn, pid)
        live = people.live()
        state = live.latest(pid) if live is not None else None
        if live is not None and state is not None:
            status = status_at(state, now, live.rules, live.area_of_grid).value
            last = state.at
            point = (state.lon, state.lat) if state.at is not None else None
        else:  # no live core in this process: the stored fixes say it
            row = next((r for r in where_at(conn, now) if r.id == pid), None)
            status = row.status if row else "offline"
            last = datetime.fromtimestamp(full.t[-1], UTC) if full.t else None
            point = (full.lon[-1], full.lat[-1]) if full.t else None
    minutes = patrol_minutes(full)
    area_minutes = {code: round(minutes.get(code, 0.0), 1) for code, _ in grids}
    drawn = thin(full)
    features: list[dict[str, object]] = [
        {"type": "Feature", "id": code, "geometry": geom, "properties": {}} for code, geom in grids
    ]
    xs = [float(x) for _, g in grids for x in _coords(g, 0)] + drawn.lon
    ys = [float(y) for _, g in grids for y in _coords(g, 1)] + drawn.lat
    fig = supervisor_map(
        lang=lang, area_features=features, minutes=area_minutes, track_lon=drawn.lon, track_lat=drawn.lat,
        live=point, bounds=_bounds(list(xs), list(ys)), status=status,
    )  # fmt: skip
    page_data = supervisor_layout.SupervisorPage(
        info=info, status=status, last_fix=last, track=drawn, km=track_km(full), minutes=area_minutes,
        reports=reports, tasks=tasks, devices=devices,
    )  # fmt: skip
    return supervisor_layout.layout(page_data, fig, lang=lang, role=_role())


def _coords(geometry: Mapping[str, Any], axis: int) -> list[float]:
    """Every x (axis 0) or y (axis 1) of a GeoJSON Polygon or MultiPolygon."""
    polys = geometry["coordinates"] if geometry.get("type") == "MultiPolygon" else [geometry["coordinates"]]
    return [pt[axis] for poly in polys for ring in poly for pt in ring]


def evaluation_body(
    level: str | None,
    kind: str | None,
    start: str | None,
    end: str | None,
    street: str | None,
    lang: str | None,
) -> tuple[list[Any], str, str, str, dict[str, str]]:
    """Re-rank when the level, the period kind, the custom range or the street changes (read only)."""
    people = _ext()
    lang = pick_lang(lang)
    if ctx.triggered_id == ids.EVAL_RANGE:
        kind = "custom"
    start, end = (start or "")[:10], (end or "")[:10]
    try:
        level_kind = parse_level(level)
        period = parse_period(kind, start or None, (end or start or None) if kind == "custom" else None,
                              local_today(people.clock()))  # fmt: skip
        within = parse_street(street)
    except BadRequest as exc:
        return [html.P(str(exc), className="gw-eval-error")], kind or "custom", start, end, {}
    r = ranking(people.engine, level_kind, period, now=people.clock(), within=within)
    shown = {} if level_kind in SCOPED else {"display": "none"}  # the street scope of grids, communities
    return evaluation.body(r, lang), period.kind, period.start.isoformat(), period.end.isoformat(), shown


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """The evaluation page's controls re-rank its body (per app: ``dash.callback``'s global list goes
    to the first Dash app of the process only)."""
    app.callback(
        Output(ids.EVAL_BODY, "children"),
        Output(ids.EVAL_PERIOD, "value"),
        Output(ids.EVAL_RANGE, "start_date"),
        Output(ids.EVAL_RANGE, "end_date"),
        Output(ids.EVAL_STREET, "style"),
        Input(ids.EVAL_LEVEL, "value"),
        Input(ids.EVAL_PERIOD, "value"),
        Input(ids.EVAL_RANGE, "start_date"),
        Input(ids.EVAL_RANGE, "end_date"),
        Input(ids.EVAL_STREET, "value"),
        State(ids.EVAL_LANG, "data"),
        prevent_initial_call=True,
    )(evaluation_body)


ROUTES = [
    QueryRoute(r"/evaluation", lambda q, lang: _evaluation_page(q, lang)),
    QueryRoute(r"/desk/when", lambda q, lang: _when_page(q, lang)),
    QueryRoute(r"/supervisor/(.+)", lambda q, lang, pid: _supervisor_page(pid, lang)),
]
