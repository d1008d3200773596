"""Media: photos (近景 / 远景 / 参照物) and voice notes uploaded over HTTP, stored by content hash.

``POST /api/v1/media`` (multipart ``file`` + ``kind`` = near | far | reference | after | voice), authenticated
by a device or gateway token or an API key (``Authorization: Bearer <secret>`` or ``X-API-Key``),
answers ``{"ref": "sha256:<hex>", "type": …, "bytes": n, "kind": …}``. The type is read from the
content (magic bytes via ``filetype``; photos are also opened by Pillow), never from the claimed
Content-Type or file name. Sizes are capped per kind (photos 10 MiB, voice 5 MiB by default): a
declared Content-Length over the cap is refused before the body is read, and the body is copied in
chunks with a running count, never held in memory whole. Files land in
``<data-dir>/media/ab/cd/<sha256>.<ext>`` through a temporary file and a rename, so the same content
is stored once and has one reference. Refusals are named (``feeds.schemas.Reason`` or an
authentication reason) in a JSON body with a 4xx status and leave a dead-letter row.

``GET /media/<ref>`` serves a file to logged-in users only (a Flask session with ``person_id`` of an
active person, an API key or a gateway token), with ``nosniff``, an ETag equal to the hash and a
year-long private cache. Reports and task results keep references in their ``media`` list; the
pipeline checks each one with :func:`check_refs` (``unknown_media``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import filetype
from flask import Blueprint, Response, redirect, request, send_file, session
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import Engine
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from feeds.http import Rejecter, json_response
from feeds.schemas import Reason
from store.accounts import AuthError, Principal, authenticate
from store.models import Person

MiB = 1024 * 1024
KINDS: dict[str, str] = {
    "near": "photo", "far": "photo", "reference": "photo", "after": "photo", "voice": "voice",
}  # fmt: skip
REF_RE = re.compile(r"sha256:([0-9a-f]{64})")
UPLOAD_KINDS = ("device", "gateway", "api")  # tokens that may upload
VIEW_KINDS = ("api", "gateway")  # tokens that may fetch (besides a logged-in session)
CACHE_SECONDS = 365 * 24 * 3600  # content-addressed: a reference never changes
_CHUNK = 64 * 1024
_HEAD = 8192  # bytes filetype reads
_MULTIPART_SLACK = 64 * 1024  # boundaries, headers and the ``kind`` field around the file


@dataclass(frozen=True)
class MediaType:
    """A stored media type: file extension, the Content-Type it is served with, photo or voice."""

    ext: str
    mime: str
    family: str  # photo | voice
    pillow: str | None = None  # the Pillow format a photo must open as


# filetype's extension → what GridWall stores; anything else is unsupported_media_type
TYPES: dict[str, MediaType] = {
    "jpg": MediaType("jpg", "image/jpeg", "photo", "JPEG"),
    "png": MediaType("png", "image/png", "photo", "PNG"),
    "webp": MediaType("webp", "image/webp", "photo", "WEBP"),
    "amr": MediaType("amr", "audio/amr", "voice"),
    "mp3": MediaType("mp3", "audio/mpeg", "voice"),
    "m4a": MediaType("m4a", "audio/mp4", "voice"),
    "mp4": MediaType("m4a", "audio/mp4", "voice"),  # MPEG-4 audio with brand mp42/isom (Android recorders)
    "aac": MediaType("aac", "audio/aac", "voice"),
    "ogg": MediaType("ogg", "audio/ogg", "voice"),  # Ogg Vorbis or Opus
    "wav": MediaType("wav", "audio/wav", "voice"),
}
EXTENSIONS: dict[str, MediaType] = {t.ext: t for t in TYPES.values()}  # stored extension → type


@dataclass(frozen=True)
class MediaLimits:
    """Largest accepted file per family, in bytes."""

    photo_bytes: int = 10 * MiB
    voice_bytes: int = 5 * MiB

    def of(self, family: str) -> int:
        """The cap of ``photo`` or ``voice``."""
        return self.photo_bytes if family == "photo" else self.voice_bytes

    @property
    def request_bytes(self) -> int:
        """The largest upload request read at all (the larger cap plus multipart framing)."""
        return max(self.photo_bytes, self.voice_bytes) + _MULTIPART_SLACK


@dataclass(frozen=True)
class Stored:
    """An accepted upload: its reference, served type, size and whether it was new."""

    ref: str
    type: str
    bytes: int
    new: bool


class MediaError(Exception):
    """An upload refused with a named reason (``feeds.schemas.Reason`` value)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_ref(ref: Any) -> str | None:
    """The hex digest of a well-formed ``sha256:<64 lowercase hex>`` reference, else None."""
    if not isinstance(ref, str):
        return None
    m = REF_RE.fullmatch(ref)
    return m.group(1) if m else None


