"""'Who was where at time T' (issue 8 item 8): every supervisor at one instant, stepping ±1/5/10 min.

Steps are links (``/desk/when?at=…``), so every instant has an address; the form takes any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlencode

import plotly.graph_objects as go
from dash import dash_table, dcc, html

from dashboard import ids
from dashboard.figures import SUPERVISOR_COLOURS
from dashboard.i18n import t
from dashboard.people_data import WhereRow
from domain.evaluation import SHANGHAI
from layouts.chrome import menu

DataTable = dash_table.DataTable  # type: ignore[attr-defined]  # generated at import

STEPS = (-10, -5, -1, 1, 5, 10)


def local_text(at: datetime) -> str:
    """An instant as local (Shanghai) ``YYYY-MM-DDTHH:MM`` (the form of the ``at`` parameter)."""
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def href(at: datetime, lang: str) -> str:
    """The address of the page at an instant."""
    return "/desk/when?" + urlencode({"at": local_text(at), "lang": lang})


def layout(
    at: datetime, rows: Sequence[WhereRow], figure: go.Figure, *, lang: str, role: str | None = None
) -> html.Div:
    """The page at instant ``at`` (UTC) with the supervisors as found."""
    counts = Counter(r.status for r in rows)
    steps = [
        dcc.Link(
            f"{'+' if m > 0 else '−'}{abs(m)} {t('when.minutes', lang)}",
            href=href(at + timedelta(minutes=m), lang),
            className="gw-when-step",
            id=f"{ids.WHEN_STEP}{m:+d}",
        )
        for m in STEPS
    ]
    chips = [
        html.Span(
            [html.I(style={"background": c}), f"{t('status.' + s, lang)} {counts.get(s, 0):,}"],
            className="gw-legend-item",
        )
        for s, c in SUPERVISOR_COLOURS.items()
    ]
    table = DataTable(
        id=ids.WHEN_TABLE,
        columns=[
            {"name": t("when.supervisor", lang), "id": "sup", "presentation": "markdown"},
            {"name": t("eval.name", lang), "id": "name"},
            {"name": t("when.status", lang), "id": "status"},
            {"name": t("when.fix_at", lang), "id": "at"},
            {"name": t("when.grid", lang), "id": "grid"},
        ],
        data=[
            {
                "sup": f"[{r.id}](/supervisor/{r.id})",
                "name": r.name,
                "status": t("status." + r.status, lang),
                "at": r.at.astimezone(SHANGHAI).strftime("%H:%M:%S") if r.at else "",
                "grid": r.grid or "",
            }
            for r in sorted(rows, key=lambda r: (r.at is None, r.id))  # those with a fix first
        ],
        page_size=15,
        style_table={"overflowX": "auto"},
        sort_action="native",
        filter_action="native",
        style_as_list_view=True,
        style_header={"backgroundColor": "#111b2e", "color": "#e8eef9", "fontWeight": "700"},
        style_cell={
            "backgroundColor": "#0b1220",
            "color": "#e8eef9",
            "fontSize": "14px",
            "padding": "3px 8px",
        },
        style_filter={"backgroundColor": "#111b2e", "color": "#e8eef9"},
    )
    return html.Div(
        [
            html.Header(
                [
                    html.H1(
                        [
                            html.Span(t("when.title", lang), className="gw-district"),
                            html.Span(
                                local_text(at).replace("T", " "),
                                className="gw-title gw-when-at",
                                id=ids.WHEN_AT,
                            ),
                        ]
                    ),
                    menu(role, lang, "/desk/when"),
                ],
                className="gw-header",
            ),
            html.Div(
                [
                    html.Div(steps, className="gw-when-steps"),
                    html.Form(
                        [
                            dcc.Input(
                                name="at", value=local_text(at), type="text", className="gw-when-input"
                            ),
                            dcc.Input(name="lang", value=lang, type="hidden"),
                            html.Button(t("when.go", lang), type="submit", className="gw-when-go"),
                        ],
                        action="/desk/when",
                        method="get",
                        className="gw-when-form",
                    ),
                    html.Div(chips, className="gw-legend gw-when-counts"),
                ],
                className="gw-eval-controls",
            ),
            html.Main(
                [
                    dcc.Graph(
                        id=ids.WHEN_MAP,
                        figure=figure,
                        config={"displayModeBar": False, "scrollZoom": True},
                        className="gw-map",
                    ),
                    html.Aside(table, className="gw-side gw-when-side"),
                ],
                className="gw-main",
            ),
        ],
        className="gw-page gw-desk gw-when",
        lang="zh-CN" if lang == "zh" else "en",
    )


def error(message: str, lang: str) -> html.Div:
    """A message instead of the page (an unreadable instant)."""
    return html.Div(
        [html.H1(t("when.title", lang)), html.P(message, className="gw-eval-error")],
        className="gw-page gw-desk gw-when",
    )
