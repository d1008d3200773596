"""Scale-out faults and bookkeeping with real processes (Redis, PostgreSQL): a slow ``/live`` client; the
CJ/T 292 daily counters kept by the producing aggregator from the case log.

Two web processes, the aggregator and the ingest consumer run as in ``test_scale_roles``. On web
process A a normal wall and a slow client are connected. The slow client joins every street room and
many grid and supervisor rooms, stops reading its socket and keeps asking for ``wall`` snapshots
(about 170 kB each) — a screen stuck in a resync loop on a link that does not drain. It still answers
the server's pings, blindly, so only the send-queue bound can end it. The kernel's socket buffer fills
(at most ``tcp_wmem``), then the server's queue for it; A closes its connection and discards what was
queued; the normal wall on A keeps consecutive ``seq`` throughout; the slow client, reading again, finds
its connection closed after a bounded backlog, reconnects and gets a ``snapshot`` and consecutive ticks.

Counters: lifecycle commands go through ``/api/v1`` of a web process and the stream; the aggregator
counts the new case events every few seconds (``feeds.counters.LogFollower``). The saved rows equal a
rebuild from the log, first from the aggregator that started on the empty log, then from a standby that
took over, loaded the saved rows and caught up. Then, with the aggregators stopped, a follower in this
process meets the ids that concurrent transactions leave: one still open (counted once committed), one
rolled back (given up after the wait), one committed after it was given up (healed by a rebuild), one
open during a rebuild, one open while another process loads the rows — the saved rows equal a rebuild
from the log after each.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy as sa
import websocket

from domain.catalogue import load_catalogue
from feeds.core import build_context
from feeds.counters import LogFollower
from feeds.live import grid_areas, supervisor_areas
from feeds.sockets import Broadcaster
from feeds.sources.caseflow import generate
from store.accounts import issue_token
from store.cases import execute
from store.counters import MARK, load_rows
from store.db import create_engine, transaction
from store.evaluation import rebuild_aggregates
from store.models import Case, CaseEventRow, CounterMark, Reject
from tests.live_server import Peer
from tests.test_scale_support import Deployment, Part, Spot

MAX_QUEUE = int(Broadcaster.__init__.__kwdefaults__["max_queue"])  # type: ignore[index]


def rss_kib(part: Part) -> int:
    """The resident memory of a process (KiB)."""
    with open(f"/proc/{part.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wall_seqs(peer: Peer) -> tuple[list[int], list[int]]:
    """``seq`` of the ``wall`` room's snapshots, and of its ticks and alerts, each sorted (python-engineio's
    client runs each message's handler in a thread of its own: the record is not in arrival order)."""
    with peer._cond:
        got = [(e, int(d["seq"])) for e, d in peer.received if e in ("snapshot", "tick", "alert")
               and d["room"] == "wall"]  # fmt: skip
    return sorted(s for e, s in got if e == "snapshot"), sorted(s for e, s in got if e != "snapshot")


def consecutive(peer: Peer) -> bool:
    """One snapshot, then every ``seq`` after it exactly once: none missing, none repeated."""
    snaps, seqs = wall_seqs(peer)
    return len(snaps) == 1 and bool(seqs) and seqs == list(range(snaps[0] + 1, seqs[-1] + 1))


class StalledClient:
    """A raw Engine.IO websocket client on ``/live`` that joins rooms and then stops reading.

    Its receive buffer is small (``SO_RCVBUF``). A thread asks for a ``wall`` snapshot ``resyncs``
    times a second and sends an Engine.IO pong every few seconds without reading the pings: the
    server's ping timeout never ends the connection, only the queue bound can.
    """

    def __init__(self, url: str, token: str, rooms: list[str], resyncs: float) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            ws_url, timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
            enable_multithread=True,
        )  # fmt: skip
        assert self._recv().startswith("0")  # Engine.IO open
        self.ws.send("40/live," + json.dumps({"token": token}))
        self.sid = ""
        self.told_to_leave = False  # a namespace DISCONNECT: a Socket.IO client would not reconnect
        self.received: list[tuple[str, dict[str, Any]]] = []
        while not any(e == "snapshot" for e, _ in self.received):
            self._take(self._recv())
        assert self.sid
        for room in rooms:  # no acknowledgement asked: nothing to read back
            self.ws.send("42/live," + json.dumps(["join", {"room": room}]))
        self.resyncs = resyncs
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._sender.start()

    def _send(self) -> None:
        resync = "42/live," + json.dumps(["resync", {"room": "wall"}])
        next_pong = time.monotonic() + 5.0
        while not self._stop.wait(1.0 / self.resyncs):
            try:
                self.ws.send(resync)
                if time.monotonic() >= next_pong:
                    self.ws.send("3")
                    next_pong += 5.0
            except (websocket.WebSocketException, OSError):
                return

    def _recv(self) -> str:
        msg = self.ws.recv()
        return msg if isinstance(msg, str) else msg.decode()

    def _take(self, msg: str) -> None:
        if msg.startswith("40/live,"):
            self.sid = json.loads(msg[len("40/live,") :])["sid"]
        elif msg.startswith("42/live,"):
            event, body = json.loads(msg[len("42/live,") :])
            self.received.append((event, body))
        elif msg.startswith("41/live"):
            self.told_to_leave = True

    def drain(self, timeout: float = 15.0) -> bool:
        """Read again until the server closes the connection (True) or ``timeout`` passes (False)."""
        self._stop.set()
        self.ws.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = self._recv()
                if not msg:
                    return True
                self._take(msg)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
        except websocket.WebSocketTimeoutException:
            return False
        return False

    def close(self) -> None:
        """Stop sending and close the socket."""
        self._stop.set()
        self.ws.close(timeout=0.2)


