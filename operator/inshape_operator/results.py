"""What a finished update Job produced, read from its pod's termination message.

The Job writes one JSON line (inshape_jobs.result) to /dev/termination-log; with
terminationMessagePolicy FallbackToLogsOnError a crash leaves the log tail there instead. Any
garbage becomes a Failed result with a reason, never an exception: the operator must always be
able to record *something* for a finished Job.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast, get_args

from inshape_operator.conditions import parse_time

Outcome = Literal["Promoted", "Rejected", "Failed", "Skipped"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
JobState = Literal["Active", "Succeeded", "Failed"]

CONTAINER = "update"
MODEL_URI = re.compile(r"^models:/[^/\s]+/[0-9]+$")
MESSAGE_MAX = 1024


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    message: str = ""
    job: str | None = None
    finished_at: datetime | None = None
    run_id: str | None = None
    run_key: str | None = None
    metric: str | None = None
    candidate_score: float | None = None
    champion_score: float | None = None
    model_version: str | None = None
    model_uri: str | None = None
    records: Mapping[str, int] = field(default_factory=dict)
    offsets: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    truncated: bool = False


def failed(reason: str, message: str, **extra: Any) -> RunResult:
    return RunResult(outcome="Failed", reasons=(reason,), message=message[:MESSAGE_MAX], **extra)


def _json_object(text: str) -> dict[str, Any] | None:
    """The last line of text that is a JSON object with an outcome (the result is printed last)."""
    for raw in reversed(text.strip().splitlines()):
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "outcome" in value:
            return value
    return None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _offsets(value: Any) -> dict[str, tuple[int, int]]:
    if not isinstance(value, dict):
        return {}
    ranges: dict[str, tuple[int, int]] = {}
    for partition, span in value.items():
        if (
            isinstance(span, list)
            and len(span) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in span)
        ):
            ranges[str(partition)] = (span[0], span[1])
    return ranges


def parse_result(text: str | None, *, job: str | None = None) -> RunResult:
    """The result in a termination message (or log tail); garbage -> Failed with a reason."""
    if not text or not text.strip():
        return failed("NoResult", "the update Job left no result", job=job)
    document = _json_object(text)
    if document is None:
        last = text.strip().splitlines()[-1]
        return failed("UnreadableResult", f"no JSON result; last output: {last}", job=job)
    outcome = document.get("outcome")
    if outcome not in OUTCOMES:
        return failed("UnknownOutcome", f"outcome {outcome!r} is not one of {OUTCOMES}", job=job)
    reasons = document.get("reasons")
    message = document.get("message")
    result = RunResult(
        outcome=cast(Outcome, outcome),
        reasons=tuple(r for r in reasons if isinstance(r, str))
        if isinstance(reasons, list)
        else (),
        message=message[:MESSAGE_MAX] if isinstance(message, str) else "",
        job=job,
        run_id=_str(document.get("runId")),
        run_key=_str(document.get("runKey")),
        metric=_str(document.get("metric")),
        candidate_score=_number(document.get("candidateScore")),
        champion_score=_number(document.get("championScore")),
        model_version=_str(document.get("modelVersion")),
        model_uri=_str(document.get("modelUri")),
        records=_counts(document.get("records")),
        offsets=_offsets(document.get("offsets")),
        truncated=document.get("truncated") is True,
    )
    if result.outcome == "Promoted" and not (
        result.model_uri and MODEL_URI.match(result.model_uri)
    ):
        return failed(
            "PromotedWithoutModelUri",
            f"outcome Promoted but modelUri is {result.model_uri!r}",
            job=job,
            run_id=result.run_id,
        )
    return result


def job_state(job: Mapping[str, Any]) -> JobState:
    """Succeeded or Failed once the Job controller set the terminal condition, else Active."""
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return "Succeeded" if condition["type"] == "Complete" else "Failed"
    return "Active"


def _failure(job: Mapping[str, Any]) -> tuple[str, str]:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("reason") or "JobFailed"), str(condition.get("message") or "")
    return "JobFailed", ""


def _finished_at(job: Mapping[str, Any]) -> datetime | None:
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_time(status["completionTime"])
    for condition in status.get("conditions") or ():
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return None


def termination(pods: Sequence[Mapping[str, Any]]) -> tuple[int, str] | None:
    """(exit code, message) of the update container that terminated last, across the pods."""
    latest: tuple[str, int, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            if status.get("name") != CONTAINER:
                continue
            terminated = (status.get("state") or {}).get("terminated")
            if not terminated:
                continue
            key = str(terminated.get("finishedAt") or "")
            if latest is None or key >= latest[0]:
                code = terminated.get("exitCode")
                latest = (
                    key,
                    code if isinstance(code, int) else -1,
                    terminated.get("message") or "",
                )
    return None if latest is None else (latest[1], latest[2])


def read_result(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> RunResult | None:
    """The result of a finished Job (None while it runs), from the Job and its pods."""
    state = job_state(job)
    if state == "Active":
        return None
    name = (job.get("metadata") or {}).get("name")
    finished_at = _finished_at(job)
    ended = termination(pods)
    message = ended[1] if ended else ""
    if state == "Succeeded":
        result = parse_result(message, job=name)
    else:
        reason, detail = _failure(job)
        parsed = parse_result(message, job=name) if message else None
        if (
            parsed is not None
            and parsed.outcome == "Failed"
            and parsed.reasons[:1]
            not in (
                ("NoResult",),
                ("UnreadableResult",),
            )
        ):
            result = parsed  # the run reported its own failure (e.g. DrainFailed)
        else:
            tail = message.strip().splitlines()[-1] if message.strip() else ""
            text = "; ".join(t for t in (detail, tail) if t) or "the update Job failed"
            result = failed(reason, text, job=name)
    return replace(result, finished_at=finished_at)
