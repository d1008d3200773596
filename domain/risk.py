"""Breach risk (issue 21 part 2): the chance that an open case's current stage ends after its deadline.

For every open case at an instant ``t`` the model gives ``p_late`` (the probability that the stage it
is in closes after its deadline) and ``expected_close`` (when that stage is expected to end). Both come
from scikit-learn's histogram gradient boosting (``HistGradientBoostingClassifier`` and ``…Regressor``):
a well-kept library, categorical features natively (kind, department, source, stage), missing values
and non-linear interactions (a 30-minute centre step and a 5-working-day handling limit in one model)
without hand-made buckets, and a fit in seconds on hundreds of thousands of snapshots. A survival model
(lifelines' Cox) was not chosen: its proportional-hazards form fits the mix of minute and day limits
poorly and the question asked is one probability at a fixed deadline, which a classifier answers
directly (right-censoring is handled by dropping snapshots whose outcome is unknown, see
:func:`history`).

The baseline is "least time left": the score ``−time left`` (wall-clock seconds to the deadline, as the
countdown shows it), turned into a probability by isotonic regression on the training snapshots.

Pure: no I/O. The features of a snapshot use only what is known at ``t`` (:func:`open_case`).
Measured (``python -m bench risk``, BENCHMARKS.md): it beats the baseline on a held-out simulated month
(AUC and Brier) but not on the LA 311 replay (better AUC, worse Brier): ship it for the former only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from domain.lifecycle import CaseState
from domain.workcalendar import StageTimer, WorkCalendar, is_overdue, remaining, remaining_budget

CENTRE = "centre"  # the department of a case not dispatched yet: the 指挥中心 holds it
# the model's categorical inputs; the class (147 codes in CJ/T 214) is not one of them: as a category it
# made the model worse on held-out generated periods (it learns single classes' noise; BENCHMARKS.md), and the
# class reaches the model through its stage limit (``limit_h``) instead
CATEGORICAL = ("kind", "department", "source", "stage")
NUMERIC = (
    "hour", "weekday", "age_h", "stage_age_h", "left_h", "left_share", "limit_h", "load",
    "urges", "extensions", "reworks", "paused",
)  # fmt: skip
COLUMNS = (*CATEGORICAL, *NUMERIC)
MAX_CATEGORIES = 250  # HistGradientBoosting takes at most 255 categories per feature; rarer ones → missing


@dataclass(frozen=True)
class OpenCase:
    """What is known of one open case at an instant: its class, where it is, its current stage's clock."""

    case_id: str
    kind: str
    class_code: str
    department: str
    source: str
    stage: str  # the running timer's name ("handle", "check", …; "open" for a one-stage replay)
    age_s: float  # since the report
    stage_age_s: float  # since the stage started
    left_s: float  # wall-clock seconds to the stage deadline (negative when overdue)
    left_share: float  # the limit's budget left, as a share of the limit (≤ 0 when overdue)
    limit_s: float  # the stage's deadline − its start, in wall-clock seconds
    deadline: datetime
    urges: int = 0
    extensions: int = 0
    reworks: int = 0
    paused: bool = False


@dataclass(frozen=True)
class Snapshot:
    """An open case at ``t`` with its outcome: the stage ended late, and when it ended."""

    at: datetime
    case: OpenCase
    late: bool
    closes_in_s: float  # from ``at`` to the stage's end (to the horizon when it had not ended: censored)
    ended: bool = True  # False: still running (and overdue) at the horizon, ``closes_in_s`` a lower bound


def current_timer(state: CaseState) -> StageTimer | None:
    """The running timer of the case's current stage (the latest started one not stopped)."""
    running = [t for t in state.timers.values() if t.ended_at is None]
    return max(running, key=lambda t: t.started_at) if running else None


