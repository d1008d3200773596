"""Handsets: a supervisor's device tokens and what each app said of itself (``handsets``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store.accounts import issue_token
from store.models import Handset, Token

APP_TOKEN_PREFIX = "城管通 "  # the name of a handset app's token: "城管通 <person id>"


@dataclass(frozen=True)
class Device:
    """One device token of a supervisor, with what its app last said (None: it never did)."""

    token_id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    app_version: str | None
    user_agent: str | None
    battery: float | None
    charging: bool | None
    seen_at: datetime | None


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))


def record_hello(
    conn: Connection,
    token_id: int,
    person: str,
    *,
    version: str,
    user_agent: str,
    battery: float | None,
    charging: bool | None,
    at: datetime,
) -> None:
    """Keep what a handset app says of itself (one row per token, replaced)."""
    values = {
        "person_id": person,
        "app_version": version[:32],
        "user_agent": user_agent[:300],
        "battery": battery,
        "charging": charging,
        "seen_at": at,
    }
    done = conn.execute(update(Handset).where(Handset.token_id == token_id).values(**values))
    if not done.rowcount:
        conn.execute(insert(Handset).values(token_id=token_id, **values))


def devices_of(conn: Connection, person: str) -> list[Device]:
    """A supervisor's device tokens, the ones in use first, newest first."""
    rows = conn.execute(
        select(
            Token.id,
            Token.name,
            Token.prefix,
            Token.created_at,
            Token.revoked_at,
            Handset.app_version,
            Handset.user_agent,
            Handset.battery,
            Handset.charging,
            Handset.seen_at,
        )
        .outerjoin(Handset, Handset.token_id == Token.id)
        .where(Token.kind == "device", Token.person_id == person)
        .order_by(Token.revoked_at.is_not(None), Token.id.desc())
    ).all()
    return [
        Device(
            token_id=r[0],
            name=r[1],
            prefix=r[2],
            created_at=_utc(r[3]) or r[3],
            revoked_at=_utc(r[4]),
            app_version=r[5],
            user_agent=r[6],
            battery=r[7],
            charging=r[8],
            seen_at=_utc(r[9]),
        )
        for r in rows
    ]


def issue_app_token(session: Session, person: str) -> tuple[int, str]:
    """A new device token for a supervisor's handset app (id, secret); the person's earlier app tokens
    are revoked in the same transaction (one phone per supervisor: a lost phone stops when the new one
    is paired). Raises ``AccountError`` for someone who is not an active supervisor."""
    name = f"{APP_TOKEN_PREFIX}{person}"
    session.execute(
        update(Token)
        .where(Token.kind == "device", Token.person_id == person, Token.name == name)
        .where(Token.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    token, secret = issue_token(session, "device", name, person_id=person)
    return token.id, secret