def test_a_slow_live_client_is_cut_and_resyncs_while_the_others_keep_their_seq(
    deployment: Deployment, people: list[Spot]
) -> None:
    web = next(p for p in deployment.parts if p.role == "web" and p.proc.poll() is None)
    streets = sorted({s.grid[:9] for s in people})
    rooms = [f"street:{c}" for c in streets] + [f"grid:{s.grid}" for s in people[:30]]
    rooms += [f"supervisor:{s.person}" for s in people[:30]]
    normal = Peer(web.url, "/live", deployment.kiosk)
    slow: StalledClient | None = None
    again: Peer | None = None
    try:
        normal.wait("snapshot", timeout=10)
        normal.wait("tick", timeout=5)
        rss_before = rss_kib(web)
        slow = StalledClient(web.url, deployment.kiosk, rooms, resyncs=10)
        stalled_at = time.monotonic()
        line = f"dropping slow /live client {slow.sid} (queue over {MAX_QUEUE})"
        while line not in web.text():  # the server's queue for it passed the bound: it is cut
            assert time.monotonic() - stalled_at < 40, f"slow client never dropped:\n{web.text()[-3000:]}"
            time.sleep(0.2)
        cut_after = time.monotonic() - stalled_at
        rss_cut = rss_kib(web)
        wall_at_cut = wall_seqs(normal)[1][-1]
        time.sleep(8)  # it still holds its unread socket and asks for snapshots: nothing is queued now
        rss_later = rss_kib(web)
        wall_now = wall_seqs(normal)[1][-1]
        assert wall_now >= wall_at_cut + 6  # the normal wall on the same process kept receiving ticks
        closed = slow.drain()  # within 15 s: the transport is closed, not left to the ping timeout
        assert closed, "the server did not close the slow client's connection"
        assert not slow.told_to_leave
        slow_wall = [seq for e, seq in ((e, int(b["seq"])) for e, b in slow.received if b["room"] == "wall")]
        # what reached it after it read again is a bounded backlog: nothing produced after the cut
        assert max(slow_wall) <= wall_at_cut + 1 < wall_now
        assert len(slow.received) < (len(rooms) + slow.resyncs) * (cut_after + 3) + MAX_QUEUE
        # it reconnects (as a Socket.IO client does after a transport close): snapshot, then ticks
        again = Peer(web.url, "/live", deployment.kiosk)
        snap = again.wait("snapshot", lambda m: m["room"] == "wall", timeout=10)
        assert snap["seq"] >= wall_now
        again.wait("tick", lambda m: m["seq"] >= snap["seq"] + 3, timeout=10)
        assert consecutive(again) and wall_seqs(again)[0] == [snap["seq"]]
        # the normal wall: one snapshot, then consecutive seq through the whole episode
        normal.wait("tick", lambda m: m["room"] == "wall" and m["seq"] >= snap["seq"] + 3, timeout=10)
        assert consecutive(normal), wall_seqs(normal)
        # bounded memory: unbounded, 10 snapshots a second would add ~14 MB to the web process in 8 s
        print(
            f"slow client cut after {cut_after:.1f} s; web RSS before {rss_before} KiB, at the cut "
            f"{rss_cut} KiB, 8 s later {rss_later} KiB; backlog read {len(slow.received)} messages"
        )
        assert rss_later - rss_cut < 6 * 1024
        assert re.search(r"Traceback", web.text()) is None
    finally:
        normal.close()
        if slow is not None:
            slow.close()
        if again is not None:
            again.close()


EVENT = next(c for c in load_catalogue("cjt214").classes if c.kind.value == "event" and not c.emergency)
ROLES = (
    "call_center",
    "acceptor",
    "shift_leader",
    "dispatcher",
    "supervisor",
    f"department:{EVENT.department}",
)
# a case's commands after its report (role, command, body); each case stops at a different point
PATH: list[tuple[str, str, dict[str, Any]]] = [
    ("acceptor", "accept", {}), ("supervisor", "verify", {"confirmed": True}), ("shift_leader", "file", {}),
    ("dispatcher", "dispatch", {}), (f"department:{EVENT.department}", "handle", {}),
    ("supervisor", "check", {"passed": True}), ("shift_leader", "close", {}),
]  # fmt: skip


