"""One log line per outage (issue 20): a loop failing on every attempt while Redis or the database is
down says so once, and once more when it is back; a bug keeps its traceback."""

from __future__ import annotations

import logging

import pytest
import redis
from sqlalchemy import exc as sa_exc

from feeds.outage import Outages, is_outage


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_an_outage_is_one_line_and_its_end_another(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    out = Outages(logging.getLogger("gw.test"), "tick", clock=clock)
    caplog.set_level(logging.DEBUG, logger="gw.test")
    out.ok()  # nothing to end
    for _ in range(5):  # a tick every 0.25 s while Redis is down
        out.failed(redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."))
        clock.t += 0.25
    clock.t += 18.75
    out.ok()
    out.ok()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "tick: Redis unavailable (ConnectionError: Error 111 connecting to 127.0.0.1:6379. "
        "Connection refused.); retrying, one line when it is back",
        "tick: back after 20.0 s (5 failed attempts)",
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert (out.outages, out.since, out.attempts) == (1, None, 0)


def test_the_database_down_is_an_outage_a_bug_is_not(caplog: pytest.LogCaptureFixture) -> None:
    down = sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    assert is_outage(down) and is_outage(ConnectionResetError()) and is_outage(redis.TimeoutError())
    assert not is_outage(KeyError("grid"))
    assert not is_outage(sa_exc.IntegrityError("INSERT", {}, ValueError()))
    out = Outages(logging.getLogger("gw.test"), "pipeline group")
    caplog.set_level(logging.WARNING, logger="gw.test")
    out.failed(down)
    assert "the database unavailable" in caplog.records[-1].getMessage()
    try:
        raise KeyError("grid")
    except KeyError as exc:
        out.failed(exc)  # a bug during the outage still gets its traceback
    assert caplog.records[-1].levelno == logging.ERROR and caplog.records[-1].exc_info is not None
    assert out.attempts == 1
