"""US 311 service requests → GridWall cases, through a mapping file (``mappings/<name>.toml``).

Each row becomes one case (id ``<case_prefix><tag>-<source id>``) and a chain of lifecycle
``command`` events sent by a ``replay:311-<name>`` gateway for the replay's operators
(``replay-<name>-acceptor``, ``-shift-leader``, ``-dispatcher``, ``-supervisor``, ``-dept-<code>``):

====================  =========================================================================
created               report (acceptor registers it; ``source`` from the mapping's [sources])
created + 10 min      accept (→ 待核实, the verify task to the replay's supervisor)
created + 30 min      verify, confirmed
created + 40 min      file (立案)
created + 50 min      dispatch to the class's department (deadline: the SLA column, if any)
closed − 20 min       feedback (the department reports it handled)
closed − 10 min       check, passed
closed                close (结案)
====================  =========================================================================

The early offsets are capped at 10/20/30/40 % and the late ones at 20/10 % of (closed − created),
so the chain always fits between the two instants. Rows whose status is in ``[status].voided``
are voided (作废, shift leader) at their closed instant instead; rows not closed (no closed
instant, or a status outside ``closed``) stop after dispatch and stay open (处置中).

Rejections: rows without coordinates (empty/NaN) are refused here (``missing_field``, counted,
not sent: the pipeline would accept a report without a point as "needs location", a guess the
replay must not make); rows at 0,0 and out-of-range coordinates are sent as they are, so the
pipeline rejects and dead-letters them (``zero_coordinates``, ``bad_coordinates``); mapped points
outside the district's grids are ``outside_district`` and request types mapped to ``unmapped``
(or not listed) are ``unknown_class``, both from the pipeline. A rejected report's later
commands are not sent (``report_rejected``). Rows with an unreadable created instant are refused
here as ``wrong_type``.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from domain.catalogue import CaseKind, Catalogue, CatalogueError, load_catalogue
from domain.lifecycle import Source
from feeds.replay.base import MAPPINGS, ReplayError
from feeds.replay.sender import PersonSpec, Plan, Send, time_shift
from feeds.schemas import Reason

UNMAPPED = "unmapped"
UNMAPPED_CLASS = "unmapped"  # the class code sent for an unmapped type: the pipeline answers unknown_class
EARLY = (("accept", 10, 0.1), ("verify", 30, 0.2), ("file", 40, 0.3), ("dispatch", 50, 0.4))  # minutes, cap
LATE = (("feedback", 20, 0.2), ("check", 10, 0.1))  # minutes before closed, cap
_SAFE_ID = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file (see the shipped ``mappings/*.toml``)."""

    name: str
    title: str
    file: str
    catalogue: str
    case_prefix: str
    zone: ZoneInfo
    ignore_offset: bool
    columns: dict[str, str]
    closed: frozenset[str]
    voided: frozenset[str]
    sources: dict[str, str]
    default_source: str
    types: dict[str, str]  # request type → "kind/code" or "unmapped"
    source_box: tuple[float, float, float, float]  # west, south, east, north
    target_box: tuple[float, float, float, float]
    path: Path | None = None

    def place(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The affine map of the source bounding box onto the target's (WGS-84 degrees)."""
        sw, ss, se, sn = self.source_box
        tw, ts, te, tn = self.target_box
        return tw + (lon - sw) * (te - tw) / (se - sw), ts + (lat - ss) * (tn - ts) / (sn - ss)

    def class_of(self, request_type: str) -> tuple[str, str] | None:
        """(kind, class code) of a request type, or None when unmapped (or not listed)."""
        target = self.types.get(request_type, UNMAPPED)
        if target == UNMAPPED:
            return None
        kind, _, code = target.partition("/")
        return kind, code


def mapping_path(name_or_path: str) -> Path:
    """A shipped mapping by name (``la``, ``sf``, ``boston``) or a TOML file path."""
    if name_or_path in MAPPINGS:
        ref = resources.files("feeds.replay").joinpath("mappings", f"{name_or_path}.toml")
        return Path(str(ref))
    path = Path(name_or_path)
    if not path.is_file():
        raise ReplayError(f"mapping {name_or_path!r}: not one of {', '.join(MAPPINGS)} and no such file")
    return path


def load_mapping(name_or_path: str) -> Mapping:
    """Read and check a mapping file (ReplayError naming the key that is wrong)."""
    path = mapping_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReplayError(f"mapping {path}: {exc}") from None

    def need(table: dict[str, Any], key: str, where: str) -> Any:
        if key not in table:
            raise ReplayError(f"mapping {path}: missing {where}{key}")
        return table[key]

    try:
        time_t, cols, status = raw.get("time", {}), raw.get("columns", {}), raw.get("status", {})
        sources = dict(raw.get("sources", {}))
        default_source = str(sources.pop("default", "public"))
        placement = need(raw, "placement", "")
        for key in ("id", "created", "type", "lon", "lat"):
            need(cols, key, "columns.")
        for value in [default_source, *sources.values()]:
            Source(value)
        box_s = tuple(float(v) for v in need(placement, "source", "placement."))
        box_t = tuple(float(v) for v in need(placement, "target", "placement."))
        if len(box_s) != 4 or len(box_t) != 4 or box_s[0] >= box_s[2] or box_s[1] >= box_s[3]:
            raise ReplayError(f"mapping {path}: placement boxes are [west, south, east, north]")
        m = Mapping(
            name=str(need(raw, "name", "")),
            title=str(raw.get("title", "")),
            file=str(raw.get("file", "")),
            catalogue=str(raw.get("catalogue", "cjt214")),
            case_prefix=str(need(raw, "case_prefix", "")),
            zone=ZoneInfo(str(need(time_t, "zone", "time."))),
            ignore_offset=bool(time_t.get("ignore_offset", False)),
            columns={k: str(v) for k, v in cols.items() if v},
            closed=frozenset(str(s) for s in status.get("closed", [])),
            voided=frozenset(str(s) for s in status.get("voided", [])),
            sources={str(k): str(v) for k, v in sources.items()},
            default_source=default_source,
            types={str(k): str(v) for k, v in need(raw, "types", "").items()},
            source_box=box_s,
            target_box=box_t,
            path=path,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ReplayError(f"mapping {path}: {exc}") from None
    if not re.fullmatch(r"[A-Za-z]{1,4}", m.case_prefix):
        raise ReplayError(f"mapping {path}: case_prefix must be 1-4 letters")
    return m


def check_mapping(m: Mapping, catalogue: Catalogue | None = None) -> list[str]:
    """Problems of a mapping against the catalogue: every type maps to a real class or to unmapped."""
    cat = catalogue or load_catalogue(m.catalogue)
    problems = []
    for request_type, target in m.types.items():
        if target == UNMAPPED:
            continue
        kind, _, code = target.partition("/")
        try:
            cat.minor(CaseKind(kind), code)
        except (ValueError, CatalogueError, KeyError) as exc:
            problems.append(f"{request_type!r} → {target!r}: {exc}")
    return problems


def _instants(values: pd.Series, m: Mapping) -> pd.Series:
    """Source texts → UTC instants (NaT where empty or unreadable), read in the mapping's zone."""
    text = values.astype("string").str.strip()
    if m.ignore_offset:
        text = text.str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "", regex=True)
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    if getattr(parsed.dt, "tz", None) is not None:  # the file states its offset: trust it
        return parsed.dt.tz_convert(UTC)
    # DST: an ambiguous wall time (the repeated autumn hour) is read as its first occurrence, a
    # nonexistent one (the skipped spring hour) is moved forward to the first valid instant
    first = np.ones(len(parsed), dtype=bool)
    local = parsed.dt.tz_localize(m.zone, ambiguous=first, nonexistent="shift_forward")
    return local.dt.tz_convert(UTC)


def read_rows(m: Mapping, path: Path, limit: int | None = None) -> pd.DataFrame:
    """The rows of a 311 file as a frame: id, created/closed (UTC), type, status, source, lon, lat, …"""
    cols = m.columns
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=limit)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: {exc}") from None
    missing = [c for c in cols.values() if c not in raw.columns]
    if missing:
        raise ReplayError(f"{path}: columns {missing} of mapping {m.name} are not in the file")

    def col(key: str) -> pd.Series:
        return raw[cols[key]] if key in cols else pd.Series([""] * len(raw), index=raw.index, dtype=str)

    out = pd.DataFrame(index=raw.index)
    out["id"] = col("id").str.strip()
    out["created"] = _instants(col("created"), m)
    out["closed"] = _instants(col("closed"), m)
    out["sla"] = _instants(col("sla"), m)
    out["type"] = col("type").str.strip()
    out["status"] = col("status").str.strip()
    out["source"] = col("source").str.strip()
    out["address"] = col("address").str.strip()
    out["lon"] = pd.to_numeric(col("lon").str.strip(), errors="coerce")
    out["lat"] = pd.to_numeric(col("lat").str.strip(), errors="coerce")
    return out


