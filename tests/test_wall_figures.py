"""Pure builders of the wall: the map figure, the heat image, the /live messages."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image

from dashboard.figures import STAGE_COLOURS, SUPERVISOR_COLOURS, StreetShape, wall_map
from dashboard.heat import HeatCanvas, colour, render
from domain.lifecycle import Stage
from domain.supervisor import SupervisorStatus
from feeds.live import GridCount, LiveCase, LiveSupervisor, View
from feeds.ticks import render as render_message
from feeds.ticks import room_filter

BOUNDS = (116.38, 39.89, 116.42, 39.93)
STREET = StreetShape(
    code="110101001",
    name="东华门",
    rings=(((116.38, 39.89), (116.42, 39.89), (116.42, 39.93), (116.38, 39.93), (116.38, 39.89)),),
    label=(116.40, 39.91),
    grids=2,
)


def _square(code: str, x0: float, y0: float, d: float = 0.01) -> dict[str, object]:
    ring = [[x0, y0], [x0 + d, y0], [x0 + d, y0 + d], [x0, y0 + d], [x0, y0]]
    return {"type": "Feature", "id": code, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_wall_map_has_outlines_and_local_layers_but_no_live_points() -> None:
    fig = wall_map(streets=[STREET], bounds=BOUNDS, lang="zh", labels_url="/l.png", heat_url="/h.png")
    assert [t.uid for t in fig.data] == ["streets"]  # points: the browser's canvas (gw-marks.js)
    layers = fig.layout.map.layers
    assert [layer.source for layer in layers] == ["/h.png", "/l.png"]
    assert layers[0].below == "traces"  # the heat goes under the markers
    assert fig.layout.map.style == "/basemap/style.json"  # a URL, never an inline style


def test_every_stage_and_status_has_a_colour() -> None:
    assert set(STAGE_COLOURS) == {s.value for s in Stage}
    assert set(SUPERVISOR_COLOURS) == {s.value for s in SupervisorStatus}


def test_heat_image_fills_grids_by_value() -> None:
    canvas = HeatCanvas.build([_square("a", 116.38, 39.89), _square("b", 116.40, 39.91)], BOUNDS, width=200)
    png = render(canvas, {"a": 5.0, "b": 0.0}, "open")
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    w, h = img.size
    assert w == 200 and h > 100
    alpha = img.getchannel("A")
    assert alpha.getpixel((int(0.125 * w), int(0.875 * h))) > 0  # type: ignore[operator]  # in grid a
    assert alpha.getpixel((int(0.625 * w), int(0.375 * h))) == 0  # grid b, value 0: not drawn
    assert colour("patrol", 0, 10) is not None  # unpatrolled grids are shown in patrol mode
    assert colour("open", 0, 10) is None


def test_tick_messages_are_columnar_rounded_and_filtered_by_room() -> None:
    at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    sup = LiveSupervisor(
        "sup-1", "110101001R001", "110101001", "on_duty", at, 116.4012345, 39.9098765, "110101001001001"
    )
    case = LiveCase(
        "C1", "event", "0101", "处置中", "handling", "supervisor", False, "01",
        "110101002001001", "110101002", 116.41, 39.92, at, at, at, 0,
    )  # fmt: skip
    view = View(
        at=at, supervisors=(sup,), cases=(case,), gone=(("C0", "110101001", None),),
        grids={"110101001001001": GridCount(1, 0, 2, 90.0)}, kpi={"reported": 3}, stages={"处置中": 1},
        street_stages={"110101002": {"处置中": 1}}, events=(),
    )  # fmt: skip
    wall = render_message(view, room_filter("wall"), 7, full=False, simulated=True)
    assert wall["seq"] == 7 and wall["sim"] is True and wall["room"] == "wall"
    assert wall["sup"]["lon"] == [116.40123] and wall["sup"]["lat"] == [39.90988]  # 5 decimals
    assert wall["cases"]["id"] == ["C1"] and wall["gone"] == ["C0"]
    assert wall["grids"]["patrol"] == [1.5]  # minutes
    assert wall["kpi"] == {"reported": 3}
    street = render_message(view, room_filter("street:110101001"), 1, full=False, simulated=False)
    assert street["sup"]["id"] == ["sup-1"] and street["cases"]["id"] == [] and street["gone"] == ["C0"]
    assert "kpi" not in street
    other = render_message(view, room_filter("street:110101002"), 1, full=False, simulated=False)
    assert other["cases"]["id"] == ["C1"] and other["stages"] == {"处置中": 1}
