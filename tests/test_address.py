"""domain.address: the normaliser (a table of pairs), the parser, and the gazetteer's placement rules."""

from __future__ import annotations

import pytest

from domain.address import (
    Address,
    Gazetteer,
    Prefixes,
    chinese_number,
    distinct_names,
    normalise,
    parse,
)

DONGCHENG = Prefixes.of("东城区", "北京市", "北京市", ["东四街道", "朝阳门街道"], ["东四社区"])

PAIRS = [
    # width, spaces, punctuation, bracketed notes
    ("东四十条３５号", "东四十条35号"),
    ("东四十条　35 号", "东四十条35号"),
    ("东四十条35号（近地铁站）", "东四十条35号"),
    ("东四十条，35号。", "东四十条35号"),
    ("东四十条３#楼", "东四十条3号楼"),
    # the division prefixes of the district (from its names, not hard-coded)
    ("北京市东城区东四十条35号", "东四十条35号"),
    ("北京东城区东四十条35号", "东四十条35号"),
    ("北京东城东四十条35号", "东四十条35号"),
    ("东城区东四街道东四十条35号", "东四十条35号"),
    ("北京市东城区东四社区东四十条35号", "东四十条35号"),
    # a road that starts like a prefix keeps its name
    ("北京站东街5号", "北京站东街5号"),
    ("北京市东城区北京站东街5号", "北京站东街5号"),
    ("东四十条", "东四十条"),
    # 门牌 numbers in Chinese or Arabic; 号院, 甲/乙
    ("东四十条三十五号", "东四十条35号"),
    ("东四十条十号", "东四十条10号"),
    ("东四十条二十号", "东四十条20号"),
    ("东四十条一百零五号", "东四十条105号"),
    ("东四十条一〇五号", "东四十条105号"),
    ("东四十条两百号", "东四十条200号"),
    ("东四十条35号院", "东四十条35号院"),
    ("东四十条甲1号", "东四十条甲1号"),
    ("东四十条乙十二号院", "东四十条乙12号院"),
    ("东四十条35-37号", "东四十条35号"),
    ("东四十条35", "东四十条35号"),
    # a road's own numerals are its name (东四十条 is not 东40条); Arabic ones in a name read as Chinese
    ("东四十条", "东四十条"),
    ("东四3条10号", "东四三条10号"),
    ("二条十号", "二条10号"),
    ("东四十条35号院3号楼", "东四十条35号院3号楼"),
]


@pytest.mark.parametrize(("given", "expected"), PAIRS)
def test_normalise(given: str, expected: str) -> None:
    assert normalise(given, DONGCHENG) == expected


def test_another_district_takes_its_own_prefixes() -> None:
    xihu = Prefixes.of("西湖区", "杭州市", "浙江省", ["北山街道"])
    assert normalise("浙江省杭州市西湖区北山街道保俶路5号", xihu) == "保俶路5号"
    assert normalise("杭州市西湖区保俶路五号", xihu) == "保俶路5号"
    assert normalise("北京市东城区东四十条35号", xihu) == "北京市东城区东四十条35号"  # not this district's


def test_parse_splits_name_number_and_suffix() -> None:
    p = parse("北京市东城区东四十条甲三十五号院3号楼", DONGCHENG)
    assert (p.name, p.number, p.qualifier, p.suffix, p.door) == ("东四十条", 35, "甲", "院3号楼", "甲35")
    assert parse("天坛公园", DONGCHENG).number is None


@pytest.mark.parametrize(
    ("text", "value"), [("35", 35), ("三十五", 35), ("十", 10), ("二十", 20), ("一百零五", 105), ("百", None)]
)
def test_chinese_numbers(text: str, value: int | None) -> None:
    assert chinese_number(text) == value


def test_direction_numeral_and_road_type_tell_roads_apart() -> None:
    assert distinct_names("安定门东滨河路", "安定门西滨河路")  # 86 % alike, another road
    assert distinct_names("东四十条", "东四九条")
    assert distinct_names("光明路", "光明街")
    assert not distinct_names("王府井大街", "王府井大街")
    assert not distinct_names("东交民巷", "东郊民巷")  # a typo of the same road


def _gazetteer(rows: list[tuple[str, float, float]]) -> Gazetteer:
    entries = [Address(i + 1, text, lon, lat, parsed=parse(text, DONGCHENG)) for i, (text, lon, lat) in
               enumerate(rows)]  # fmt: skip
    return Gazetteer(entries, DONGCHENG)


