"""交班 then 接班确认 as two shift leaders in real Chromium, and the wall's status line (issue 21 part 4).

The city's clock (``tests.conftest.CityClock``) starts at 15:50 on a working day, in the 08–16 shift.
Screenshots under ``test-artifacts/``: the desk page with the draft, the pending handover as the
incoming shift leader sees it, the printable page, and the wall with its 接班确认 line.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine

from dashboard import ids
from domain.catalogue import load_catalogue
from store import handover as store
from store.accounts import issue_token
from store.db import transaction
from tests.conftest import ARTIFACTS, CityClock
from tests.desk_login import add_desk_user, login_browser
from tests.live_server import LiveServer, start_live_server

pytestmark = pytest.mark.browser
PASSWORD = "handover-browser-0123"
NOTES = "东四北大街积水点已报排水集团，夜班请跟进"


@pytest.fixture(scope="module")
def centre(city_engine: Engine) -> Iterator[tuple[LiveServer, CityClock]]:
    clock = CityClock(time(15, 50))
    srv = start_live_server(city_engine, interval=0.5, clock=clock)
    add_desk_user(city_engine, "sl-out", PASSWORD, "shift_leader", name="白班长")
    add_desk_user(city_engine, "sl-in", PASSWORD, "shift_leader", name="夜班长")
    with transaction(city_engine) as s:
        key = issue_token(s, "api", "handover browser", role="call_center")[1]
    catalogue = load_catalogue("cjt214")
    event = next(c for c in catalogue.classes if c.kind.value == "event" and not c.emergency)
    emergency = next(c for c in catalogue.classes if c.emergency)
    for i, (cls, hours) in enumerate([(event, 0.1), (event, 2), (event, 9), (event, 30), (emergency, 0.5)]):
        spot = srv.spots[i]
        body = {"kind": cls.kind.value, "class_code": cls.code, "description": "交班演示", "lon": spot.lon,
                "lat": spot.lat, "at": (clock() - timedelta(hours=hours)).isoformat()}  # fmt: skip
        r = requests.post(f"{srv.url}/api/v1/reports", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert r.status_code == 201, r.text
    yield srv, clock
    srv.stop()


class Tab:
    """A browser context and page that records page errors and console errors."""

    def __init__(self, browser: Any, width: int = 1600, height: int = 1000) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def shot(self, name: str, full: bool = True) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)
        assert not self.errors, self.errors[:5]


def _has(page: Any, element: str, text: str, timeout: float = 30_000) -> None:
    page.wait_for_function(
        "([id, text]) => (document.getElementById(id) || {}).textContent?.includes(text)",
        arg=[element, text],
        timeout=timeout,
    )


@pytest.mark.parametrize("city_engine", ["sqlite"], indirect=True)
def test_hand_over_then_take_over_in_the_browser_and_the_wall_shows_it(
    centre: tuple[LiveServer, CityClock], browser: Any
) -> None:
    srv, _clock = centre
    out = Tab(browser)
    login_browser(out.page, srv.url, "sl-out", PASSWORD, "/desk/handover")
    _has(out.page, ids.HANDOVER_DRAFT, "交班草稿")
    _has(out.page, ids.HANDOVER_DRAFT, "08:00–16:00")
    _has(out.page, ids.HANDOVER_DRAFT, "共 5 件")  # the open cases filed above
    out.page.fill(f"#{ids.HANDOVER_DRAFT} textarea[name=opinion]", NOTES)
    out.shot("handover-draft")
    out.page.click(f"#{ids.HANDOVER_DRAFT} button[data-gw-action=handover_open]")
    _has(out.page, ids.HANDOVER_DRAFT, "本班次已交班")  # the page reloaded with the new state
    _has(out.page, ids.HANDOVER_PENDING, "这是您的交班")  # its author cannot take it over
    assert out.page.locator(f"#{ids.HANDOVER_PENDING} button[data-gw-action=handover_ack]").count() == 0

    incoming = Tab(browser)
    login_browser(incoming.page, srv.url, "sl-in", PASSWORD, "/desk/handover")
    _has(incoming.page, ids.HANDOVER_PENDING, NOTES)
    _has(incoming.page, ids.HANDOVER_PENDING, "白班长")
    incoming.page.fill(f"#{ids.HANDOVER_PENDING} textarea[name=opinion]", "已阅，接班")
    incoming.shot("handover-pending")
    incoming.page.click(f"#{ids.HANDOVER_PENDING} button[data-gw-action=handover_ack]")
    _has(incoming.page, ids.HANDOVER_PENDING, "没有待接班的交班")
    _has(incoming.page, ids.HANDOVER_HISTORY, "夜班长")
    with srv.engine.connect() as conn:
        done = store.latest(conn)
    assert done is not None and done.acknowledged_by == "sl-in" and done.notes == NOTES
    assert done.ack_notes == "已阅，接班"

    incoming.page.goto(f"{srv.url}/desk/handover/{done.id}/print")
    incoming.page.wait_for_selector("h2")
    assert NOTES in incoming.page.content()
    incoming.shot("handover-print")

    wall = Tab(browser, 1920, 1080)
    wall.page.goto(f"{srv.url}/wall?token={srv.kiosk}")
    _has(wall.page, ids.WALL_HANDOVER, "接班确认")
    _has(wall.page, ids.WALL_HANDOVER, "夜班长")
    assert wall.page.locator(f"#{ids.WALL_HANDOVER}").is_visible()
    size = wall.page.eval_on_selector(
        f"#{ids.WALL_HANDOVER}", "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert size >= 24  # read from 5 m
    wall.shot("wall-handover", full=False)
    for tab in (out, incoming, wall):
        tab.context.close()
