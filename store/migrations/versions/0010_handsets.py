"""handsets: what each handset app (城管通, /m) last said of itself (version, browser, battery)

The desk's supervisor page shows a supervisor's devices with it (issue 16 item 7).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handsets",
        sa.Column("token_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("app_version", sa.String(length=32), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("charging", sa.Boolean(), nullable=True),
        sa.Column("seen_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["tokens.id"]),
        sa.PrimaryKeyConstraint("token_id"),
    )
    with op.batch_alter_table("handsets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handsets_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("handsets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handsets_person_id"))
    op.drop_table("handsets")
