"""Conditions after the Kubernetes conventions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inshape_operator.conditions import (
    Condition,
    find,
    is_true,
    parse_time,
    rfc3339,
    set_condition,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_a_new_condition_is_appended_with_now() -> None:
    result = set_condition([], Condition("Ready", "False", "NoChampion", "none yet", 1), T0)
    assert result == [
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
    first = set_condition([], Condition("Ready", "False", "NoChampion", "", 1), T0)
    same = set_condition(first, Condition("Ready", "False", "RolloutPending", "wait", 2), T1)
    assert same[0]["lastTransitionTime"] == "2025-03-01T12:00:00Z"
    assert (same[0]["reason"], same[0]["message"], same[0]["observedGeneration"]) == (
        "RolloutPending",
        "wait",
        2,
    )
    flipped = set_condition(same, Condition("Ready", "True", "ChampionServing", "", 2), T1)
    assert flipped[0]["lastTransitionTime"] == "2025-03-01T12:05:00Z"


def test_other_conditions_and_order_are_kept_and_input_untouched() -> None:
    start = set_condition([], Condition("Ready", "True", "A"), T0)
    start = set_condition(start, Condition("Degraded", "False", "AsExpected"), T0)
    snapshot = [dict(c) for c in start]
    result = set_condition(start, Condition("Ready", "False", "B"), T1)
    assert [c["type"] for c in result] == ["Ready", "Degraded"]
    assert result[1] == snapshot[1]
    assert start == snapshot
    assert "observedGeneration" not in result[0]


def test_duplicates_collapse_to_one() -> None:
    dup = [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]
    result = set_condition(dup, Condition("Ready", "True", "Fine"), T0)
    assert len(result) == 1


@pytest.mark.parametrize(
    "reason", ["", "two words", "lower-case-dash", "1Start", "Ends_"[:-1] + " "]
)
def test_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        Condition("Ready", "True", reason)


def test_status_must_be_true_false_unknown() -> None:
    with pytest.raises(ValueError, match="status"):
        Condition("Ready", "Yes", "Fine")  # type: ignore[arg-type]


def test_lookup_and_times() -> None:
    conditions = set_condition([], Condition("Ready", "True", "Fine"), T0)
    assert is_true(conditions, "Ready") and not is_true(conditions, "Degraded")
    assert find(None, "Ready") is None
    assert rfc3339(T0 + timedelta(microseconds=5)) == "2025-03-01T12:00:00Z"
    assert parse_time("2025-03-01T12:00:00Z") == T0
    assert parse_time("garbage") is None and parse_time(None) is None
    with pytest.raises(ValueError):
        rfc3339(datetime(2025, 1, 1))
