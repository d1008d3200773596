"""A supervisor proposes a new 部件 on the handset (城管通, an emulated phone in Debian's Chromium) and a
surveyor accepts it on the desk's ``/desk/proposals`` (issue 18), against the shared ``python app.py run``
(tests.conftest ``app_server``: SQLite). The surveyor is made with ``app.py user add … --role surveyor``.

Nothing is faked: the phone uploads the photo and sends the ``proposal`` over ``/device``; the desk's
button posts the decision through ``POST /api/v1/commands``; the outcome is read where it lands (the
database, read-only; the component page; the phone's own list).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ARTIFACTS
from tests.desk_login import login_browser
from tests.serve import Server
from tests.test_handset import (  # noqa: F401  (fixtures)
    PASSWORD,
    WAIT,
    Phone,
    Supervisor,
    db_rows,
    ensure_user,
    jpeg,
    new_supervisor,
    phone,
    server,
)

SEWER = "0102"  # 污水井盖


def test_a_proposal_made_on_the_phone_is_accepted_on_the_desk(
    server: Server,  # noqa: F811
    phone: Callable[..., Phone],  # noqa: F811
    new_supervisor: Callable[[], Supervisor],  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    sup = new_supervisor()
    p = phone(sup)
    p.sign_in(sup.person)
    page = p.page
    page.click("button[data-go=propose]")
    page.wait_for_selector("button[data-action=add].on")
    page.fill("#prop-search", "污水")
    page.click(f"#prop-classes button[data-code='{SEWER}']")
    page.wait_for_selector("#prop-class")
    page.fill("#prop-name", "新井盖（手机建议）")
    page.wait_for_selector("#where")
    assert sup.person and page.inner_text("#where")  # the grid the pin is in
    photo = tmp_path / "cover.jpg"
    photo.write_bytes(jpeg(1200, 900, 60))
    page.set_input_files("input[data-photo=proposal]", str(photo))
    page.wait_for_selector("label.shot img")
    page.fill("#prop-note", "人行道新铺装，井盖未入库")
    p.shot("proposal")
    page.evaluate("document.querySelector('#screen').scrollTo(0, 0)")
    p.shot("proposal-top")
    page.click("#propose-send")
    # this toast, not another (a 核实 task of the simulation may reach the new supervisor meanwhile)
    toast = page.wait_for_selector(".toast.ok:has-text('建议已提交')", timeout=WAIT * 1000)
    assert toast is not None
    number = toast.inner_text().split()[-1]
    assert number.startswith("#"), toast.inner_text()
    row = db_rows(server, "SELECT supervisor, action, class_code, status, media, grid_code FROM proposals "
                  "WHERE id = ?", int(number[1:]))  # fmt: skip
    assert row and row[0][:4] == (sup.person, "add", SEWER, "待审") and row[0][4].startswith("sha256:"), row
    page.wait_for_selector(f"#mine [data-number='{number[1:]}'][data-status=待审]", timeout=WAIT * 1000)
    p.shot("proposal-sent")
    # the surveyor, made with app.py user add --role surveyor, accepts it on the desk
    surveyor = ensure_user(server, "svy-desk", "surveyor")
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    desk = ctx.new_page()
    errors: list[str] = []
    desk.on("pageerror", lambda e: errors.append(str(e)))
    try:
        login_browser(desk, server.base, surveyor, PASSWORD, "/desk/proposals")
        card = desk.wait_for_selector(f"section[data-gw-case='{number[1:]}']", timeout=WAIT * 1000)
        assert card is not None and "新井盖（手机建议）" in card.inner_text()
        assert "人行道新铺装" in card.inner_text()
        desk.wait_for_selector(f"section[data-gw-case='{number[1:]}'] img.gw-photo")
        desk.wait_for_selector(f"section[data-gw-case='{number[1:]}'] .gw-proposal-map .main-svg")  # its map
        assert "部件更新建议" in desk.inner_text(".gw-menu")  # in the surveyor's menu
        ARTIFACTS.mkdir(exist_ok=True)
        desk.screenshot(path=str(ARTIFACTS / "desk-proposals.png"), full_page=False)
        desk.fill(f"section[data-gw-case='{number[1:]}'] input[name=opinion]", "现场照片清楚，采纳")
        desk.click(f"section[data-gw-case='{number[1:]}'] button[data-gw-action=proposal_accept]")
        desk.wait_for_selector("#gw-act-result.gw-act-done", timeout=WAIT * 1000)
        # acknowledged after the commit: the database holds the decision when the page says done
        done = db_rows(server, "SELECT status, decider, result_component FROM proposals WHERE id = ?",
                       int(number[1:]))  # fmt: skip
        assert done[0][:2] == ("已采纳", surveyor) and done[0][2], done
        code = done[0][2]
        sql = "SELECT actor, action, reason FROM component_history WHERE component_id = ?"
        hist = db_rows(server, sql, code)
        assert hist == [(surveyor, "add", f"proposal {number} by {sup.person}: 现场照片清楚，采纳")], hist
        desk.goto(f"{server.base}/component/{code}")
        desk.wait_for_selector("#gw-component-history")
        assert f"proposal {number} by {sup.person}" in desk.inner_text("#gw-component-history")
        assert not errors, errors
    finally:
        ctx.close()
    # the phone sees the outcome in its list
    page.click("button[data-go=home]")
    page.click("button[data-go=propose]")
    page.wait_for_selector(f"#mine [data-number='{number[1:]}'][data-status=已采纳]", timeout=WAIT * 1000)
    assert code in page.inner_text(f"#mine [data-number='{number[1:]}']")
    page.locator("#mine").scroll_into_view_if_needed()
    p.shot("proposal-accepted")
    # a report of that class names the object: the report screen lists the nearest ones of the class
    page.click("button[data-go=home]")
    page.click("button[data-go=report]")
    page.click("button[data-kind=component]")
    page.fill("#cls-search", "污水")
    page.click(f"#classes button[data-code='{SEWER}']")
    page.wait_for_selector("#picked")
    page.click(f"#report-objects button[data-object='{code}']", timeout=WAIT * 1000)
    page.wait_for_selector(f"#report-objects button.on[data-object='{code}']")
    p.shot("report-object")
    page.fill("#description", "井盖破损（手机端点选部件）")
    page.click("#send")
    sent = page.wait_for_selector(".toast.ok:has-text('R')", timeout=WAIT * 1000)
    assert sent is not None
    case = db_rows(server, "SELECT component_id, class_code FROM cases WHERE description = ?",
                   "井盖破损（手机端点选部件）")  # fmt: skip
    assert case == [(code, SEWER)], case
