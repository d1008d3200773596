"""Tables of the geography: districts, streets, communities, unit grids, responsibility areas.

Geometry is kept as GeoJSON (WGS-84) in a JSON column plus bbox and centroid columns, which runs
unchanged on SQLite and PostgreSQL (tech-notes §5); PostGIS is not needed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, BigId, JSONType, utcnow


class GeoColumns:
    """Geometry (GeoJSON), bounding box, centroid and area shared by every polygon table."""

    geometry: Mapped[dict[str, Any]] = mapped_column(JSONType)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    centroid_lon: Mapped[float] = mapped_column(Float)
    centroid_lat: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)


class District(GeoColumns, Base):
    """A county-level district (区/县) and the lattice its unit grids were cut on."""

    __tablename__ = "districts"

    adcode: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(256))
    lattice_lon0: Mapped[float] = mapped_column(Float)
    lattice_x0: Mapped[float] = mapped_column(Float)
    lattice_y0: Mapped[float] = mapped_column(Float)
    cell_m: Mapped[float] = mapped_column(Float)
    streets_source: Mapped[str] = mapped_column(String(16))  # generated | imported | grids
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class Street(GeoColumns, Base):
    """A street (街道), 9-digit code."""

    __tablename__ = "streets"

    code: Mapped[str] = mapped_column(String(9), primary_key=True)
    district_adcode: Mapped[str] = mapped_column(ForeignKey("districts.adcode"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(128))
    generated: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Community(GeoColumns, Base):
    """A community (社区), 12-digit code."""

    __tablename__ = "communities"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    street_code: Mapped[str] = mapped_column(ForeignKey("streets.code"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(128))
    generated: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ResponsibilityArea(Base):
    """A responsibility area (责任网格): contiguous unit grids of one street, one supervisor."""

    __tablename__ = "responsibility_areas"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    street_code: Mapped[str] = mapped_column(ForeignKey("streets.code"), index=True)
    grid_count: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Grid(GeoColumns, Base):
    """A unit grid (单元网格), 15-digit code per DB11/T 2157."""

    __tablename__ = "grids"
    __table_args__ = (Index("ix_grids_bbox", "min_lon", "min_lat", "max_lon", "max_lat"),)

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("communities.code"), index=True)
    street_code: Mapped[str] = mapped_column(ForeignKey("streets.code"), index=True)
    area_code: Mapped[str | None] = mapped_column(
        ForeignKey("responsibility_areas.code"), index=True, nullable=True
    )
    level: Mapped[str] = mapped_column(String(16), default="general")
    lattice_row: Mapped[int] = mapped_column(Integer)
    lattice_col: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Department(Base):
    """A responsible department (专业部门) with its parent unit."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"), nullable=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=True)  # shipped default, replace by import


class Case(Base):
    """A case (案卷): queryable columns plus the exact lifecycle state as a JSON snapshot."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status", "status"),
        Index("ix_cases_street_status", "street_code", "status"),
        Index("ix_cases_deadline", "open", "deadline"),
        # the grid page: a grid's cases newest first, all of them or the open ones (migration 0008)
        Index("ix_cases_grid_reported", "grid_code", "reported_at"),
        Index("ix_cases_grid_open", "grid_code", "open", "reported_at"),
        # an object's cases in a window: recurring objects, the units by their objects (migration 0015)
        Index("ix_cases_component_reported", "component_id", "reported_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    class_code: Mapped[str] = mapped_column(String(8))
    condition_code: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(8), nullable=True)  # display stage (None when ended)
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grids.code"), nullable=True, index=True)
    community_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    street_code: Mapped[str | None] = mapped_column(String(9), nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), nullable=True, index=True
    )
    reporter: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1000), default="")
    reported_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    deadline: Mapped[datetime | None] = mapped_column(nullable=True)  # of the running stage
    archive: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reworks: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    urges: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType)
    origin: Mapped[str] = mapped_column(String(16), default="live")  # live | simulation | replay
    # reported without a point (only an address or a grid code): 待受理 flagged "needs location"
    needs_location: Mapped[bool] = mapped_column(Boolean, default=False)
    address: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # the 部件 the report names (issue 18; migration 0012): the component page lists its cases
    component_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)


class CaseEventRow(Base):
    """The append-only case-event log."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_seq", "case_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(index=True)
    opinion: Mapped[str] = mapped_column(String(1000), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    key: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))


class StageTimerRow(Base):
    """Per-stage timers of a case: deadline, paused seconds, end, overdue."""

    __tablename__ = "stage_timers"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    limit_value: Mapped[float] = mapped_column(Float)
    limit_unit: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    deadline: Mapped[datetime] = mapped_column()
    paused_since: Mapped[datetime | None] = mapped_column(nullable=True)
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)


class Task(Base):
    """A supervisor task: 核实 (verify, before filing) or 核查 (check, after handling)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # verify | check
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column()
    deadline: Mapped[datetime] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(nullable=True)  # the handset confirmed receipt


class HandoverRow(Base):
    """A shift handover (交班): the outgoing shift leader's snapshot and notes, and its 接班."""

    __tablename__ = "handovers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shift_start: Mapped[datetime] = mapped_column(unique=True)  # one handover per shift
    shift_end: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)  # store.handover.snapshot
    notes: Mapped[str] = mapped_column(String(2000), default="")
    key: Mapped[str] = mapped_column(String(170), unique=True)  # the opening command's idempotency key
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ack_notes: Mapped[str] = mapped_column(String(2000), default="")
    ack_key: Mapped[str | None] = mapped_column(String(170), nullable=True)


