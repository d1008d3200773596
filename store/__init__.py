"""The store: SQLAlchemy 2 tables, engine from a URL (SQLite default, PostgreSQL), migrations."""
