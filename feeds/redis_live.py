"""Live state on Redis (scale-out mode): the reader and writer interfaces of :mod:`feeds.live`.

Several writers (web or ingest processes, each after its own commit) publish into Redis; exactly one
tick producer (the aggregator holding the lock of :mod:`feeds.aggregator`) drains the changes, and
any process can read a snapshot. Keys, all under one prefix ``P`` (one Redis, no cluster)::

    P:sup        hash  supervisor → "at_us|lon|lat|grid|still_since_us|still_lon|still_lat"
    P:area       hash  supervisor → responsibility area
    P:status     hash  supervisor → status (written by the tick producer)
    P:case       hash  open case → LiveCase JSON          P:cmeta hash case → "updated_us|stage|grid|street"
    P:stage:<s>  zset  open cases of display stage s, scored by report instant
    P:gopen, P:goverdue            hash grid → count;     P:overdue set of overdue open cases
    P:rep:<day>, P:patrol:<day>    hash grid → reports / patrol seconds of that local day
    P:kpi:<day>  hash  today's KPI counters
    P:events     list  the ticker (last 30 lines);        P:newev, P:alerts lists drained per tick
    P:dsup, P:dcase, P:dgrid, P:dpatrol  sets of what changed since the last tick; P:gone hash
    P:ranking, P:stats  strings (JSON: the street ranking, the wall's statistics);
                 P:rankdirty (either changed), P:kpidirty flags;  P:built marks a complete state

"Latest fix" moves only forward: the Lua script ``ADVANCE`` compares the instant atomically (and
applies :func:`domain.supervisor.advance`: stops and patrol seconds), so several consumers never move
a supervisor backwards. A case change is applied by ``CASE``, which ignores a state older than the
one already published (``updated_at``) and counts the events (KPIs, grid reports, ticker) in the same
atomic step.

:class:`RedisLiveState` does not inherit from :class:`feeds.live.MemoryLiveState`: it holds one as
its mirror (``mirror``, composition) and implements the two interfaces itself — writes and point
reads go to Redis, whole-city reads and ticks to the mirror. The tick producer drains the change sets
each tick, refreshes the mirror from them, lets the mirror derive statuses and overdue cases (the
memory state's own tick), and writes statuses and overdue counters back. Another process (a web
process answering a heat-map request) refreshes the whole mirror from Redis at most once a second.
When Redis has lost the state (``P:built`` missing: first start or a Redis restart without
persistence) the producer rebuilds it from the database (:func:`ensure_built`).
"""

from __future__ import annotations

import time as _time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson
import redis
from sqlalchemy.engine import Engine

from domain.catalogue import Catalogue
from domain.lifecycle import REWORK_ACTIONS, Action, ArchiveType, CaseEvent, CaseState, Status
from domain.supervisor import Fix, SupervisorRules, SupervisorState, SupervisorStatus
from feeds.live import (
    EVENT_LOG,
    PATROL_EVERY,
    STAGES,
    Alert,
    GridCount,
    Kpi,
    LiveCase,
    LiveState,
    LiveSupervisor,
    MemoryLiveState,
    Place,
    View,
    _class_name,
    _day_bounds,
    _deadline,
    _event_line,
    rebuild,
    urge_due,
)

DAY_TTL = int(timedelta(days=3).total_seconds())  # per-day keys expire after this many seconds
FRESH_S = 1.0  # a reader's mirror is reloaded at most this often
ADVANCE_BATCH = 500  # fixes per ADVANCE call (Redis runs a script without interruption)

_LUA_DIST = """
local function dist(lon1, lat1, lon2, lat2)
  local R, RAD = 6371000.0, math.pi / 180.0
  local dlat, dlon = lat2 - lat1, lon2 - lon1
  if dlat > -0.1 and dlat < 0.1 and dlon > -0.1 and dlon < 0.1 and lat1 > -80 and lat1 < 80 then
    local x = dlon * math.cos((lat1 + lat2) * 0.5 * RAD)
    return R * RAD * math.sqrt(x * x + dlat * dlat)
  end
  local p1, p2 = lat1 * RAD, lat2 * RAD
  local dp, dl = p2 - p1, dlon * RAD
  local a = math.sin(dp / 2) ^ 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ^ 2
  return 2 * R * math.asin(math.min(1.0, math.sqrt(a)))
end
local function split(s)
  local out = {}
  for part in string.gmatch(s .. '|', '([^|]*)|') do out[#out + 1] = part end
  return out
end
"""

