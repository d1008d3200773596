"""handovers: the shift handover (交班) and its acknowledgement (接班), issue 21 part 4

One row per shift: its start and end, who handed over and when, the snapshot taken then (open cases
by stage and age, overdue, near-deadline, emergencies, tasks out, open 督办单; JSON), the outgoing
shift leader's notes, the opening command's idempotency key, and who acknowledged it, when, with
what notes (and that command's key).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 23:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("shift_start", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("shift_end", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("snapshot", store.db.JSONType, nullable=False),
        sa.Column("notes", sa.String(length=2000), nullable=False),
        sa.Column("key", sa.String(length=170), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ack_notes", sa.String(length=2000), nullable=False),
        sa.Column("ack_key", sa.String(length=170), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        sa.UniqueConstraint("shift_start"),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handovers_created_by"), ["created_by"], unique=False)
        batch_op.create_index(batch_op.f("ix_handovers_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_handovers_acknowledged_by"), ["acknowledged_by"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handovers_acknowledged_by"))
        batch_op.drop_index(batch_op.f("ix_handovers_created_at"))
        batch_op.drop_index(batch_op.f("ix_handovers_created_by"))
    op.drop_table("handovers")
