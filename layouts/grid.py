"""The grid page ``/grid/<code>``: the unit grid, its people, its cases, its patrol and indicators.

Polygon and neighbours on the map (a neighbour click opens it), management level, the responsible
supervisor, the staff roster of the seven forces (``python app.py import roster FILE.csv``), open
and recent cases with a stage filter and photo thumbnails (``/media/<ref>``), patrol coverage today
and the last visit, and the CJ/T 292 indicators for a chosen period (today, 7 days, this month).
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import request

from dashboard import ids
from dashboard.case_figures import location_figure
from dashboard.deskdata import WEEK
from dashboard.figures import STAGE_COLOURS, with_components
from dashboard.i18n import t
from domain.evaluation import ObjectType, grade, indicators, region_score
from layouts import component
from layouts.chrome import (
    MAP_HEIGHT,
    ContextOf,
    PageContext,
    Route,
    class_label,
    context_of,
    crumbs_for,
    fmt_left,
    header,
    kpi,
    live_config,
    local,
    map_block,
)
from store.components import inventory_version

PERIODS = ("today", "week", "month")
RECENT_DAYS = 30
INDICATORS = ("reported", "filed", "closed")
RATES = ("close_rate", "close_on_time_rate", "public_report_rate")


def period_bounds(period: str, today: date) -> tuple[date, date]:
    """First and last day of a named period ending today."""
    if period == "week":
        return today - timedelta(days=6), today
    if period == "month":
        return today.replace(day=1), today
    return today, today


def indicator_panel(ctx: PageContext, code: str, period: str) -> Any:
    """The grid's counts, rates and score over a period (from the live daily counters)."""
    keeper = ctx.counters
    if keeper is None:
        return html.P("—", className="gw-dim")
    tz = ctx.live.tz if ctx.live is not None else UTC
    start, end = period_bounds(period, ctx.now.astimezone(tz).date())
    counts = keeper.period(ObjectType.GRID, code, start, end)
    ind = indicators(counts)
    score = region_score(ind, grids=1)
    tiles = [kpi(t(f"ind.{k}", ctx.lang), getattr(counts, k)) for k in INDICATORS]
    for k in RATES:
        v = getattr(ind, k)
        tiles.append(kpi(t(f"ind.{k}", ctx.lang), "—" if v is None else f"{v:.0%}"))
    shown = "—" if score.value is None else f"{score.value:.1f}"
    tiles.append(kpi(t("ind.score", ctx.lang), f"{shown} ({grade(score.value) or '—'})"))
    return html.Div(
        [
            html.P(f"{start:%Y-%m-%d} – {end:%Y-%m-%d}", className="gw-dim"),
            html.Div(tiles, className="gw-dk-strip"),
        ]
    )


def case_table(ctx: PageContext, code: str, which: str, stage: str | None) -> Any:
    """Open or recent cases of the grid (newest first), with a photo thumbnail when there is one."""
    since = ctx.now - timedelta(days=RECENT_DAYS) if which == "recent" else None
    rows = ctx.data.cases(code, open_only=which == "open", since=since, stage=stage or None, limit=60)
    if not rows:
        return html.P(t("desk.no_cases", ctx.lang), className="gw-dim")
    head = html.Tr(
        [
            html.Th(x)
            for x in (
                "",
                "ID",
                t("case.stage", ctx.lang),
                t("case.class", ctx.lang),
                t("case.col.at", ctx.lang),
                t("case.deadline", ctx.lang),
            )
        ]
    )
    body = []
    for r in rows:
        photo = (
            html.Img(src=f"/media/{r['photo']}", className="gw-thumb", alt=r["photo"])
            if r.get("photo")
            else ""
        )
        if r["open"]:
            left, late = fmt_left(r["deadline"], ctx.now, ctx.lang)
            stage_text = t(f"stage.{r['stage']}", ctx.lang)
        else:
            left, late = "—", False
            stage_text = t(f"case.status.{r['status']}", ctx.lang)
        body.append(
            html.Tr(
                [
                    html.Td(photo),
                    html.Td(dcc.Link(r["id"], href=ctx.href(f"/case/{r['id']}"))),
                    html.Td(stage_text, style={"color": STAGE_COLOURS.get(r["stage"] or "", "#e8eef9")}),
                    html.Td(class_label(ctx, r["kind"], r["class_code"])),
                    html.Td(local(r["reported_at"])),
                    html.Td(left, className="gw-late" if late else ""),
                ]
            )
        )
    return html.Table([html.Thead(head), html.Tbody(body)], className="gw-desk-table")


