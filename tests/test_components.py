"""The 部件 inventory (issue 18) on SQLite and PostgreSQL: ``import components`` of a generated Dongcheng
inventory, named row rejections, re-import counts and history, the nearest objects of a class.

The inventory is GENERATED here (tests/component_inventory.py): no public one is at hand, so objects
of common classes (井盖, 路灯, 果皮箱 …) are placed along the real Dongcheng roads of
``../shared/data/roads/dongcheng_roads_gcj02.geojson`` (GCJ-02) with owners from the department list.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.catalogue import Catalogue, load_catalogue
from domain.component import ComponentIndex, ComponentState, Role, handling_order, handling_unit
from domain.errors import GeoInputError
from domain.index import PointGridIndex
from store.components import ComponentBook, component_view, import_components
from store.db import session_factory
from store.geography import load_index
from store.models import Component, ComponentHistory
from tests.component_inventory import HEADER, ROADS, Generated, generate
from tests.conftest import SHARED, require

ADCODE = "110101"
CATALOGUE = load_catalogue("cjt214")


@dataclass(frozen=True)
class World:
    engine: Engine
    index: PointGridIndex
    inv: Generated
    folder: Path


@pytest.fixture(scope="module")
def world(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not (SHARED / ROADS).exists():
        require("../shared/data/roads/dongcheng_roads_gcj02.geojson (the Dongcheng roads)")
    with session_factory(city_engine)() as s:
        index = load_index(s, ADCODE)
    inv = generate(SHARED, 600, inside=lambda x, y: np.asarray([g is not None for g in index.lookup(x, y)]))
    yield World(city_engine, index, inv, tmp_path_factory.mktemp("components"))


def _import(w: World, path: Path, cat: Catalogue = CATALOGUE, **kw: Any) -> Any:
    return import_components(w.engine, path, w.index, cat, ADCODE, **kw)


def _rows(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def test_a_generated_inventory_imports_with_grids_and_owners(world: World) -> None:
    w = world
    summary = _import(w, w.inv.write_csv(w.folder / "inventory.csv"), crs="gcj02")
    assert (summary.added, summary.changed, summary.retired, summary.rejected_count) == (600, 0, 0, 0)
    with w.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(Component))}
        hist = conn.execute(select(ComponentHistory).where(ComponentHistory.action == "add")).all()
    assert len(rows) == 600 and len(hist) >= 600
    first = rows[w.inv.ids[0]]
    # stored in WGS-84 (the file was GCJ-02), located in a grid of the district, owners kept by role
    assert abs(first.lon - w.inv.lon[0]) < 1e-6 and abs(first.lat - w.inv.lat[0]) < 1e-6
    assert first.grid_code is not None and first.grid_code.startswith(ADCODE)
    assert (first.unit_main, first.unit_owner, first.unit_care) == w.inv.units[0]
    assert first.state == "完好" and first.source == "实测" and first.attributes == {"SetLoc": "generated"}
    assert json.loads(first.geometry)["type"] == "Point"
    again = _import(w, w.inv.write_csv(w.folder / "inventory.csv"), crs="gcj02")
    assert (again.added, again.changed, again.retired, again.unchanged) == (0, 0, 0, 600)


def test_bad_rows_are_named_and_the_good_ones_go_in(world: World) -> None:
    w = world
    x, y = w.inv.gcj02()
    ok = [f"{x[0]:.7f}", f"{y[0]:.7f}"]
    rows = [
        ["1101010101900001", "上水井盖", "完好", "01", "10", "10", "实测", "2024-05-01", *ok, ""],  # 2: good
        ["11010101019", "上水井盖", "", "", "", "", "", "", *ok, ""],  # 3: bad_identifier
        ["3205080101900001", "上水井盖", "", "", "", "", "", "", *ok, ""],  # 4: wrong_county
        ["1101019901900001", "?", "", "", "", "", "", "", *ok, ""],  # 5: unknown_class (99 99)
        ["1101010101900001", "上水井盖", "", "", "", "", "", "", *ok, ""],  # 6: duplicate_serial
        ["1101010101900002", "上水井盖", "", "", "", "", "", "", "121.47", "31.23", ""],  # 7: outside
        ["1101010101900003", "上水井盖", "坏了", "", "", "", "", "", *ok, ""],  # 8: bad_state
        ["1101010101900004", "上水井盖", "", "01", "99", "", "", "", *ok, ""],  # 9: unknown_department
        ["1101010101900005", "上水井盖", "", "", "", "", "", "05/2024", *ok, ""],  # 10: bad_date
        ["1101010101900006", "上水井盖", "", "", "", "", "", "", "east", *ok[1:], ""],  # 11: bad_point
    ]
    s = _import(w, _rows(w.folder / "bad.csv", rows), crs="gcj02")
    assert s.added == 1
    assert s.rejected == {
        "bad_identifier": [3], "wrong_county": [4], "unknown_class": [5], "duplicate_serial": [6],
        "outside_district": [7], "bad_state": [8], "unknown_department": [9], "bad_date": [10],
        "bad_point": [11],
    }  # fmt: skip
    assert "1 added" in s.lines()[0] and any("duplicate_serial: 1 (rows 6)" in line for line in s.lines())


def test_a_file_in_the_wrong_crs_is_refused_whole(world: World) -> None:
    """Metre coordinates (a projected CRS) declared as WGS-84: no point lies in the district."""
    w = world
    rows = [[w.inv.ids[i].replace("0101", "0101", 1)[:10] + f"{800000 + i:06d}", "x", "", "", "", "", "", "",
             f"{500000 + 10 * i}", f"{4400000 + 10 * i}", ""] for i in range(5)]  # fmt: skip
    rows = [[f"110101010180{i:04d}", *r[1:]] for i, r in enumerate(rows)]
    with w.engine.connect() as conn:
        before = len(conn.execute(select(Component.id)).all())
    with pytest.raises(GeoInputError, match="wrong_crs"):
        _import(w, _rows(w.folder / "projected.csv", rows), crs="wgs84")
    with w.engine.connect() as conn:
        assert len(conn.execute(select(Component.id)).all()) == before  # one transaction: nothing in
    with pytest.raises(GeoInputError, match="--crs"):
        _import(w, _rows(w.folder / "nocrs.csv", rows))  # a CSV must name its CRS


def test_a_geojson_line_gets_a_point_on_it(world: World) -> None:
    w = world
    x0, y0 = float(w.inv.lon[1]), float(w.inv.lat[1])
    doc = {"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": {"ObjID": "1101010211000001", "ObjName": "交通护栏", "DeptCode3": "06"},
        "geometry": {"type": "LineString", "coordinates": [[x0, y0], [x0 + 0.0004, y0]]},
    }]}  # fmt: skip
    path = w.folder / "rail_wgs84.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    s = _import(w, path)
    assert (s.added, s.rejected_count) == (1, 0)
    with w.engine.connect() as conn:
        view = component_view(conn, "1101010211000001")
    assert view is not None and view["geometry"]["type"] == "LineString"
    assert abs(view["component"]["lon"] - (x0 + 0.0002)) < 1e-6  # the middle of the line


def test_reimport_counts_changes_and_retirements_with_history(world: World) -> None:
    w = world
    path = w.inv.write_csv(w.folder / "inventory.csv")
    text = path.read_text(encoding="utf-8").splitlines()
    head, body = text[0], text[1:]
    body[0] = body[0].replace(",完好,", ",破损,")  # a broken object: changed
    body[1] = body[1].replace(",完好,", ",废弃,")  # retired by the file
    dropped = body.pop(2)  # absent: retired with retire_missing
    (w.folder / "v2.csv").write_text("\n".join([head, *body]) + "\n", encoding="utf-8")
    s = _import(w, w.folder / "v2.csv", crs="gcj02", retire_missing=True, actor="surveyor1")
    assert (s.added, s.changed, s.unchanged) == (0, 1, 597)
    assert s.retired >= 2  # the one the file retires, the one absent (and the test line object)
    with w.engine.connect() as conn:
        hist = {h.component_id: h for h in conn.execute(select(ComponentHistory).where(
            ComponentHistory.actor == "surveyor1"))}  # fmt: skip
    assert hist[w.inv.ids[0]].changes == {"state": ["完好", "破损"]} and hist[w.inv.ids[0]].action == "change"
    assert hist[w.inv.ids[1]].action == "retire"
    assert hist[dropped.split(",")[0]].changes == {"state": ["完好", "废弃"]}
    book = ComponentBook(w.engine)
    assert book.get(w.inv.ids[1]) is None and book.get(w.inv.ids[0]) is not None  # retired: not pickable
    assert book.get(w.inv.ids[0]).state == ComponentState.DAMAGED.value  # type: ignore[union-attr]


def test_nearest_objects_of_a_class(world: World) -> None:
    w = world
    book = ComponentBook(w.engine)
    inv = book.inventory()
    code = w.inv.classes[5]
    near = inv.nearest(code, float(w.inv.lon[5]), float(w.inv.lat[5]), k=3, max_m=2000)
    assert near[0].id == w.inv.ids[5] and near[0].distance_m < 0.5
    assert all(n.class_code == code for n in near)
    assert [n.distance_m for n in near] == sorted(n.distance_m for n in near)
    # the same as brute force over every object of the class
    sel = [i for i, c in enumerate(w.inv.classes) if c == code and book.get(w.inv.ids[i]) is not None]
    kx = np.cos(np.radians(w.inv.lat[5])) * 111_195.0
    d = np.hypot((w.inv.lon[sel] - w.inv.lon[5]) * kx, (w.inv.lat[sel] - w.inv.lat[5]) * 111_195.0)
    brute = [w.inv.ids[sel[i]] for i in np.argsort(d)[:3]]
    assert [n.id for n in near] == brute


def test_the_handling_unit_follows_the_configured_order() -> None:
    units = {Role.MAIN: "01", Role.OWNER: "12", Role.CARE: "0102"}
    assert handling_unit(units, handling_order(None)) == "0102"  # 养护 first
    assert handling_unit(units, handling_order("权属,主管")) == "12"
    assert handling_unit({Role.MAIN: "01", Role.OWNER: None, Role.CARE: None}, handling_order(None)) == "01"
    assert handling_unit({}, handling_order(None)) is None
    with pytest.raises(ValueError):
        handling_order("养护,养护")
    idx = ComponentIndex([], [], [], [])
    assert idx.nearest("0101", 116.4, 39.9) == []
