"""Pure figure builders of the case page: the stage timeline (Gantt) and the location map."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from dashboard.deskdata import Segment
from dashboard.figures import BG, OVERDUE_COLOUR, STAGE_COLOURS, _map_layout
from dashboard.i18n import t

CITY_TZ = ZoneInfo("Asia/Shanghai")  # plotly draws an instant at its string's wall clock: give it the city's
ON_TIME = "#3fb950"
GRID_TEXT = "#e8eef9"


def _label(seg: Segment, lang: str) -> str:
    return t(f"stage.{seg.stage}", lang)


def _hours(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds() / 3600.0)


def _span(seg: Segment) -> str:
    """A span's length: minutes under two hours, else hours, else days."""
    minutes = (seg.end - seg.start).total_seconds() / 60.0
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h" if minutes < 48 * 60 else f"{minutes / 1440:.1f} d"


def timeline_figure(segments: Sequence[Segment], lang: str, now: datetime, tz: tzinfo = CITY_TZ) -> go.Figure:
    """Each span of the case in a stage as a bar (green on time, red past its deadline), in order,
    with the stage's deadline as a tick where the timer's limit falls; times in the city's zone."""
    fig = go.Figure()
    labels = [f"{i + 1}. {_label(s, lang)}" for i, s in enumerate(segments)]
    ms = [max(_hours(s.start, s.end) * 3_600_000.0, 60_000.0) for s in segments]  # at least a minute wide
    colours = [OVERDUE_COLOUR if s.overdue else STAGE_COLOURS.get(s.stage, ON_TIME) for s in segments]
    hover = []
    for s in segments:
        limit = f"<br>{t('case.limit', lang)} {s.deadline.astimezone(tz):%m-%d %H:%M}" if s.deadline else ""
        state = t("case.late", lang) if s.overdue else t("case.on_time", lang)
        hover.append(f"{_label(s, lang)}<br>{_hours(s.start, s.end):.1f} h · {state}{limit}")
    fig.add_trace(
        go.Bar(
            y=labels,
            x=ms,
            base=[s.start.astimezone(tz).isoformat() for s in segments],
            orientation="h",
            marker={
                "color": colours,
                "line": {"width": [2 if s.open else 0 for s in segments], "color": GRID_TEXT},
            },
            hovertext=hover,
            hoverinfo="text",
            text=[_span(s) for s in segments],
            textposition="outside",
            cliponaxis=False,
            name="",
        )
    )
    with_deadline = [(lab, s) for lab, s in zip(labels, segments, strict=True) if s.deadline is not None]
    if with_deadline:
        fig.add_trace(
            go.Scatter(
                y=[lab for lab, _ in with_deadline],
                x=[s.deadline.astimezone(tz).isoformat() for _, s in with_deadline if s.deadline],
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 22, "color": "#ffcf66", "line": {"width": 3}},
                hovertext=[
                    f"{t('case.limit', lang)} {s.deadline.astimezone(tz):%m-%d %H:%M}"
                    for _, s in with_deadline
                    if s.deadline
                ],
                hoverinfo="text",
                name=t("case.limit", lang),
            )
        )
    fig.update_layout(
        barmode="overlay",
        showlegend=False,
        paper_bgcolor=BG,
        plot_bgcolor=BG,
        font={"color": GRID_TEXT, "size": 15},
        margin={"l": 140, "r": 20, "t": 10, "b": 40},
        height=max(180, 46 * len(segments) + 70),
        xaxis={"type": "date", "gridcolor": "#24324d", "tickformat": "%m-%d %H:%M"},
        yaxis={"autorange": "reversed", "gridcolor": "#24324d"},
        hoverlabel={"font": {"size": 15}},
    )
    return fig


def location_figure(
    grid_geometry: dict[str, Any] | None,
    point: tuple[float, float] | None,
    bounds: tuple[float, float, float, float],
    lang: str,
    neighbours: dict[str, dict[str, Any]] | None = None,
    grid_code: str | None = None,
    viewport: tuple[int, int] = (640, 360),
) -> go.Figure:
    """A grid outline (and its neighbours, clickable), and a point, on the offline map."""
    fig = go.Figure()
    feats = []
    codes: list[str] = []
    for code, geom in (neighbours or {}).items():
        feats.append({"type": "Feature", "id": code, "properties": {}, "geometry": geom})
        codes.append(code)
    if grid_geometry is not None and grid_code:
        feats.append({"type": "Feature", "id": grid_code, "properties": {}, "geometry": grid_geometry})
        codes.append(grid_code)
    if feats:
        fig.add_trace(
            go.Choroplethmap(
                geojson={"type": "FeatureCollection", "features": feats},
                locations=codes,
                z=[1.0 if c == grid_code else 0.0 for c in codes],
                zmin=0,
                zmax=1,
                colorscale=[[0, "#1f6feb"], [1, "#bf8700"]],
                showscale=False,
                marker={"opacity": 0.55, "line": {"width": 1.2, "color": GRID_TEXT}},
                customdata=[f"/grid/{c}" for c in codes],
                hovertemplate=f"{t('map.grid', lang)} %{{location}}<extra></extra>",
                name=t("map.grid", lang),
            )
        )
    if point is not None:
        fig.add_trace(
            go.Scattermap(
                lon=[point[0]],
                lat=[point[1]],
                mode="markers",
                marker={"size": 16, "color": OVERDUE_COLOUR},
                hoverinfo="skip",
                name="",
            )
        )
    _map_layout(fig, bounds, viewport, labels_url=None, uirevision=f"loc-{grid_code}")
    return fig
