"""The desk's 部件 statistics (issue 18 item 6) and the class's 监管主体/法规依据 line.

- ``/desk/components/recurring``: the recurring objects (重复发案部件: at least N cases in the last
  days, ``store.component_stats``), with their class, grid, street, owner and handling units, case
  count and last case, each a link; filtered by class and street (``?class=0102&street=110101001``,
  threshold and window ``?min=3&days=90``), a plain GET form.
- ``/evaluation/owners``: the units evaluated by the cases of the objects they hold, per role
  (主管/权属/养护), over a period (``?period=month|week|day|custom&from=&to=&role=``), exported as CSV
  by ``/evaluation/owners.csv`` (``dashboard.component_export``).

Read only; the clock is the page context's (the city's clock, injectable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dash import dcc, html
from sqlalchemy import select

from dashboard import ids
from dashboard.component_export import export_href, owner_table, parse_role
from dashboard.evaluation_data import BadRequest, local_today, parse_period
from dashboard.i18n import t
from domain.component import Role, handling_unit
from layouts.chrome import PageContext, Route, class_label, header, local
from store.component_stats import (
    ROLES,
    RecurringRule,
    StatsRequestError,
    parse_class,
    parse_street,
    recurring,
)
from store.components import ComponentBook
from store.models import Department

RECURRING_PATH = "/desk/components/recurring"
OWNERS_PATH = "/evaluation/owners"
SHOWN = 200  # recurring objects listed on the page (the count says how many there are)


def _arg(q: Mapping[str, list[str]], name: str) -> str | None:
    values = q.get(name)
    return values[0][:40] if values else None


def class_basis_field(ctx: PageContext, kind: str, code: str) -> html.Div:
    """A class's 监管主体 and 法规依据 from the catalogue ("—" when the city gave none)."""
    catalogue = ctx.live.catalogue if ctx.live is not None else None
    basis = catalogue.basis_of(kind, code) if catalogue is not None else None
    lang = ctx.lang
    return html.Div(
        [
            html.Div(t("class.supervisor", lang), className="gw-f-label"),
            html.Div(basis.supervisor if basis and basis.supervisor else "—", className="gw-f-value"),
            html.Div(t("class.basis", lang), className="gw-f-label"),
            html.Div(basis.basis if basis and basis.basis else "—", className="gw-f-value"),
        ],
        className="gw-field gw-class-basis",
        id=ids.CLASS_BASIS,
    )


def _names(ctx: PageContext) -> dict[str, str]:
    with ctx.data.engine.connect() as conn:
        return {str(k): str(v) for k, v in conn.execute(select(Department.code, Department.name))}


def _unit(names: Mapping[str, str], code: str | None) -> str:
    if not code:
        return "—"
    return f"{names[code]} ({code})" if code in names else code


def _refusal(ctx: PageContext, title: str, exc: StatsRequestError | BadRequest) -> html.Div:
    return html.Div(
        [
            header(ctx, [(title, None)], title),
            html.P(f"{exc.reason}: {exc}", className="gw-eval-error", id=ids.STATS_ERROR),
        ],
        className="gw-page gw-desk-page gw-scroll",
    )