G = _gazetteer(
    [
        ("东四十条35号", 116.4271, 39.9321),
        ("东四十条36号", 116.4272, 39.9324),
        ("东四十条甲1号", 116.4200, 39.9320),
        ("安定门东滨河路5号", 116.4100, 39.9500),
        ("北京站东街5号", 116.4300, 39.9030),
        ("天坛公园", 116.4100, 39.8820),
        ("和平里北街8号", 116.4150, 39.9600),
        ("和平里北街8号院", 116.4150, 39.9601),  # the same place written twice: near, not ambiguous
        ("光明胡同9号", 116.4400, 39.8900),
        ("光明胡同9号院", 116.4000, 39.9700),  # far from the first: a person decides
    ]
)


@pytest.mark.parametrize(
    ("query", "placed_at"),
    [
        ("北京市东城区东四十条三十五号院", "东四十条35号"),
        ("东四十条 ３５号", "东四十条35号"),
        ("东四十条甲一号", "东四十条甲1号"),
        ("北京站东街五号", "北京站东街5号"),
        ("天坛公园", "天坛公园"),
        ("和平里北街8号", "和平里北街8号"),
        ("安定门东滨河路五号", "安定门东滨河路5号"),
        ("安定门东宾河路5号", "安定门东滨河路5号"),  # one character mistyped in a long name
    ],
)
def test_an_address_in_the_gazetteer_is_placed(query: str, placed_at: str) -> None:
    g = G.geocode(query)
    assert g.placed is not None, g
    assert g.placed.address.text == placed_at
    assert g.placed.score >= 0.85


@pytest.mark.parametrize(
    "query",
    [
        "安定门西滨河路5号",  # another road, 86 % alike
        "东四十条37号",  # a 门牌 not in the gazetteer: candidates, never a guess between numbers
        "东四十条500号",  # far beyond the road's numbers
        "东四十条1号",  # 甲1号 is not 1号
        "东四十条",  # a road, no 门牌
        "幸福花园路12号",  # no such road
        "光明胡同9号",  # two places with this 门牌, far apart
        "大和平里北街8号",  # a character more: another road
        "平里北街8号",  # a character less
    ],
)
def test_an_address_not_in_the_gazetteer_is_never_placed(query: str) -> None:
    g = G.geocode(query)
    assert g.placed is None, g


def test_candidates_of_a_missing_number_are_its_neighbours_on_the_road() -> None:
    g = G.geocode("东四十条37号")
    assert [c.address.text for c in g.candidates[:2]] == ["东四十条36号", "东四十条35号"]
    assert all(c.score < 0.85 for c in g.candidates)


def test_the_threshold_is_configurable() -> None:
    strict = Gazetteer(G.addresses, DONGCHENG, threshold=1.01)
    assert strict.geocode("东四十条35号").placed is None
    assert G.geocode("东四十条35号").placed is not None


def test_reverse_gives_the_nearest_address_and_its_distance() -> None:
    hit = G.reverse(116.4271, 39.93215)
    assert hit is not None
    address, metres = hit
    assert address.text == "东四十条35号"
    assert 4 < metres < 7  # 0.00005° of latitude
    assert G.reverse(116.0, 39.0, max_m=1000) is None
    assert Gazetteer([], DONGCHENG).reverse(116.4, 39.9) is None


# -- the LOCATE command (pure lifecycle) -----------------------------------------------------------------

from datetime import UTC, datetime, timedelta  # noqa: E402

from domain.catalogue import load_catalogue  # noqa: E402
from domain.lifecycle import (  # noqa: E402
    Accepted,
    Action,
    Actor,
    Command,
    Context,
    Rejection,
    Role,
    Status,
    apply,
    state_from_json,
    state_to_json,
)
from domain.workcalendar import load_calendar  # noqa: E402

CTX = Context(catalogue=load_catalogue("cjt214"), calendar=load_calendar())
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
HOTLINE = Actor("api:hotline", Role.CALL_CENTER)
ACCEPTOR = Actor("acc-1", Role.ACCEPTOR)
POINT = {"lon": 116.42, "lat": 39.93, "grid": "110101001001001", "located_by": "point"}


def _reported(**data: object) -> object:
    body = {"kind": "event", "class_code": "0101", "source": "hotline", **data}
    out = apply(None, Command(Action.REPORT, "C1", HOTLINE, data=body), T0, CTX)
    assert isinstance(out, Accepted)
    return out.state


def _locate(state: object, actor: Actor = ACCEPTOR, data: dict[str, object] | None = None) -> object:
    cmd = Command(Action.LOCATE, "C1", actor, data=POINT if data is None else data)
    return apply(state, cmd, T0 + timedelta(minutes=3), CTX)  # type: ignore[arg-type]


