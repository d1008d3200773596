"""Duplicate problems in the lifecycle (issue 21): 合并 (merge) and 不合并 (keep apart)."""

from __future__ import annotations

from domain.lifecycle import Action, Rule, Status, state_from_json, state_to_json
from tests.test_lifecycle import ACC, DEPT, LEAD, REPORT_PUBLIC, SUP, at, cmd, run

REPEAT = {**REPORT_PUBLIC, "duplicate_of": "C0"}  # the pipeline found C0 on arrival


def test_a_repeat_is_merged_into_the_earlier_case_before_filing() -> None:
    state, events, rejections = run(
        [
            (cmd(Action.REPORT, ACC, **REPEAT), at(0)),
            (cmd(Action.MERGE, SUP, into="C0"), at(1)),  # a supervisor may not
            (cmd(Action.MERGE, ACC), at(2)),  # into what?
            (cmd(Action.MERGE, ACC, into="C1"), at(2)),  # not into itself
            (cmd(Action.MERGE, ACC, into="C0"), at(3)),
            (cmd(Action.FILE, LEAD), at(4)),  # over
        ]
    )
    assert [r.rule for r in rejections] == [
        Rule.WRONG_ROLE, Rule.MISSING_MERGE_TARGET, Rule.MISSING_MERGE_TARGET, Rule.CASE_CLOSED,
    ]  # fmt: skip
    assert state.status is Status.VOIDED and state.merged_into == "C0" and state.duplicate_of is None
    assert state.closed_at == at(3) and not state.is_open and not state.counts_as_closure
    assert state.source.value == "hotline" and state.reporter == ACC.id  # keeps its source and reporter
    assert events[-1].action is Action.MERGE and events[-1].to_status is Status.VOIDED
    assert all(t.ended_at is not None for t in state.timers.values())  # no clock runs on
    assert state_from_json(state_to_json(state)) == state


def test_keep_apart_clears_the_candidate_and_the_case_goes_on() -> None:
    state, events, rejections = run(
        [
            (cmd(Action.REPORT, ACC, **REPEAT), at(0)),
            (cmd(Action.ACCEPT, ACC), at(2)),
            (cmd(Action.KEEP_APART, ACC), at(3)),
            (cmd(Action.KEEP_APART, ACC), at(4)),  # nothing left to keep apart
            (cmd(Action.VERIFY, SUP, confirmed=True), at(10)),
            (cmd(Action.FILE, LEAD), at(11)),
            (cmd(Action.DISPATCH, ACC), at(12)),  # (a dispatcher's: not the point here)
            (cmd(Action.MERGE, ACC, into="C0"), at(13)),  # filed: too late to merge
        ]
    )
    assert [r.rule for r in rejections] == [Rule.NO_DUPLICATE_CANDIDATE, Rule.WRONG_ROLE, Rule.WRONG_STATUS]
    assert state.duplicate_of is None and state.merged_into is None and state.status is Status.TO_DISPATCH
    assert [e.action for e in events].count(Action.KEEP_APART) == 1
    assert DEPT.department == "10"


def test_a_report_without_a_candidate_has_none() -> None:
    state, _, _ = run([(cmd(Action.REPORT, ACC, **REPORT_PUBLIC), at(0))])
    assert state.duplicate_of is None and state.merged_into is None


# -- in the store, on SQLite and PostgreSQL: the case merged into must be open and of the class -------

import pytest  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from domain.lifecycle import Actor, Command, Context  # noqa: E402
from store.cases import CommandResult, execute, load_case  # noqa: E402
from store.db import transaction  # noqa: E402
from tests.test_lifecycle import CAL, CAT  # noqa: E402

CTX = Context(catalogue=CAT, calendar=CAL)


def _do(
    engine: Engine, case_id: str, action: Action, actor: Actor, opinion: str = "", **data: object
) -> CommandResult:
    with transaction(engine) as s:
        return execute(s, Command(action, case_id, actor, opinion, data), at(len(case_id)), CTX)


