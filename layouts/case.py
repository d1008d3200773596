"""The case page ``/case/<id>``: where, what, who, photos, the whole timeline and the deadline.

The timeline lists every event of the case log (actor, role, opinion, returns, reworks,
suspensions) and a Gantt-style figure shows each span in a stage against its deadline. While the
case is open the page joins ``/live`` room ``case:<id>`` (``assets/gw-desk.js``); a tick that
touches the case bumps ``ids.CASE_REFRESH`` and the body is rebuilt from the store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update
from sqlalchemy import select

from dashboard import ids
from dashboard.actions import Offer, TaskRow, case_tasks, may_assign, nearest, offers, with_open_tasks
from dashboard.case_figures import location_figure, timeline_figure
from dashboard.deskdata import segments
from dashboard.i18n import t
from dashboard.locating import nearest_address
from domain.lifecycle import default_department
from domain.supervisor import distance_m
from domain.timelimit import LimitUnit, TimeLimit
from layouts.chrome import (
    TZ,
    ContextOf,
    PageContext,
    Route,
    class_label,
    context_of,
    crumbs_for,
    data_attrs,
    fmt_left,
    header,
    live_config,
    local,
    result_box,
)
from layouts.component import component_field
from layouts.component_stats import class_basis_field
from store.models import Case, Department

# data fields of an event worth showing in the timeline, in this order
EVENT_FIELDS = ("department", "confirmed", "passed", "extra", "special", "error", "self_handled", "assignee",
                "deadline", "class_code")  # fmt: skip


def limit_text(timer: Any, lang: str) -> str:
    """A stage timer's limit: ``2工作日`` in Chinese, ``2 work days`` in English."""
    try:
        limit = TimeLimit(float(timer.limit_value), LimitUnit(timer.limit_unit))
    except ValueError:
        return f"{timer.limit_value:g} {timer.limit_unit}"
    return str(limit) if lang == "zh" else f"{limit.value:g} {limit.unit.value.replace('_', ' ')}"


def department_name(ctx: PageContext, code: str | None) -> str:
    """A department's name (or its code)."""
    if not code:
        return "—"
    with ctx.data.engine.connect() as conn:
        name = conn.scalar(select(Department.name).where(Department.code == code))
    return f"{name} ({code})" if name else code


def _field(label: str, value: Any, **kw: Any) -> html.Div:
    kw.setdefault("className", "gw-f-value")
    return html.Div(
        [html.Div(label, className="gw-f-label"), html.Div(value, **kw)],
        className="gw-field",
    )


def _event_detail(e: Mapping[str, Any], lang: str) -> str:
    data = e["data"]
    parts = [f"{k}={data[k]}" for k in EVENT_FIELDS if data.get(k) not in (None, "")]
    if data.get("media"):
        parts.append(f"{t('case.photos', lang)} {len(str(data['media']).split(','))}")
    if data.get("handled_media"):
        parts.append(f"{t('case.photos_after', lang)} {len(str(data['handled_media']).split(','))}")
    return " · ".join(parts)


def timeline_table(c: Mapping[str, Any], lang: str) -> html.Table:
    """Every event of the case log, in order."""
    head = html.Tr(
        [html.Th(t(f"case.col.{k}", lang)) for k in ("at", "action", "actor", "role", "stage", "opinion")]
    )
    rows = []
    for e in c["events"]:
        to = e["to"]
        stage = (
            t(f"case.status.{to}", lang) if to in ("closed", "voided") else t(f"stage.{_stage_of(to)}", lang)
        )
        opinion = " · ".join(x for x in (e["opinion"], _event_detail(e, lang)) if x)
        rows.append(
            html.Tr(
                [
                    html.Td(local(e["at"])),
                    html.Td(t(f"action.{e['action']}", lang), className="gw-ev-action"),
                    html.Td(e["actor"], className="gw-ev-actor"),
                    html.Td(t(f"role.{e['role']}", lang)),
                    html.Td(stage),
                    html.Td(opinion, className="gw-ev-opinion"),
                ],
                className=f"gw-ev gw-ev-{e['action']}",
                title=f"#{e['seq']}",
            )
        )
    return html.Table(
        [html.Thead(head), html.Tbody(rows)], className="gw-desk-table gw-timeline", id=ids.CASE_TIMELINE
    )


def _stage_of(status: str) -> str:
    from domain.lifecycle import DISPLAY_STAGE, Status

    try:
        stage = DISPLAY_STAGE.get(Status(status))
    except ValueError:
        return status
    return stage.value if stage is not None else status


