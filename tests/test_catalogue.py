"""The 部件/事件 catalogue: both shipped orderings, time limits, instance codes, named rejections.

Expected classes and counts come from domain.md §1.2 (the CJ/T 214 0101…0606 部件 list and the
Yuncheng GB/T 30428.2 lists), not from the data files.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from domain.catalogue import (
    CLASS_COLUMNS,
    DATA_DIR,
    EDITIONS,
    CaseKind,
    Catalogue,
    CatalogueError,
    component_instance_code,
    load_catalogue,
    load_departments,
    parse_component_instance_code,
)
from domain.timelimit import LimitUnit, TimeLimit

C, E = CaseKind.COMPONENT, CaseKind.EVENT

# (kind, major code) → (major name, number of minor classes), per domain.md §1.2.
EXPECTED_MAJORS: dict[str, dict[tuple[CaseKind, str], tuple[str, int]]] = {
    "cjt214": {
        (C, "01"): ("公用设施", 38),  # 0101…0138
        (C, "02"): ("道路交通", 17),  # 0201…0217, 0202 from the Beijing client
        (C, "03"): ("市容环境", 10),
        (C, "04"): ("园林绿化", 10),
        (C, "05"): ("房屋土地", 3),
        (C, "06"): ("其他设施", 5),  # 0601…0604, 0606
        (E, "01"): ("市容环境", 21),
        (E, "02"): ("宣传广告", 7),
        (E, "03"): ("施工管理", 12),
        (E, "04"): ("突发事件", 10),
        (E, "05"): ("街面秩序", 14),
    },
    "gbt30428": {
        (C, "01"): ("公用设施", 29),
        (C, "02"): ("道路交通设施", 15),
        (C, "03"): ("市容环境设施", 10),
        (C, "04"): ("园林绿化设施", 9),
        (C, "05"): ("其他部件", 6),
        (E, "01"): ("市容环境", 34),
        (E, "02"): ("宣传广告", 7),
        (E, "03"): ("施工管理", 12),
        (E, "04"): ("街面秩序", 6),
        (E, "05"): ("突发事件", 9),
        (E, "06"): ("其他事件", 3),
    },
}

CJT214_COMPONENT_SAMPLES = {
    "0101": "上水井盖",
    "0104": "雨水箅子",
    "0114": "无主井盖",
    "0138": "治安岗亭",
    "0202": "停车咪表",
    "0213": "路名牌",
    "0301": "公共厕所",
    "0305": "垃圾箱",
    "0401": "古树名木",
    "0410": "喷泉",
    "0501": "宣传栏",
    "0502": "人防工事",
    "0601": "重大危险源",
    "0606": "防洪(汛)墙",
}
GBT_COMPONENT_SAMPLES = {
    "0114": "园林井盖",
    "0126": "沟槽盖板",
    "0157": "露天燃气管道",
    "0211": "限高架(杆)",
    "0305": "垃圾箱(果皮箱、桶)",
    "0397": "烟头收集器",
    "0508": "防汛墙",
}
GBT_EVENT_SAMPLES = {
    "0110": "暴露生活垃圾",
    "0192": "垃圾满溢",
    "0201": "非法小广告",
    "0312": "工地车轮夹带",
    "0410": "非机动车乱停放",
    "0501": "供水管道破裂",
    "0596": "高空坠物",
    "0698": "桥下空间管理",
}


@pytest.fixture(scope="module", params=sorted(EDITIONS))
def catalogue(request: pytest.FixtureRequest) -> Catalogue:
    """Each shipped edition, loaded once."""
    return load_catalogue(request.param)


@pytest.fixture(scope="module")
def cjt214() -> Catalogue:
    """The CJ/T 214-2007 ordering."""
    return load_catalogue("cjt214")


@pytest.fixture(scope="module")
def gbt30428() -> Catalogue:
    """The GB/T 30428.2 (Yuncheng) ordering."""
    return load_catalogue("gbt30428")


# --- shipped data ------------------------------------------------------------------------------


def test_major_and_minor_counts_match_domain_md(catalogue: Catalogue) -> None:
    """Every major class has the name and the number of minor classes domain.md lists."""
    expected = EXPECTED_MAJORS[catalogue.edition]
    seen: dict[tuple[CaseKind, str], tuple[str, int]] = {}
    for cls in catalogue.classes:
        name, n = seen.get((cls.kind, cls.major_code), (cls.major_name, 0))
        seen[(cls.kind, cls.major_code)] = (name, n + 1)
    assert seen == expected
    assert len(catalogue) == sum(n for _, n in expected.values())
    for kind in CaseKind:
        assert catalogue.majors(kind) == {m: name for (k, m), (name, _) in expected.items() if k is kind}


def test_cjt214_component_codes(cjt214: Catalogue) -> None:
    """The CJ/T 214 部件 numbering from domain.md: 0101 上水井盖, 0305 垃圾箱 …"""
    for code, name in CJT214_COMPONENT_SAMPLES.items():
        assert cjt214.minor(C, code).name == name
    assert cjt214.minor("部件", "0101").major_name == "公用设施"
    with pytest.raises(CatalogueError, match="unknown class code '0605'"):
        cjt214.minor(C, "0605")


def test_gbt30428_codes(gbt30428: Catalogue) -> None:
    """The Yuncheng numbering from domain.md, including local codes counting down from 99."""
    for code, name in GBT_COMPONENT_SAMPLES.items():
        assert gbt30428.minor(C, code).name == name
    for code, name in GBT_EVENT_SAMPLES.items():
        assert gbt30428.minor(E, code).name == name


def test_kinds_share_codes_but_not_classes(cjt214: Catalogue) -> None:
    """部件 0101 and 事件 0101 are different classes: the key is (kind, code)."""
    component, event = cjt214.minor(C, "0101"), cjt214.minor(E, "0101")
    assert component.name == "上水井盖" and event.name == "私搭乱建"
    assert component.key == (C, "0101") and event.key == (E, "0101")
    assert component.code == "0101"


def test_emergency_is_a_flag_not_a_code(cjt214: Catalogue, gbt30428: Catalogue) -> None:
    """突发事件 is event major 04 in CJ/T 214 and 05 in GB/T 30428.2; the flag marks both."""
    for cat, major in ((cjt214, "04"), (gbt30428, "05")):
        emergencies = cat.emergency_classes()
        assert emergencies
        assert {(c.kind, c.major_code, c.major_name) for c in emergencies} == {(E, major, "突发事件")}
        every_in_major = [c for c in cat.classes if c.kind is E and c.major_code == major]
        assert set(emergencies) == set(every_in_major)
        for cls in emergencies:
            assert all(cond.limit.unit is LimitUnit.URGENT_HOURS for cond in cls.conditions), cls.name
    assert cjt214.minor(E, "0401").emergency and not cjt214.minor(E, "0501").emergency
    assert gbt30428.minor(E, "0501").emergency and not gbt30428.minor(E, "0401").emergency
    assert cjt214.minor(E, "0402").name == "自来水管破裂"
    assert gbt30428.minor(E, "0501").name == "供水管道破裂"


def test_every_class_has_conditions_and_an_existing_department(catalogue: Catalogue) -> None:
    """Each minor class: 1–3 filing conditions with unique 2-digit codes, one existing department."""
    for cls in catalogue.classes:
        assert 1 <= len(cls.conditions) <= 3, cls
        codes = [c.code for c in cls.conditions]
        assert len(set(codes)) == len(codes)
        assert all(re.fullmatch(r"\d{2}", c) for c in codes)
        assert all(c.text and c.closing and c.limit.value > 0 for c in cls.conditions)
        assert cls.department in catalogue.departments, cls
        assert cls in catalogue.by_department(cls.department)
    assert sum(len(catalogue.by_department(d)) for d in catalogue.departments) == len(catalogue)


def test_condition_lookup_and_cover_example(cjt214: Catalogue) -> None:
    """The domain.md manhole-cover example: missing → 2紧急工作时, damaged → 4工作时, rattling → 2工作日."""
    limits = [str(c.limit) for c in cjt214.minor(C, "0101").conditions]
    assert limits == ["2紧急工作时", "4工作时", "2工作日"]
    assert cjt214.condition(C, "0101", "02").limit == TimeLimit(4, LimitUnit.WORK_HOURS)
    with pytest.raises(CatalogueError, match="unknown filing condition '09'"):
        cjt214.condition(C, "0101", "09")


def test_time_limits_are_mostly_working_days(catalogue: Catalogue) -> None:
    """Most 部件 conditions are counted in 工作日, as in Yuncheng's standard (domain.md §1.1)."""
    units = [c.limit.unit for cls in catalogue.classes if cls.kind is C for c in cls.conditions]
    assert units.count(LimitUnit.WORK_DAYS) > len(units) / 2
    assert LimitUnit.URGENT_HOURS in units and LimitUnit.WORK_HOURS in units


