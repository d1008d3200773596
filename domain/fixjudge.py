"""The fix judge: whether a supervisor's fix is a retry, a clash or impossible, given the fixes before it.

A pure function of what it is fed (no clock, no I/O), kept apart from the pipeline's writer so that its
rules can be tested over generated sequences (``tests/test_fixjudge.py``):

- **retry** — the supervisor already has a fix at that instant within 1 m of it: answered as a
  duplicate (the device resends what it was not acknowledged for), nothing stored;
- **duplicate** — another fix at the same instant, elsewhere: refused (two handsets share a token, or a
  device's clock repeats);
- **impossible_speed** — faster than ``max_speed_kmh`` since the supervisor's latest fix (a GPS jump).

A fix older than the latest one is judged against the recent instants only (late fixes arrive out of
order) and does not move the latest one.

The judge keeps, per supervisor, the latest accepted fix and the instants of the recent ones, and only
learns from what was committed: :meth:`FixJudge.judge` leaves its memory untouched and returns a
:class:`Judgement` (later fixes of a group are judged against earlier ones of the same group through
it), and :meth:`FixJudge.remember` takes the judgement in once the transaction committed. A rolled-back
group is simply never remembered: no undo log. A supervisor the judge has not met yet is seeded from
the store (:meth:`FixJudge.unseen`, :meth:`FixJudge.seed`), so a restart does not forget the speed rule.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from domain.supervisor import Fix, distance_m

ACCEPT: Final = "accept"
RETRY: Final = "retry"  # answered as a duplicate, not stored again
DUPLICATE: Final = "duplicate"  # the rejection reason's name (feeds.schemas.Reason.DUPLICATE)
IMPOSSIBLE_SPEED: Final = "impossible_speed"  # likewise Reason.IMPOSSIBLE_SPEED
SAME_POINT_M = 1.0  # a fix at the same instant closer than this is the same fix sent again
Latest = tuple[datetime, float, float]  # instant, lon, lat


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the judge says of one fix: accept, retry, duplicate or impossible_speed, and why."""

    outcome: str
    message: str = ""


_ACCEPTED = Verdict(ACCEPT)
_RETRIED = Verdict(RETRY)


@dataclass(slots=True)
class Judgement:
    """The verdicts of a group of fixes, and what the judge learns from it once it is committed."""

    verdicts: list[Verdict]
    latest: dict[str, Latest] = field(default_factory=dict)  # supervisor → latest fix accepted here
    recent: dict[str, dict[datetime, tuple[float, float]]] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """How many fixes the judge accepted."""
        return sum(1 for v in self.verdicts if v is _ACCEPTED)


class FixJudge:
    """Duplicate, retry and speed rules over each supervisor's committed fixes."""

    def __init__(self, max_speed_kmh: float = 200.0, recent_per_supervisor: int = 64) -> None:
        self.max_speed_kmh = max_speed_kmh
        self.keep = recent_per_supervisor  # recent fix instants kept to tell a retry from a clash
        self._latest: dict[str, Latest] = {}
        self._recent: dict[str, OrderedDict[datetime, tuple[float, float]]] = {}
        self._seen: set[str] = set()  # supervisors met or seeded (their latest fix may be none)

    def unseen(self, supervisors: Iterable[str]) -> set[str]:
        """The supervisors the judge knows nothing of yet (to seed from the store)."""
        return set(supervisors) - self._seen

    def seed(self, supervisors: Iterable[str], latest: Mapping[str, Latest]) -> None:
        """Take in the latest stored fix of supervisors met for the first time (none: no fix yet)."""
        for sup in supervisors:
            self._seen.add(sup)
            found = latest.get(sup)
            cur = self._latest.get(sup)
            if found is not None and (cur is None or found[0] > cur[0]):
                self._latest[sup] = found

    def latest(self, supervisor: str) -> Latest | None:
        """The latest committed fix the judge knows of a supervisor."""
        return self._latest.get(supervisor)

    def judge(self, fixes: Sequence[Fix]) -> Judgement:
        """The verdict of each fix, in order; the judge's memory is not changed (see ``remember``)."""
        out = Judgement([])
        verdicts, latest, recent = out.verdicts, out.latest, out.recent
        limit = self.max_speed_kmh
        for fix in fixes:
            sup, at = fix.supervisor, fix.at
            mine = recent.get(sup)
            seen = mine.get(at) if mine is not None else None
            if seen is None:
                committed = self._recent.get(sup)
                seen = committed.get(at) if committed is not None else None
            if seen is not None:
                if distance_m(seen[0], seen[1], fix.lon, fix.lat) < SAME_POINT_M:
                    verdicts.append(_RETRIED)
                else:
                    msg = f"another fix of {sup} at {at.isoformat()} was accepted"
                    verdicts.append(Verdict(DUPLICATE, msg))
                continue
            last = latest.get(sup) or self._latest.get(sup)
            if last is not None and at > last[0]:
                seconds = (at - last[0]).total_seconds()
                kmh = distance_m(last[1], last[2], fix.lon, fix.lat) / seconds * 3.6
                if kmh > limit:
                    msg = f"{kmh:.0f} km/h since the fix at {last[0].isoformat()}"
                    verdicts.append(Verdict(IMPOSSIBLE_SPEED, msg))
                    continue
            verdicts.append(_ACCEPTED)
            if last is None or at > last[0]:
                latest[sup] = (at, fix.lon, fix.lat)
            if mine is None:
                mine = recent[sup] = {}
            mine[at] = (fix.lon, fix.lat)
        return out

    def remember(self, judgement: Judgement) -> None:
        """Learn a judgement's accepted fixes: call it only once their transaction committed."""
        for sup, fresh in judgement.recent.items():
            kept = self._recent.get(sup)
            if kept is None:
                kept = self._recent[sup] = OrderedDict()
            kept.update(fresh)
            while len(kept) > self.keep:
                kept.popitem(last=False)
            self._seen.add(sup)
        for sup, last in judgement.latest.items():
            cur = self._latest.get(sup)
            if cur is None or last[0] > cur[0]:
                self._latest[sup] = last