class Handset(Base):
    """What a handset app (城管通, /m) last said of itself: its version, the browser, the battery."""

    __tablename__ = "handsets"

    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    app_version: Mapped[str] = mapped_column(String(32))
    user_agent: Mapped[str] = mapped_column(String(300))
    battery: Mapped[float | None] = mapped_column(Float, nullable=True)  # 0..1, when the browser gives it
    charging: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    seen_at: Mapped[datetime] = mapped_column()


class Reject(Base):
    """Dead letter: every rejected input with its named reason, never silently dropped."""

    __tablename__ = "rejects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(48))
    message: Mapped[str] = mapped_column(String(1000))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    count: Mapped[int] = mapped_column(Integer, default=1)  # > 1: a count row for rejects beyond the cap


class Person(Base):
    """A person who acts in GridWall: supervisor, centre operator, department operator, leader, admin."""

    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(24), index=True)  # domain.lifecycle.Role value
    department_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    area_code: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)  # supervisors
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual | embedded | simulation
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)  # the desk's last login


class Token(Base):
    """A credential: device, gateway, kiosk token or API key. Only the SHA-256 of the secret is kept."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # device | gateway | kiosk | api
    name: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to recognise a token in lists
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"), nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(48), nullable=True)  # API keys: lifecycle role
    scope: Mapped[list[str]] = mapped_column(JSONType, default=list)  # gateway: person ids, or ["*"]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Position(Base):
    """One accepted position fix (track point), WGS-84, kept at full rate for the retention period."""

    __tablename__ = "positions"
    __table_args__ = (
        Index("ix_positions_supervisor_at", "supervisor_id", "at", unique=True),
        Index("ix_positions_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    supervisor_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    speed: Mapped[float | None] = mapped_column(Float, nullable=True)  # m/s
    grid_code: Mapped[str | None] = mapped_column(String(15), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="device")  # device | simulation | replay


class DailyCounter(Base):
    """CJ/T 292 daily counters of one object (region, department, position) on one local day."""

    __tablename__ = "daily_counters"

    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)


class CounterMark(Base):
    """Bookkeeping of the persisted counters: the last case event they include, open-case holders."""

    __tablename__ = "counter_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class WebSession(Base):
    """A desk login (server-side session): the cookie holds a random id, the table its SHA-256."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie value
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)
    remote: Mapped[str] = mapped_column(String(64), default="")


class GridStaff(Base):
    """One member of a unit grid's staff roster (the "seven forces"), imported from CSV."""

    __tablename__ = "grid_staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    grid_code: Mapped[str] = mapped_column(ForeignKey("grids.code"), index=True)
    duty: Mapped[str] = mapped_column(String(24))  # manager | assistant | police | supervisor | ...
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32), default="")
    imported_at: Mapped[datetime] = mapped_column()


class Address(Base):
    """A 门牌 address of the gazetteer (``app.py import addresses``): text as given, point, grid."""

    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(200))  # as imported
    normalised: Mapped[str] = mapped_column(String(200), unique=True)  # domain.address.normalise: the key
    lon: Mapped[float] = mapped_column(Float)  # WGS-84
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15), nullable=True, index=True)  # at import
    number: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the 门牌 (甲35), if any
    community: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(String(200))  # the imported file's name
    imported_at: Mapped[datetime] = mapped_column()


class AddressImport(Base):
    """One ``import addresses`` run; its id is the gazetteer's version (geocoders reload when it grows)."""

    __tablename__ = "address_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(200))
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class Component(Base):
    """A 部件 object of the inventory (issue 18): 16-digit identifier, class, point, grid, state, owners."""

    __tablename__ = "components"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # adcode + class + serial
    class_code: Mapped[str] = mapped_column(String(4), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    geometry: Mapped[str] = mapped_column(Text)  # GeoJSON text, WGS-84 (a point, or a line/polygon)
    lon: Mapped[float] = mapped_column(Float)  # representative point, WGS-84
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(8))  # domain.component.ComponentState value
    unit_main: Mapped[str | None] = mapped_column(String(16), nullable=True)  # 主管 (DeptCode1)
    unit_owner: Mapped[str | None] = mapped_column(String(16), nullable=True)  # 权属 (DeptCode2)
    unit_care: Mapped[str | None] = mapped_column(String(16), nullable=True)  # 养护 (DeptCode3)
    source: Mapped[str] = mapped_column(String(8))  # 实测 | 更新
    surveyed_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # ORDate
    changed_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # CHDate
    updated_at: Mapped[datetime] = mapped_column()
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)


class ComponentHistory(Base):
    """One change of a component: who, when, what changed (field: [before, after]) and why."""

    __tablename__ = "component_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component_id: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # add | change | retire
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reason: Mapped[str] = mapped_column(String(200), default="")
    # the idempotency key of the update that wrote it (feeds.checks.scoped_key: who + the client's id)
    key: Mapped[str | None] = mapped_column(String(170), nullable=True, unique=True, index=True)


class Proposal(Base):
    """A supervisor's handset proposal of a 部件 update (a new object, a move, a state) and its decision."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)  # the proposal's number
    key: Mapped[str] = mapped_column(String(170), unique=True, index=True)  # supervisor + client id
    supervisor: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column()  # when the phone made it
    received_at: Mapped[datetime] = mapped_column()
    action: Mapped[str] = mapped_column(String(8))  # add | move | state
    class_code: Mapped[str] = mapped_column(String(4))
    component_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # move, state: the object
    grid_code: Mapped[str | None] = mapped_column(String(15), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)  # name, lon, lat, geometry, state, note …
    media: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the photo's reference
    status: Mapped[str] = mapped_column(String(8), index=True)  # 待审 | 已采纳 | 已退回
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    decider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(200), default="")  # the decision's reason
    decision_key: Mapped[str | None] = mapped_column(String(170), nullable=True)
    result_component: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the object added
