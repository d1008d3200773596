"""People, device/gateway/kiosk tokens and API keys; authentication by token hash; embedded provisioning.

Only hashes are stored: token secrets as SHA-256 (looked up by hash, so no constant-time compare is
needed), passwords with werkzeug's salted hash. A secret is returned once, when it is issued.

Token rows are read and written through Core and handed out as detached ``Token`` snapshots:
``store.db`` registers ``MutableDict`` on the shared ``JSONType`` instance, so the ORM refuses to load
or build a ``Token`` whose ``scope`` is a list.
"""

from __future__ import annotations

import csv
import hashlib
import os
import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, exists, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash, generate_password_hash

from domain.lifecycle import Role
from store.db import transaction, utcnow
from store.models import Person, ResponsibilityArea, Token

# surveyor: 部件普查/更新员 (issue 18), updates the 部件 inventory and decides the handsets' proposals
PERSON_ROLES = (
    "supervisor", "acceptor", "shift_leader", "dispatcher", "department", "leader", "admin", "surveyor",
)  # fmt: skip
TOKEN_KINDS = ("device", "gateway", "kiosk", "api")
AUTH_REASONS = ("token_missing", "token_unknown", "token_revoked", "token_wrong_kind")
PREFIX_LEN = 6  # characters of a secret kept in clear to recognise a token in lists
EMBEDDED_KIOSK_NAME = "embedded wall"

_ID_MAX, _NAME_MAX, _CODE_MAX = 64, 64, 16
_TOKENS = cast(Table, Token.__table__)
_PEOPLE = cast(Table, Person.__table__)
_T = _TOKENS.c
_P = _PEOPLE.c


def _snapshot(row: dict[str, Any]) -> Token:
    """A detached ``Token`` holding a row's values (set without ORM attribute events)."""
    token = Token()
    for key, value in row.items():
        set_committed_value(token, key, list(value or []) if key == "scope" else value)
    return token


class AccountError(ValueError):
    """Bad input to an account or token operation; the message is one clear line."""


class AuthError(Exception):
    """A request's token was refused; ``reason`` names why (one of ``AUTH_REASONS``)."""

    def __init__(self, reason: str) -> None:
        if reason not in AUTH_REASONS:
            raise ValueError(f"unknown auth failure reason {reason!r}")
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who an authenticated token speaks as."""

    token_id: int
    kind: str
    name: str
    person_id: str | None  # device tokens: the supervisor; others None
    role: str | None  # api keys: lifecycle role such as "call_center", "leader", "department:<code>"
    scope: frozenset[str]  # gateway: person ids it may speak for; frozenset({"*"}) = everyone

    def may_speak_for(self, person_id: str) -> bool:
        """Device: its own person only; gateway: a person in its scope (or everyone with "*")."""
        if self.kind == "device":
            return self.person_id is not None and person_id == self.person_id
        if self.kind == "gateway":
            return "*" in self.scope or person_id in self.scope
        return False


ADMIN_PASSWORD_FILE = "admin-password.txt"  # in the data folder, mode 0600, until the admin's first login


@dataclass(frozen=True)
class Provisioned:
    """What ``provision_embedded`` created now (secrets to hand over once)."""

    admin_password: str | None
    supervisors_created: int
    devices: list[tuple[str, str]]  # (person id, device secret) created now


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a token secret (what the tokens table keeps)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh random token secret."""
    return secrets.token_urlsafe(24)


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    """A stripped field value checked for presence and length (AccountError otherwise)."""
    if value is None or not value.strip():
        if required:
            raise AccountError(f"{what} must not be empty")
        return None
    value = value.strip()
    if len(value) > limit:
        raise AccountError(f"{what} {value!r} is longer than {limit} characters")
    return value


def _check_api_role(role: str | None) -> str:
    """An API key's lifecycle role: a Role value, or ``department:<code>`` for a department."""
    if role is None or not role.strip():
        raise AccountError("an api key needs a role (--role)")
    role = role.strip()
    roles = [r.value for r in Role if r is not Role.DEPARTMENT]
    if role in roles:
        return role
    if role.startswith("department:"):
        code = role.split(":", 1)[1].strip()
        if code and len(code) <= _CODE_MAX:
            return f"department:{code}"
    raise AccountError(f"unknown api role {role!r}: use one of {', '.join(roles)} or department:<code>")


