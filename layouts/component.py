"""The component page ``/component/<id>`` (issue 18): one 部件 object of the inventory — its class,
state, point and grid, its three responsible units (主管/权属/养护) and which of them handles reports,
its free attributes, every change of its history, and the cases that named it.

Read only (Dash pages only read); the object is changed by ``app.py import components``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import request

from dashboard import ids
from dashboard.case_figures import location_figure
from dashboard.figures import with_components
from dashboard.i18n import t
from domain.component import ComponentState, Role, handling_unit
from feeds.intake import INVENTORY_ROLES
from layouts.chrome import (
    ContextOf,
    PageContext,
    Route,
    class_label,
    context_of,
    crumbs_for,
    data_attrs,
    header,
    live_config,
    local,
    result_box,
)
from layouts.component_stats import class_basis_field
from store.components import ComponentBook, component_view, grid_components, inventory_version


def _field(label: str, value: Any, **kw: Any) -> html.Div:
    kw.setdefault("className", "gw-f-value")
    return html.Div([html.Div(label, className="gw-f-label"), html.Div(value, **kw)], className="gw-field")


def _unit(names: dict[str, str], code: str | None) -> str:
    if not code:
        return "—"
    return f"{names[code]} ({code})" if code in names else code


def _changes(changes: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {json.dumps(v[0], ensure_ascii=False)} → {json.dumps(v[1], ensure_ascii=False)}"
                     for k, v in changes.items())  # fmt: skip


def page(ctx: PageContext, code: str) -> html.Div:
    """``/component/<id>``."""
    lang = ctx.lang
    with ctx.data.engine.connect() as conn:
        view = component_view(conn, code)
    if view is None:
        raise KeyError(code)  # the router answers "not found"
    c, names = view["component"], view["departments"]
    units = {Role.MAIN: c["unit_main"], Role.OWNER: c["unit_owner"], Role.CARE: c["unit_care"]}
    handler = handling_unit(units, ComponentBook.shared(ctx.data.engine).order)
    grid = c["grid_code"]
    facts = html.Div(
        [
            _field(t("component.id", lang), c["id"], id=ids.COMPONENT_ID),
            _field(t("case.class", lang), class_label(ctx, "component", c["class_code"])),
            class_basis_field(ctx, "component", c["class_code"]),
            _field(t("component.name", lang), c["name"] or "—"),
            _field(
                t("component.state", lang), t(f"component.state.{c['state']}", lang), id=ids.COMPONENT_STATE
            ),
            _field(
                t("case.location", lang),
                [
                    dcc.Link(grid, href=ctx.href(f"/grid/{grid}")) if grid else "—",
                    html.Span(
                        f" {c['lon']:.6f}, {c['lat']:.6f} ({view['geometry']['type']})", className="gw-dim"
                    ),
                ],
            ),
            *(
                _field(t(f"component.role.{r.name.lower()}", lang), _unit(names, units[r]))
                for r in (Role.MAIN, Role.OWNER, Role.CARE)
            ),
            _field(t("component.handler", lang), _unit(names, handler), id=ids.COMPONENT_HANDLER),
            _field(t("component.source", lang), c["source"]),
            _field(t("component.surveyed", lang), str(c["surveyed_on"] or "—")),
            _field(t("component.updated", lang), local(c["updated_at"])),
            *(_field(str(k), str(v)) for k, v in sorted((c["attributes"] or {}).items())),
        ],
        className="gw-facts",
    )
    case_rows = [
        html.Tr(
            [
                html.Td(dcc.Link(k["id"], href=ctx.href(f"/case/{k['id']}"))),
                html.Td(local(k["reported_at"])),
                html.Td(
                    t(f"stage.{k['stage']}", lang) if k["stage"] else t(f"case.status.{k['status']}", lang)
                ),
                html.Td(_unit(names, k["department_code"])),
            ]
        )
        for k in view["cases"]
    ]
    cases = html.Section(
        [
            html.H2(f"{t('component.cases', lang)} ({len(case_rows)})"),
            html.Table(
                [
                    html.Tr(
                        [
                            html.Th(t(k, lang))
                            for k in ("component.case", "component.reported", "case.stage", "case.department")
                        ]
                    ),
                    *case_rows,
                ],
                className="gw-desk-table",
                id=ids.COMPONENT_CASES,
            )
            if case_rows
            else html.P(t("component.no_cases", lang), className="gw-dim"),
        ],
        className="gw-panel",
    )
    history = html.Section(
        [
            html.H2(t("component.history", lang)),
            html.Table(
                [
                    html.Tr(
                        [
                            html.Th(t(k, lang))
                            for k in ("component.when", "component.who", "component.what", "component.why")
                        ]
                    ),
                    *(
                        html.Tr(
                            [
                                html.Td(local(h["at"])),
                                html.Td(h["actor"]),
                                html.Td(
                                    f"{t('component.action.' + h['action'], lang)} {_changes(h['changes'])}"
                                ),
                                html.Td(h["reason"]),
                            ]
                        )
                        for h in view["history"]
                    ),
                ],
                className="gw-desk-table",
                id=ids.COMPONENT_HISTORY,
            ),
        ],
        className="gw-panel",
    )
    admin = ctx.person.get("role") in INVENTORY_ROLES  # admin and surveyor (the command path checks too)
    h = ctx.data.hierarchy()
    info = h.grids.get(grid) if h is not None and grid else None
    crumbs = crumbs_for(ctx, street=info.street if info else None, community=info.community if info else None,
                        grid=grid, last=code)  # fmt: skip
    side: list[Any] = []
    if info is not None:  # the grid and the object's point (its representative point for a line)
        pad = 0.0005
        box = (info.bbox[0] - pad, info.bbox[1] - pad, info.bbox[2] + pad, info.bbox[3] + pad)
        fig = location_figure(ctx.data.grid_shapes([info.code]).get(info.code), (c["lon"], c["lat"]), box,
                              lang, grid_code=info.code, viewport=(460, 380))  # fmt: skip
        with ctx.data.engine.connect() as conn:  # the 部件 layer's tiles: the store's version (cheap)
            version = inventory_version(conn)
        fig = with_components(fig, request.host_url, version, lang=lang if admin else None)
        side.append(dcc.Graph(id=ids.COMPONENT_MAP, figure=fig, className="gw-case-map",
                              style={"height": "380px"}, config={"displayModeBar": False}))  # fmt: skip
    return html.Div(
        [
            header(ctx, crumbs, f"{t('component.title', lang)} {code}"),
            # what the last update got: outside the body, which is rebuilt after a command and every 5 s
            *([result_box(lang)] if admin else []),
            html.Main(
                [
                    html.Div(
                        [facts, *([update_panel(ctx, c, names)] if admin else []), cases, history],
                        className="gw-case-main",
                    ),
                    html.Div(side, className="gw-case-side"),
                ],
                className="gw-case-page",
                id=ids.COMPONENT_BODY,
            ),
            html.Div(code, id=ids.COMPONENT_CODE, className="gw-hidden"),
            live_config(f"grid:{grid}" if grid else "wall", ids.COMPONENT_REFRESH, 5.0),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


def update_panel(ctx: PageContext, c: dict[str, Any], names: dict[str, str]) -> html.Section:
    """An admin's online update of the object (issue 18): its state, one role's unit, its point, or
    retire it — buttons that ``assets/gw-desk.js`` posts to ``POST /api/v1/commands`` (the
    ``component`` event of the one pipeline, with the history's reason from the opinion box)."""
    lang = ctx.lang

    def button(label: str, action: str, data: dict[str, str] | None = None) -> html.Button:
        extra = {"gw_data": json.dumps(data, ensure_ascii=False)} if data else {}
        attrs = data_attrs(gw_action=action, gw_key=f"desk-{uuid.uuid4().hex}", **extra)
        return html.Button(label, type="button", className="gw-act-btn", **attrs)

    states = [s.value for s in ComponentState if s is not ComponentState.RETIRED and s.value != c["state"]]
    units = [html.Option(f"{n} ({k})", value=k) for k, n in sorted(names.items())]
    rows = [
        html.Div(
            [button(t(f"component.state.{s}", lang), "component_state", {"state": s}) for s in states],
            className="gw-act",
        ),
        html.Div(
            [html.Select(units, name="department", className="gw-act-input")]
            + [
                button(t(f"component.role.{r}", lang), "component_owners", {"role": f"unit_{r}"})
                for r in ("main", "owner", "care")
            ],
            className="gw-act",
        ),
        html.Div(
            [
                dcc.Input(type="text", name="lon", placeholder="lon (WGS-84)", className="gw-act-input"),
                dcc.Input(type="text", name="lat", placeholder="lat", className="gw-act-input"),
                button(t("component.move", lang), "component_move"),
            ],
            className="gw-act",
        ),
        html.Div([button(t("component.retire", lang), "component_retire")], className="gw-act"),
        dcc.Input(
            type="text", name="opinion", placeholder=t("component.why", lang), className="gw-act-input"
        ),
    ]
    return html.Section(
        [
            html.H2(t("component.update", lang)),
            html.Div(rows, **data_attrs(gw_case=c["id"])),
        ],
        className="gw-panel",
        id=ids.COMPONENT_UPDATE,
    )


def grid_panel(ctx: PageContext, grid: str) -> html.Section:
    """The grid page's 部件: the count of each class in the grid and its objects, each a link."""
    lang = ctx.lang
    with ctx.data.engine.connect() as conn:
        counts, rows = grid_components(conn, grid)
    body: list[Any]  # the section's children after its heading: one flat list (Dash renders no nested list)
    if not counts:
        body = [html.P(t("component.none", lang), className="gw-dim")]
    else:
        summary = " · ".join(f"{class_label(ctx, 'component', k)} {n}" for k, n in counts.items())
        table = html.Table(
            [
                html.Tr(
                    [
                        html.Td(dcc.Link(r.id, href=ctx.href(f"/component/{r.id}"))),
                        html.Td(class_label(ctx, "component", r.class_code)),
                        html.Td(r.name or "—"),
                        html.Td(t(f"component.state.{r.state}", lang)),
                    ]
                )
                for r in rows
            ],
            className="gw-desk-table",
        )
        more = sum(counts.values()) - len(rows)
        body = [html.P(summary, className="gw-dim"), table]
        if more > 0:
            body.append(html.P(t("locate.more", lang).format(n=more), className="gw-dim"))
    return html.Section(
        [html.H2(f"{t('component.title', lang)} ({sum(counts.values())})"), *body],
        className="gw-panel",
        id=ids.GRID_COMPONENTS,
    )


def component_field(ctx: PageContext, code: str) -> html.Div:
    """The case page's line for the 部件 a case names: a link to its page, its class name and state."""
    obj = ComponentBook.shared(ctx.data.engine).get(code)
    extra = f" {obj.name or ''} · {t(f'component.state.{obj.state}', ctx.lang)}" if obj is not None else ""
    return _field(
        t("component.title", ctx.lang),
        [dcc.Link(code, href=ctx.href(f"/component/{code}")), html.Span(extra, className="gw-dim")],
        id=ids.CASE_COMPONENT,
    )


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """Rebuild the page's body after an update (gw-desk.js bumps the store once a command is accepted)."""

    @app.callback(
        Output(ids.COMPONENT_BODY, "children"),
        Input(ids.COMPONENT_REFRESH, "data"),
        State(ids.COMPONENT_CODE, "children"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def refresh(_: Any, code: str | None, search: str | None) -> Any:
        ctx = context_of(ctx_of, search)
        if ctx is None or not code:
            return no_update
        try:
            built = page(ctx, code)
        except KeyError:
            return no_update
        return next(c for c in built.children if getattr(c, "id", None) == ids.COMPONENT_BODY).children


ROUTES = [Route(r"/component/([0-9]{16})", page)]
