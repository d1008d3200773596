"""What every live process needs before its parts are built: the lifecycle context, and a settled GC.

The parts themselves are built in one place, :func:`gridwall.runtime.build`.
"""

from __future__ import annotations

import gc
import logging

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


def settle_gc() -> None:
    """Move what start-up loaded (city, index, live state) out of the collector's way; collect less often.

    A server that has loaded its city keeps those objects for its life: ``gc.freeze`` stops every full
    collection from walking them again, and a higher first threshold spaces out the young collections
    the ingest path triggers with its short-lived objects (python -m bench ingest).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