def test_default_departments() -> None:
    """The Dongcheng list: every row default, parents exist, 属地兜底 present."""
    depts = load_departments(DATA_DIR / "departments_110101.csv")
    assert all(d.default for d in depts.values())
    assert all(d.parent is None or d.parent in depts for d in depts.values())
    assert any(d.parent is None for d in depts.values())
    assert any(d.parent is not None for d in depts.values())
    assert any("属地兜底" in d.name for d in depts.values())
    used = {cls.department for ed in EDITIONS for cls in load_catalogue(ed).classes}
    assert used <= set(depts)
    with pytest.raises(CatalogueError, match="unknown department 'nope'"):
        load_catalogue().by_department("nope")


def test_unknown_edition() -> None:
    """An edition that does not ship is named with the ones that do."""
    with pytest.raises(CatalogueError, match=r"unknown catalogue edition 'cjt999'.*cjt214"):
        load_catalogue("cjt999")


# --- time limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("2紧急工作时", 2, LimitUnit.URGENT_HOURS),
        ("4工作时", 4, LimitUnit.WORK_HOURS),
        ("1工作日", 1, LimitUnit.WORK_DAYS),
        ("3自然日", 3, LimitUnit.NATURAL_DAYS),
        ("3 work_days", 3, LimitUnit.WORK_DAYS),
        (" 0.5 urgent_hours ", 0.5, LimitUnit.URGENT_HOURS),
        ("15 自然日", 15, LimitUnit.NATURAL_DAYS),
    ],
)
def test_time_limit_parse_round_trip(text: str, value: float, unit: LimitUnit) -> None:
    """Parse the code or the Chinese label; str() gives the label form, which parses back."""
    limit = TimeLimit.parse(text)
    assert limit == TimeLimit(value, unit)
    assert TimeLimit.parse(str(limit)) == limit
    assert str(limit) == f"{value:g}{unit.label_zh}"