def roster_panel(ctx: PageContext, code: str) -> Any:
    """The staff roster table, or a note that none was imported."""
    staff = ctx.data.roster(code)
    if not staff:
        return html.P(t("grid.roster.none", ctx.lang), className="gw-dim", id=ids.GRID_ROSTER)
    head = html.Tr([html.Th(t(f"grid.{k}", ctx.lang)) for k in ("duty", "name", "phone")])
    rows = [
        html.Tr([html.Td(t(f"duty.{s['duty']}", ctx.lang)), html.Td(s["name"]), html.Td(s["phone"] or "—")])
        for s in staff
    ]
    return html.Table([html.Thead(head), html.Tbody(rows)], className="gw-desk-table", id=ids.GRID_ROSTER)


def grid_facts(ctx: PageContext, code: str) -> html.Div:
    """The grid's live tiles: level, supervisor, area, open, overdue, patrol today, last visit."""
    h = ctx.data.hierarchy()
    assert h is not None
    g = h.grids[code]
    lang = ctx.lang
    sup = h.supervisor_of_area.get(g.area or "")
    counts = ctx.live.grid_count(code) if ctx.live is not None else None
    visit = counts.last_at if counts is not None and counts.last_at is not None else None
    visit = visit or ctx.data.last_visit(code, ctx.now - WEEK)
    patrol_min = round(counts.patrol_s / 60.0) if counts is not None else None
    return html.Div(
        [
            kpi(t("grid.level", lang), t(f"level.{g.level}", lang)),
            kpi(
                t("grid.responsible", lang),
                dcc.Link(sup, href=ctx.href(f"/supervisor/{sup}")) if sup else "—",
            ),
            kpi(t("grid.area", lang), g.area or "—"),
            kpi(t("desk.open_now", lang), counts.open if counts else 0),
            kpi(
                t("desk.overdue_now", lang),
                counts.overdue if counts else 0,
                alert=bool(counts and counts.overdue),
            ),
            kpi(t("grid.patrol_today", lang), "—" if patrol_min is None else f"{patrol_min} min"),
            kpi(t("grid.last_visit", lang), local(visit) if visit else t("grid.never", lang)),
        ],
        className="gw-dk-strip",
        id=ids.DESK_KPIS,
    )


