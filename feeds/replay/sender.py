"""Replays of real data into a running GridWall, as a client of its ``/device`` feed.

A replay is a *plan* — the people it speaks for, a gateway token name and a time-ordered list of
``/device`` events (:class:`Send`) — built from real files by :mod:`feeds.replay.geolife` (GPS
traces → ``positions`` batches) or :mod:`feeds.replay.r311` (US 311 service requests → a case
``command`` chain). :class:`Sender` plays a plan over a handful of python-socketio connections with
a gateway token and waits for every acknowledgement (a bounded in-flight window; at most one event
of a *lane* — a case, a shard of supervisors — in flight, so a case's commands arrive in order).
Nothing is written behind the pipeline's back: the only direct store writes are
:func:`setup_people` (the replay's people and its gateway token, when run next to the database).

Time: every source instant ``t`` is sent as ``t + shift``. With a speed factor ``S`` an event goes
``(t - first) / S`` seconds after the start and ``shift`` puts the replay's *anchor* (its last
instant, or ``--as-of``) at the instant the replay ends, so no instant is ever ahead of the clock and
real spacing is kept; at ``S = 1`` the first instant is the start. ``--speed max`` sends as fast as
the acknowledgements come back and anchors at the start. See docs/replay.md.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import socketio
from sqlalchemy import update
from sqlalchemy.engine import Engine

from feeds import socketlib
from feeds.pipeline import REPLAY_GATEWAY
from feeds.replay.base import ReplayError
from feeds.schemas import Reason

__all__ = [
    "REPLAY_GATEWAY",
    "PersonSpec",
    "Plan",
    "ReplayError",
    "Send",
    "Sender",
    "Summary",
    "parse_speed",
    "run_plan",
    "setup_people",
    "time_shift",
]

RETRY_REASONS = frozenset({Reason.RATE_LIMITED.value, Reason.UNAVAILABLE.value})
MAX_RETRIES = 40
ACK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class PersonSpec:
    """A person the replay speaks for (created by :func:`setup_people` when missing)."""

    id: str
    role: str
    name: str
    department: str | None = None


@dataclass
class Send:
    """One ``/device`` event of a plan."""

    due: float  # seconds after the first source instant (divided by the speed when sent)
    lane: str  # at most one event of a lane in flight (in order within the lane)
    event: str  # positions | command
    body: dict[str, Any]
    kind: str  # summary row: fixes | reports | commands
    size: int = 1  # inputs it carries (fixes in a batch)
    group: str | None = None  # a case: once its report is rejected, its other commands are not sent
    opens: bool = False  # this event creates the group (the case's report)
    actor: str | None = None  # the person it speaks for (its first event goes alone, see Sender)


@dataclass
class Plan:
    """What a replay sends, for whom, and what it refused before sending (with named reasons)."""

    name: str
    token_name: str  # the gateway token's name (``replay:<what>``: cases.origin = replay)
    people: list[PersonSpec]
    events: list[Send]
    shift: timedelta  # added to every source instant
    not_sent: dict[str, Counter[str]] = field(default_factory=dict)  # kind → reason → count
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> int:
        """Inputs the plan sends (fixes, reports, commands)."""
        return sum(e.size for e in self.events)


@dataclass
class Summary:
    """What came back: per kind (fixes, reports, commands) accepted, duplicates and rejections by reason;
    and what the replay refused or skipped itself (``not_sent``)."""

    sent: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    not_sent: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0
    retries: int = 0
    case_ids: dict[str, str] = field(default_factory=dict)  # a report's case id (accepted or duplicate)

    def add(self, kind: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` inputs of ``kind`` with an outcome (accepted, duplicate or a reason)."""
        if n:
            self.outcomes.setdefault(kind, Counter())[outcome] += n

    def skip(self, kind: str, reason: str, n: int = 1) -> None:
        """Count inputs the replay did not send."""
        if n:
            self.not_sent.setdefault(kind, Counter())[reason] += n

    def count(self, kind: str, outcome: str) -> int:
        """Inputs of a kind with that outcome (pipeline answers only)."""
        return self.outcomes.get(kind, Counter())[outcome]

    def rejected(self, kind: str) -> Counter[str]:
        """Rejections of a kind by reason (pipeline answers only)."""
        got = self.outcomes.get(kind, Counter())
        return Counter({k: v for k, v in got.items() if k not in ("accepted", "duplicate")})

    def rows(self) -> list[tuple[str, str, str, int]]:
        """(kind, outcome, answered by, count) rows for the summary table."""
        out: list[tuple[str, str, str, int]] = []
        for kind in sorted(set(self.outcomes) | set(self.not_sent)):
            got = self.outcomes.get(kind, Counter())
            for outcome in ("accepted", "duplicate"):
                if got[outcome]:
                    out.append((kind, outcome, "pipeline", got[outcome]))
            for reason, n in sorted(self.rejected(kind).items()):
                out.append((kind, f"rejected: {reason}", "pipeline", n))
            for reason, n in sorted(self.not_sent.get(kind, Counter()).items()):
                out.append((kind, f"not sent: {reason}", "replay", n))
        return out


