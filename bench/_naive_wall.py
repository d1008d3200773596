"""The naive wall (bench only): a ``dcc.Interval`` Dash page at ``/naive/``, everything again every second.

Registered on the bench server (``python -m bench._server --naive-wall``) as a second Dash app on
the same Flask server, so it shows the same live state (``core.live``) as the production wall. Every
second its one callback returns:

* the **full map figure**: the wall's base figure (``dashboard.figures.wall_map``: street outlines,
  the heat and label images by URL, the same map style) plus four live ``Scattermap`` traces — open
  cases, supervisor halo, supervisors and the pulse of new cases — with the coordinates, colours,
  opacities and sizes that ``assets/gw-wall.js`` draws on its canvas;
* the **panel values**: KPI tiles, stage counts, the case queue (6 rows), the ticker line, the
  street ranking and the 24 hour bars.

GeoJSON travels by URL and nothing is compressed, as on the production wall. Production code is
not changed: this module only reads ``core.live.snapshot`` and ``feeds.ticks.render``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, dcc, html

from bench import ROOT

QUEUE_ROWS = 6
SIZES = {"cases": 11, "halo": 13, "supervisors": 9, "pulse": 34}


def register(web: Any, core: Any, kiosk: str) -> None:
    """Mount the naive page on ``web.server`` at ``/naive/``."""
    from dashboard.figures import OVERDUE_COLOUR, STAGE_COLOURS, SUPERVISOR_COLOURS, wall_map
    from feeds.ticks import render, room_filter
    from layouts.wall import KPI_KEYS

    app = dash.Dash(
        "gw_naive_wall",
        server=web.server,
        url_base_pathname="/naive/",
        assets_folder=str(ROOT / "assets"),
        assets_ignore=r".*",  # no gw-wall.js, no CSS: the page is fed by the Interval only
        serve_locally=True,
        update_title=None,  # type: ignore[arg-type]
    )
    app.layout = html.Div(
        [
            dcc.Interval(id="tick", interval=1000),
            html.Div(id="panels"),
            dcc.Graph(id="map", style={"height": "900px"}, config={"displayModeBar": False}),
        ]
    )
    base: dict[str, Any] = {}

    def base_figure() -> dict[str, Any]:
        if not base:
            ov = web.cache.current()
            fig = wall_map(
                streets=ov.streets,
                bounds=ov.summary.bounds,
                lang="zh",
                labels_url=f"/geo/{ov.summary.adcode}/labels.png",
                heat_url=f"/geo/{ov.summary.adcode}/heat/open.png",
                viewport=(1100, 900),
            )
            base.update(fig.to_plotly_json())
        return base

    @app.callback(Output("map", "figure"), Output("panels", "children"), Input("tick", "n_intervals"))
    def refresh(_: int | None) -> tuple[dict[str, Any], list[Any]]:
        now = time.time()
        msg = render(
            core.live.snapshot(datetime.now(UTC)), room_filter("wall"), 0, full=True, simulated=False
        )
        b = base_figure()
        sup, cases = msg["sup"], msg["cases"]
        si = [i for i, x in enumerate(sup["lon"]) if x is not None]
        ci = [i for i, x in enumerate(cases["lon"]) if x is not None]
        fresh = [i for i in ci if now - cases["reported"][i] < 60]
        s_lon, s_lat = [sup["lon"][i] for i in si], [sup["lat"][i] for i in si]
        fade = [0.3 if sup["status"][i] == "offline" else 1.0 for i in si]

        def case_colour(i: int) -> str:
            dl = cases["deadline"][i]
            return (
                OVERDUE_COLOUR
                if dl is not None and dl < now
                else STAGE_COLOURS.get(cases["stage"][i], "#ccc")
            )

        live = {  # uid: lon, lat, colour, opacity; sizes are the canvas marks' diameters
            "cases": (
                [cases["lon"][i] for i in ci],
                [cases["lat"][i] for i in ci],
                [case_colour(i) for i in ci],
                0.95,
            ),
            "halo": (s_lon, s_lat, "#ffffff", fade),
            "supervisors": (
                s_lon,
                s_lat,
                [SUPERVISOR_COLOURS.get(sup["status"][i], "#888") for i in si],
                fade,
            ),
            "pulse": (
                [cases["lon"][i] for i in fresh],
                [cases["lat"][i] for i in fresh],
                OVERDUE_COLOUR,
                0.45,
            ),
        }
        data = list(b["data"])
        for uid, (lon, lat, colour, opacity) in live.items():
            data.append(
                {
                    "type": "scattermap", "uid": uid, "mode": "markers", "hoverinfo": "skip",
                    "lon": lon, "lat": lat,
                    "marker": {"size": SIZES[uid], "color": colour, "opacity": opacity},
                }
            )  # fmt: skip
        layout = dict(b["layout"])
        layers = [dict(x) for x in layout["map"].get("layers", [])]
        if layers:  # the heat image is re-fetched every 10 s, as the wall does
            layers[0]["source"] = f"{layers[0]['source'].split('?')[0]}?token={kiosk}&t={int(now // 10)}"
        layout["map"] = {**layout["map"], "layers": layers}

        kpi = msg.get("kpi") or {}
        stages = msg.get("stages") or {}
        queue = sorted(
            (i for i in range(len(cases["id"])) if cases["deadline"][i] is not None),
            key=lambda i: cases["deadline"][i],
        )[:QUEUE_ROWS]
        last = (msg.get("events") or [None])[-1]
        hours = msg.get("hours") or {"reported": [0] * 24, "closed": [0] * 24}
        panels = [
            html.Div([html.Div(str(kpi.get(k)), id=f"kpi-{k}") for k in KPI_KEYS]),
            html.Div([html.Div(f"{s} {stages.get(s, 0)}") for s in STAGE_COLOURS]),
            html.Ol(
                [
                    html.Li(
                        f"{int(cases['deadline'][i] - now)} {cases['stage'][i]} "
                        f"{cases['street'][i]} {cases['id'][i]}"
                    )
                    for i in queue
                ]
            ),
            html.Div(
                f"{last['at']} {last['action']} {last.get('class') or ''} "
                f"{last['case']} {last.get('stage') or ''}"
                if last
                else ""
            ),
            html.Ol(
                [html.Li(f"{r['code']} {r['score']} {r['grade']}") for r in (msg.get("ranking") or [])[:6]]
            ),
            html.Div(
                [
                    html.I(style={"height": f"{a}/{c}"})
                    for a, c in zip(hours["reported"], hours["closed"], strict=True)
                ]
            ),
        ]
        return {"data": data, "layout": layout}, panels
