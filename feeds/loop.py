"""One background thread per object: the tick loop, the aggregator and the stream consumer."""

from __future__ import annotations

import threading
from typing import ClassVar


class BackgroundLoop:
    """Starts ``_run`` in one daemon thread and stops it: ``_run`` returns once ``_stop`` is set."""

    thread_name: ClassVar[str] = "gw-loop"
    join_timeout: ClassVar[float] = 10.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (a second call while it runs does nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end and wait for it (at most ``join_timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError
