"""desk sessions (server-side login sessions) and grid staff rosters

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 09:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_person_id"), ["person_id"], unique=False)
    op.create_table(
        "grid_staff",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("duty", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("imported_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["grid_code"], ["grids.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("grid_staff", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grid_staff_grid_code"), ["grid_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grid_staff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grid_staff_grid_code"))
    op.drop_table("grid_staff")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_person_id"))
        batch_op.drop_index(batch_op.f("ix_sessions_expires_at"))
    op.drop_table("sessions")
