"""The desk's router: every page module's ROUTES are collected and each desk path reaches its page.

The pages themselves are tested through a server (test_desk.py, test_desk_people.py); this pins the
path → page table that used to be written out in dashboard/app.py, so moving a route between page
modules cannot silently drop or shadow a URL.
"""

from __future__ import annotations

import re

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