# ARGV: prefix, patrol_gap_us, still_radius_m, offline_after_us, day_ttl, then the fixes as ONE
# argument: a record per fix (separated by RS, \x1e) of supervisor, at_us, lon, lat, grid ('' = none)
# and the fix's local day (separated by US, \x1f) — see :func:`pack_fixes`. One argument instead of six
# per fix: redis-py then sends a call of 500 fixes in one piece, not 3,000 arguments in ~20 chunks
# (each a GIL hand-over in the publishing thread). Returns how many moved.
ADVANCE = (
    _LUA_DIST
    + """
local p = ARGV[1]
local gap_max, still_r, offline_after = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local moved = 0
for row in string.gmatch(ARGV[6], '[^\\30]+') do
  local f = {}
  for part in string.gmatch(row .. '\\31', '([^\\31]*)\\31') do f[#f + 1] = part end
  local sid, at_s, lon_s, lat_s, grid, day = f[1], f[2], f[3], f[4], f[5], f[6]
  local at, lon, lat = tonumber(at_s), tonumber(lon_s), tonumber(lat_s)
  local cur = redis.call('HGET', p .. ':sup', sid)
  local go, ss, sx, sy = true, at_s, lon_s, lat_s
  if cur then
    local s = split(cur)
    local prev = tonumber(s[1])
    if at <= prev then
      go = false
    else
      local gap = at - prev
      if gap <= gap_max and s[4] ~= '' then
        local key = p .. ':patrol:' .. day
        redis.call('HINCRBYFLOAT', key, s[4], gap / 1e6)
        redis.call('EXPIRE', key, ttl)
        redis.call('SADD', p .. ':dpatrol', s[4])
      end
      if s[5] ~= '' and gap <= offline_after
         and dist(tonumber(s[6]), tonumber(s[7]), lon, lat) <= still_r then
        ss, sx, sy = s[5], s[6], s[7]
      end
    end
  end
  if go then
    redis.call('HSET', p .. ':sup', sid, table.concat({at_s, lon_s, lat_s, grid, ss, sx, sy}, '|'))
    redis.call('SADD', p .. ':dsup', sid)
    moved = moved + 1
  end
end
return moved
"""
)

# ARGV: prefix, day_ttl, case id, updated_us, body ('' = no longer open), stage, grid, street,
# reported_us, alert ('' = none; raised only if the case is new), then per event 8 values:
# local day, action, local hour, grid, on time ('1'/'0'), close seconds, ticker line.
# Returns 1 if the state was applied, 0 if a newer state of the case was already there.
CASE = (
    _LUA_DIST
    + """
local p, ttl, id, upd = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local body, stage, grid, street, rep, alert = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
for i = 11, #ARGV, 7 do
  local day, action, hour, egrid, ontime, secs, line =
    ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6]
  local kk = p .. ':kpi:' .. day
  if action == 'report' then
    redis.call('HINCRBY', kk, 'reported', 1)
    redis.call('HINCRBY', kk, 'rh' .. hour, 1)
    if egrid ~= '' then
      redis.call('HINCRBY', p .. ':rep:' .. day, egrid, 1)
      redis.call('EXPIRE', p .. ':rep:' .. day, ttl)
      redis.call('SADD', p .. ':dgrid', egrid)
    end
  elseif action == 'merge' then
    redis.call('HINCRBY', kk, 'reported', -1)
    redis.call('HINCRBY', kk, 'rh' .. hour, -1)
    if egrid ~= '' then
      redis.call('HINCRBY', p .. ':rep:' .. day, egrid, -1)
      redis.call('EXPIRE', p .. ':rep:' .. day, ttl)
      redis.call('SADD', p .. ':dgrid', egrid)
    end
  elseif action == 'file' then
    redis.call('HINCRBY', kk, 'filed', 1)
  elseif action == 'feedback' then
    redis.call('HINCRBY', kk, 'handled', 1)
  elseif action == 'rework' then
    redis.call('HINCRBY', kk, 'reworked', 1)
  elseif action == 'dispatch' then
    redis.call('HINCRBY', kk, 'dispatched', 1)
  elseif action == 'close' then
    redis.call('HINCRBY', kk, 'closed', 1)
    redis.call('HINCRBY', kk, 'ch' .. hour, 1)
    if ontime == '1' then redis.call('HINCRBY', kk, 'closed_on_time', 1) end
    redis.call('HINCRBYFLOAT', kk, 'close_seconds', secs)
  end
  redis.call('EXPIRE', kk, ttl)
  redis.call('RPUSH', p .. ':events', line)
  redis.call('LTRIM', p .. ':events', -30, -1)
  redis.call('RPUSH', p .. ':newev', line)
  redis.call('LTRIM', p .. ':newev', -1000, -1)
end
redis.call('SET', p .. ':kpidirty', '1')
local meta = redis.call('HGET', p .. ':cmeta', id)
local was_open, old_stage, old_grid, old_street = false, '', '', ''
if meta then
  local m = split(meta)
  if upd < tonumber(m[1]) then return 0 end
  old_stage, old_grid, old_street = m[2], m[3], m[4]
  was_open = old_stage ~= ''
end
if body ~= '' then
  redis.call('HSET', p .. ':case', id, body)
  redis.call('HSET', p .. ':cmeta', id, table.concat({ARGV[4], stage, grid, street}, '|'))
  if was_open and old_stage ~= stage then redis.call('ZREM', p .. ':stage:' .. old_stage, id) end
  redis.call('ZADD', p .. ':stage:' .. stage, rep, id)
  if was_open and old_grid ~= grid then  -- 定位 (locate): the open case moves to its grid
    local late = redis.call('SISMEMBER', p .. ':overdue', id) == 1
    if old_grid ~= '' then
      redis.call('HINCRBY', p .. ':gopen', old_grid, -1)
      if late then redis.call('HINCRBY', p .. ':goverdue', old_grid, -1) end
      redis.call('SADD', p .. ':dgrid', old_grid)
    end
    if grid ~= '' then
      redis.call('HINCRBY', p .. ':gopen', grid, 1)
      if late then redis.call('HINCRBY', p .. ':goverdue', grid, 1) end
      redis.call('SADD', p .. ':dgrid', grid)
    end
  end
  if not was_open then
    if grid ~= '' then
      redis.call('HINCRBY', p .. ':gopen', grid, 1)
      redis.call('SADD', p .. ':dgrid', grid)
    end
    if alert ~= '' then redis.call('RPUSH', p .. ':alerts', alert) end
  end
  redis.call('SADD', p .. ':dcase', id)
  redis.call('HDEL', p .. ':gone', id)
elseif was_open then
  redis.call('HDEL', p .. ':case', id)
  redis.call('HSET', p .. ':cmeta', id, table.concat({ARGV[4], '', '', ''}, '|'))
  redis.call('ZREM', p .. ':stage:' .. old_stage, id)
  redis.call('HSET', p .. ':gone', id, old_street .. '|' .. old_grid)
  redis.call('SREM', p .. ':dcase', id)
  if old_grid ~= '' then
    redis.call('HINCRBY', p .. ':gopen', old_grid, -1)
    redis.call('SADD', p .. ':dgrid', old_grid)
  end
  if redis.call('SREM', p .. ':overdue', id) == 1 and old_grid ~= '' then
    redis.call('HINCRBY', p .. ':goverdue', old_grid, -1)
  end
else
  redis.call('HSET', p .. ':cmeta', id, table.concat({ARGV[4], '', '', ''}, '|'))
end
return 1
"""
)