_URL_REF_RE = re.compile(r"(?:https?://[^/?#\s]+)?/media/(sha256:[0-9a-f]{64})")


def ref_in(value: str) -> str | None:
    """The reference a media value names: ``sha256:<hex>`` itself, or this server's URL of it
    (``[http(s)://host]/media/sha256:<hex>``, e.g. an Open311 ``media_url``); None for anything else."""
    if parse_ref(value) is not None:
        return value
    m = _URL_REF_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    return m.group(1) if m else None


class MediaStore:
    """Files by SHA-256 under one folder: ``ab/cd/<hex>.<ext>``, written via ``tmp/`` and a rename."""

    def __init__(self, root: Path, limits: MediaLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or MediaLimits()
        self.tmp = self.root / "tmp"

    def _bucket(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4]

    def path_of(self, ref: str) -> Path | None:
        """The stored file of a reference (None when malformed or not stored)."""
        digest = parse_ref(ref)
        if digest is None:
            return None
        bucket = self._bucket(digest)
        for ext in EXTENSIONS:
            path = bucket / f"{digest}.{ext}"
            if path.is_file():
                return path
        return None

    def exists(self, ref: str) -> bool:
        """Whether a reference is well formed and its file is stored."""
        return self.path_of(ref) is not None

    def type_of(self, path: Path) -> MediaType:
        """The type of a stored file (from its extension, which the content decided)."""
        return EXTENSIONS[path.suffix.lstrip(".")]

    def put(self, stream: IO[bytes], kind: str) -> Stored:
        """Store an upload of a kind (near | far | reference | after | voice); MediaError names a refusal."""
        family = KINDS[kind]
        cap = self.limits.of(family)
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="up-", suffix=".part")
        tmp = Path(name)
        try:
            digest, size, head = self._copy(stream, fd, cap, family)
            media = self._detect(head, kind)
            if media.pillow is not None:
                _check_image(tmp, media)
            final = self._bucket(digest) / f"{digest}.{media.ext}"
            new = not final.is_file()
            if new:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)  # atomic: readers see the whole file or none
                _fsync_dir(final.parent)
            return Stored(f"sha256:{digest}", media.mime, size, new)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _copy(stream: IO[bytes], fd: int, cap: int, family: str) -> tuple[str, int, bytes]:
        """Copy a stream into an open file in chunks, hashing and counting; too_large past the cap."""
        sha = hashlib.sha256()
        size, head = 0, b""
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise MediaError(Reason.TOO_LARGE, f"{family} over the limit of {cap:,} bytes")
                if len(head) < _HEAD:
                    head += chunk[: _HEAD - len(head)]
                sha.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, "empty file")
        return sha.hexdigest(), size, head

    @staticmethod
    def _detect(head: bytes, kind: str) -> MediaType:
        """The type of the content (magic bytes), which must belong to the kind's family."""
        family = KINDS[kind]
        guess = filetype.guess(head)
        media = TYPES.get(guess.extension) if guess is not None else None
        if media is None or media.family != family:
            found = guess.mime if guess is not None else "unrecognised content"
            allowed = ", ".join(sorted({t.mime for t in TYPES.values() if t.family == family}))
            raise MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, f"{kind}: {found} is not one of {allowed}")
        return media


