"""What every live process needs before its parts are built: the lifecycle context, capped malloc
arenas, and a settled GC.

The parts themselves are built in one place, :func:`gridwall.runtime.build`.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys

from sqlalchemy.engine import Engine

from domain.catalogue import load_catalogue
from domain.lifecycle import Context, Policy
from domain.workcalendar import load_calendar
from store.cases import sync_departments
from store.db import transaction

log = logging.getLogger(__name__)


def build_context(engine: Engine, edition: str = "cjt214", policy: Policy | None = None) -> Context:
    """The lifecycle context of the stored city: catalogue (departments synced), calendar and policy."""
    catalogue = load_catalogue(edition)
    with transaction(engine) as s:
        sync_departments(s, catalogue)
    return Context(catalogue=catalogue, calendar=load_calendar(), policy=policy or Policy())


GC_THRESHOLDS = (20_000, 50, 100)  # CPython's default (2,000, 10, 10) collects every few ms at full ingest


MALLOC_ARENAS = 2  # glibc malloc arenas per process unless MALLOC_ARENA_MAX says otherwise
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at :data:`MALLOC_ARENAS` (False where there is no glibc, or
    ``MALLOC_ARENA_MAX`` is set: glibc read it itself).

    glibc gives threads their own arenas, up to eight per core, and seldom returns what is freed in
    them: a web worker's thread pool grew 480 → 729 MB under the fuzz and kept it (python -m bench
    fuzz, BENCHMARKS.md "Memory under the fuzz"). Called before a process starts its threads.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(MALLOC_ARENAS)))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def trim_malloc() -> bool:
    """Give the free pages inside glibc's heap back to the system (``malloc_trim(0)``); False where
    there is no glibc.

    glibc returns freed memory by itself only from the top of its heap: what page renders over ~15,000
    open cases freed in the middle stayed resident (the web worker 300 → 357 MB after 1,000 desk pages,
    back to 299 MB after one ``malloc_trim``; BENCHMARKS.md "Fuzz, full run #4").
    """
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(ctypes.c_size_t(0))
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return False
    return True


_libc: ctypes.CDLL | None = None


def settle_gc() -> None:
    """Move what start-up loaded (city, index, live state) out of the collector's way; collect less often.

    A server that has loaded its city keeps those objects for its life: ``gc.freeze`` stops every full
    collection from walking them again, and a higher first threshold spaces out the young collections
    the ingest path triggers with its short-lived objects (python -m bench ingest).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
