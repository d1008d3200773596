"""The leaders' desk: district → street → community → grid with breadcrumbs, live KPIs and a map.

Every level shows its live KPIs (from the live state), its open cases (nearest deadline first), its
supervisors, its CJ/T 292 score (month to date, from the daily counters) and a list of the next
level down. Clicking a grid or a case on the map, or a row of a list, opens the next page: a grid
is two clicks from ``/desk`` (a grid on the district map opens its street, a grid on the street map
opens the grid). Callbacks only read; navigation goes through ``ids.DESK_NAV``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component

from dashboard import ids
from dashboard.data import Overview
from dashboard.deskdata import DeskData, Hierarchy
from dashboard.figures import (
    OVERDUE_COLOUR,
    STAGE_COLOURS,
    STREET_COLOURS,
    SUPERVISOR_COLOURS,
    _map_layout,
    overview_map,
)
from dashboard.i18n import pick_lang, t
from dashboard.worklist import QUEUE_ROLES
from domain.evaluation import ObjectType, evaluation_table
from domain.lifecycle import Context
from feeds.live import LiveCase, LiveSupervisor, MemoryLiveState, View

LIST_ROWS = 12  # open cases listed per level (nearest deadline first)
HOVER_PX = 10  # a marker is picked within this distance of the pointer (plotly's default is 20)
MAP_HEIGHT = 680  # px; the fitted view assumes about 1000 x 680


@dataclass
class PageContext:
    """What a desk page needs: language, query, the person, read models and live state."""

    lang: str
    query: Mapping[str, list[str]]
    person: dict[str, Any]
    data: DeskData
    overview: Overview
    live: MemoryLiveState | None
    counters: Any  # feeds.counters.CounterKeeper (None before the live core runs)
    now: datetime
    rules: Context | None = None  # the lifecycle's rules (what the person may do; None before the core)

    def href(self, path: str) -> str:
        """A desk link keeping the language."""
        return f"{path}?lang=en" if self.lang == "en" else path

    def view(self) -> View | None:
        """The live snapshot (None without a live core)."""
        return None if self.live is None else self.live.snapshot(self.now)


# -- shared pieces -------------------------------------------------------------------------------------


def header(ctx: PageContext, crumbs: Sequence[tuple[str, str | None]], title: str) -> html.Header:
    """The desk header: breadcrumbs, title, the person, language switch and logout."""
    items: list[Any] = []
    for i, (label, path) in enumerate(crumbs):
        if i:
            items.append(html.Span("›", className="gw-crumb-sep"))
        items.append(
            dcc.Link(label, href=ctx.href(path), className="gw-crumb")
            if path
            else html.Span(label, className="gw-crumb gw-crumb-here")
        )
    other = "zh" if ctx.lang == "en" else "en"
    person = ctx.person
    role_name = t(f"role.{person.get('role')}", ctx.lang)
    mine = person.get("role") in QUEUE_ROLES
    return html.Header(
        [
            html.Div(
                [
                    html.Nav(items, className="gw-crumbs", id=ids.DESK_CRUMBS),
                    html.H1(title, className="gw-desk-title"),
                ],
                className="gw-desk-head",
            ),
            html.Div(
                [
                    html.Span(
                        f"{person.get('name') or person.get('person_id')} · {role_name}",
                        className="gw-desk-who",
                    ),
                    html.A(  # the person's own work list; others look at the acceptors' first
                        t("queue.mine" if mine else "queue.title", ctx.lang),
                        href=ctx.href(f"/desk/queue/{person['role'] if mine else QUEUE_ROLES[0]}"),
                        className="gw-desk-queue-link",
                    ),
                    html.A(t("login.other_lang", ctx.lang), href=f"?lang={other}", className="gw-desk-lang"),
                    html.Form(
                        [
                            dcc.Input(type="hidden", name="csrf", value=str(person.get("csrf") or "")),
                            html.Button(
                                t("desk.logout", ctx.lang), type="submit", className="gw-desk-logout"
                            ),
                        ],
                        method="post",
                        action="/logout",
                        className="gw-desk-logout-form",
                    ),
                ],
                className="gw-desk-user",
            ),
        ],
        className="gw-desk-header",
    )


def kpi(label: str, value: Any, *, alert: bool = False, key: str = "") -> html.Div:
    """One KPI tile."""
    shown: Any = "—" if value is None else (f"{value:,}" if isinstance(value, int) else value)
    if not isinstance(shown, Component):
        shown = str(shown)
    parts = [
        html.Div(shown, className="gw-dk-value" + (" gw-dk-alert" if alert else "")),
        html.Div(label, className="gw-dk-label"),
    ]
    if key:
        return html.Div(parts, className="gw-dk", id=f"{ids.DESK_KPIS}-{key}")
    return html.Div(parts, className="gw-dk")


def fmt_left(deadline: datetime | None, now: datetime, lang: str) -> tuple[str, bool]:
    """A deadline as time left (or late), and whether it is past."""
    if deadline is None:
        return "—", False
    secs = (deadline - now).total_seconds()
    late = secs < 0
    secs = abs(secs)
    h, m = int(secs // 3600), int(secs % 3600 // 60)
    text = f"{h}h{m:02d}m" if h < 48 else f"{h // 24}d{h % 24}h"
    return (f"{t('case.late', lang)} {text}" if late else f"{t('case.left', lang)} {text}"), late


def case_rows(ctx: PageContext, cases: Sequence[LiveCase], class_name: Any) -> Any:
    """Open cases nearest deadline first, each a link to its case page."""
    if not cases:
        return html.P(t("desk.no_cases", ctx.lang), className="gw-dim")
    ordered = sorted(cases, key=lambda c: (c.deadline or datetime.max.replace(tzinfo=UTC), c.id))
    rows = []
    for c in ordered[:LIST_ROWS]:
        left, late = fmt_left(c.deadline, ctx.now, ctx.lang)
        rows.append(
            html.Li(
                dcc.Link(
                    [
                        html.Span(c.id, className="gw-case-id"),
                        html.Span(
                            t(f"stage.{c.stage}", ctx.lang),
                            className="gw-case-stage",
                            style={"color": STAGE_COLOURS.get(c.stage, "#e8eef9")},
                        ),
                        html.Span(class_name(c), className="gw-case-class"),
                        html.Span(left, className="gw-case-left" + (" gw-late" if late else "")),
                    ],
                    href=ctx.href(f"/case/{c.id}"),
                    className="gw-case-link",
                ),
                className="gw-case-row",
            )
        )
    more = len(ordered) - LIST_ROWS
    tail = [html.P(f"+{more}", className="gw-dim")] if more > 0 else []
    return html.Div([html.Ul(rows, className="gw-case-list", id=ids.DESK_CASES), *tail])


def supervisor_rows(ctx: PageContext, sups: Sequence[LiveSupervisor]) -> Any:
    """Supervisors with their status, each a link to its supervisor page."""
    if not sups:
        return html.P(t("desk.no_supervisors", ctx.lang), className="gw-dim")
    items = [
        html.Li(
            dcc.Link(
                [
                    html.Span("●", style={"color": SUPERVISOR_COLOURS.get(s.status, "#8b949e")}),
                    html.Span(s.id, className="gw-dsup-id"),
                    html.Span(t(f"status.{s.status}", ctx.lang), className="gw-dim"),
                ],
                href=ctx.href(f"/supervisor/{s.id}"),
                className="gw-dsup-link",
            ),
            className="gw-dsup-row",
        )
        for s in sorted(sups, key=lambda s: s.id)[:30]
    ]
    return html.Ul(items, className="gw-desk-sups", id=ids.DESK_SUPERVISORS)


def class_namer(ctx: PageContext) -> Any:
    """A function naming a live case's class in the page's language."""
    catalogue = ctx.live.catalogue if ctx.live is not None else None

    def name(c: LiveCase) -> str:
        if catalogue is None:
            return c.class_code
        try:
            minor = catalogue.minor(c.kind, c.class_code)
        except Exception:
            return c.class_code
        return str(getattr(minor, "name", c.class_code))

    return name


def scores(
    ctx: PageContext, kind: ObjectType, codes: Sequence[str], grids: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """CJ/T 292 score and grade per object, month to date (empty without counters)."""
    keeper = ctx.counters
    if keeper is None or not codes:
        return {}
    today = ctx.now.astimezone(ctx.live.tz if ctx.live is not None else UTC).date()
    with keeper._lock:  # the keeper's writer thread adds events under this lock
        table = evaluation_table(
            keeper.aggregates, kind, list(codes), today.replace(day=1), today, grids_per_region=grids
        )
    out: dict[str, dict[str, Any]] = {}
    for row in table.itertuples():
        score = None if row.score is None or row.score != row.score else round(float(row.score), 1)
        out[str(row.object_id)] = {"score": score, "grade": row.grade, "colour": row.colour}
    return out


def score_text(found: Mapping[str, Any] | None) -> str:
    """A score as ``87.5 (B)`` or a dash."""
    if not found or found.get("score") is None:
        return "—"
    return f"{found['score']:.1f} ({found.get('grade') or '—'})"


@dataclass(frozen=True)
class Scope:
    """What a level covers: its kind, code, name, grids and path."""

    kind: str  # district | street | community | grid
    code: str
    name: str
    grids: frozenset[str]


def scope_numbers(ctx: PageContext, view: View | None, scope: Scope) -> dict[str, Any]:
    """Live numbers of a scope: open, overdue, reported today, patrol minutes, supervisors."""
    if view is None:
        return {"cases": [], "sups": [], "open": None, "overdue": None, "reported": None, "patrol": None}
    cases = [c for c in view.cases if c.grid in scope.grids] if scope.kind != "district" else list(view.cases)
    h = ctx.data.hierarchy()
    areas = {h.grids[g].area for g in scope.grids if g in h.grids} if h is not None else set()
    sups = [s for s in view.supervisors if s.grid in scope.grids or (s.area is not None and s.area in areas)]
    if scope.kind == "district":
        sups = list(view.supervisors)
    counts = [c for g, c in view.grids.items() if scope.kind == "district" or g in scope.grids]
    overdue = sum(1 for c in cases if c.deadline is not None and c.deadline < ctx.now)
    return {
        "cases": cases,
        "sups": sups,
        "open": len(cases),
        "overdue": overdue,
        "reported": sum(c.reported for c in counts),
        "patrol": round(sum(c.patrol_s for c in counts) / 60.0),
    }


def kpi_strip(ctx: PageContext, nums: Mapping[str, Any], score: Mapping[str, Any] | None) -> html.Div:
    """The KPI tiles of a level."""
    sups = nums["sups"]
    on_duty = sum(1 for s in sups if s.status == "on_duty")
    return html.Div(
        [
            kpi(t("desk.open_cases", ctx.lang), nums["open"], key="open"),
            kpi(t("desk.overdue", ctx.lang), nums["overdue"], alert=bool(nums["overdue"]), key="overdue"),
            kpi(t("desk.reported_today", ctx.lang), nums["reported"], key="reported"),
            kpi(t("desk.patrol_min", ctx.lang), nums["patrol"], key="patrol"),
            kpi(t("desk.supervisors", ctx.lang), f"{on_duty}/{len(sups)}", key="supervisors"),
            kpi(t("desk.score", ctx.lang), score_text(score), key="score"),
        ],
        className="gw-dk-strip",
        id=ids.DESK_KPIS,
    )


def child_table(
    ctx: PageContext, rows: Sequence[tuple[str, str, str, int, int, str]], title: str
) -> html.Div:
    """The next level down: name (link), code, open, overdue, score."""
    head = html.Tr(
        [
            html.Th(title),
            html.Th(t("desk.open_cases", ctx.lang)),
            html.Th(t("desk.overdue", ctx.lang)),
            html.Th(t("desk.score", ctx.lang)),
        ]
    )
    body = [
        html.Tr(
            [
                html.Td(
                    dcc.Link([html.Span(name), html.Span(code, className="gw-code")], href=ctx.href(path))
                ),
                html.Td(f"{n_open:,}"),
                html.Td(f"{n_late:,}", className="gw-late" if n_late else ""),
                html.Td(score),
            ]
        )
        for path, name, code, n_open, n_late, score in rows
    ]
    return html.Div(
        html.Table([html.Thead(head), html.Tbody(body)], className="gw-desk-table", id=ids.DESK_CHILDREN),
        className="gw-desk-children",
    )


# -- the map ---------------------------------------------------------------------------------------------


def case_trace(ctx: PageContext, cases: Sequence[LiveCase]) -> go.Scattermap:
    """Open cases as markers; clicking one opens its case page (customdata is the path)."""
    pts = [c for c in cases if c.lon is not None and c.lat is not None]
    return go.Scattermap(
        lon=[c.lon for c in pts],
        lat=[c.lat for c in pts],
        mode="markers",
        marker={
            "size": 11,
            "color": [
                OVERDUE_COLOUR
                if c.deadline and c.deadline < ctx.now
                else STAGE_COLOURS.get(c.stage, "#e8eef9")
                for c in pts
            ],
        },
        customdata=[f"/case/{c.id}" for c in pts],
        text=[f"{c.id} {c.stage}" for c in pts],
        hovertemplate="%{text}<extra></extra>",
        name=t("wall.cases", ctx.lang),
    )


def sup_trace(ctx: PageContext, sups: Sequence[LiveSupervisor]) -> go.Scattermap:
    """Supervisors as markers; clicking one opens its page."""
    pts = [s for s in sups if s.lon is not None and s.lat is not None]
    return go.Scattermap(
        lon=[s.lon for s in pts],
        lat=[s.lat for s in pts],
        mode="markers",
        marker={"size": 9, "color": [SUPERVISOR_COLOURS.get(s.status, "#8b949e") for s in pts]},
        customdata=[f"/supervisor/{s.id}" for s in pts],
        text=[s.id for s in pts],
        hovertemplate="%{text}<extra></extra>",
        name=t("wall.supervisors", ctx.lang),
    )


def grids_figure(
    ctx: PageContext,
    h: Hierarchy,
    grids: Sequence[str],
    colour_of: Mapping[str, int],
    names: Sequence[str],
    cases: Sequence[LiveCase],
    sups: Sequence[LiveSupervisor],
    highlight: str | None = None,
) -> go.Figure:
    """A street's or community's grids (inline GeoJSON, coloured by group), cases and supervisors."""
    shapes = ctx.data.grid_shapes(list(grids))
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": g, "properties": {}, "geometry": shapes[g]}
            for g in grids
            if g in shapes
        ],
    }
    n = len(STREET_COLOURS)
    scale = [
        [i / n, STREET_COLOURS[i]] if j == 0 else [(i + 1) / n, STREET_COLOURS[i]]
        for i in range(n)
        for j in range(2)
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Choroplethmap(
            geojson=fc,
            locations=list(grids),
            z=[colour_of.get(g, 0) % n + 0.5 for g in grids],
            zmin=0,
            zmax=n,
            colorscale=scale,
            showscale=False,
            marker={
                "opacity": [0.85 if g == highlight else 0.5 for g in grids] if highlight else 0.55,
                "line": {"width": 0.6, "color": "#0b1220"},
            },
            customdata=[f"/grid/{g}" for g in grids],
            text=[names[colour_of.get(g, 0)] if names else "" for g in grids],
            hovertemplate=f"{t('map.grid', ctx.lang)} %{{location}}<br>%{{text}}<extra></extra>",
            name=t("map.grid", ctx.lang),
        )
    )
    fig.add_trace(sup_trace(ctx, sups))
    fig.add_trace(case_trace(ctx, cases))
    boxes = [h.grids[g].bbox for g in grids if g in h.grids]
    bounds = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    _map_layout(fig, bounds, (900, MAP_HEIGHT), labels_url=None, uirevision=f"desk-{len(grids)}-{grids[0]}")
    fig.update_layout(hoverlabel={"font": {"size": 16}})
    return fig


def map_block(figure: go.Figure) -> html.Div:
    """The clickable desk map and the navigation location it drives."""
    figure.update_layout(hoverdistance=HOVER_PX)  # a click near, not on, a marker opens the polygon
    return html.Div(
        [
            dcc.Location(id=ids.DESK_NAV, refresh="callback-nav"),
            dcc.Graph(
                id=ids.DESK_MAP,
                figure=figure,
                className="gw-desk-map",
                style={"height": f"{MAP_HEIGHT}px"},
                config={"displayModeBar": False, "scrollZoom": True, "responsive": True},
            ),
        ],
        className="gw-desk-mapbox",
    )


def live_config(room: str, refresh: str = ids.DESK_REFRESH, every: float = 5.0) -> html.Div:
    """The ``/live`` room ``assets/gw-desk.js`` joins, the store it bumps and how often at most."""
    cfg = {"room": room, "refresh": refresh, "every": every, "grids": room.startswith("grid:")}
    return html.Div(
        [
            dcc.Store(id=refresh, data=0),
            html.Div(orjson.dumps(cfg).decode(), className="gw-live-config gw-hidden"),
        ],
        id=ids.DESK_LIVE,
    )


# -- pages ------------------------------------------------------------------------------------------------


def crumbs_for(
    ctx: PageContext,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    last: str | None = None,
) -> list[tuple[str, str | None]]:
    """Breadcrumbs from the district down to an object (the last one not a link)."""
    h = ctx.data.hierarchy()
    ov = ctx.overview
    names = {s.code: s.name for s in ov.streets}
    out: list[tuple[str, str | None]] = [
        (ov.summary.name if ctx.lang == "zh" else ov.summary.name_en, "/desk")
    ]
    if street:
        out.append((names.get(street, street), f"/street/{street}"))
    if community and h is not None and community in h.communities:
        out.append((h.communities[community].name, f"/community/{community}"))
    if grid:
        out.append((grid, f"/grid/{grid}"))
    if last:
        out.append((last, None))
    else:
        out[-1] = (out[-1][0], None)
    return out


def district_page(ctx: PageContext) -> html.Div:
    """``/desk``: the district's streets."""
    ov = ctx.overview
    h = ctx.data.hierarchy()
    assert h is not None
    view = ctx.view()
    scope = Scope("district", ov.summary.adcode, ov.summary.name, frozenset(h.grids))
    nums = scope_numbers(ctx, view, scope)
    grids_per_street = {s.code: s.grids for s in ov.streets}
    street_scores = scores(ctx, ObjectType.STREET, [s.code for s in ov.streets], grids_per_street)
    district_score = scores(ctx, ObjectType.DISTRICT, [ov.summary.adcode], {ov.summary.adcode: len(h.grids)})
    open_by: dict[str, int] = {}
    late_by: dict[str, int] = {}
    for c in nums["cases"]:
        key = (c.grid or "")[:9]
        open_by[key] = open_by.get(key, 0) + 1
        if c.deadline is not None and c.deadline < ctx.now:
            late_by[key] = late_by.get(key, 0) + 1
    rows = [
        (
            f"/street/{s.code}",
            s.name,
            s.code,
            open_by.get(s.code, 0),
            late_by.get(s.code, 0),
            score_text(street_scores.get(s.code)),
        )
        for s in ov.streets
    ]
    fig = overview_map(
        grids_url=f"/geo/{ov.summary.adcode}/grids.geojson",
        grid_codes=ov.grid_codes,
        grid_street=ov.grid_street,
        streets=ov.streets,
        bounds=ov.summary.bounds,
        lang=ctx.lang,
        labels_url=f"/geo/{ov.summary.adcode}/labels.png",
        viewport=(900, MAP_HEIGHT),
    )
    fig.data[0].customdata = [f"/street/{g[:9]}" for g in ov.grid_codes]  # a grid click opens its street
    fig.data[0].hovertemplate = f"{t('map.grid', ctx.lang)} %{{location}}<extra></extra>"
    fig.data[2].customdata = [[f"/street/{s.code}", s.grids] for s in ov.streets]  # a label opens its street
    fig.data[
        2
    ].hovertemplate = f"%{{text}}<br>%{{customdata[1]}} {t('streets.grids', ctx.lang)}<extra></extra>"
    fig.add_trace(case_trace(ctx, nums["cases"]))
    title = ov.summary.name if ctx.lang == "zh" else ov.summary.name_en
    return body(
        ctx,
        crumbs_for(ctx),
        f"{title} · {t('page.desk', ctx.lang)}",
        nums,
        district_score.get(ov.summary.adcode),
        fig,
        child_table(ctx, rows, t("desk.streets", ctx.lang)),
        "wall",
    )


