"""The shift handover (交班/接班, issue 21 part 4) over real HTTP on SQLite and PostgreSQL.

The city's clock is injected and set per test (10:00, 17:00, 23:59:30 then 00:00:10 across midnight);
cases are filed through the API at chosen instants (ages 1 h … 100 h, an emergency in the shift and one
before it, a 核实 task out, a 督办单 open), then a shift leader hands over from the desk's command path;
the snapshot's figures are checked against what the API says of those cases (their stages, deadlines
and stage timers), not against the snapshot code's own reading. Refusals by name; the history search;
the printable page and the PDF (its text extracted with pypdf must hold the Chinese).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy.engine import Engine

from dashboard import ids
from domain.catalogue import load_catalogue
from domain.shift import DEFAULT_SHIFTS, ShiftError, parse_shifts, shift_of
from store import handover as store
from store.accounts import issue_token
from store.db import transaction
from tests.desk_login import add_desk_user, login_http
from tests.live_server import LiveServer, start_live_server
from tests.test_address_desk import _components, _dash, _texts

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 2)  # a Wednesday, a working day
CATALOGUE = load_catalogue("cjt214")
EVENT = next(c for c in CATALOGUE.classes if c.kind.value == "event" and not c.emergency)
EMERGENCY = next(c for c in CATALOGUE.classes if c.emergency)
PASSWORD = "handover-password-0123"
ROLES = ("call_center", "acceptor", "shift_leader", "dispatcher", "supervisor")
PLAN = parse_shifts(DEFAULT_SHIFTS)


class Clock:
    """The city's clock of these tests: stands still at the instant it is set to."""

    def __init__(self) -> None:
        self.at = datetime.combine(DAY, time(10), TZ).astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.at

    def set(self, local: datetime) -> datetime:
        """Set the clock to a local instant; the UTC instant."""
        with self._lock:
            self.at = local.astimezone(UTC)
            return self.at


@dataclass
class Centre:
    srv: LiveServer
    clock: Clock
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.srv.url

    @property
    def engine(self) -> Engine:
        return self.srv.engine


@pytest.fixture(scope="module")
def centre(city_engine: Engine) -> Iterator[Centre]:
    clock = Clock()
    srv = start_live_server(city_engine, interval=0.2, clock=clock)
    for user, role, name in [("sl-a", "shift_leader", "甲班长"), ("sl-b", "shift_leader", "乙班长"),
                             ("sl-c", "shift_leader", "丙班长"), ("boss-h", "leader", "领导"),
                             ("acc-h", "acceptor", "受理员")]:  # fmt: skip
        add_desk_user(city_engine, user, PASSWORD, role, name=name)
    with transaction(city_engine) as s:
        keys = {r: issue_token(s, "api", f"handover {r}", role=r)[1] for r in ROLES}
    yield Centre(srv, clock, keys)
    srv.stop()


def api(c: Centre, role: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{c.url}/api/v1{path}", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {c.keys[role]}"})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def report(c: Centre, at: datetime, cls: Any = EVENT) -> dict[str, Any]:
    spot = c.srv.spots[0]
    body = {"kind": cls.kind.value, "class_code": cls.code, "description": "交班测试", "lon": spot.lon,
            "lat": spot.lat, "at": at.isoformat()}  # fmt: skip
    return dict(api(c, "call_center", "/reports", body)["case"])


def step(c: Centre, role: str, case_id: str, action: str, at: datetime, **data: Any) -> dict[str, Any]:
    out = api(c, role, f"/cases/{case_id}/{action}", {"at": at.isoformat(), **data})
    assert out["accepted"], out
    return dict(out["case"])


