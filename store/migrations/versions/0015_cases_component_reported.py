"""an index of the cases by the 部件 they name and their report time (issue 18 item 6)

The recurring objects (the objects with at least N cases in the last days) and the evaluation of the
units by their objects group the cases of a window by ``component_id``: with ``(component_id,
reported_at)`` SQLite reads them from the index alone (about 0.1 s for 100,000 cases instead of 0.8 s
through ``ix_cases_component_id`` and the table, python -m bench components).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 00:00:00.000000
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_component_reported", ["component_id", "reported_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_component_reported")
