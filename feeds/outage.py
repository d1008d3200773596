"""One log line per outage of a service the loops depend on, not a traceback per failed attempt.

While Redis or the database is unreachable, the background loops (ticks, the writer, the counters,
the chores) fail on every attempt until it is back; their answers are already named (``unavailable``)
and nothing acknowledged is lost. What an operator needs in the log is when the outage began, what
it was and when it ended: :class:`Outages` logs one warning at the first failed attempt, one line when
an attempt succeeds again (with the length and the number of failed attempts), and keeps a traceback
for anything that is not an outage (a bug).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from sqlalchemy import exc as sa_exc

# errors that mean "the service is not reachable now", not "the code is wrong"
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a service is unreachable (Redis, the database, a socket)."""
    if isinstance(exc, OUTAGE_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def service_of(exc: BaseException) -> str:
    """Which service an outage error is about, in words."""
    if isinstance(exc, redis.RedisError):
        return "Redis"
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return "the database"
    return "a connection"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The error's type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__


class Outages:
    """The outage state of one loop: :meth:`failed` after a failed attempt, :meth:`ok` after a good one."""

    def __init__(
        self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.what, self.clock = logger, what, clock
        self.since: float | None = None  # when the current outage began (None: none)
        self.attempts = 0  # failed attempts in the current outage
        self.outages = 0  # outages seen so far

    def failed(self, exc: BaseException) -> None:
        """Log a failed attempt: an outage once (a warning), anything else with its traceback."""
        if not is_outage(exc):
            self.logger.error("%s failed", self.what, exc_info=exc)
            return
        self.attempts += 1
        if self.since is None:
            self.since, self.outages = self.clock(), self.outages + 1
            self.logger.warning(
                "%s: %s unavailable (%s); retrying, one line when it is back",
                self.what, service_of(exc), one_line(exc),
            )  # fmt: skip
        else:
            self.logger.debug("%s: still unavailable (%s)", self.what, one_line(exc))

    def ok(self) -> None:
        """An attempt succeeded: end the outage, if there was one, with one line."""
        if self.since is None:
            return
        self.logger.warning(
            "%s: back after %.1f s (%d failed attempts)", self.what, self.clock() - self.since, self.attempts
        )
        self.since, self.attempts = None, 0
