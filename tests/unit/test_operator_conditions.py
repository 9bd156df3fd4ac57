"""Conditions after the Kubernetes conventions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inshape_api.status import MESSAGE_MAX, Condition, ConditionStatus, PolicyStatus
from inshape_api.wire import WireError, from_wire, rfc3339, to_wire
from inshape_operator.conditions import parse_time, set_condition

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # what a new condition carries: set_condition decides


def cond(
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    generation: int | None = None,
) -> Condition:
    return Condition(type_, status, reason, message, LONG_AGO, generation)


def test_a_new_condition_is_appended_with_now() -> None:
    result = set_condition((), cond("Ready", "False", "NoChampion", "none yet", 1), T0)
    assert result == (Condition("Ready", "False", "NoChampion", "none yet", T0, 1),)
    assert [to_wire(c) for c in result] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "NoChampion",
            "message": "none yet",
            "lastTransitionTime": "2025-03-01T12:00:00Z",
            "observedGeneration": 1,
        }
    ]


def test_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition((), cond("Ready", "False", "NoChampion", "", 1), T0)
    same = set_condition(first, cond("Ready", "False", "RolloutPending", "wait", 2), T1)
    assert same[0].lastTransitionTime == T0
    assert (same[0].reason, same[0].message, same[0].observedGeneration) == (
        "RolloutPending",
        "wait",
        2,
    )
    flipped = set_condition(same, cond("Ready", "True", "ChampionServing", "", 2), T1)
    assert flipped[0].lastTransitionTime == T1
    assert to_wire(flipped[0])["lastTransitionTime"] == "2025-03-01T12:05:00Z"


def test_other_conditions_and_order_are_kept_and_input_untouched() -> None:
    start = set_condition((), cond("Ready", "True", "A"), T0)
    start = set_condition(start, cond("Degraded", "False", "AsExpected"), T0)
    snapshot = tuple(start)
    result = set_condition(start, cond("Ready", "False", "B"), T1)
    assert [c.type for c in result] == ["Ready", "Degraded"]
    assert result[1] == snapshot[1]
    assert start == snapshot
    assert "observedGeneration" not in to_wire(result[0])


def test_a_long_message_is_cut_to_the_api_limit() -> None:
    result = set_condition((), cond("Degraded", "True", "RunFailed", "x" * (MESSAGE_MAX + 5)), T0)
    assert result[0].message == "x" * MESSAGE_MAX


def test_duplicates_collapse_to_one() -> None:
    dup = (cond("Ready", "True", "A"), cond("Ready", "False", "B"))
    result = set_condition(dup, cond("Ready", "True", "Fine"), T0)
    assert len(result) == 1


@pytest.mark.parametrize("reason", ["", "two words", "lower-case-dash", "1Start", "Ends "])
def test_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        cond("Ready", "True", reason)


def test_status_must_be_true_false_unknown() -> None:
    stored = {
        "type": "Ready",
        "status": "Yes",
        "reason": "Fine",
        "message": "",
        "lastTransitionTime": "2025-03-01T12:00:00Z",
    }
    with pytest.raises(WireError, match=r"\$\.status"):
        from_wire(stored, Condition)


def test_lookup_and_times() -> None:
    status = PolicyStatus(conditions=set_condition((), cond("Ready", "True", "Fine"), T0))
    ready = status.condition("Ready")
    assert ready is not None and ready.status == "True"
    assert status.condition("Degraded") is None
    assert PolicyStatus().condition("Ready") is None
    assert rfc3339(T0 + timedelta(microseconds=5)) == "2025-03-01T12:00:00Z"
    assert parse_time("2025-03-01T12:00:00Z") == T0
    assert parse_time("2025-03-01T12:00:00") == T0  # no zone: UTC
    assert parse_time("2025-03-01T14:00:00+02:00") == T0
    assert parse_time("garbage") is None and parse_time(None) is None and parse_time("") is None
    assert parse_time(5) is None
    with pytest.raises(ValueError):
        rfc3339(datetime(2025, 1, 1))