def street_page(ctx: PageContext, code: str) -> html.Div:
    """``/street/<code>``: a street's communities; its grids on the map."""
    h = ctx.data.hierarchy()
    assert h is not None
    names = {s.code: s.name for s in ctx.overview.streets}
    comms = [h.communities[c] for c in h.by_street.get(code, ())]
    grids = [g for c in comms for g in c.grids]
    scope = Scope("street", code, names.get(code, code), frozenset(grids))
    view = ctx.view()
    nums = scope_numbers(ctx, view, scope)
    comm_scores = scores(
        ctx, ObjectType.COMMUNITY, [c.code for c in comms], {c.code: len(c.grids) for c in comms}
    )
    street_score = scores(ctx, ObjectType.STREET, [code], {code: len(grids)})
    rows = _child_rows(
        ctx,
        nums["cases"],
        [(f"/community/{c.code}", c.name, c.code, frozenset(c.grids)) for c in comms],
        comm_scores,
    )
    colour = {g: i for i, c in enumerate(comms) for g in c.grids}
    fig = grids_figure(ctx, h, grids, colour, [c.name for c in comms], nums["cases"], nums["sups"])
    return body(
        ctx,
        crumbs_for(ctx, street=code),
        names.get(code, code),
        nums,
        street_score.get(code),
        fig,
        child_table(ctx, rows, t("desk.communities", ctx.lang)),
        f"street:{code}",
    )


