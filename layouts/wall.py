"""The kiosk wall: live map, KPI tiles, stage strip, case queue, ticker, clock and health.

The page is static Dash layout; everything live is applied in the browser by
``assets/gw-wall.js`` from ``/live`` snapshots and ticks. The script reads what it needs — element
ids (from :mod:`dashboard.ids`), texts (from the catalogue), colours and the order of the KPI tiles
and stages — from the JSON in the config element, so nothing is typed twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ids
from dashboard.data import Overview
from dashboard.figures import OVERDUE_COLOUR, STAGE_COLOURS, SUPERVISOR_COLOURS, wall_map
from dashboard.heat import MODES as HEAT_MODES
from dashboard.i18n import CATALOGUE, t
from domain.catalogue import Catalogue
from domain.lifecycle import Context, stages_in_use
from feeds.live import LiveReader
from feeds.ticks import wall_panels
from store.geography import DistrictSummary

KPI_KEYS = (
    "reported", "filed", "dispatched", "handling", "closed",
    "close_rate", "on_time_rate", "on_duty", "overdue_open", "avg_close_h",
)  # fmt: skip
STAGES = tuple(STAGE_COLOURS)
STALE_AFTER_S = 5  # no tick for this long → "data stale"
QUEUE_ROWS = 24  # at most; the wall shows as many as fit its queue's box (gw-wall.js)
# playlist: ?scenes=overview,streets&dwell=20
SCENES = ("overview", "streets", "supervisors", "evaluation", "departments", "problems", "recurring")
DWELL_S = 20
ALERT_SECONDS = 30  # an emergency (突发事件) takes the screen this long
RANK_ROWS = 6  # at most: the best three and the worst three streets when not all fit


def config(lang: str, streets: Mapping[str, str]) -> dict[str, object]:
    """What the wall script needs: element ids, texts in ``lang``, colours, orders, street names."""
    groups = ("wall", "kpi", "status", "stage", "action", "unit", "scene", "heat", "kind", "source")
    texts = {k: t(k, lang) for k in CATALOGUE if k.split(".")[0] in groups}
    return {
        "lang": lang,
        "streets": dict(streets),
        "ids": {k: v for k, v in vars(ids).items() if k.startswith("WALL_")},
        "texts": texts,
        "kpis": list(KPI_KEYS),
        "stages": list(STAGES),
        "stageColours": STAGE_COLOURS,
        "statusColours": SUPERVISOR_COLOURS,
        "overdueColour": OVERDUE_COLOUR,
        "staleAfter": STALE_AFTER_S,
        "queueRows": QUEUE_ROWS,
        "rankRows": RANK_ROWS,
        "alertSeconds": ALERT_SECONDS,
        "tz": "Asia/Shanghai",
    }


def class_names(catalogue: Catalogue) -> dict[str, str]:
    """``"<kind>:<code>"`` → the 小类's name, for every class of the catalogue (部件 and 事件 share codes)."""
    return {f"{c.kind.value}:{c.code}": c.name for c in catalogue.classes}


def _tile(key: str, lang: str) -> html.Div:
    return html.Div(
        [
            html.Div("–", id=f"{ids.WALL_KPIS}-{key}", className="gw-kpi-value"),
            html.Div(t(f"kpi.{key}", lang), className="gw-kpi-label"),
        ],
        className=f"gw-kpi gw-kpi-{key}",
    )


def _legend(lang: str, heat: str) -> html.Div:
    items = [
        html.Span([html.I(style={"background": c}), t(f"status.{s}", lang)], className="gw-legend-item")
        for s, c in SUPERVISOR_COLOURS.items()
    ]
    items.append(
        html.Span([html.I(className="gw-legend-case"), t("wall.cases", lang)], className="gw-legend-item")
    )
    heat_class = f"gw-legend-item gw-legend-heat gw-heat-{heat}"
    items.append(html.Span(t(f"heat.{heat}", lang), className=heat_class))
    return html.Div(items, id=ids.WALL_LEGEND, className="gw-legend")