def api_keys(dep: Deployment) -> dict[str, str]:
    """One API key per role, issued in the deployment's database."""
    eng = create_engine(dep.db_url)
    keys = {}
    with transaction(eng) as s:
        for role in ROLES:
            keys[role] = issue_token(s, "api", f"counters {role} {uuid.uuid4().hex[:6]}", role=role)[1]
    eng.dispose()
    return keys


def post(web: Part, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An accepted ``/api/v1`` request (in the stream); its acknowledgement."""
    r = requests.post(f"{web.url}/api/v1{path}", json=body, headers={"X-API-Key": key}, timeout=15)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    ack = dict(r.json())
    assert ack["accepted"] and not ack["rejected"], ack
    return ack


def run_commands(dep: Deployment, web: Part, keys: dict[str, str], people: list[Spot], tag: str) -> int:
    """Report a case at each of 12 spots and take case k through the first k % 8 steps of ``PATH``
    (case 3 is voided instead of filed); returns how many events the log should gain."""
    refs = []
    for i, spot in enumerate(people[:12]):
        ref = f"{tag}-{i}"
        body = {"id": ref, "kind": EVENT.kind.value, "class_code": EVENT.code, "description": tag,
                "lon": spot.lon, "lat": spot.lat}  # fmt: skip
        post(web, keys["call_center"], "/reports", body)
        refs.append(ref)
    eng = create_engine(dep.db_url)
    deadline = time.monotonic() + 30
    while True:  # the consumer numbers the cases
        with eng.connect() as conn:
            q = sa.select(CaseEventRow.key, CaseEventRow.case_id).where(CaseEventRow.key.like(f"%:{tag}-%"))
            got = {str(k).rpartition(":")[2]: c for k, c in conn.execute(q)}  # keys are scoped by the speaker
        if len(got) == len(refs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(got) == len(refs)
    expected = len(refs)
    for k, ref in enumerate(refs):
        steps = PATH[: k % 8] if k != 3 else [PATH[0], PATH[1], ("shift_leader", "void", {"opinion": "重复"})]
        for j, (role, action, body) in enumerate(steps):
            who = {"actor": people[k].person} if role == "supervisor" else {}  # the case's supervisor
            ack = post(web, keys[role], f"/cases/{got[ref]}/{action}", {"id": f"{ref}-{j}", **body, **who})
            assert "case" not in ack  # appended, not yet applied: no case as it stood before
            expected += 1
    return expected


def wait_for_counters(dep: Deployment, events: int, timeout: float = 60.0) -> int:
    """Wait until the log holds ``events`` events and the saved counters' mark is its newest; the mark."""
    eng = create_engine(dep.db_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with eng.connect() as conn:
                n, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(CaseEventRow.id))).one()
                mark = conn.scalar(sa.select(CounterMark.event_id).where(CounterMark.name == MARK))
            if n >= events and mark == newest:
                return int(mark)
            if time.monotonic() >= deadline:
                with eng.connect() as conn:
                    dead = conn.execute(sa.select(Reject.source, Reject.reason, Reject.message)).all()
                raise AssertionError(f"log {n}/{events} events, counters' mark {mark}; dead letters {dead}")
            time.sleep(0.5)
    finally:
        eng.dispose()


def saved_and_rebuilt(dep: Deployment) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]]]:
    """The saved daily rows and a rebuild from the whole log (the aggregator's responsibilities)."""
    eng = create_engine(dep.db_url)
    areas, grids = supervisor_areas(eng), grid_areas(eng)
    person_of_area = {a: p for p, a in areas.items() if a}
    responsible = {g: person_of_area[a] for g, a in grids.items() if a in person_of_area}
    with eng.connect() as conn:
        rows, _, _ = load_rows(conn)
    truth = rebuild_aggregates(eng, build_context(eng), responsible).as_dict()
    eng.dispose()
    return dict(rows), truth


