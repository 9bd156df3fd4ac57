"""Reading update Jobs: their state, and the result a finished one left (good results,
garbage, and Job-level failures)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from inshape_api.result import RunResult
from inshape_operator.results import (
    finished_at,
    job_state,
    job_view,
    read_result,
    sequence_of,
    termination,
)
from inshape_operator.world import JobView
from tests.samples import PROMOTED


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


def succeeded(message: str) -> RunResult | None:
    return read_result(job("Complete"), [pod(message)])


def test_a_promoted_result_is_read_in_full() -> None:
    result = succeeded(PROMOTED.encode())
    assert result is not None
    assert result == PROMOTED
    assert result.outcome == "Promoted"
    assert result.reasons == ("Improved",)
    assert result.modelUri == "models:/digits-classifier/7"
    assert result.modelVersion == "7"
    assert (result.candidateScore, result.championScore) == (0.93, 0.91)
    assert result.records.holdout == 398
    assert result.offsets == {"0": (100, 1100), "1": (0, 1000)}
    assert result.runId == "abc123"


def test_the_jobs_own_compacted_message_is_readable() -> None:
    big = replace(PROMOTED, rejectedByReason={f"r{i}": i for i in range(2000)})
    result = succeeded(big.compact())
    assert result is not None
    assert result.outcome == "Promoted" and result.truncated
    assert result.modelUri == "models:/digits-classifier/7"


def test_result_is_found_after_log_lines() -> None:
    rejected = RunResult(outcome="Rejected", reasons=("BelowFloor",), modelVersion="8")
    text = "Snapshot of t: 10 new records\nDecision: Rejected: worse\n" + rejected.encode()
    result = succeeded(text)
    assert result is not None
    assert result.outcome == "Rejected" and result.modelVersion == "8"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "NoResult"),
        ("   ", "NoResult"),
        ("Traceback (most recent call last):\nKeyError: 'x'", "UnreadableResult"),
        ('{"outcome": "Promoted"', "UnreadableResult"),
        ("[1, 2]", "UnreadableResult"),
        ('{"outcome": "Won"}', "UnreadableResult"),
        ('{"outcome": "Promoted", "modelUri": null}', "PromotedWithoutModelUri"),
        ('{"outcome": "Promoted", "modelUri": "s3://bucket/model"}', "PromotedWithoutModelUri"),
    ],
)
def test_garbage_becomes_failed_with_a_reason(text: str, reason: str) -> None:
    result = succeeded(text)
    assert result is not None
    assert result.outcome == "Failed"
    assert result.reasons == (reason,)


def test_wrong_types_inside_a_result_make_it_unreadable() -> None:
    result = succeeded(
        json.dumps({"outcome": "Skipped", "records": {"new": 0, "bad": "x", "read": "many"}})
    )
    assert result is not None
    assert (result.outcome, result.reasons) == ("Failed", ("UnreadableResult",))
    assert "$.records.read" in result.message


def test_job_state() -> None:
    assert job_state(job(None)) == "Active"
    assert job_state({}) == "Active"
    assert job_state(job("Complete")) == "Succeeded"
    assert job_state(job("Failed")) == "Failed"
    suspended = {"status": {"conditions": [{"type": "Failed", "status": "False"}]}}
    assert job_state(suspended) == "Active"


def test_an_active_job_has_no_result() -> None:
    assert read_result(job(None), [pod(PROMOTED.encode())]) is None


def test_a_succeeded_job_gives_its_result_and_time() -> None:
    finished = job("Complete", completionTime="2025-03-01T12:05:01Z")
    result = read_result(finished, [pod(PROMOTED.encode())])
    assert result is not None and result.outcome == "Promoted"
    assert finished_at(finished) == datetime(2025, 3, 1, 12, 5, 1, tzinfo=UTC)


def test_a_failed_job_keeps_the_runs_own_failure() -> None:
    drain = RunResult(outcome="Failed", reasons=("DrainFailed",), message="no broker").encode()
    failed_job = job("Failed", reason="BackoffLimitExceeded")
    result = read_result(
        failed_job,
        [pod("older", 1, "2025-03-01T12:00:00Z"), pod(drain, 1, "2025-03-01T12:04:00Z")],
    )
    assert result is not None
    assert result.reasons == ("DrainFailed",) and result.message == "no broker"
    # No completionTime on a failed Job: the terminal condition's time.
    assert finished_at(failed_job) == datetime(2025, 3, 1, 12, 5, tzinfo=UTC)


def test_a_crashed_job_reports_the_job_reason_and_log_tail() -> None:
    result = read_result(
        job("Failed", reason="PodFailurePolicy", message="exit code 2"),
        [pod("INFO start\nInvalid policy: spec.model.name: is required", 2)],
    )
    assert result is not None and result.outcome == "Failed"
    assert result.reasons == ("PodFailurePolicy",)
    assert "exit code 2" in result.message
    assert "Invalid policy: spec.model.name" in result.message


def test_a_failed_job_whose_last_line_is_not_a_failure_reports_the_job_reason() -> None:
    """A run that printed Promoted and then died (e.g. OOM while committing) is no Promoted."""
    result = read_result(job("Failed", reason="BackoffLimitExceeded"), [pod(PROMOTED.encode(), 1)])
    assert result is not None
    assert (result.outcome, result.reasons) == ("Failed", ("BackoffLimitExceeded",))


def test_a_deadline_without_pods_is_still_a_failure() -> None:
    result = read_result(job("Failed", reason="DeadlineExceeded"), [])
    assert result is not None and result.reasons == ("DeadlineExceeded",)
    assert result.message == "the update Job failed"


def test_a_failure_without_reason_is_job_failed() -> None:
    result = read_result(job("Failed"), [])
    assert result is not None and result.reasons == ("JobFailed",)


def test_a_succeeded_job_without_message_is_failed() -> None:
    result = read_result(job("Complete"), [pod("")])
    assert result is not None and result.reasons == ("NoResult",)
    result = read_result(job("Complete"), [])
    assert result is not None and result.reasons == ("NoResult",)


def test_termination_picks_the_last_attempt() -> None:
    pods = [pod("b", 1, "2025-03-01T12:04:00Z"), pod("a", 0, "2025-03-01T12:01:00Z")]
    assert termination(pods) == (1, "b")
    assert termination([{"status": {}}]) is None
    assert termination([]) is None


def test_finished_at_of_a_running_job_is_none() -> None:
    assert finished_at(job(None)) is None
    assert finished_at({}) is None


def test_sequence_of() -> None:
    assert sequence_of({"metadata": {"labels": {"inshape.dev/run": "3"}}}) == 3
    assert sequence_of({"metadata": {"labels": {"inshape.dev/run": "junk"}}}) is None
    assert sequence_of({"metadata": {}}) is None
    assert sequence_of({}) is None


def test_job_view() -> None:
    manifest = job("Failed", reason="DeadlineExceeded")
    manifest["metadata"].update(
        labels={"inshape.dev/run": "7"},
        annotations={"inshape.dev/trigger": "Lag"},
        creationTimestamp="2025-03-01T12:00:00Z",
    )
    assert job_view(manifest) == JobView(
        name="digits-update-7",
        sequence=7,
        state="Failed",
        created=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        trigger="Lag",
    )
    bare = job_view({"metadata": {"name": "x"}})
    assert (bare.sequence, bare.state, bare.created, bare.trigger) == (None, "Active", None, None)
