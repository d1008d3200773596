"""addresses: the 门牌 gazetteer (issue 17) and its import log; needs_location in open case snapshots

``addresses`` holds each address as given, its normalised text (the re-import key), the WGS-84 point,
the grid it was located in, the 门牌 number and community; ``address_imports`` logs each import (its
id is the gazetteer's version: geocoders reload when it grows). The case snapshot (``cases.state``)
now carries ``needs_location`` (the LOCATE command checks it): open cases flagged in the column get
it in their snapshot here.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00.000000
"""

import json

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "addresses",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("normalised", sa.String(length=200), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("number", sa.String(length=16), nullable=True),
        sa.Column("community", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("imported_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("normalised"),
    )
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_addresses_grid_code"), ["grid_code"], unique=False)
    op.create_table(
        "address_imports",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _snapshot_needs_location(True)


def _snapshot_needs_location(value: bool) -> None:
    """Set (or drop) ``needs_location`` in the snapshot of the open cases flagged in the column."""
    conn = op.get_bind()
    cases = sa.table("cases", sa.column("id", sa.String), sa.column("state", store.db.JSONType),
                     sa.column("needs_location", sa.Boolean), sa.column("open", sa.Boolean))  # fmt: skip
    rows = conn.execute(
        sa.select(cases.c.id, cases.c.state).where(cases.c.needs_location, cases.c.open)
    ).all()
    for case_id, state in rows:
        snap = json.loads(state) if isinstance(state, str) else dict(state)
        if value:
            snap["needs_location"] = True
        else:
            snap.pop("needs_location", None)
        conn.execute(sa.update(cases).where(cases.c.id == case_id).values(state=snap))


def downgrade() -> None:
    _snapshot_needs_location(False)
    op.drop_table("address_imports")
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_addresses_grid_code"))
    op.drop_table("addresses")