def _key() -> str:
    """An idempotency key for one rendering of an action (a repeated click repeats the command)."""
    return f"desk-{uuid.uuid4().hex}"


def _departments(ctx: PageContext, c: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Departments for a dispatch: a sub-centre's own units (二级派遣); else the centre's choice, the
    class's own department first, without the sub-centres' units (theirs to dispatch to)."""
    rules = ctx.rules
    if rules is None:
        return []
    cat = rules.catalogue
    if c["status"] == "sub_dispatching":
        units = [cat.departments[u] for u in cat.units_of(str(c["department"]))]
        return [(d.code, f"{d.name} ({d.code})") for d in units]
    try:
        own = default_department(c["state"], cat)  # the named 部件's unit, else the class's (issue 18)
    except Exception:
        own = None
    depts = sorted(
        (d for d in cat.departments.values() if not cat.is_subcentre(d.parent)),
        key=lambda d: (d.code != own, d.code),
    )
    return [(d.code, f"{d.name} ({d.code})") for d in depts]


def _offer_box(ctx: PageContext, c: Mapping[str, Any], offer: Offer) -> html.Div:
    lang = ctx.lang
    parts: list[Any] = []
    if "department" in offer.fields:
        parts.append(
            html.Select(
                [html.Option(label, value=code) for code, label in _departments(ctx, c)],
                name="department",
                className="gw-act-input",
                title=t("act.department", lang),
            )
        )
    if "extra" in offer.fields:
        parts.append(
            dcc.Input(type="text", name="extra", placeholder=t("act.extra", lang), className="gw-act-input")
        )
    if "special" in offer.fields:
        parts.append(
            dcc.Checklist(
                options=[{"label": t("act.special", lang), "value": "special"}],
                value=[],
                className="gw-act-check",
            )
        )
    if offer.action == "feedback":  # 处置反馈 with photos after the fix, picked on the desktop (gw-desk.js)
        parts.append(
            html.Button(
                t("act.photos", lang),
                type="button",
                className="gw-act-input gw-act-photos",
                **data_attrs(gw_photos=offer.action),
            )
        )
    parts.append(
        html.Button(
            t(f"act.do.{offer.label}", lang),
            type="button",
            className="gw-act-btn" + (" gw-act-needs-opinion" if offer.opinion_required else ""),
            **data_attrs(
                gw_action=offer.action,
                gw_key=_key(),
                **({"gw_data": json.dumps(dict(offer.data))} if offer.data else {}),
            ),
        )
    )
    return html.Div(parts, className=f"gw-act gw-act-{offer.label}")


def actions_panel(ctx: PageContext, c: Mapping[str, Any]) -> html.Section | None:
    """The commands the logged-in person may give on the case now, with the input each needs."""
    if not c["open"] or ctx.rules is None:
        return None
    lang = ctx.lang
    found = offers(c["state"], ctx.person, ctx.rules, ctx.now)
    state = c["state"]
    pending: Any = None
    if state.request is not None:
        req = state.request
        pending = html.P(
            f"{t('act.pending', lang)}: {t(f'action.{req.action.value}', lang)} · {req.by} · "
            f"{local(req.at)}" + (f" · {req.extra}" if req.extra is not None else ""),
            className="gw-act-pending",
        )
    body: list[Any] = [html.H2(t("act.title", lang))]
    if pending is not None:
        body.append(pending)
    if found:
        body.append(
            html.Textarea(
                name="opinion",
                placeholder=t("act.opinion", lang),
                className="gw-act-opinion",
                rows=2,
                maxLength=500,
            )
        )
        body.append(html.Div([_offer_box(ctx, c, o) for o in found], className="gw-act-row"))
    else:
        body.append(html.P(t("act.none", lang), className="gw-dim"))
    return html.Section(
        body, className="gw-panel gw-actions", id=ids.CASE_ACTIONS, **data_attrs(gw_case=c["id"])
    )


def _task_state(task: TaskRow, lang: str) -> str:
    if task.done_at is not None:
        if task.result is None:
            return f"{t('task.superseded', lang)} {local(task.done_at)}"
        return f"{t(f'task.result.{task.kind}.{str(task.result).lower()}', lang)} {local(task.done_at)}"
    if task.acked_at is not None:
        return f"{t('task.acked', lang)} {local(task.acked_at)}"
    return t("task.waiting", lang)


def _case_point(ctx: PageContext, c: Mapping[str, Any]) -> tuple[float, float] | None:
    if c["lon"] is not None and c["lat"] is not None:
        return float(c["lon"]), float(c["lat"])
    h = ctx.data.hierarchy()
    info = h.grids.get(c["grid"]) if h is not None and c["grid"] else None
    if info is None:
        return None
    return (info.bbox[0] + info.bbox[2]) / 2, (info.bbox[1] + info.bbox[3]) / 2


def address_field(ctx: PageContext, c: Mapping[str, Any]) -> html.Div:
    """The address as reported and the gazetteer's nearest 门牌 to the case's point (or 待定位)."""
    lang = ctx.lang
    parts: list[Any] = [html.Span(c["address"] or "—", className="gw-case-reported-address")]
    near = nearest_address(ctx.data.engine, c["lon"], c["lat"])
    if near is not None:
        a, metres = near
        parts.append(html.Span(f" · {t('case.nearest_address', lang)} {a.text} ({metres:,.0f} m)",
                               className="gw-dim gw-case-nearest-address"))  # fmt: skip
    elif c["lon"] is not None:
        parts.append(html.Span(f" · {t('case.address_none', lang)}", className="gw-dim"))
    if c["open"] and getattr(c["state"], "needs_location", False):
        parts.append(html.Span(" · "))
        link = dcc.Link(t("case.needs_location", lang), href=ctx.href("/desk/locate"), className="gw-late")
        parts.append(link)
    return _field(t("case.address", lang), parts, id=ids.CASE_ADDRESS)


def orders_panel(ctx: PageContext, c: Mapping[str, Any]) -> html.Section | None:
    """The case's 督办单: who urged which department, by when to reply, and the reply."""
    orders = c["state"].orders
    if not orders:
        return None
    lang = ctx.lang
    keys = ("order.by", "order.target", "order.issued", "order.note", "order.deadline", "order.reply")
    head = html.Tr([html.Th(t(k, lang)) for k in keys])
    rows = []
    for o in orders:
        if o.replied_at is None:
            late = ctx.now > o.deadline
            reply: Any = html.Span(t("order.late" if late else "order.open", lang),
                                   className="gw-late" if late else "gw-dim")  # fmt: skip
        else:
            late_reply = f" · {t('order.replied_late', lang)}" if o.replied_at > o.deadline else ""
            reply = f"{o.reply} ({local(o.replied_at)}{late_reply})"
        rows.append(
            html.Tr(
                [
                    html.Td(o.by),
                    html.Td(department_name(ctx, o.target)),
                    html.Td(local(o.issued_at)),
                    html.Td(o.note or "—", className="gw-order-note"),
                    html.Td(local(o.deadline)),
                    html.Td(reply),
                ],
                className="gw-order" + (" gw-order-open" if o.is_open else ""),
            )
        )
    return html.Section(
        [
            html.H2(t("order.title", lang)),
            html.Table([html.Thead(head), html.Tbody(rows)], className="gw-desk-table", id=ids.CASE_ORDERS),
        ],
        className="gw-panel",
    )


def tasks_panel(ctx: PageContext, c: Mapping[str, Any]) -> html.Section | None:
    """The case's 核实/核查 tasks (sent, received, result) and, when the person may, whom to send."""
    lang = ctx.lang
    tasks = case_tasks(ctx.data.engine, c["id"])
    may = ctx.rules is not None and c["open"] and may_assign(c["state"], ctx.person, ctx.rules, ctx.now)
    if not tasks and not may:
        return None
    head = html.Tr([html.Th(t(k, lang)) for k in ("task.kind", "act.col.supervisor", "task.sent",
                                                   "case.deadline", "act.col.status")])  # fmt: skip
    rows = [
        html.Tr(
            [
                html.Td(t(f"task.{task.kind}", lang)),
                html.Td(
                    dcc.Link(task.assignee, href=ctx.href(f"/supervisor/{task.assignee}"))
                    if task.assignee
                    else "—"
                ),
                html.Td(local(task.created_at)),
                html.Td(local(task.deadline)),
                html.Td(_task_state(task, lang), className="gw-task-state"),
            ],
            className="gw-task" + (" gw-task-open" if task.done_at is None else ""),
        )
        for task in tasks
    ]
    body: list[Any] = [
        html.H2(t("task.title", lang)),
        html.Table(
            [html.Thead(head), html.Tbody(rows)], className="gw-desk-table gw-tasks", id=ids.CASE_TASKS
        )
        if rows
        else html.P(t("task.none", lang), className="gw-dim"),
    ]
    point = _case_point(ctx, c) if may else None
    if may and point is not None:
        kind = "verify" if c["status"] == "verifying" else "check"
        sups = ctx.live.supervisor_views() if ctx.live is not None else ()
        cands = with_open_tasks(ctx.data.engine, nearest(sups, *point))
        body.append(html.H3(t("act.nearest", lang)))
        body.append(
            html.P(t("act.nearest.hint", lang).format(task=t(f"task.{kind}", lang)), className="gw-dim")
        )
        if cands:
            chead = html.Tr([html.Th(t(k, lang)) for k in ("act.col.supervisor", "act.col.status",
                             "act.col.distance", "act.col.fix", "act.col.tasks", "act.title")])  # fmt: skip
            crow = [
                html.Tr(
                    [
                        html.Td(dcc.Link(x.id, href=ctx.href(f"/supervisor/{x.id}"))),
                        html.Td(t(f"status.{x.status}", lang), className=f"gw-sup-{x.status}"),
                        html.Td(f"{x.distance_m:,.0f} m"),
                        html.Td(local(x.at)),
                        html.Td(str(x.open_tasks)),
                        html.Td(
                            html.Button(
                                t("act.do.assign", lang),
                                type="button",
                                className="gw-act-btn gw-act-assign",
                                **data_attrs(gw_action="assign", gw_key=_key(), gw_assignee=x.id),
                            )
                        ),
                    ],
                    className="gw-cand",
                )
                for x in cands
            ]
            body.append(
                html.Table(
                    [html.Thead(chead), html.Tbody(crow)],
                    className="gw-desk-table gw-cands",
                    id=ids.CASE_NEAREST,
                )
            )
        else:
            body.append(html.P(t("act.nearest.none", lang), className="gw-dim"))
    return html.Section(body, className="gw-panel gw-task-panel", **data_attrs(gw_case=c["id"]))


def duplicate_field(ctx: PageContext, c: Mapping[str, Any]) -> html.Div | None:
    """疑似重复 (issue 21): the earlier open report this one may repeat, how far and how long before; or
    the case it was merged into."""
    lang, state = ctx.lang, c["state"]
    merged, twin = getattr(state, "merged_into", None), getattr(state, "duplicate_of", None)
    if merged:
        link = dcc.Link(merged, href=ctx.href(f"/case/{merged}"))
        return _field(t("case.merged_into", lang), link, id=ids.CASE_DUPLICATE)
    if not twin or not c["open"]:
        return None
    parts: list[Any] = [dcc.Link(twin, href=ctx.href(f"/case/{twin}"))]
    with ctx.data.engine.connect() as conn:
        row = conn.execute(select(Case.lon, Case.lat, Case.reported_at).where(Case.id == twin)).first()
    if row is not None and row.lon is not None and c["lon"] is not None:
        metres = distance_m(float(c["lon"]), float(c["lat"]), float(row.lon), float(row.lat))
        near = t("case.duplicate_near", lang).format(m=metres, when=local(row.reported_at))
        parts.append(html.Span(" · " + near, className="gw-dim"))
    return _field(t("case.duplicate_of", lang), parts, id=ids.CASE_DUPLICATE, className="gw-f-value gw-late")


def case_body(ctx: PageContext, c: Mapping[str, Any]) -> list[Any]:
    """The live part of the page: facts, countdown, photos, figure and timeline."""
    lang = ctx.lang
    now = ctx.now
    if c["open"]:
        timer = None
        from dashboard.deskdata import TIMER_OF_STATUS

        timer = c["timers"].get(TIMER_OF_STATUS.get(c["status"], ""))
        if c["status"] == "suspended":
            countdown, late = t("case.paused", lang), False
        else:
            countdown, late = fmt_left(c["deadline"], now, lang)
        limit = f" ({t('case.limit', lang)} {limit_text(timer, lang)})" if timer is not None else ""
        stage_text = t(f"stage.{c['stage']}", lang)
    else:
        countdown, late, limit = local(c["closed_at"]), False, ""
        stage_text = t(f"case.status.{c['status']}", lang)
    place = " · ".join(
        x for x in (c["address"] or "", f"{c['lon']:.5f}, {c['lat']:.5f}" if c["lon"] else "") if x
    )
    facts = html.Div(
        [
            _field(t("case.stage", lang), stage_text),
            _field(
                t("case.deadline", lang),
                f"{countdown}{limit}",
                id=ids.CASE_COUNTDOWN,
                className="gw-f-value" + (" gw-late" if late else ""),
            ),
            _field(t("case.class", lang), class_label(ctx, c["kind"], c["class_code"])),
            *([class_basis_field(ctx, c["kind"], c["class_code"])] if c["kind"] == "component" else []),
            _field(
                t("case.level", lang),
                t("case.level.emergency" if c["emergency"] else "case.level.normal", lang),
            ),
            _field(t("case.source", lang), t(f"source.{c['source']}", lang)),
            _field(
                t("case.location", lang),
                [
                    dcc.Link(c["grid"], href=ctx.href(f"/grid/{c['grid']}")) if c["grid"] else "—",
                    html.Span(f" {place}", className="gw-dim"),
                ],
            ),
            address_field(ctx, c),
            *([component_field(ctx, c["state"].component)] if getattr(c["state"], "component", None) else []),
            *([dup] if (dup := duplicate_field(ctx, c)) is not None else []),
            _field(t("case.department", lang), department_name(ctx, c["department"])),
            _field(t("case.reporter", lang), c["reporter"]),
            _field(
                "",
                t("case.counts", lang).format(reworks=c["reworks"], returns=c["returns"], urges=c["urges"]),
            ),
        ],
        className="gw-facts",
    )
    photos: Any = (
        html.Div(
            [
                html.A(
                    html.Img(src=f"/media/{ref}", className="gw-photo", alt=ref),
                    href=f"/media/{ref}",
                    target="_blank",
                )
                for ref in c["media"]
            ],
            className="gw-photos",
        )
        if c["media"]
        else html.P(t("case.no_photos", lang), className="gw-dim")
    )
    segs = segments(c["events"], c["timers"], now)
    acting = [x for x in (actions_panel(ctx, c), orders_panel(ctx, c), tasks_panel(ctx, c)) if x is not None]
    return [
        facts,
        *acting,
        html.Section(
            [html.H2(t("case.description", lang)), html.P(c["description"] or "—")], className="gw-panel"
        ),
        html.Section([html.H2(t("case.photos", lang)), photos], className="gw-panel"),
        html.Section(
            [
                html.H2(t("case.gantt", lang)),
                dcc.Graph(
                    id=ids.CASE_GANTT,
                    figure=timeline_figure(segs, lang, now, TZ),
                    config={"displayModeBar": False},
                ),
            ],
            className="gw-panel",
        ),
        html.Section(
            [html.H2(f"{t('case.timeline', lang)} ({len(c['events'])})"), timeline_table(c, lang)],
            className="gw-panel",
        ),
    ]


def page(ctx: PageContext, case_id: str) -> html.Div:
    """``/case/<id>``."""
    c = ctx.data.case(case_id)
    if c is None:
        raise KeyError(case_id)
    h = ctx.data.hierarchy()
    grid = c["grid"]
    info = h.grids.get(grid) if h is not None and grid else None
    crumbs = crumbs_for(
        ctx,
        street=info.street if info else c["street"],
        community=info.community if info else None,
        grid=grid,
        last=case_id,
    )
    title = f"{t('case.title', ctx.lang)} {case_id}"
    if c["origin"] == "simulation":
        title += f" · {t('case.simulated', ctx.lang)}"
    side: list[Any] = []
    if info is not None:
        shapes = ctx.data.grid_shapes([info.code])
        point = (c["lon"], c["lat"]) if c["lon"] is not None and c["lat"] is not None else None
        pad = 0.0005
        box = (info.bbox[0] - pad, info.bbox[1] - pad, info.bbox[2] + pad, info.bbox[3] + pad)
        fig = location_figure(
            shapes.get(info.code), point, box, ctx.lang, grid_code=info.code, viewport=(460, 380)
        )
        side.append(
            dcc.Graph(
                figure=fig,
                className="gw-case-map",
                style={"height": "380px"},
                config={"displayModeBar": False},
            )
        )
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Div(case_id, id=ids.CASE_ID, className="gw-hidden"),
            result_box(ctx.lang),
            html.Main(
                [
                    html.Div(case_body(ctx, c), id=ids.CASE_BODY, className="gw-case-main"),
                    html.Div(side, className="gw-case-side"),
                ],
                className="gw-case-page",
            ),
            live_config(f"case:{case_id}", ids.CASE_REFRESH, 1.0)
            if c["open"]
            else dcc.Store(id=ids.CASE_REFRESH),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if ctx.lang == "zh" else "en",
    )


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """Rebuild the case body when the live script says the case changed."""

    @app.callback(
        Output(ids.CASE_BODY, "children"),
        Input(ids.CASE_REFRESH, "data"),
        State(ids.CASE_ID, "children"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def refresh(_: Any, case_id: str | None, search: str | None) -> Any:
        ctx = context_of(ctx_of, search)
        if ctx is None or not case_id:
            return no_update
        c = ctx.data.case(case_id)
        if c is None:
            return no_update
        return case_body(ctx, c)


ROUTES = [Route(r"/case/([0-9A-Za-z_-]+)", page)]
