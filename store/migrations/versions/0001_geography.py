"""geography

Revision ID: 0001
Revises:
Create Date: 2026-11-27 02:19:18.738076
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "districts",
        sa.Column("adcode", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("lattice_lon0", sa.Float(), nullable=False),
        sa.Column("lattice_x0", sa.Float(), nullable=False),
        sa.Column("lattice_y0", sa.Float(), nullable=False),
        sa.Column("cell_m", sa.Float(), nullable=False),
        sa.Column("streets_source", sa.String(length=16), nullable=False),
        sa.Column("built_at", store.db.UTCDateTime(), nullable=False),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("adcode"),
    )
    op.create_table(
        "streets",
        sa.Column("code", sa.String(length=9), nullable=False),
        sa.Column("district_adcode", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=128), nullable=False),
        sa.Column("generated", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_adcode"],
            ["districts.adcode"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("streets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_streets_district_adcode"), ["district_adcode"], unique=False)

    op.create_table(
        "communities",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=128), nullable=False),
        sa.Column("generated", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["street_code"],
            ["streets.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_communities_street_code"), ["street_code"], unique=False)

    op.create_table(
        "responsibility_areas",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("grid_count", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["street_code"],
            ["streets.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("responsibility_areas", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_responsibility_areas_street_code"), ["street_code"], unique=False
        )

    op.create_table(
        "grids",
        sa.Column("code", sa.String(length=15), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("area_code", sa.String(length=16), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("lattice_row", sa.Integer(), nullable=False),
        sa.Column("lattice_col", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_code"],
            ["responsibility_areas.code"],
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["communities.code"],
        ),
        sa.ForeignKeyConstraint(
            ["street_code"],
            ["streets.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("grids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grids_area_code"), ["area_code"], unique=False)
        batch_op.create_index("ix_grids_bbox", ["min_lon", "min_lat", "max_lon", "max_lat"], unique=False)
        batch_op.create_index(batch_op.f("ix_grids_community_code"), ["community_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_grids_street_code"), ["street_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grids_street_code"))
        batch_op.drop_index(batch_op.f("ix_grids_community_code"))
        batch_op.drop_index("ix_grids_bbox")
        batch_op.drop_index(batch_op.f("ix_grids_area_code"))

    op.drop_table("grids")
    with op.batch_alter_table("responsibility_areas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_responsibility_areas_street_code"))

    op.drop_table("responsibility_areas")
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_communities_street_code"))

    op.drop_table("communities")
    with op.batch_alter_table("streets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_streets_district_adcode"))

    op.drop_table("streets")
    op.drop_table("districts")