def open_case(state: CaseState, t: datetime, cal: WorkCalendar) -> OpenCase | None:
    """The view of an open case at ``t`` (``state`` must be its state as of ``t``); None if no clock runs."""
    timer = current_timer(state)
    if not state.is_open or timer is None or t < timer.started_at:
        return None
    left = remaining(timer, t, cal).total_seconds()
    budget = remaining_budget(timer, t, cal)
    limit = timer.effective_limit
    return OpenCase(
        case_id=state.id,
        kind=state.kind.value,
        class_code=f"{state.kind.value}:{state.class_code}",
        department=state.department or state.subcentre or CENTRE,
        source=state.source.value,
        stage=timer.stage,
        age_s=(t - state.reported_at).total_seconds(),
        stage_age_s=(t - timer.started_at).total_seconds(),
        left_s=left,
        left_share=budget / limit if limit > 0 else 0.0,
        limit_s=(timer.deadline - timer.started_at).total_seconds(),
        deadline=timer.deadline,
        urges=state.urges,
        extensions=state.extensions,
        reworks=state.reworks,
        paused=timer.is_paused,
    )


def features(cases: Sequence[OpenCase], t: datetime) -> pd.DataFrame:
    """The feature table of the open cases at ``t`` (load = open cases of the same department among them)."""
    df = (
        pd.DataFrame([asdict(c) for c in cases])
        if cases
        else pd.DataFrame(columns=list(OpenCase.__annotations__))
    )
    local = t  # the instant as its caller's clock reads it (the city's time zone)
    out = pd.DataFrame(index=df.index)
    for col in ("class_code", *CATEGORICAL):
        out[col] = df[col].astype(str)
    out["hour"] = local.hour + local.minute / 60.0 + local.second / 3600.0
    out["weekday"] = float(local.weekday())
    out["age_h"] = df["age_s"].astype(float) / 3600.0
    out["stage_age_h"] = df["stage_age_s"].astype(float) / 3600.0
    out["left_h"] = df["left_s"].astype(float) / 3600.0
    out["left_share"] = df["left_share"].astype(float)
    out["limit_h"] = df["limit_s"].astype(float) / 3600.0
    out["load"] = df.groupby("department")["case_id"].transform("count").astype(float) if len(df) else []
    for col in ("urges", "extensions", "reworks"):
        out[col] = df[col].astype(float)
    out["paused"] = df["paused"].astype(float)
    return out


def history(
    steps: Iterable[tuple[datetime, CaseState]], start: datetime, end: datetime, every: timedelta,
    cal: WorkCalendar,
) -> list[Snapshot]:  # fmt: skip
    """Snapshots of the open cases every ``every`` from ``start`` to ``end``, labelled from what followed.

    ``steps`` are (instant, a case's state after a command) in time order. A snapshot's features use
    the states as of its instant only; its label is read from the same timer (stage and start) later
    on: late if the timer ended after its deadline. A timer still running at ``end`` is labelled late
    when it is already overdue there, and left out otherwise (its outcome is unknown: censored).
    """
    open_now: dict[str, CaseState] = {}
    pending: list[tuple[datetime, OpenCase, tuple[str, str, datetime]]] = []
    ended: dict[tuple[str, str, datetime], StageTimer] = {}
    last: dict[str, CaseState] = {}
    tick = start

    def snap(at: datetime) -> None:
        for state in open_now.values():
            view = open_case(state, at, cal)
            timer = current_timer(state)
            if view is not None and timer is not None:
                pending.append((at, view, (state.id, timer.stage, timer.started_at)))

    for at, state in steps:
        while tick <= at and tick < end:
            snap(tick)
            tick += every
        if at >= end:
            break
        for timer in state.timers.values():
            if timer.ended_at is not None:
                ended.setdefault((state.id, timer.stage, timer.started_at), timer)
        last[state.id] = state
        if state.is_open:
            open_now[state.id] = state
        else:
            open_now.pop(state.id, None)
    while tick < end:
        snap(tick)
        tick += every
    running: dict[tuple[str, str, datetime], StageTimer] = {}
    for state in last.values():
        for timer in state.timers.values():
            if timer.ended_at is None:
                running[(state.id, timer.stage, timer.started_at)] = timer
    out: list[Snapshot] = []
    for at, view, key in pending:
        done = ended.get(key)
        if done is not None and done.ended_at is not None:
            late = is_overdue(done, done.ended_at)
            out.append(Snapshot(at, view, late, (done.ended_at - at).total_seconds()))
            continue
        still = running.get(key)
        if still is not None and is_overdue(still, end):
            out.append(Snapshot(at, view, True, (end - at).total_seconds(), ended=False))
    return out


