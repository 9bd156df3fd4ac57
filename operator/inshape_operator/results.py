"""Reading update Jobs and their pods: the Job's state, and the result a finished one left.

The Job writes its one-line result (inshape_api.result) to /dev/termination-log; with
terminationMessagePolicy FallbackToLogsOnError a crash leaves the log tail there instead. A Job
that failed without reporting its own failure becomes a Failed result carrying the Job
controller's reason (DeadlineExceeded, BackoffLimitExceeded, ...) and the last output line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from inshape_api.names import ANNOTATION_TRIGGER, LABEL_RUN, UPDATE_CONTAINER
from inshape_api.result import RunResult, decode, failed
from inshape_operator.conditions import parse_time
from inshape_operator.world import JobState, JobView

JSON = Mapping[str, Any]
_NOT_REPORTED = (("NoResult",), ("UnreadableResult",))


def _terminal_condition(job: JSON) -> JSON | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return dict(condition)
    return None


def job_state(job: JSON) -> JobState:
    """Succeeded or Failed once the Job controller set the terminal condition, else Active."""
    condition = _terminal_condition(job)
    if condition is None:
        return "Active"
    return "Succeeded" if condition["type"] == "Complete" else "Failed"


def sequence_of(job: JSON) -> int | None:
    value = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def job_view(job: JSON) -> JobView:
    meta = job.get("metadata") or {}
    trigger = (meta.get("annotations") or {}).get(ANNOTATION_TRIGGER)
    return JobView(
        name=str(meta.get("name")),
        sequence=sequence_of(job),
        state=job_state(job),
        created=parse_time(meta.get("creationTimestamp")),
        trigger=trigger if isinstance(trigger, str) else None,
    )


def finished_at(job: JSON) -> datetime | None:
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_time(status["completionTime"])
    condition = _terminal_condition(job)
    return parse_time(condition.get("lastTransitionTime")) if condition else None


def termination(pods: Sequence[JSON]) -> tuple[int, str] | None:
    """(exit code, message) of the update container that terminated last, across the pods."""
    latest: tuple[str, int, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") != UPDATE_CONTAINER or not terminated:
                continue
            key = str(terminated.get("finishedAt") or "")
            if latest is None or key >= latest[0]:
                code = terminated.get("exitCode")
                message = terminated.get("message") or ""
                latest = (key, code if isinstance(code, int) else -1, message)
    return None if latest is None else (latest[1], latest[2])


def read_result(job: JSON, pods: Sequence[JSON]) -> RunResult | None:
    """The result of a finished Job (None while it runs), from the Job and its pods."""
    state = job_state(job)
    if state == "Active":
        return None
    ended = termination(pods)
    message = ended[1] if ended else ""
    if state == "Succeeded":
        return decode(message)
    reported = decode(message) if message else None
    reported_itself = reported is not None and reported.outcome == "Failed"
    if reported is not None and reported_itself and reported.reasons[:1] not in _NOT_REPORTED:
        return reported  # the run reported its own failure (e.g. DrainFailed)
    condition = _terminal_condition(job) or {}
    tail = message.strip().splitlines()[-1] if message.strip() else ""
    detail = str(condition.get("message") or "")
    text = "; ".join(t for t in (detail, tail) if t) or "the update Job failed"
    return failed(str(condition.get("reason") or "JobFailed"), text)
