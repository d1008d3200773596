"""Page chrome: what every desk page shares, and how a page module declares its routes.

A desk page module (``layouts.desk``, ``grid``, ``case``, ``queue``, ``evaluation``, ``when``,
``supervisor``) builds its page from these pieces (the :class:`PageContext` it is given, the header
with breadcrumbs, KPI tiles, the clickable map block, the ``/live`` room config, time and deadline
formatting) and lists its paths in a module-level ``ROUTES`` of :class:`Route` (or
:class:`QueryRoute`); ``layouts.router`` collects them. The pages import this module and not one
another, so no page has to be loaded for another to be read (``layouts.desk`` used to be both a
page and this chrome, which made desk, case and grid import each other).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component

from dashboard import ids
from dashboard.data import Overview
from dashboard.deskdata import DeskData
from dashboard.i18n import CATALOGUE, pick_lang, t
from dashboard.worklist import QUEUE_ROLES
from domain.lifecycle import Context
from feeds.counters import DailyCounters
from feeds.live import LiveCase, LiveReader, View

HOVER_PX = 10  # a marker is picked within this distance of the pointer (plotly's default is 20)
MAP_HEIGHT = 680  # px; the fitted view assumes about 1000 x 680
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class PageContext:
    """What a desk page needs: language, query, the person, read models and live state."""

    lang: str
    query: Mapping[str, list[str]]
    person: dict[str, Any]
    data: DeskData
    overview: Overview
    live: LiveReader | None
    counters: DailyCounters | None  # None in a scale-out web process (the aggregator keeps them)
    now: datetime
    rules: Context | None = None  # the lifecycle's rules (what the person may do; None before the core)

    def href(self, path: str) -> str:
        """A desk link keeping the language."""
        return f"{path}?lang=en" if self.lang == "en" else path

    def view(self) -> View | None:
        """The live snapshot (None without a live core)."""
        return None if self.live is None else self.live.snapshot(self.now)


# -- shared pieces -------------------------------------------------------------------------------------


LEADER_ROLES = frozenset({"leader", "admin"})  # their desk is the 领导桌面; everyone else's the 业务工作台


def desk_title(role: str | None, lang: str) -> str:
    """The desk's name for a role: 领导桌面 for leaders, 业务工作台 for operators."""
    return t("page.desk" if role in LEADER_ROLES else "page.workdesk", lang)


LOCATE_VIEWERS = frozenset({"acceptor", "shift_leader", "admin"})  # the 待定位 list in the menu (issue 17)
HANDOVER_VIEWERS = frozenset({"shift_leader", "leader", "admin"})  # 交接班 (issue 21 part 4)
PROPOSAL_DECIDERS = frozenset({"surveyor", "admin"})  # the handsets' 部件 proposals (issue 18)


def menu_links(role: str | None, lang: str) -> list[tuple[str, str]]:
    """The header menu of a role, as (label, path): what the person may open from any desk page."""
    queue = f"/desk/queue/{role}" if role in QUEUE_ROLES else f"/desk/queue/{QUEUE_ROLES[0]}"
    links = [
        (t("nav.overview", lang), "/desk"),
        (t("queue.mine" if role in QUEUE_ROLES else "nav.queues", lang), queue),
        (t("nav.orders", lang), "/desk/orders"),
        *([(t("nav.handover", lang), "/desk/handover")] if role in HANDOVER_VIEWERS else []),
        *([(t("nav.locate", lang), "/desk/locate")] if role in LOCATE_VIEWERS else []),
        *([(t("nav.proposals", lang), "/desk/proposals")] if role in PROPOSAL_DECIDERS else []),
        (t("nav.evaluation", lang), "/evaluation"),
        (t("nav.when", lang), "/desk/when"),
        (t("nav.recurring", lang), "/desk/components/recurring"),
    ]
    return [(label, f"{path}?lang=en" if lang == "en" else path) for label, path in links]


def menu(role: str | None, lang: str, here: str = "") -> html.Nav:
    """The header menu (links within the desk app); the page at ``here`` is marked."""
    return html.Nav(
        [
            dcc.Link(
                label,
                href=href,
                className="gw-menu-item gw-menu-here" if href.split("?")[0] == here else "gw-menu-item",
            )
            for label, href in menu_links(role, lang)
        ],
        className="gw-menu",
        id=ids.DESK_MENU,
    )