def _categories(df: pd.DataFrame, keep: dict[str, list[str]]) -> pd.DataFrame:
    """The categorical columns as pandas categoricals over the training categories (others → missing)."""
    out = df.copy()
    for col in CATEGORICAL:
        known = out[col].where(out[col].isin(keep[col]))
        out[col] = pd.Categorical(known, categories=keep[col])
    return out


class RiskModel:
    """Gradient-boosted breach risk and expected stage end, trained from labelled snapshots."""

    def __init__(self, seed: int = 0, max_iter: int = 150, threads: int = 1, holdout: float = 0.0) -> None:
        self.seed = seed
        self.threads = threads  # OpenMP threads: one by default (the wall's process shares its cores)
        # share of the cases kept out of the boosting to calibrate it (isotonic); 0 by default: in the
        # trials on generated periods it lowered the AUC every time and the Brier score only at times
        self.holdout = holdout
        self.keep: dict[str, list[str]] = {}
        # many snapshots of one stage are alike: big leaves and an L2 penalty keep the trees from
        # learning single cases (a random early-stopping split would leak them, so a fixed length)
        params = {
            "max_iter": max_iter, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 100,
            "l2_regularization": 1.0, "categorical_features": "from_dtype", "random_state": seed,
            "early_stopping": False,
        }  # fmt: skip
        self.clf = HistGradientBoostingClassifier(**params)
        self.reg = HistGradientBoostingRegressor(**params)
        self.iso: IsotonicRegression | None = None

    def fit(
        self, x: pd.DataFrame, late: np.ndarray, closes_in_s: np.ndarray, groups: np.ndarray | None = None
    ) -> RiskModel:
        """Train on a feature table, the late labels and the seconds to each stage's end.

        ``groups`` (a case id per row) puts all snapshots of a case on one side of the calibration
        split: the boosting learns from the rest, an isotonic map from its scores on these cases.
        """
        self.keep = {
            col: [str(v) for v in x[col].value_counts().index[:MAX_CATEGORIES]] for col in CATEGORICAL
        }
        xc = _categories(x[list(COLUMNS)], self.keep)
        y = np.asarray(late, dtype=int)
        target = np.log1p(np.maximum(np.asarray(closes_in_s, dtype=float), 0.0) / 60.0)
        if groups is None:
            groups = np.arange(len(y))
        ids = pd.Series(np.asarray(groups)).astype(str)
        held = (pd.util.hash_pandas_object(ids, index=False).to_numpy() % 1000) < self.holdout * 1000
        if self.holdout <= 0 or held.all() or not held.any() or len(set(y[held])) < 2:
            held = np.zeros(len(y), dtype=bool)
        with threadpool_limits(limits=self.threads):
            self.clf.fit(xc[~held], y[~held])
            self.reg.fit(xc, target)
            if held.any():
                raw = self.clf.predict_proba(xc[held])[:, 1]
                self.iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y[held])
        return self

    def proba(self, x: pd.DataFrame) -> np.ndarray:
        """P(late) for each row of a feature table."""
        with threadpool_limits(limits=self.threads):
            raw = np.asarray(
                self.clf.predict_proba(_categories(x[list(COLUMNS)], self.keep))[:, 1], dtype=float
            )
        return raw if self.iso is None else np.asarray(self.iso.predict(raw), dtype=float)

    def closes_in_s(self, x: pd.DataFrame) -> np.ndarray:
        """Expected seconds to each stage's end (the regression is on log minutes: a median-like guess)."""
        with threadpool_limits(limits=self.threads):
            return np.asarray(
                np.expm1(self.reg.predict(_categories(x[list(COLUMNS)], self.keep))) * 60.0, dtype=float
            )

    def predict(self, cases: Sequence[OpenCase], t: datetime) -> tuple[np.ndarray, list[datetime]]:
        """``p_late`` and ``expected_close`` of each open case at ``t``."""
        if not cases:
            return np.zeros(0), []
        x = features(cases, t)
        p = self.proba(x)
        secs = self.closes_in_s(x)
        return p, [t + timedelta(seconds=float(s)) for s in secs]


