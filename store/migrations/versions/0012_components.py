"""components: the 部件 inventory (issue 18), its change history, and the component a case names

``components`` holds each surveyed object (16-digit identifier, class, GeoJSON geometry and a
representative point, grid, state, the 主管/权属/养护 units, source, dates, free attributes);
``component_history`` every change (who, when, what, why); ``cases.component_id`` the object a
report names.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "components",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("class_code", sa.String(length=4), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("geometry", sa.Text(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("unit_main", sa.String(length=16), nullable=True),
        sa.Column("unit_owner", sa.String(length=16), nullable=True),
        sa.Column("unit_care", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("surveyed_on", sa.Date(), nullable=True),
        sa.Column("changed_on", sa.Date(), nullable=True),
        sa.Column("updated_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attributes", store.db.JSONType, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_components_class_code"), ["class_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_components_grid_code"), ["grid_code"], unique=False)
    op.create_table(
        "component_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("component_id", sa.String(length=16), nullable=False),
        sa.Column("at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("changes", store.db.JSONType, nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("component_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_component_history_component_id"), ["component_id"], unique=False)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("component_id", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_component_id"), ["component_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_component_id"))
        batch_op.drop_column("component_id")
    with op.batch_alter_table("component_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_component_history_component_id"))
    op.drop_table("component_history")
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_components_grid_code"))
        batch_op.drop_index(batch_op.f("ix_components_class_code"))
    op.drop_table("components")
