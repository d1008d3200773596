"""The production web server: gunicorn, one worker, a thread pool (Flask-SocketIO's threading mode).

Flask-SocketIO documents gunicorn with one worker and ``--threads`` for ``async_mode="threading"``;
simple-websocket takes the connection from gunicorn's socket, so every open websocket holds one thread
of the pool. Several workers in one gunicorn would need sticky sessions gunicorn does not have: scale
out with several single-worker processes behind nginx ``ip_hash`` instead (README "Production").

The worker builds the application itself (:func:`serve`'s ``make`` runs in the worker, after the fork)
because the live core's threads — writer, ticks, chores — do not survive a fork. A SIGTERM stops the
runtime at once (drains the writer, closes the websockets), so gunicorn's graceful stop does not wait
its whole timeout for connections that never end by themselves.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from gridwall.settings import THREADS

log = logging.getLogger(__name__)

BOOT_TIMEOUT = 300  # seconds a worker may take to start: rebuilding the live state of a large record
GRACEFUL = 10  # seconds a stopping worker waits for requests in flight


@dataclass(frozen=True)
class Served:
    """What the worker serves: the WSGI app, how to stop what runs behind it, what to do once ready."""

    wsgi: Any
    stop: Callable[[], None]
    ready: Callable[[int], None] = lambda port: None  # called with the bound port, before accepting


def bind_address(host: str, port: int) -> str:
    """gunicorn's ``bind`` for a host and port (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class _Gunicorn(BaseApplication):
    """gunicorn configured in code (no config file, no command line of its own)."""

    def __init__(self, make: Callable[[], Served], options: dict[str, Any]) -> None:
        self._make = make
        self._options = options
        self.served: Served | None = None
        super().__init__()

    def load_config(self) -> None:
        """Set the options (called by gunicorn before it forks)."""
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the application (called by gunicorn in the worker)."""
        self.served = self._make()
        return self.served.wsgi


def serve(make: Callable[[], Served], *, host: str, port: int, threads: int = THREADS) -> int:
    """Serve what ``make`` builds until SIGTERM or SIGINT; the exit status of the server."""
    app: _Gunicorn

    def post_worker_init(worker: Any) -> None:
        served = app.served
        assert served is not None
        stopping = threading.Event()
        graceful = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:  # a signal handler only flags; a thread stops
            stopping.set()
            if callable(graceful):
                graceful(signum, frame)

        def stop_when_asked() -> None:  # on SIGTERM, or when the arbiter died (SIGKILL) and left us
            while not stopping.wait(1.0):
                if os.getppid() != worker.ppid:
                    break
            served.stop()

        signal.signal(signal.SIGTERM, on_term)
        threading.Thread(target=stop_when_asked, name="gw-stop", daemon=True).start()
        served.ready(int(worker.sockets[0].getsockname()[1]))

    def worker_exit(server: Any, worker: Any) -> None:  # also after SIGINT/SIGQUIT (a quick stop)
        if app.served is not None:
            app.served.stop()

    app = _Gunicorn(
        make,
        {
            "bind": bind_address(host, port),
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "worker_connections": max(1000, threads),
            "timeout": BOOT_TIMEOUT,
            "graceful_timeout": GRACEFUL,
            "loglevel": "warning",
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "gridwall",
            "post_worker_init": post_worker_init,
            "worker_exit": worker_exit,
        },
    )
    try:
        app.run()
    except SystemExit as exc:  # gunicorn's arbiter ends with sys.exit
        return int(exc.code or 0)
    return 0