def header(ctx: PageContext, crumbs: Sequence[tuple[str, str | None]], title: str) -> html.Header:
    """The desk header: breadcrumbs, title, the menu, the person, language switch and logout."""
    items: list[Any] = []
    for i, (label, path) in enumerate(crumbs):
        if i:
            items.append(html.Span("›", className="gw-crumb-sep"))
        items.append(
            dcc.Link(label, href=ctx.href(path), className="gw-crumb")
            if path
            else html.Span(label, className="gw-crumb gw-crumb-here")
        )
    other = "zh" if ctx.lang == "en" else "en"
    person = ctx.person
    role_name = t(f"role.{person.get('role')}", ctx.lang)
    return html.Header(
        [
            html.Div(
                [
                    html.Nav(items, className="gw-crumbs", id=ids.DESK_CRUMBS),
                    html.H1(title, className="gw-desk-title"),
                    menu(person.get("role"), ctx.lang),
                ],
                className="gw-desk-head",
            ),
            html.Div(
                [
                    html.Span(
                        f"{person.get('name') or person.get('person_id')} · {role_name}",
                        className="gw-desk-who",
                    ),
                    html.A(t("login.other_lang", ctx.lang), href=f"?lang={other}", className="gw-desk-lang"),
                    html.Form(
                        [
                            dcc.Input(type="hidden", name="csrf", value=str(person.get("csrf") or "")),
                            html.Button(
                                t("desk.logout", ctx.lang), type="submit", className="gw-desk-logout"
                            ),
                        ],
                        method="post",
                        action="/logout",
                        className="gw-desk-logout-form",
                    ),
                ],
                className="gw-desk-user",
            ),
        ],
        className="gw-desk-header",
    )


def crumbs_for(
    ctx: PageContext,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    last: str | None = None,
) -> list[tuple[str, str | None]]:
    """Breadcrumbs from the district down to an object (the last one not a link)."""
    h = ctx.data.hierarchy()
    ov = ctx.overview
    names = {s.code: s.name for s in ov.streets}
    out: list[tuple[str, str | None]] = [
        (ov.summary.name if ctx.lang == "zh" else ov.summary.name_en, "/desk")
    ]
    if street:
        out.append((names.get(street, street), f"/street/{street}"))
    if community and h is not None and community in h.communities:
        out.append((h.communities[community].name, f"/community/{community}"))
    if grid:
        out.append((grid, f"/grid/{grid}"))
    if last:
        out.append((last, None))
    else:
        out[-1] = (out[-1][0], None)
    return out


def kpi(label: str, value: Any, *, alert: bool = False, key: str = "") -> html.Div:
    """One KPI tile."""
    shown: Any = "—" if value is None else (f"{value:,}" if isinstance(value, int) else value)
    if not isinstance(shown, Component):
        shown = str(shown)
    parts = [
        html.Div(shown, className="gw-dk-value" + (" gw-dk-alert" if alert else "")),
        html.Div(label, className="gw-dk-label"),
    ]
    if key:
        return html.Div(parts, className="gw-dk", id=f"{ids.DESK_KPIS}-{key}")
    return html.Div(parts, className="gw-dk")