def view(c: Centre, case_id: str) -> dict[str, Any]:
    r = requests.get(f"{c.url}/api/v1/cases/{case_id}", timeout=30,
                     headers={"Authorization": f"Bearer {c.keys['acceptor']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def desk_post(client: requests.Session, c: Centre, body: dict[str, Any]) -> requests.Response:
    return client.post(f"{c.url}/api/v1/commands", json=body, timeout=30)


def page(client: requests.Session, c: Centre, path: str, search: str = "") -> Any:
    return _dash(
        client, c.url, f"{ids.PAGE}.children",
        [{"id": ids.LOCATION, "property": "pathname", "value": path},
         {"id": ids.LOCATION, "property": "search", "value": search}],
    )  # fmt: skip


def by_id(tree: Any, key: str) -> str:
    return _texts([x for x in _components(tree) if x["props"].get("id") == key])


def at_local(d: date, h: int, m: int = 0, s: int = 0) -> datetime:
    return datetime.combine(d, time(h, m, s), TZ)


# -- shifts (pure) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "start", "end"),
    [
        (at_local(DAY, 23, 59, 59), at_local(DAY, 16), at_local(DAY + timedelta(days=1), 0)),
        (at_local(DAY, 0, 0), at_local(DAY, 0), at_local(DAY, 8)),
        (at_local(DAY, 7, 59, 59), at_local(DAY, 0), at_local(DAY, 8)),
        (at_local(DAY, 8, 0), at_local(DAY, 8), at_local(DAY, 16)),
        (at_local(DAY, 15, 59, 59), at_local(DAY, 8), at_local(DAY, 16)),
        (at_local(DAY, 16, 0), at_local(DAY, 16), at_local(DAY + timedelta(days=1), 0)),
    ],
)
def test_the_shift_of_an_instant_at_its_boundaries(local: datetime, start: datetime, end: datetime) -> None:
    span = shift_of(local, PLAN, TZ)
    assert (span.start, span.end) == (start, end)


def test_a_night_shift_over_midnight_and_plans_that_do_not_tile_the_day() -> None:
    plan = parse_shifts("06:00-14:00, 14:00-22:00, 22:00-06:00")
    span = shift_of(at_local(DAY, 1, 30), plan, TZ)
    assert (span.start, span.end) == (at_local(DAY - timedelta(days=1), 22), at_local(DAY, 6))
    assert span.label == f"{(DAY - timedelta(days=1)).isoformat()} 22:00–06:00"
    for bad, why in [("08:00-16:00", "not a day"), ("08:00-17:00,16:00-08:00", "not a day"),
                     ("08:00-20:00,16:00-04:00", "gap or an overlap"), ("8-16", "HH:MM"), ("", "no shift"),
                     ("00:00-12:00,12:00-24:00,00:00-00:00", "whole day")]:  # fmt: skip
        with pytest.raises(ShiftError, match=why):
            parse_shifts(bad)


def test_a_shift_plan_that_does_not_tile_the_day_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridwall.settings import settings_from
    from store.handover import shift_plan

    monkeypatch.setenv("GW_SHIFTS", "07:00-19:00,19:00-07:00")
    assert [s.label for s in shift_plan()] == ["07:00–19:00", "19:00–07:00"]
    monkeypatch.setenv("GW_SHIFTS", "08:00-16:00,16:00-23:00")
    with pytest.raises(ShiftError, match="not a day"):
        settings_from("/tmp/gw-handover-settings", "sqlite://")


# -- the snapshot against the cases filed ------------------------------------------------------------------


def bucket(age: timedelta) -> str:
    h = age.total_seconds() / 3600
    return "lt4h" if h < 4 else "4to24h" if h < 24 else "1to3d" if h < 72 else "gt3d"


def open_counts(snap: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(s, b): n for s, cells in snap["open"]["by_stage"].items() for b, n in cells.items()}


def test_the_snapshot_counts_the_cases_filed(centre: Centre) -> None:
    c = centre
    now = c.clock.set(at_local(DAY, 10))
    span = shift_of(now, PLAN, TZ)
    with c.engine.connect() as conn:
        before = store.snapshot(conn, now, span.start, span.end)
    h = timedelta(hours=1)
    fresh = report(c, now - h)  # 待受理, < 4 h
    older = report(c, now - 10 * h)  # 待受理, 4–24 h
    verifying = report(c, now - 30 * h)  # 待核实 with its 核实 task out, 1–3 days
    step(c, "acceptor", verifying["id"], "accept", now - 29 * h)
    urged = report(c, now - 100 * h)  # 处置中 with a 督办单 open, > 3 days
    step(c, "acceptor", urged["id"], "accept", now - 99 * h)
    step(c, "supervisor", urged["id"], "verify", now - 98 * h, confirmed=True)
    step(c, "shift_leader", urged["id"], "file", now - 97 * h)
    step(c, "dispatcher", urged["id"], "dispatch", now - 96 * h)
    step(c, "shift_leader", urged["id"], "urge", now - 2 * h, opinion="请尽快处置")
    in_shift = report(c, now - timedelta(minutes=30), EMERGENCY)  # an emergency of this shift (08–16)
    before_shift = report(c, now - 3 * h, EMERGENCY)  # 07:00: the night shift's
    near_end = report(c, now - timedelta(minutes=12))  # 受理 has 15 min: 3 min (20 %) left
    calm = report(c, now - timedelta(minutes=5))  # 10 min (67 %) left
    mine = [fresh, older, verifying, urged, in_shift, before_shift, near_end, calm]
    ages = [h, 10 * h, 30 * h, 100 * h, h / 2, 3 * h, timedelta(minutes=12), timedelta(minutes=5)]
    reported = {x["id"]: now - age for x, age in zip(mine, ages, strict=True)}

    a = login_http(c.url, "sl-a", PASSWORD)
    r = desk_post(a, c, {"action": "handover_open", "opinion": "东四路口井盖待复查", "id": "open-10"})
    assert r.status_code == 200 and r.json()["accepted"] == ["open-10"], r.text
    with c.engine.connect() as conn:
        ho = store.for_shift(conn, span.start)
    assert ho is not None and ho.created_by == "sl-a" and ho.pending and ho.notes == "东四路口井盖待复查"
    assert (ho.shift_start, ho.shift_end) == (at_local(DAY, 8), at_local(DAY, 16))
    snap = ho.snapshot
    views = {x["id"]: view(c, x["id"]) for x in mine}
    # open cases by stage and age: the snapshot grew by exactly the cases filed here
    expected: dict[tuple[str, str], int] = {}
    for cid, v in views.items():
        assert v["open"]
        key = (v["stage"], bucket(now - reported[cid]))
        expected[key] = expected.get(key, 0) + 1
    grown = {k: n - open_counts(before).get(k, 0) for k, n in open_counts(snap).items()}
    assert {k: n for k, n in grown.items() if n} == expected
    assert snap["open"]["total"] - before["open"]["total"] == len(mine)
    assert expected[("待核实", "1to3d")] == 1 and expected[("处置中", "gt3d")] == 1
    # overdue: the API's deadline of the running stage is past
    listed = {x["id"] for x in snap["overdue"]["cases"]}
    late = {cid for cid, v in views.items() if v["deadline"] and datetime.fromisoformat(v["deadline"]) < now}
    assert late and late <= listed and not ({cid for cid in views} - late) & listed
    # near the deadline: the stage timer that runs, its time left under a quarter, not late yet
    near = set()
    for cid, v in views.items():
        for tm in v["deadlines"].values():
            if tm["ended_at"] is None and not tm["paused"] and cid not in late:
                t0, t1 = datetime.fromisoformat(tm["started_at"]), datetime.fromisoformat(tm["deadline"])
                if t1 >= now and (t1 - now) < 0.25 * (t1 - t0):
                    near.add(cid)
    assert {x["id"] for x in snap["near_deadline"]["cases"]} & set(views) == near
    assert near_end["id"] in near and calm["id"] not in near
    # emergencies of this shift only
    emergencies = {x["id"] for x in snap["emergencies"]["cases"]}
    assert in_shift["id"] in emergencies and before_shift["id"] not in emergencies
    # the 核实 task out and the open 督办单
    assert any(x["case_id"] == verifying["id"] and x["kind"] == "verify" for x in snap["tasks"]["items"])
    assert not any(x["case_id"] == fresh["id"] for x in snap["tasks"]["items"])
    assert any(x["case_id"] == urged["id"] and x["note"] == "请尽快处置" for x in snap["orders"]["items"])
    assert snap["blind_spots"] is None  # issue 21 part 1 not built: never a number
    # the desk page shows the shift as handed over and the handover waiting
    boss = login_http(c.url, "boss-h", PASSWORD)
    tree = page(boss, c, "/desk/handover")
    assert "本班次已交班" in by_id(tree, ids.HANDOVER_DRAFT) and "甲班长" in by_id(tree, ids.HANDOVER_DRAFT)
    assert "东四路口井盖待复查" in by_id(tree, ids.HANDOVER_PENDING)
    assert "接班确认" not in _texts(tree.get("response", tree))  # a leader sees it, does not act


def refused(r: requests.Response, status: int, reason: str) -> None:
    assert r.status_code == status and r.json()["error"] == reason, r.text


def test_refusals_by_name(centre: Centre) -> None:
    c = centre
    c.clock.set(at_local(DAY, 17))  # the 16–24 shift
    acc, boss = login_http(c.url, "acc-h", PASSWORD), login_http(c.url, "boss-h", PASSWORD)
    a, b, third = (login_http(c.url, u, PASSWORD) for u in ("sl-a", "sl-b", "sl-c"))
    refused(desk_post(acc, c, {"action": "handover_open", "id": "x1"}), 403, "not_allowed")
    refused(desk_post(boss, c, {"action": "handover_open", "id": "x2"}), 403, "not_allowed")
    refused(
        desk_post(a, c, {"action": "handover_open", "id": "x3", "opinion": "长" * 2001}), 413, "too_large"
    )
    ok = desk_post(a, c, {"action": "handover_open", "id": "open-17", "opinion": "夜班注意雨情"})
    assert ok.status_code == 200 and ok.json()["accepted"], ok.text
    again = desk_post(a, c, {"action": "handover_open", "id": "open-17", "opinion": "夜班注意雨情"})
    assert again.status_code == 200 and again.json()["duplicates"] == ["open-17"], again.text
    refused(desk_post(b, c, {"action": "handover_open", "id": "open-17b"}), 409, "handover_exists")
    with c.engine.connect() as conn:
        ho = store.for_shift(conn, at_local(DAY, 16))
    assert ho is not None
    hid = str(ho.id)
    refused(
        desk_post(a, c, {"action": "handover_ack", "case_id": hid, "id": "ack-self"}), 403, "self_acknowledge"
    )
    refused(
        desk_post(boss, c, {"action": "handover_ack", "case_id": hid, "id": "ack-boss"}), 403, "not_allowed"
    )
    refused(
        desk_post(b, c, {"action": "handover_ack", "case_id": "999999", "id": "ack-x"}),
        404,
        "unknown_handover",
    )
    long = {"action": "handover_ack", "case_id": hid, "id": "ack-long", "opinion": "长" * 2001}
    refused(desk_post(b, c, long), 413, "too_large")
    took = desk_post(b, c, {"action": "handover_ack", "case_id": hid, "id": "ack-b", "opinion": "已接班"})
    assert took.status_code == 200 and took.json()["accepted"] == ["ack-b"], took.text
    repeat = desk_post(b, c, {"action": "handover_ack", "case_id": hid, "id": "ack-b", "opinion": "已接班"})
    assert repeat.status_code == 200 and repeat.json()["duplicates"] == ["ack-b"], repeat.text
    refused(desk_post(third, c, {"action": "handover_ack", "case_id": hid, "id": "ack-c"}), 409,
            "already_acknowledged")  # fmt: skip
    with c.engine.connect() as conn:
        done = store.get(conn, ho.id)
    assert done is not None and done.acknowledged_by == "sl-b" and done.ack_notes == "已接班"


def test_across_midnight_the_wall_line_and_the_history(centre: Centre) -> None:
    c = centre
    day2, day3 = DAY + timedelta(days=2), DAY + timedelta(days=3)
    c.clock.set(at_local(day2, 23, 59, 30))
    a, b = login_http(c.url, "sl-a", PASSWORD), login_http(c.url, "sl-b", PASSWORD)
    r = desk_post(a, c, {"action": "handover_open", "id": "open-2359", "opinion": "零点前交班：积水点两处"})
    assert r.status_code == 200 and r.json()["accepted"], r.text
    with c.engine.connect() as conn:
        ho = store.for_shift(conn, at_local(day2, 16))
    assert ho is not None and (ho.shift_start, ho.shift_end) == (at_local(day2, 16), at_local(day3, 0))
    stats = c.srv.core.live.snapshot(c.clock()).stats or {}
    line = stats.get("handover") or {}
    assert line.get("id") == ho.id and line.get("ack_at") is None and line.get("by") == "甲班长"  # 待接班
    c.clock.set(at_local(day3, 0, 0, 10))  # the next shift began 10 s ago
    tree = page(b, c, "/desk/handover")
    draft = by_id(tree, ids.HANDOVER_DRAFT)
    assert f"{day3.isoformat()} 00:00–08:00" in draft and "交班草稿" in draft and "零点前交班" not in draft
    assert "零点前交班" in by_id(tree, ids.HANDOVER_PENDING)
    took = desk_post(b, c, {"action": "handover_ack", "case_id": str(ho.id), "id": "ack-0000"})
    assert took.status_code == 200 and took.json()["accepted"], took.text
    stats = c.srv.core.live.snapshot(c.clock()).stats or {}
    line = stats.get("handover") or {}
    assert line.get("id") == ho.id and line.get("ack_by") == "乙班长"  # the wall's line, at once
    assert datetime.fromisoformat(line["ack_at"]) == at_local(day3, 0, 0, 10)
    with c.engine.connect() as conn:
        assert [h.notes for h in store.search(conn, TZ, text="雨情")] == ["夜班注意雨情"]
        took_over = store.search(conn, TZ, person="乙班长")
        assert [h.id for h in took_over] == [h.id for h in store.search(conn, TZ, person="sl-b")]
        assert {h.notes for h in took_over} == {"夜班注意雨情", "零点前交班：积水点两处"}
        assert [h.notes for h in store.search(conn, TZ, start=DAY, end=DAY)] == [
            "夜班注意雨情",
            "东四路口井盖待复查",
        ]
        assert [h.id for h in store.search(conn, TZ, start=day2)] == [ho.id]
        assert store.search(conn, TZ, text="100%_\\") == []  # LIKE's wildcards are taken literally
    found = page(b, c, "/desk/handover", "?q=%E9%9B%A8%E6%83%85")  # ?q=雨情
    rows = by_id(found, ids.HANDOVER_HISTORY)
    assert "夜班注意雨情" in rows and "积水点" not in rows and "井盖" not in rows


def test_the_printable_page_and_the_pdf_hold_the_chinese(centre: Centre) -> None:
    from pypdf import PdfReader

    c = centre
    with c.engine.connect() as conn:
        ho = store.search(conn, TZ, text="井盖待复查")[0]
    boss, acc = login_http(c.url, "boss-h", PASSWORD), login_http(c.url, "acc-h", PASSWORD)
    printable = boss.get(f"{c.url}/desk/handover/{ho.id}/print", timeout=30)
    assert (
        printable.status_code == 200 and "@page" in printable.text and "东四路口井盖待复查" in printable.text
    )
    assert "暂不可用" in printable.text  # blind spots: said as not available
    pdf = boss.get(f"{c.url}/desk/handover/{ho.id}.pdf", timeout=120)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.content)).pages)
    for words in ("交接班记录", "东四路口井盖待复查", "在办案件", "超期案件", "甲班长", "巡查盲区"):
        assert words in text, words
    assert acc.get(f"{c.url}/desk/handover/{ho.id}.pdf", timeout=30).status_code == 403
    assert boss.get(f"{c.url}/desk/handover/99999999/print", timeout=30).status_code == 404
    tree = page(acc, c, "/desk/handover")
    assert "交接班页面仅限" in _texts(tree)
    detail = page(boss, c, f"/desk/handover/{ho.id}")
    assert "东四路口井盖待复查" in by_id(detail, ids.HANDOVER_DETAIL)
    english = page(boss, c, f"/desk/handover/{ho.id}", "?lang=en")
    assert "Open cases by stage and age" in by_id(english, ids.HANDOVER_DETAIL)
    assert "Printable" in by_id(english, ids.HANDOVER_DETAIL)
    assert (
        "Shift handover record" in boss.get(f"{c.url}/desk/handover/{ho.id}/print?lang=en", timeout=30).text
    )
