"""The pipeline's first steps: an event → items that passed (or named why not) the stateless checks.

``Intake.prepare`` runs in the caller's thread (a Socket.IO reader, an HTTP request): parse
(``feeds.schemas``), then the checks of ``feeds.checks`` (coordinates, instants, who may speak for
whom), the known ids (supervisor, class, media) and CRS → WGS-84. A report's point is located here;
fixes are located later in the writer, once per group (:func:`locate`). What comes out is a list of
:class:`Item` — one per fix of a batch, else one — that the writer (``feeds.writer``) takes on.

Both ingest implementations run these same steps: the in-process ``feeds.pipeline.Pipeline`` and the
stream appender ``feeds.stream.StreamPipeline`` (whose consumer then runs the whole pipeline again).
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Engine

from domain.catalogue import CatalogueError
from domain.component import ComponentState, check_identifier
from domain.crs import to_wgs84
from domain.index import PointGridIndex
from domain.lifecycle import Action, Actor, Command, Context, Role
from domain.supervisor import Fix
from feeds.checks import (
    Speaker,
    api_actor,
    coordinates,
    envelope,
    instant,
    ref_of,
    replayed,
    scoped_key,
    simulated,
    speaker_for,
    unstorable,
)
from feeds.live import Place
from feeds.media import MediaStore, check_refs
from feeds.schemas import (
    MAX_HANDOVER_NOTES,
    CommandIn,
    ComponentUpdateIn,
    FixIn,
    HandoverIn,
    PositionsIn,
    ProposalDecisionIn,
    ProposalIn,
    Reason,
    ReportIn,
    TaskAckIn,
    TaskResultIn,
    ValidPositionsIn,
    describe,
)
from store import ingest as sql
from store.addresses import AddressBook
from store.components import ComponentBook
from store.ingest import PersonRow

log = logging.getLogger(__name__)
# Point → grid runs on one long-lived thread: pyproj builds a PROJ transformer per thread (~17 ms CPU)
# and python-socketio handles every event in a new thread, so locating in the caller's thread paid
# that on every event (python -m bench ingest).
LOCATE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-locate")
_FIX_LIST: TypeAdapter[list[FixIn]] = TypeAdapter(list[FixIn])  # a batch's fixes in one validation call
PEOPLE_RECHECK_S = 30.0  # an unknown person id is looked up again after this long

MAX_MEDIA = 10  # references in one input's media (as a report's)


@dataclass(slots=True)
class Item:
    """One input on its way through the pipeline: what the steps found and, at the end, its outcome."""

    ref: str
    kind: str
    raw: Any
    reason: Reason | str | None = None
    message: str = ""
    fix: Fix | None = None
    point: tuple[str, FixIn, float, float] | None = None  # a fix to locate: supervisor, input, WGS-84
    cmd: Command | None = None
    at: datetime | None = None
    place: Place | None = None
    task: tuple[str, str, str] | None = None  # task_ack: case, kind, supervisor
    answers: bool = False  # a task_result: only the supervisor who holds the task may answer it
    outcome: str = ""  # accepted | duplicate | rejected
    case_id: str | None = None
    recorded: bool = False  # its dead-letter row is written (capped: Pipeline._dead_letters)
    handover: dict[str, Any] | None = None  # a shift handover (交班) or its acknowledgement, checked
    component: dict[str, Any] | None = None  # an online update of the 部件 inventory, checked and located
    proposal: dict[str, Any] | None = None  # a supervisor's proposal of a 部件 update, or a decision on one
    prepared: bool = False  # passed the stateless steps

    def reset(self) -> None:
        """Forget what a rolled-back transaction decided (stateless rejections stay)."""
        self.outcome, self.recorded = "", False
        if self.prepared:
            self.reason, self.message = None, ""


@dataclass
class Job:
    """The items of one event, queued to the writer; ``done`` is set (and ``reply`` called) after commit."""

    items: list[Item]
    source: str
    done: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=_time.monotonic)
    reply: Callable[[dict[str, Any]], None] | None = None  # submit(..., reply=…): called after commit


@dataclass
class Ack:
    """The answer to one event: accepted ids, duplicates (retries) and named rejections."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)  # report id → case id

    def as_dict(self) -> dict[str, Any]:
        """The acknowledgement as sent to the client."""
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }
        if self.cases:
            out["cases"] = self.cases
        return out

    @classmethod
    def of(cls, items: Iterable[Item]) -> Ack:
        """The acknowledgement of items whose outcome is decided."""
        ack = cls()
        for it in items:
            if it.outcome == "accepted":
                ack.accepted.append(it.ref)
                if it.case_id and it.kind in ("report", "proposal"):  # a proposal's number (#n)
                    ack.cases[it.ref] = it.case_id
            elif it.outcome == "duplicate":
                ack.duplicates.append(it.ref)
                if it.case_id and it.kind in ("report", "proposal"):  # a proposal's number (#n)
                    ack.cases[it.ref] = it.case_id
            else:
                ack.rejected.append(
                    {"id": it.ref, "reason": str(it.reason or Reason.UNAVAILABLE), "message": it.message}
                )
        return ack