def test_limit_unit_parse() -> None:
    """Every unit parses from its code and from its label."""
    for unit in LimitUnit:
        assert LimitUnit.parse(unit.value) is unit
        assert LimitUnit.parse(unit.label_zh) is unit
    assert LimitUnit.URGENT_HOURS.label_zh == "紧急工作时"
    assert str(TimeLimit(2, LimitUnit.URGENT_HOURS)) == "2紧急工作时"
    with pytest.raises(ValueError, match="unknown time-limit unit '小时'"):
        LimitUnit.parse("小时")


@pytest.mark.parametrize("text", ["", "工作日", "2周", "0工作日", "-1工作日", "2", "two work_days"])
def test_time_limit_rejects(text: str) -> None:
    """No number, unknown unit or a value that is not positive."""
    with pytest.raises(ValueError):
        TimeLimit.parse(text)


# --- component instance codes -------------------------------------------------------------------


def test_component_instance_code_round_trip() -> None:
    """domain.md's 3205080101000001 = 320508 · 01 · 01 · 000001."""
    assert parse_component_instance_code("3205080101000001") == ("320508", "01", "01", 1)
    assert component_instance_code("320508", "01", "01", 1) == "3205080101000001"
    code = component_instance_code("110101", "03", "05", 123_456)
    assert code == "1101010305123456" and len(code) == 16
    assert parse_component_instance_code(code) == ("110101", "03", "05", 123_456)


