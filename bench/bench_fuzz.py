"""Fuzz (issue 20, build item 2): every input schema of a real running server, with generated payloads.

Setup: the built-in Dongcheng district in a SQLite file (WAL) in a temporary folder, the embedded
accounts (a supervisor and device token per responsibility area, the kiosk token), a gateway token of
scope ``*``, API keys of several roles and a desk leader. The server is this module run as
``python -m bench.bench_fuzz serve`` (the composition of ``app.py run --no-simulation`` with the
media routes, under the production gunicorn server, as ``bench._server``), its stderr in a log file.

Schemas, one after the other, each with seeded random payloads (reproducible; ``SEED``):

* ``/device``: python-socketio clients with the gateway token (and, paced under their 10 events/s,
  with provisioned device tokens) send ``positions``, ``position``, ``report``, ``task_ack``,
  ``task_result``, ``command`` and unknown events; each event asks for an acknowledgement;
* ``/live``: kiosk clients send ``join``, ``leave``, ``resync`` and unknown events;
* ``/api/v1``: positions, reports, lifecycle commands and case reads over HTTP keep-alive;
* Open311 ``POST requests.json`` as JSON and as a form, with and without a valid ``api_key``;
* ``POST /api/v1/media`` uploads (multipart, real and broken images, wrong kinds and tokens);
* ``POST /_dash-update-component`` as a logged-in leader and with the kiosk cookie.

Mutations of valid payloads: wrong types, missing and extra fields, huge strings, nesting deeper than
300 levels, integers ≥ 2**64, NaN/Infinity tokens, unicode junk, empty values, oversize batches,
truncated JSON, wrong content types, chunked bodies without Content-Length. ``positions`` batches mix
valid fixes (supervisors of their own, time in order) with bad ones; every valid fix and report that
was acknowledged must be in the database afterwards.

Size: the full run tries 100,000 payloads per schema (:data:`N_FULL`) from 12 client connections
(:data:`SENDERS_FULL`); a schema that has not got there after 900 s stops (a safety stop, its row
says so). The server's one worker is the limit (a rendered Dash page costs it 10–500 ms with the
district's open cases, a refusal well under 1 ms), so well-formed calls are a small share of the Dash
schemas (1 % desk, 2 % kiosk pages: :data:`PAGE_SHARE`)
and oversize frames are just over the 4 MiB limit. ``--smoke``: 300 per schema or 5 s.

Counted per schema: tried, refused by name, 5xx, ``unavailable``, tracebacks in the server's log,
missing acknowledgements, lost valid items, and the server worker's RSS (``VmRSS``) at start and end.
Bar: zero of each. RSS: the end of the fuzz within +25 % of the RSS after the warm-up (the issue saw
+45 %, 518 → 750 MB, that never came back; the fuzz stores data and the live state grows with its
cases, so some growth is legitimate, and 25 % still catches a leak of that size).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import FAIL, PASS, ROOT, HarnessRow, Result, console, harness_results, judged, print_harness

SEED = 20261120
N_FULL = 100_000  # payloads per schema in the benchmark
N_SMOKE = 300
BUDGET_FULL_S = 900.0  # seconds per schema at most (a safety stop: 100,000 take ~4–15 min per schema)
SENDERS_FULL = 12  # client threads (connections) per schema: enough to keep the server's worker busy
BUDGET_SMOKE_S = 5.0
RSS_BAR = 1.25  # end RSS ≤ 1.25 × RSS after the warm-up
LEADER, LEADER_PASSWORD = "fuzz-leader", "fuzz-leader-password-0123456789"
NAME = re.compile(r"^[a-z][a-z_]{2,40}$")
TRACEBACK = "Traceback (most recent call last)"
SCHEMAS = ("/device", "/live", "/api/v1", "open311", "media", "dash desk", "dash kiosk", "handset")
HANDSET_PASSWORD = "fuzz-handset-password-0123"  # the handset schema's supervisor (prepare)
# the share of Dash bodies that are a real page render (desk, kiosk): a desk page over a district the
# earlier schemas filled with thousands of open cases costs the worker 50–500 ms (py-spy, 2026-12-07:
# renders were 90 % of its time at 5 % and 12 %, and the schemas stopped at 900 s near 20,000 bodies)
PAGE_SHARE = {False: 0.01, True: 0.02}
log = logging.getLogger(__name__)


# -- the city and the server ----------------------------------------------------------------------------


@dataclass
class FuzzCity:
    """A built district with every credential the fuzz uses."""

    db: Path
    data_dir: Path
    kiosk: str
    gateway: str
    devices: dict[str, str]  # person id → device secret
    keys: dict[str, str]  # API key role → secret
    points: dict[str, tuple[float, float, float, str]]  # supervisor → (lon, lat, radius, grid)
    handset: tuple[str, str] = ("", "")  # the handset schema's supervisor and its app's device token

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"


def prepare(folder: Path) -> FuzzCity:
    """Build Dongcheng into ``folder``, provision accounts, a gateway token, API keys and a leader."""
    from bench._server import supervisor_points
    from domain.catalogue import load_catalogue
    from store.accounts import add_person, issue_token, new_secret, provision_embedded, set_password
    from store.build import BuildRequest, build_city
    from store.cases import sync_departments
    from store.db import create_engine, transaction

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "fuzz.db"
    engine = create_engine(f"sqlite:///{db}")
    build_city(engine, BuildRequest())
    with transaction(engine) as s:
        sync_departments(s, load_catalogue("cjt214"))
    kiosk = new_secret()
    made = provision_embedded(engine, kiosk_secret=kiosk)
    keys: dict[str, str] = {}
    with transaction(engine) as s:
        _, gateway = issue_token(s, "gateway", "fuzz gateway", scope=["*"])
        for role in ("supervisor", "call_center", "acceptor", "shift_leader", "dispatcher", "leader"):
            keys[role] = issue_token(s, "api", f"fuzz {role}", role=role)[1]
        add_person(s, LEADER, "leader", password=LEADER_PASSWORD)
        person = sorted(dict(made.devices))[-1]  # the handset app's sign-in and hello (schema "handset")
        set_password(s, person, HANDSET_PASSWORD)
        app = issue_token(s, "device", "fuzz handset app", person_id=person)[1]
    points = supervisor_points(engine)
    engine.dispose()
    return FuzzCity(db, folder, kiosk, gateway, dict(made.devices), keys, points, (person, app))


@dataclass
class Server:
    """The running server process, its port, log file and worker."""

    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def worker(self) -> int:
        """The gunicorn worker (the arbiter's child) that holds the application."""
        kids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                kids += [int(c) for c in (task / "children").read_text().split()]
        return kids[0] if kids else self.proc.pid

    def rss_mb(self) -> float:
        """The worker's resident set size (``VmRSS``) in MB."""
        try:
            for line in Path(f"/proc/{self.worker}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def tracebacks(self) -> int:
        """Tracebacks written to the server's log so far."""
        try:
            return self.log.read_text(errors="replace").count(TRACEBACK)
        except OSError:
            return 0


def start(city: FuzzCity, log_path: Path) -> Server:
    """Start ``python -m bench.bench_fuzz serve`` on the city; wait for ``READY <port>``."""
    cmd = [sys.executable, "-m", "bench.bench_fuzz", "serve", f"--db={city.url}", f"--data={city.data_dir}"]
    err = open(log_path, "a")  # noqa: SIM115  (the child keeps it)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            return Server(proc, int(line.split()[1]), log_path)
    proc.kill()
    raise RuntimeError(f"the fuzz server did not start (see {log_path})")


def stop(server: Server) -> None:
    """SIGTERM, then wait (kill after 30 s)."""
    from bench._server import stop_server

    stop_server(server.proc)


def serve(argv: list[str]) -> int:
    """``serve --db URL --data DIR``: the embedded composition with media, under gunicorn."""
    p = argparse.ArgumentParser(prog="python -m bench.bench_fuzz serve")
    p.add_argument("--db", required=True)
    p.add_argument("--data", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    from gridwall.runtime import Seams, build
    from gridwall.server import Served
    from gridwall.server import serve as gunicorn
    from gridwall.settings import Settings

    def make() -> Served:
        seams = Seams(media=True, media_dir=Path(args.data), secret_key="bench-fuzz")
        core = build(Settings(Path(args.data), args.db), "embedded", seams).start()
        core.web.cache.current()
        return Served(core.web.server, core.stop, lambda port: print(f"READY {port}", flush=True))

    return gunicorn(make, host="127.0.0.1", port=0)


# -- counting ----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one schema's fuzz came to."""

    schema: str
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    ignored: int = 0  # answered as documented without a name (an unknown /live event's empty ack)
    unnamed: int = 0  # 4xx without a named reason (reported, not a failure)
    server_errors: int = 0  # 5xx
    unavailable: int = 0
    tracebacks: int = 0
    missing_acks: int = 0
    lost: int = 0
    closed: int = 0  # connections the server closed (documented: frames over 4 MiB, slow /live clients)
    client_errors: int = 0
    valid_sent: int = 0
    rss_start: float = float("nan")
    rss_end: float = float("nan")
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def example(self, text: str) -> None:
        """Keep the first few failures (printed after the table)."""
        if len(self.examples) < 8:
            self.examples.append(text[:600])

    @property
    def bad(self) -> int:
        """Everything the bar counts."""
        return self.server_errors + self.unavailable + self.tracebacks + self.missing_acks + self.lost


def names_in(body: Any) -> list[str]:
    """The rejection names an answer carries (``error``/``reason``, an ack's ``rejected``, Open311)."""
    out: list[str] = []
    if isinstance(body, dict):
        for key in ("error", "reason"):
            v = body.get(key)
            if isinstance(v, str) and NAME.match(v):
                out.append(v)
        for r in body.get("rejected") or ():
            if isinstance(r, dict) and isinstance(r.get("reason"), str):
                out.append(r["reason"])
    elif isinstance(body, list):
        for r in body:
            d = r.get("description") if isinstance(r, dict) else None
            if isinstance(d, str) and NAME.match(d.split(":", 1)[0]):
                out.append(d.split(":", 1)[0])
    return out


def judge_http(t: Tally, status: int, data: bytes, what: str) -> Any:
    """Count one HTTP answer; returns the decoded JSON body (or None)."""
    try:
        body = json.loads(data) if data[:1] in (b"{", b"[") else None
    except ValueError:
        body = None
    names = names_in(body)
    with t.lock:
        t.tried += 1
        t.statuses[status] += 1
        t.reasons.update(names)
        if "unavailable" in names:
            t.unavailable += 1
            t.example(f"unavailable {status} for {what}: {data[:300]!r}")
        if status >= 500:
            t.server_errors += 1
            t.example(f"HTTP {status} for {what}: {data[:300]!r}")
        elif status < 300 or status == 304:
            t.accepted += 1
        elif names:
            t.refused += 1
        else:
            t.unnamed += 1
            if len(t.examples) < 8 and status not in (302, 303):
                t.example(f"unnamed HTTP {status} for {what}: {data[:200]!r}")
    return body


def judge_ack(t: Tally, ack: Any, what: str) -> None:
    """Count one /device acknowledgement."""
    names = names_in(ack)
    with t.lock:
        t.tried += 1
        t.reasons.update(names)
        if "unavailable" in names:
            t.unavailable += 1
            t.example(f"unavailable for {what}: {str(ack)[:300]}")
        if not isinstance(ack, dict) or not {"accepted", "duplicates", "rejected"} <= set(ack):
            t.unnamed += 1
            t.example(f"not an acknowledgement for {what}: {str(ack)[:200]}")
        elif names:
            t.refused += 1
        else:
            t.accepted += 1


# -- generated values ---------------------------------------------------------------------------------------


class Raw:
    """JSON text spliced verbatim into a payload (NaN tokens, deep nesting, truncation, huge ints)."""

    def __init__(self, text: str) -> None:
        self.text = text


_SPLICE = re.compile(r'"\\u0000raw(\d+)\\u0000"')


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` with :class:`Raw` parts spliced in (NaN and Infinity as tokens).

    The C encoder writes a placeholder for each Raw part, then the placeholders are replaced: the
    recursive pure-Python encoder this replaces was most of the fuzz client's time.
    """
    if isinstance(obj, Raw):
        return obj.text
    parts: list[str] = []

    def placeholder(o: Any) -> str:
        if not isinstance(o, Raw):
            raise TypeError(f"not JSON: {type(o).__name__}")
        parts.append(o.text)
        return f"\x00raw{len(parts) - 1}\x00"

    text = json.dumps(obj, separators=(",", ":"), default=placeholder)
    if not parts:
        return text
    return _SPLICE.sub(lambda m: parts[int(m.group(1))], text)


class RawJson:
    """A ``json`` module for python-socketio's packets that splices :class:`Raw` parts."""

    @staticmethod
    def dumps(obj: Any, **kw: Any) -> str:
        """Encode (Raw-aware)."""
        return dumps(obj)

    @staticmethod
    def loads(s: Any, **kw: Any) -> Any:
        """Decode as the standard module does."""
        return json.loads(s, **kw)


UNICODE = [
    "\u0000",
    "\ufeff",
    "\u202e",
    "\ud7ff",
    "\uffff",
    "𝕏",
    "😀",
    "中文网格",
    "\u0301" * 50,
    "\n\r\t",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%n",
    "\x7f\x1b[31m",
]


def deep(rng: random.Random) -> Raw:
    """Nesting deeper than 300 levels (lists or objects)."""
    n = rng.choice([301, 600, 1200, 5000])
    if rng.random() < 0.5:
        return Raw("[" * n + "1" + "]" * n)
    return Raw('{"a":' * n + "1" + "}" * n)


def junk(rng: random.Random, big: bool = True) -> Any:
    """A value of the wrong kind."""
    k = rng.randrange(26 if big else 22)
    simple: list[Any] = [None, True, False, 0, -1, 1.5, -0.0, 1e308, "", " \t ", [], {}, "0", "null"]
    if k < len(simple):
        return simple[k]
    k -= len(simple)
    if k == 0:
        return Raw(rng.choice(["NaN", "Infinity", "-Infinity"]))
    if k == 1:
        return rng.choice([2**64, -(2**63) - 1, 10**30, 2**64 + 1])
    if k == 2:
        return rng.choice(UNICODE) * rng.randint(1, 5)
    if k == 3:
        return [junk(rng, False) for _ in range(rng.randint(1, 4))]
    if k == 4:
        return {rng.choice(["a", "id", "fixes", "$where"]): junk(rng, False)}
    if k == 5:
        return "x" * rng.choice([65, 101, 201, 1001])
    if k == 6:
        return "9" * 400
    if k == 7:
        return Raw(str(rng.choice([2**64, 10**40, -(10**30)])))
    if k == 8:
        return deep(rng)
    if k == 9:
        return "é" * rng.choice([3000, 40_000])
    if k == 10:
        return Raw("1e999")
    return "y" * 300_000  # over the event limit


def mutate(rng: random.Random, obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """One to three mutations of a valid object: drop, retype, add junk fields."""
    out = dict(obj)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        keys = list(out) or fields
        if op == 0 and out:
            out.pop(rng.choice(keys), None)
        elif op in (1, 2):
            out[rng.choice(fields)] = junk(rng)
        elif op == 3:
            out[rng.choice(["extra", "__proto__", "中文", "x" * 200, "id"])] = junk(rng)
        else:
            out[rng.choice(keys)] = rng.choice(["", " ", "0", "wgs84", "component", "verify", "2025-01-01"])
    return out


def truncated(rng: random.Random, obj: Any) -> Raw:
    """The JSON text of ``obj`` cut somewhere."""
    text = dumps(obj)
    return Raw(text[: rng.randrange(max(1, len(text)))])


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 with a zone."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


# -- valid items and the check that they were stored --------------------------------------------------------


class Track:
    """Valid fixes per supervisor in time order, and what must be found in the database."""

    def __init__(self, points: dict[str, tuple[float, float, float, str]], sups: list[str]) -> None:
        self.points = points
        self.sups = sups
        self.k: dict[str, int] = {s: 0 for s in sups}
        self.base_ms = int(time.time() * 1000) - 3 * 3600 * 1000
        self.fixes: set[tuple[str, int]] = set()  # acknowledged (supervisor, ms)
        self.cases: set[str] = set()
        self.lock = threading.Lock()
        self.n = 0

    def fix(self, rng: random.Random, sid: str) -> dict[str, Any]:
        """The next valid fix of ``sid`` (one second after its previous one, a few metres apart)."""
        lon, lat, r, _ = self.points[sid]
        k = self.k[sid]
        self.k[sid] = k + 1
        with self.lock:
            self.n += 1
            n = self.n
        at = self.base_ms + k * 1000
        body: dict[str, Any] = {
            "id": f"v{n}",
            "supervisor": sid,
            "lon": round(lon + r * rng.uniform(-1, 1), 7),
            "lat": round(lat + r * rng.uniform(-1, 1), 7),
        }
        body["at"] = at if rng.random() < 0.5 else iso(at)
        if rng.random() < 0.3:
            body["accuracy"] = rng.choice([3, 8.5, 20])
        return body

    @staticmethod
    def key(fix: dict[str, Any]) -> tuple[str, int]:
        """(supervisor, epoch ms) of a valid fix."""
        at = fix["at"]
        ms = at if isinstance(at, int) else round(datetime.fromisoformat(at).timestamp() * 1000)
        return str(fix["supervisor"]), ms


def positions_check(
    t: Tally, track: Track, batch: list[tuple[bool, dict[str, Any]]], ack: Any, whole_ids: set[str]
) -> None:
    """Valid fixes of a processed batch must be accepted (or duplicates); remember them for the DB."""
    if not isinstance(ack, dict):
        return
    rejected = {
        str(r.get("id")): str(r.get("reason")) for r in ack.get("rejected") or () if isinstance(r, dict)
    }
    if any(i in rejected for i in whole_ids):  # the batch was refused as a whole (too large, rate limited…)
        return
    ok = set(map(str, ack.get("accepted") or ())) | set(map(str, ack.get("duplicates") or ()))
    for valid, fix in batch:
        if not valid:
            continue
        with t.lock:
            t.valid_sent += 1
        if fix["id"] in ok:
            with track.lock:
                track.fixes.add(Track.key(fix))
        else:
            with t.lock:
                t.lost += 1
                t.example(f"valid fix {fix} not accepted: {rejected.get(fix['id'], 'absent from the ack')}")


def stored(city: FuzzCity, track: Track) -> tuple[int, int]:
    """How many acknowledged fixes and cases of ``track`` are missing from the database."""
    from sqlalchemy import select

    from store.db import create_engine
    from store.models import Case, Position

    engine = create_engine(city.url, write=False)
    try:
        with engine.connect() as c:
            have: set[tuple[str, int]] = set()
            sups = sorted({s for s, _ in track.fixes})
            for i in range(0, len(sups), 200):
                rows = c.execute(
                    select(Position.supervisor_id, Position.at).where(
                        Position.supervisor_id.in_(sups[i : i + 200])
                    )
                )
                for sid, at in rows:
                    at = at if at.tzinfo else at.replace(tzinfo=UTC)
                    have.add((sid, round(at.timestamp() * 1000)))
            cases = sorted(track.cases)
            found: set[str] = set()
            for i in range(0, len(cases), 500):
                found.update(c.scalars(select(Case.id).where(Case.id.in_(cases[i : i + 500]))))
    finally:
        engine.dispose()
    return len(track.fixes - have), len(set(cases) - found)


# -- HTTP ----------------------------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection (reopened when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.closed = 0

    def send(
        self, method: str, path: str, body: bytes | Iterator[bytes] | None, headers: dict[str, str]
    ) -> tuple[int, bytes] | None:
        """Status and body of one request; None when the server closed the connection unanswered."""
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.will_close:
                    self.reopen()
                return r.status, data
            except (BrokenPipeError, ConnectionResetError) as exc:
                try:  # the server answered early (413) and closed while the body was still going
                    r = self.conn.getresponse()
                    data = r.read()
                    self.reopen()
                    return r.status, data
                except (http.client.HTTPException, OSError):
                    self.reopen()
                    if attempt == 2 or not isinstance(body, bytes):
                        self.closed += 1
                        log.debug("closed: %s", exc)
                        return None
            except http.client.RemoteDisconnected:  # a keep-alive connection the server had closed
                self.reopen()
                if attempt == 2 or not isinstance(body, bytes):
                    self.closed += 1
                    return None
        return None

    def reopen(self) -> None:
        """A new connection."""
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)


def chunks(data: bytes, rng: random.Random) -> Iterator[bytes]:
    """``data`` as a chunked body (no Content-Length)."""
    i = 0
    while i < len(data):
        n = rng.choice([1, 7, 512, 65536, 1 << 20])
        yield data[i : i + n]
        i += n


def big_chunked() -> Iterator[bytes]:
    """4 MiB + 256 KiB of JSON-ish text, chunked: over every body limit."""
    yield b'{"fixes": ["'
    block = b"x" * 65536
    for _ in range(68):
        yield block
    yield b'"]}'


def body_of(rng: random.Random, obj: Any) -> tuple[bytes | Iterator[bytes] | None, dict[str, str]]:
    """An HTTP body for ``obj`` with a content type, sometimes wrong, truncated or chunked."""
    headers = {"Content-Type": "application/json"}
    r = rng.random()
    text = dumps(obj).encode("utf-8", "surrogatepass")
    if r < 0.05:
        text = dumps(truncated(rng, obj)).encode("utf-8", "surrogatepass")
    elif r < 0.08:
        text = b""
    elif r < 0.10:
        headers["Content-Type"] = rng.choice(["text/plain", "application/xml", "multipart/form-data", ""])
    elif r < 0.12:
        text = b"\xff\xfe" + text[:100]
    elif r < 0.13:
        return big_chunked(), headers
    if rng.random() < 0.08:
        return chunks(text, rng), headers
    return text, headers


# -- the schemas --------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What every schema's sender needs."""

    city: FuzzCity
    server: Server
    n: int
    budget_s: float
    senders: int
    device_track: Track
    api_track: Track
    junk_sups: list[str]
    case_ids: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    leader_cookie: str = ""
    deps: list[dict[str, Any]] = field(default_factory=list)
    grid_codes: list[str] = field(default_factory=list)
    street_codes: list[str] = field(default_factory=list)
    phase: str = "run"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def run_senders(
    ctx: Ctx,
    t: Tally,
    sender: Callable[[int, random.Random, Callable[[], bool]], None],
    count: int | None = None,
) -> None:
    """Run ``ctx.senders`` threads until ``n`` payloads were tried or the budget is spent."""
    deadline = time.monotonic() + ctx.budget_s
    n = ctx.n if count is None else count

    def more() -> bool:
        return t.tried + t.missing_acks < n and time.monotonic() < deadline

    def loop(k: int) -> None:
        rng = random.Random(f"{SEED}:{t.schema}:{ctx.phase}:{k}")  # the warm-up's ids differ from the run's
        while more():
            try:
                sender(k, rng, more)
            except Exception as exc:  # a bug of the fuzz itself: shown, never taken for the server's
                with t.lock:
                    t.client_errors += 1
                    if t.client_errors <= 3:
                        log.exception("fuzz sender error (%s)", t.schema)
                        t.example(f"client error: {exc!r}")
                time.sleep(0.05)

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(ctx.senders)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def fuzz_fix(rng: random.Random, ctx: Ctx) -> dict[str, Any]:
    """A bad (or harmless) fix of a junk supervisor."""
    sid = rng.choice(ctx.junk_sups)
    lon, lat, _, _ = ctx.city.points[sid]
    base = {
        "id": f"j{rng.randrange(10**9)}",
        "supervisor": sid,
        "lon": lon,
        "lat": lat,
        "at": int(time.time() * 1000) - rng.randrange(10**6),
    }
    r = rng.random()
    if r < 0.08:
        base["lon"], base["lat"] = 0, 0
    elif r < 0.16:
        base["lon"], base["lat"] = rng.choice([(181, 40), (116.0, 91), (120.0, 30.0), (-116.4, -39.9)])
    elif r < 0.22:
        base["at"] = rng.choice(["2025-01-01T00:00:00", int(time.time()), "2999-01-01T00:00:00Z", 10**13 * 9])
    elif r < 0.26:
        base["crs"] = rng.choice(["gcj02", "bd09", "epsg:4326", ""])
    return mutate(rng, base, ["id", "supervisor", "lon", "lat", "at", "crs", "accuracy", "speed"])


def positions_batch(
    rng: random.Random, ctx: Ctx, track: Track, sups: list[str], limit: int = 40
) -> tuple[list[tuple[bool, dict[str, Any]]], dict[str, Any]]:
    """A mixed batch: valid fixes of ``sups`` (in time order per supervisor) and bad ones, shuffled."""
    items: list[tuple[bool, dict[str, Any]]] = []
    for _ in range(rng.randint(0, limit // 2)):
        items.append((True, track.fix(rng, rng.choice(sups))))
    bad = [(False, fuzz_fix(rng, ctx)) for _ in range(rng.randint(0, limit // 2))]
    # valid fixes keep their order (a supervisor's track); the bad ones land anywhere in between
    for b in bad:
        items.insert(rng.randrange(len(items) + 1), b)
    payload: dict[str, Any] = {"id": f"b{rng.randrange(10**9)}", "fixes": [f for _, f in items]}
    r = rng.random()
    if r < 0.02:  # over MAX_BATCH with small fixes (a junk fix repeated could make a 300 MB frame)
        sid = rng.choice(ctx.junk_sups)
        filler = {"id": "j0", "supervisor": sid, "lon": 116.4, "lat": 39.9, "at": int(time.time() * 1000)}
        payload["fixes"] = payload["fixes"] + [filler] * 1001
    elif r < 0.025:  # a frame over the 4 MiB limit: the server closes the connection (documented)
        payload["pad"] = "z" * (4 * 1024 * 1024 + 1024)
    elif r < 0.05:
        payload[rng.choice(["extra", "crs", "supervisor"])] = junk(rng)
    return items, payload


def report_valid(rng: random.Random, ctx: Ctx, sid: str | None) -> dict[str, Any]:
    """A valid report (a point in ``sid``'s grid, or a grid code, or an address)."""
    pt = ctx.city.points[sid or rng.choice(list(ctx.city.points))]
    body: dict[str, Any] = {
        "id": f"rep-{rng.randrange(10**12)}",
        "kind": "component",
        "class_code": "0101",
        "at": datetime.now(UTC).isoformat(),
    }
    if sid:
        body["supervisor"] = sid
    r = rng.random()
    if r < 0.7:
        body["lon"], body["lat"] = pt[0], pt[1]
    elif r < 0.85:
        body["grid_code"] = pt[3]
    else:
        body["address"] = rng.choice(["东城区东四北大街 107 号", "Dongsi North St 107"])
    if rng.random() < 0.3:
        body["description"] = rng.choice(UNICODE) * 3
    return body


REPORT_FIELDS = [
    "id",
    "supervisor",
    "kind",
    "class_code",
    "condition_code",
    "lon",
    "lat",
    "crs",
    "address",
    "grid_code",
    "at",
    "description",
    "media",
    "source",
    "case_id",
]
COMMAND_FIELDS = ["id", "action", "case_id", "actor", "role", "department", "opinion", "data", "at"]
ACTIONS = [
    "accept",
    "verify",
    "file",
    "void",
    "dispatch",
    "feedback",
    "check",
    "close",
    "urge",
    "assign",
    "approve",
    "reject",
    "resume",
    "request_extension",
    "request_suspension",
    "request_return",
    "report",
]


def device_event(
    rng: random.Random, ctx: Ctx, sups: list[str], gateway: bool
) -> tuple[str, Any, list[tuple[bool, dict[str, Any]]], set[str], dict[str, Any] | None]:
    """One /device event: name, payload, the batch's items (valid ones tracked), whole-batch ids, a
    valid report to track."""
    r = rng.random()
    now = datetime.now(UTC).isoformat()
    who = rng.choice(ctx.junk_sups)
    if r < 0.40 and gateway:
        items, payload = positions_batch(rng, ctx, ctx.device_track, sups)
        if rng.random() < 0.03:
            return "positions", truncated_or_deep(rng, payload), [], set(), None
        return "positions", payload, items, {payload["id"], "?"}, None
    if r < 0.55:
        if gateway and rng.random() < 0.3:
            fix = ctx.device_track.fix(rng, rng.choice(sups))
            return "position", fix, [(True, fix)], {"?"}, None
        return "position", fuzz_fix(rng, ctx), [], set(), None
    if r < 0.70:
        if gateway and rng.random() < 0.08:
            rep = report_valid(rng, ctx, who)
            return "report", rep, [], set(), rep
        base = report_valid(rng, ctx, who if gateway else None)
        return "report", mutate(rng, base, REPORT_FIELDS), [], set(), None
    if r < 0.80:
        task: dict[str, Any] = {
            "id": f"t{rng.randrange(10**9)}",
            "supervisor": who,
            "case_id": rng.choice(ctx.case_ids or ["C1"]),
            "task": rng.choice(["verify", "check"]),
            "at": now,
        }
        if rng.random() < 0.5:
            task["result"] = rng.choice([True, False])
            return (
                "task_result",
                mutate(rng, task, ["id", "case_id", "task", "result", "opinion", "media", "at"]),
                [],
                set(),
                None,
            )
        return "task_ack", mutate(rng, task, ["id", "case_id", "task", "at", "supervisor"]), [], set(), None
    if r < 0.90:
        cmd = {
            "id": f"c{rng.randrange(10**9)}",
            "action": rng.choice(ACTIONS),
            "case_id": rng.choice(ctx.case_ids or ["C1"]),
            "actor": rng.choice(["fuzz-op", LEADER, who]),
            "role": rng.choice(["acceptor", "dispatcher", "shift_leader", "leader", "supervisor"]),
            "opinion": rng.choice(["", "ok", "中文意见"]),
            "at": now,
            "data": rng.choice([{}, {"confirmed": True}, {"department": "0101"}, {"x": [1]}]),
        }
        return "command", mutate(rng, cmd, COMMAND_FIELDS) if rng.random() < 0.8 else cmd, [], set(), None
    if r < 0.95:
        event = rng.choice(["hello", "", "connect", "disconnect", "positions ", "x" * 300, "task", "message"])
        return event, junk(rng), [], set(), None
    return rng.choice(["positions", "position", "report", "command"]), junk(rng), [], set(), None


def truncated_or_deep(rng: random.Random, payload: dict[str, Any]) -> Any:
    """A payload JSON cannot hold: nested deeper than 300 levels somewhere, or a huge integer inside."""
    p = dict(payload)
    if rng.random() < 0.5:
        p["fixes"] = [*list(p["fixes"]), {"extra": deep(rng)}]
    else:
        p["ignored"] = Raw(str(2**64 + rng.randrange(1000)))
    return p


def call(c: Any, event: str, payload: Any, namespace: str = "/device", timeout: float = 60.0) -> Any:
    """Emit and wait for the acknowledgement, but not past the connection's close.

    ``socketio.Client.call`` waits out its whole timeout when the server closes the connection (as it
    does for a frame over 4 MiB), which stalled a sender for a minute each time.
    """
    import socketio

    done = threading.Event()
    box: list[Any] = []

    def answered(*args: Any) -> None:
        box.append(args[0] if len(args) == 1 else list(args) if args else None)
        done.set()

    c.emit(event, payload, namespace=namespace, callback=answered)
    deadline = time.monotonic() + timeout
    while not done.wait(0.1):
        if not c.connected:
            raise socketio.exceptions.SocketIOError("closed by the server")
        if time.monotonic() > deadline:
            raise socketio.exceptions.TimeoutError()
    return box[0]


def fuzz_device(ctx: Ctx, t: Tally) -> None:
    """/device: gateway clients (and paced device-token clients) send events and wait for each ack."""
    import socketio

    gateways = max(1, ctx.senders - 1)
    valid = ctx.device_track.sups
    devices = [s for s in ctx.junk_sups if s in ctx.city.devices][:3]

    def connect(token: str) -> Any:
        c = socketio.Client(reconnection=False, request_timeout=60)
        c.connect(
            ctx.url, namespaces=["/device"], auth={"token": token}, transports=["websocket"], wait_timeout=30
        )
        return c

    clients: dict[int, Any] = {}

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        gateway = k < gateways
        if k not in clients or not clients[k].connected:
            if k in clients:
                with t.lock:
                    t.closed += 1
            token = ctx.city.gateway if gateway else ctx.city.devices[devices[k % len(devices)]]
            clients[k] = connect(token)
        c = clients[k]
        mine = valid[k::gateways] if gateway else []
        event, payload, items, whole, rep = device_event(rng, ctx, mine, gateway)
        if not gateway:
            time.sleep(0.12)  # under the device rate (10 events/s)
        try:
            ack = call(c, event, payload)
        except socketio.exceptions.TimeoutError:
            with t.lock:
                if not c.connected:  # a frame over 4 MiB: the server closes the connection (documented)
                    t.closed += 1
                    return
                t.missing_acks += 1
                t.example(f"no ack for {event} {dumps(payload)[:200]}")
            return
        except socketio.exceptions.SocketIOError:  # the server closed the connection
            with t.lock:
                t.closed += 1
            return
        judge_ack(t, ack, event)
        if items:
            positions_check(t, ctx.device_track, items, ack, whole)
        if rep is not None and isinstance(ack, dict):
            with t.lock:
                t.valid_sent += 1
            case = (ack.get("cases") or {}).get(rep["id"])
            if case:
                with ctx.device_track.lock:
                    ctx.device_track.cases.add(case)
                    ctx.case_ids.append(case)
            else:
                with t.lock:
                    t.lost += 1
                    t.example(f"valid report not accepted: {ack}")

    import socketio.packet as packet

    original = packet.Packet.json
    packet.Packet.json = RawJson  # NaN tokens, deep nesting and huge integers go out as written
    try:
        senders = ctx.senders
        ctx.senders = gateways + (1 if devices else 0)
        run_senders(ctx, t, sender)
        ctx.senders = senders
    finally:
        packet.Packet.json = original
        for c in clients.values():
            with contextlib.suppress(Exception):
                c.disconnect()


def room(rng: random.Random, ctx: Ctx) -> Any:
    """A room name: valid (of every kind) or not."""
    r = rng.random()
    if r < 0.03:
        return "wall"
    if r < 0.15:
        return f"street:{rng.choice(ctx.street_codes)}"
    if r < 0.30:
        return f"grid:{rng.choice(ctx.grid_codes)}"
    if r < 0.40:
        return f"case:{rng.choice(ctx.case_ids or ['C1'])}"
    if r < 0.50:
        return f"supervisor:{rng.choice(ctx.junk_sups)}"
    bad = [
        "street:999999999",
        "grid:1",
        "case:",
        "case:" + "x" * 40,
        "supervisor:a b",
        "wall ",
        "WALL",
        "street:11010100",
        "grid:110101001001001x",
        "room:1",
        "case:../x",
        "supervisor:" + "s" * 65,
    ]
    if r < 0.8:
        return rng.choice(bad)
    return junk(rng)


def fuzz_live(ctx: Ctx, t: Tally) -> None:
    """/live: kiosk clients send join/leave/resync (and unknown events), each with an ack request."""
    import socketio

    clients: dict[int, Any] = {}

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        if k not in clients or not clients[k].connected:
            if k in clients:
                with t.lock:
                    t.closed += 1
            c = socketio.Client(reconnection=False, request_timeout=60)
            c.connect(
                ctx.url,
                namespaces=["/live"],
                auth={"token": ctx.city.kiosk},
                transports=["websocket"],
                wait_timeout=30,
            )
            clients[k] = c
        c = clients[k]
        event = rng.choices(["join", "leave", "resync", "tick", "snapshot", "x"], [4, 3, 3, 0.3, 0.3, 0.4])[0]
        r = rng.random()
        data: Any = {"room": room(rng, ctx)} if r < 0.85 else junk(rng)
        if r < 0.85 and rng.random() < 0.1:
            data = mutate(rng, data, ["room", "seq", "extra"])
        try:
            ack = call(c, event, data, "/live")
        except socketio.exceptions.TimeoutError:
            with t.lock:
                t.missing_acks += 1
                t.example(f"no ack for /live {event} {dumps(data)[:200]}")
            return
        except socketio.exceptions.SocketIOError:
            with t.lock:
                t.closed += 1
            return
        with t.lock:
            t.tried += 1
            if isinstance(ack, dict) and ack.get("ok") is True:
                t.accepted += 1
            elif isinstance(ack, dict) and isinstance(ack.get("reason"), str):
                t.refused += 1
                t.reasons[ack["reason"]] += 1
            elif ack is None and event not in ("join", "leave", "resync"):
                t.ignored += 1
            else:
                t.unnamed += 1
                t.example(f"/live {event} {dumps(data)[:100]} answered {ack!r:.200}")
        if isinstance(ack, dict) and ack.get("ok") is True and event == "join" and rng.random() < 0.8:
            with contextlib.suppress(socketio.exceptions.SocketIOError):
                call(c, "leave", data, "/live")  # keep each client's rooms few

    import socketio.packet as packet

    original = packet.Packet.json
    packet.Packet.json = RawJson
    try:
        run_senders(ctx, t, sender)
    finally:
        packet.Packet.json = original
        for c in clients.values():
            with contextlib.suppress(Exception):
                c.disconnect()


def token(rng: random.Random, ctx: Ctx, role: str) -> dict[str, str]:
    """Authorization headers: mostly the key of ``role``; sometimes another kind, junk or none."""
    r = rng.random()
    if r < 0.90:
        secret = ctx.city.keys[role]
    elif r < 0.93:
        secret = ctx.city.gateway
    elif r < 0.95:
        secret = ctx.city.kiosk
    elif r < 0.97:
        secret = "not-a-token-" + rng.choice(UNICODE).encode("unicode_escape").decode()
    else:
        return {}
    return {"X-API-Key": secret} if rng.random() < 0.3 else {"Authorization": f"Bearer {secret}"}


def fuzz_api(ctx: Ctx, t: Tally) -> None:
    """/api/v1: positions (mixed batches), reports, lifecycle commands, reads."""
    conns: dict[int, Http] = {}
    sups_of = {k: ctx.api_track.sups[k :: ctx.senders] for k in range(ctx.senders)}

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        h = conns.setdefault(k, Http(ctx.server.port))
        r = rng.random()
        if r < 0.40:
            items, payload = positions_batch(rng, ctx, ctx.api_track, sups_of[k])
            headers = token(rng, ctx, "supervisor")
            if rng.random() < 0.85:
                body: Any = dumps(payload).encode("utf-8", "surrogatepass")
                headers["Content-Type"] = "application/json"
                if rng.random() < 0.1:
                    body = chunks(body, rng)
            else:
                items = []
                body, more_h = body_of(
                    rng, truncated_or_deep(rng, payload) if rng.random() < 0.3 else payload
                )
                headers.update(more_h)
            got = h.send("POST", "/api/v1/positions", body, headers)
            if got is None:
                with t.lock:
                    t.closed += 1
                return
            ack = judge_http(t, got[0], got[1], "positions")
            if got[0] == 200 and items:
                positions_check(t, ctx.api_track, items, ack, {payload["id"], "?"})
            return
        if r < 0.65:
            valid = rng.random() < 0.1
            rep = report_valid(rng, ctx, None)
            rep.pop("id")
            obj: Any = rep if valid else mutate(rng, rep, REPORT_FIELDS)
            headers = (
                token(rng, ctx, "call_center") if not valid else {"X-API-Key": ctx.city.keys["call_center"]}
            )
            if valid:
                body, headers["Content-Type"] = dumps(obj).encode(), "application/json"
            else:
                body, more_h = body_of(rng, obj)
                headers.update(more_h)
            got = h.send("POST", "/api/v1/reports", body, headers)
            if got is None:
                with t.lock:
                    t.closed += 1
                return
            out = judge_http(t, got[0], got[1], "reports")
            if valid:
                with t.lock:
                    t.valid_sent += 1
                case = (out.get("cases") or {}) if isinstance(out, dict) else {}
                if got[0] == 201 and case:
                    cid = next(iter(case.values()))
                    with ctx.api_track.lock:
                        ctx.api_track.cases.add(cid)
                        ctx.case_ids.append(cid)
                else:
                    with t.lock:
                        t.lost += 1
                        t.example(f"valid API report {obj} answered {got[0]} {got[1][:200]!r}")
            return
        if r < 0.87:
            case = (
                rng.choice(ctx.case_ids or ["C1"])
                if rng.random() < 0.9
                else rng.choice(["x" * 40, "%00", "中"])
            )
            action = rng.choice([*ACTIONS, "handle", "return", "extend", "suspend", "nope", "", "x" * 100])
            role = rng.choice(["acceptor", "shift_leader", "dispatcher", "leader", "supervisor"])
            cmd = {
                "opinion": rng.choice(["", "ok", "中文"]),
                "confirmed": True,
                "department": "0101",
                "extra": "2工作日",
                "at": datetime.now(UTC).isoformat(),
            }
            obj = mutate(
                rng, cmd, ["id", "at", "opinion", "data", "actor", "confirmed", "passed", "assignee"]
            )
            body, headers = body_of(rng, obj)
            headers.update(token(rng, ctx, role))
            path = f"/api/v1/cases/{urllib.parse.quote(case, safe='')}/{urllib.parse.quote(action, safe='')}"
            got = h.send("POST", path, body, headers)
        elif r < 0.92:
            case = (
                rng.choice(ctx.case_ids or ["C1"])
                if rng.random() < 0.5
                else rng.choice(["%ff", "..", "x" * 300])
            )
            got = h.send(
                "GET", f"/api/v1/cases/{urllib.parse.quote(case, safe='%')}", None, token(rng, ctx, "leader")
            )
        else:
            method = rng.choice(["PUT", "DELETE", "PATCH", "POST", "GET"])
            path = rng.choice(
                ["/api/v1/", "/api/v1/nope", "/api/v1/positions", "/api/v1/reports/x", "/api/v1/cases"]
            )
            body, headers = body_of(rng, junk(rng))
            headers.update(token(rng, ctx, "supervisor"))
            got = h.send(method, path, body if method != "GET" else None, headers)
        if got is None:
            with t.lock:
                t.closed += 1
            return
        judge_http(t, got[0], got[1], "api")

    try:
        run_senders(ctx, t, sender)
    finally:
        for h in conns.values():
            h.conn.close()


def fuzz_open311(ctx: Ctx, t: Tally) -> None:
    """Open311 POST requests.json as JSON and as a form, with and without a valid api_key."""
    conns: dict[int, Http] = {}
    sups = list(ctx.city.points)

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        h = conns.setdefault(k, Http(ctx.server.port))
        pt = ctx.city.points[rng.choice(sups)]
        form: dict[str, Any] = {
            "api_key": ctx.city.keys["call_center"],
            "service_code": rng.choice(["C0101", "E0101"]),
            "lat": pt[1],
            "long": pt[0],
            "description": "井盖缺失",
        }
        if rng.random() < 0.2:
            form.pop("lat"), form.pop("long")
            form["address_string"] = "东城区东四北大街 107 号"
        valid = rng.random() < 0.15
        if not valid:
            form = mutate(
                rng,
                form,
                [
                    "api_key",
                    "service_code",
                    "lat",
                    "long",
                    "address_string",
                    "description",
                    "media_url",
                    "attribute",
                    "attribute[condition_code]",
                    "email",
                ],
            )
            if rng.random() < 0.2:
                form["api_key"] = rng.choice(["", "wrong", ctx.city.kiosk, ctx.city.gateway, 12345, None])
        path = (
            "/open311/v2/requests.json"
            if valid or rng.random() < 0.97
            else rng.choice(["/open311/v2/requests.xml", "/open311/v2/requests"])
        )
        as_json = rng.random() < 0.5
        headers: dict[str, str] = {}
        if as_json:
            body, headers = (
                body_of(rng, form)
                if not valid
                else (dumps(form).encode(), {"Content-Type": "application/json"})
            )
        else:
            pairs = []
            for key, v in form.items():
                text = v if isinstance(v, str) else dumps(v)
                pairs.append((key, text))
            raw = urllib.parse.urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
            if not valid and rng.random() < 0.05:
                raw = raw[: rng.randrange(len(raw) + 1)] + b"%zz%" + bytes([rng.randrange(256)])
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = raw
            if not valid and rng.random() < 0.05:
                body = chunks(raw, rng) if rng.random() < 0.8 else big_chunked()
        got = h.send("POST", path, body, headers)
        if got is None:
            with t.lock:
                t.closed += 1
            return
        out = judge_http(t, got[0], got[1], "open311")
        if valid:
            with t.lock:
                t.valid_sent += 1
            sid = (
                out[0].get("service_request_id")
                if isinstance(out, list) and out and isinstance(out[0], dict)
                else None
            )
            if got[0] == 201 and sid:
                with ctx.api_track.lock:
                    ctx.api_track.cases.add(sid)
                    ctx.case_ids.append(sid)
            else:
                with t.lock:
                    t.lost += 1
                    t.example(f"valid Open311 request {form} answered {got[0]} {got[1][:200]!r}")

    try:
        run_senders(ctx, t, sender)
    finally:
        for h in conns.values():
            h.conn.close()


def png(rng: random.Random) -> bytes:
    """A new 4×4 PNG of random colours."""
    from PIL import Image

    img = Image.new("RGB", (4, 4))
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(16)])
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str) -> bytes:
    """A multipart/form-data body of (name, filename, content type, data) parts."""
    out = b""
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode("utf-8", "surrogatepass")
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def fuzz_media(ctx: Ctx, t: Tally) -> None:
    """POST /api/v1/media: real and broken photos, wrong kinds, bodies and tokens."""
    conns: dict[int, Http] = {}
    device = next(iter(ctx.city.devices.values()))

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        h = conns.setdefault(k, Http(ctx.server.port))
        secret = rng.choices(
            [device, ctx.city.gateway, ctx.city.keys["supervisor"], ctx.city.kiosk, "junk", ""],
            [4, 3, 3, 0.3, 0.3, 0.3],
        )[0]
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        image = png(rng)
        r = rng.random()
        valid = r < 0.25
        data = image
        if 0.25 <= r < 0.45:
            data = rng.choice(
                [
                    image[: rng.randrange(len(image))],
                    os.urandom(rng.randrange(1, 4000)),
                    b"",
                    b"\xff\xd8\xff\xe0" + os.urandom(200),
                    b"GIF89a" + os.urandom(50),
                    b"RIFF" + os.urandom(60),
                    b"#!AMR\n" + os.urandom(30),
                    b"<svg onload=alert(1)>",
                ]
            )
        kind: Any = (
            "near" if valid else rng.choice(["near", "far", "reference", "voice", "", "x", "中", "near\x00"])
        )
        parts: list[tuple[str, str | None, str | None, bytes]] = [
            ("kind", None, None, str(kind).encode("utf-8", "surrogatepass")),
            (
                "file",
                rng.choice(["a.png", "../../x.png", "", "中.jpg", "x" * 300]),
                rng.choice(["image/png", None, "text/html"]),
                data,
            ),
        ]
        if not valid and rng.random() < 0.2:
            parts.pop(rng.randrange(2))
        if not valid and rng.random() < 0.1:
            parts.append(("file", "b.png", "image/png", image))
        boundary = f"gwfuzz{rng.randrange(10**9)}"
        body: Any = multipart(parts, boundary)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        if not valid:
            q = rng.random()
            if q < 0.08:
                body = body[: rng.randrange(len(body))]
            elif q < 0.14:
                headers["Content-Type"] = rng.choice(
                    [
                        "application/json",
                        "multipart/form-data",
                        "text/plain",
                        "multipart/form-data; boundary=other",
                    ]
                )
            elif q < 0.18:
                body = chunks(body, rng)
            elif q < 0.19:
                body = iter(
                    [
                        b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="file"; '
                        b'filename="a.png"\r\n\r\n'
                    ]
                    + [b"\0" * 65536] * 200
                )  # chunked, 12.5 MiB
            elif q < 0.20:
                headers["Content-Length"] = str(11 * 1024 * 1024)  # declared over the limit, nothing sent
                body = b""
        got = h.send("POST", "/api/v1/media", body, headers)
        if got is None:
            with t.lock:
                t.closed += 1
            return
        out = judge_http(t, got[0], got[1], "media")
        if valid and secret in (device, ctx.city.gateway, ctx.city.keys["supervisor"]):
            with t.lock:
                t.valid_sent += 1
            ref = out.get("ref") if isinstance(out, dict) else None
            if got[0] in (200, 201) and isinstance(ref, str):
                hexd = ref.removeprefix("sha256:")
                files = list((ctx.city.data_dir / "media" / hexd[:2] / hexd[2:4]).glob(f"{hexd}.*"))
                if files:
                    with t.lock:
                        ctx.refs.append(ref)
                    return
            with t.lock:
                t.lost += 1
                t.example(f"valid upload answered {got[0]} {got[1][:200]!r}")

    try:
        run_senders(ctx, t, sender)
    finally:
        for h in conns.values():
            h.conn.close()


def dash_body(rng: random.Random, ctx: Ctx, kiosk: bool) -> tuple[Any, bool]:
    """A ``/_dash-update-component`` body (and whether it is a well-formed call of a known callback)."""
    from dashboard import ids

    loc = ids.LOCATION
    paths = (
        ["/wall"]
        if kiosk
        else [
            "/desk",
            f"/street/{rng.choice(ctx.street_codes)}",
            f"/grid/{rng.choice(ctx.grid_codes)}",
            f"/case/{rng.choice(ctx.case_ids or ['C1'])}",
            "/desk/queue/acceptor",
            "/evaluation",
            "/nope",
            "/wall",
        ]
    )
    search = rng.choice(
        [
            "",
            "?lang=en",
            "?heat=overdue",
            "?scenes=overview,streets&dwell=20",
            "?dwell=abc",
            "?scenes=" + "x," * 200,
            "?lang=" + "中" * 50,
            "?heat=%00",
            "?" + "a=1&" * 300,
        ]
    )
    router: dict[str, Any] = {
        "output": f"{ids.PAGE}.children",
        "outputs": {"id": ids.PAGE, "property": "children"},
        "inputs": [
            {"id": loc, "property": "pathname", "value": rng.choice(paths)},
            {"id": loc, "property": "search", "value": search},
        ],
        "changedPropIds": [f"{loc}.pathname"],
        "state": [],
    }
    r = rng.random()
    if r < PAGE_SHARE[kiosk]:  # a page rendered for real: most of a Dash schema's server time
        return router, True
    if r < 0.55 and ctx.deps and not kiosk:
        dep = rng.choice(ctx.deps)
        body = {
            "output": dep.get("output"),
            "outputs": dep.get("outputs") or {},
            "inputs": [
                {**i, "value": junk(rng, False) if rng.random() < 0.5 else None}
                for i in dep.get("inputs", [])
            ],
            "state": [{**s, "value": junk(rng, False)} for s in dep.get("state", [])],
            "changedPropIds": [],
        }
        return body, False
    body = mutate(rng, router, ["output", "outputs", "inputs", "state", "changedPropIds"])
    if rng.random() < 0.3:
        inputs: list[dict[str, Any]] = router["inputs"]
        body["inputs"] = [mutate(rng, dict(i), ["id", "property", "value"]) for i in inputs]
    return body, False


def fuzz_dash(ctx: Ctx, t: Tally, kiosk: bool) -> None:
    """POST /_dash-update-component as the leader (desk) or with the kiosk cookie (wall)."""
    conns: dict[int, Http] = {}
    cookie = f"gw_kiosk={ctx.city.kiosk}" if kiosk else ctx.leader_cookie

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        h = conns.setdefault(k, Http(ctx.server.port))
        obj, _ = dash_body(rng, ctx, kiosk)
        body, headers = (
            body_of(rng, obj) if rng.random() < 0.5 else (dumps(obj).encode("utf-8", "surrogatepass"), {})
        )
        headers.setdefault("Content-Type", "application/json")
        headers["Cookie"] = cookie
        got = h.send("POST", "/_dash-update-component", body, headers)
        if got is None:
            with t.lock:
                t.closed += 1
            return
        judge_http(t, got[0], got[1], f"dash {dumps(obj)[:300]}")

    try:
        run_senders(ctx, t, sender)
    finally:
        for h in conns.values():
            h.conn.close()


# -- the run --------------------------------------------------------------------------------


def desk_login(ctx: Ctx) -> None:
    """Log the leader in (the session cookie) and read the app's callbacks."""
    import requests

    from tests.desk_login import login_http

    s = login_http(ctx.url, LEADER, LEADER_PASSWORD)
    ctx.leader_cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    r = s.get(f"{ctx.url}/_dash-dependencies", timeout=60)
    ctx.deps = r.json() if r.status_code == 200 else []
    s.close()
    del requests


def codes(city: FuzzCity) -> tuple[list[str], list[str]]:
    """Grid and street codes of the district."""
    from sqlalchemy import select

    from store.db import create_engine
    from store.models import Grid

    engine = create_engine(city.url, write=False)
    try:
        with engine.connect() as c:
            grids = sorted(c.scalars(select(Grid.code).where(Grid.active)))
    finally:
        engine.dispose()
    return grids, sorted({g[:9] for g in grids})


def fuzz_handset(ctx: Ctx, t: Tally) -> None:
    """The handset app's inputs (issue 16): its sign-in, its hello, its reads, the desk's device routes."""
    conns: dict[int, Http] = {}
    person, app = ctx.city.handset

    def sender(k: int, rng: random.Random, more: Callable[[], bool]) -> None:
        h = conns.setdefault(k, Http(ctx.server.port))
        r = rng.random()
        headers: dict[str, str] = {}
        body: bytes | Iterator[bytes] | None = None
        if r < 0.4:  # sign-in: mostly wrong (throttled, named), sometimes right
            obj: dict[str, Any] = {"person": person, "password": HANDSET_PASSWORD}
            if rng.random() < 0.9:
                obj = mutate(rng, obj, ["person", "password", "device"])
            body, headers = body_of(rng, obj)
            method, path = "POST", "/m/api/pair"
        elif r < 0.7:  # hello with the app's token
            hello: dict[str, Any] = {"version": "0.1.0", "battery": round(rng.random(), 2), "charging": False}
            if rng.random() < 0.8:
                hello = mutate(rng, hello, ["version", "battery", "charging"])
            body, headers = body_of(rng, hello)
            method, path = "POST", "/m/api/hello"
            headers["Authorization"] = f"Bearer {rng.choice([app, app, app, '', 'wrong', ctx.city.kiosk])}"
        elif r < 0.85:  # the app's reads, with its token or another
            method = "GET"
            reads = ["/m/api/me", "/m/api/tasks", "/m/api/catalogue", "/m/api/district", "/m/app.js"]
            path = rng.choice([*reads, "/m/" + rng.choice(["x", "..%2f", "sw.js", "manifest.webmanifest"])])
            given = rng.choice([app, ctx.city.gateway, ctx.city.kiosk, "", "x" * 300])
            headers["Authorization"] = f"Bearer {given}"
        else:  # the desk's device routes: a leader's session (wrong role), none, junk ids and bodies
            method = "POST"
            some = rng.randrange(-5, 10**12)
            path = rng.choice(
                ["/desk/api/devices/pair", f"/desk/api/devices/{some}/revoke", "/desk/api/devices/abc/revoke"]
            )
            body, headers = body_of(rng, mutate(rng, {"person": person}, ["person"]))
            if rng.random() < 0.7:
                headers["Cookie"] = ctx.leader_cookie
                headers["X-Requested-With"] = "XMLHttpRequest"
        got = h.send(method, path, body, headers)
        if got is None:
            with t.lock:
                t.closed += 1
            return
        judge_http(t, got[0], got[1], f"handset {method} {path}")

    try:
        run_senders(ctx, t, sender)
    finally:
        for h in conns.values():
            h.conn.close()


PHASES: dict[str, Callable[[Ctx, Tally], None]] = {
    "/device": fuzz_device,
    "/live": fuzz_live,
    "/api/v1": fuzz_api,
    "open311": fuzz_open311,
    "media": fuzz_media,
    "dash desk": lambda ctx, t: fuzz_dash(ctx, t, False),
    "dash kiosk": lambda ctx, t: fuzz_dash(ctx, t, True),
    "handset": fuzz_handset,
}


@dataclass
class Outcome:
    """Every schema's tally, the overall RSS and what the log held."""

    tallies: list[Tally]
    rss_warm: float
    rss_end: float
    seconds: float
    log_tail: list[str]
    missing_fixes: int
    missing_cases: int
    n: int
    budget_s: float


def fuzz(
    n: int,
    budget_s: float,
    *,
    senders: int = 4,
    folder: Path | None = None,
    schemas: tuple[str, ...] = SCHEMAS,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Prepare a city, start the server, fuzz each schema (``n`` payloads or ``budget_s`` seconds)."""
    tmp = folder or Path(tempfile.mkdtemp(prefix="gw-bench-fuzz-"))
    try:
        city = prepare(tmp)
        server = start(city, tmp / "server.log")
        try:
            return _fuzz(city, server, n, budget_s, senders, schemas, say)
        finally:
            stop(server)
    finally:
        if folder is None and not os.environ.get("GW_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


def _fuzz(
    city: FuzzCity,
    server: Server,
    n: int,
    budget_s: float,
    senders: int,
    schemas: tuple[str, ...],
    say: Callable[[str], None],
) -> Outcome:
    sups = sorted(city.points)
    device_valid, api_valid, junk_sups = sups[0::3], sups[1::3], sups[2::3]
    grids, streets = codes(city)
    ctx = Ctx(
        city,
        server,
        n,
        budget_s,
        senders,
        Track(city.points, device_valid),
        Track(city.points, api_valid),
        junk_sups,
        grid_codes=grids,
        street_codes=streets,
    )
    desk_login(ctx)
    # warm-up: a slice of every schema (not counted), then the RSS every later figure is judged against
    warm = Ctx(**{**ctx.__dict__, "n": max(20, n // 50), "budget_s": min(budget_s, 20.0), "phase": "warm-up"})
    for name in schemas:
        PHASES[name](warm, Tally(name))
    time.sleep(2)
    rss_warm = server.rss_mb()
    say(f"fuzz: warmed up, server RSS {rss_warm:,.0f} MB; {n:,} payloads or {budget_s:.0f} s per schema")
    tallies: list[Tally] = []
    t_all = time.perf_counter()
    for name in schemas:
        t = Tally(name)
        tb0 = server.tracebacks()
        t.rss_start = server.rss_mb()
        t0 = time.perf_counter()
        PHASES[name](ctx, t)
        t.seconds = time.perf_counter() - t0
        t.rss_end = server.rss_mb()
        t.tracebacks = server.tracebacks() - tb0
        if server.proc.poll() is not None:
            t.example(f"the server exited with {server.proc.returncode}")
            t.server_errors += 1
        tallies.append(t)
        say(
            f"fuzz: {name}: {t.tried:,} in {t.seconds:.0f} s, refused {t.refused:,}, 5xx {t.server_errors}, "
            f"unavailable {t.unavailable}, tracebacks {t.tracebacks}, missing acks {t.missing_acks}, "
            f"lost {t.lost}"
        )
    seconds = time.perf_counter() - t_all
    time.sleep(3)  # the last group commits and frees; then the RSS that stays
    rss_end = server.rss_mb()
    missing_fixes, missing_cases = stored(city, ctx.device_track)
    api_fixes, api_cases = stored(city, ctx.api_track)
    for t in tallies:  # the database check is charged to the schema that sent the items
        if t.schema == "/device":
            t.lost += missing_fixes + missing_cases
        if t.schema == "/api/v1":
            t.lost += api_fixes + api_cases  # Open311's cases are in the API track too
    tail = [ln for ln in server.log.read_text(errors="replace").splitlines() if ln.strip()]
    return Outcome(
        tallies,
        rss_warm,
        rss_end,
        seconds,
        tail[-40:],
        missing_fixes + api_fixes,
        missing_cases + api_cases,
        n,
        budget_s,
    )


def rows_of(out: Outcome, smoke: bool) -> list[HarnessRow]:
    """The harness table's rows: one per schema and the overall one."""
    rows: list[HarnessRow] = []
    for t in out.tallies:
        ok = t.bad == 0 and t.client_errors == 0
        notes = [
            f"5xx {t.server_errors}, unavailable {t.unavailable}, tracebacks {t.tracebacks}, "
            f"missing acks {t.missing_acks}, lost {t.lost} of {t.valid_sent:,} valid"
        ]
        notes.append(f"{t.tried / t.seconds:,.0f}/s" if t.seconds else "")
        if t.tried < out.n and not smoke:
            notes.append(f"stopped at the {out.budget_s:.0f} s budget before {out.n:,}")
        if t.unnamed:
            notes.append(f"unnamed 4xx/acks {t.unnamed}")
        if t.ignored:
            notes.append(f"unknown events ignored {t.ignored}")
        if t.closed:
            notes.append(f"connections closed by the server {t.closed}")
        if t.client_errors:
            notes.append(f"fuzz client errors {t.client_errors}")
        top = ", ".join(f"{k} {v}" for k, v in t.reasons.most_common(4))
        if top:
            notes.append(top)
        rows.append(
            HarnessRow(
                f"fuzz {t.schema}",
                t.tried,
                t.refused,
                t.server_errors + t.unavailable + t.tracebacks,
                t.lost + t.missing_acks,
                None,
                t.rss_start,
                t.rss_end,
                PASS if ok else FAIL,
                "; ".join(x for x in notes if x),
            )
        )
    growth = out.rss_end / out.rss_warm if out.rss_warm else float("nan")
    status = judged(growth <= RSS_BAR) if all(r.status == PASS for r in rows) else FAIL
    tried = sum(t.tried for t in out.tallies)
    summary = (
        f"RSS after warm-up {out.rss_warm:,.0f} → end {out.rss_end:,.0f} MB ({(growth - 1) * 100:+.0f} %, "
        f"bar ≤ +{(RSS_BAR - 1) * 100:.0f} %); {tried / out.seconds:,.0f} payloads/s; database check: "
        f"{out.missing_fixes} acknowledged fixes and {out.missing_cases} cases missing"
    )
    rows.append(
        HarnessRow(
            "fuzz overall",
            tried,
            sum(t.refused for t in out.tallies),
            sum(r.server_errors for r in rows),
            sum(r.lost for r in rows),
            None,
            out.rss_warm,
            out.rss_end,
            status,
            summary,
        )
    )
    return rows


def run(
    smoke: bool = False, schemas: tuple[str, ...] = SCHEMAS, budget_s: float | None = None
) -> list[Result]:
    """Fuzz the schemas of a real server (every one by default); print the harness table."""
    from bench._server import load_line

    def say(m: str) -> None:
        console.print(m, highlight=False)

    n, budget = (N_SMOKE, BUDGET_SMOKE_S) if smoke else (N_FULL, BUDGET_FULL_S)
    budget = budget_s or budget
    say(f"fuzz: {load_line()}")
    out = fuzz(n, budget, senders=3 if smoke else SENDERS_FULL, schemas=schemas, say=say)
    rows = rows_of(out, smoke)
    title = (
        f"Fuzz (issue 20): {n:,} payloads per schema or {budget:.0f} s, seed {SEED}, SQLite, "
        "one gunicorn worker"
    )
    print_harness(title, rows)
    for t in out.tallies:
        for e in t.examples:
            say(f"  {t.schema}: {e}")
    if any(TRACEBACK in ln for ln in out.log_tail) or any(t.tracebacks for t in out.tallies):
        say("server log (last lines):\n" + "\n".join(out.log_tail[-25:]))
    say(f"fuzz: {load_line()}")
    return harness_results("fuzz", rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve(sys.argv[2:]))
    results = run(smoke="--smoke" in sys.argv)
    sys.exit(1 if any(r.status == FAIL for r in results) else 0)