def parse_speed(text: str | float | None, *, default: float | None) -> float | None:
    """``max`` (None: as fast as acknowledgements come back) or a factor from 1 to 600."""
    if text is None:
        return default
    if isinstance(text, str) and text.strip().lower() in ("max", "full", "inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ReplayError(f"--speed {text!r}: a factor from 1 to 600, or max") from None
    if not 1.0 <= value <= 600.0:
        raise ReplayError(f"--speed {value:g}: a factor from 1 to 600, or max")
    return value


def time_shift(first: datetime, anchor: datetime, start: datetime, speed: float | None) -> timedelta:
    """The shift of every source instant: the anchor lands where the replay ends (see the module doc)."""
    span = (anchor - first) / speed if speed else timedelta(0)
    return start + span - anchor


def lane_connection(lane: str, n: int) -> int:
    """Which of ``n`` connections carries a lane (stable)."""
    return zlib.crc32(lane.encode()) % n if n > 1 else 0


def setup_people(engine: Engine, people: Sequence[PersonSpec], token_name: str) -> str:
    """Create the replay's missing people (source ``replay``) and issue a gateway token named
    ``token_name`` whose scope is exactly them (earlier tokens of that name are revoked); returns it."""
    from store.accounts import AccountError, add_person, issue_token
    from store.db import transaction
    from store.migrate import upgrade
    from store.models import Person, Token

    if not (token_name == REPLAY_GATEWAY or token_name.startswith(REPLAY_GATEWAY + ":")):
        raise ReplayError(f"a replay gateway token is named {REPLAY_GATEWAY}:<what>, not {token_name!r}")
    upgrade(engine)
    with transaction(engine) as s:
        for p in people:
            found = s.get(Person, p.id)
            if found is None:
                add_person(s, p.id, p.role, name=p.name, department=p.department, source="replay")
            elif found.role != p.role or (p.department and found.department_code != p.department):
                raise AccountError(
                    f"person {p.id!r} exists as {found.role} {found.department_code or ''}".rstrip()
                    + f", the replay needs {p.role} {p.department or ''}".rstrip()
                )
            elif not found.active:
                found.active = True
        s.flush()
        s.execute(
            update(Token)
            .where(Token.kind == "gateway", Token.name == token_name, Token.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        _, secret = issue_token(s, "gateway", token_name, scope=[p.id for p in people])
    return secret


def _client() -> socketio.Client:
    """A Socket.IO client whose acknowledgements are handled in its reading thread: python-engineio's
    client starts a thread for every message it receives (python -m bench replay: one per
    acknowledgement, most of the replay's CPU); the replay's handlers only count and never block."""
    c = socketio.Client(reconnection=True, request_timeout=30)
    socketlib.inline_messages(c)
    return c


@dataclass
class _Flight:
    ev: Send
    sent_at: float
    tries: int


class Sender:
    """Plays a plan over ``connections`` Socket.IO clients of ``/device`` (gateway token), waiting for
    every acknowledgement: at most ``window`` events in flight, one per lane.

    The first event of each actor goes alone (the others of that actor wait for its answer): the
    server looks a person up on first use, and concurrent first uses must not race that lookup. Once
    an event of a group (a case) is rejected, the group's later events are not sent.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        connections: int = 4,
        window: int = 256,
        speed: float | None = None,
        progress: Callable[[int, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if connections < 1 or window < 1:
            raise ReplayError("connections and window must be at least 1")
        self.url, self.token = url, token
        self.connections, self.window, self.speed = connections, window, speed
        self.progress = progress
        self.clock = clock
        self._cond = threading.Condition()
        self._clients: list[socketio.Client] = []

    def connect(self) -> None:
        """Open the connections (ReplayError naming the server's refusal)."""
        for _ in range(self.connections):
            c = _client()
            try:
                c.connect(self.url, namespaces=["/device"], auth={"token": self.token},
                          transports=["websocket"], wait_timeout=10)  # fmt: skip
            except socketio.exceptions.ConnectionError as exc:
                self.close()
                raise ReplayError(f"cannot connect to {self.url}/device: {exc}") from None
            ws = getattr(c.eio, "ws", None)
            if ws is not None and hasattr(ws, "close"):  # Werkzeug never answers the closing handshake:
                ws.close = functools.partial(ws.close, timeout=0.2)  # do not wait 3 s per connection
            self._clients.append(c)

    def close(self) -> None:
        """Disconnect every client."""
        for c in self._clients:
            with contextlib.suppress(Exception):  # already gone
                c.disconnect()
        self._clients = []

    def run(self, plan: Plan) -> Summary:
        """Send every event of the plan; returns the summary once every event is answered."""
        if not self._clients:
            self.connect()
        summary = Summary(not_sent={k: Counter(v) for k, v in plan.not_sent.items()})
        total = plan.inputs
        state = _State()
        start = self.clock()
        events = iter(plan.events)
        nxt = next(events, None)
        last_check = start
        try:
            while True:
                with self._cond:
                    now = self.clock()
                    while state.later and state.later[0][0] <= now:
                        _, _, fl = heapq.heappop(state.later)
                        state.ready.append(fl)
                    if now - last_check > 5.0:
                        last_check = now
                        self._expire(state, summary, now)
                    if state.ready and len(state.flying) < self.window:
                        self._offer(state.ready.popleft(), state, summary)
                        continue
                    if nxt is not None and len(state.flying) < self.window:
                        wait = 0.0 if self.speed is None else start + nxt.due / self.speed - now
                        if wait <= 0:
                            ev, nxt = nxt, next(events, None)
                            if ev.lane in state.busy:
                                state.waiting.setdefault(ev.lane, deque()).append(_Flight(ev, 0.0, 0))
                            else:
                                state.busy.add(ev.lane)
                                self._offer(_Flight(ev, 0.0, 0), state, summary)
                            continue
                        self._cond.wait(min(wait, 0.5))
                    elif nxt is None and not state.flying and not state.ready and not state.later:
                        break
                    else:
                        self._cond.wait(0.5)
                    if self.progress is not None:
                        self.progress(state.done, total)
        finally:
            summary.seconds = self.clock() - start
        if self.progress is not None:
            self.progress(state.done, total)
        return summary

    def _offer(self, fl: _Flight, state: _State, summary: Summary) -> None:
        """An event whose lane is its own (marked busy): skip it, park it behind its actor's first
        event, or send it."""
        ev = fl.ev
        if fl.tries > 0:  # a retry of an event already offered
            self._send(fl, state, summary)
            return
        if ev.group is not None and ev.group in state.failed:
            summary.skip(ev.kind, state.failed[ev.group], ev.size)
            self._release(ev, state, summary, rejected=False, counted=True)
            return
        actor = ev.actor
        if actor is not None and actor not in state.known:
            if actor in state.probing:
                state.parked.setdefault(actor, deque()).append(fl)
                return
            state.probing.add(actor)
        self._send(fl, state, summary)

    def _send(self, fl: _Flight, state: _State, summary: Summary) -> None:
        """Emit one event; the acknowledgement comes to ``_ack``."""
        ev = fl.ev
        fl.sent_at = self.clock()
        key = next(state.seq)
        state.flying[key] = fl
        if fl.tries == 0:
            summary.sent[ev.kind] += ev.size
        client = self._clients[lane_connection(ev.lane, len(self._clients))]

        def ack(*args: Any) -> None:
            self._ack(key, args[0] if args else None, state, summary)

        try:
            client.emit(ev.event, ev.body, namespace="/device", callback=ack)
        except socketio.exceptions.BadNamespaceError:  # disconnected: retried after a pause
            state.flying.pop(key, None)
            self._retry(fl, state, summary, Reason.UNAVAILABLE.value)

    def _retry(self, fl: _Flight, state: _State, summary: Summary, reason: str) -> None:
        if fl.tries >= MAX_RETRIES:
            summary.add(fl.ev.kind, reason, fl.ev.size)
            self._release(fl.ev, state, summary, rejected=True)
            return
        fl.tries += 1
        summary.retries += 1
        heapq.heappush(state.later, (self.clock() + min(2.0, 0.05 * 2**fl.tries), next(state.seq), fl))

    def _ack(self, key: int, ack: Any, state: _State, summary: Summary) -> None:
        with self._cond:
            fl = state.flying.pop(key, None)
            if fl is None:  # expired earlier
                return
            ev = fl.ev
            if not isinstance(ack, dict):
                self._retry(fl, state, summary, "no_ack")
                self._cond.notify_all()
                return
            rejected = ack.get("rejected") or []
            accepted, duplicates = ack.get("accepted") or [], ack.get("duplicates") or []
            if not accepted and not duplicates and rejected and all(
                str(r.get("reason")) in RETRY_REASONS for r in rejected
            ):
                self._retry(fl, state, summary, str(rejected[0].get("reason")))
                self._cond.notify_all()
                return
            summary.add(ev.kind, "accepted", len(accepted))
            summary.add(ev.kind, "duplicate", len(duplicates))
            for r in rejected:
                summary.add(ev.kind, str(r.get("reason")))
            for ref, case in (ack.get("cases") or {}).items():
                summary.case_ids[str(ref)] = str(case)
            self._release(ev, state, summary, rejected=bool(rejected))
            self._cond.notify_all()

    def _release(
        self, ev: Send, state: _State, summary: Summary, *, rejected: bool, counted: bool = False
    ) -> None:
        """The event is answered (or skipped): free its actor and hand its lane to the next event."""
        state.done += ev.size
        if rejected and ev.group is not None and ev.group not in state.failed:
            state.failed[ev.group] = "report_rejected" if ev.opens else "earlier_step_rejected"
        if ev.actor is not None and ev.actor in state.probing and not counted:
            state.probing.discard(ev.actor)
            state.known.add(ev.actor)
            state.ready.extend(state.parked.pop(ev.actor, ()))
        waiting = state.waiting.get(ev.lane)
        if waiting:
            state.ready.append(waiting.popleft())  # the lane stays busy
            return
        state.waiting.pop(ev.lane, None)
        state.busy.discard(ev.lane)

    def _expire(self, state: _State, summary: Summary, now: float) -> None:
        for key, fl in list(state.flying.items()):
            if now - fl.sent_at > ACK_TIMEOUT_S:
                state.flying.pop(key)
                summary.add(fl.ev.kind, "no_ack", fl.ev.size)
                self._release(fl.ev, state, summary, rejected=True)


@dataclass
class _State:
    flying: dict[int, _Flight] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)  # lanes with an event in flight, ready or parked
    waiting: dict[str, deque[_Flight]] = field(default_factory=dict)  # lane → its next events
    ready: deque[_Flight] = field(default_factory=deque)
    later: list[tuple[float, int, _Flight]] = field(default_factory=list)  # retries
    failed: dict[str, str] = field(default_factory=dict)  # group → why its later events are not sent
    known: set[str] = field(default_factory=set)  # actors the server has answered for
    probing: set[str] = field(default_factory=set)  # actors whose first event is in flight
    parked: dict[str, deque[_Flight]] = field(default_factory=dict)  # actor → events behind its first
    seq: Iterator[int] = field(default_factory=itertools.count)
    done: int = 0


def run_plan(
    plan: Plan,
    url: str,
    token: str,
    *,
    speed: float | None,
    connections: int = 4,
    window: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Connect, send the plan, disconnect; the summary."""
    sender = Sender(url, token, connections=connections, window=window, speed=speed, progress=progress)
    try:
        sender.connect()
        return sender.run(plan)
    finally:
        sender.close()