@pytest.mark.parametrize(
    "code",
    [
        "320508010100001",
        "32050801010000011",
        "32050801010000a1",
        "3205000101000001",
        "3205080001000001",
        "3205080100000001",
        "3205080101000000",
    ],
)
def test_bad_component_instance_codes(code: str) -> None:
    """Wrong length, non-digits, a city adcode, class 00, serial 0."""
    with pytest.raises(CatalogueError, match="component code"):
        parse_component_instance_code(code)


@pytest.mark.parametrize(
    ("adcode", "major", "minor", "serial"),
    [
        ("11010", "01", "01", 1),
        ("110100", "01", "01", 1),
        ("110101", "1", "01", 1),
        ("110101", "01", "00", 1),
        ("110101", "01", "01", 0),
        ("110101", "01", "01", 1_000_000),
    ],
)
def test_bad_component_instance_parts(adcode: str, major: str, minor: str, serial: int) -> None:
    """Each part is validated when formatting."""
    with pytest.raises(CatalogueError, match="component code"):
        component_instance_code(adcode, major, minor, serial)


# --- validation names the file and the line ------------------------------------------------------

GOOD = {
    "kind": "component",
    "major_code": "01",
    "major_name": "公用设施",
    "minor_code": "01",
    "minor_name": "上水井盖",
    "condition_code": "01",
    "condition": "井盖缺失",
    "limit": "2紧急工作时",
    "closing": "恢复",
    "department": "10",
    "emergency": "0",
}


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CLASS_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _row(**changes: str) -> dict[str, str]:
    return {**GOOD, **changes}


def test_valid_custom_file(tmp_path: Path) -> None:
    """A small well-formed file loads under the edition name given."""
    path = _write(tmp_path / "mine.csv", [_row(), _row(condition_code="02", limit="4工作时")])
    cat = load_catalogue("mine", classes=path)
    assert cat.edition == "mine" and len(cat) == 1
    assert [str(c.limit) for c in cat.minor(C, "0101").conditions] == ["2紧急工作时", "4工作时"]


# Good rows on lines 2 and 3; the broken row is line 4.
BROKEN = [
    ("unknown_unit", _row(minor_code="02", limit="2小时"), "unknown time-limit unit '小时'"),
    ("zero_limit", _row(minor_code="02", limit="0工作日"), "greater than 0"),
    ("missing_department", _row(minor_code="02", department=""), "missing department"),
    ("unknown_department", _row(minor_code="02", department="X"), "unknown department 'X'"),
    ("duplicate_condition", _row(condition_code="02", condition="别的"), "duplicate condition code 02"),
    ("duplicate_row", _row(condition_code="02", limit="4工作时"), r"duplicate row \(same as line 3\)"),
    ("one_digit_major", _row(major_code="1"), "major_code '1' is not a 2-digit code"),
    ("three_digit_minor", _row(minor_code="001"), "minor_code '001' is not a 2-digit code"),
    ("bad_condition_code", _row(minor_code="02", condition_code="A1"), "condition_code 'A1'"),
    ("no_condition", _row(minor_code="02", condition_code="", condition=""), "has no filing condition"),
    ("unknown_kind", _row(kind="thing"), "unknown kind 'thing'"),
    ("second_department", _row(condition_code="03", department="12"), "exactly one department"),
    ("renamed_major", _row(minor_code="02", major_name="别的"), "major class 01 is named '别的'"),
    ("bad_emergency", _row(minor_code="02", emergency="yes"), "emergency must be 0 or 1"),
    ("no_closing", _row(minor_code="02", closing=""), "no closing condition"),
]


