"""docs/protocol.md against the code: every name a client can meet is documented, and nothing more.

The document is parsed loosely: code spans (`name`), headings and the first column of its tables.
"""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import feeds.schemas
from domain.lifecycle import Policy, Rule, Stage
from domain.supervisor import SupervisorRules, SupervisorStatus
from feeds.live import EVENT_LOG, Alert, Kpi, Place, View
from feeds.pipeline import KINDS, Ack, PipelineConfig, TaskOut
from feeds.schemas import MAX_BATCH, MAX_PAYLOAD_BYTES, Reason
from feeds.sockets import Broadcaster, Connections, DeviceNamespace, LiveNamespace, TaskSender
from feeds.ticks import (
    ROOM_RE,
    cases_columns,
    grids_columns,
    render,
    render_alert,
    room_filter,
    supervisors_columns,
)
from gridwall.web import MAX_FRAME_BYTES
from store.accounts import AUTH_REASONS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"
HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.M)

# the /device event each payload model parses (a new model must be added here and documented)
MODEL_EVENT = {
    "FixIn": "position",
    "PositionsIn": "positions",
    "ValidPositionsIn": "positions",
    "ReportIn": "report",
    "TaskAckIn": "task_ack",
    "TaskResultIn": "task_result",
    "CommandIn": "command",
    "ComponentUpdateIn": "component",
    "HandoverIn": "handover",
    "ProposalIn": "proposal",
    "ProposalDecisionIn": "proposal_decision",
}


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def spans(text: str) -> set[str]:
    """Every code span of a text."""
    return set(re.findall(r"`([^`\n]+)`", text))


def section(text: str, title: str) -> str:
    """The text under the first heading containing ``title``, up to the next heading of its level or above."""
    for m in HEADING.finditer(text):
        if title in m.group(2):
            level = len(m.group(1))
            rest = text[m.end() :]
            for nxt in HEADING.finditer(rest):
                if len(nxt.group(1)) <= level:
                    return rest[: nxt.start()]
            return rest
    raise AssertionError(f"docs/protocol.md has no heading containing {title!r}")


def event_section(text: str, event: str) -> str:
    """The section whose heading names ``event`` as a code span."""
    return section(text, f"`{event}`")


