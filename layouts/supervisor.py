"""Supervisor page (issue 8 item 7): live position and status, today's track with playback, coverage
of the responsibility area, reports and tasks today.

The page is static layout; ``assets/gw-playback.js`` reads the JSON config element (ids, texts,
the thinned track) and runs the playback in the browser (no server round trip per frame), and
joins ``/live`` room ``supervisor:<id>`` to move the live marker and the status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import plotly.graph_objects as go
from dash import dcc, html
from dash.development.base_component import Component

from dashboard import ids
from dashboard.figures import PLAYBACK_COLOUR, SUPERVISOR_COLOURS
from dashboard.i18n import t
from dashboard.people_data import DayItem, SupervisorInfo, Track
from domain.evaluation import SHANGHAI
from layouts.chrome import menu
from store.handsets import Device

SPEEDS = (1, 2, 5, 10, 30, 60)
SKIP_GAP_S = 300  # playback jumps over gaps longer than this (the handset was off)


@dataclass(frozen=True)
class SupervisorPage:
    """What the page shows of one supervisor."""

    info: SupervisorInfo
    status: str
    last_fix: datetime | None
    track: Track  # thinned for drawing
    km: float
    minutes: Mapping[str, float]  # patrol minutes today per grid of the area (0 for not walked)
    reports: Sequence[DayItem]
    tasks: Sequence[DayItem]
    devices: Sequence[Device] = ()  # device tokens, the handset app's own report of itself


DEVICE_ROLES = ("admin", "shift_leader")  # who pairs and revokes phones (dashboard.devices)


def _devices(p: SupervisorPage, lang: str, role: str | None) -> list[Component]:
    """The supervisor's phones: app version, last seen, battery; pair and revoke for admin / 值班长."""
    manage = role in DEVICE_ROLES
    rows: list[Component] = []
    for d in p.devices:
        facts = [d.name, f"{t('dev.issued', lang)} {_local(d.created_at, '%Y-%m-%d %H:%M')}"]
        if d.app_version:
            facts.append(f"{t('dev.app', lang)} {d.app_version}")
        if d.seen_at is not None:
            facts.append(f"{t('dev.seen', lang)} {_local(d.seen_at, '%m-%d %H:%M')}")
        if d.battery is not None:
            plug = f" {t('dev.charging', lang)}" if d.charging else ""
            facts.append(f"{t('dev.battery', lang)} {d.battery * 100:.0f} %{plug}")
        if d.revoked_at is not None:
            facts.append(f"{t('dev.revoked', lang)} {_local(d.revoked_at, '%m-%d %H:%M')}")
        button = (
            html.Button(
                t("dev.revoke", lang),
                className="gw-btn gw-dev-revoke",
                **{"data-gw-device": "revoke", "data-gw-token": str(d.token_id)},  # type: ignore[arg-type]
            )
            if manage and d.revoked_at is None
            else None
        )
        rows.append(
            html.Li(
                [html.Span(" · ".join(facts)), button],
                className="gw-dev" + (" gw-dev-off" if d.revoked_at is not None else ""),
                **{"data-gw-token": str(d.token_id)},  # type: ignore[arg-type]
            )
        )
    out: list[Component] = [
        html.H2(t("dev.title", lang)),
        html.Ul(rows, className="gw-devs") if rows else html.P(t("dev.none", lang), className="gw-dim"),
    ]
    if manage:
        out.append(
            html.Button(
                t("dev.pair", lang),
                className="gw-btn gw-dev-pair",
                **{"data-gw-device": "pair", "data-gw-person": p.info.id},  # type: ignore[arg-type]
            )
        )
        out.append(
            html.Div(
                id=ids.DEV_RESULT,
                className="gw-dev-result",
                **{
                    "data-gw-words": json.dumps(  # type: ignore[arg-type]
                        {k: t(f"dev.{k}", lang) for k in ("scan", "failed", "revoked", "link")},
                        ensure_ascii=False,
                    )
                },
            )
        )
    return out


def config(p: SupervisorPage, lang: str) -> dict[str, object]:
    """What the playback script needs: ids, texts, speeds, colours and the track (epoch s, lon, lat)."""
    keys = ("sup.play", "sup.pause", "sup.speed", "sup.never")
    texts = {k: t(k, lang) for k in keys}
    texts.update({f"status.{s}": t(f"status.{s}", lang) for s in SUPERVISOR_COLOURS})
    return {
        "id": p.info.id,
        "room": f"supervisor:{p.info.id}",
        "lang": lang,
        "ids": {k: v for k, v in vars(ids).items() if k.startswith("SUP_")},
        "texts": texts,
        "speeds": list(SPEEDS),
        "skipGap": SKIP_GAP_S,
        "statusColours": SUPERVISOR_COLOURS,
        "playColour": PLAYBACK_COLOUR,
        "tz": "Asia/Shanghai",
        "t": [round(x, 3) for x in p.track.t],
        "lon": [round(x, 6) for x in p.track.lon],
        "lat": [round(x, 6) for x in p.track.lat],
    }