def add_person(
    session: Session,
    id: str,
    role: str,
    *,
    name: str | None = None,
    department: str | None = None,
    area: str | None = None,
    password: str | None = None,
    source: str = "manual",
) -> Person:
    """Add a person; validates role and id, hashes the password (werkzeug)."""
    pid = _text(id, "person id", _ID_MAX, required=True)
    assert pid is not None
    if any(ch.isspace() or ch == "," for ch in pid):
        raise AccountError(f"person id {pid!r} must not contain spaces or commas")
    if role not in PERSON_ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(PERSON_ROLES)}")
    dept = _text(department, "department code", _CODE_MAX)
    if role == "department" and dept is None:
        raise AccountError(f"person {pid!r} has role department and needs a department code")
    if session.get(Person, pid) is not None:
        raise AccountError(f"person {pid!r} already exists")
    if password is not None and not password:
        raise AccountError("password must not be empty")
    person = Person(
        id=pid,
        name=_text(name, "name", _NAME_MAX) or pid,
        role=role,
        department_code=dept,
        area_code=_text(area, "area code", _CODE_MAX),
        password_hash=generate_password_hash(password) if password else None,
        source=source,
        active=True,
        created_at=utcnow(),
    )
    session.add(person)
    session.flush()
    return person


def set_password(session: Session, person_id: str, password: str) -> None:
    """Set (replace) a person's password; unknown person or empty password -> AccountError."""
    person = session.get(Person, person_id)
    if person is None:
        raise AccountError(f"no person {person_id!r}")
    if not password:
        raise AccountError("password must not be empty")
    person.password_hash = generate_password_hash(password)
    session.flush()


_DUMMY_HASH: list[str] = []  # a hash of a random password, made on first use


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def check_password(session: Session, person_id: str, password: str) -> Person | None:
    """The active person whose password matches, else None.

    A name that cannot log in (unknown, inactive, without a password) costs one hash check too, so the
    answer's time does not tell which user names exist (a wrong password took ~90 ms, an unknown
    name ~2 ms).
    """
    person = session.get(Person, person_id)
    if person is None or not person.active or not person.password_hash or not password:
        check_password_hash(_dummy_hash(), password or "-")
        return None
    return person if check_password_hash(person.password_hash, password) else None


def issue_token(
    session: Session,
    kind: str,
    name: str,
    *,
    person_id: str | None = None,
    role: str | None = None,
    scope: Iterable[str] = (),
    secret: str | None = None,
) -> tuple[Token, str]:
    """Issue a token; returns the row and its secret (shown once, only the hash is stored)."""
    if kind not in TOKEN_KINDS:
        raise AccountError(f"unknown token kind {kind!r}: use one of {', '.join(TOKEN_KINDS)}")
    label = _text(name, "token name", _NAME_MAX, required=True)
    scope_ids = sorted({s.strip() for s in scope if s and s.strip()})
    if person_id is not None and kind != "device":
        raise AccountError(f"--person applies to device tokens only, not {kind}")
    if role is not None and kind != "api":
        raise AccountError(f"--role applies to api keys only, not {kind}")
    if scope_ids and kind != "gateway":
        raise AccountError(f"--scope applies to gateway tokens only, not {kind}")
    api_role: str | None = None
    if kind == "device":
        if not person_id:
            raise AccountError("a device token needs --person (an active supervisor)")
        person = session.get(Person, person_id)
        if person is None:
            raise AccountError(f"no person {person_id!r}")
        if person.role != "supervisor" or not person.active:
            raise AccountError(f"person {person_id!r} is not an active supervisor")
    elif kind == "gateway":
        if not scope_ids:
            raise AccountError("a gateway token needs --scope (person ids, comma separated, or *)")
        if "*" in scope_ids and len(scope_ids) > 1:
            raise AccountError("scope * (everyone) cannot be combined with person ids")
        if scope_ids != ["*"]:
            known = set(session.scalars(select(Person.id).where(Person.id.in_(scope_ids))))
            unknown = [s for s in scope_ids if s not in known]
            if unknown:
                raise AccountError(f"scope names unknown people: {', '.join(unknown)}")
    elif kind == "api":
        api_role = _check_api_role(role)
    if secret is not None and len(secret) < 16:
        raise AccountError("a token secret must have at least 16 characters")
    value = secret if secret is not None else new_secret()
    digest = hash_secret(value)
    if session.scalar(select(_T.id).where(_T.hash == digest)) is not None:
        raise AccountError("a token with this secret already exists")
    row: dict[str, Any] = {
        "kind": kind,
        "name": label,
        "hash": digest,
        "prefix": value[:PREFIX_LEN],
        "person_id": person_id if kind == "device" else None,
        "role": api_role,
        "scope": scope_ids,
        "created_at": utcnow(),
        "revoked_at": None,
    }
    row["id"] = session.execute(insert(_TOKENS).returning(_T.id), row).scalar_one()
    return _snapshot(row), value


