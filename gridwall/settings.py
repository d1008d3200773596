"""What a GridWall process is told: where its data lives, which database and Redis, how it runs."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from domain.lifecycle import Policy

Role = Literal["embedded", "web", "ingest", "aggregator"]
ROLES: tuple[Role, ...] = ("embedded", "web", "ingest", "aggregator")
# server threads of a web process: every open websocket (wall, desk, handset, gateway) holds one;
# gunicorn's pool makes them only as clients connect, so a high bound costs nothing when idle
THREADS = 2048


@dataclass(frozen=True)
class Settings:
    """One process's settings (``app.py run`` builds them from its options and the environment)."""

    data_dir: Path
    db_url: str
    redis_url: str | None = None  # scale-out roles: live state, message queue, ingest stream
    redis_prefix: str = "gw"
    edition: str = "cjt214"  # the class catalogue: cjt214 or gbt30428
    interval: float = 1.0  # seconds between ticks
    lock_ttl: float | None = None  # aggregator: producer lock TTL (None: feeds.aggregator.LOCK_TTL)
    trusted_proxies: int = 0  # proxies in front whose X-Forwarded-For/-Proto/-Host are believed
    # the two centres' optional steps (domain.lifecycle.Policy); every process of a deployment the same
    feedback_review: bool = False  # the 指挥中心 reviews each 处理反馈 (反馈审核)
    acceptor_check: bool = False  # the acceptor issues each 核查 task (派发核查); else it goes out at once

    def policy(self) -> Policy:
        """The lifecycle policy of this centre."""
        return Policy(feedback_review=self.feedback_review, acceptor_issues_check=self.acceptor_check)


def env_flag(name: str) -> bool:
    """An on/off environment variable: 1, true, yes or on (any case) is on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def settings_from(
    data_dir: str | None, db: str | None, *, redis_url: str | None = None, redis_prefix: str = "gw",
    edition: str = "cjt214", lock_ttl: float | None = None, trusted_proxies: int = 0,
    feedback_review: bool | None = None, acceptor_check: bool | None = None,
) -> Settings:  # fmt: skip
    """Settings from the command line, else the environment (GW_DATA_DIR, GW_DB_URL, GW_FEEDBACK_REVIEW,
    GW_ACCEPTOR_CHECK), else the defaults."""
    from store.db import sqlite_url

    folder = Path(data_dir or os.environ.get("GW_DATA_DIR") or "./var").expanduser().resolve()
    url = db or os.environ.get("GW_DB_URL") or sqlite_url(folder)
    if not 0 <= trusted_proxies <= 5:
        raise ValueError(f"--trusted-proxies {trusted_proxies}: give 0 (direct) to 5")
    from store.handover import shift_plan

    shift_plan()  # a GW_SHIFTS that does not tile the day stops the start (domain.shift.ShiftError)
    return Settings(
        folder, url, redis_url, redis_prefix, edition, lock_ttl=lock_ttl, trusted_proxies=trusted_proxies,
        feedback_review=env_flag("GW_FEEDBACK_REVIEW") if feedback_review is None else feedback_review,
        acceptor_check=env_flag("GW_ACCEPTOR_CHECK") if acceptor_check is None else acceptor_check,
    )  # fmt: skip


def load_secrets(data_dir: Path) -> dict[str, str]:
    """The kiosk token and session key, created once in ``<data-dir>/secrets.json`` (mode 0600)."""
    path = data_dir / "secrets.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    values = {"kiosk_token": secrets.token_urlsafe(24), "secret_key": secrets.token_hex(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh)
    return values
