"""Replays of real data into a running GridWall, as a client of its ``/device`` feed.

The sender and the plans live in :mod:`feeds.replay.sender` (the design, time shifts and lanes are
described there), the sources in :mod:`feeds.replay.geolife` and :mod:`feeds.replay.r311`; this
package loads them on first use so that ``python app.py`` starts without them.
"""

from __future__ import annotations

import importlib
from typing import Any

from feeds.replay.base import ReplayError

__all__ = ["ReplayError"]


def __getattr__(name: str) -> Any:
    """The sender's names (``feeds.replay.sender``), loaded on first use: the CLI stays quick to start."""
    if name.startswith("__") or name == "sender":
        raise AttributeError(name)
    return getattr(importlib.import_module("feeds.replay.sender"), name)
