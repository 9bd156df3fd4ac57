"""The one function shaping status: champions, last run, conditions, events, idempotency."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from inshape_operator.conditions import find
from inshape_operator.results import RunResult, parse_result
from inshape_operator.status import (
    Observation,
    Problem,
    champions,
    desired_status,
    merge_patch,
)
from inshape_operator.triggers import Decision

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
V6 = {"version": "6", "uri": "models:/digits/6", "metric": 0.91}


def promoted(version: int, job: str, score: float = 0.93) -> RunResult:
    return parse_result(
        json.dumps(
            {
                "outcome": "Promoted",
                "reasons": ["Improved"],
                "message": "better",
                "runId": f"run-{version}",
                "metric": "f1_macro",
                "candidateScore": score,
                "championScore": 0.91,
                "modelVersion": str(version),
                "modelUri": f"models:/digits/{version}",
                "records": {"read": 100},
                "offsets": {"0": [0, 100]},
            }
        ),
        job=job,
    )


def observe(**kwargs: Any) -> Observation:
    values: dict[str, Any] = {
        "now": T0,
        "generation": 3,
        "has_target": True,
        "target_in_sync": True,
    }
    values.update(kwargs)
    return Observation(**values)


def condition(status: dict[str, Any], type_: str) -> tuple[str, str]:
    found = find(status["conditions"], type_)
    assert found is not None
    return found["status"], found["reason"]


def test_a_new_policy_has_no_champion() -> None:
    update = desired_status(
        None, observe(pending=5, decision=Decision(False, "BelowThreshold", "5 of 1000"))
    )
    status = update.status
    assert status["observedGeneration"] == 3 and status["pendingRecords"] == 5
    assert condition(status, "Ready") == ("False", "NoChampion")
    assert condition(status, "Progressing") == ("False", "BelowThreshold")
    assert condition(status, "Degraded") == ("False", "AsExpected")
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Progressing", "Degraded"]
    assert update.events == ()
    assert "champion" not in status and "lastRun" not in status


def test_a_promoted_run_moves_the_champion_once() -> None:
    current = {"champion": V6}
    obs = observe(
        finished=promoted(7, "digits-update-7"), finished_sequence=7, finished_trigger="Lag"
    )
    update = desired_status(current, obs)
    status = update.status
    assert status["champion"]["uri"] == "models:/digits/7"
    assert status["champion"]["metric"] == 0.93
    assert status["champion"]["metricName"] == "f1_macro"
    assert status["previousChampion"] == V6
    assert status["lastRun"]["job"] == "digits-update-7"
    assert status["lastRun"]["sequence"] == 7 and status["lastRun"]["trigger"] == "Lag"
    assert status["lastRun"]["offsets"] == {"0": {"from": 0, "to": 100}}
    assert [(e.type, e.reason) for e in update.events] == [("Normal", "Promoted")]
    assert "models:/digits/7" in update.events[0].message
    assert champions(current, obs) == (status["champion"], status["previousChampion"])

    # The same finished Job on the next pass (until its TTL) changes nothing.
    again = desired_status(
        status, observe(now=T0 + timedelta(minutes=1), finished=promoted(7, "digits-update-7"))
    )
    assert again.events == ()
    assert again.status["previousChampion"] == V6
    assert merge_patch(status, again.status) == {}


def test_a_replayed_promotion_of_the_champion_keeps_previous() -> None:
    current = {
        "champion": {"version": "7", "uri": "models:/digits/7"},
        "previousChampion": V6,
        "lastRun": {"job": "digits-update-7"},
    }
    update = desired_status(current, observe(finished=promoted(7, "digits-update-8")))
    assert update.status["previousChampion"] == V6
    assert update.status["lastRun"]["job"] == "digits-update-8"


def test_a_rejected_run_keeps_the_champion() -> None:
    rejected = parse_result(
        '{"outcome":"Rejected","reasons":["BelowFloor"],"message":"0.7"}', job="digits-update-8"
    )
    update = desired_status({"champion": V6}, observe(finished=rejected))
    assert update.status["champion"] == V6 and "previousChampion" not in update.status
    assert update.status["lastRun"]["outcome"] == "Rejected"
    assert [(e.type, e.reason) for e in update.events] == [("Normal", "Rejected")]
    assert "BelowFloor" in update.events[0].message


def test_a_failed_run_degrades_until_a_run_succeeds() -> None:
    failed = parse_result("Traceback ...", job="digits-update-9")
    status = desired_status({"champion": V6}, observe(finished=failed)).status
    assert condition(status, "Degraded") == ("True", "RunFailed")
    assert condition(status, "Ready") == ("True", "ChampionServing")  # still serving V6
    still = desired_status(status, observe(now=T0 + timedelta(minutes=3))).status
    assert condition(still, "Degraded") == ("True", "RunFailed")
    skipped = parse_result(
        '{"outcome":"Skipped","reasons":["NoNewRecords"]}', job="digits-update-10"
    )
    healed = desired_status(still, observe(finished=skipped)).status
    assert condition(healed, "Degraded") == ("False", "AsExpected")


def test_failed_event_is_a_warning() -> None:
    update = desired_status(None, observe(finished=parse_result(None, job="j")))
    assert [(e.type, e.reason) for e in update.events] == [("Warning", "RunFailed")]


def test_invalid_spec() -> None:
    status = desired_status(
        {"champion": V6}, observe(spec_error="spec.model.name: is required", active_job=None)
    ).status
    assert condition(status, "Ready") == ("False", "InvalidSpec")
    assert condition(status, "Progressing") == ("False", "InvalidSpec")
    assert condition(status, "Degraded") == ("True", "InvalidSpec")
    assert find(status["conditions"], "Degraded")["message"] == "spec.model.name: is required"  # type: ignore[index]


def test_kafka_and_rollout_problems() -> None:
    kafka = desired_status(None, observe(kafka_problem=Problem("KafkaNotReady", "rolling"))).status
    assert condition(kafka, "Degraded") == ("True", "KafkaNotReady")
    assert "pendingRecords" not in kafka

    problem = Problem("RolloutFailed", "deployments.apps is forbidden")
    first = desired_status({"champion": V6}, observe(rollout_problem=problem, target_in_sync=False))
    assert condition(first.status, "Ready") == ("False", "RolloutFailed")
    assert condition(first.status, "Degraded") == ("True", "RolloutFailed")
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "RolloutFailed")]
    second = desired_status(first.status, observe(rollout_problem=problem, target_in_sync=False))
    assert second.events == ()  # the Warning is posted once, not every pass


def test_ready_follows_the_target() -> None:
    pending = desired_status({"champion": V6}, observe(target_in_sync=False)).status
    assert condition(pending, "Ready") == ("False", "RolloutPending")
    untargeted = desired_status({"champion": V6}, observe(has_target=False)).status
    assert condition(untargeted, "Ready") == ("True", "ChampionTracked")


def test_progressing() -> None:
    running = desired_status(None, observe(active_job="digits-update-4", active_trigger="Schedule"))
    assert condition(running.status, "Progressing") == ("True", "JobRunning")
    starting = desired_status(None, observe(decision=Decision(True, "Lag", "5000 pending", "Lag")))
    assert condition(starting.status, "Progressing") == ("True", "JobStarting")
    suspended = desired_status(None, observe(suspended=True))
    assert condition(suspended.status, "Progressing") == ("False", "Suspended")


def test_registry_champion_fills_a_lost_status() -> None:
    status = desired_status(None, observe(registry_champion=V6)).status
    assert status["champion"] == V6
    kept = desired_status(
        {"champion": {"version": "7", "uri": "models:/digits/7"}}, observe(registry_champion=V6)
    ).status
    assert kept["champion"]["version"] == "7"


def test_last_schedule_time_is_recorded_and_kept() -> None:
    slot = T0 - timedelta(minutes=1)
    first = desired_status(
        None, observe(decision=Decision(True, "Schedule", "", "Schedule", schedule_time=slot))
    ).status
    assert first["lastScheduleTime"] == "2025-03-01T11:59:00Z"
    kept = desired_status(first, observe()).status
    assert kept["lastScheduleTime"] == "2025-03-01T11:59:00Z"


def test_merge_patch() -> None:
    current = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True, "same": [1]}
    desired = {"a": 1, "b": {"c": 2, "d": 4, "e": 5}, "same": [1], "new": None}
    assert merge_patch(current, desired) == {"b": {"d": 4, "e": 5}, "gone": None, "new": None}
    assert merge_patch(None, {"a": 1}) == {"a": 1}
    assert merge_patch(desired, desired) == {}


def test_pending_dropped_when_unknown_becomes_null_in_the_patch() -> None:
    before = desired_status(None, observe(pending=10)).status
    after = desired_status(before, observe(pending=None)).status
    assert merge_patch(before, after) == {"pendingRecords": None}