class LeastTimeLeft:
    """The baseline: score = −time left, calibrated to a probability by isotonic regression."""

    def __init__(self, column: str = "left_h") -> None:
        self.column = column
        self.iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")

    def fit(self, x: pd.DataFrame, late: np.ndarray) -> LeastTimeLeft:
        """Fit the isotonic map from −time left to the late share."""
        self.iso.fit(-x[self.column].to_numpy(dtype=float), np.asarray(late, dtype=float))
        return self

    def proba(self, x: pd.DataFrame) -> np.ndarray:
        """P(late) for each row of a feature table."""
        return np.asarray(self.iso.predict(-x[self.column].to_numpy(dtype=float)), dtype=float)


class Table(NamedTuple):
    """The rows of labelled snapshots: features, labels, seconds to the stage's end, ended, case ids."""

    x: pd.DataFrame
    late: np.ndarray
    closes_in_s: np.ndarray
    ended: np.ndarray
    case_ids: np.ndarray


def table(snaps: Sequence[Snapshot]) -> Table:
    """Features (load among the snapshots of the same instant), labels, seconds to end, ended, case ids."""
    if not snaps:
        empty = np.zeros(0)
        return Table(
            features([], datetime.now()), empty.astype(bool), empty, empty.astype(bool), empty.astype(str)
        )
    parts: list[pd.DataFrame] = []
    by_t: dict[datetime, list[OpenCase]] = {}
    for s in snaps:
        by_t.setdefault(s.at, []).append(s.case)
    for at, cases in by_t.items():
        parts.append(features(cases, at))
    x = pd.concat(parts, ignore_index=True)
    order = _grouped(snaps, by_t)
    late = np.array([s.late for s in order], dtype=bool)
    secs = np.array([s.closes_in_s for s in order], dtype=float)
    ended = np.array([s.ended for s in order], dtype=bool)
    return Table(x, late, secs, ended, np.array([s.case.case_id for s in order]))


def _grouped(snaps: Sequence[Snapshot], by_t: dict[datetime, list[OpenCase]]) -> list[Snapshot]:
    """The snapshots in the order :func:`table` builds its rows (instant by instant, first seen first)."""
    groups: dict[datetime, list[Snapshot]] = {at: [] for at in by_t}
    for s in snaps:
        groups[s.at].append(s)
    return [s for at in by_t for s in groups[at]]


@dataclass(frozen=True)
class Scores:
    """AUC, Brier score and the 10-bin calibration table of one predictor on one test set."""

    auc: float
    brier: float
    n: int
    late_share: float
    bins: tuple[tuple[int, float, float], ...]  # per bin [i/10, (i+1)/10): count, mean predicted, observed


def scores(p: np.ndarray, late: np.ndarray) -> Scores:
    """Score probabilities against outcomes (AUC, Brier, calibration in 10 equal-width bins)."""
    y = np.asarray(late, dtype=int)
    idx = np.minimum((np.asarray(p) * 10).astype(int), 9)
    bins = []
    for i in range(10):
        m = idx == i
        n = int(m.sum())
        bins.append((n, float(p[m].mean()) if n else float("nan"), float(y[m].mean()) if n else float("nan")))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return Scores(auc, float(brier_score_loss(y, p)), len(y), float(y.mean()) if len(y) else 0.0, tuple(bins))


__all__ = [
    "CENTRE", "LeastTimeLeft", "OpenCase", "RiskModel", "Scores", "Snapshot", "Table", "current_timer",
    "features", "history", "open_case", "scores", "table",
]  # fmt: skip