def _check_image(path: Path, media: MediaType) -> None:
    """A photo must open in Pillow as the format its magic bytes claim (a truncated or forged one fails)."""
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
    except Exception as exc:  # Pillow raises many kinds on bad input, DecompressionBombError included
        raise MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, f"not a readable {media.mime} image: {exc}") from None
    if fmt != media.pillow:
        raise MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, f"content opens as {fmt}, not {media.pillow}")


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_refs(refs: Iterable[str], store: MediaStore | None) -> tuple[Reason | None, str]:
    """``unknown_media`` for the first reference that is malformed or (with a store) not stored."""
    for ref in refs:
        if parse_ref(ref) is None:
            return Reason.UNKNOWN_MEDIA, f"media reference {ref[:80]!r} is not sha256:<64 hex digits>"
        if store is not None and not store.exists(ref):
            return Reason.UNKNOWN_MEDIA, f"media {ref} was never uploaded (POST /api/v1/media first)"
    return None, ""


# -- HTTP ---------------------------------------------------------------------------------------------

_STATUS = {
    Reason.MISSING_FIELD.value: 400,
    Reason.WRONG_TYPE.value: 400,
    Reason.MALFORMED.value: 400,
    Reason.TOO_LARGE.value: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE.value: 415,
    Reason.UNKNOWN_MEDIA.value: 404,
    Reason.UNAVAILABLE.value: 503,
    Reason.NOT_ALLOWED.value: 403,
    "token_missing": 401,
    "token_unknown": 401,
    "token_revoked": 401,
    "token_wrong_kind": 403,
}


