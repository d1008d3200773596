"""indexes for the desk pages at scale: a grid's cases newest first (all, open only)

(An index of positions by grid was tried for the last visit and left out: it halved the insert rate
of fixes, python -m bench ingest; the last visit comes from the live state and the supervisors'
index instead, dashboard.deskdata.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 12:00:00.000000
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_grid_reported", ["grid_code", "reported_at"], unique=False)
        batch_op.create_index("ix_cases_grid_open", ["grid_code", "open", "reported_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_grid_open")
        batch_op.drop_index("ix_cases_grid_reported")
