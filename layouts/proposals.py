"""``/desk/proposals`` (部件更新建议, issue 18): what supervisors proposed from their handsets — a new
部件 object, a move or a state change of one — with its photo, its point on the map and the object it
names; the surveyor (or an admin) accepts one (applied to the inventory as a ``component`` update with
the history "proposal #n by <supervisor>") or refuses it with a reason the supervisor's handset shows.

Both buttons post ``proposal_accept`` / ``proposal_refuse`` to ``POST /api/v1/commands``
(``assets/gw-desk.js``): the ``proposal_decision`` event of the one pipeline, which checks the session's
role again. Other roles get a line saying the page is the surveyor's. The page only reads.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from dash import dcc, html

from dashboard import ids
from dashboard.case_figures import location_figure
from dashboard.i18n import t
from layouts.chrome import (
    PROPOSAL_DECIDERS,
    PageContext,
    Route,
    class_label,
    data_attrs,
    header,
    local,
    result_box,
)
from store.components import ComponentBook
from store.proposals import Status, listing, pending_count

SHOWN = 30  # pending proposals on the page (oldest first); the rest wait for the next visit
DECIDED = 10  # the latest decided ones, below


def _fact(label: str, value: Any) -> html.Div:
    return html.Div(
        [html.Div(label, className="gw-f-label"), html.Div(value, className="gw-f-value")],
        className="gw-field",
    )


def _map(ctx: PageContext, p: dict[str, Any]) -> Any:
    """The proposed point (or the object's, for a state change) in its unit grid."""
    lon, lat = p["lon"], p["lat"]
    obj = ComponentBook.shared(ctx.data.engine).get(p["component_id"]) if p["component_id"] else None
    if lon is None and obj is not None:
        lon, lat = obj.lon, obj.lat
    h = ctx.data.hierarchy()
    info = h.grids.get(p["grid"]) if h is not None and p["grid"] else None
    if info is None or lon is None:
        return None
    pad = 0.0005
    box = (info.bbox[0] - pad, info.bbox[1] - pad, info.bbox[2] + pad, info.bbox[3] + pad)
    fig = location_figure(
        ctx.data.grid_shapes([info.code]).get(info.code),
        (lon, lat),
        box,
        ctx.lang,
        grid_code=info.code,
        viewport=(320, 240),
    )
    return dcc.Graph(
        id={"type": ids.PROPOSAL_MAP, "n": p["number"]},
        figure=fig,
        className="gw-proposal-map",
        style={"height": "240px"},
        config={"displayModeBar": False},
    )


def _what(ctx: PageContext, p: dict[str, Any]) -> list[Any]:
    """What the proposal asks, and the object it names (a link, its state and point now)."""
    lang = ctx.lang
    out: list[Any] = [
        _fact(t("proposal.what", lang), t(f"proposal.action.{p['action']}", lang)),
        _fact(t("case.class", lang), class_label(ctx, "component", p["class_code"])),
    ]
    if p["action"] == "add":
        out.append(_fact(t("component.name", lang), p["name"] or "—"))
    if p["action"] in ("add", "state") and p["state"]:
        out.append(_fact(t("component.state", lang), t(f"component.state.{p['state']}", lang)))
    if p["lon"] is not None:
        out.append(_fact(t("proposal.point", lang), f"{p['lon']:.6f}, {p['lat']:.6f} · {p['grid'] or '—'}"))
    if p["component_id"]:
        obj = ComponentBook.shared(ctx.data.engine).get(p["component_id"])
        now = (
            f" {obj.name or ''} · {t(f'component.state.{obj.state}', lang)} · {obj.lon:.6f}, {obj.lat:.6f}"
            if obj is not None
            else f" {t('proposal.gone', lang)}"
        )
        out.append(
            _fact(
                t("proposal.object", lang),
                [
                    dcc.Link(p["component_id"], href=ctx.href(f"/component/{p['component_id']}")),
                    html.Span(now, className="gw-dim"),
                ],
            )
        )
    if p["note"]:
        out.append(_fact(t("proposal.note", lang), p["note"]))
    return out


def _photo(p: dict[str, Any]) -> Any:
    refs = [r for r in (p["media"] or "").split(",") if r]
    return [
        html.A(html.Img(src=f"/media/{r}", className="gw-photo", alt=r), href=f"/media/{r}", target="_blank")
        for r in refs
    ]


def card(ctx: PageContext, p: dict[str, Any], decide: bool) -> html.Section:
    """One proposal: who and when, the photo, the map, what it asks; the two buttons when pending."""
    lang = ctx.lang
    action = t("proposal.action." + p["action"], lang)
    head = html.H2(
        f"#{p['number']} · {action} · {p['supervisor']} · {local(datetime.fromisoformat(p['at']))}"
    )
    body: list[Any] = [
        html.Div(_what(ctx, p), className="gw-facts"),
        html.Div(_photo(p), className="gw-photos"),
    ]
    if p["status"] != Status.PENDING.value:
        body.append(
            html.P(
                f"{p['status']} · {p['decider'] or ''} · {p['reason']}"
                + (f" · {p['result_component']}" if p["result_component"] else ""),
                className="gw-dim",
            )
        )
    elif decide:
        key = f"desk-{uuid.uuid4().hex}"
        body.append(
            html.Div(
                [
                    dcc.Input(
                        type="text",
                        name="opinion",
                        placeholder=t("proposal.reason", lang),
                        className="gw-act-input",
                        maxLength=200,
                    ),
                    html.Button(
                        t("proposal.accept", lang),
                        type="button",
                        className="gw-act-btn",
                        **data_attrs(gw_action="proposal_accept", gw_key=f"{key}-a"),
                    ),
                    html.Button(
                        t("proposal.refuse", lang),
                        type="button",
                        className="gw-act-btn",
                        **data_attrs(gw_action="proposal_refuse", gw_key=f"{key}-r"),
                    ),
                ],
                className="gw-act",
            )
        )
    side = _map(ctx, p)
    return html.Section(
        [
            head,
            html.Div(
                [html.Div(body, className="gw-proposal-main"), html.Div(side)], className="gw-proposal-row"
            ),
        ],
        className="gw-panel gw-proposal",
        **data_attrs(gw_case=str(p["number"]), gw_status=p["status"]),
    )


def page(ctx: PageContext) -> html.Div:
    """``/desk/proposals``."""
    lang = ctx.lang
    title = t("proposal.title", lang)
    ov = ctx.overview
    crumbs = [(ov.summary.name if lang == "zh" else ov.summary.name_en, "/desk"), (title, None)]
    decide = ctx.person.get("role") in PROPOSAL_DECIDERS
    if not decide:  # the surveyor's page: other roles are told so (the command path refuses them too)
        main: list[Any] = [html.P(t("proposal.not_yours", lang), className="gw-dim", id=ids.PROPOSAL_LIST)]
    else:
        with ctx.data.engine.connect() as conn:
            waiting, n = listing(conn, Status.PENDING.value, limit=SHOWN), pending_count(conn)
            decided = listing(conn, Status.ACCEPTED.value, limit=DECIDED) + listing(
                conn, Status.REFUSED.value, limit=DECIDED
            )
        decided.sort(key=lambda p: p["decided_at"] or "", reverse=True)
        main = [
            html.P(t("proposal.hint", lang).format(n=n), className="gw-dim"),
            result_box(lang),
            html.Div(
                [card(ctx, p, True) for p in waiting]
                or [html.P(t("proposal.none", lang), className="gw-dim")],
                id=ids.PROPOSAL_LIST,
            ),
            html.H2(t("proposal.decided", lang)),
            html.Div([card(ctx, p, False) for p in decided[:DECIDED]], id=ids.PROPOSAL_DECIDED),
        ]
    return html.Div(
        [header(ctx, crumbs, title), html.Main(main, className="gw-worklist-page gw-proposals-page")],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


ROUTES = [Route(r"/desk/proposals", page)]
