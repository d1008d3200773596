"""Feeds: socket namespaces, HTTP ingest, the ordered pipeline and live state (see design.md §3)."""
