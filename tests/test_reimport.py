"""Building on what is stored: importing communities into real streets, keeping levels and codes."""

from __future__ import annotations

import json
from pathlib import Path

from shapely.geometry import mapping, shape
from sqlalchemy import select

from store.build import BuildRequest, build_city, import_levels
from store.db import create_engine, session_factory
from store.models import Community, Grid, Street


def _rows(engine, model):
    with session_factory(engine)() as s:
        return {r.code: r for r in s.scalars(select(model).where(model.active))}


def test_import_communities_into_real_streets_then_rerun(shared_data: Path, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    streets_file = shared_data / "boundaries" / "dongcheng_streets_gcj02.geojson"
    build_city(engine, BuildRequest(streets=streets_file))
    streets = _rows(engine, Street)
    assert sorted(streets) == [f"110101{n:03d}" for n in range(1, 18)]
    generated = _rows(engine, Community)
    assert all(c.generated for c in generated.values())

    # "real" communities: the stored zones of two streets, given 12-digit codes and names
    chosen = sorted(c for c in generated if c[:9] in ("110101001", "110101002"))
    features = []
    for n, code in enumerate(chosen, start=1):
        real = f"{code[:9]}{n:03d}"
        features.append(
            {
                "type": "Feature",
                "properties": {"code": real, "name": f"测试社区{n}"},
                "geometry": mapping(shape(generated[code].geometry)),
            }
        )
    path = tmp_path / "communities_wgs84.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    build_city(engine, BuildRequest(communities=path))

    after_streets = _rows(engine, Street)
    assert sorted(after_streets) == sorted(streets), "stored real streets are kept"
    comms = _rows(engine, Community)
    imported = {c for c, row in comms.items() if not row.generated}
    assert imported == {f["properties"]["code"] for f in features}
    assert comms[features[0]["properties"]["code"]].name == "测试社区1"
    # the other 15 streets still have generated communities (9xx)
    assert all(c[9] == "9" for c in comms if c[:9] not in ("110101001", "110101002"))
    grids = _rows(engine, Grid)
    assert {g[:12] for g in grids} == set(comms)

    # levels set by import survive a plain re-run, and so do codes
    some = sorted(grids)[:3]
    csv = tmp_path / "levels.csv"
    csv.write_text("code,level\n" + "".join(f"{c},重点\n" for c in some), encoding="utf-8")
    assert import_levels(engine, csv) == 3
    summary = build_city(engine, BuildRequest())
    assert summary.grids_new == 0 and summary.grids_retired == 0
    again = _rows(engine, Grid)
    assert sorted(again) == sorted(grids)
    assert [again[c].level for c in some] == ["key"] * 3
    assert sorted(_rows(engine, Community)) == sorted(comms), "stored real communities are kept"

    # --regenerate goes back to generated communities inside the real streets
    build_city(engine, BuildRequest(regenerate=True, streets=streets_file))
    assert all(c.generated for c in _rows(engine, Community).values())