def _secret() -> str | None:
    """The token in ``Authorization: Bearer <secret>`` or ``X-API-Key``."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None


def _refusal(reason: str, message: str) -> Response:
    status = _STATUS.get(reason, 400)
    headers = {"WWW-Authenticate": 'Bearer realm="gridwall"'} if status == 401 else None
    return json_response({"reason": reason, "message": message}, status, headers)


def _wants_html() -> bool:
    """A browser navigating (redirect it to log in) rather than a script or an XHR (answer 401 JSON)."""
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest" or _secret():
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def media_blueprint(engine: Engine, store: MediaStore, *, pipeline: Rejecter | None = None) -> Blueprint:
    """The upload and download routes on a (preferably read-only) engine; rejects go to ``pipeline``."""
    bp = Blueprint("media", __name__)

    def described(parsed: bool = False, size: int | None = None) -> dict[str, Any]:
        """What the dead-letter row keeps of an upload, never the bytes (the body is not read unless
        ``parsed``: a refusal before parsing leaves it unread)."""
        out: dict[str, Any] = {"request_bytes": request.content_length}
        if parsed:
            f = request.files.get("file")
            out["kind"] = str(request.form.get("kind", ""))[:32]
            out["filename"] = (f.filename or "")[:200] if f is not None else None
            out["content_type"] = (f.content_type or "")[:100] if f is not None else None
            out["bytes"] = size
        return out

    def refuse(source: str, reason: str, message: str, raw: dict[str, Any]) -> Response:
        if pipeline is not None:
            pipeline.reject("media", raw, source, reason, message)  # type: ignore[arg-type]
        return _refusal(reason, message)

    @bp.post("/api/v1/media")
    def upload() -> Response:
        source = f"http:{request.remote_addr}"
        secret = _secret()
        desk = session.get("person_id") if secret is None else None
        if isinstance(desk, str) and desk:  # a logged-in desk page (处置反馈 photos) with its CSRF token
            want, given = str(session.get("csrf") or ""), request.headers.get("X-CSRF-Token") or ""
            if not (want and hmac.compare_digest(given, want)):
                msg = "a desk upload needs the session's X-CSRF-Token"
                return refuse(f"session:{desk}", Reason.NOT_ALLOWED, msg, described())
            source = f"session:{desk}"
        else:
            try:
                with engine.connect() as conn:
                    who: Principal = authenticate(conn, secret, UPLOAD_KINDS)
            except AuthError as exc:
                return refuse(source, exc.reason, f"media upload refused: {exc.reason}", described())
            source = f"{who.kind}:{who.name}"
        limit = store.limits.request_bytes
        declared = request.content_length
        if declared is not None and declared > limit:  # refused before reading the body
            msg = f"upload of {declared:,} bytes is over the limit of {limit:,}"
            return refuse(source, Reason.TOO_LARGE, msg, described())
        request.max_content_length = limit  # a chunked body is cut off at the limit while parsed
        try:
            upload = request.files.get("file")
            kind = request.form.get("kind", "").strip()
        except RequestEntityTooLarge:
            msg = f"upload is over the limit of {limit:,} bytes"
            return refuse(source, Reason.TOO_LARGE, msg, described())
        except BadRequest as exc:
            msg = f"not a readable multipart/form-data upload: {exc.description}"
            return refuse(source, Reason.MALFORMED, msg, described())
        if upload is None:
            msg = "missing field file (multipart/form-data)"
            return refuse(source, Reason.MISSING_FIELD, msg, described(True))
        if not kind:
            msg = "missing field kind (near, far, reference, after or voice)"
            return refuse(source, Reason.MISSING_FIELD, msg, described(True))
        if kind not in KINDS:
            msg = f"kind {kind[:32]!r} is not near, far, reference, after or voice"
            return refuse(source, Reason.WRONG_TYPE, msg, described(True))
        try:
            stored = store.put(upload.stream, kind)
        except MediaError as exc:
            return refuse(source, exc.reason, exc.message, described(True, _size(upload.stream)))
        except OSError as exc:
            return refuse(source, Reason.UNAVAILABLE, f"storing failed: {exc}", described(True))
        body = {"ref": stored.ref, "type": stored.type, "bytes": stored.bytes, "kind": kind}
        return json_response(body, 201 if stored.new else 200)

    def viewer() -> str | None:
        """None when the request may see media, else the refusal reason."""
        pid = session.get("person_id")
        secret = _secret()
        if isinstance(pid, str) and pid:
            with engine.connect() as conn:
                active = conn.scalar(select(Person.active).where(Person.id == pid))
            if active:
                return None
            if secret is None:
                return "token_revoked"  # the session's person was deactivated
        try:
            with engine.connect() as conn:
                authenticate(conn, secret, VIEW_KINDS)
        except AuthError as exc:
            return exc.reason
        return None

    @bp.get("/media/<path:ref>")
    def download(ref: str) -> Response:
        refused = viewer()
        if refused is not None:
            if refused != "token_wrong_kind" and _wants_html():  # no token given: a browser logs in
                return redirect("/login?next=" + quote(request.full_path.rstrip("?"), safe=""))  # type: ignore[return-value]
            return _refusal(refused, "log in, or send an API key or gateway token")
        path = store.path_of(ref)
        if path is None:
            return _refusal(Reason.UNKNOWN_MEDIA, "no such media (references are sha256:<64 hex digits>)")
        media = store.type_of(path)
        resp = send_file(path, mimetype=media.mime, etag=path.stem, conditional=True, max_age=CACHE_SECONDS)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = f"private, max-age={CACHE_SECONDS}, immutable"
        resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        resp.vary.update(("Cookie", "Authorization", "X-API-Key"))
        return resp

    return bp


def _size(stream: IO[bytes]) -> int | None:
    """The size of an uploaded (spooled) file, or None when it cannot be told without reading it."""
    try:
        return int(stream.seek(0, os.SEEK_END))
    except (OSError, ValueError, AttributeError):
        return None
