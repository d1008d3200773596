"""The fix judge (domain.fixjudge) over generated sequences, against a plain restatement of its rules.

The reference below keeps every committed fix in a list and recomputes what the judge keeps in dicts:
the judge must give the same verdict for every fix of every group, learn only from groups that
committed (a rolled-back group leaves it exactly as before), and keep ``recent_per_supervisor``
instants per supervisor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.fixjudge import ACCEPT, DUPLICATE, IMPOSSIBLE_SPEED, RETRY, FixJudge
from domain.supervisor import Fix, distance_m

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
LON, LAT = 116.40, 39.90
MAX_KMH = 200.0
KEEP = 3  # small, so that forgetting old instants is exercised


@dataclass
class Reference:
    """The rules as a specification: lists of committed fixes, nothing cached."""

    keep: int
    committed: dict[str, list[tuple[datetime, float, float]]] = field(default_factory=dict)
    seeded: dict[str, tuple[datetime, float, float]] = field(default_factory=dict)

    def latest(self, sup: str, pending: list[Fix]) -> tuple[datetime, float, float] | None:
        """The latest fix: of equal instants, the one known first (the seed, then in commit order)."""
        cands = [self.seeded[sup]] if sup in self.seeded else []
        cands += [
            *self.committed.get(sup, []),
            *((f.at, f.lon, f.lat) for f in pending if f.supervisor == sup),
        ]
        return max(cands, default=None, key=lambda c: c[0])  # the first of the maximal ones

    def judge(self, fixes: list[Fix]) -> tuple[list[str], list[Fix]]:
        out: list[str] = []
        pending: list[Fix] = []
        for f in fixes:
            window = self.committed.get(f.supervisor, [])[-self.keep :]
            window = window + [(p.at, p.lon, p.lat) for p in pending if p.supervisor == f.supervisor]
            same = [w for w in window if w[0] == f.at]
            if same:
                near = distance_m(same[-1][1], same[-1][2], f.lon, f.lat) < 1.0
                out.append(RETRY if near else DUPLICATE)
                continue
            last = self.latest(f.supervisor, pending)
            if last is not None and f.at > last[0]:
                kmh = distance_m(last[1], last[2], f.lon, f.lat) / (f.at - last[0]).total_seconds() * 3.6
                if kmh > MAX_KMH:
                    out.append(IMPOSSIBLE_SPEED)
                    continue
            out.append(ACCEPT)
            pending.append(f)
        return out, pending

    def commit(self, pending: list[Fix]) -> None:
        for f in pending:
            self.committed.setdefault(f.supervisor, []).append((f.at, f.lon, f.lat))


# a few supervisors, instants within seconds of each other (clashes are frequent), points from a small
# set: repeats (retries), neighbours under a metre, and jumps of a kilometre (impossible speed)
OFFSETS = st.sampled_from([0.0, 0.000005, 0.00002, 0.0005, 0.01])
fixes_st = st.builds(
    lambda sup, s, dx, dy: Fix(sup, T0 + timedelta(seconds=s), LON + dx, LAT + dy, None),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 40),
    OFFSETS,
    OFFSETS,
)
groups_st = st.lists(st.tuples(st.lists(fixes_st, max_size=8), st.booleans()), max_size=12)


@settings(max_examples=300, deadline=None)
@given(groups_st, st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-30, 30), max_size=2))
def test_verdicts_match_the_rules_and_only_commits_teach(
    groups: list[tuple[list[Fix], bool]], seeds: dict[str, int]
) -> None:
    judge, ref = FixJudge(MAX_KMH, KEEP), Reference(KEEP)
    stored = {s: (T0 + timedelta(seconds=k), LON, LAT) for s, k in seeds.items()}
    judge.seed(judge.unseen(["a", "b", "c"]), stored)
    ref.seeded = dict(stored)
    for fixes, commits in groups:
        before = (dict(judge._latest), {s: dict(r) for s, r in judge._recent.items()})
        judgement = judge.judge(fixes)
        want, pending = ref.judge(fixes)
        assert [v.outcome for v in judgement.verdicts] == want
        assert judgement.accepted == want.count(ACCEPT)
        # judging changes nothing: the same group judged again gets the same verdicts
        assert [v.outcome for v in judge.judge(fixes).verdicts] == want
        assert (judge._latest, {s: dict(r) for s, r in judge._recent.items()}) == before
        if commits:
            judge.remember(judgement)
            ref.commit(pending)
        for sup in ("a", "b", "c"):
            assert judge.latest(sup) == ref.latest(sup, [])
            assert len(judge._recent.get(sup, {})) <= KEEP


@settings(max_examples=200, deadline=None)
@given(fixes_st, st.floats(0.0, 0.9), st.floats(2.0, 500.0))
def test_a_resent_fix_is_a_retry_and_another_point_at_that_instant_a_duplicate(
    fix: Fix, near_m: float, far_m: float
) -> None:
    judge = FixJudge(MAX_KMH)
    judge.remember(judge.judge([fix]))
    deg = 1 / 111_320  # metres → degrees of latitude
    again = Fix(fix.supervisor, fix.at, fix.lon, fix.lat + near_m * deg, None)
    other = Fix(fix.supervisor, fix.at, fix.lon, fix.lat + far_m * deg, None)
    assert judge.judge([again]).verdicts[0].outcome == RETRY
    verdict = judge.judge([other]).verdicts[0]
    assert verdict.outcome == DUPLICATE
    assert fix.supervisor in verdict.message


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3600), st.floats(1.0, 100_000.0))
def test_speed_over_the_limit_is_impossible(seconds: int, metres: float) -> None:
    judge = FixJudge(MAX_KMH)
    first = Fix("s", T0, LON, LAT, None)
    judge.seed(["s"], {"s": (first.at, first.lon, first.lat)})
    nxt = Fix("s", T0 + timedelta(seconds=seconds), LON, LAT + metres / 111_320, None)
    kmh = distance_m(LON, LAT, nxt.lon, nxt.lat) / seconds * 3.6
    verdict = judge.judge([nxt]).verdicts[0]
    assert verdict.outcome == (IMPOSSIBLE_SPEED if kmh > MAX_KMH else ACCEPT)
    # a late fix (older than the latest) is never too fast: fixes arrive out of order
    late = Fix("s", T0 - timedelta(seconds=seconds), LON, LAT + metres / 111_320, None)
    assert judge.judge([late]).verdicts[0].outcome == ACCEPT


def test_a_rolled_back_group_is_forgotten() -> None:
    judge = FixJudge(MAX_KMH)
    fix = Fix("s", T0, LON, LAT, None)
    assert judge.judge([fix]).verdicts[0].outcome == ACCEPT  # never remembered: rolled back
    far = Fix("s", T0, LON + 0.01, LAT, None)
    assert judge.judge([far]).verdicts[0].outcome == ACCEPT  # not a clash with the forgotten one
    assert judge.latest("s") is None