def _local(at: datetime | None, fmt: str = "%H:%M:%S") -> str:
    return at.astimezone(SHANGHAI).strftime(fmt) if at else ""


def _items(items: Sequence[DayItem], lang: str, kind: str) -> Component:
    if not items:
        return html.P(t("sup.none", lang), className="gw-sup-none")
    rows = []
    for it in items:
        what = t(f"sup.task.{it.what}", lang) if kind == "task" else it.what
        state = t(f"sup.task.{it.state}", lang) if kind == "task" else it.state
        rows.append(
            html.Li(
                [
                    html.Span(_local(it.at, "%H:%M"), className="gw-sup-at"),
                    dcc.Link(it.id, href=f"/case/{it.id}", className="gw-sup-case"),
                    html.Span(what, className="gw-sup-what"),
                    html.Span(state, className="gw-sup-state"),
                ],
                className="gw-sup-item",
            )
        )
    return html.Ol(rows, className=f"gw-sup-list gw-sup-{kind}s")


def layout(p: SupervisorPage, figure: go.Figure, *, lang: str, role: str | None = None) -> html.Div:
    """The supervisor page."""
    walked = sorted(((m, g) for g, m in p.minutes.items() if m > 0), reverse=True)
    not_walked = sorted(g for g, m in p.minutes.items() if m <= 0)
    coverage = [
        html.P(
            f"{t('sup.walked', lang)} {len(walked)} / {len(p.minutes)} · "
            f"{t('sup.not_walked', lang)} {len(not_walked)}",
            className="gw-sup-coverage-line",
            id=ids.SUP_COVERAGE,
        ),
        html.Ol(
            [
                html.Li(
                    [html.Span(g), html.Span(f"{m:.0f} {t('sup.minutes', lang)}")], className="gw-sup-walked"
                )
                for m, g in walked
            ]
            + [
                html.Li([html.Span(g), html.Span(t("sup.not_walked", lang))], className="gw-sup-not-walked")
                for g in not_walked
            ],
            className="gw-sup-grids",
        ),
    ]
    return html.Div(
        [
            html.Div(
                id=ids.SUP_CONFIG,
                hidden=True,
                **{"data-sup-config": json.dumps(config(p, lang), ensure_ascii=False)},  # type: ignore[arg-type]
            ),
            html.Header(
                [
                    html.H1(
                        [
                            html.Span(f"{p.info.name}", className="gw-district"),
                            html.Span(f"{t('sup.title', lang)} {p.info.id}", className="gw-title"),
                        ]
                    ),
                    html.Div(
                        [
                            html.Span(
                                t(f"status.{p.status}", lang),
                                id=ids.SUP_STATUS,
                                className=f"gw-sup-status gw-status-{p.status}",
                                style={"background": SUPERVISOR_COLOURS.get(p.status, "#888")},
                                **{"data-status": p.status},  # type: ignore[arg-type]
                            ),
                            html.Span(
                                f"{t('sup.last_fix', lang)} {_local(p.last_fix) or t('sup.never', lang)}",
                                className="gw-sup-lastfix",
                                id=ids.SUP_LASTFIX,
                            ),
                            menu(role, lang),
                        ],
                        className="gw-header-right",
                    ),
                ],
                className="gw-header",
            ),
            html.Div(
                [
                    html.Div(id=ids.SUP_PLAY, className="gw-sup-play"),
                    html.Div(id=ids.SUP_SCRUB, className="gw-sup-scrub"),
                    html.Div(id=ids.SUP_SPEED, className="gw-sup-speed"),
                    html.Span("", id=ids.SUP_CLOCK, className="gw-sup-clock"),
                    html.Span(
                        f"{t('sup.track', lang)}: {p.track.stored:,} {t('sup.points', lang)} · "
                        f"{p.km:.1f} {t('sup.km', lang)}",
                        className="gw-sup-trackinfo",
                    ),
                ],
                className="gw-eval-controls gw-sup-controls",
            ),
            html.Main(
                [
                    dcc.Graph(
                        id=ids.SUP_MAP,
                        figure=figure,
                        config={"displayModeBar": False, "scrollZoom": True},
                        className="gw-map",
                    ),
                    html.Aside(
                        [
                            html.P(
                                f"{t('sup.area', lang)} {p.info.area or '–'}"
                                + (f" · {p.info.phone}" if p.info.phone else ""),
                                className="gw-sup-info",
                            ),
                            html.H2(t("sup.coverage", lang)),
                            *coverage,
                            html.H2(t("sup.reports", lang)),
                            _items(p.reports, lang, "report"),
                            html.H2(t("sup.tasks", lang)),
                            _items(p.tasks, lang, "task"),
                            *_devices(p, lang, role),
                        ],
                        className="gw-side gw-sup-side",
                    ),
                ],
                className="gw-main",
            ),
        ],
        className="gw-page gw-desk gw-sup",
        lang="zh-CN" if lang == "zh" else "en",
    )
