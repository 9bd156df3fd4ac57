"""Reading a finished Job's result: good results, garbage, and Job-level failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from inshape_jobs.result import compact
from inshape_operator.results import job_state, parse_result, read_result, termination

PROMOTED = {
    "outcome": "Promoted",
    "reasons": ["Improved"],
    "message": "f1_macro 0.93 beats 0.91 by 0.02",
    "runId": "abc123",
    "runKey": "uid-1",
    "metric": "f1_macro",
    "candidateScore": 0.93,
    "championScore": 0.91,
    "modelVersion": "7",
    "modelUri": "models:/digits-classifier/7",
    "records": {"read": 2000, "valid": 1990, "train": 1592, "holdout": 398, "rejected": 10},
    "offsets": {"0": [100, 1100], "1": [0, 1000]},
    "stages": {"drain": 1.2},
}


def job(condition: str | None, name: str = "digits-update-7", **status: Any) -> dict[str, Any]:
    conditions = []
    if condition:
        conditions.append(
            {
                "type": condition,
                "status": "True",
                "reason": status.pop("reason", None),
                "message": status.pop("message", None),
                "lastTransitionTime": "2025-03-01T12:05:00Z",
            }
        )
    return {"metadata": {"name": name}, "status": {"conditions": conditions, **status}}


def pod(message: str, exit_code: int = 0, finished: str = "2025-03-01T12:04:59Z") -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "message": message, "finishedAt": finished}
    return {
        "status": {
            "containerStatuses": [
                {"name": "update", "state": {"terminated": terminated}},
                {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "message": "x"}}},
            ]
        }
    }


def test_a_promoted_result_is_read_in_full() -> None:
    result = parse_result(json.dumps(PROMOTED), job="digits-update-7")
    assert result.outcome == "Promoted"
    assert result.reasons == ("Improved",)
    assert result.model_uri == "models:/digits-classifier/7"
    assert result.model_version == "7"
    assert (result.candidate_score, result.champion_score) == (0.93, 0.91)
    assert result.records["holdout"] == 398
    assert result.offsets == {"0": (100, 1100), "1": (0, 1000)}
    assert result.run_id == "abc123" and result.job == "digits-update-7"


def test_the_jobs_own_compacted_message_is_readable() -> None:
    big = {**PROMOTED, "rejectedByReason": {f"r{i}": i for i in range(2000)}}
    result = parse_result(compact(big))
    assert result.outcome == "Promoted" and result.truncated
    assert result.model_uri == "models:/digits-classifier/7"


def test_result_is_found_after_log_lines() -> None:
    text = "Snapshot of t: 10 new records\nDecision: Rejected: worse\n" + json.dumps(
        {"outcome": "Rejected", "reasons": ["BelowFloor"], "modelVersion": 8}
    )
    result = parse_result(text)
    assert result.outcome == "Rejected" and result.model_version == "8"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "NoResult"),
        ("   ", "NoResult"),
        ("Traceback (most recent call last):\nKeyError: 'x'", "UnreadableResult"),
        ('{"outcome": "Promoted"', "UnreadableResult"),
        ("[1, 2]", "UnreadableResult"),
        ('{"outcome": "Won"}', "UnknownOutcome"),
        ('{"outcome": "Promoted", "modelUri": null}', "PromotedWithoutModelUri"),
        ('{"outcome": "Promoted", "modelUri": "s3://bucket/model"}', "PromotedWithoutModelUri"),
    ],
)
def test_garbage_becomes_failed_with_a_reason(text: str | None, reason: str) -> None:
    result = parse_result(text)
    assert result.outcome == "Failed"
    assert result.reasons == (reason,)


def test_wrong_types_inside_a_result_are_dropped() -> None:
    result = parse_result(
        json.dumps(
            {
                "outcome": "Skipped",
                "reasons": "NoNewRecords",
                "message": 5,
                "candidateScore": "high",
                "records": {"new": 0, "bad": "x", "flag": True},
                "offsets": {"0": [1], "1": [1, 2], "2": "x"},
            }
        )
    )
    assert result.outcome == "Skipped"
    assert (result.reasons, result.message, result.candidate_score) == ((), "", None)
    assert result.records == {"new": 0}
    assert result.offsets == {"1": (1, 2)}


def test_job_state() -> None:
    assert job_state(job(None)) == "Active"
    assert job_state({}) == "Active"
    assert job_state(job("Complete")) == "Succeeded"
    assert job_state(job("Failed")) == "Failed"
    suspended = {"status": {"conditions": [{"type": "Failed", "status": "False"}]}}
    assert job_state(suspended) == "Active"


def test_an_active_job_has_no_result() -> None:
    assert read_result(job(None), [pod(json.dumps(PROMOTED))]) is None


def test_a_succeeded_job_gives_its_result_and_time() -> None:
    result = read_result(
        job("Complete", completionTime="2025-03-01T12:05:01Z"), [pod(json.dumps(PROMOTED))]
    )
    assert result is not None
    assert result.outcome == "Promoted" and result.job == "digits-update-7"
    assert result.finished_at == datetime(2025, 3, 1, 12, 5, 1, tzinfo=UTC)


def test_a_failed_job_keeps_the_runs_own_failure() -> None:
    drain = json.dumps({"outcome": "Failed", "reasons": ["DrainFailed"], "message": "no broker"})
    result = read_result(
        job("Failed", reason="BackoffLimitExceeded"),
        [pod("older", 1, "2025-03-01T12:00:00Z"), pod(drain, 1, "2025-03-01T12:04:00Z")],
    )
    assert result is not None
    assert result.reasons == ("DrainFailed",) and result.message == "no broker"
    assert result.finished_at == datetime(2025, 3, 1, 12, 5, tzinfo=UTC)


def test_a_crashed_job_reports_the_job_reason_and_log_tail() -> None:
    result = read_result(
        job("Failed", reason="PodFailurePolicy", message="exit code 2"),
        [pod("INFO start\nInvalid policy: spec.model.name: is required", 2)],
    )
    assert result is not None and result.outcome == "Failed"
    assert result.reasons == ("PodFailurePolicy",)
    assert "exit code 2" in result.message
    assert "Invalid policy: spec.model.name" in result.message


def test_a_deadline_without_pods_is_still_a_failure() -> None:
    result = read_result(job("Failed", reason="DeadlineExceeded"), [])
    assert result is not None and result.reasons == ("DeadlineExceeded",)


def test_a_succeeded_job_without_message_is_failed() -> None:
    result = read_result(job("Complete"), [pod("")])
    assert result is not None and result.reasons == ("NoResult",)


def test_termination_picks_the_last_attempt() -> None:
    pods = [pod("b", 1, "2025-03-01T12:04:00Z"), pod("a", 0, "2025-03-01T12:01:00Z")]
    assert termination(pods) == (1, "b")
    assert termination([{"status": {}}]) is None
