"""What the replay command line needs before any replay is loaded: the error and the shipped mappings."""

from __future__ import annotations

MAPPINGS = ("la", "sf", "boston")  # the shipped mapping files, feeds/replay/mappings/<name>.toml


class ReplayError(ValueError):
    """A replay cannot be planned or run (bad options, unreadable file, bad mapping)."""