def _us(at: datetime) -> int:
    """Microseconds since the epoch (exact)."""
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _at(us: int | str) -> datetime:
    """The instant of :func:`_us`."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt(value: str) -> str | None:
    return value or None


def pack_fixes(fixes: Sequence[Fix], local_day: Callable[[datetime], date]) -> str:
    """The fixes argument of :data:`ADVANCE`: a record per fix (RS-separated) of US-separated fields."""
    days: dict[date, str] = {}
    out = []
    for f in fixes:
        local = local_day(f.at)
        day = days.get(local) or days.setdefault(local, local.isoformat())
        out.append(f"{f.supervisor}\x1f{_us(f.at)}\x1f{f.lon!r}\x1f{f.lat!r}\x1f{f.grid or ''}\x1f{day}")
    return "\x1e".join(out)


def pack_supervisor(st: SupervisorState) -> str:
    """A supervisor state as stored in ``P:sup``."""
    assert st.at is not None
    ss = "" if st.still_since is None else str(_us(st.still_since))
    return "|".join(
        (
            str(_us(st.at)),
            repr(st.lon),
            repr(st.lat),
            st.grid or "",
            ss,
            repr(st.still_lon),
            repr(st.still_lat),
        )
    )


def unpack_supervisor(sid: str, area: str | None, raw: str) -> SupervisorState:
    """The supervisor state of a ``P:sup`` value."""
    at, lon, lat, grid, ss, sx, sy = raw.split("|")
    return SupervisorState(
        sid, area, _at(at), float(lon), float(lat), _opt(grid),
        _at(ss) if ss else None, float(sx), float(sy),
    )  # fmt: skip


_CASE_TIMES = ("reported_at", "updated_at", "deadline", "urge_due")


def _case_json(c: LiveCase) -> bytes:
    d = asdict(c)
    for k in _CASE_TIMES:
        d[k] = None if d[k] is None else _us(d[k])
    return orjson.dumps(d)


def _case_of(raw: bytes | str) -> LiveCase:
    d = orjson.loads(raw)
    for k in _CASE_TIMES:
        d[k] = None if d.get(k) is None else _at(d[k])
    return LiveCase(**d)


def _alert_json(a: Alert) -> bytes:
    d = asdict(a)
    d["at"] = _us(a.at)
    return orjson.dumps(d)


def _alert_of(raw: bytes | str) -> Alert:
    d = orjson.loads(raw)
    d["at"] = _at(d["at"])
    return Alert(**d)


def _kpi_of(h: Mapping[str, str]) -> Kpi:
    k = Kpi()
    for name in ("reported", "filed", "dispatched", "closed", "closed_on_time", "handled", "reworked"):
        setattr(k, name, int(h.get(name, 0)))
    k.close_seconds = float(h.get("close_seconds", 0.0))
    k.reported_by_hour = [int(h.get(f"rh{i}", 0)) for i in range(24)]
    k.closed_by_hour = [int(h.get(f"ch{i}", 0)) for i in range(24)]
    return k


class RedisLiveState:
    """The live state on Redis; ``mirror`` (a :class:`MemoryLiveState`) is this process's copy of it.

    The mirror is private to this object: it is filled by :meth:`load` and :meth:`_sync` and read only
    under its lock, which is this object's lock too (a load and a read of the mirror exclude each other).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "gw",
        tz: ZoneInfo,
        catalogue: Catalogue,
        areas: Mapping[str, str | None],
        area_of_grid: Mapping[str, str | None],
        rules: SupervisorRules | None = None,
        now: datetime | None = None,
        patrol_every: timedelta = PATROL_EVERY,
    ) -> None:
        self.mirror = MemoryLiveState(
            tz=tz, catalogue=catalogue, areas=areas, area_of_grid=area_of_grid, rules=rules, now=now,
            patrol_every=patrol_every,
        )  # fmt: skip
        self._lock = self.mirror._lock  # one lock for the mirror's reads and this object's loads into it
        self.r = client
        self.p = prefix
        self.areas: dict[str, str | None] = dict(areas)
        self.producer = False  # True in the process that ticks (its mirror is kept by tick)
        self._loaded_at: float | None = None  # monotonic time of the last full load
        self._advance = client.register_script(ADVANCE)
        self._case = client.register_script(CASE)

    # -- configuration (the mirror's) ------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The city's time zone."""
        return self.mirror.tz

    @property
    def catalogue(self) -> Catalogue:
        """The case catalogue."""
        return self.mirror.catalogue

    @property
    def rules(self) -> SupervisorRules:
        """The supervisor rules (ADVANCE applies them in Lua, the mirror's tick derives statuses)."""
        return self.mirror.rules

    @property
    def area_of_grid(self) -> dict[str, str | None]:
        """The responsibility area of every active grid."""
        return self.mirror.area_of_grid

    @property
    def patrol_every(self) -> timedelta:
        """How often patrol-only grid changes reach a tick."""
        return self.mirror.patrol_every

    def k(self, name: str) -> str:
        """A key of this live state."""
        return f"{self.p}:{name}"

    def _local_day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    # -- writes (after commit, from any process) -------------------------------------------------

    def apply_fixes(self, fixes: Sequence[Fix]) -> None:
        """Move each supervisor's latest fix forward (atomic compare on the instant, in Redis)."""
        if not fixes:
            return
        rules = self.rules
        head: list[Any] = [
            self.p, int(rules.patrol_gap.total_seconds() * 1e6), rules.still_radius_m,
            int(rules.offline_after.total_seconds() * 1e6), DAY_TTL,
        ]  # fmt: skip
        ordered = sorted(fixes, key=lambda f: f.at)
        for i in range(0, len(ordered), ADVANCE_BATCH):
            self._advance(args=[*head, pack_fixes(ordered[i : i + ADVANCE_BATCH], self._local_day)])

    def apply_case(self, state: CaseState, events: Sequence[CaseEvent], place: Place | None) -> None:
        """Publish a committed case change (stale states are ignored) and count its events."""
        if place is None:
            old = self._remote_case(state.id)
            place = Place(old.grid, old.street, old.lon, old.lat) if old is not None else None
        place = place or Place(None, None, None, None)
        body = b""
        stage = ""
        if state.is_open and state.stage is not None:
            stage = state.stage.value
            body = _case_json(
                LiveCase(
                    id=state.id, kind=state.kind.value, class_code=state.class_code, stage=stage,
                    status=state.status.value, source=state.source.value, emergency=state.emergency,
                    department=state.department, grid=place.grid, street=place.street, lon=place.lon,
                    lat=place.lat, reported_at=state.reported_at, updated_at=state.updated_at,
                    deadline=_deadline(state), urges=state.urges,
                    request=state.request.action.value if state.request is not None else None,
                    subcentre=state.subcentre, urge_due=urge_due(state), duplicate_of=state.duplicate_of,
                )
            )  # fmt: skip
        alert = b""
        if state.emergency and any(e.action is Action.REPORT for e in events):
            alert = _alert_json(
                Alert("emergency", state.updated_at, case=state.id, street=place.street, grid=place.grid,
                      lon=place.lon, lat=place.lat, text=_class_name(self.catalogue, state))
            )  # fmt: skip
        args: list[Any] = [
            self.p, DAY_TTL, state.id, _us(state.updated_at), body, stage, place.grid or "",
            place.street or "", _us(state.reported_at), alert,
        ]  # fmt: skip
        for ev in events:
            # 合并 (issue 21): a merged repeat leaves the reports of its report's day and hour
            local = (state.reported_at if ev.action is Action.MERGE else ev.at).astimezone(self.tz)
            on_time = ev.action is Action.CLOSE and state.archive is not ArchiveType.OVERTIME
            secs = (ev.at - state.reported_at).total_seconds() if ev.action is Action.CLOSE else 0.0
            line = orjson.dumps(_event_line(self.catalogue, state, ev, place))
            failed = ev.action in REWORK_ACTIONS and ev.to_status is Status.HANDLING  # 核查/审核 failed: 返工
            action = "rework" if failed else ev.action.value
            if ev.action is Action.DISPATCH and ev.from_status is Status.SUB_DISPATCHING:
                action = "sub_dispatch"  # 二级派遣: the centre's 派遣 was counted once
            if ev.action is Action.CLOSE and not state.counts_as_closure:  # 自处置, 差错结案: no 结案数
                action = "close_apart"
            args += [local.date().isoformat(), action, local.hour, place.grid or "", "1" if on_time else "0",
                     repr(secs), line]  # fmt: skip
        self._case(args=args)

    def touch_case(self, case_id: str) -> None:
        """Send an open case again with the next tick (its task was acknowledged: case pages refresh)."""
        if self.r.hexists(self.k("case"), case_id):
            self.r.sadd(self.k("dcase"), case_id)

    def set_ranking(self, ranking: list[dict[str, Any]]) -> None:
        """Replace the street ranking."""
        raw = orjson.dumps(ranking)
        if self.r.get(self.k("ranking")) != raw:
            pipe = self.r.pipeline()
            pipe.set(self.k("ranking"), raw)
            pipe.set(self.k("rankdirty"), "1")
            pipe.execute()

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Replace the wall's statistics (``rankdirty`` flags a change of the ranking or of these)."""
        raw = orjson.dumps(stats)
        if self.r.get(self.k("stats")) != raw:
            pipe = self.r.pipeline()
            pipe.set(self.k("stats"), raw)
            pipe.set(self.k("rankdirty"), "1")
            pipe.execute()

    # -- point reads (from Redis) ----------------------------------------------------------------

    def latest(self, supervisor: str) -> SupervisorState | None:
        """The supervisor's latest state, as Redis has it now."""
        raw = self.r.hget(self.k("sup"), supervisor)
        area = self.areas.get(supervisor)
        if raw is None:
            return SupervisorState(id=supervisor, area=area) if supervisor in self.areas else None
        return unpack_supervisor(supervisor, area, _s(raw))

    def _remote_case(self, case_id: str) -> LiveCase | None:
        raw = self.r.hget(self.k("case"), case_id)
        return None if raw is None else _case_of(raw)

    def open_case(self, case_id: str) -> LiveCase | None:
        """An open case as Redis has it now (None when closed, voided or unknown)."""
        return self._remote_case(case_id)

    def is_built(self) -> bool:
        """Whether Redis holds a complete live state."""
        return bool(self.r.exists(self.k("built")))

    # -- the tick producer ------------------------------------------------------------------------

    def tick(self, now: datetime) -> View:
        """Drain Redis's changes into the mirror, derive statuses and overdue, write them back."""
        m = self.mirror
        with self._lock:
            if not self.producer or self._loaded_at is None:
                self.producer = True
                self.load(now)
            else:
                self._sync(now)
            status0 = dict(m._status)
            overdue0 = set(m._overdue)
            view = m.tick(now)
            self._write_back(now, status0, overdue0)
            return view

    def snapshot(self, now: datetime) -> View:
        """Everything: the producer's mirror as of its last tick; elsewhere reloaded from Redis."""
        with self._lock:
            self._fresh(now)
            return self.mirror.snapshot(now)

    def supervisor_views(self) -> tuple[LiveSupervisor, ...]:
        """Every supervisor (the producer's mirror as of its last tick; elsewhere reloaded from Redis)."""
        with self._lock:
            self._fresh(datetime.now(UTC))
            return self.mirror.supervisor_views()

    def open_cases(self) -> tuple[LiveCase, ...]:
        """Every open case (the producer's mirror as of its last tick; elsewhere reloaded from Redis)."""
        with self._lock:
            self._fresh(datetime.now(UTC))
            return self.mirror.open_cases()

    def grid_count(self, code: str) -> GridCount | None:
        """A copy of one grid's live counters."""
        with self._lock:
            self._fresh(datetime.now(UTC))
            return self.mirror.grid_count(code)

    def grid_counts(self) -> dict[str, GridCount]:
        """A copy of every grid's live counters."""
        with self._lock:
            self._fresh(datetime.now(UTC))
            return self.mirror.grid_counts()

    def overdue_ids(self) -> frozenset[str]:
        """Open cases past their running deadline (as of the producer's last tick)."""
        with self._lock:
            self._fresh(datetime.now(UTC))
            return self.mirror.overdue_ids()

    def _fresh(self, now: datetime) -> None:
        if self.producer and self._loaded_at is not None:
            return
        if self._loaded_at is None or _time.monotonic() - self._loaded_at >= FRESH_S:
            self.load(now, drain=False)

    def _day_keys(self, now: datetime) -> tuple[str, str, str]:
        day = self._local_day(now).isoformat()
        return self.k(f"rep:{day}"), self.k(f"patrol:{day}"), self.k(f"kpi:{day}")

    def load(self, now: datetime, *, drain: bool = True) -> None:
        """Replace the mirror with everything in Redis (the producer also clears the change sets)."""
        rep_k, patrol_k, kpi_k = self._day_keys(now)
        pipe = self.r.pipeline(transaction=True)
        for name in ("sup", "area", "status", "case", "gopen", "goverdue"):
            pipe.hgetall(self.k(name))
        pipe.hgetall(rep_k)
        pipe.hgetall(patrol_k)
        pipe.hgetall(kpi_k)
        pipe.lrange(self.k("events"), 0, -1)
        pipe.get(self.k("ranking"))
        pipe.get(self.k("stats"))
        pipe.smembers(self.k("overdue"))
        pipe.lrange(self.k("alerts"), 0, -1)
        if drain:  # the snapshot that follows a takeover carries the changes; alerts still go out
            pipe.delete(*(self.k(n) for n in ("dsup", "dcase", "dgrid", "dpatrol", "gone", "newev", "alerts",
                                              "kpidirty", "rankdirty")))  # fmt: skip
        res = pipe.execute()
        sup, area, status, case, gopen, goverdue, rep, patrol, kpi = (
            {_s(k): _s(v) for k, v in h.items()} for h in res[:9]
        )
        events, ranking, stats, overdue, alerts = res[9], res[10], res[11], res[12], res[13]
        areas = {**self.areas, **{k: _opt(v) for k, v in area.items()}}
        with self._lock:  # the mirror's fields, replaced as a whole
            m = self.mirror
            m._sups = {sid: SupervisorState(id=sid, area=a) for sid, a in areas.items()}
            for sid, raw in sup.items():
                m._sups[sid] = unpack_supervisor(sid, areas.get(sid), raw)
            m._status = {
                sid: SupervisorStatus(status.get(sid, SupervisorStatus.OFFLINE.value)) for sid in m._sups
            }
            m._cases = {cid: _case_of(raw) for cid, raw in case.items()}
            m._overdue = {_s(c) for c in overdue} & set(m._cases)
            m._due_built = False  # the deadlines heap is rebuilt from these cases at the next tick
            grids = set(self.area_of_grid) | set(gopen) | set(goverdue) | set(rep) | set(patrol)
            m._grids = {
                g: GridCount(
                    int(gopen.get(g, 0)), int(goverdue.get(g, 0)), int(rep.get(g, 0)), float(patrol.get(g, 0))
                )
                for g in grids
            }
            m._day = self._local_day(now)
            m._day_utc = _day_bounds(m._day, self.tz)
            m._kpi = _kpi_of(kpi)
            m._events = deque((orjson.loads(e) for e in events), maxlen=EVENT_LOG)
            m._ranking = orjson.loads(ranking) if ranking else []
            m._stats = orjson.loads(stats) if stats else {}
            m._dirty_sups.clear()
            m._dirty_cases.clear()
            m._gone.clear()
            m._dirty_grids.clear()
            m._patrol_grids.clear()
            m._new_events.clear()
            m._alerts = [_alert_of(a) for a in alerts] if drain else []
            m._kpi_dirty = True
            m._ranking_dirty = m._stats_dirty = False
            self._loaded_at = _time.monotonic()

    def _sync(self, now: datetime) -> None:
        """Apply what changed in Redis since the last tick to the mirror (and mark it dirty)."""
        pipe = self.r.pipeline(transaction=True)
        for name in ("dsup", "dcase", "dgrid", "dpatrol"):
            pipe.smembers(self.k(name))
        pipe.hgetall(self.k("gone"))
        pipe.lrange(self.k("newev"), 0, -1)
        pipe.lrange(self.k("alerts"), 0, -1)
        pipe.get(self.k("kpidirty"))
        pipe.get(self.k("rankdirty"))
        pipe.delete(*(self.k(n) for n in ("dsup", "dcase", "dgrid", "dpatrol", "gone", "newev", "alerts",
                                          "kpidirty", "rankdirty")))  # fmt: skip
        dsup, dcase, dgrid, dpatrol, gone, newev, alerts, kpidirty, rankdirty, _ = pipe.execute()
        sids = sorted(_s(s) for s in dsup)
        cids = sorted(_s(c) for c in dcase)
        grids = sorted({_s(g) for g in dgrid} | {_s(g) for g in dpatrol})
        rep_k, patrol_k, kpi_k = self._day_keys(now)
        pipe = self.r.pipeline(transaction=False)
        for key, fields in ((self.k("sup"), sids), (self.k("area"), sids), (self.k("case"), cids),
                            (self.k("gopen"), grids), (self.k("goverdue"), grids), (rep_k, grids),
                            (patrol_k, grids)):  # fmt: skip
            pipe.hmget(key, fields or ["-"])
        pipe.hgetall(kpi_k)
        pipe.get(self.k("ranking"))
        pipe.get(self.k("stats"))
        sup, area, case, gopen, goverdue, rep, patrol, kpi, ranking, stats = pipe.execute()
        m = self.mirror  # called by tick, under the lock
        for i, sid in enumerate(sids):
            if sup[i] is None:
                continue
            a = _opt(_s(area[i])) if area[i] is not None else self.areas.get(sid)
            m._sups[sid] = unpack_supervisor(sid, a, _s(sup[i]))
            m._status.setdefault(sid, SupervisorStatus.OFFLINE)
            m._dirty_sups.add(sid)
        for i, cid in enumerate(cids):
            if case[i] is None:
                continue
            m._cases[cid] = _case_of(case[i])
            m._dirty_cases.add(cid)
            m._gone.pop(cid, None)
        for raw_id, raw in gone.items():
            cid = _s(raw_id)
            street, grid = _s(raw).split("|")
            m._cases.pop(cid, None)
            m._dirty_cases.discard(cid)
            m._overdue.discard(cid)
            m._gone[cid] = (_opt(street), _opt(grid))
        case_grids = {_s(g) for g in dgrid}
        for i, g in enumerate(grids):
            m._grids[g] = GridCount(
                int(gopen[i] or 0), int(goverdue[i] or 0), int(rep[i] or 0), float(patrol[i] or 0.0)
            )
            (m._dirty_grids if g in case_grids else m._patrol_grids).add(g)
        for line in newev:
            ev = orjson.loads(line)
            m._events.append(ev)
            m._new_events.append(ev)
        m._alerts.extend(_alert_of(a) for a in alerts)
        if kpidirty:
            m._kpi = _kpi_of({_s(k): _s(v) for k, v in kpi.items()})
            m._kpi_dirty = True
        if rankdirty:  # the ranking or the statistics changed
            new_ranking = orjson.loads(ranking) if ranking else []
            new_stats = orjson.loads(stats) if stats else {}
            m._ranking_dirty = m._ranking_dirty or new_ranking != m._ranking
            m._stats_dirty = m._stats_dirty or new_stats != m._stats
            m._ranking, m._stats = new_ranking, new_stats

    def _write_back(self, now: datetime, status0: dict[str, SupervisorStatus], overdue0: set[str]) -> None:
        """Store the statuses and overdue cases the tick derived (so any process's snapshot shows them)."""
        m = self.mirror  # called by tick, under the lock
        changed = {sid: st.value for sid, st in m._status.items() if status0.get(sid) is not st}
        late = m._overdue - overdue0
        back = (overdue0 - m._overdue) & set(m._cases)  # no longer late but still open
        if not (changed or late or back):
            return
        pipe = self.r.pipeline(transaction=True)
        if changed:
            pipe.hset(self.k("status"), mapping=changed)  # type: ignore[arg-type]
        for cid, delta in [(c, 1) for c in late] + [(c, -1) for c in back]:
            grid = m._cases[cid].grid
            (pipe.sadd if delta > 0 else pipe.srem)(self.k("overdue"), cid)
            if grid is not None:
                pipe.hincrby(self.k("goverdue"), grid, delta)
        pipe.execute()

    # -- the record → Redis ------------------------------------------------------------------------

    def dump(self, m: MemoryLiveState) -> None:
        """Replace the live state in Redis with ``m`` (a state rebuilt from the database)."""
        day = m._day.isoformat()
        fixed = (
            "sup",
            "area",
            "status",
            "case",
            "cmeta",
            "gopen",
            "goverdue",
            "overdue",
            "events",
            "newev",
            "alerts",
            "dsup",
            "dcase",
            "dgrid",
            "dpatrol",
            "gone",
            "ranking",
            "stats",
            "rankdirty",
            "kpidirty",
        )
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(
            *(self.k(n) for n in fixed),
            *(self.k(f"stage:{s}") for s in STAGES),
            self.k(f"rep:{day}"),
            self.k(f"patrol:{day}"),
            self.k(f"kpi:{day}"),
            self.k(f"filed:{day}"),  # older versions kept the cases filed today here
        )
        sups = {sid: pack_supervisor(st) for sid, st in m._sups.items() if st.at is not None}
        if sups:
            pipe.hset(self.k("sup"), mapping=sups)  # type: ignore[arg-type]
        areas = {sid: st.area or "" for sid, st in m._sups.items()}
        if areas:
            pipe.hset(self.k("area"), mapping=areas)  # type: ignore[arg-type]
            pipe.hset(self.k("status"), mapping={sid: s.value for sid, s in m._status.items()})
        for c in m._cases.values():
            pipe.hset(self.k("case"), c.id, _case_json(c))
            pipe.hset(self.k("cmeta"), c.id, f"{_us(c.updated_at)}|{c.stage}|{c.grid or ''}|{c.street or ''}")
            pipe.zadd(self.k(f"stage:{c.stage}"), {c.id: _us(c.reported_at)})
        if m._overdue:
            pipe.sadd(self.k("overdue"), *m._overdue)
        for name, values in (
            ("gopen", {g: c.open for g, c in m._grids.items() if c.open}),
            ("goverdue", {g: c.overdue for g, c in m._grids.items() if c.overdue}),
            (f"rep:{day}", {g: c.reported for g, c in m._grids.items() if c.reported}),
            (f"patrol:{day}", {g: repr(c.patrol_s) for g, c in m._grids.items() if c.patrol_s}),
        ):
            if values:
                pipe.hset(self.k(name), mapping=values)  # type: ignore[arg-type]
        k = m._kpi
        kpi: dict[str, Any] = {
            "reported": k.reported, "filed": k.filed, "dispatched": k.dispatched, "closed": k.closed,
            "closed_on_time": k.closed_on_time, "close_seconds": repr(k.close_seconds),
            "handled": k.handled, "reworked": k.reworked,
        }  # fmt: skip
        kpi.update({f"rh{i}": n for i, n in enumerate(k.reported_by_hour)})
        kpi.update({f"ch{i}": n for i, n in enumerate(k.closed_by_hour)})
        pipe.hset(self.k(f"kpi:{day}"), mapping=kpi)  # type: ignore[arg-type]
        for key in ("rep", "patrol", "kpi"):
            pipe.expire(self.k(f"{key}:{day}"), DAY_TTL)
        if m._events:
            pipe.rpush(self.k("events"), *(orjson.dumps(e) for e in m._events))
        pipe.set(self.k("ranking"), orjson.dumps(m._ranking))
        pipe.set(self.k("stats"), orjson.dumps(m._stats))
        pipe.set(self.k("built"), _us(datetime.now(UTC)))
        pipe.execute()
        self._loaded_at = None  # the next tick or read reloads the mirror


def ensure_built(engine: Engine, live: RedisLiveState, now: datetime) -> bool:
    """Rebuild the live state in Redis from the database if Redis does not hold one (True if it did)."""
    if live.is_built():
        return False
    m = MemoryLiveState(
        tz=live.tz, catalogue=live.catalogue, areas=live.areas, area_of_grid=live.area_of_grid,
        rules=live.rules, now=now, patrol_every=live.patrol_every,
    )  # fmt: skip
    rebuild(engine, m, now)
    live.dump(m)
    return True


def connect(url: str) -> redis.Redis:
    """A Redis client for the live state and the stream (short timeouts: a dead Redis is an answer)."""
    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=10)


if TYPE_CHECKING:  # both live states implement the reader and the writer interface (checked by mypy)

    def _live_states(embedded: MemoryLiveState, scale_out: RedisLiveState) -> tuple[LiveState, LiveState]:
        return embedded, scale_out