@pytest.mark.postgres
def test_the_store_merges_only_into_an_open_case_of_the_same_class(city_engine: Engine) -> None:
    e = city_engine
    assert _do(e, "M-first", Action.REPORT, ACC, **REPORT_PUBLIC).outcome == "applied"
    other = {**REPORT_PUBLIC, "kind": "event", "class_code": "0505", "condition_code": "01"}
    assert _do(e, "M-other", Action.REPORT, ACC, **other).outcome == "applied"
    assert _do(e, "M-closed", Action.REPORT, ACC, **REPORT_PUBLIC).outcome == "applied"
    assert _do(e, "M-closed", Action.VOID, LEAD, "不属实").outcome == "applied"
    repeat = {**REPORT_PUBLIC, "duplicate_of": "M-first"}
    assert _do(e, "M-repeat", Action.REPORT, ACC, **repeat).outcome == "applied"
    for into, why in (("M-none", "no such case"), ("M-other", "another class"), ("M-closed", "closed")):
        res = _do(e, "M-repeat", Action.MERGE, ACC, into=into)
        assert res.outcome == "rejected" and res.rejection is not None
        assert res.rejection.rule is Rule.MISSING_MERGE_TARGET and why in res.rejection.message
    res = _do(e, "M-repeat", Action.MERGE, ACC, into="M-first")
    assert res.outcome == "applied"
    with transaction(e) as s:
        merged, first = load_case(s, "M-repeat"), load_case(s, "M-first")
    assert merged is not None and merged.merged_into == "M-first" and merged.status is Status.VOIDED
    assert first is not None and first.is_open


def test_open311_answers_the_caller_that_the_report_was_merged() -> None:
    from feeds.open311 import status_notes

    steps = [(cmd(Action.REPORT, ACC, **REPEAT), at(0)), (cmd(Action.MERGE, ACC, into="C0"), at(1))]
    state, _, _ = run(steps)
    assert status_notes(state, False) == "已合并到 C0 (merged into C0, the same problem)"


def test_a_merged_repeat_is_one_problem_in_the_indicators() -> None:
    """Two hotline reports of one problem, the second merged: two reports, one filing, the merge counted
    as the acceptor's 作废 (not left as a report never accepted), no 漏报 charged for the repeat."""
    from domain.evaluation import DailyAggregates, ObjectType
    from domain.lifecycle import Source
    from tests.test_evaluation import CLASS, D_MON, DISTRICT, G1, RESPONSIBLE, c, history, info, m
    from tests.test_evaluation import MON as EMON

    first = info("D1", G1, Source.HOTLINE, ACC.id)
    repeat = info("D2", G1, Source.HOTLINE, ACC.id)
    records = history(first, [
        (c("D1", Action.REPORT, ACC, **CLASS, source="hotline"), m(EMON, 0)),
        (c("D1", Action.ACCEPT, ACC), m(EMON, 5)),
        (c("D1", Action.VERIFY, SUP, confirmed=True), m(EMON, 20)),
        (c("D1", Action.FILE, LEAD), m(EMON, 25)),
    ]) + history(repeat, [
        (c("D2", Action.REPORT, ACC, **CLASS, source="hotline", duplicate_of="D1"), m(EMON, 30)),
        (c("D2", Action.MERGE, ACC, into="D1"), m(EMON, 33)),
    ])  # fmt: skip
    agg = DailyAggregates(responsible=RESPONSIBLE)
    for rec in sorted(records, key=lambda r: r[1].at):
        agg.add(*rec)
    district = agg.period(ObjectType.DISTRICT, DISTRICT, D_MON, D_MON).as_dict()
    assert district["reported"] == 2 and district["filed"] == 1 and district["voided"] == 1
    assert district["missed"] == 1  # the first report's 核实 found the problem: one 漏报, not two
    acceptor = agg.period(ObjectType.ACCEPTOR, ACC.id, D_MON, D_MON).as_dict()
    assert acceptor["voided"] == 1 and acceptor["accepted"] == 1