def community_page(ctx: PageContext, code: str) -> html.Div:
    """``/community/<code>``: a community's grids."""
    h = ctx.data.hierarchy()
    assert h is not None
    comm = h.communities[code]
    scope = Scope("community", code, comm.name, frozenset(comm.grids))
    view = ctx.view()
    nums = scope_numbers(ctx, view, scope)
    grid_scores = scores(ctx, ObjectType.GRID, list(comm.grids), dict.fromkeys(comm.grids, 1))
    comm_score = scores(ctx, ObjectType.COMMUNITY, [code], {code: len(comm.grids)})
    rows = _child_rows(
        ctx, nums["cases"], [(f"/grid/{g}", g[-6:], g, frozenset([g])) for g in comm.grids], grid_scores
    )
    fig = grids_figure(
        ctx,
        h,
        list(comm.grids),
        {g: i for i, g in enumerate(comm.grids)},
        list(comm.grids),
        nums["cases"],
        nums["sups"],
    )
    return body(
        ctx,
        crumbs_for(ctx, street=comm.street, community=code),
        comm.name,
        nums,
        comm_score.get(code),
        fig,
        child_table(ctx, rows, t("desk.grids", ctx.lang)),
        f"street:{comm.street}",
    )


def _child_rows(
    ctx: PageContext,
    cases: Sequence[LiveCase],
    children: Sequence[tuple[str, str, str, frozenset[str]]],
    found: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, str, str, int, int, str]]:
    out = []
    for path, name, code, grids in children:
        mine = [c for c in cases if c.grid in grids]
        late = sum(1 for c in mine if c.deadline is not None and c.deadline < ctx.now)
        out.append((path, name, code, len(mine), late, score_text(found.get(code))))
    return out