def table_rows(text: str) -> dict[str, str]:
    """Table rows keyed by the code span that starts their first cell (rows without one are skipped)."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = line.strip().split("|")
        if len(cells) < 3 or not line.lstrip().startswith("|"):
            continue
        m = re.match(r"\s*`([^`]+)`", cells[1])
        if m:
            rows[m.group(1)] = line
    return rows


def code_reasons() -> set[str]:
    """Every rejection name the code can send: pipeline, lifecycle, auth and /live replies."""
    sockets_src = inspect.getsource(feeds.sockets)
    replies = set(re.findall(r'"reason":\s*"(\w+)"', sockets_src))
    assert {"unknown_room", "not_in_room"} <= replies
    return {r.value for r in Reason} | {r.value for r in Rule} | set(AUTH_REASONS) | replies


def test_every_reason_rule_and_auth_reason_is_in_the_reason_table(doc: str) -> None:
    table = set(table_rows(section(doc, "Rejection reasons")))
    missing = code_reasons() - table
    assert not missing, f"reasons missing from the table in docs/protocol.md: {sorted(missing)}"


def test_every_reason_in_the_table_exists_in_the_code(doc: str) -> None:
    table = set(table_rows(section(doc, "Rejection reasons")))
    stale = table - code_reasons()
    assert not stale, f"docs/protocol.md lists reasons the code no longer has: {sorted(stale)}"


def test_reason_rows_say_whether_to_retry(doc: str) -> None:
    for name, row in table_rows(section(doc, "Rejection reasons")).items():
        last = row.strip().strip("|").split("|")[-1].strip().lower()
        assert last.startswith(("yes", "no")), f"reason {name}: last column must say yes/no (retry)"


def test_every_device_event_has_a_section(doc: str) -> None:
    for kind in KINDS:
        event_section(doc, kind)


def test_every_server_event_has_a_section(doc: str) -> None:
    sockets_src = inspect.getsource(feeds.sockets)
    emitted = set(re.findall(r'emit\(\s*"(\w+)"', sockets_src))
    assert {"snapshot", "tick", "alert", "task"} <= emitted
    for event in emitted:
        event_section(doc, event)


def test_every_live_client_event_is_documented(doc: str) -> None:
    methods = inspect.getmembers(LiveNamespace, inspect.isfunction)
    client_events = {n[3:] for n, _ in methods if n.startswith("on_")} - {"connect", "disconnect"}
    assert {"join", "leave", "resync"} <= client_events
    table = table_rows(section(doc, "`join`, `leave`, `resync`"))
    assert client_events <= set(table)


def test_every_payload_field_is_documented_under_its_event(doc: str) -> None:
    models = {
        name: obj
        for name, obj in vars(feeds.schemas).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseModel)
        and obj.__module__ == feeds.schemas.__name__
        and not name.startswith("_")
    }
    assert set(models) == set(MODEL_EVENT), "a payload model was added or removed: update MODEL_EVENT"
    for name, model in models.items():
        documented = set(table_rows(event_section(doc, MODEL_EVENT[name])))
        missing = set(model.model_fields) - documented
        assert not missing, f"{MODEL_EVENT[name]}: fields missing from docs/protocol.md: {sorted(missing)}"


def test_the_ack_shape_is_documented(doc: str) -> None:
    keys = set(Ack(cases={"r": "c"}).as_dict())
    assert keys <= set(table_rows(section(doc, "Acknowledgement")))


def test_task_fields_are_documented(doc: str) -> None:
    sent: list[dict[str, Any]] = []

    class Sink:
        def emit(self, event: str, body: dict[str, Any], **_: Any) -> None:
            sent.append(body)

    task = TaskOut("C1", "verify", "sup-1", datetime.now(UTC), Place("g", "s", 1.0, 2.0), "0101", "event")
    TaskSender(Sink(), Connections())([task])
    assert sent
    assert set(sent[0]) <= set(table_rows(event_section(doc, "task")))


def test_live_message_fields_and_columns_are_documented(doc: str) -> None:
    view = View(datetime.now(UTC), (), (), (), {}, {}, {}, {}, ())
    msg = render(view, room_filter("wall"), 0, full=True, simulated=False)
    body = section(doc, "`snapshot` and `tick`")
    assert set(msg) <= set(table_rows(body))
    for columns in (supervisors_columns([]), cases_columns([]), grids_columns({})):
        assert set(columns) <= set(table_rows(body)) | spans(body)
    alert = render_alert(Alert("overdue", datetime.now(UTC)), "wall", 1)
    assert set(alert) <= set(table_rows(event_section(doc, "alert")))


def test_every_alert_kind_is_documented(doc: str) -> None:
    live_src = inspect.getsource(feeds.live)
    literal = set(re.findall(r'Alert\(\s*"(\w+)"', live_src))
    assert {"emergency", "overdue"} <= literal
    statuses = {s.value for s in SupervisorStatus if s is not SupervisorStatus.ON_DUTY}
    table = set(table_rows(section(doc, "Alert kinds")))
    assert literal | statuses == table


def test_every_kpi_key_is_documented(doc: str) -> None:
    assert set(Kpi().as_dict(0, 0, 0, 0)) == set(table_rows(section(doc, "KPI keys")))


def test_every_supervisor_status_is_documented(doc: str) -> None:
    assert {s.value for s in SupervisorStatus} == set(table_rows(section(doc, "Supervisor statuses")))


def test_every_display_stage_is_documented(doc: str) -> None:
    assert {s.value for s in Stage} == set(table_rows(section(doc, "Display stages")))


def test_every_room_kind_is_documented(doc: str) -> None:
    kinds = re.findall(r"(?:\(|\|)([a-z]+)", ROOM_RE.pattern)
    assert "wall" in kinds and len(kinds) >= 5
    documented = table_rows(section(doc, "Rooms"))
    for kind in kinds:
        assert any(r == kind or r.startswith(f"{kind}:") for r in documented), f"room kind {kind} missing"


def _n(value: float) -> str:
    """A number as the document writes it (thousands separated, no trailing .0)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def _defaults(cls: type) -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()}


def test_limits_match_the_code(doc: str) -> None:
    cfg = PipelineConfig()
    dev, brd = _defaults(DeviceNamespace), _defaults(Broadcaster)
    expected = {
        "MAX_PAYLOAD_BYTES": [_n(MAX_PAYLOAD_BYTES)],
        "MAX_BATCH": [_n(MAX_BATCH)],
        "device_rate": [f"{_n(dev['device_rate'][0])} events/s", f"up to {_n(dev['device_rate'][1])}"],
        "gateway_rate": [f"{_n(dev['gateway_rate'][0])} events/s", f"up to {_n(dev['gateway_rate'][1])}"],
        "future_tolerance": [f"{_n(cfg.future_tolerance.total_seconds())} s"],
        "Policy.future_tolerance": [f"{_n(Policy().future_tolerance.total_seconds())} s"],
        "retention": [f"{cfg.retention.days} days"],
        "max_speed_kmh": [f"{_n(SupervisorRules().max_speed_kmh)} km/h"],
        "window_s": [f"{_n(cfg.window_s * 1000)} ms"],
        "idle_s": [f"{_n(cfg.idle_s * 1000)} ms"],
        "max_group": [_n(cfg.max_group)],
        "reject_cap": [_n(cfg.reject_cap)],
        "interval": [f"{_n(brd['interval'])} s"],
        "max_queue": [_n(brd["max_queue"])],
        "EVENT_LOG": [_n(EVENT_LOG)],
        "max_http_buffer_size": [f"{_n(MAX_FRAME_BYTES)} bytes"],  # issue 20 item 10: the doc said 1,000,000
    }
    rows = table_rows(section(doc, "Limits"))
    for name, texts in expected.items():
        assert name in rows, f"limit {name} missing from docs/protocol.md"
        for text in texts:
            assert text in rows[name], f"limit {name}: expected {text!r} in {rows[name]!r}"
