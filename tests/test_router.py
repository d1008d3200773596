"""The desk's router: every page module's ROUTES are collected and each desk path reaches its page.

The pages themselves are tested through a server (test_desk.py, test_desk_people.py); this pins the
path → page table that used to be written out in dashboard/app.py, so moving a route between page
modules cannot silently drop or shadow a URL.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from layouts import case, desk, grid, people, queue, router
from layouts.chrome import QueryRoute, Route


def resolve(path: str) -> Route | QueryRoute | None:
    """The route the router would pick for a path (query routes first, as desk_page tries them)."""
    ordered = [r for r in router.ROUTES if isinstance(r, QueryRoute)] + [
        r for r in router.ROUTES if isinstance(r, Route)
    ]
    return next((r for r in ordered if re.fullmatch(r.pattern, path)), None)


@pytest.mark.parametrize(
    ("path", "module", "page"),
    [
        ("/", desk, "district_page"),
        ("/desk", desk, "district_page"),
        ("/street/110101001", desk, "street_page"),
        ("/community/110101001001", desk, "community_page"),
        ("/grid/110101001001001", grid, "page"),
        ("/case/C-2026-1", case, "page"),
        ("/desk/queue/acceptor", queue, "page"),
    ],
)
def test_context_pages(path: str, module: object, page: str) -> None:
    """The hierarchy, grid, case and queue paths reach their page functions."""
    route = resolve(path)
    assert isinstance(route, Route) and route.page is getattr(module, page)


@pytest.mark.parametrize("path", ["/evaluation", "/desk/when", "/supervisor/S001", "/supervisor/a/b"])
def test_query_pages(path: str) -> None:
    """The people and evaluation pages answer without a district (query routes of layouts.people)."""
    route = resolve(path)
    assert isinstance(route, QueryRoute) and route in people.ROUTES


@pytest.mark.parametrize("path", ["/wall", "/nowhere", "/case", "/desk/queue/Acceptor", "/supervisor"])
def test_unknown_paths(path: str) -> None:
    """Anything else is no route (the router answers "not found"; /wall is the kiosk's, not the desk's)."""
    assert resolve(path) is None


def test_live_kpis_belong_to_the_levels_and_the_grid() -> None:
    """Hierarchy levels and the grid page rebuild their KPI strip on ticks; case and queue pages do not."""
    with_kpis = {r.pattern for r in router.ROUTES if isinstance(r, Route) and r.kpis is not None}
    assert with_kpis == {r.pattern for r in desk.ROUTES} | {r.pattern for r in grid.ROUTES}


def test_patterns_are_unique() -> None:
    """No two routes claim the same pattern (the later one would never be reached)."""
    patterns = [r.pattern for r in router.ROUTES]
    assert len(patterns) == len(set(patterns))


# -- the header menu, the desk's name per role, "page not found" (issue 19 item 7) ------------------------

DESK_ROLES = ("leader", "admin", "acceptor", "shift_leader", "dispatcher", "department")


@pytest.mark.parametrize("role", DESK_ROLES)
def test_every_menu_link_of_every_role_reaches_a_page(role: str) -> None:
    """The menu offers the district, a work list, the evaluation and who-was-where, each a real route."""
    from layouts.chrome import menu_links

    for lang in ("zh", "en"):
        links = menu_links(role, lang)
        paths = [href.split("?")[0] for _, href in links]
        assert paths[0] == "/desk" and "/evaluation" in paths and "/desk/when" in paths, links
        assert "/desk/orders" in paths, links  # 督办单
        assert all(resolve(p) is not None for p in paths), links
        assert all(href.endswith("?lang=en") == (lang == "en") for _, href in links), links


def test_an_operator_s_menu_opens_their_own_work_list() -> None:
    """Acceptors, shift leaders, dispatchers and departments get 我的待办 (their queue); the others the
    queues."""
    from layouts.chrome import menu_links

    assert ("我的待办", "/desk/queue/dispatcher") in menu_links("dispatcher", "zh")
    assert ("My work list", "/desk/queue/acceptor?lang=en") in menu_links("acceptor", "en")
    assert ("待办", "/desk/queue/acceptor") in menu_links("leader", "zh")
    assert ("我的待办", "/desk/queue/department") in menu_links("department", "zh")
    assert ("待办", "/desk/queue/acceptor") in menu_links("admin", "zh")


def test_the_desk_is_named_for_its_role() -> None:
    """领导桌面 for leaders; 业务工作台 for the operators (the title used to say 领导桌面 to everyone)."""
    from layouts.chrome import desk_title

    assert desk_title("leader", "zh") == desk_title("admin", "zh") == "领导桌面"
    for role in ("acceptor", "shift_leader", "dispatcher", "department"):
        assert desk_title(role, "zh") == "业务工作台", role
    assert desk_title("dispatcher", "en") == "Operations desk"


def test_page_not_found_offers_the_way_back() -> None:
    """An unknown desk path says so and links back to the start page (in the page's language)."""
    from dashboard import ids

    for lang, href in (("zh", "/desk"), ("en", "/desk?lang=en")):
        page = router.not_found(lang).to_plotly_json()
        links = [
            c["props"]
            for c in _walk(page)
            if isinstance(c.get("props"), dict) and c["props"].get("id") == ids.DESK_BACK
        ]
        assert len(links) == 1 and links[0]["href"] == href, page


def _walk(tree: Any) -> list[dict[str, Any]]:
    """Every component (as plotly JSON) in a tree."""
    out: list[dict[str, Any]] = []
    if hasattr(tree, "to_plotly_json"):
        tree = tree.to_plotly_json()
    if isinstance(tree, dict):
        out.append(tree)
        for v in tree.get("props", {}).values() if isinstance(tree.get("props"), dict) else ():
            out.extend(_walk(v))
    elif isinstance(tree, list | tuple):
        for x in tree:
            out.extend(_walk(x))
    return out


def test_a_desk_map_draws_at_most_max_case_markers_nearest_deadline_first() -> None:
    """Issue 20 (found by the full fuzz): the district page drew every open case; at 20,000 open cases
    a render cost 1.1 s and 1.7 MB (the fuzz's desk schema fell to 21 requests/s and the server's RSS
    rose by 740 MB). Now the most urgent MAX_CASE_MARKERS are drawn and the legend says of how many."""
    from datetime import UTC, datetime, timedelta

    from feeds.live import LiveCase

    now = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)

    class Ctx:
        lang = "zh"

    Ctx.now = now  # type: ignore[attr-defined]
    n = desk.MAX_CASE_MARKERS + 500

    def case(i: int) -> LiveCase:
        due = None if i % 7 == 0 else now + timedelta(minutes=n - i)  # every 7th: no running timer
        return LiveCase(
            id=f"C{i}", kind="event", class_code="0101", stage="handling", status="handling",
            source="supervisor", emergency=False, department=None, grid="110101001001001",
            street="110101001", lon=116.4, lat=39.9, reported_at=now, updated_at=now, deadline=due,
        )  # fmt: skip

    cases = [case(i) for i in range(n)]
    trace = desk.case_trace(Ctx, cases)  # type: ignore[arg-type]
    assert len(trace.lon) == desk.MAX_CASE_MARKERS
    shown = {c.removeprefix("/case/") for c in trace.customdata}
    urgent = sorted((c for c in cases if c.deadline is not None), key=lambda c: c.deadline or now)
    assert shown == {c.id for c in urgent[: desk.MAX_CASE_MARKERS]}
    assert trace.name == f"在办案件 ({desk.MAX_CASE_MARKERS:,}/{n:,})"
    few = desk.case_trace(Ctx, cases[:10])  # type: ignore[arg-type]
    assert len(few.lon) == 10 and few.name == "在办案件"
