"""Tables of the geography: districts, streets, communities, unit grids, responsibility areas.

Geometry is kept as GeoJSON (WGS-84) in a JSON column plus bbox and centroid columns, which runs
unchanged on SQLite and PostgreSQL (tech-notes §5); PostGIS is not needed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, JSONType, utcnow


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
