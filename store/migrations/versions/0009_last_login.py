"""people.last_login_at: when a person last logged in at the desk

The first start keeps the generated admin password in the data folder and prints it on every start
until the admin has logged in (issue 20 item 8: a first start killed before it printed the password
left no way in).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_login_at", store.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("last_login_at")