@dataclass(frozen=True)
class Actors:
    """The replay's operators for one mapping."""

    prefix: str

    @property
    def acceptor(self) -> str:
        return f"{self.prefix}-acceptor"

    @property
    def shift_leader(self) -> str:
        return f"{self.prefix}-shift-leader"

    @property
    def dispatcher(self) -> str:
        return f"{self.prefix}-dispatcher"

    @property
    def supervisor(self) -> str:
        return f"{self.prefix}-supervisor"

    def department(self, code: str) -> str:
        """The department operator of a department code."""
        return f"{self.prefix}-dept-{code}"


def plan_311(
    m: Mapping,
    rows: pd.DataFrame,
    *,
    start: datetime,
    speed: float | None,
    as_of: datetime | None = None,
    tag: str = "",
    catalogue: Catalogue | None = None,
) -> Plan:
    """The replay of 311 rows: its people, the command chain per row, what is refused here."""
    cat = catalogue or load_catalogue(m.catalogue)
    problems = check_mapping(m, cat)
    if problems:
        raise ReplayError(f"mapping {m.name}: " + "; ".join(problems))
    actors = Actors(f"replay-{m.name}")
    not_sent: dict[str, Counter[str]] = {"reports": Counter(), "commands": Counter()}
    ok = rows["created"].notna()
    not_sent["reports"][Reason.WRONG_TYPE.value] = int((~ok).sum())
    has_point = np.isfinite(rows["lon"].fillna(np.nan)) & np.isfinite(rows["lat"].fillna(np.nan))
    not_sent["reports"][Reason.MISSING_FIELD.value] = int((ok & ~has_point).sum())
    rows = rows[ok & has_point]
    if as_of is not None:
        late = rows["created"] > pd.Timestamp(as_of)
        not_sent["reports"]["after_as_of"] += int(late.sum())
        rows = rows[~late]
    zero = (rows["lon"] == 0) & (rows["lat"] == 0)
    in_range = (rows["lon"].abs() <= 180) & (rows["lat"].abs() <= 90)
    lon, lat = m.place(rows["lon"].to_numpy(float), rows["lat"].to_numpy(float))
    keep = (~zero & in_range).to_numpy()
    send_lon = np.where(keep, np.round(lon, 7), rows["lon"].to_numpy(float))  # 0,0 and bad ones as they are
    send_lat = np.where(keep, np.round(lat, 7), rows["lat"].to_numpy(float))

    # every mapped class's department gets an operator (the same people for any subset of rows)
    departments = {cat.minor(CaseKind(k), c).department for k, c in filter(None, map(m.class_of, m.types))}
    chains: list[tuple[str, list[tuple[datetime, str, dict[str, Any]]]]] = []  # (at, action, body)
    for i, r in enumerate(rows.itertuples(index=False)):
        case_id = f"{m.case_prefix}{tag}-{_SAFE_ID.sub('-', str(r.id))}"[:32]
        created: datetime = r.created.to_pydatetime()
        closed = None if pd.isna(r.closed) else r.closed.to_pydatetime()
        if closed is not None and closed < created:  # a data error: the chain happens at created
            closed = created
        klass = m.class_of(str(r.type))
        kind, code = klass or ("event", UNMAPPED_CLASS)
        dept = ""
        if klass is not None:
            dept = cat.minor(CaseKind(kind), code).department
        source = m.sources.get(str(r.source), m.default_source)
        text = " · ".join(s for s in (str(r.type), str(r.address)) if s)
        steps: list[tuple[datetime, str, dict[str, Any]]] = [
            (created, "report", {
                "actor": actors.acceptor, "role": "acceptor",
                "data": {"kind": kind, "class_code": code, "source": source,
                         "lon": float(send_lon[i]), "lat": float(send_lat[i]),
                         "description": f"{text} ({m.name.upper()} 311 {r.id}, replayed)"[:1000]},
            }),
        ]  # fmt: skip
        status = str(r.status)
        if status in m.voided and closed is not None:
            opinion = f"来源状态 {status}，作废 (source status {status})"
            void: dict[str, Any] = {"actor": actors.shift_leader, "role": "shift_leader", "opinion": opinion}
            steps.append((closed, "void", void))
            chains.append((case_id, steps))
            continue
        finished = closed is not None and status in m.closed
        span = (closed - created) if finished and closed is not None else None

        def early(
            minutes: float, cap: float, span: timedelta | None = span, created: datetime = created
        ) -> datetime:
            offset = timedelta(minutes=minutes)
            return created + (offset if span is None else min(offset, span * cap))

        who: dict[str, tuple[str, str, dict[str, Any]]] = {
            "accept": (actors.acceptor, "acceptor", {"assignee": actors.supervisor}),
            "verify": (actors.supervisor, "supervisor", {"confirmed": True}),
            "file": (actors.shift_leader, "shift_leader", {}),
            "dispatch": (actors.dispatcher, "dispatcher", {"department": dept} if dept else {}),
        }
        for action, minutes, cap in EARLY:
            actor, role, given = who[action]
            data = dict(given)
            if action == "dispatch" and not pd.isna(r.sla):
                data["deadline"] = r.sla.to_pydatetime()  # shifted with the other instants below
            steps.append((early(minutes, cap), action, {"actor": actor, "role": role, "data": data}))
        if finished and closed is not None and span is not None:
            for action, minutes, cap in LATE:
                at = closed - min(timedelta(minutes=minutes), span * cap)
                body: dict[str, Any]
                if action == "feedback":
                    body = {"actor": actors.department(dept), "role": "department", "department": dept,
                            "data": {"assignee": actors.supervisor}}  # fmt: skip
                else:
                    body = {"actor": actors.supervisor, "role": "supervisor", "data": {"passed": True}}
                steps.append((at, action, body))
            steps.append((closed, "close", {"actor": actors.shift_leader, "role": "shift_leader"}))
        chains.append((case_id, steps))

    # the anchor: the last instant sent (or --as-of); everything after --as-of stays unsent
    every = [at for _, steps in chains for at, _, _ in steps]
    if as_of is not None:
        anchor = as_of
    elif every:
        anchor = max(every)
    else:
        anchor = start
    first = min(every, default=anchor)
    shift = time_shift(first, anchor, start, speed)
    events: list[tuple[datetime, int, Send]] = []
    for case_id, steps in chains:
        for n, (at, action, body) in enumerate(steps, 1):
            if as_of is not None and at > as_of:
                not_sent["commands"]["after_as_of"] += len(steps) - n + 1
                break
            payload = {"id": f"{case_id}.{n}", "action": action, "case_id": case_id,
                       "at": (at + shift).astimezone(UTC).isoformat(), "opinion": "", **body}  # fmt: skip
            due_at = body.get("data", {}).get("deadline")
            if isinstance(due_at, datetime):
                payload["data"] = {**body["data"], "deadline": (due_at + shift).astimezone(UTC).isoformat()}
            kind = "reports" if action == "report" else "commands"
            due = (at - first).total_seconds()
            ev = Send(due, case_id, "command", payload, kind, 1, case_id, n == 1, str(body["actor"]))
            events.append((at, len(events), ev))
    events.sort(key=lambda e: (e[0], e[1]))
    who_is = f"{m.name.upper()} 311"
    people = [
        PersonSpec(actors.acceptor, "acceptor", f"{m.name.upper()} 311 受理 (replay)"),
        PersonSpec(actors.shift_leader, "shift_leader", f"{m.name.upper()} 311 值班长 (replay)"),
        PersonSpec(actors.dispatcher, "dispatcher", f"{m.name.upper()} 311 派遣 (replay)"),
        PersonSpec(actors.supervisor, "supervisor", f"{m.name.upper()} 311 核实核查 (replay)"),
        *(
            PersonSpec(actors.department(d), "department", f"{who_is} {cat.departments[d].name}", d)
            for d in sorted(departments)
        ),
    ]
    return Plan(
        name=f"311-{m.name}",
        token_name=f"replay:311-{m.name}",
        people=people,
        events=[e for _, _, e in events],
        shift=shift,
        not_sent={k: +v for k, v in not_sent.items() if +v},  # +: without zero counts
        info={"rows": len(rows), "anchor": anchor, "first": first, "mapping": m.name},
    )