def body(
    ctx: PageContext,
    crumbs: list[tuple[str, str | None]],
    title: str,
    nums: Mapping[str, Any],
    score: Mapping[str, Any] | None,
    fig: go.Figure,
    children: Any,
    room: str,
) -> html.Div:
    """A hierarchy page: header, KPI strip, map and side panels (children, open cases, supervisors)."""
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Div(kpi_strip(ctx, nums, score), id=ids.DESK_LIVE_KPIS),
            html.Main(
                [
                    html.Div(
                        [map_block(fig), html.P(t("desk.hint", ctx.lang), className="gw-dim gw-hint")],
                        className="gw-desk-left",
                    ),
                    html.Div(
                        [
                            html.Section([html.H2(crumbs[-1][0]), children], className="gw-panel"),
                            html.Section(
                                [
                                    html.H2(t("desk.open_cases", ctx.lang)),
                                    case_rows(ctx, nums["cases"], class_namer(ctx)),
                                ],
                                className="gw-panel",
                            ),
                            html.Section(
                                [
                                    html.H2(t("desk.supervisors", ctx.lang)),
                                    supervisor_rows(ctx, nums["sups"]),
                                ],
                                className="gw-panel",
                            ),
                        ],
                        className="gw-desk-right",
                    ),
                ],
                className="gw-desk-main",
            ),
            live_config(room),
        ],
        className="gw-page gw-desk-page",
        lang="zh-CN" if ctx.lang == "zh" else "en",
    )