def revoke_token(session: Session, token_id: int) -> Token:
    """Revoke a token (sets revoked_at once; revoking again keeps it); unknown id -> AccountError."""
    found = session.execute(select(_TOKENS).where(_T.id == token_id)).mappings().first()
    if found is None:
        raise AccountError(f"no token {token_id}")
    row = dict(found)
    if row["revoked_at"] is None:
        row["revoked_at"] = utcnow()
        session.execute(update(_TOKENS).where(_T.id == token_id).values(revoked_at=row["revoked_at"]))
    return _snapshot(row)


def stale_tokens(db: Session | Connection, token_ids: Iterable[int]) -> dict[int, str]:
    """Of these tokens, those that may no longer connect: id → ``token_revoked`` (revoked, or a device
    whose supervisor is no longer active) or ``token_unknown`` (deleted)."""
    ids = sorted(set(token_ids))
    out: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = db.execute(
            select(_T.id, _T.revoked_at, Person.active)
            .select_from(_TOKENS.outerjoin(Person, Person.id == _T.person_id))
            .where(_T.id.in_(chunk))
        ).all()
        seen = {r.id for r in rows}
        out.update({r.id: "token_revoked" for r in rows if r.revoked_at is not None or r.active is False})
        out.update({tid: "token_unknown" for tid in chunk if tid not in seen})
    return out


def list_tokens(session: Session) -> list[Token]:
    """Every token, oldest first, as detached snapshots (secrets are never stored, so never listed)."""
    return [_snapshot(dict(m)) for m in session.execute(select(_TOKENS).order_by(_T.id)).mappings()]


def list_people(session: Session) -> list[Person]:
    """Every person, by id."""
    return list(session.scalars(select(Person).order_by(Person.id)))


def authenticate(db: Session | Connection, secret: str | None, kinds: Collection[str]) -> Principal:
    """The principal of a token secret accepted for ``kinds``; raises AuthError(reason) otherwise.

    A device token whose supervisor has been deactivated counts as revoked.
    """
    if not secret or not secret.strip():
        raise AuthError("token_missing")
    row = db.execute(
        select(_T.id, _T.kind, _T.name, _T.person_id, _T.role, _T.scope, _T.revoked_at, _P.active)
        .select_from(_TOKENS.outerjoin(_PEOPLE, _T.person_id == _P.id))
        .where(_T.hash == hash_secret(secret.strip()))
    ).first()
    if row is None:
        raise AuthError("token_unknown")
    if row.revoked_at is not None or (row.kind == "device" and not row.active):
        raise AuthError("token_revoked")
    if row.kind not in kinds:
        raise AuthError("token_wrong_kind")
    return Principal(
        token_id=int(row.id),
        kind=row.kind,
        name=row.name,
        person_id=row.person_id,
        role=row.role,
        scope=frozenset(row.scope or ()),
    )


def area_label(area_code: str) -> str:
    """The short part of a responsibility-area code shown in names: street serial and area number."""
    return area_code[6:] if len(area_code) > 9 and area_code[:6].isdigit() else area_code


