"""Replays of real data into a running GridWall, as a client of its ``/device`` feed.

A replay is a *plan* — the people it speaks for, a gateway token name and a time-ordered list of
``/device`` events (:class:`Send`) — built from real files by :mod:`feeds.replay.geolife` (GPS
traces → ``positions`` batches) or :mod:`feeds.replay.r311` (US 311 service requests → a case
``command`` chain). :class:`Sender` plays a plan over a handful of python-socketio connections with
a gateway token and waits for every acknowledgement (a bounded in-flight window; at most one event
of a *lane* — a case, a shard of supervisors — in flight, so a case's commands arrive in order).
Nothing is written behind the pipeline's back: the only direct store writes are
:func:`setup_people` (the replay's people and its gateway token, when run next to the database).

Time: every source instant ``t`` is sent as ``t + shift``. With a speed factor ``S`` an event goes
``(t - first) / S`` seconds after the start and ``shift`` puts the replay's *anchor* (its last
instant, or ``--as-of``) at the instant the replay ends, so no instant is ever ahead of the clock and
real spacing is kept; at ``S = 1`` the first instant is the start. ``--speed max`` sends as fast as
the acknowledgements come back and anchors at the start. See docs/replay.md.
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
