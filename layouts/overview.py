"""The first page: the district's streets and unit grids on the offline map, with counts."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ids
from dashboard.figures import StreetShape
from dashboard.i18n import t
from store.geography import DistrictSummary


def _count(label: str, value: int) -> html.Div:
    return html.Div(
        [html.Div(f"{value:,}", className="gw-count-value"), html.Div(label, className="gw-count-label")],
        className="gw-count",
    )


def layout(
    summary: DistrictSummary,
    streets: Sequence[StreetShape],
    figure: go.Figure,
    *,
    lang: str,
    mode: str,
    generated: bool,
) -> html.Div:
    """The overview page for ``mode`` 'wall' (kiosk, no controls) or 'desk'."""
    title = t("page.wall" if mode == "wall" else "page.desk", lang)
    district_name = summary.name if lang == "zh" else summary.name_en
    notes = [t("note.offline", lang)]
    if generated:
        notes.insert(0, t("note.generated", lang))
    street_items = [
        html.Li(
            [
                html.Span(s.name, className="gw-street-name"),
                html.Span(f"{s.grids:,}", className="gw-street-grids"),
            ],
            className="gw-street",
        )
        for s in streets
    ]
    return html.Div(
        [
            html.Header(
                [
                    html.H1(
                        [
                            html.Span(district_name, className="gw-district"),
                            html.Span(title, className="gw-title"),
                        ]
                    ),
                    html.Div(
                        [
                            _count(t("count.streets", lang), summary.streets),
                            _count(t("count.communities", lang), summary.communities),
                            _count(t("count.grids", lang), summary.grids),
                            _count(t("count.areas", lang), summary.areas),
                        ],
                        id=ids.OVERVIEW_COUNTS,
                        className="gw-counts",
                    ),
                ],
                className="gw-header",
            ),
            html.Main(
                [
                    dcc.Graph(
                        id=ids.OVERVIEW_MAP,
                        figure=figure,
                        config={"displayModeBar": False, "scrollZoom": mode != "wall", "responsive": True},
                        className="gw-map",
                    ),
                    html.Aside(
                        [
                            html.H2(t("streets.title", lang)),
                            html.Ul(street_items, id=ids.OVERVIEW_STREETS, className="gw-streets"),
                            html.Div([html.P(n) for n in notes], className="gw-notes"),
                        ],
                        className="gw-side",
                    ),
                ],
                className="gw-main",
            ),
        ],
        className=f"gw-page gw-{mode}",
        lang="zh-CN" if lang == "zh" else "en",
    )


def message(text: str, mode: str, back: tuple[str, str] | None = None) -> html.Div:
    """A full-page message (no district yet, unknown page), with a way back (label, path) if given."""
    if back is None:
        return html.Div(html.H1(text, className="gw-message"), className=f"gw-page gw-{mode}")
    link = dcc.Link(back[0], href=back[1], className="gw-message-back", id=ids.DESK_BACK)
    box = html.Div([html.H1(text), html.P(link)], className="gw-message gw-message-box")
    return html.Div(box, className=f"gw-page gw-{mode}")
