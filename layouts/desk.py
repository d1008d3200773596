"""The leaders' desk: district → street → community → grid with breadcrumbs, live KPIs and a map.

Every level shows its live KPIs (from the live state), its open cases (nearest deadline first), its
supervisors, its CJ/T 292 score (month to date, from the daily counters) and a list of the next
level down. Clicking a grid or a case on the map, or a row of a list, opens the next page: a grid
is two clicks from ``/desk`` (a grid on the district map opens its street, a grid on the street map
opens the grid). Callbacks only read; navigation goes through ``ids.DESK_NAV`` (``layouts.chrome``).
The shared page pieces are ``layouts.chrome``'s; ``ROUTES`` at the end lists this module's paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html, no_update
from flask import request

from dashboard import ids
from dashboard.deskdata import Hierarchy
from dashboard.figures import (
    OVERDUE_COLOUR,
    STAGE_COLOURS,
    STREET_COLOURS,
    SUPERVISOR_COLOURS,
    _map_layout,
    overview_map,
    with_components,
)
from dashboard.i18n import t
from domain.evaluation import ObjectType
from feeds.live import LiveCase, LiveSupervisor, View
from layouts.chrome import (
    MAP_HEIGHT,
    PageContext,
    Route,
    class_namer,
    crumbs_for,
    desk_title,
    fmt_left,
    header,
    kpi,
    live_config,
    map_block,
)
from store.components import inventory_version

LIST_ROWS = 12  # open cases listed per level (nearest deadline first)
MAX_CASE_MARKERS = 2_000  # open cases drawn on a desk map (nearest deadline first)


# -- the hierarchy pages' pieces ----------------------------------------------------------------------


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


def scores(
    ctx: PageContext, kind: ObjectType, codes: Sequence[str], grids: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """CJ/T 292 score and grade per object, month to date (empty without counters)."""
    keeper = ctx.counters
    if keeper is None or not codes:
        return {}
    today = ctx.now.astimezone(ctx.live.tz if ctx.live is not None else UTC).date()
    table = keeper.table(kind, codes, today.replace(day=1), today, grids)
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
            kpi(t("desk.open_now", ctx.lang), nums["open"], key="open"),
            kpi(t("desk.overdue_now", ctx.lang), nums["overdue"], alert=bool(nums["overdue"]), key="overdue"),
            kpi(t("desk.reported_today", ctx.lang), nums["reported"], key="reported"),
            kpi(t("desk.patrol_min", ctx.lang), nums["patrol"], key="patrol"),
            kpi(t("desk.on_duty_now", ctx.lang), f"{on_duty}/{len(sups)}", key="supervisors"),
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


def case_trace(ctx: PageContext, cases: Sequence[LiveCase], name: str | None = None) -> go.Scattermap:
    """Open cases as markers (legend ``name``, default 在办案件); clicking one opens its case page.

    At most :data:`MAX_CASE_MARKERS`, the nearest deadlines first (the legend says how many of how
    many): every open case of a district drawn one by one made the page cost 1.1 s and 1.7 MB at
    20,000 open cases (the heat layer and the lists cover the rest).
    """
    located = [c for c in cases if c.lon is not None and c.lat is not None]
    pts = located
    name = name or t("wall.cases", ctx.lang)
    if len(located) > MAX_CASE_MARKERS:
        far = datetime.max.replace(tzinfo=UTC)  # no running timer: last
        pts = sorted(located, key=lambda c: c.deadline or far)[:MAX_CASE_MARKERS]
        name = f"{name} ({len(pts):,}/{len(located):,})"
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
        name=name,
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
    marks: Any = fig.data[1]  # the 部件 layer goes above the grids, under the supervisors and the cases
    marks.uid = marks.uid or "desk-sups"
    with ctx.data.engine.connect() as conn:
        version = inventory_version(conn)
    with_components(fig, request.host_url, version, below=f"plotly-trace-layer-{marks.uid}-fill")
    return fig


# -- pages ------------------------------------------------------------------------------------------------


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
    # only the overdue cases: every open case of a district (600 in the simulation) covered its map, so
    # that a leader could not click a grid between the dots; a street's map shows them all
    late = [c for c in nums["cases"] if c.deadline is not None and c.deadline < ctx.now]
    fig.add_trace(case_trace(ctx, late, t("desk.overdue_cases", ctx.lang)))
    title = ov.summary.name if ctx.lang == "zh" else ov.summary.name_en
    return body(
        ctx,
        crumbs_for(ctx),
        f"{title} · {desk_title(ctx.person.get('role'), ctx.lang)}",
        nums,
        district_score.get(ov.summary.adcode),
        fig,
        child_table(ctx, rows, t("desk.streets", ctx.lang)),
        "wall",
        hint=t("desk.hint_district", ctx.lang),
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
    hint: str | None = None,
) -> html.Div:
    """A hierarchy page: header, KPI strip, map and side panels (children, open cases, supervisors)."""
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Div(kpi_strip(ctx, nums, score), id=ids.DESK_LIVE_KPIS),
            html.Main(
                [
                    html.Div(
                        [
                            map_block(fig),
                            html.P(hint or t("desk.hint", ctx.lang), className="gw-dim gw-hint"),
                        ],
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


def level_kpis(ctx: PageContext, path: str) -> Any:
    """The live KPI strip of a level (``/desk``, ``/street/<c>``, ``/community/<c>``), rebuilt on ticks."""
    found = scope_of(ctx, path)
    if found is None:
        return no_update
    scope, kind, n = found
    nums = scope_numbers(ctx, ctx.view(), scope)
    return kpi_strip(ctx, nums, scores(ctx, kind, [scope.code], {scope.code: n}).get(scope.code))


ROUTES = [
    Route(r"/|/desk", district_page, kpis=lambda ctx: level_kpis(ctx, "/desk")),
    Route(
        r"/street/([0-9A-Za-z_-]+)", street_page, kpis=lambda ctx, code: level_kpis(ctx, f"/street/{code}")
    ),
    Route(
        r"/community/([0-9A-Za-z_-]+)",
        community_page,
        kpis=lambda ctx, code: level_kpis(ctx, f"/community/{code}"),
    ),
]
