"""Pure figure builders: data in, ``plotly.graph_objects.Figure`` out (no queries, no Flask)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from dashboard.i18n import t

MAP_STYLE_URL = "/basemap/style.json"  # dashboard.basemap: the background and any imported basemap
BG = "#0b1220"
STREET_LINE = "#e8eef9"
# dark-background palette for telling neighbouring streets apart (not a value scale)
STREET_COLOURS = (
    "#1f6feb",
    "#2da44e",
    "#bf8700",
    "#8250df",
    "#cf222e",
    "#1b7c83",
    "#9a6700",
    "#6639ba",
    "#0969da",
    "#1a7f37",
    "#bc4c00",
    "#a40e26",
    "#3b6ea5",
    "#4d7c0f",
    "#b45309",
    "#7c3aed",
    "#0e7490",
)


@dataclass(frozen=True)
class StreetShape:
    """What the map needs of a street: code, name, outline rings (lon, lat) and label point."""

    code: str
    name: str
    rings: tuple[tuple[tuple[float, float], ...], ...]
    label: tuple[float, float]
    grids: int


def fit_zoom(bounds: tuple[float, float, float, float], width_px: int, height_px: int) -> float:
    """The web-map zoom that fits ``bounds`` (lon/lat) into a viewport of the given size."""
    minx, miny, maxx, maxy = bounds

    def merc_y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    dx = max(maxx - minx, 1e-6) / 360.0
    dy = max(merc_y(maxy) - merc_y(miny), 1e-9) / (2 * math.pi)
    zx = math.log2(width_px / 512.0 / dx)
    zy = math.log2(height_px / 512.0 / dy)
    return round(min(zx, zy) - 0.1, 2)


def _outline_xy(streets: Sequence[StreetShape]) -> tuple[list[float | None], list[float | None]]:
    lon: list[float | None] = []
    lat: list[float | None] = []
    for s in streets:
        for ring in s.rings:
            lon.extend(round(p[0], 5) for p in ring)
            lat.extend(round(p[1], 5) for p in ring)
            lon.append(None)
            lat.append(None)
    return lon, lat


def overview_map(
    *,
    grids_url: str,
    grid_codes: Sequence[str],
    grid_street: Sequence[int],
    streets: Sequence[StreetShape],
    bounds: tuple[float, float, float, float],
    lang: str,
    labels_url: str | None = None,
    viewport: tuple[int, int] = (1600, 900),
) -> go.Figure:
    """District map: unit grids shaded by street, street outlines, optional label image layer.

    The grid GeoJSON is referenced by URL (fetched once, never inlined) and the base style is a
    local style file, so nothing leaves the server (tech-notes §3).
    """
    n = max(len(STREET_COLOURS), 1)
    scale = [
        [i / n, STREET_COLOURS[i]] if j == 0 else [(i + 1) / n, STREET_COLOURS[i]]
        for i in range(n)
        for j in range(2)
    ]
    names = [s.name for s in streets]
    fig = go.Figure()
    fig.add_trace(
        go.Choroplethmap(
            geojson=grids_url,
            locations=list(grid_codes),
            z=[v % n + 0.5 for v in grid_street],
            zmin=0,
            zmax=n,
            colorscale=scale,
            showscale=False,
            marker={"opacity": 0.55, "line": {"width": 0.4, "color": BG}},
            customdata=[names[v] if 0 <= v < len(names) else "" for v in grid_street],
            hovertemplate=(
                f"{t('map.grid', lang)} %{{location}}<br>{t('map.street', lang)} %{{customdata}}"
                "<extra></extra>"
            ),
            name=t("map.grid", lang),
        )
    )
    lon, lat = _outline_xy(streets)
    fig.add_trace(
        go.Scattermap(
            lon=lon,
            lat=lat,
            mode="lines",
            line={"width": 2.2, "color": STREET_LINE},
            hoverinfo="skip",
            name=t("map.street", lang),
        )
    )
    fig.add_trace(
        go.Scattermap(
            lon=[round(s.label[0], 5) for s in streets],
            lat=[round(s.label[1], 5) for s in streets],
            mode="markers",
            marker={"size": 7, "color": STREET_LINE, "opacity": 0.0 if labels_url else 0.9},
            customdata=[[s.code, s.grids] for s in streets],
            text=names,
            hovertemplate=(
                "%{text}<br>%{customdata[0]}<br>%{customdata[1]} "
                f"{t('streets.grids', lang)}<extra></extra>"
            ),
            name=t("map.street", lang),
        )
    )
    _map_layout(fig, bounds, viewport, labels_url=labels_url, uirevision="overview")
    fig.update_layout(hoverlabel={"font": {"size": 16}})
    return fig


def _map_layout(
    fig: go.Figure,
    bounds: tuple[float, float, float, float],
    viewport: tuple[int, int],
    *,
    labels_url: str | None,
    uirevision: str,
    heat_url: str | None = None,
) -> None:
    """The offline map of a district: local style, fitted view, image layers (heat under the traces)."""
    minx, miny, maxx, maxy = bounds
    corners = [[minx, maxy], [maxx, maxy], [maxx, miny], [minx, miny]]
    layers = []
    if heat_url:  # layer 0: the grid heat image, under the traces (the wall's script swaps its image)
        layers.append({"sourcetype": "image", "source": heat_url, "coordinates": corners, "below": "traces"})
    if labels_url:
        layers.append({"sourcetype": "image", "source": labels_url, "coordinates": corners, "below": ""})
    fig.update_layout(
        map={
            "style": MAP_STYLE_URL,
            "center": {"lon": (minx + maxx) / 2, "lat": (miny + maxy) / 2},
            "zoom": fit_zoom(bounds, *viewport),
            "layers": layers,
        },
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        paper_bgcolor=BG,
        showlegend=False,
        uirevision=uirevision,
    )


# Supervisor statuses and display stages on the dark wall (status/stage → colour).
SUPERVISOR_COLOURS: dict[str, str] = {
    "on_duty": "#3fb950",
    "stationary": "#d29922",
    "out_of_area": "#f778ba",
    "offline": "#6e7781",
}
STAGE_COLOURS: dict[str, str] = {
    "待受理": "#79c0ff",
    "待核实": "#a5d6ff",
    "待立案": "#d2a8ff",
    "待派遣": "#ffa657",
    "待二级派遣": "#ffbc80",
    "处置中": "#f2cc60",
    "挂账": "#8b949e",
    "待审核": "#e3b341",
    "待派核查": "#39c5cf",
    "待核查": "#56d4dd",
    "待结案": "#7ee787",
}
OVERDUE_COLOUR = "#ff4d4f"


def wall_map(
    *,
    streets: Sequence[StreetShape],
    bounds: tuple[float, float, float, float],
    lang: str,
    labels_url: str | None = None,
    heat_url: str | None = None,
    viewport: tuple[int, int] = (1200, 900),
) -> go.Figure:
    """The wall's map: street outlines, the heat and label images; no live points.

    Open cases, supervisors and the pulse of new cases are drawn by the socket client
    (``assets/gw-wall.js`` with ``assets/gw-marks.js``) on a canvas over this map from ``/live``
    snapshots and ticks, so no figure travels from the server per tick and MapLibre repaints only
    when the view or the heat image changes.
    """
    lon, lat = _outline_xy(streets)
    fig = go.Figure()
    fig.add_trace(
        go.Scattermap(
            lon=lon, lat=lat, mode="lines", line={"width": 2.4, "color": STREET_LINE}, hoverinfo="skip",
            name=t("map.street", lang), uid="streets",
        )
    )  # fmt: skip
    _map_layout(fig, bounds, viewport, labels_url=labels_url, heat_url=heat_url, uirevision="wall")
    return fig


# -- the desk's people pages (issue 8 items 7 and 8) -------------------------------------------------

WALKED_COLOUR = "#3fb950"
NOT_WALKED_COLOUR = "#ff4d4f"
TRACK_COLOUR = "#4cc2ff"
PLAYBACK_COLOUR = "#ffd33d"


def when_map(
    *,
    streets: Sequence[StreetShape],
    bounds: tuple[float, float, float, float],
    lang: str,
    ids: Sequence[str],
    lon: Sequence[float | None],
    lat: Sequence[float | None],
    status: Sequence[str],
    labels_url: str | None = None,
    viewport: tuple[int, int] = (1100, 760),
) -> go.Figure:
    """Every supervisor at one instant, coloured by status (those without a fix are left off)."""
    keep = [i for i in range(len(ids)) if lon[i] is not None and lat[i] is not None]
    outline_lon, outline_lat = _outline_xy(streets)
    fig = go.Figure()
    fig.add_trace(
        go.Scattermap(
            lon=outline_lon, lat=outline_lat, mode="lines", line={"width": 1.6, "color": STREET_LINE},
            hoverinfo="skip", name=t("map.street", lang), uid="streets",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scattermap(
            lon=[round(float(lon[i] or 0), 5) for i in keep],
            lat=[round(float(lat[i] or 0), 5) for i in keep],
            mode="markers",
            marker={"size": 9, "color": [SUPERVISOR_COLOURS.get(status[i], "#888") for i in keep]},
            text=[f"{ids[i]} · {t('status.' + status[i], lang)}" for i in keep],
            hovertemplate="%{text}<extra></extra>",
            name=t("wall.supervisors", lang),
            uid="supervisors",
        )
    )
    _map_layout(fig, bounds, viewport, labels_url=labels_url, uirevision="when")
    return fig


def supervisor_map(
    *,
    lang: str,
    area_features: Sequence[dict[str, object]],
    minutes: dict[str, float],
    track_lon: Sequence[float],
    track_lat: Sequence[float],
    live: tuple[float, float] | None,
    bounds: tuple[float, float, float, float],
    status: str = "on_duty",
    viewport: tuple[int, int] = (1000, 700),
) -> go.Figure:
    """A supervisor's day: the area's grids walked (green) or not (red), the track, the live and the
    playback markers (``assets/gw-playback.js`` moves the playback marker, uid ``play``)."""
    fig = go.Figure()
    if area_features:
        codes = [str(f["id"]) for f in area_features]
        fig.add_trace(
            go.Choroplethmap(
                geojson={"type": "FeatureCollection", "features": list(area_features)},
                locations=codes,
                z=[1 if minutes.get(c, 0.0) > 0 else 0 for c in codes],
                zmin=0,
                zmax=1,
                colorscale=[[0, NOT_WALKED_COLOUR], [1, WALKED_COLOUR]],
                showscale=False,
                marker={"opacity": 0.35, "line": {"width": 0.8, "color": STREET_LINE}},
                customdata=[round(minutes.get(c, 0.0), 1) for c in codes],
                hovertemplate=f"%{{location}}<br>%{{customdata}} {t('sup.minutes', lang)}<extra></extra>",
                name=t("sup.coverage", lang),
                uid="area",
            )
        )
    fig.add_trace(
        go.Scattermap(
            lon=[round(x, 6) for x in track_lon], lat=[round(y, 6) for y in track_lat], mode="lines",
            line={"width": 3, "color": TRACK_COLOUR}, hoverinfo="skip", name=t("sup.track", lang),
            uid="track",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scattermap(
            lon=[live[0]] if live else [], lat=[live[1]] if live else [], mode="markers",
            marker={"size": 16, "color": SUPERVISOR_COLOURS.get(status, "#888")}, hoverinfo="skip",
            name=t("wall.live", lang), uid="live",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scattermap(
            lon=track_lon[:1], lat=track_lat[:1], mode="markers",
            marker={"size": 18, "color": PLAYBACK_COLOUR}, hoverinfo="skip", name=t("sup.play", lang),
            uid="play",
        )
    )  # fmt: skip
    _map_layout(fig, bounds, viewport, labels_url=None, uirevision="supervisor")
    return fig


# -- the desk's 待定位 page (issue 17 item 4): a map to click a case's point on ------------------------

PICKED_COLOUR = "#ffd33d"
CANDIDATE_COLOUR = "#4cc2ff"


def locate_map(
    *,
    streets: Sequence[StreetShape],
    bounds: tuple[float, float, float, float],
    lang: str,
    candidates: Sequence[tuple[float, float, str]],
    viewport: tuple[int, int] = (900, 520),
) -> go.Figure:
    """Street outlines over the basemap, the waiting cases' candidate addresses (lon, lat, text) and
    an empty ``picked`` trace that the desk's script moves to where the acceptor clicks."""
    lon, lat = _outline_xy(streets)
    fig = go.Figure()
    fig.add_trace(
        go.Scattermap(lon=lon, lat=lat, mode="lines", line={"width": 1.6, "color": STREET_LINE},
                      hoverinfo="skip", name=t("map.street", lang), uid="streets")
    )  # fmt: skip
    fig.add_trace(
        go.Scattermap(
            lon=[round(c[0], 6) for c in candidates], lat=[round(c[1], 6) for c in candidates],
            text=[c[2] for c in candidates], mode="markers", marker={"size": 11, "color": CANDIDATE_COLOUR},
            hovertemplate="%{text}<extra></extra>", name=t("locate.candidates", lang), uid="candidates",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scattermap(lon=[], lat=[], mode="markers", marker={"size": 16, "color": PICKED_COLOUR},
                      hoverinfo="skip", name=t("locate.picked", lang), uid="picked")
    )  # fmt: skip
    _map_layout(fig, bounds, viewport, labels_url=None, uirevision="locate")
    fig.update_layout(clickmode="none", hoverlabel={"font": {"size": 16}})
    return fig


# -- the 部件 layer of the desk maps (issue 18): vector tiles from dashboard.component_tiles -----------

COMPONENT_TILES = "components/tiles/{z}/{x}/{y}.pbf"
COMPONENT_SINGLE_ZOOM = 16  # dashboard.component_tiles.SINGLE_ZOOM: objects from here, clusters below
CLUSTER_COLOUR = "#2f81f7"
CLUSTER_TEXT = "#ffffff"
# by the standard's major class of 部件: 公用设施, 道路交通, 市容环境, 园林绿化, 房屋土地, 其他设施
COMPONENT_COLOURS: dict[str, str] = {
    "01": "#56d4dd", "02": "#d2a8ff", "03": "#e3b341", "04": "#7ee787", "05": "#ffa657", "06": "#c9d1d9",
    "other": "#c9d1d9",
}  # fmt: skip
COMPONENT_ALERT = "#ff4d4f"  # not 完好 (破损, 丢失, 占用, 其他)
CLUSTER_RADII = (("cluster_s", 9.0), ("cluster_m", 12.0), ("cluster_l", 15.0), ("cluster_x", 19.0),
                 ("cluster_xx", 24.0))  # fmt: skip


def component_layers(base_url: str, version: int, *, counts: bool = True) -> list[dict[str, object]]:
    """The map layers of the 部件 tiles: clusters (a circle sized by its count, and the count) below
    :data:`COMPONENT_SINGLE_ZOOM`, every object (coloured by major class, red when not 完好) from it.

    ``base_url`` makes the tile URL absolute (MapLibre's workers resolve a relative one against a blob:
    URL); ``version`` is the inventory's, so a change gives a new URL and the map fetches it at once.
    """
    tiles = [f"{base_url.rstrip('/')}/{COMPONENT_TILES}?v={int(version)}"]
    common = {"sourcetype": "vector", "source": tiles, "type": "circle"}
    out: list[dict[str, object]] = [
        {**common, "sourcelayer": name, "color": CLUSTER_COLOUR, "opacity": 0.78, "circle": {"radius": r},
         "maxzoom": COMPONENT_SINGLE_ZOOM, "name": f"components-{name}"}
        for name, r in CLUSTER_RADII
    ]  # fmt: skip
    if counts:  # the counts: digits from the server's glyphs (dashboard.component_tiles)
        out.append({
            **common, "type": "symbol", "sourcelayer": "cluster_label", "maxzoom": COMPONENT_SINGLE_ZOOM,
            "symbol": {"text": "{label}", "icon": "", "textfont": {"size": 12, "color": CLUSTER_TEXT},
                       "textposition": "middle center"},
            "name": "components-counts",
        })  # fmt: skip
    for group, colour in COMPONENT_COLOURS.items():
        out.append({**common, "sourcelayer": f"obj_{group}", "color": colour, "circle": {"radius": 4.5},
                    "minzoom": COMPONENT_SINGLE_ZOOM, "name": f"components-{group}"})  # fmt: skip
    out.append({**common, "sourcelayer": "obj_alert", "color": COMPONENT_ALERT, "circle": {"radius": 6.0},
                "minzoom": COMPONENT_SINGLE_ZOOM, "name": "components-alert"})  # fmt: skip
    return out


def with_components(
    fig: go.Figure,
    base_url: str,
    version: int,
    *,
    lang: str | None = None,
    counts: bool = True,
    below: str | None = None,
) -> go.Figure:
    """``fig`` (a desk map) with the 部件 layer on top of its other layers (``below="traces"``: under
    every trace, where cases and supervisors must stay on top); with ``lang``, also an empty ``picked``
    trace that the desk's script moves to where the operator clicks (a move)."""
    layers = component_layers(base_url, version, counts=counts)
    if below is not None:
        layers = [{**layer, "below": below} for layer in layers]
    fig.update_layout(map_layers=[*fig.layout.map.layers, *layers])
    if lang is not None:
        fig.add_trace(
            go.Scattermap(lon=[], lat=[], mode="markers", marker={"size": 16, "color": PICKED_COLOUR},
                          hoverinfo="skip", name=t("locate.picked", lang), uid="picked")
        )  # fmt: skip
    return fig