def test_daily_counters_follow_the_log_through_the_stream_and_a_takeover(
    deployment: Deployment, people: list[Spot]
) -> None:
    web = next(p for p in deployment.parts if p.role == "web" and p.proc.poll() is None)
    leader = next(p for p in deployment.parts if p.role == "aggregator" and p.proc.poll() is None)
    keys = api_keys(deployment)
    eng = create_engine(deployment.db_url)
    with eng.connect() as conn:
        before = conn.scalar(sa.select(sa.func.count()).select_from(CaseEventRow)) or 0
    events = before + run_commands(deployment, web, keys, people, f"c1-{uuid.uuid4().hex[:6]}")
    wait_for_counters(deployment, events)
    saved, truth = saved_and_rebuilt(deployment)
    assert saved == truth
    counted = {t for t, _, _ in truth}
    assert len(truth) > 20 and {"grid", "street", "department"} <= {t.value for t in counted}
    assert sum(v["closed"] for v in truth.values()) > 0 and sum(v["voided"] for v in truth.values()) > 0
    # the rows came from the log follower: one rebuild (at the start, on the empty log), never again
    assert leader.text().count("daily counters rebuilt from the case log") <= 1
    assert "rebuilding" not in leader.text()
    # a standby takes over, loads the saved rows and counts what follows
    standby = deployment.start("aggregator")
    deployment.kill(leader)
    events += run_commands(deployment, web, keys, people[12:], f"c2-{uuid.uuid4().hex[:6]}")
    wait_for_counters(deployment, events, timeout=60 + deployment.lock_ttl)
    saved, truth = saved_and_rebuilt(deployment)
    assert saved == truth
    assert "daily counters rebuilt" not in standby.text()  # loaded and caught up, no rebuild
    with eng.connect() as conn:
        assert (conn.scalar(sa.select(sa.func.count()).select_from(Case)) or 0) >= 24
    eng.dispose()


def test_the_log_follower_waits_for_open_transactions_and_heals_a_late_commit(
    deployment: Deployment, people: list[Spot]
) -> None:
    for part in deployment.parts:  # this test's follower is the only writer of the counters
        if part.role == "aggregator" and part.proc.poll() is None:
            deployment.kill(part)
    eng = create_engine(deployment.db_url)
    ctx = build_context(eng)
    areas, grids = supervisor_areas(eng), grid_areas(eng)
    person_of_area = {a: p for p, a in areas.items() if a}
    responsible = {g: person_of_area[a] for g, a in grids.items() if a in person_of_area}
    spots_grids = sorted({s.grid for s in people})
    flow = generate(datetime(2026, 10, 5, tzinfo=UTC), 1, spots_grids, ctx, seed=6, reports_per_day=40,
                    supervisors=[responsible[g] for g in spots_grids])  # fmt: skip
    reports = iter([(cmd, at) for cmd, at in flow if cmd.action.value == "report"])

    def truth() -> dict[Any, dict[str, int]]:
        return rebuild_aggregates(eng, ctx, responsible).as_dict()

    def saved() -> dict[Any, dict[str, int]]:
        with eng.connect() as conn:
            return dict(load_rows(conn)[0])

    def report(conn: sa.Connection) -> None:
        cmd, at = next(reports)
        assert execute(conn, cmd, at, ctx).outcome == "applied"

    follower = LogFollower(eng, ctx, responsible, hole_wait=1.0)
    assert follower.start() is False  # the aggregators saved rows: loaded, not rebuilt
    assert saved() == truth()
    # an open transaction holds an id; a later one commits: counted now, the first once it commits
    with eng.connect() as a:
        a.begin()
        report(a)
        with eng.begin() as b:
            report(b)
        assert follower.follow() == 1 and len(follower.pending) == 1
        a.commit()
    assert follower.follow() == 1 and not follower.pending
    assert saved() == truth()
    # a rolled-back id: watched, then given up
    with eng.connect() as c:
        c.begin()
        report(c)
        c.rollback()
    with eng.begin() as d:
        report(d)
    assert follower.follow() == 1 and len(follower.pending) == 1
    time.sleep(1.2)
    assert follower.follow() == 0 and not follower.pending
    assert saved() == truth() and follower.check() is False
    # an id committed only after it was given up: the check finds it and rebuilds
    with eng.connect() as e:
        e.begin()
        report(e)
        with eng.begin() as f:
            report(f)
        assert follower.follow() == 1
        time.sleep(1.2)
        assert follower.follow() == 0
        e.commit()
    assert saved() != truth()
    assert follower.check() is True and follower.rebuilds == 1
    assert saved() == truth()
    # a rebuild while a transaction is open: the open id is watched and counted once committed
    with eng.connect() as g:
        g.begin()
        report(g)
        with eng.begin() as h:
            report(h)
        follower.rebuild()
        assert follower.pending  # g's id (and any given-up id among the recent ones)
        g.commit()
    assert follower.follow() == 1 and follower.check() is False
    assert saved() == truth()
    # another process loads the rows while an id is pending: the pending ids are saved with the mark
    with eng.connect() as i:
        i.begin()
        report(i)
        with eng.begin() as j:
            report(j)
        assert follower.follow() == 1
        successor = LogFollower(eng, ctx, responsible, hole_wait=1.0)
        assert successor.start() is False and successor.pending
        i.commit()
    assert successor.follow() == 1 and successor.check() is False
    assert saved() == truth()
    eng.dispose()
