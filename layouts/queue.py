"""Work lists ``/desk/queue/<role>``: an operator's open items, nearest stage deadline first, live.

The items come from ``dashboard.worklist`` over the live state's open cases; each row links to its
case page (every command, with opinions and the nearest-supervisor dispatch) and carries the
commands that need no input (受理, 立案, 结案, 派遣, 批准, 恢复) as buttons for the person whose role
may give them. The page joins ``/live`` room ``wall`` and is rebuilt when a tick changes cases
(``assets/gw-desk.js``); the buttons post through the one command path.
"""

from __future__ import annotations

import uuid
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids
from dashboard.figures import STAGE_COLOURS
from dashboard.i18n import t
from dashboard.worklist import QUEUE_ROLES, WorkItem, worklist
from layouts.chrome import (
    ContextOf,
    PageContext,
    Route,
    class_namer,
    context_of,
    data_attrs,
    fmt_left,
    header,
    live_config,
    result_box,
)

ROWS = 300  # items drawn (the count shows all)
REFRESH_S = 2.0  # least seconds between two rebuilds while cases change


LATE = "gw-late"


def _row(ctx: PageContext, item: WorkItem, names: dict[str, str], class_name: Any, may: bool) -> html.Tr:
    c, lang = item.case, ctx.lang
    left, late = (
        fmt_left(c.deadline, ctx.now, lang) if c.status != "suspended" else (t("case.paused", lang), False)
    )
    buttons = [
        html.Button(
            t(f"act.do.{a}", lang),
            type="button",
            className="gw-act-btn gw-act-quick",
            **data_attrs(gw_action=a, gw_key=f"desk-{uuid.uuid4().hex}"),
        )
        for a in item.quick
    ]
    return html.Tr(
        [
            html.Td(left, className="gw-q-left" + (" gw-late" if late else "")),
            html.Td(dcc.Link(c.id, href=ctx.href(f"/case/{c.id}"), className="gw-q-case")),
            html.Td(t(f"stage.{c.stage}", lang), style={"color": STAGE_COLOURS.get(c.stage, "#e8eef9")}),
            html.Td(class_name(c)),
            html.Td(names.get(c.street or "", c.street or "—")),
            html.Td(
                [
                    t(f"queue.todo.{item.todo}", lang)
                    + (f" · {t(f'action.{c.request}', lang)}" if c.request else ""),
                    *(  # issue 21: a report that may repeat an open case, to merge or keep apart
                        [html.Span(f" · {t('case.duplicate_of', lang)} {c.duplicate_of}", className=LATE)]
                        if c.duplicate_of
                        else []
                    ),
                ]
            ),
            html.Td(buttons if may else [], className="gw-q-actions"),
        ],
        className="gw-q-row" + (" gw-q-late" if late else ""),
        **data_attrs(gw_case=c.id),
    )


def queue_body(ctx: PageContext, role: str) -> list[Any]:
    """The count and the table of ``role``'s items (rebuilt on live changes)."""
    lang = ctx.lang
    policy = ctx.rules.policy if ctx.rules is not None else None
    mine = ctx.person.get("department") if ctx.person.get("role") == "department" else None
    items = worklist(role, ctx.live.open_cases() if ctx.live is not None else (), policy, mine)
    if not items:
        return [html.P(t("queue.empty", lang), className="gw-dim gw-q-empty")]
    names = {s.code: s.name for s in ctx.overview.streets}
    may = ctx.person.get("role") == role  # a leader may look; the buttons are the operator's
    cols = ("deadline", "case", "stage", "class", "street", "todo", "actions")
    head = html.Tr([html.Th(t(f"queue.col.{k}", lang)) for k in cols])
    namer = class_namer(ctx)
    rows = [_row(ctx, i, names, namer, may) for i in items[:ROWS]]
    more = len(items) - ROWS
    return [
        html.P(t("queue.count", lang).format(n=len(items)), className="gw-q-count"),
        html.Table([html.Thead(head), html.Tbody(rows)], className="gw-desk-table gw-worklist"),
        *([html.P(f"+{more}", className="gw-dim")] if more > 0 else []),
    ]


def page(ctx: PageContext, role: str) -> html.Div:
    """``/desk/queue/<role>`` (acceptor, shift_leader, dispatcher, department: a department person sees
    their own department's)."""
    if role not in QUEUE_ROLES:
        raise KeyError(role)
    lang = ctx.lang
    title = t(f"queue.{role}", lang)
    ov = ctx.overview
    crumbs = [(ov.summary.name if lang == "zh" else ov.summary.name_en, "/desk"), (title, None)]
    tabs = html.Nav(
        [
            dcc.Link(
                t(f"role.{r}", lang),
                href=ctx.href(f"/desk/queue/{r}"),
                className="gw-q-tab" + (" gw-q-tab-here" if r == role else ""),
            )
            for r in QUEUE_ROLES
        ],
        className="gw-q-tabs",
    )
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Div(role, id=ids.QUEUE_ROLE, className="gw-hidden"),
            html.Main(
                [tabs, result_box(lang), html.Div(queue_body(ctx, role), id=ids.QUEUE_BODY)],
                className="gw-worklist-page",
            ),
            live_config("wall", ids.QUEUE_REFRESH, REFRESH_S),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """Rebuild the list when the live script says open cases changed."""

    @app.callback(
        Output(ids.QUEUE_BODY, "children"),
        Input(ids.QUEUE_REFRESH, "data"),
        State(ids.QUEUE_ROLE, "children"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def refresh(_: Any, role: str | None, search: str | None) -> Any:
        ctx = context_of(ctx_of, search)
        if ctx is None or role not in QUEUE_ROLES:
            return no_update
        return queue_body(ctx, role)


ROUTES = [Route(r"/desk/queue/([a-z_]+)", page)]