def recurring_page(ctx: PageContext) -> html.Div:
    """``/desk/components/recurring``: the recurring objects, filterable by class and street."""
    lang, q = ctx.lang, ctx.query
    title = t("recurring.title", lang)
    try:
        rule = RecurringRule.parse(_arg(q, "min"), _arg(q, "days"))
        cls = parse_class(_arg(q, "class"))
        street = parse_street(_arg(q, "street"))
    except StatsRequestError as exc:
        return _refusal(ctx, title, exc)
    with ctx.data.engine.connect() as conn:
        got = recurring(conn, ctx.now, rule, class_code=cls, street=street, limit=SHOWN)
    names = _names(ctx)
    streets = {s.code: s.name for s in ctx.overview.streets}
    order = ComponentBook.shared(ctx.data.engine).order
    head = ("recurring.id", "case.class", "component.name", "recurring.grid", "recurring.street",
            "component.role.owner", "component.handler", "recurring.cases", "recurring.last")  # fmt: skip
    rows = [
        html.Tr(
            [
                html.Td(dcc.Link(r.id, href=ctx.href(f"/component/{r.id}"))),
                html.Td(class_label(ctx, "component", r.class_code)),
                html.Td(r.name or "—"),
                html.Td(dcc.Link(r.grid_code, href=ctx.href(f"/grid/{r.grid_code}")) if r.grid_code else "—"),
                html.Td(streets.get(r.street or "", r.street or "—")),
                html.Td(_unit(names, r.units.get(Role.OWNER))),
                html.Td(_unit(names, handling_unit(r.units, order))),
                html.Td(str(r.cases), className="gw-num"),
                html.Td(
                    [
                        dcc.Link(r.last_case, href=ctx.href(f"/case/{r.last_case}")) if r.last_case else "—",
                        html.Span(f" {local(r.last_at)}", className="gw-dim"),
                    ]
                ),
            ]
        )
        for r in got.rows
    ]
    catalogue = ctx.live.catalogue if ctx.live is not None else None
    classes = (
        [(c.code, f"{c.code} {c.name}") for c in catalogue.classes if c.kind.value == "component"]
        if catalogue is not None
        else []
    )
    form = html.Form(
        [
            html.Label(t("case.class", lang), className="gw-f-label"),
            html.Select(
                [
                    html.Option(t("recurring.all", lang), value=""),
                    *(html.Option(label, value=code, selected=code == cls) for code, label in classes),
                ],
                name="class",
                className="gw-act-input",
            ),
            html.Label(t("recurring.street", lang), className="gw-f-label"),
            html.Select(
                [
                    html.Option(t("eval.all_streets", lang), value=""),
                    *(html.Option(n, value=c, selected=c == street) for c, n in sorted(streets.items())),
                ],
                name="street",
                className="gw-act-input",
            ),
            html.Label(t("recurring.min", lang), className="gw-f-label"),
            dcc.Input(
                type="number", name="min", value=rule.min_cases, min=2, max=100, className="gw-act-input"
            ),
            html.Label(t("recurring.days", lang), className="gw-f-label"),
            dcc.Input(type="number", name="days", value=rule.days, min=1, max=366, className="gw-act-input"),
            *([dcc.Input(type="hidden", name="lang", value="en")] if lang == "en" else []),
            html.Button(t("recurring.apply", lang), type="submit", className="gw-act-btn"),
        ],
        method="get",
        action=RECURRING_PATH,
        className="gw-act gw-stats-filter",
        id=ids.RECURRING_FILTER,
    )
    summary = t("recurring.summary", lang).format(
        n=got.total, min=rule.min_cases, days=rule.days, since=local(got.since), until=local(got.until)
    )
    more = got.total - len(rows)
    table = (
        html.Table(
            [
                html.Tr(
                    [
                        html.Th(t(k, lang), className="gw-num" if k == "recurring.cases" else None)
                        for k in head
                    ]
                ),
                *rows,
            ],
            className="gw-desk-table",
            id=ids.RECURRING_TABLE,
        )
        if rows
        else html.P(t("recurring.none", lang), className="gw-dim", id=ids.RECURRING_TABLE)
    )
    body = [
        html.P(summary, className="gw-dim", id=ids.RECURRING_SUMMARY),
        form,
        table,
        *([html.P(t("locate.more", lang).format(n=more), className="gw-dim")] if more > 0 else []),
        html.Nav(
            dcc.Link(t("owners.title", lang), href=ctx.href(OWNERS_PATH), className="gw-menu-item"),
            className="gw-menu",
        ),
    ]
    crumbs = [(ctx.overview.summary.name if lang == "zh" else ctx.overview.summary.name_en, "/desk"),
              (title, None)]  # fmt: skip
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Main(html.Section(body, className="gw-panel"), className="gw-stats"),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