@pytest.mark.parametrize(("name", "bad", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_catalogue_names_file_and_line(
    tmp_path: Path, name: str, bad: dict[str, str], message: str
) -> None:
    """Each rule rejects the file with '<file>: line 4: <reason>'."""
    path = _write(
        tmp_path / f"catalogue_{name}.csv", [_row(), _row(condition_code="02", limit="4工作时"), bad]
    )
    with pytest.raises(CatalogueError, match=rf"^catalogue_{name}\.csv: line 4: .*{message}") as info:
        load_catalogue(classes=path)
    assert "line 4" in str(info.value)


def test_line_numbers_count_blank_lines_and_multiline_fields(tmp_path: Path) -> None:
    """The line reported is the physical line where the bad row starts."""
    path = tmp_path / "c.csv"
    header = ",".join(CLASS_COLUMNS)
    good = ",".join(GOOD.values())
    bad = good.replace(",10,0", ",X,0").replace(",01,上水井盖,", ",02,污水井盖,")
    multiline = good.replace(",01,井盖缺失", ',02,"井盖\n缺失"')
    path.write_text(f"{header}\n{good}\n\n{multiline}\n{bad}\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"^c\.csv: line 6: unknown department 'X'"):
        load_catalogue(classes=path)


def test_broken_header_and_shape(tmp_path: Path) -> None:
    """A missing column, an empty file and a short row are named too."""
    no_limit = tmp_path / "no_limit.csv"
    no_limit.write_text(",".join(c for c in CLASS_COLUMNS if c != "limit") + "\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"^no_limit\.csv: line 1: missing column\(s\) limit"):
        load_catalogue(classes=no_limit)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(CLASS_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"^empty\.csv: line 1: no classes"):
        load_catalogue(classes=empty)
    short = tmp_path / "short.csv"
    short.write_text(",".join(CLASS_COLUMNS) + "\ncomponent,01,公用设施\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"^short\.csv: line 2: 3 fields"):
        load_catalogue(classes=short)
    with pytest.raises(CatalogueError, match="no such file"):
        load_catalogue(classes=tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["a,甲,,1", "a,乙,,1"], r"line 3: duplicate department code 'a' \(first on line 2\)"),
        (["a,甲,,1", "b,乙,z,1"], "line 3: unknown parent department 'z'"),
        (["a,甲,b,1", "b,乙,a,1"], r"line 2: parent chain loops \(a → b → a\)"),
        (["a,,,1"], "line 2: department 'a' has no name"),
        (["a,甲,,x"], "line 2: default must be 0 or 1"),
    ],
)
def test_broken_departments_name_file_and_line(tmp_path: Path, rows: list[str], message: str) -> None:
    """Department rules: unique codes, names, existing parents, no loops, 0/1 flag."""
    path = tmp_path / "departments_x.csv"
    path.write_text("code,name,parent,default\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=rf"^departments_x\.csv: {message}"):
        load_departments(path)


def test_catalogue_checked_against_given_departments(tmp_path: Path) -> None:
    """An imported department list replaces the default one; the catalogue must map into it."""
    depts = tmp_path / "departments_mine.csv"
    depts.write_text("code,name,parent,default\n10,自来水公司,,0\n", encoding="utf-8")
    one = _write(tmp_path / "one.csv", [_row()])
    cat = load_catalogue("mine", departments=depts, classes=one)
    assert cat.departments["10"].default is False
    with pytest.raises(CatalogueError, match=r"^catalogue_cjt214\.csv: line 5: unknown department '12'"):
        load_catalogue("cjt214", departments=depts)