def _provision(session: Session, kiosk_secret: str, keep_admin: Path | None = None) -> Provisioned:
    """One provisioning pass in one transaction (see ``provision_embedded``)."""
    now = utcnow()
    areas = list(
        session.scalars(
            select(ResponsibilityArea.code).where(ResponsibilityArea.active).order_by(ResponsibilityArea.code)
        )
    )
    people = {
        r.id: r for r in session.execute(select(_P.id, _P.role, _P.area_code, _P.active, _P.source)).all()
    }
    covered = {r.area_code for r in people.values() if r.role == "supervisor" and r.active and r.area_code}
    new_people = [
        {
            "id": f"sup-{code}",
            "name": f"监督员 {area_label(code)}",
            "role": "supervisor",
            "area_code": code,
            "source": "embedded",
            "active": True,
            "created_at": now,
        }
        for code in areas
        if code not in covered and f"sup-{code}" not in people
    ]
    if new_people:
        session.execute(insert(_PEOPLE), new_people)
    # embedded supervisors of active areas without any device token (a revoked one counts: no reissue)
    with_device = set(session.scalars(select(_T.person_id).where(_T.kind == "device").distinct()))
    active_areas = set(areas)
    embedded = sorted(
        [
            (r.id, r.area_code)
            for r in people.values()
            if r.source == "embedded" and r.role == "supervisor" and r.active
        ]
        + [(p["id"], p["area_code"]) for p in new_people]
    )
    devices: list[tuple[str, str]] = []
    rows: list[dict[str, Any]] = []
    for pid, area in embedded:
        if pid in with_device or area not in active_areas:
            continue
        value = new_secret()
        devices.append((pid, value))
        rows.append(
            {
                "kind": "device",
                "name": f"device {pid}",
                "hash": hash_secret(value),
                "prefix": value[:PREFIX_LEN],
                "person_id": pid,
                "role": None,
                "scope": [],
                "created_at": now,
                "revoked_at": None,
            }
        )
    if rows:
        session.execute(insert(_TOKENS), rows)
    kiosk_hash = hash_secret(kiosk_secret)
    if session.scalar(select(_T.id).where(_T.hash == kiosk_hash)) is None:
        session.execute(
            insert(_TOKENS),
            [
                {
                    "kind": "kiosk",
                    "name": EMBEDDED_KIOSK_NAME,
                    "hash": kiosk_hash,
                    "prefix": kiosk_secret[:PREFIX_LEN],
                    "person_id": None,
                    "role": None,
                    "scope": [],
                    "created_at": now,
                    "revoked_at": None,
                }
            ],
        )
    password: str | None = None
    if not session.scalar(select(exists().where(_P.role == "admin"))):
        admin_id, n = "admin", 1
        while admin_id in people:
            n += 1
            admin_id = f"admin-{n}"
        password = secrets.token_urlsafe(12)
        session.add(
            Person(
                id=admin_id,
                name="管理员 admin",
                role="admin",
                password_hash=generate_password_hash(password),
                source="embedded",
                active=True,
                created_at=now,
            )
        )
        if keep_admin is not None:  # before the commit: a stop after it must not lose the only way in
            keep_admin_password(keep_admin, admin_id, password)
    return Provisioned(admin_password=password, supervisors_created=len(new_people), devices=devices)


def provision_embedded(engine: Engine, *, kiosk_secret: str, keep_admin: Path | None = None) -> Provisioned:
    """Ensure a supervisor and device per active area, the kiosk token and an admin (idempotent).

    A new admin's password is also written to ``keep_admin`` (see :func:`pending_admin_password`).
    """
    if not kiosk_secret:
        raise AccountError("the embedded kiosk token secret is empty")
    for attempt in (1, 2):
        try:
            with transaction(engine) as session:
                return _provision(session, kiosk_secret, keep_admin)
        except IntegrityError:  # another process provisioned at the same moment: its rows are there now
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def keep_admin_password(path: Path, person_id: str, password: str) -> None:
    """Write the first start's admin and password to ``path`` (mode 0600), replacing what was there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"{person_id}\n{password}\n")
    os.replace(tmp, path)


def pending_admin_password(engine: Engine, path: Path) -> tuple[str, str] | None:
    """The kept admin and password while that admin has not logged in with it; else None (file removed).

    The first start prints the password; a start stopped before it printed, or whose output was lost,
    prints it again, until the admin has logged in or the password was changed.
    """
    path = Path(path)
    try:
        person_id, password = path.read_text(encoding="utf-8").splitlines()[:2]
    except (OSError, ValueError):
        return None
    with Session(engine) as session:
        person = session.get(Person, person_id)
        pending = (
            person is not None
            and person.last_login_at is None
            and bool(person.password_hash)
            and check_password_hash(person.password_hash or "", password)
        )
    if not pending:
        path.unlink(missing_ok=True)
        return None
    return person_id, password


def write_device_tokens(path: Path, devices: Sequence[tuple[str, str]]) -> Path:
    """Append ``person_id,secret`` rows to a CSV made with mode 0600 (header when the file is new)."""
    path = Path(path)
    if not devices:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    new = os.fstat(fd).st_size == 0
    with os.fdopen(fd, "a", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if new:
            writer.writerow(("person_id", "secret"))
        writer.writerows(devices)
    return path
