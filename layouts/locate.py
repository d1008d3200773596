"""``/desk/locate`` (待定位): the cases reported with an address and no point, and where they may be.

Each case shows its address and the gazetteer's candidates (``dashboard.locating``, best first);
the acceptor places it with one button per candidate, or at a point typed in (WGS-84). Both are the
``locate`` command through the one command path (``assets/gw-desk.js`` posts it); the page joins
``/live`` room ``wall`` and is rebuilt when open cases change, so a placed case leaves the list.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids
from dashboard.figures import locate_map
from dashboard.i18n import t
from dashboard.locating import Waiting, waiting_cases
from layouts.chrome import (
    ContextOf,
    PageContext,
    Route,
    class_label,
    context_of,
    data_attrs,
    header,
    live_config,
    local,
    result_box,
)

REFRESH_S = 2.0  # least seconds between two rebuilds while cases change
LOCATE_ROLES = frozenset({"acceptor"})  # who gets the buttons (the lifecycle policy's locate_roles)


def _key() -> str:
    return f"desk-{uuid.uuid4().hex}"


def _candidates(ctx: PageContext, w: Waiting, may: bool) -> Any:
    lang = ctx.lang
    if not w.candidates:
        return html.P(t("locate.no_candidates", lang), className="gw-dim")
    head = html.Tr([html.Th(t(k, lang)) for k in ("locate.col.address", "locate.col.score", "locate.col.grid",
                                                   "queue.col.actions")])  # fmt: skip
    rows = []
    for c in w.candidates:
        a = c.address
        button = html.Button(
            t("act.do.locate", lang),
            type="button",
            className="gw-act-btn gw-locate-pick",
            **data_attrs(gw_action="locate", gw_key=_key(), gw_data=json.dumps({"address_id": a.id})),
        )
        exact = f" · {t('locate.exact', lang)}" if c.exact else ""
        rows.append(
            html.Tr(
                [
                    html.Td(a.text, className="gw-locate-text"),
                    html.Td(f"{c.score:.2f}{exact}"),
                    html.Td(dcc.Link(a.grid, href=ctx.href(f"/grid/{a.grid}")) if a.grid else "—"),
                    html.Td(button if may else []),
                ],
                className="gw-cand gw-locate-cand",
            )
        )
    return html.Table([html.Thead(head), html.Tbody(rows)], className="gw-desk-table gw-cands")


def _point_box(lang: str) -> html.Div:
    """A point typed in (WGS-84 degrees) and its button; gw-desk.js sends ``lon`` and ``lat``."""
    return html.Div(
        [
            dcc.Input(
                type="number",
                name="lon",
                placeholder=t("locate.lon", lang),
                step="any",
                className="gw-act-input gw-locate-lon",
            ),
            dcc.Input(
                type="number",
                name="lat",
                placeholder=t("locate.lat", lang),
                step="any",
                className="gw-act-input gw-locate-lat",
            ),
            html.Button(
                t("act.do.locate_point", lang),
                type="button",
                className="gw-act-btn gw-locate-point",
                **data_attrs(gw_action="locate", gw_key=_key()),
            ),
        ],
        className="gw-act gw-act-locate",
    )


def _case(ctx: PageContext, w: Waiting, may: bool) -> html.Section:
    lang = ctx.lang
    title = [
        dcc.Link(w.id, href=ctx.href(f"/case/{w.id}"), className="gw-q-case"),
        html.Span(
            f" · {class_label(ctx, w.kind, w.class_code)} · {local(w.reported_at)}", className="gw-dim"
        ),
    ]
    if w.grid:
        title.append(html.Span(f" · {t('locate.grid_given', lang)} {w.grid}", className="gw-dim"))
    body: list[Any] = [
        html.H3(title),
        html.P([html.Span(f"{t('locate.address', lang)}: "),
                html.Strong(w.address or t("locate.no_address", lang), className="gw-locate-address")]),
        html.H4(t("locate.candidates", lang)),
        _candidates(ctx, w, may),
    ]  # fmt: skip
    if may:
        body.append(_point_box(lang))
    return html.Section(body, className="gw-panel gw-locate-case", **data_attrs(gw_case=w.id))


def locate_body(ctx: PageContext) -> list[Any]:
    """The count and one panel per waiting case (rebuilt on live changes)."""
    lang = ctx.lang
    waiting, total = waiting_cases(ctx.data.engine)
    if not waiting:
        return [html.P(t("locate.empty", lang), className="gw-dim gw-locate-empty")]
    may = ctx.person.get("role") in LOCATE_ROLES
    more = total - len(waiting)
    return [
        html.P(t("locate.count", lang).format(n=total), className="gw-q-count"),
        *[_case(ctx, w, may) for w in waiting],
        *([html.P(t("locate.more", lang).format(n=more), className="gw-dim")] if more > 0 else []),
    ]


def _map(ctx: PageContext) -> html.Div:
    """The district on the basemap with the candidates; a click puts its point into every point box
    (``assets/gw-desk.js``), then 按坐标定位 on a case places it there."""
    ov = ctx.overview
    waiting, _ = waiting_cases(ctx.data.engine)
    spots = [(c.address.lon, c.address.lat, f"{w.id} · {c.address.text}")
             for w in waiting for c in w.candidates]  # fmt: skip
    fig = locate_map(streets=ov.streets, bounds=ov.summary.bounds, lang=ctx.lang, candidates=spots)
    return html.Div(
        [
            html.P(t("locate.map_hint", ctx.lang), className="gw-dim"),
            dcc.Graph(id=ids.LOCATE_MAP, figure=fig, config={"displayModeBar": False, "scrollZoom": True},
                      style={"height": "520px"}),
        ],
        className="gw-panel gw-locate-map",
    )  # fmt: skip


def page(ctx: PageContext) -> html.Div:
    """``/desk/locate``."""
    lang = ctx.lang
    title = t("locate.title", lang)
    ov = ctx.overview
    crumbs = [(ov.summary.name if lang == "zh" else ov.summary.name_en, "/desk"), (title, None)]
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Main(
                [
                    html.P(t("locate.hint", lang), className="gw-dim"),
                    result_box(lang),
                    _map(ctx),
                    html.Div(locate_body(ctx), id=ids.LOCATE_BODY),
                ],
                className="gw-worklist-page gw-locate-page",
            ),
            live_config("wall", ids.LOCATE_REFRESH, REFRESH_S),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """Rebuild the list when the live script says open cases changed."""

    @app.callback(
        Output(ids.LOCATE_BODY, "children"),
        Input(ids.LOCATE_REFRESH, "data"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def refresh(_: Any, search: str | None) -> Any:
        ctx = context_of(ctx_of, search)
        if ctx is None:
            return no_update
        return locate_body(ctx)


ROUTES = [Route(r"/desk/locate", page)]