def test_locate_places_a_needs_location_case_in_its_stage() -> None:
    before = _reported(needs_location=True, address="东四十条35号")
    assert before.needs_location  # type: ignore[attr-defined]
    out = _locate(before)
    assert isinstance(out, Accepted)
    assert not out.state.needs_location and out.state.status is Status.REPORTED
    assert out.state.timers == before.timers  # type: ignore[attr-defined]
    assert out.events[0].action is Action.LOCATE and out.events[0].data["grid"] == POINT["grid"]
    assert state_from_json(state_to_json(out.state)) == out.state
    assert state_from_json(state_to_json(before)) == before  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state_of", "actor", "data", "rule"),
    [
        (lambda: _reported(needs_location=True), HOTLINE, None, "wrong_role"),
        (lambda: _reported(needs_location=True), Actor("sl", Role.SHIFT_LEADER), None, "wrong_role"),
        (lambda: _reported(), ACCEPTOR, None, "location_known"),
        (lambda: _reported(needs_location=True), ACCEPTOR, {}, "missing_location"),
        (lambda: _reported(needs_location=True), ACCEPTOR, {"grid": "110101001001001"}, "missing_location"),
        (lambda: _reported(needs_location=True), ACCEPTOR, {**POINT, "lon": True}, "missing_location"),
    ],
)
def test_locate_refusals_name_the_rule(state_of: object, actor: Actor, data: object, rule: str) -> None:
    out = _locate(state_of(), actor, data)  # type: ignore[operator, arg-type]
    assert isinstance(out, Rejection) and out.rule.value == rule, out


def test_locate_only_while_the_case_waits_to_be_accepted() -> None:
    state = _reported(needs_location=True)
    accepted = apply(state, Command(Action.ACCEPT, "C1", ACCEPTOR), T0 + timedelta(minutes=1), CTX)  # type: ignore[arg-type]
    assert isinstance(accepted, Accepted) and accepted.state.status is Status.VERIFYING
    out = _locate(accepted.state)
    assert isinstance(out, Rejection) and out.rule.value == "wrong_status"


# -- the live state follows a 定位 (memory and Redis alike) -----------------------------------------------


def test_the_live_state_moves_a_located_case_to_its_grid(redis_url: str) -> None:
    """A case reported without a point (no grid) and then located: the open count is the new grid's,
    in the memory state and in the Redis one (its Lua script), and the case carries the point."""
    import uuid
    from zoneinfo import ZoneInfo

    from feeds.live import MemoryLiveState, Place
    from feeds.redis_live import RedisLiveState, connect

    tz = ZoneInfo("Asia/Shanghai")
    reported = apply(None, Command(Action.REPORT, "C1", HOTLINE, data={"kind": "event", "class_code": "0101",
                                   "source": "hotline", "needs_location": True}), T0, CTX)  # fmt: skip
    assert isinstance(reported, Accepted)
    located = _locate(reported.state)
    assert isinstance(located, Accepted)
    grid = str(POINT["grid"])
    r = connect(redis_url)
    prefix = f"gwtest-locate-{uuid.uuid4().hex[:10]}"
    try:
        red = RedisLiveState(r, prefix=prefix, tz=tz, catalogue=CTX.catalogue, areas={}, area_of_grid={},
                             now=T0)  # fmt: skip
        mem = MemoryLiveState(tz=tz, catalogue=CTX.catalogue, areas={}, area_of_grid={}, now=T0)
        for live in (mem, red):
            live.apply_case(reported.state, reported.events, Place(None, None, None, None))
            live.apply_case(located.state, located.events, Place(grid, grid[:9], 116.42, 39.93))
        red.tick(T0 + timedelta(minutes=4))
        for live in (mem, red):
            case = live.open_case("C1")
            assert case is not None and (case.grid, case.lon) == (grid, 116.42), live
            count = live.grid_count(grid)
            assert count is not None and count.open == 1, live
    finally:
        keys = list(r.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


@pytest.mark.parametrize(
    "text", ["路" + "9" * 40, "9" * 200 + "号", "东四" + "1" * 17 + "条", "甲" + "0" * 30 + "号院", "１" * 50]
)
def test_long_digit_runs_parse_without_failing(text: str) -> None:
    """The fuzz's Open311 address_string of 17+ digits made cn2an raise (a 500): such a run is no road's
    number and stays as it is."""
    parsed = parse(text, DONGCHENG)
    assert isinstance(parsed.name, str)
