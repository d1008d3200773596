"""The desk's router: collects the ``ROUTES`` each page module declares and shows the page of a path.

A page module lists its paths at its end (``ROUTES = [Route(pattern, page), …]``, see
``layouts.chrome``); to add a page, write its module and add it to :data:`PAGE_MODULES`. The Dash
app factory calls :func:`desk_page` and :func:`wall_page` from its one ``render`` callback and
:func:`register_callbacks` once; it never imports a page module itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from types import ModuleType
from typing import Any

from dash import Dash, Input, Output, State, html, no_update

from dashboard import ids
from dashboard.data import Overview
from dashboard.i18n import t
from domain.lifecycle import Context
from feeds.live import LiveReader
from layouts import (
    case,
    chrome,
    component,
    component_stats,
    desk,
    grid,
    handover,
    locate,
    orders,
    overview,
    people,
    proposals,
    queue,
    wall,
)
from layouts.chrome import ContextOf, PageContext, QueryRoute, Route, context_of

# the page modules, in the order their routes are tried (query routes first: they need no district)
PAGE_MODULES: tuple[ModuleType, ...] = (
    people,
    desk,
    grid,
    case,
    queue,
    orders,
    locate,
    component,
    proposals,
    component_stats,
)
PAGE_MODULES += (handover,)  # /desk/handover (issue 21 part 4)
ROUTES: list[Route | QueryRoute] = [r for m in PAGE_MODULES for r in m.ROUTES]

__all__ = ["ROUTES", "PageContext", "desk_page", "message", "register_callbacks", "wall_page"]


def message(text: str, mode: str, back: tuple[str, str] | None = None) -> html.Div:
    """A one-line page (login needed, no district yet, not found) in the wall's or the desk's style."""
    return overview.message(text, mode, back)


def not_found(lang: str) -> html.Div:
    """The desk's "page not found", with a link back to the start page."""
    start = "/desk?lang=en" if lang == "en" else "/desk"
    return message(t("page.not_found", lang), "desk", (t("page.not_found.back", lang), start))


def desk_page(
    path: str,
    query: Mapping[str, list[str]],
    lang: str,
    *,
    district: Overview | None,
    context: Callable[[], PageContext | None],
) -> Any:
    """The desk page of a (logged-in) path: the first route whose pattern matches it, or "not found".

    Query routes answer without a district; the others get ``context()`` (the district is loaded).
    """
    for route in ROUTES:
        if isinstance(route, QueryRoute) and (m := re.fullmatch(route.pattern, path)) is not None:
            return route.page(query, lang, *m.groups())
    if district is None:
        return message(t("empty.district", lang), "desk")
    ctx = context()
    for route in ROUTES if ctx is not None else ():
        if isinstance(route, Route) and (m := re.fullmatch(route.pattern, path)) is not None:
            try:
                return route.page(ctx, *m.groups())
            except KeyError:  # an object that vanished since the guard checked it
                break
    return not_found(lang)


def wall_page(
    query: Mapping[str, list[str]],
    lang: str,
    *,
    district: Overview | None,
    live: LiveReader | None,
    simulated: bool,
    now: datetime,
    rules: Context | None = None,
) -> Any:
    """``/wall`` (kiosk): the district's live wall, or a message until a district is imported;
    ``rules``: the centre's lifecycle context (its stage strip shows the stages the centre uses)."""
    if district is None:
        return message(t("empty.district", lang), "wall")
    return wall.page(district, query, lang, live, simulated, now, rules)


def live_kpis(ctx: PageContext, path: str) -> Any:
    """The live KPI strip of the page at ``path`` (its route's ``kpis``), or no update."""
    path = path.rstrip("/") or "/"
    for route in ROUTES:
        if isinstance(route, Route) and (m := re.fullmatch(route.pattern, path)) is not None:
            return no_update if route.kpis is None else route.kpis(ctx, *m.groups())
    return no_update


def register_callbacks(app: Dash, ctx_of: ContextOf) -> None:
    """Every page module's read-only callbacks, the chrome's, and the live KPI strip's (per route)."""
    chrome.register_callbacks(app, ctx_of)
    for module in PAGE_MODULES:
        register: Callable[[Dash, ContextOf], None] | None = getattr(module, "register_callbacks", None)
        if register is not None:
            register(app, ctx_of)

    @app.callback(
        Output(ids.DESK_LIVE_KPIS, "children"),
        Input(ids.DESK_REFRESH, "data"),
        State(ids.LOCATION, "pathname"),
        State(ids.LOCATION, "search"),
        prevent_initial_call=True,
    )
    def refresh_kpis(_: Any, pathname: str | None, search: str | None) -> Any:
        ctx = context_of(ctx_of, search)
        if ctx is None:
            return no_update
        return live_kpis(ctx, pathname or "/desk")
