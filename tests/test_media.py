"""Media uploads and serving over a real port (feeds.media), on SQLite and PostgreSQL.

Real photos (JPEG, PNG, WebP made by Pillow) and voice notes (a WAV written by ``wave``, an AMR-NB
file) go up as multipart with a device, gateway or API token; the type is decided by the content, not
by the name or the claimed type; oversized, mistyped and unauthenticated uploads are refused by name,
store nothing and leave a dead-letter row; the same content gets the same reference and one file;
files are served only to a logged-in session or an API key / gateway token, with the right type,
``nosniff``, the hash as ETag and a long private cache, and no reference escapes the media folder;
a report keeps its uploaded references and one with an unknown reference is refused ``unknown_media``.

Limits are small here (photos 256 KiB, voice 64 KiB) so oversized bodies stay small; the defaults
(10 MiB / 5 MiB) take the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import random
import threading
import uuid
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from dashboard.auth import SESSION_COOKIE
from domain.catalogue import load_catalogue
from feeds.media import MediaLimits, MediaStore, check_refs, parse_ref, ref_in
from feeds.schemas import Reason
from store.accounts import AccountError, issue_token, revoke_token
from store.db import transaction
from store.models import CaseEventRow, Reject, Token
from tests.desk_login import add_desk_user, login_http
from tests.live_server import LiveServer, start_live_server

LIMITS = MediaLimits(photo_bytes=256 * 1024, voice_bytes=64 * 1024)
PLAIN_EVENT = next(c for c in load_catalogue("cjt214").classes if c.kind.value == "event" and not c.emergency)


# -- real media bytes -------------------------------------------------------------------------------------


def photo(fmt: str, seed: int, size: int = 64) -> bytes:
    """A real image of some noise (each seed different) in a Pillow format."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def wav(seed: int, frames: int = 4000) -> bytes:
    """A mono 8 kHz 16-bit WAV recording (half a second of noise)."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(rng.randrange(256) for _ in range(frames * 2)))
    return buf.getvalue()


def amr(frames: int = 50) -> bytes:
    """An AMR-NB file: the magic line, then 12.2 kbit/s frames (TOC byte 0x3C + 31 bytes each)."""
    return b"#!AMR\n" + b"".join(b"\x3c" + bytes([i % 256]) * 31 for i in range(frames))


# -- fixtures ---------------------------------------------------------------------------------------------


class Keys:
    """Secrets of every kind of token the tests need."""

    def __init__(self, srv: LiveServer) -> None:
        spot = srv.spot()
        self.spot = spot
        self.device = spot.secret
        with transaction(srv.engine) as s:
            _, self.api = issue_token(s, "api", "media-api", role="call_center")
            _, self.gateway = issue_token(s, "gateway", "media-gw", scope=["*"])
            _, self.kiosk = issue_token(s, "kiosk", "media-kiosk")
            row, self.revoked = issue_token(s, "api", "media-revoked", role="leader")
            revoke_token(s, row.id)


@pytest.fixture(scope="module")
def srv(city_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The live core with the media routes on a free port; its data folder holds a secret beside media/."""
    data = tmp_path_factory.mktemp("data")
    (data / "secrets.json").write_text('{"secret_key": "do-not-serve-me"}')
    server = start_live_server(city_engine, media_dir=data, media_limits=LIMITS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(srv: LiveServer) -> Keys:
    return Keys(srv)


@pytest.fixture(scope="module")
def store(srv: LiveServer) -> MediaStore:
    assert srv.media is not None
    return srv.media


# -- helpers ----------------------------------------------------------------------------------------------


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def upload(
    srv: LiveServer,
    body: bytes | None,
    kind: str | None,
    headers: dict[str, str],
    *,
    filename: str = "upload.bin",
    content_type: str = "application/octet-stream",
) -> requests.Response:
    files = {"file": (filename, body, content_type)} if body is not None else None
    data = {"kind": kind} if kind is not None else {"note": "no kind"}
    return requests.post(f"{srv.url}/api/v1/media", files=files, data=data, headers=headers, timeout=30)


def ref_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def stored_files(store: MediaStore) -> list[Path]:
    """Every file under the media folder, temporary ones included."""
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def reject_mark(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.coalesce(func.max(Reject.id), 0))) or 0)


def dead_letters(engine: Engine, after: int) -> list[Any]:
    with engine.connect() as c:
        return list(
            c.execute(
                select(Reject.source, Reject.reason, Reject.message, Reject.payload)
                .where(Reject.id > after)
                .order_by(Reject.id)
            )
        )


