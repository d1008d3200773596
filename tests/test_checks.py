"""The pipeline's stateless checks (feeds.checks) and its first step (feeds.intake) over generated inputs.

No database and no server: each check is compared with its rule written out plainly, and
``Intake.prepare`` on generated fixes must name the reason the checks give, in the pipeline's order
(who may speak, then coordinates, then the instant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.lifecycle import Role
from feeds.checks import (
    KINDS,
    REPLAY_GATEWAY,
    SIMULATION_GATEWAY,
    api_actor,
    coordinates,
    envelope,
    instant,
    position_source,
    raw_json,
    ref_of,
    scoped_key,
    speaker_for,
)
from feeds.intake import Intake, People
from feeds.schemas import MAX_PAYLOAD_BYTES, Reason
from store.accounts import Principal

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TOL, RETAIN = timedelta(seconds=60), timedelta(days=7)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 180.0, -90.0, 90.0])


@given(floats, floats)
def test_coordinates_pass_exactly_the_finite_in_range_non_zero_points(lon: float, lat: float) -> None:
    reason, msg = coordinates(lon, lat)
    in_range = math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90
    if not in_range:
        assert reason is Reason.BAD_COORDINATES and msg
    elif lon == 0 and lat == 0:
        assert reason is Reason.ZERO_COORDINATES
    else:
        assert (reason, msg) == (None, "")


instants = st.integers(-10 * 24 * 3600, 10 * 24 * 3600).map(lambda s: NOW + timedelta(seconds=s))


@given(instants, st.booleans())
def test_instant_refuses_the_future_beyond_the_tolerance_and_the_past_beyond_retention(
    at: datetime, old_ok: bool
) -> None:
    reason, _ = instant(at, NOW, TOL, RETAIN, old_ok)
    if at > NOW + TOL:
        assert reason is Reason.IN_FUTURE
    elif at < NOW - RETAIN and not old_ok:
        assert reason is Reason.TOO_OLD
    else:
        assert reason is None


people = st.sampled_from(["sup-1", "sup-2", "sup-3"])
speakers = st.builds(
    Principal,
    st.just(1),
    st.sampled_from(["device", "gateway", "kiosk", "api"]),
    st.sampled_from(["t", SIMULATION_GATEWAY, REPLAY_GATEWAY]),
    st.none() | people,
    st.none(),
    st.frozensets(people | st.just("*"), max_size=2),
)


@given(st.none() | people, speakers)
def test_speaker_for_names_the_person_and_whether_the_token_may_speak_for_them(
    given_id: str | None, speaker: Principal
) -> None:
    pid, reason, _ = speaker_for(given_id, speaker)
    assert pid == (given_id or speaker.person_id)
    if pid is None:
        assert reason is Reason.MISSING_FIELD
    elif speaker.may_speak_for(pid):
        assert reason is None
    else:
        assert reason is Reason.NOT_ALLOWED


@given(st.text(max_size=200), st.text(max_size=200))
def test_scoped_keys_are_short_stable_and_tell_speakers_apart(speaker: str, ref: str) -> None:
    key = scoped_key(speaker, ref)
    assert len(key) <= 128 and key == scoped_key(speaker, ref)
    assert key != scoped_key(speaker + "x", ref)
    if len(speaker) + len(ref) + 1 <= 128:
        assert key == f"{speaker}:{ref}"


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str | None
    kind: str = "api"
    person_id: str | None = None

    def may_speak_for(self, person_id: str) -> bool:
        return False


@given(st.text(min_size=1, max_size=80), st.none() | st.text(max_size=20) | st.sampled_from(
    [r.value for r in Role] + ["department:10", "department:", "leader:10"]
))  # fmt: skip
def test_api_actor_is_the_keys_own_role(name: str, role: str | None) -> None:
    actor = api_actor(ApiKey(name, role))
    if actor is None:
        return
    assert role is not None and actor.id == f"api:{name}"[:64]
    base, _, dept = role.partition(":")
    assert actor.role.value == base and actor.department == (dept or None)
    assert (actor.role is Role.DEPARTMENT) == bool(dept)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.sampled_from([*KINDS, "nonsense"]), json_values)
def test_envelope_passes_known_kinds_of_json_objects_only(kind: str, raw: Any) -> None:
    reason, _ = envelope(kind, raw)
    if kind not in KINDS or not isinstance(raw, dict):
        assert reason is Reason.MALFORMED
    else:
        assert reason is None or (reason is Reason.TOO_LARGE and len(orjson.dumps(raw)) > MAX_PAYLOAD_BYTES)


def test_envelope_names_a_too_large_payload() -> None:
    assert envelope("report", {"d": "x" * MAX_PAYLOAD_BYTES})[0] is Reason.TOO_LARGE


@given(json_values)
def test_ref_and_dead_letter_payload_never_fail(raw: Any) -> None:
    ref = ref_of(raw)
    assert isinstance(ref, str) and 1 <= len(ref) <= 100
    out = raw_json(raw)
    assert isinstance(out, dict)
    if isinstance(raw, dict) and len(orjson.dumps(raw)) <= 4000:
        assert out == orjson.loads(orjson.dumps(raw))


@given(st.sampled_from(["device", "gateway", "api"]), st.sampled_from(
    [SIMULATION_GATEWAY, REPLAY_GATEWAY, f"{REPLAY_GATEWAY}:2025", "replayx", "x"]
))  # fmt: skip
def test_position_source_marks_simulation_and_replay_gateways(kind: str, name: str) -> None:
    label = position_source(f"{kind}:{name}")
    if kind == "gateway" and name == SIMULATION_GATEWAY:
        assert label == "simulation"
    elif kind == "gateway" and (name == REPLAY_GATEWAY or name.startswith(REPLAY_GATEWAY + ":")):
        assert label == "replay"
    else:
        assert label == "device"


# -- Intake.prepare: the checks in the pipeline's order ----------------------------------------------


class FakePeople:
    """sup-1 and sup-2 are active supervisors; sup-3 is an inactive one."""

    def get(self, pid: str) -> tuple[str, str | None, bool] | None:
        return {"sup-1": ("supervisor", "A1", True), "sup-2": ("supervisor", None, True)}.get(
            pid, ("supervisor", None, False) if pid == "sup-3" else None
        )


def _intake() -> Intake:
    return Intake(
        cast(Any, None), cast(Any, None), cast(People, FakePeople()), future_tolerance=TOL, retention=RETAIN,
        clock=lambda: NOW,
    )  # fmt: skip


fix_payloads = st.fixed_dictionaries(
    {"lon": floats | st.floats(116.0, 117.0), "lat": floats | st.floats(39.0, 41.0),
     "at": instants.map(lambda t: int(t.timestamp() * 1000))},
    optional={"supervisor": people | st.just("nobody"), "id": st.text("ab12-", min_size=1, max_size=10)},
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(fix_payloads, min_size=1, max_size=6), speakers)
def test_prepare_names_the_first_failing_check_of_each_fix(
    fixes: list[dict[str, Any]], speaker: Principal
) -> None:
    items = _intake().prepare("positions", {"fixes": fixes}, speaker)
    assert len(items) == len(fixes)
    for raw, item in zip(fixes, items, strict=True):
        pid, want, _ = speaker_for(raw.get("supervisor"), speaker)
        if want is None and FakePeople().get(pid or "") not in (
            ("supervisor", "A1", True),
            ("supervisor", None, True),
        ):
            want = Reason.UNKNOWN_SUPERVISOR
        if want is None:
            want = coordinates(raw["lon"], raw["lat"])[0]
        if want is None:
            at = datetime.fromtimestamp(raw["at"] / 1000, UTC)
            want = instant(at, NOW, TOL, RETAIN)[0]
        assert item.reason == want, (raw, item.message)
        assert item.prepared == (want is None)
        if want is None:  # passed: on its way to the writer to be located
            assert item.point is not None and item.point[0] == pid
            assert item.point[2:] == (raw["lon"], raw["lat"])
            assert item.ref == raw.get("id", f"{pid}@{item.point[1].at.isoformat()}")


@given(st.sampled_from(KINDS), st.lists(st.integers(), max_size=3) | st.text(max_size=5))
def test_prepare_refuses_what_is_not_an_object(kind: str, raw: Any) -> None:
    assume(not isinstance(raw, dict))
    (item,) = _intake().prepare(kind, raw, Principal(1, "gateway", "g", None, None, frozenset({"*"})))
    assert item.reason is Reason.MALFORMED and not item.prepared