def fmt_left(deadline: datetime | None, now: datetime, lang: str) -> tuple[str, bool]:
    """A deadline as time left (or late), and whether it is past."""
    if deadline is None:
        return "—", False
    secs = (deadline - now).total_seconds()
    late = secs < 0
    secs = abs(secs)
    h, m = int(secs // 3600), int(secs % 3600 // 60)
    text = f"{h}h{m:02d}m" if h < 48 else f"{h // 24}d{h % 24}h"
    return (f"{t('case.late', lang)} {text}" if late else f"{t('case.left', lang)} {text}"), late


def local(value: datetime | None) -> str:
    """An instant in the city's time, ``MM-DD HH:MM``."""
    return "—" if value is None else value.astimezone(TZ).strftime("%m-%d %H:%M")


def class_namer(ctx: PageContext) -> Any:
    """A function naming a live case's class in the page's language."""
    catalogue = ctx.live.catalogue if ctx.live is not None else None

    def name(c: LiveCase) -> str:
        if catalogue is None:
            return c.class_code
        try:
            minor = catalogue.minor(c.kind, c.class_code)
        except Exception:
            return c.class_code
        return str(getattr(minor, "name", c.class_code))

    return name


def class_label(ctx: PageContext, kind: str, code: str) -> str:
    """``大类 / 小类 (code)`` from the catalogue, or the code."""
    catalogue = ctx.live.catalogue if ctx.live is not None else None
    if catalogue is None:
        return code
    try:
        minor = catalogue.minor(kind, code)
    except Exception:
        return code
    return f"{minor.major_name} / {minor.name} ({code})"


def map_block(figure: go.Figure) -> html.Div:
    """The clickable desk map and the navigation location it drives."""
    figure.update_layout(hoverdistance=HOVER_PX)  # a click near, not on, a marker opens the polygon
    return html.Div(
        [
            dcc.Location(id=ids.DESK_NAV, refresh="callback-nav"),
            dcc.Graph(
                id=ids.DESK_MAP,
                figure=figure,
                className="gw-desk-map",
                style={"height": f"{MAP_HEIGHT}px"},
                config={"displayModeBar": False, "scrollZoom": True, "responsive": True},
            ),
        ],
        className="gw-desk-mapbox",
    )


def live_config(room: str, refresh: str = ids.DESK_REFRESH, every: float = 5.0) -> html.Div:
    """The ``/live`` room ``assets/gw-desk.js`` joins, the store it bumps and how often at most."""
    cfg = {"room": room, "refresh": refresh, "every": every, "grids": room.startswith("grid:")}
    return html.Div(
        [
            dcc.Store(id=refresh, data=0),
            html.Div(orjson.dumps(cfg).decode(), className="gw-live-config gw-hidden"),
        ],
        id=ids.DESK_LIVE,
    )


def data_attrs(**attrs: str) -> dict[str, Any]:
    """``data-gw-*`` attributes for a component (``gw_action`` → ``data-gw-action``)."""
    return {"data-" + k.replace("_", "-"): v for k, v in attrs.items()}


def result_box(lang: str) -> html.Div:
    """Where ``assets/gw-desk.js`` says what the last action got (the texts from the catalogue)."""
    words: dict[str, Any] = {
        w: t(f"act.{w}", lang) for w in ("sending", "done", "duplicate", "refused", "failed")
    }
    words["rules"] = {k[5:]: v.get(lang) or v["zh"] for k, v in CATALOGUE.items() if k.startswith("rule.")}
    return html.Div(
        id=ids.ACT_RESULT,
        className="gw-act-result",
        role="status",
        **data_attrs(gw_words=orjson.dumps(words).decode()),
    )


# -- routes -------------------------------------------------------------------------------------------

ContextOf = Callable[[str, dict[str, list[str]]], PageContext | None]  # (lang, query) → the page context


@dataclass(frozen=True)
class Route:
    """A desk page: ``page(ctx, *groups)`` for a path matching ``pattern`` (``re.fullmatch``).

    The router builds the :class:`PageContext` (the district is loaded, the person logged in);
    ``kpis(ctx, *groups)``, when given, rebuilds the page's live KPI strip (``ids.DESK_LIVE_KPIS``)
    on ticks. A ``KeyError`` from ``page`` (an object gone since the path was checked) shows "not
    found".
    """

    pattern: str
    page: Callable[..., Any]
    kpis: Callable[..., Any] | None = None


@dataclass(frozen=True)
class QueryRoute:
    """A page that reads its own data: ``page(query, lang, *groups)``, shown before a district exists.

    The people and evaluation pages read the store through ``dashboard.desk_people`` rather than the
    :class:`PageContext`, so they answer even before a district is imported.
    """

    pattern: str
    page: Callable[..., Any]


def context_of(ctx_of: ContextOf, search: str | None) -> PageContext | None:
    """The page context of a callback, from the location's query string (its ``lang`` and the rest)."""
    q = parse_qs((search or "").lstrip("?"))
    return ctx_of(pick_lang(q.get("lang", [""])[0]), q)


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """The chrome's callback: a click on :func:`map_block`'s map navigates (customdata is a path)."""

    @app.callback(
        Output(ids.DESK_NAV, "href"),
        Input(ids.DESK_MAP, "clickData"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def map_click(click: dict[str, Any] | None, search: str | None) -> Any:
        points = (click or {}).get("points") or []
        for p in points:
            target = p.get("customdata")
            if isinstance(target, list) and target:
                target = target[0]
            if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
                lang = parse_qs((search or "").lstrip("?")).get("lang", [""])[0]
                return f"{target}?lang=en" if lang == "en" else target
        return no_update