def page(ctx: PageContext, code: str) -> html.Div:
    """``/grid/<code>``."""
    h = ctx.data.hierarchy()
    assert h is not None
    g = h.grids[code]  # KeyError: the router answers "not found"
    lang = ctx.lang
    near = ctx.data.neighbours(code)
    shapes = ctx.data.grid_shapes([code, *near])
    pad = 0.002
    bounds = (g.bbox[0] - pad, g.bbox[1] - pad, g.bbox[2] + pad, g.bbox[3] + pad)
    fig = location_figure(
        shapes.get(code),
        None,
        bounds,
        lang,
        {n: shapes[n] for n in near if n in shapes},
        code,
        viewport=(900, MAP_HEIGHT),
    )
    with ctx.data.engine.connect() as conn:  # the 部件 layer's tiles at the store's version
        fig = with_components(fig, request.host_url, inventory_version(conn))
    facts = html.Div(grid_facts(ctx, code), id=ids.DESK_LIVE_KPIS)
    neighbours = html.Div(
        [html.Span(t("grid.neighbours", lang) + ": ", className="gw-dim")]
        + [dcc.Link(n, href=ctx.href(f"/grid/{n}"), className="gw-neighbour") for n in near]
    )
    stage_options = [{"label": t("grid.filter.all_stages", lang), "value": ""}] + [
        {"label": t(f"stage.{s}", lang), "value": s} for s in STAGE_COLOURS
    ]
    cases = html.Section(
        [
            html.H2(t("grid.cases", lang)),
            html.Div(
                [
                    dcc.RadioItems(
                        id=ids.GRID_OPEN,
                        value="open",
                        inline=True,
                        className="gw-radio",
                        options=[
                            {"label": t("grid.filter.open", lang), "value": "open"},
                            {"label": t("grid.filter.recent", lang), "value": "recent"},
                        ],
                    ),
                    dcc.Dropdown(
                        id=ids.GRID_STAGE,
                        options=stage_options,
                        value="",
                        clearable=False,
                        className="gw-select",
                    ),
                ],
                className="gw-filters",
            ),
            html.Div(case_table(ctx, code, "open", None), id=ids.GRID_CASES),
        ],
        className="gw-panel",
    )
    indicators_panel = html.Section(
        [
            html.H2(t("grid.indicators", lang)),
            dcc.RadioItems(
                id=ids.GRID_PERIOD,
                value="month",
                inline=True,
                className="gw-radio",
                options=[{"label": t(f"period.{p}", lang), "value": p} for p in PERIODS],
            ),
            html.Div(indicator_panel(ctx, code, "month"), id=ids.GRID_INDICATORS),
        ],
        className="gw-panel",
    )
    return html.Div(
        [
            header(
                ctx,
                crumbs_for(ctx, street=g.street, community=g.community, grid=code),
                f"{t('grid.title', lang)} {code}",
            ),
            html.Div(code, id=ids.GRID_CODE, className="gw-hidden"),
            facts,
            html.Main(
                [
                    html.Div(
                        [
                            map_block(fig),
                            neighbours,
                            html.Section(
                                [html.H2(t("grid.roster", lang)), roster_panel(ctx, code)],
                                className="gw-panel",
                            ),
                            component.grid_panel(ctx, code),  # its 部件 by class (issue 18)
                        ],
                        className="gw-grid-left",
                    ),
                    html.Div([cases, indicators_panel], className="gw-grid-right"),
                ],
                className="gw-grid-main",
            ),
            live_config(f"grid:{code}"),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """The grid page's filters: cases (open/recent, stage) and the indicator period."""

    def context(search: str | None) -> PageContext | None:
        return context_of(ctx_of, search)  # its ``now`` is the web app's clock

    @app.callback(
        Output(ids.GRID_CASES, "children"),
        Input(ids.GRID_OPEN, "value"),
        Input(ids.GRID_STAGE, "value"),
        State(ids.GRID_CODE, "children"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def filter_cases(which: str | None, stage: str | None, code: str | None, search: str | None) -> Any:
        ctx = context(search)
        if ctx is None or not code:
            return no_update
        return case_table(
            ctx, code, "recent" if which == "recent" else "open", stage if stage in STAGE_COLOURS else None
        )

    @app.callback(
        Output(ids.GRID_INDICATORS, "children"),
        Input(ids.GRID_PERIOD, "value"),
        State(ids.GRID_CODE, "children"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def period_changed(period: str | None, code: str | None, search: str | None) -> Any:
        ctx = context(search)
        if ctx is None or not code:
            return no_update
        return indicator_panel(ctx, code, period if period in PERIODS else "month")


# the grid's live KPIs are its facts strip (rebuilt on ticks like a hierarchy level's)
ROUTES = [Route(r"/grid/([0-9A-Za-z_-]+)", page, kpis=grid_facts)]