def refused(kind: str, raw: Any, reason: Reason, message: str) -> Item:
    """An input refused before parsing (rate limits, bad tokens) as an item to dead-letter."""
    return Item(ref=ref_of(raw), kind=kind, raw=raw, reason=reason, message=message)


class People:
    """The people table (supervisors, operators) as the checks need it, cached.

    Loaded at start; an id not in the cache is looked up (a person added since), and an id still
    unknown is not looked up again for ``PEOPLE_RECHECK_S``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._people: dict[str, PersonRow] = {}  # id → (role, area, active)
        self._checked: dict[str, float] = {}
        self._area_person: dict[str, str] = {}
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Reload the whole table."""
        with self.engine.connect() as c:
            rows = sql.people(c)
        with self._lock:
            self._people = rows
            self._area_person = {
                r[1]: pid for pid, r in rows.items() if r[0] == "supervisor" and r[1] and r[2]
            }

    def get(self, pid: str) -> PersonRow | None:
        """(role, area, active) of a person, or None when unknown."""
        found = self._people.get(pid)
        if found is None and _time.monotonic() - self._checked.get(pid, -1e9) > PEOPLE_RECHECK_S:
            with self.engine.connect() as c:
                found = sql.person(c, pid)
            if found is None:  # remembered only when absent: a concurrent first use must not see a miss
                self._checked[pid] = _time.monotonic()
            else:
                with self._lock:
                    self._people[pid] = found
                    if found[0] == "supervisor" and found[1] and found[2]:
                        self._area_person[found[1]] = pid
        return found

    def supervisor_of_area(self, area: str) -> str | None:
        """The active supervisor of a responsibility area (who a case there is assigned to)."""
        return self._area_person.get(area)


INVENTORY_ROLES = frozenset({"admin", "surveyor"})  # desk roles that update the 部件 inventory


