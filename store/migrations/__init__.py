"""Alembic migrations of the GridWall store."""
