"""proposals: a supervisor's handset proposal of a 部件 update (issue 18), and the component events' keys

``proposals`` holds each proposal of a new object, a move or a state change (who, when, the payload,
the photo's media reference) and the surveyor's decision (status 待审/已采纳/已退回, decider, reason);
``component_history.key`` the client's idempotency key of the update that wrote the entry (a retry
with the same key is applied once).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key", sa.String(length=170), nullable=False),
        sa.Column("supervisor", sa.String(length=64), nullable=False),
        sa.Column("at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("class_code", sa.String(length=4), nullable=False),
        sa.Column("component_id", sa.String(length=16), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("payload", store.db.JSONType, nullable=False),
        sa.Column("media", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("decided_at", store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decider", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("decision_key", sa.String(length=170), nullable=True),
        sa.Column("result_component", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposals_key"), ["key"], unique=True)
        batch_op.create_index(batch_op.f("ix_proposals_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_proposals_supervisor"), ["supervisor"], unique=False)
    with op.batch_alter_table("component_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=170), nullable=True))
        batch_op.create_index(batch_op.f("ix_component_history_key"), ["key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("component_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_component_history_key"))
        batch_op.drop_column("key")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposals_supervisor"))
        batch_op.drop_index(batch_op.f("ix_proposals_status"))
        batch_op.drop_index(batch_op.f("ix_proposals_key"))
    op.drop_table("proposals")