def scope_of(ctx: PageContext, path: str) -> tuple[Scope, ObjectType, int] | None:
    """The scope of a hierarchy path (``/desk``, ``/street/<c>``, ``/community/<c>``), for live KPIs."""
    h = ctx.data.hierarchy()
    if h is None:
        return None
    parts = [p for p in path.split("/") if p]
    ov = ctx.overview
    if not parts or parts == ["desk"]:
        return (
            Scope("district", ov.summary.adcode, ov.summary.name, frozenset(h.grids)),
            ObjectType.DISTRICT,
            len(h.grids),
        )
    if len(parts) == 2 and parts[0] == "street":
        grids = [g for c in h.by_street.get(parts[1], ()) for g in h.communities[c].grids]
        return Scope("street", parts[1], parts[1], frozenset(grids)), ObjectType.STREET, len(grids)
    if len(parts) == 2 and parts[0] == "community" and parts[1] in h.communities:
        grids = list(h.communities[parts[1]].grids)
        return Scope("community", parts[1], parts[1], frozenset(grids)), ObjectType.COMMUNITY, len(grids)
    return None


def live_kpis(ctx: PageContext, path: str) -> Any:
    """The live KPI strip of a page (hierarchy levels and grids), rebuilt on ticks."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "grid":
        from layouts.grid import grid_facts

        return grid_facts(ctx, parts[1])
    found = scope_of(ctx, path)
    if found is None:
        return no_update
    scope, kind, n = found
    nums = scope_numbers(ctx, ctx.view(), scope)
    return kpi_strip(ctx, nums, scores(ctx, kind, [scope.code], {scope.code: n}).get(scope.code))


def register_callbacks(app: Dash, ctx_of: Callable[[str, dict[str, list[str]]], PageContext | None]) -> None:
    """The desk's read-only callbacks: map clicks navigate (a point's customdata is a path); live KPIs."""

    @app.callback(
        Output(ids.DESK_NAV, "href"),
        Input(ids.DESK_MAP, "clickData"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def map_click(click: dict[str, Any] | None, search: str | None) -> Any:
        points = (click or {}).get("points") or []
        for p in points:
            target = p.get("customdata")
            if isinstance(target, list) and target:
                target = target[0]
            if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
                lang = parse_qs((search or "").lstrip("?")).get("lang", [""])[0]
                return f"{target}?lang=en" if lang == "en" else target
        return no_update

    @app.callback(
        Output(ids.DESK_LIVE_KPIS, "children"),
        Input(ids.DESK_REFRESH, "data"),
        State(ids.LOCATION, "pathname"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def refresh_kpis(_: Any, pathname: str | None, search: str | None) -> Any:
        q = parse_qs((search or "").lstrip("?"))
        ctx = ctx_of(pick_lang(q.get("lang", [""])[0]), q)
        if ctx is None:
            return no_update
        return live_kpis(ctx, pathname or "/desk")