def layout(
    summary: DistrictSummary,
    figure: go.Figure,
    *,
    streets: Mapping[str, str],
    lang: str,
    generated: bool,
    heat: str = "open",
    scenes: Sequence[str] = (),
    dwell: int = 20,
    boxes: Mapping[str, Sequence[float]] | None = None,
    panels: Mapping[str, object] | None = None,
    classes: Mapping[str, str] | None = None,
    stages: Sequence[str] = STAGES,
    departments: Mapping[str, str] | None = None,
) -> html.Div:
    """The wall page (kiosk: no controls, no hover, no scrollbars); ``panels``: values at page build;
    ``classes``: ``"<kind>:<code>"`` → the 小类's name (the queue names a case's class in words)."""
    district = summary.name if lang == "zh" else summary.name_en
    notes = [t("note.generated", lang)] if generated else []
    return html.Div(
        [
            html.Div(
                id=ids.WALL_CONFIG,
                hidden=True,
                **{
                    "data-config": json.dumps(
                        {
                            **config(lang, streets),
                            "stages": list(stages),
                            "heat": heat,
                            "scenes": list(scenes),
                            "dwell": max(5, dwell),
                            "boxes": dict(boxes or {}),
                            "initial": dict(panels) if panels else None,
                            "classes": dict(classes or {}),
                            "departments": dict(departments or {}),
                        },
                        ensure_ascii=False,
                    )
                },  # type: ignore[arg-type]
            ),
            html.Header(
                [
                    html.H1(
                        [
                            html.Span(district, className="gw-district"),
                            html.Span(t("page.wall", lang), className="gw-title"),
                        ]
                    ),
                    html.Div(
                        [
                            html.Span(
                                t("wall.simulated", lang), id=ids.WALL_SIM, className="gw-sim", hidden=True
                            ),
                            html.Span("", id=ids.WALL_HANDOVER, className="gw-ho-line", hidden=True),
                            html.Span(
                                t("wall.connecting", lang),
                                id=ids.WALL_HEALTH,
                                className="gw-health gw-health-wait",
                            ),
                            html.Span("", id=ids.WALL_CLOCK, className="gw-clock"),
                        ],
                        className="gw-header-right",
                    ),
                ],
                className="gw-header",
            ),
            html.Main(
                [
                    html.Section([_tile(k, lang) for k in KPI_KEYS], id=ids.WALL_KPIS, className="gw-kpis"),
                    html.Div(
                        [
                            dcc.Graph(
                                id=ids.WALL_MAP,
                                figure=figure,
                                config={"displayModeBar": False, "scrollZoom": False, "staticPlot": False},
                                className="gw-map",
                            ),
                            _legend(lang, heat),
                            html.Div(
                                [
                                    html.Div(
                                        [
                                            html.Span(t("wall.hours", lang)),
                                            html.Span(
                                                t("wall.hours.reported", lang), className="gw-hours-rep"
                                            ),
                                            html.Span(t("wall.hours.closed", lang), className="gw-hours-clo"),
                                        ],
                                        className="gw-hours-title",
                                    ),
                                    html.Div(id=ids.WALL_HOURS, className="gw-hours-bars"),
                                ],
                                className="gw-hours",
                            ),
                            html.Div([html.P(n) for n in notes], className="gw-map-notes"),
                            html.Div(id=ids.WALL_ALERT, className="gw-alert", hidden=True),
                            html.Div(id=ids.WALL_SCENE, className="gw-scene", hidden=True),
                            html.Ol(id=ids.WALL_BOARD, className="gw-board", hidden=True),
                        ],
                        className="gw-map-box",
                    ),
                    html.Aside(
                        [
                            html.H2(t("wall.stages", lang), className="gw-wide"),
                            html.Div(
                                [
                                    html.Div(
                                        [
                                            html.Div(
                                                "–", id=f"{ids.WALL_STAGES}-{i}", className="gw-stage-count"
                                            ),
                                            html.Div(t(f"stage.{s}", lang), className="gw-stage-name"),
                                        ],
                                        className="gw-stage",
                                        style={"borderTopColor": STAGE_COLOURS[s]},
                                    )
                                    for i, s in enumerate(stages)
                                ],
                                id=ids.WALL_STAGES,
                                className="gw-stages",
                                style={"--gw-stage-n": len(stages)},
                            ),
                            html.Div(
                                [
                                    html.H2(t("wall.queue", lang)),
                                    html.Ol(id=ids.WALL_QUEUE, className="gw-queue"),
                                ],
                                className="gw-side-col",
                            ),
                            html.Div(
                                [
                                    html.H2(t("wall.mix", lang)),
                                    html.Div(id=ids.WALL_MIX, className="gw-mix"),
                                    html.H2(t("wall.top", lang)),
                                    html.Div(id=ids.WALL_TOP, className="gw-top"),
                                ],
                                className="gw-side-col gw-wide",
                            ),
                            html.Div(
                                [
                                    html.H2(t("wall.ranking", lang)),
                                    html.Ol(id=ids.WALL_RANKING, className="gw-ranking"),
                                    html.H2(t("wall.departments", lang), className="gw-wide"),
                                    html.Ol(id=ids.WALL_DEPTS, className="gw-ranking gw-wide"),
                                ],
                                className="gw-side-col",
                            ),
                        ],
                        className="gw-side",
                    ),
                ],
                className="gw-wall-main",
            ),
            html.Footer(
                [
                    html.Span(t("wall.ticker", lang), className="gw-ticker-label"),
                    html.Div(id=ids.WALL_TICKER, className="gw-ticker"),
                ],
                className="gw-footer",
            ),
        ],
        className="gw-page gw-wall",
        lang="zh-CN" if lang == "zh" else "en",
    )