# ---------------------------------------------------------------------------------------------
# The units by the cases of their objects


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v) * 100:.1f}%"


def owners_page(ctx: PageContext) -> html.Div:
    """``/evaluation/owners``: per role and unit, its objects, their cases, on-time rate and recurring."""
    lang, q = ctx.lang, ctx.query
    title = t("owners.title", lang)
    try:
        period = parse_period(_arg(q, "period"), _arg(q, "from"), _arg(q, "to"), local_today(ctx.now))
        role = parse_role(_arg(q, "role"))
    except (BadRequest, StatsRequestError) as exc:
        return _refusal(ctx, title, exc)
    frame = owner_table(ctx.data.engine, period, ctx.now, role)
    cols = ("role", "name", "objects", "cases", "per_100", "to_unit", "handled", "on_time", "on_time_rate",
            "recurring")  # fmt: skip
    rows = [
        html.Tr(
            [
                html.Td(t(f"component.role.{rec['role']}", lang)),
                html.Td(f"{rec['name']} ({rec['unit']})"),
                *(html.Td(_num(rec[k]), className="gw-num") for k in cols[2:8]),
                html.Td(_pct(rec["on_time_rate"]), className="gw-num"),
                html.Td(str(rec["recurring"]), className="gw-num"),
            ],
            **{"data-unit": rec["unit"], "data-role": rec["role"]},
        )
        for rec in frame.to_dict("records")
        if rec["objects"] or rec["cases"]
    ]
    here = {"period": period.kind, "from": period.start.isoformat(), "to": period.end.isoformat()}
    lang_q = {"lang": "en"} if lang == "en" else {}
    tabs = [
        dcc.Link(
            t("recurring.all" if r is None else f"component.role.{r.name.lower()}", lang),
            href=f"{OWNERS_PATH}?" + urlencode({**here, **lang_q, **({"role": r.name.lower()} if r else {})}),
            className="gw-menu-item gw-menu-here" if r == role else "gw-menu-item",
        )
        for r in (None, *ROLES)
    ]
    periods = [
        dcc.Link(
            t(f"eval.period.{k}", lang),
            href=f"{OWNERS_PATH}?"
            + urlencode({"period": k, **lang_q, **({"role": role.name.lower()} if role else {})}),
            className="gw-menu-item gw-menu-here" if k == period.kind else "gw-menu-item",
        )
        for k in ("day", "week", "month")
    ]
    body = [
        html.Div(
            [
                html.Span(
                    f"{period.start.isoformat()} – {period.end.isoformat()}", className="gw-eval-period"
                ),
                html.Nav(periods, className="gw-menu"),
                html.Nav(tabs, className="gw-menu"),
                html.A(
                    t("eval.export", lang),
                    href=export_href(period, role, lang),
                    id=ids.OWNERS_EXPORT,
                    className="gw-eval-export",
                ),
            ],
            className="gw-eval-bar",
        ),
        html.Table(
            [
                html.Tr(
                    [
                        html.Th(t(f"owners.{k}", lang), className=None if k in ("role", "name") else "gw-num")
                        for k in cols
                    ]
                ),
                *rows,
            ],
            className="gw-desk-table",
            id=ids.OWNERS_TABLE,
        ),
        html.P(t("owners.note", lang), className="gw-eval-note"),
        html.Nav(
            dcc.Link(t("recurring.title", lang), href=ctx.href(RECURRING_PATH), className="gw-menu-item"),
            className="gw-menu",
        ),
    ]
    crumbs = [(t("eval.title", lang), "/evaluation"), (title, None)]
    return html.Div(
        [
            header(ctx, crumbs, title),
            html.Main(html.Section(body, className="gw-panel"), className="gw-stats"),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(int(v))


ROUTES = [
    Route(RECURRING_PATH, lambda ctx: recurring_page(ctx)),
    Route(OWNERS_PATH, lambda ctx: owners_page(ctx)),
]
