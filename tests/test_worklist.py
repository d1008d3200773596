"""Work lists and nearest supervisors: the pure parts of the desk's actions (issue 8 items 5–6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dashboard.actions import nearest
from dashboard.worklist import worklist
from domain.lifecycle import Policy, Role
from domain.supervisor import distance_m
from feeds.live import LiveCase, LiveSupervisor

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def case(cid: str, status: str, due_min: float | None, request: str | None = None) -> LiveCase:
    return LiveCase(
        id=cid, kind="event", class_code="0101", stage="-", status=status, source="hotline", emergency=False,
        department=None, grid=None, street=None, lon=None, lat=None, reported_at=T0, updated_at=T0,
        deadline=None if due_min is None else T0 + timedelta(minutes=due_min), request=request,
    )  # fmt: skip


CASES = [
    case("A", "reported", 30),
    case("B", "reported", -5),  # overdue: first
    case("C", "verifying", 10),
    case("D", "to_file", 20),
    case("E", "to_close", 5),
    case("F", "to_dispatch", 15),
    case("G", "handling", 100, request="request_extension"),
    case("H", "handling", 1),  # nothing to decide
    case("I", "suspended", None),  # no running clock: last
    case("J", "to_check", 40),
]


def test_each_role_gets_its_items_nearest_deadline_first() -> None:
    got = {role: [(i.case.id, i.todo, i.quick) for i in worklist(role, CASES)] for role in
           ("acceptor", "shift_leader", "dispatcher", "leader", "nobody")}  # fmt: skip
    assert got["acceptor"] == [
        ("B", "accept", ("accept",)),
        ("C", "verify", ()),
        ("A", "accept", ("accept",)),
        ("J", "check", ()),
    ]
    assert got["shift_leader"] == [("E", "close", ("close",)), ("D", "file", ("file",))]
    assert got["dispatcher"] == [
        ("F", "dispatch", ("dispatch",)),
        ("G", "request", ("approve",)),
        ("I", "suspended", ("resume",)),
    ]
    assert got["leader"] == []  # a leader may look at any list and act on any case page
    assert got["nobody"] == []


def test_the_policy_decides_who_files_and_closes() -> None:
    yuncheng = Policy(file_roles=frozenset({Role.ACCEPTOR}), close_roles=frozenset({Role.ACCEPTOR}))
    ids = [i.case.id for i in worklist("acceptor", CASES, yuncheng)]
    assert ids == ["B", "E", "C", "D", "A", "J"]
    assert worklist("shift_leader", CASES, yuncheng) == []


def sup(sid: str, status: str, lon: float | None, lat: float | None) -> LiveSupervisor:
    return LiveSupervisor(id=sid, area=None, street=None, status=status, at=T0, lon=lon, lat=lat, grid=None)


def test_nearest_puts_supervisors_on_line_by_distance_and_never_offline_ones() -> None:
    here = (116.40, 39.91)
    sups = [
        sup("far", "on_duty", 116.43, 39.91),
        sup("near", "stationary", 116.401, 39.911),
        sup("closest-offline", "offline", 116.4, 39.9101),
        sup("astray", "out_of_area", 116.4001, 39.91),  # outside their area, but on line and nearest
        sup("mid", "on_duty", 116.41, 39.90),
        sup("nowhere", "on_duty", None, None),
    ]
    got = nearest(sups, *here, n=3)
    assert [c.id for c in got] == ["astray", "near", "mid"]
    assert got[1].distance_m == distance_m(*here, 116.401, 39.911)
    assert [c.id for c in nearest(sups, *here)] == ["astray", "near", "mid", "far"]


def test_the_two_centres_steps_are_on_the_dispatcher_s_and_the_acceptor_s_lists() -> None:
    """待审核 is the 指挥中心's (dispatcher) to review on the case page; 待派核查 the acceptor's to send."""
    more = [*CASES, case("K", "reviewing", 25), case("L", "to_send_check", 3)]
    dispatcher = [(i.case.id, i.todo, i.quick) for i in worklist("dispatcher", more)]
    assert dispatcher == [
        ("F", "dispatch", ("dispatch",)),
        ("K", "review", ()),  # pass or send back (with an opinion): on the case page
        ("G", "request", ("approve",)),
        ("I", "suspended", ("resume",)),
    ]
    acceptor = [(i.case.id, i.todo, i.quick) for i in worklist("acceptor", more)]
    assert acceptor[:2] == [("B", "accept", ("accept",)), ("L", "send_check", ("send_check",))]
    assert [i.case.id for i in worklist("shift_leader", more)] == ["E", "D"]


def test_a_department_s_list_has_its_dispatches_to_pass_on_its_handling_and_its_units_requests() -> None:
    """部门待办: a 街道分中心 dispatches on (二级派遣) and decides its units' requests; a unit handles."""

    def dept_case(cid: str, status: str, due: float, department: str, **more: str) -> LiveCase:
        return replace(case(cid, status, due, more.get("request")), department=department,
                       subcentre=more.get("subcentre"))  # fmt: skip

    cases = [
        dept_case("S", "sub_dispatching", 20, "9101", subcentre="9101"),
        dept_case("U", "handling", 60, "910101", subcentre="9101"),
        dept_case("R", "handling", 10, "910102", subcentre="9101", request="request_return"),
        dept_case("D", "handling", 5, "10"),
        dept_case("W", "handling", 7, "10", request="request_extension"),  # the centre decides it
        dept_case("T", "suspended", 0, "10"),
    ]

    def listed(department: str | None) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(i.case.id, i.todo, i.quick) for i in worklist("department", cases, None, department)]

    assert listed("9101") == [("R", "request", ("approve",)), ("S", "sub_dispatch", ())]
    assert listed("910101") == [("U", "handle", ())]
    assert listed("910102") == []  # its request waits for the sub-centre
    assert listed("10") == [("D", "handle", ())]
    assert [i for i, _, _ in listed(None)] == ["D", "R", "S", "U"]  # a leader looks at every department's