def device_source(srv: LiveServer, keys: Keys) -> str:
    """The dead-letter ``source`` of the spot's device token."""
    with srv.engine.connect() as c:
        name = c.scalar(select(Token.name).where(Token.person_id == keys.spot.person, Token.kind == "device"))
    return f"device:{name}"


def raw_request(srv: LiveServer, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Any:
    """A request whose path is sent exactly as given (requests would normalise ``..`` away)."""
    u = urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def desk_client(srv: LiveServer) -> requests.Session:
    """A browser-like client logged in to the desk (a real login: server-side session cookie)."""
    user, password = "media-viewer", "media-viewer-password-1"
    with contextlib.suppress(AccountError):  # the module's server keeps its people between tests
        add_desk_user(srv.engine, user, password, role="leader")
    return login_http(srv.url, user, password)


def unknown_session() -> dict[str, str]:
    """A session cookie the server never issued (or one whose session has ended)."""
    return {SESSION_COOKIE: "no-such-session-0123456789abcdef"}


# -- uploads ----------------------------------------------------------------------------------------------


MEDIA = [
    ("near", lambda: photo("JPEG", 1), "image/jpeg", "jpg"),
    ("far", lambda: photo("PNG", 2), "image/png", "png"),
    ("reference", lambda: photo("WEBP", 3), "image/webp", "webp"),
    ("voice", lambda: wav(4), "audio/wav", "wav"),
    ("voice", amr, "audio/amr", "amr"),
]


@pytest.mark.parametrize(("kind", "make", "mime", "ext"), MEDIA, ids=[m[3] for m in MEDIA])
def test_upload_is_typed_by_content_and_stored_by_hash(
    srv: LiveServer, keys: Keys, store: MediaStore, kind: str, make: Any, mime: str, ext: str
) -> None:
    body = make()
    # the claimed name and type say nothing true: only the content counts
    resp = upload(srv, body, kind, bearer(keys.device), filename="x.txt", content_type="text/plain")
    assert resp.status_code in (200, 201), resp.text
    digest = hashlib.sha256(body).hexdigest()
    assert resp.json() == {"ref": f"sha256:{digest}", "type": mime, "bytes": len(body), "kind": kind}
    path = store.root / digest[:2] / digest[2:4] / f"{digest}.{ext}"
    assert path.read_bytes() == body
    assert store.exists(f"sha256:{digest}")
    assert not list(store.tmp.iterdir())  # the temporary file was renamed, none left behind


def test_same_content_same_reference_one_file(srv: LiveServer, keys: Keys, store: MediaStore) -> None:
    body = photo("JPEG", 10)
    first = upload(srv, body, "near", headers={"X-API-Key": keys.api})
    again = upload(srv, body, "reference", bearer(keys.gateway), filename="other.jpg")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["ref"] == again.json()["ref"] == ref_of(body)
    assert again.json()["kind"] == "reference"
    digest = hashlib.sha256(body).hexdigest()
    assert [p.name for p in stored_files(store) if p.name.startswith(digest)] == [f"{digest}.jpg"]


def test_concurrent_uploads_of_one_content_store_it_once(
    srv: LiveServer, keys: Keys, store: MediaStore
) -> None:
    body = photo("PNG", 11)
    out: list[requests.Response] = []
    threads = [
        threading.Thread(target=lambda: out.append(upload(srv, body, "far", bearer(keys.device))))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted({r.status_code for r in out}) in ([200, 201], [201])
    assert {r.json()["ref"] for r in out} == {ref_of(body)}
    digest = hashlib.sha256(body).hexdigest()
    assert len([p for p in stored_files(store) if p.name.startswith(digest)]) == 1
    assert not list(store.tmp.iterdir())


BAD_TYPES = [
    ("text renamed .jpg", b"just some text, not a photo\n" * 20, "near", "note.jpg", "image/jpeg"),
    ("jpeg magic then text", b"\xff\xd8\xff\xe0" + b"not really a jpeg " * 40, "near", "a.jpg", "image/jpeg"),
    ("voice sent as a photo", wav(20), "far", "a.png", "image/png"),
    ("photo sent as voice", photo("JPEG", 21), "voice", "a.amr", "audio/amr"),
    ("gif is not accepted", photo("GIF", 22), "reference", "a.jpg", "image/jpeg"),
    ("empty file", b"", "near", "a.jpg", "image/jpeg"),
]


@pytest.mark.parametrize(
    ("body", "kind", "name", "ctype"), [b[1:] for b in BAD_TYPES], ids=[b[0] for b in BAD_TYPES]
)
def test_wrong_content_is_refused_by_type(
    srv: LiveServer, keys: Keys, store: MediaStore, body: bytes, kind: str, name: str, ctype: str
) -> None:
    before, mark = stored_files(store), reject_mark(srv.engine)
    resp = upload(srv, body, kind, bearer(keys.device), filename=name, content_type=ctype)
    assert resp.status_code == 415
    assert resp.json()["reason"] == Reason.UNSUPPORTED_MEDIA_TYPE
    assert stored_files(store) == before
    rows = dead_letters(srv.engine, mark)
    assert [(r.source, r.reason) for r in rows] == [(device_source(srv, keys), "unsupported_media_type")]
    payload = rows[0].payload
    assert payload["filename"] == name and payload["content_type"] == ctype and payload["kind"] == kind
    assert payload["bytes"] == len(body)
    assert "not a photo" not in str(payload) and "not really" not in str(payload)  # never the bytes


def test_oversized_uploads_are_refused_and_nothing_is_stored(
    srv: LiveServer, keys: Keys, store: MediaStore
) -> None:
    big_photo = photo("PNG", 30, size=300)  # noise does not compress: just over 256 KiB
    assert LIMITS.photo_bytes < len(big_photo) < LIMITS.request_bytes  # read, then refused by its kind
    voice = wav(31, frames=40_000)  # 80 KB: a photo that size would pass, a voice note may not
    assert LIMITS.voice_bytes < len(voice) < LIMITS.photo_bytes
    huge = photo("PNG", 32, size=400)  # its Content-Length alone is over the limit: the body is not read
    assert len(huge) > LIMITS.request_bytes
    before, mark = stored_files(store), reject_mark(srv.engine)
    for body, kind in ((big_photo, "near"), (voice, "voice"), (huge, "far")):
        resp = upload(srv, body, kind, bearer(keys.gateway))
        assert resp.status_code == 413, resp.text
        assert resp.json()["reason"] == Reason.TOO_LARGE
    assert stored_files(store) == before
    rows = dead_letters(srv.engine, mark)
    assert [(r.source, r.reason) for r in rows] == [("gateway:media-gw", "too_large")] * 3
    assert [r.payload.get("bytes") for r in rows] == [len(big_photo), len(voice), None]
    assert [r.payload.get("kind") for r in rows] == ["near", "voice", None]
    assert rows[2].payload["request_bytes"] > len(huge)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    srv: LiveServer, keys: Keys, store: MediaStore
) -> None:
    before, mark = stored_files(store), reject_mark(srv.engine)
    headers = {
        **bearer(keys.device),
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Content-Length": str(10**9),  # a gigabyte is announced; only a few bytes ever come
    }
    status, _, body = raw_request(srv, "POST", "/api/v1/media", headers, b"--xyz\r\n")
    assert status == 413 and b"too_large" in body
    assert stored_files(store) == before
    rows = dead_letters(srv.engine, mark)
    assert [(r.reason, r.payload["request_bytes"]) for r in rows] == [("too_large", 10**9)]


def test_a_chunked_body_is_cut_off_at_the_limit(srv: LiveServer, keys: Keys, store: MediaStore) -> None:
    before = stored_files(store)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nnear\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: requests sends it chunked
        yield head
        for _ in range(LIMITS.request_bytes // 65536 + 4):
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = requests.post(
        f"{srv.url}/api/v1/media",
        data=chunks(),
        headers={**bearer(keys.device), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert resp.status_code == 413 and resp.json()["reason"] == Reason.TOO_LARGE
    assert stored_files(store) == before


def test_missing_and_wrong_fields_are_named(srv: LiveServer, keys: Keys, store: MediaStore) -> None:
    before, mark = stored_files(store), reject_mark(srv.engine)
    cases = [
        (None, "near", 400, "missing_field"),
        (photo("JPEG", 40), None, 400, "missing_field"),
        (photo("JPEG", 40), "video", 400, "wrong_type"),
    ]
    for body, kind, status, reason in cases:
        resp = upload(srv, body, kind, bearer(keys.api))
        assert (resp.status_code, resp.json()["reason"]) == (status, reason)
    resp = requests.post(
        f"{srv.url}/api/v1/media", json={"kind": "near"}, headers=bearer(keys.api), timeout=30
    )
    assert (resp.status_code, resp.json()["reason"]) == (400, "missing_field")
    assert stored_files(store) == before
    assert [r.reason for r in dead_letters(srv.engine, mark)] == [
        "missing_field", "missing_field", "wrong_type", "missing_field"
    ]  # fmt: skip


def test_uploads_need_a_valid_token_of_the_right_kind(srv: LiveServer, keys: Keys, store: MediaStore) -> None:
    body = photo("JPEG", 50)
    before, mark = stored_files(store), reject_mark(srv.engine)
    cases = [
        ({}, 401, "token_missing"),
        (bearer("no-such-token-0123456789"), 401, "token_unknown"),
        ({"X-API-Key": keys.revoked}, 401, "token_revoked"),
        (bearer(keys.kiosk), 403, "token_wrong_kind"),
        ({"Authorization": f"Basic {keys.api}"}, 401, "token_missing"),  # only Bearer or X-API-Key
    ]
    for headers, status, reason in cases:
        resp = upload(srv, body, "near", headers)
        assert (resp.status_code, resp.json()["reason"]) == (status, reason), headers
    assert stored_files(store) == before
    rows = dead_letters(srv.engine, mark)
    assert [(r.source, r.reason) for r in rows] == [("http:127.0.0.1", c[2]) for c in cases]
    assert all("bytes" not in r.payload for r in rows)  # refused before the body was read


# -- serving ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(srv: LiveServer, keys: Keys) -> tuple[str, bytes]:
    """A stored photo: its reference and bytes."""
    body = photo("JPEG", 60)
    resp = upload(srv, body, "near", bearer(keys.device))
    assert resp.status_code == 201
    return resp.json()["ref"], body


def test_media_is_served_to_api_keys_gateways_and_sessions(
    srv: LiveServer, keys: Keys, served: tuple[str, bytes]
) -> None:
    ref, body = served
    url = f"{srv.url}/media/{ref}"
    desk = desk_client(srv)
    anyone = requests.Session()
    for client, headers in ((anyone, {"X-API-Key": keys.api}), (anyone, bearer(keys.gateway)), (desk, {})):
        resp = client.get(url, headers=headers, timeout=30)
        assert resp.status_code == 200, headers
        assert resp.content == body
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["ETag"] == f'"{parse_ref(ref)}"'
        cache = resp.headers["Cache-Control"]
        assert "private" in cache and "max-age=31536000" in cache and "immutable" in cache
    again = requests.get(
        url, headers={**bearer(keys.gateway), "If-None-Match": f'"{parse_ref(ref)}"'}, timeout=30
    )
    assert again.status_code == 304 and not again.content


def test_media_is_refused_to_everyone_else(srv: LiveServer, keys: Keys, served: tuple[str, bytes]) -> None:
    ref, body = served
    url = f"{srv.url}/media/{ref}"
    api = requests.get(url, headers={"Accept": "application/json"}, timeout=30)
    assert (api.status_code, api.json()["reason"]) == (401, "token_missing")
    xhr = requests.get(url, headers={"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, timeout=30)
    assert xhr.status_code == 401
    page = requests.get(url, headers={"Accept": "text/html,*/*;q=0.8"}, allow_redirects=False, timeout=30)
    assert page.status_code == 302
    assert page.headers["Location"].endswith(f"/login?next=%2Fmedia%2F{ref.replace(':', '%3A')}")
    for headers, status, reason in (
        (bearer(keys.device), 403, "token_wrong_kind"),  # handsets upload; they do not browse the archive
        (bearer(keys.kiosk), 403, "token_wrong_kind"),
        (bearer(keys.revoked), 401, "token_revoked"),
        (bearer("no-such-token-0123456789"), 401, "token_unknown"),
    ):
        resp = requests.get(url, headers=headers, timeout=30)
        assert (resp.status_code, resp.json()["reason"]) == (status, reason)
        assert body not in resp.content
    gone = requests.get(url, cookies=unknown_session(), timeout=30)
    assert gone.status_code == 401 and body not in gone.content
    stale = requests.get(
        url,
        cookies=unknown_session(),
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=30,
    )
    assert stale.status_code == 302 and "/login?next=" in stale.headers["Location"]
    forged = requests.get(url, cookies={"session": "eyJwZXJzb25faWQiOiJhZG1pbiJ9.forged.sig"}, timeout=30)
    assert forged.status_code == 401


def test_references_are_strict_and_cannot_leave_the_media_folder(
    srv: LiveServer, keys: Keys, store: MediaStore, served: tuple[str, bytes]
) -> None:
    ref, _ = served
    digest = parse_ref(ref)
    assert digest is not None
    secret = (store.root.parent / "secrets.json").read_bytes()
    paths = [
        "/media/..%2Fsecrets.json",
        "/media/..%2F..%2Fsecrets.json",
        "/media/%2e%2e/secrets.json",
        "/media/sha256:..%2F..%2Fsecrets.json",
        f"/media/sha256:{digest}/../../secrets.json",
        f"/media/sha256:{digest}%00",
        f"/media/sha256:{digest.upper()}",
        f"/media/sha256:{digest}.jpg",
        f"/media/{digest}",
        f"/media/{digest[:2]}/{digest[2:4]}/{digest}.jpg",
        "/media/sha256:" + "0" * 64,
    ]
    for path in paths:
        status, _, body = raw_request(srv, "GET", path, bearer(keys.api))
        assert status == 404, path
        assert secret not in body and b"\xff\xd8" not in body, path


# -- the case keeps the references ------------------------------------------------------------------------


def report(keys: Keys, media: list[str]) -> dict[str, Any]:
    return {
        "id": f"rep-{uuid.uuid4().hex[:8]}",
        "kind": PLAIN_EVENT.kind.value,
        "class_code": PLAIN_EVENT.code,
        "lon": keys.spot.lon,
        "lat": keys.spot.lat,
        "at": datetime.now(UTC).isoformat(),
        "description": "photo and voice attached",
        "media": media,
    }


def test_a_report_keeps_its_uploaded_references(srv: LiveServer, keys: Keys) -> None:
    near = upload(srv, photo("JPEG", 70), "near", bearer(keys.device)).json()["ref"]
    voice = upload(srv, amr(20), "voice", bearer(keys.device)).json()["ref"]
    peer = srv.peer("/device", keys.device)
    body = report(keys, [near, voice])
    ack = peer.call("report", body)
    assert ack["accepted"] == [body["id"]], ack
    case_id = ack["cases"][body["id"]]
    with srv.engine.connect() as c:
        data = c.scalar(
            select(CaseEventRow.data).where(CaseEventRow.case_id == case_id, CaseEventRow.action == "report")
        )
    assert data is not None and data["media"].split(",") == [near, voice]


def test_a_report_with_an_unknown_reference_is_refused(srv: LiveServer, keys: Keys) -> None:
    peer = srv.peer("/device", keys.device)
    mark = reject_mark(srv.engine)
    known = upload(srv, photo("PNG", 80), "far", bearer(keys.device)).json()["ref"]
    for media in (["sha256:" + "ab" * 32], [known, "https://files.example/p/7f3c.jpg"], ["sha256:XYZ"]):
        body = report(keys, media)
        ack = peer.call("report", body)
        assert ack["accepted"] == [] and "cases" not in ack
        assert [(r["id"], r["reason"]) for r in ack["rejected"]] == [(body["id"], "unknown_media")]
    rows = dead_letters(srv.engine, mark)
    assert [r.reason for r in rows] == ["unknown_media"] * 3


def test_without_a_store_references_are_checked_for_form_only(tmp_path: Path) -> None:
    good = "sha256:" + "0f" * 32
    assert check_refs([good], None) == (None, "")
    for bad in (
        "sha256:" + "0F" * 32,
        "sha256:" + "0f" * 31,
        "https://x/p.jpg",
        "sha256:../../x",
        good + "\n",
    ):
        reason, message = check_refs([good, bad], None)
        assert reason == Reason.UNKNOWN_MEDIA and message
    assert check_refs([good], MediaStore(tmp_path))[0] == Reason.UNKNOWN_MEDIA  # form ok, never uploaded


def test_a_served_url_names_its_reference() -> None:
    ref = "sha256:" + "5e" * 32
    for given in (
        ref,
        f"/media/{ref}",
        f"http://127.0.0.1:8050/media/{ref}",
        f"https://gw.example/media/{ref}",
    ):
        assert ref_in(given) == ref
    others = ("https://x.test/1.jpg", f"https://x.test/other/{ref}", f"/media/{ref}/../x", f"{ref}.jpg", "")
    for other in others:
        assert ref_in(other) is None