class Intake:
    """Parse and the stateless checks: an event → items (caller's thread, no writer state)."""

    def __init__(
        self,
        index: PointGridIndex,
        ctx: Context,
        people: People,
        *,
        future_tolerance: timedelta,
        retention: timedelta,
        clock: Callable[[], datetime],
        media: MediaStore | None = None,
        addresses: AddressBook | None = None,
        components: ComponentBook | None = None,
    ) -> None:
        self.index = index
        self.ctx = ctx
        self.people = people
        self.future_tolerance = future_tolerance
        self.retention = retention
        self.clock = clock
        self.media = media  # None: media refs checked for form only
        self.addresses = addresses  # the gazetteer address-only reports are placed with (None: never)
        self.components = components  # the 部件 inventory reports naming an object are checked against

    def prepare(self, kind: str, raw: Any, speaker: Speaker) -> list[Item]:
        """The items of one event, each passed or with its named reason."""
        reason, msg = envelope(kind, raw)
        if reason is not None:
            split = self._without_unstorable_fixes(raw, speaker) if kind == "positions" else None
            return split if split is not None else [Item(ref_of(raw), kind, raw, reason, msg)]
        now = self.clock()
        if kind in ("position", "positions"):
            items = self._fixes(kind, raw, speaker, now)
        elif kind == "handover":
            items = [self._handover(raw, speaker, now)]
        else:
            items = [self._case(kind, raw, speaker, now)]
        for it in items:
            it.prepared = it.reason is None
        return items

    def _handover(self, raw: dict[str, Any], speaker: Speaker, now: datetime) -> Item:
        """The shift handover (交班 ``open``, 接班 ``ack``): only a shift leader's desk session (not_allowed),
        notes within their limit (too_large), an open names its shift, an ack its handover
        (missing_field); ``store.handover`` writes it in the pipeline's transaction."""
        item = Item(ref_of(raw), "handover", raw)
        try:
            h = HandoverIn.model_validate(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if errors and tuple(errors[0]["loc"]) == ("notes",) and errors[0]["type"] == "string_too_long":
                item.reason = Reason.TOO_LARGE
                item.message = f"notes: at most {MAX_HANDOVER_NOTES} characters"
            else:
                item.reason, item.message = describe(exc)
            return item
        item.ref = h.id
        pid = str(getattr(speaker, "person_id", None) or "")
        if speaker.kind != "session" or getattr(speaker, "role", None) != Role.SHIFT_LEADER.value or not pid:
            item.reason = Reason.NOT_ALLOWED
            item.message = "only a shift leader hands over (交班) or takes over (接班), from the desk"
            return item
        reason, msg = self._instant(h.at, now, old_ok=True)
        if reason is None and h.action == "open" and (h.shift_start is None or h.shift_end is None):
            reason, msg = Reason.MISSING_FIELD, "missing field shift_start/shift_end"
        elif reason is None and h.action == "open" and not (
            h.shift_start is not None and h.shift_end is not None
            and h.shift_start < h.shift_end <= h.shift_start + timedelta(hours=24)
        ):  # fmt: skip
            reason, msg = Reason.WRONG_TYPE, "shift_end: after shift_start, at most a day later"
        elif reason is None and h.action == "ack" and h.handover is None:
            reason, msg = Reason.MISSING_FIELD, "missing field handover"
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        item.at = h.at
        item.handover = {"action": h.action, "key": scoped_key(pid, h.id), "actor": pid, "notes": h.notes,
                         "handover": h.handover, "shift_start": h.shift_start,
                         "shift_end": h.shift_end}  # fmt: skip
        return item

    def _without_unstorable_fixes(self, raw: Any, speaker: Speaker) -> list[Item] | None:
        """A batch whose only flaw is fixes JSON cannot hold (nesting past 254 levels, an integer past
        64 bits): those fixes are refused ``malformed`` by name and the others go on (None: the batch
        itself is at fault)."""
        fixes = raw.get("fixes") if isinstance(raw, dict) else None
        if not isinstance(fixes, list):
            return None
        bad = {i for i, f in enumerate(fixes) if not _writes(f)}
        if not bad or len(bad) == len(fixes):
            return None
        rest = {**raw, "fixes": [f for i, f in enumerate(fixes) if i not in bad]}
        if envelope("positions", rest)[0] is not None:
            return None
        refused = [
            Item(ref_of(fixes[i], f"#{i}"), "position", fixes[i], Reason.MALFORMED, unstorable(fixes[i]))
            for i in sorted(bad)
        ]
        return refused + self.prepare("positions", rest, speaker)

    def _instant(self, at: datetime, now: datetime, old_ok: bool = False) -> tuple[Reason | None, str]:
        return instant(at, now, self.future_tolerance, self.retention, old_ok)

    def _supervisor(self, given: str | None, speaker: Speaker) -> tuple[str | None, Reason | None, str]:
        """Who an input is for, or why the speaker may not send it (unknown_supervisor included)."""
        pid, reason, msg = speaker_for(given, speaker)
        if reason is None:
            assert pid is not None
            person = self.people.get(pid)
            if person is None or person[0] != "supervisor" or not person[2]:
                reason, msg = Reason.UNKNOWN_SUPERVISOR, f"unknown supervisor {pid!r}"
        return pid, reason, msg

    # -- fixes -------------------------------------------------------------------------------------

    def _fixes(self, kind: str, raw: dict[str, Any], speaker: Speaker, now: datetime) -> list[Item]:
        valid: Sequence[FixIn | ValidationError] | None = None
        if kind == "positions":
            try:  # one call for the batch; only a batch with a bad fix is validated fix by fix (to name it)
                valid = ValidPositionsIn.model_validate(raw).fixes
                raws: Sequence[Any] = raw["fixes"]
            except ValidationError:
                try:
                    raws = PositionsIn.model_validate(raw).fixes
                except ValidationError as exc:
                    return [Item(ref_of(raw), kind, raw, *describe(exc))]
        else:
            raws = [raw]
        if valid is None:
            try:
                valid = _FIX_LIST.validate_python(raws)
            except ValidationError:
                valid = [_fix_or_error(r) for r in raws]
        items: list[Item] = []
        parsed: list[tuple[Item, FixIn, str]] = []
        speakers: dict[str | None, tuple[str | None, Reason | None, str]] = {}  # per batch
        latest, oldest = now + self.future_tolerance, now - self.retention
        for i, (r, fix) in enumerate(zip(raws, valid, strict=True)):
            if isinstance(fix, ValidationError):
                item = Item(ref_of(r, f"#{i}"), "position", r)
                items.append(item)
                item.reason, item.message = describe(fix)
                continue
            item = Item(fix.id or f"#{i}", "position", r)  # a valid id is a str of 1–100 characters
            items.append(item)
            reason: Reason | None
            found = speakers.get(fix.supervisor)
            if found is None:
                found = speakers[fix.supervisor] = self._supervisor(fix.supervisor, speaker)
            pid, reason, msg = found
            lon, lat = fix.lon, fix.lat
            if reason is None and not (  # the common case in one test; the named reason otherwise
                -180.0 <= lon <= 180.0
                and -90.0 <= lat <= 90.0
                and (lon or lat)
                and oldest <= fix.at <= latest
            ):
                reason, msg = coordinates(lon, lat)
                if reason is None:
                    reason, msg = self._instant(fix.at, now)
            if reason is not None:
                item.reason, item.message = reason, msg
                continue
            assert pid is not None
            if fix.id is None:
                item.ref = f"{pid}@{fix.at.isoformat()}"
            parsed.append((item, fix, pid))
        if parsed:
            _to_wgs84(parsed)
        return items

    # -- reports, tasks, commands ------------------------------------------------------------------

    def _case(self, kind: str, raw: dict[str, Any], speaker: Speaker, now: datetime) -> Item:
        item = Item(ref_of(raw), kind, raw)
        model: dict[str, type[ReportIn | TaskAckIn | TaskResultIn | CommandIn | ComponentUpdateIn | ProposalIn
                              | ProposalDecisionIn]] = {
            "report": ReportIn, "task_ack": TaskAckIn, "task_result": TaskResultIn, "command": CommandIn,
            "component": ComponentUpdateIn, "proposal": ProposalIn, "proposal_decision": ProposalDecisionIn,
        }  # fmt: skip
        try:
            parsed = model[kind].model_validate(raw)
        except ValidationError as exc:
            item.reason, item.message = describe(exc)
            return item
        item.ref = parsed.id
        reason, msg = self._instant(parsed.at, now, old_ok=True)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        item.at = parsed.at
        if isinstance(parsed, CommandIn):
            return self._command(item, parsed, speaker)
        if isinstance(parsed, ComponentUpdateIn):
            return self._component_update(item, parsed, speaker)
        if isinstance(parsed, ProposalDecisionIn):
            return self._proposal_decision(item, parsed, speaker)
        if speaker.kind == "api" and not parsed.supervisor:  # an API key reports as itself (feeds.api)
            key = api_actor(speaker)
            if not isinstance(parsed, ReportIn) or key is None:
                item.reason, item.message = Reason.NOT_ALLOWED, f"an api key may not send {kind}"
                return item
            return self._report(item, parsed, key, False)
        pid, reason, msg = self._supervisor(parsed.supervisor, speaker)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        assert pid is not None
        actor = Actor(pid, Role.SUPERVISOR)
        if isinstance(parsed, ReportIn):
            return self._report(item, parsed, actor, speaker.kind == "gateway", simulated(speaker))
        if isinstance(parsed, ProposalIn):
            return self._proposal(item, parsed, pid)
        if isinstance(parsed, TaskAckIn):
            item.task = (parsed.case_id, parsed.task, pid)
            return item
        assert isinstance(parsed, TaskResultIn)
        action = Action.VERIFY if parsed.task == "verify" else Action.CHECK
        result_key = "confirmed" if parsed.task == "verify" else "passed"
        data: dict[str, Any] = {result_key: parsed.result}
        reason, msg = check_refs(parsed.media, self.media)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        if parsed.media:
            data["media"] = ",".join(parsed.media)
        item.cmd = Command(action, parsed.case_id, actor, parsed.opinion, data, scoped_key(pid, parsed.id))
        item.answers = True
        return item

    def _report(self, item: Item, rep: ReportIn, actor: Actor, gateway: bool, sim: bool = False) -> Item:
        point = None if rep.lon is None or rep.lat is None else (rep.lon, rep.lat)
        crs = rep.crs
        named: dict[str, Any] = {}
        if rep.component_id is not None:  # the 部件 object the report names (issue 18)
            reason, msg, named = self._component(rep)
            if reason is not None:
                item.reason, item.message = reason, msg
                return item
            if point is None:  # reported by the object alone: at its point
                point, crs = (named.pop("lon"), named.pop("lat")), "wgs84"
            else:
                named.pop("lon"), named.pop("lat")
        reason, msg = (None, "") if point is None else coordinates(*point)
        if reason is None:
            try:
                self.ctx.catalogue.minor(rep.kind, rep.class_code)
                if rep.condition_code:
                    self.ctx.catalogue.condition(rep.kind, rep.class_code, rep.condition_code)
            except (CatalogueError, KeyError) as exc:
                reason, msg = Reason.UNKNOWN_CLASS, str(exc)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        data: dict[str, Any] = {
            "kind": rep.kind,
            "class_code": rep.class_code,
            "source": rep.source,
            "description": rep.description,
            **({"origin": "simulation"} if sim else {}),
            **named,
        }
        if point is not None:
            lon, lat = to_wgs84(np.array([point[0]]), np.array([point[1]]), crs)
            hit = LOCATE.submit(self.index.locate, float(lon[0]), float(lat[0])).result()
            if hit is None:
                item.reason = Reason.OUTSIDE_DISTRICT
                item.message = f"{point[0]:.6f},{point[1]:.6f} ({crs}) is outside the district's grids"
                return item
            item.place = Place(hit.grid, hit.street, round(float(lon[0]), 7), round(float(lat[0]), 7))
            data.update(grid=hit.grid, lon=item.place.lon, lat=item.place.lat)
        elif rep.address and (found := self._geocode(rep.address, rep.grid_code)) is not None:
            item.place, placed = found  # an address the gazetteer knows: placed there, score recorded
            data.update(placed)
        else:  # 待受理 flagged "needs location": a grid (unknown ones: unknown_grid) or only an address
            g = rep.grid_code
            item.place = Place(g, g[:9] if g else None, None, None)
            data["needs_location"] = True
            if g:
                data["grid"] = g
        if rep.address:
            data["address"] = rep.address
        if rep.condition_code:
            data["condition_code"] = rep.condition_code
        reason, msg = check_refs(rep.media, self.media)
        if reason is not None:
            item.reason, item.message, item.place = reason, msg, None
            return item
        if rep.self_handled:  # 自处置: photos before (media) and after (handled_media) the fix
            reason, msg = check_refs(rep.handled_media, self.media)
            if reason is not None:
                item.reason, item.message, item.place = reason, msg, None
                return item
            data["self_handled"] = True
            data["handled_media"] = ",".join(rep.handled_media)
        if rep.media:
            data["media"] = ",".join(rep.media)
        item.cmd = Command(Action.REPORT, rep.case_id or "", actor, "", data, scoped_key(actor.id, rep.id))
        if rep.case_id and not gateway:
            item.cmd, item.reason = None, Reason.NOT_ALLOWED
            item.message = "only a gateway may number its own cases (case_id)"
        return item

    def _component(self, rep: ReportIn) -> tuple[Reason | None, str, dict[str, Any]]:
        """The object a report names: refused by name (unknown_component, component_class_mismatch), else
        its identifier, the unit that handles it (the dispatcher's default) and its point."""
        code = str(rep.component_id)
        obj = self.components.get(code) if self.components is not None else None
        if obj is None:
            return Reason.UNKNOWN_COMPONENT, f"no component {code!r} in the inventory (or it is retired)", {}
        if rep.kind != "component" or obj.class_code != rep.class_code:
            return (
                Reason.COMPONENT_CLASS_MISMATCH,
                f"component {code} is of 部件 class {obj.class_code}, not {rep.kind} {rep.class_code}",
                {},
            )
        assert self.components is not None
        unit = self.components.handler(obj)
        named = {"component": code, "lon": obj.lon, "lat": obj.lat}
        return None, "", {**named, **({"component_unit": unit} if unit else {})}

    def _component_update(self, item: Item, u: ComponentUpdateIn, speaker: Speaker) -> Item:
        """An online update of the inventory (issue 18), by an admin's API key: the identifier checked
        (bad_identifier … as wrong_type), the object known (unknown_component) unless added, a point
        located in a grid (outside_district), a state and owners known (wrong_type); store.components
        writes it with its history (store.components.apply_update)."""
        key = api_actor(speaker) if speaker.kind == "api" else None
        if speaker.kind == "session" and getattr(speaker, "role", None) in INVENTORY_ROLES:
            key = Actor(str(getattr(speaker, "person_id", speaker.name)), Role.ADMIN)  # the component page
        if key is None or key.role is not Role.ADMIN:
            item.reason = Reason.NOT_ALLOWED
            item.message = "only an admin or a surveyor may update the inventory"
            return item
        code = u.component_id
        adcode = str(self.index.codes[0])[:6] if len(self.index.codes) else ""
        why, class_code = check_identifier(code, adcode, self.ctx.catalogue)
        if why is not None:  # class_code holds the message then
            item.reason, item.message = Reason.WRONG_TYPE, f"component_id: {why}: {class_code}"
            return item
        update: dict[str, Any] = {"id": code, "action": u.action, "reason": u.reason, "actor": key.id,
                                  "key": scoped_key(key.id, u.id)}  # a retry with the key: applied once
        known = self.components is not None and self.components.get(code) is not None
        if u.action not in ("add", "retire") and not known:
            item.reason, item.message = Reason.UNKNOWN_COMPONENT, f"no component {code!r} in the inventory"
            return item
        if u.action in ("add", "move"):
            if u.lon is None or u.lat is None:
                item.reason, item.message = Reason.MISSING_FIELD, "missing field lon/lat"
                return item
            reason, msg = coordinates(u.lon, u.lat)
            if reason is not None:
                item.reason, item.message = reason, msg
                return item
            wx, wy = to_wgs84(np.array([u.lon]), np.array([u.lat]), u.crs)
            lon, lat = round(float(wx[0]), 7), round(float(wy[0]), 7)
            hit = LOCATE.submit(self.index.locate, lon, lat).result()
            if hit is None:
                item.reason = Reason.OUTSIDE_DISTRICT
                item.message = f"{lon:.6f},{lat:.6f} is outside the district"
                return item
            update.update(lon=lon, lat=lat, grid_code=hit.grid,
                          geometry=f'{{"type": "Point", "coordinates": [{lon!r}, {lat!r}]}}')  # fmt: skip
        if u.action in ("add", "state"):
            try:
                state = ComponentState.parse(u.state)
            except ValueError as exc:
                item.reason, item.message = Reason.WRONG_TYPE, f"state: {exc}"
                return item
            if state is ComponentState.RETIRED:
                item.reason, item.message = Reason.WRONG_TYPE, "state: an object is retired by retire"
                return item
            update["state"] = state.value
        if u.action in ("add", "owners"):
            units = {"unit_main": u.unit_main, "unit_owner": u.unit_owner, "unit_care": u.unit_care}
            obj = self.components.get(code) if self.components is not None else None
            if u.action == "owners" and obj is not None:  # a unit not given stays ("" clears it)
                units = {r.column: obj.units.get(r) if units[r.column] is None else units[r.column]
                         for r in obj.units}  # fmt: skip
            unknown = [v for v in units.values() if v and v not in self.ctx.catalogue.departments]
            if unknown:
                item.reason, item.message = Reason.WRONG_TYPE, f"unknown department {unknown[0]!r}"
                return item
            update.update({k: v or None for k, v in units.items()})
        if u.action == "add":
            update.update(class_code=class_code, name=u.name or "")
        item.component = update
        return item

    def _proposal(self, item: Item, p: ProposalIn, pid: str) -> Item:
        """A supervisor's proposal of a 部件 update (issue 18): a 部件 class of the catalogue
        (unknown_class), the object known and of that class for a move or a state (unknown_component,
        component_class_mismatch), a new point located in a grid (outside_district), a known state
        (wrong_type), a photo (photo_required, unknown_media); ``store.proposals.propose`` keeps it."""
        try:
            self.ctx.catalogue.minor("component", p.class_code)
        except (CatalogueError, KeyError) as exc:
            item.reason, item.message = Reason.UNKNOWN_CLASS, f"class_code: not a 部件 class: {exc}"
            return item
        out: dict[str, Any] = {"key": scoped_key(pid, p.id), "supervisor": pid, "action": p.action,
                               "class_code": p.class_code, "note": p.note}  # fmt: skip
        if p.action == "add":
            adcode = str(self.index.codes[0])[:6] if len(self.index.codes) else ""
            out.update(name=p.name or "", adcode=adcode)
        else:
            code = str(p.component_id or "")
            obj = self.components.get(code) if self.components is not None and code else None
            if obj is None:
                item.reason = Reason.MISSING_FIELD if not code else Reason.UNKNOWN_COMPONENT
                item.message = "missing field component_id" if not code else f"no component {code!r}"
                return item
            if obj.class_code != p.class_code:
                item.reason = Reason.COMPONENT_CLASS_MISMATCH
                item.message = f"component {code} is of 部件 class {obj.class_code}, not {p.class_code}"
                return item
            out["component_id"] = code
            out["grid_code"] = obj.grid_code
        if p.action in ("add", "move"):
            if p.lon is None or p.lat is None:
                item.reason, item.message = Reason.MISSING_FIELD, "missing field lon/lat"
                return item
            reason, msg = coordinates(p.lon, p.lat)
            if reason is not None:
                item.reason, item.message = reason, msg
                return item
            wx, wy = to_wgs84(np.array([p.lon]), np.array([p.lat]), p.crs)
            lon, lat = round(float(wx[0]), 7), round(float(wy[0]), 7)
            hit = LOCATE.submit(self.index.locate, lon, lat).result()
            if hit is None:
                item.reason = Reason.OUTSIDE_DISTRICT
                item.message = f"{lon:.6f},{lat:.6f} is outside the district's grids"
                return item
            out.update(lon=lon, lat=lat, grid_code=hit.grid)
        if p.action in ("add", "state"):
            try:
                state = ComponentState.parse(p.state)
            except ValueError as exc:
                item.reason, item.message = Reason.WRONG_TYPE, f"state: {exc}"
                return item
            if state is ComponentState.RETIRED and p.action == "add":
                item.reason, item.message = Reason.WRONG_TYPE, "state: a new object is not retired"
                return item
            out["state"] = state.value
        if not p.media:
            item.reason, item.message = Reason.PHOTO_REQUIRED, "a proposal carries a photo (media)"
            return item
        reason, msg = check_refs(p.media, self.media)
        if reason is not None:
            item.reason, item.message = reason, msg
            return item
        out["media"] = ",".join(p.media)
        item.proposal = out
        return item

    def _proposal_decision(self, item: Item, d: ProposalDecisionIn, speaker: Speaker) -> Item:
        """A surveyor's or an admin's decision on a proposal, from the desk (a session of that role);
        a refusal names its reason (missing_field)."""
        role = getattr(speaker, "role", None) if speaker.kind == "session" else None
        if role not in INVENTORY_ROLES:
            item.reason, item.message = Reason.NOT_ALLOWED, "only a surveyor or an admin decides proposals"
            return item
        if d.decision == "refuse" and not d.reason:
            item.reason, item.message = Reason.MISSING_FIELD, "missing field reason (why it is refused)"
            return item
        who = str(getattr(speaker, "person_id", speaker.name))
        item.proposal = {"decide": True, "proposal": d.proposal, "decision": d.decision, "reason": d.reason,
                         "actor": who, "key": scoped_key(who, d.id)}  # fmt: skip
        return item

    def _geocode(self, address: str, grid: str | None) -> tuple[Place, dict[str, Any]] | None:
        """Where an address-only report goes when the gazetteer places it (``domain.address``: name and
        门牌 match, the score passes the threshold, no rival elsewhere), else None: a person places it.
        A report that named a grid keeps waiting when the address lies in another one."""
        if self.addresses is None:
            return None
        best = self.addresses.geocode(address).placed
        if best is None:
            return None
        a = best.address
        hit = LOCATE.submit(self.index.locate, a.lon, a.lat).result()
        if hit is None or (grid and hit.grid != grid):
            return None
        placed = {"grid": hit.grid, "lon": a.lon, "lat": a.lat, "located_by": "geocoder",
                  "geocode_score": best.score, "address_id": a.id}  # fmt: skip
        return Place(hit.grid, hit.street, a.lon, a.lat), placed

    def _locate(self, data: dict[str, Any]) -> tuple[Reason | None, str, Place | None]:
        """A LOCATE's point: a gazetteer candidate (``address_id``) or ``lon``/``lat`` (``crs``, default
        WGS-84), located in a grid; ``data`` gets ``grid``, ``lon``, ``lat`` and ``located_by``. Without
        either the lifecycle refuses it (missing_location); a client's own ``grid`` is not taken."""
        data.pop("grid", None)
        if data.get("address_id") is not None:
            raw = data["address_id"]
            found = None
            if isinstance(raw, int | str) and not isinstance(raw, bool) and str(raw).isdigit():
                found = self.addresses.get(int(raw)) if self.addresses is not None else None
            if found is None:
                return Reason.UNKNOWN_ADDRESS, f"no address {raw!r} in the gazetteer", None
            lon, lat, how = found.lon, found.lat, "candidate"
            data["address_id"] = found.id
        elif data.get("lon") is not None or data.get("lat") is not None:
            x, y = data.get("lon"), data.get("lat")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
                return Reason.BAD_COORDINATES, "locate: lon and lat must be numbers", None
            reason, msg = coordinates(float(x), float(y))  # type: ignore[arg-type]
            if reason is not None:
                return reason, msg, None
            crs = str(data.pop("crs", "wgs84") or "wgs84")
            try:
                wx, wy = to_wgs84(np.array([float(x)]), np.array([float(y)]), crs)  # type: ignore[arg-type]
            except ValueError as exc:
                return Reason.WRONG_TYPE, f"locate: {exc}", None
            lon, lat, how = round(float(wx[0]), 7), round(float(wy[0]), 7), "point"
        else:
            return None, "", None
        hit = LOCATE.submit(self.index.locate, lon, lat).result()
        if hit is None:
            return Reason.OUTSIDE_DISTRICT, f"{lon:.6f},{lat:.6f} is outside the district's grids", None
        data.update(grid=hit.grid, lon=lon, lat=lat, located_by=how)
        return None, "", Place(hit.grid, hit.street, lon, lat)

    def _command(self, item: Item, c: CommandIn, speaker: Speaker) -> Item:
        # a desk session (dashboard.commands) speaks only for its own person, in that person's role
        if speaker.kind not in ("gateway", "api", "session") or not speaker.may_speak_for(c.actor):
            item.reason, item.message = Reason.NOT_ALLOWED, f"this token may not speak for {c.actor!r}"
            return item
        try:
            action, role = Action(c.action), Role(c.role)
        except ValueError as exc:
            item.reason, item.message = Reason.WRONG_TYPE, str(exc)
            return item
        if speaker.kind == "session" and c.department != getattr(speaker, "department", None):
            item.reason = Reason.NOT_ALLOWED
            item.message = f"{c.actor!r} may not act for department {c.department}"
            return item
        key = api_actor(speaker) if speaker.kind == "api" else None
        if speaker.kind == "api" and (
            key is None
            or (key.role, key.department) != (role, c.department if role is Role.DEPARTMENT else None)
        ):  # an API key acts in its own role only
            item.reason = Reason.NOT_ALLOWED
            item.message = f"this api key's role is {getattr(speaker, 'role', None)}, not {c.role}"
            return item
        person = self.people.get(c.actor)
        if person is not None and (person[0] != role.value or not person[2]):
            item.reason = Reason.NOT_ALLOWED
            state = "an inactive " if not person[2] else ""
            item.message = f"{c.actor!r} is {state}{person[0]}, not {role.value}"
            return item
        if person is None and not speaker.may_speak_for("*") and (key is None or c.actor != key.id):
            item.reason, item.message = Reason.NOT_ALLOWED, f"unknown person {c.actor!r} (not in people)"
            return item
        data: dict[str, Any] = dict(c.data)
        if "media" in data:  # photos with a command (a department's 处置反馈): "sha256:…,sha256:…"
            refs = [r for r in str(data["media"] or "").split(",") if r]
            if len(refs) > MAX_MEDIA:
                item.reason, item.message = Reason.TOO_LARGE, f"data.media: at most {MAX_MEDIA} references"
                return item
            reason, msg = check_refs(refs, self.media)
            if reason is not None:
                item.reason, item.message = reason, msg
                return item
            data["media"] = ",".join(refs)
        place: Place | None = None
        if action is Action.REPORT:
            lon, lat = data.get("lon"), data.get("lat")
            if isinstance(lon, int | float) and isinstance(lat, int | float):
                reason, msg = coordinates(float(lon), float(lat))
                if reason is not None:
                    item.reason, item.message = reason, msg
                    return item
                hit = LOCATE.submit(self.index.locate, float(lon), float(lat)).result()
                if hit is None:
                    item.reason, item.message = (
                        Reason.OUTSIDE_DISTRICT,
                        f"{lon},{lat} is outside the district",
                    )
                    return item
                data["grid"] = hit.grid
                place = Place(hit.grid, hit.street, float(lon), float(lat))
            elif data.get("grid"):
                g = str(data["grid"])
                place = Place(g, g[:9], None, None)
        elif action is Action.LOCATE:  # 定位: a point or a gazetteer candidate → the case's grid
            reason, msg, place = self._locate(data)
            if reason is not None:
                item.reason, item.message = reason, msg
                return item
        item.place = place
        if (who := data.get("assignee")) is not None:  # a task goes to an active supervisor only
            found = self.people.get(str(who))
            if found is None or found[0] != Role.SUPERVISOR.value or not found[2]:
                item.reason = Reason.UNKNOWN_SUPERVISOR
                item.message = f"assignee {who!r} is not an active supervisor"
                return item
        actor = Actor(c.actor, role, c.department)
        origin = (
            "simulation" if simulated(speaker) else "replay" if replayed(speaker.kind, speaker.name) else ""
        )
        if action is Action.REPORT and origin:
            data["origin"] = origin  # cases.origin: the wall says 模拟数据 for simulation
        item.cmd = Command(action, c.case_id, actor, c.opinion, data, scoped_key(c.actor, c.id))
        return item


def _writes(value: Any) -> bool:
    """Whether orjson can write a value."""
    try:
        orjson.dumps(value, default=str)
    except TypeError:
        return False
    return True


def _fix_or_error(raw: Any) -> FixIn | ValidationError:
    try:
        return FixIn.model_validate(raw)
    except ValidationError as exc:
        return exc


def _to_wgs84(parsed: list[tuple[Item, FixIn, str]]) -> None:
    """CRS → WGS-84, vectorised per CRS; point → grid follows in the writer (:func:`locate`)."""
    crss = {f.crs for _, f, _ in parsed} - {"wgs84"}
    if not crss:
        for item, fix, pid in parsed:
            item.point = (pid, fix, fix.lon, fix.lat)
        return
    lon = np.array([f.lon for _, f, _ in parsed], dtype=np.float64)
    lat = np.array([f.lat for _, f, _ in parsed], dtype=np.float64)
    for crs in crss:
        sel = np.array([f.crs == crs for _, f, _ in parsed])
        lon[sel], lat[sel] = to_wgs84(lon[sel], lat[sel], crs)
    for k, (item, fix, pid) in enumerate(parsed):
        item.point = (pid, fix, float(lon[k]), float(lat[k]))


def locate(items: list[Item], index: PointGridIndex, here: bool) -> None:
    """Point → grid for every fix of a group in one vectorised lookup (outside_district).

    It runs in the writer, once per group (pyproj keeps a PROJ transformer per thread, and the writer
    is one long-lived thread): a handoff per event to a locating thread cost more than the lookup.
    ``here``: this thread is long-lived (else the lookup runs on :data:`LOCATE`).
    """
    if not items:
        return
    lon = np.fromiter((it.point[2] for it in items), np.float64, len(items))  # type: ignore[index]
    lat = np.fromiter((it.point[3] for it in items), np.float64, len(items))  # type: ignore[index]
    # no writer thread (inline): the caller's thread may be new, so not there
    idx = index.lookup_indices(lon, lat) if here else LOCATE.submit(index.lookup_indices, lon, lat).result()
    codes = index.codes
    for k, it in enumerate(items):
        assert it.point is not None
        pid, fix, x, y = it.point
        it.point = None
        if idx[k] < 0:
            it.reason, it.prepared = Reason.OUTSIDE_DISTRICT, False
            it.message = f"{fix.lon:.6f},{fix.lat:.6f} ({fix.crs}) is outside the district's grids"
            continue
        it.fix = Fix(
            supervisor=pid,
            at=fix.at,
            lon=round(x, 7),
            lat=round(y, 7),
            grid=str(codes[idx[k]]),
            speed=fix.speed,
            accuracy=fix.accuracy,
        )
