"""Duplicate problems (issue 21): the class-dependent rule, the index, and the generator's
injected-duplicates knob."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import shapely

from domain.duplicates import DuplicateIndex, DuplicateRules, OpenReport, group
from domain.geo import spot_point

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
LON, LAT = 116.4170, 39.9280  # 东四
M_LAT = 1 / 111_195.0  # degrees of latitude per metre


def north(m: float) -> float:
    """The latitude ``m`` metres north of LAT."""
    return LAT + m * M_LAT


GEOMETRY = DuplicateRules(max_coincidence=1.0)  # the distance and time rule alone


def rep(i: str, lat: float = LAT, *, kind: str = "event", code: str = "0505", at: timedelta = timedelta(0),
        obj: str | None = None) -> OpenReport:  # fmt: skip
    """A report at LON and ``lat``."""
    return OpenReport(i, kind, code, LON, lat, T0 + at, obj)


def test_event_within_50_m_and_24_h_is_a_candidate() -> None:
    idx = DuplicateIndex(GEOMETRY)
    idx.add(rep("a"))
    found = idx.candidates(rep("b", north(45), at=timedelta(hours=23)))
    assert [c.id for c in found] == ["a"]
    assert math.isclose(found[0].distance_m, 45, abs_tol=0.5)
    assert idx.candidates(rep("c", north(56))) == []  # too far
    assert idx.candidates(rep("d", north(10), at=timedelta(hours=25))) == []  # too late
    assert idx.candidates(rep("e", north(10), code="0506")) == []  # another class
    assert idx.candidates(rep("f", north(10), at=-timedelta(minutes=1))) == []  # earlier than "a"


def test_area_classes_reach_further_and_components_less() -> None:
    idx = DuplicateIndex(DuplicateRules(area_m=100.0, max_coincidence=1.0))  # a city that widens litter
    idx.add(rep("litter", code="0102"))
    idx.add(rep("cover", kind="component", code="0101"))
    assert [c.id for c in idx.candidates(rep("x", north(90), code="0102"))] == ["litter"]
    assert idx.candidates(rep("y", north(40), kind="component", code="0101")) == []
    assert [c.id for c in idx.candidates(rep("z", north(25), kind="component", code="0101"))] == ["cover"]
    rules = DuplicateRules(radius_by_class={"component:0101": 60.0}, max_coincidence=1.0)
    wide = DuplicateIndex(rules)
    wide.add(rep("cover", kind="component", code="0101"))
    assert [c.id for c in wide.candidates(rep("y", north(40), kind="component", code="0101"))] == ["cover"]


def test_a_named_object_is_one_problem_wherever_the_points_are() -> None:
    idx = DuplicateIndex(GEOMETRY)
    idx.add(rep("a", kind="component", code="0101", obj="1101010101000001"))
    far = rep("b", north(400), kind="component", code="0101", obj="1101010101000001")
    near_other = rep("c", north(5), kind="component", code="0101", obj="1101010101000002")
    found = idx.candidates(far)
    assert [c.id for c in found] == ["a"] and found[0].same_object
    assert idx.candidates(near_other) == []  # another object, however near
    # a report without an object matches a named one nearby (the caller did not know the id)
    assert [c.id for c in idx.candidates(rep("d", north(5), kind="component", code="0101"))] == ["a"]


def test_nearest_first_and_discard() -> None:
    idx = DuplicateIndex(GEOMETRY)
    idx.add(rep("far", north(40)))
    idx.add(rep("near", north(5)))
    assert [c.id for c in idx.candidates(rep("new"))] == ["near", "far"]
    idx.discard("near")
    idx.discard("unknown")
    assert [c.id for c in idx.candidates(rep("new"))] == ["far"]
    assert len(idx) == 1 and "far" in idx
    assert idx.expire(T0 + timedelta(hours=25)) == 1 and len(idx) == 0


def test_group_replays_in_time_order() -> None:
    reports = [
        rep("b", north(10), at=timedelta(hours=1)),
        rep("a"),
        rep("c", north(300), at=timedelta(hours=2)),
    ]
    assert group(reports, GEOMETRY) == {"b": "a"}


def test_spot_point_stays_in_its_polygon() -> None:
    tri = shapely.Polygon([(116.0, 39.0), (116.001, 39.0), (116.0, 39.001)])
    inside = spot_point(tri, (0.1, 0.1))
    assert math.isclose(inside[0], 116.0001) and math.isclose(inside[1], 39.0001)
    moved = shapely.Point(*spot_point(tri, (0.9, 0.9)))  # outside the triangle: onto its edge
    assert tri.distance(moved) < 1e-9


def test_a_supervisor_never_repeats_their_own_report() -> None:
    idx = DuplicateIndex(GEOMETRY)
    idx.add(OpenReport("a", "event", "0505", LON, LAT, T0, reporter="sup-0001"))
    own = OpenReport("b", "event", "0505", LON, north(5), T0 + timedelta(hours=1), reporter="sup-0001")
    other = OpenReport("c", "event", "0505", LON, north(5), T0 + timedelta(hours=1), reporter="sup-0002")
    assert idx.candidates(own) == []
    assert [c.id for c in idx.candidates(other)] == ["a"]


def test_where_a_class_is_frequent_only_a_close_pair_is_a_candidate() -> None:
    """28 days of 道路不洁 every two hours within 100 m here, none over there (only another class, 2 km
    away): a report 40 m and 3 h from an earlier one is a coincidence here and a candidate there; 10 m
    and 15 minutes is a candidate everywhere."""
    busy = DuplicateIndex()
    t = T0 - timedelta(days=28)
    i = 0
    while t < T0:
        off = (i % 10) * 10.0
        busy.add(OpenReport(f"h{i}", "event", "0104", LON, north(off), t))
        busy.discard(f"h{i}")  # fixed: counted in the rates, not open
        t += timedelta(hours=2)
        i += 1
    quiet = DuplicateIndex()
    t = T0 - timedelta(days=28)
    while t < T0:
        quiet.add(OpenReport(f"q{t:%j%H}", "event", "0505", LON + 0.02, LAT, t))
        t += timedelta(hours=2)
    for idx in (busy, quiet):
        idx.add(OpenReport("old", "event", "0104", LON, LAT, T0))
    late_far = OpenReport("x", "event", "0104", LON, north(40), T0 + timedelta(hours=3))
    soon_near = OpenReport("y", "event", "0104", LON, north(10), T0 + timedelta(minutes=15))
    assert busy.candidates(late_far) == []
    assert [c.id for c in quiet.candidates(late_far)] == ["old"]
    found = busy.candidates(soon_near)
    assert [c.id for c in found] == ["old"] and 0 < found[0].coincidence <= busy.rules.max_coincidence
