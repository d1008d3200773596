"""``/desk/orders``: the unanswered 督办单 (urging orders), nearest reply deadline first.

A 督办单 is written by a ``urge`` while a department holds the case (``domain.lifecycle.UrgeOrder``)
and answered by that department's ``urge_reply``. A department's person sees its own orders, every
other desk person all of them; each row links to its case page, where the department replies.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from sqlalchemy import select

from dashboard import ids
from dashboard.deskdata import OpenOrder, open_orders
from dashboard.figures import STAGE_COLOURS
from dashboard.i18n import t
from layouts.chrome import PageContext, Route, fmt_left, header, local
from store.models import Department

ROWS = 500  # orders drawn (the count shows all)


def _row(ctx: PageContext, o: OpenOrder, names: dict[str, str], depts: dict[str, str]) -> html.Tr:
    lang = ctx.lang
    left, late = fmt_left(o.order.deadline, ctx.now, lang)
    try:
        cls = ctx.rules.catalogue.minor(o.kind, o.class_code).name if ctx.rules is not None else o.class_code
    except Exception:
        cls = o.class_code
    return html.Tr(
        [
            html.Td(left, className="gw-q-left" + (" gw-late" if late else "")),
            html.Td(dcc.Link(o.case_id, href=ctx.href(f"/case/{o.case_id}"), className="gw-q-case")),
            html.Td(
                t(f"stage.{o.stage}", lang) if o.stage else "—",
                style={"color": STAGE_COLOURS.get(o.stage or "", "#e8eef9")},
            ),
            html.Td(cls),
            html.Td(names.get(o.street or "", o.street or "—")),
            html.Td(depts.get(o.order.target, o.order.target)),
            html.Td(f"{o.order.by} · {local(o.order.issued_at)}"),
            html.Td(o.order.note or "—", className="gw-order-note"),
        ],
        className="gw-q-row gw-order-row" + (" gw-q-late" if late else ""),
    )


def page(ctx: PageContext) -> html.Div:
    """``/desk/orders``: open 督办单 (a department sees its own)."""
    lang = ctx.lang
    mine = ctx.person.get("department") if ctx.person.get("role") == "department" else None
    found = open_orders(ctx.data.engine, mine)
    with ctx.data.engine.connect() as conn:
        depts = {str(c): str(n) for c, n in conn.execute(select(Department.code, Department.name))}
    names = {s.code: s.name for s in ctx.overview.streets}
    title = t("order.title", lang)
    ov = ctx.overview
    crumbs = [(ov.summary.name if lang == "zh" else ov.summary.name_en, "/desk"), (title, None)]
    body: list[Any]
    if not found:
        body = [html.P(t("order.none", lang), className="gw-dim gw-q-empty")]
    else:
        cols = ("order.deadline", "queue.col.case", "queue.col.stage", "queue.col.class", "queue.col.street",
                "order.target", "order.by", "order.note")  # fmt: skip
        head = html.Tr([html.Th(t(k, lang)) for k in cols])
        rows = [_row(ctx, o, names, depts) for o in found[:ROWS]]
        more = len(found) - ROWS
        body = [
            html.P(t("order.count", lang).format(n=len(found)), className="gw-q-count"),
            html.Table(
                [html.Thead(head), html.Tbody(rows)],
                className="gw-desk-table gw-worklist",
                id=ids.ORDERS_TABLE,
            ),
            *([html.P(f"+{more}", className="gw-dim")] if more > 0 else []),
        ]
    return html.Div(
        [header(ctx, crumbs, title), html.Main(body, className="gw-worklist-page")],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


ROUTES = [Route(r"/desk/orders", page)]