def page(
    ov: Overview,
    q: Mapping[str, list[str]],
    lang: str,
    live: LiveReader | None,
    simulated: bool,
    now: datetime | None = None,
    rules: Context | None = None,
) -> html.Div:
    """``/wall``: the district's map and the current live values (the tiles do not wait for the socket).

    The query picks the heat layer (``heat``) and the scene playlist (``scenes``, ``dwell``).
    """
    heat = q.get("heat", ["open"])[0]
    heat = heat if heat in HEAT_MODES else "open"
    fig = wall_map(
        streets=ov.streets,
        bounds=ov.summary.bounds,
        lang=lang,
        labels_url=f"/geo/{ov.summary.adcode}/labels.png",
        heat_url=f"/geo/{ov.summary.adcode}/heat/{heat}.png",
        viewport=(1100, 900),
    )
    names = {s.code: s.name for s in ov.streets}
    boxes = {
        s.code: [min(p[0] for r in s.rings for p in r), min(p[1] for r in s.rings for p in r),
                 max(p[0] for r in s.rings for p in r), max(p[1] for r in s.rings for p in r)]
        for s in ov.streets
    }  # fmt: skip
    scenes = [x for x in q.get("scenes", [""])[0].split(",") if x in SCENES]
    dwell = q.get("dwell", [""])[0]
    panels = None
    classes: dict[str, str] = {}
    if live is not None:
        view = live.snapshot(now or datetime.now(UTC))
        panels = wall_panels(view, simulated=simulated, queue_rows=QUEUE_ROWS)
        classes = class_names(live.catalogue)
    stages = STAGES if rules is None else tuple(s.value for s in stages_in_use(rules.policy, rules.catalogue))
    return layout(
        ov.summary, fig, streets=names, lang=lang, generated=ov.generated, heat=heat,
        scenes=scenes, dwell=int(dwell) if dwell.isdigit() else DWELL_S, boxes=boxes,
        panels=panels, classes=classes, stages=stages,
        departments={c: d.name for c, d in live.catalogue.departments.items()} if live is not None else None,
    )  # fmt: skip
