"""The policy's status, computed in one place from what the reconcile observed.

`desired_status(current, observation)` is pure: given the status as stored and this pass's
observations (the active Job, the newest finished Job's result, the lag, errors met on the
way, the trigger decision) it returns the whole status to store plus the Events to post. The
handler writes `merge_patch(current, desired)` only when it is not empty.

Recording is idempotent: a finished Job is recorded once (its name is kept in
`lastRun.job`), so seeing the same Job on every pass until its TTL removes it changes nothing.
A Promoted run moves `champion` and keeps the one before in `previousChampion` (one-step
rollback: set the target back to `previousChampion.uri`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from inshape_operator.conditions import (
    DEGRADED,
    PROGRESSING,
    READY,
    Condition,
    find,
    rfc3339,
    set_condition,
)
from inshape_operator.results import RunResult
from inshape_operator.triggers import Decision

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Problem:
    """Something that keeps the policy from working right now: a CamelCase reason and a message."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    """What one reconcile pass saw; the handler fills what it could observe."""

    now: datetime
    generation: int
    suspended: bool = False
    spec_error: str | None = None  # the spec can never work as written
    active_job: str | None = None  # name of the running update Job
    active_trigger: str | None = None
    finished: RunResult | None = None  # result of the newest finished Job, if any
    finished_sequence: int | None = None
    finished_trigger: str | None = None
    pending: int | None = None  # the consumer group's lag; None when unknown
    kafka_problem: Problem | None = None  # Strimzi not ready, lag unreadable, ...
    rollout_problem: Problem | None = None  # the target could not be patched
    has_target: bool = False
    target_in_sync: bool = False  # the target's env var holds the champion's URI
    decision: Decision | None = None
    # The champion according to MLflow, used when the status has none (e.g. status lost).
    registry_champion: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StatusUpdate:
    status: dict[str, Any]
    events: tuple[Event, ...] = field(default_factory=tuple)


def _champion_from(result: RunResult, now: datetime) -> dict[str, Any]:
    champion: dict[str, Any] = {"version": result.model_version, "uri": result.model_uri}
    if champion["version"] is None and result.model_uri:
        champion["version"] = result.model_uri.rsplit("/", 1)[-1]
    if result.candidate_score is not None:
        champion["metric"] = result.candidate_score
    if result.metric:
        champion["metricName"] = result.metric
    if result.run_id:
        champion["runId"] = result.run_id
    if result.job:
        champion["job"] = result.job
    champion["promotedAt"] = rfc3339(result.finished_at or now)
    return champion


def is_new(current: Mapping[str, Any], result: RunResult | None) -> bool:
    """Whether `result` is a run the status has not recorded yet."""
    if result is None:
        return False
    recorded = (current.get("lastRun") or {}).get("job")
    return result.job is None or result.job != recorded


def champions(
    current: Mapping[str, Any], observation: Observation
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(champion, previousChampion) after this pass: what the target should serve.

    The handler calls this before patching the target, then passes the outcome of the patch
    to desired_status, which calls it again and gets the same answer.
    """
    champion = dict(current["champion"]) if current.get("champion") else None
    previous = dict(current["previousChampion"]) if current.get("previousChampion") else None
    result = observation.finished
    if result is not None and result.outcome == "Promoted" and is_new(current, result):
        promoted = _champion_from(result, observation.now)
        if champion is None or champion.get("uri") != promoted["uri"]:
            previous, champion = champion, promoted
    if champion is None and observation.registry_champion:
        champion = dict(observation.registry_champion)
    return champion, previous


def _last_run(observation: Observation, result: RunResult) -> dict[str, Any]:
    run: dict[str, Any] = {"outcome": result.outcome}
    if result.job:
        run["job"] = result.job
    if observation.finished_sequence is not None:
        run["sequence"] = observation.finished_sequence
    if observation.finished_trigger:
        run["trigger"] = observation.finished_trigger
    if result.run_id:
        run["runId"] = result.run_id
    if result.reasons:
        run["reasons"] = list(result.reasons)
    if result.message:
        run["message"] = result.message
    if result.records:
        run["records"] = dict(result.records)
    if result.offsets:
        run["offsets"] = {p: {"from": a, "to": b} for p, (a, b) in result.offsets.items()}
    if result.candidate_score is not None:
        run["candidateMetric"] = result.candidate_score
    if result.champion_score is not None:
        run["championMetric"] = result.champion_score
    if result.model_version is not None:
        run["modelVersion"] = result.model_version
    run["finishedAt"] = rfc3339(result.finished_at or observation.now)
    return run


def _event(result: RunResult, champion: Mapping[str, Any] | None) -> Event:
    why = f" ({', '.join(result.reasons)})" if result.reasons else ""
    detail = f": {result.message}" if result.message else ""
    job = result.job or "update Job"
    if result.outcome == "Promoted":
        uri = (champion or {}).get("uri", result.model_uri)
        return Event("Normal", "Promoted", f"{job} promoted {uri}{detail}")
    if result.outcome == "Failed":
        return Event("Warning", "RunFailed", f"{job} failed{why}{detail}")
    return Event("Normal", result.outcome, f"{job}: {result.outcome}{why}{detail}")


def _ready(obs: Observation, champion: Mapping[str, Any] | None) -> Condition:
    gen = obs.generation
    if obs.spec_error:
        return Condition(READY, "False", "InvalidSpec", obs.spec_error, gen)
    if champion is None:
        return Condition(READY, "False", "NoChampion", "no model has been promoted yet", gen)
    what = f"champion version {champion.get('version')} ({champion.get('uri')})"
    if not obs.has_target:
        return Condition(READY, "True", "ChampionTracked", f"{what}; no target to roll out", gen)
    if obs.rollout_problem is not None:
        return Condition(
            READY, "False", obs.rollout_problem.reason, obs.rollout_problem.message, gen
        )
    if not obs.target_in_sync:
        return Condition(READY, "False", "RolloutPending", f"{what} not yet on the target", gen)
    return Condition(READY, "True", "ChampionServing", f"{what} is served", gen)


def _progressing(obs: Observation) -> Condition:
    gen = obs.generation
    if obs.active_job:
        trigger = f" (trigger {obs.active_trigger})" if obs.active_trigger else ""
        return Condition(PROGRESSING, "True", "JobRunning", f"Job {obs.active_job}{trigger}", gen)
    if obs.spec_error:
        return Condition(PROGRESSING, "False", "InvalidSpec", "no runs start", gen)
    if obs.suspended:
        return Condition(PROGRESSING, "False", "Suspended", "spec.suspend is true", gen)
    if obs.decision is not None:
        status: Literal["True", "False"] = "True" if obs.decision.start else "False"
        reason = "JobStarting" if obs.decision.start else obs.decision.reason
        return Condition(PROGRESSING, status, reason, obs.decision.message, gen)
    return Condition(PROGRESSING, "False", "Idle", "no update Job is running", gen)


def _degraded(obs: Observation, last_run: Mapping[str, Any] | None) -> Condition:
    gen = obs.generation
    if obs.spec_error:
        return Condition(DEGRADED, "True", "InvalidSpec", obs.spec_error, gen)
    for problem in (obs.kafka_problem, obs.rollout_problem):
        if problem is not None:
            return Condition(DEGRADED, "True", problem.reason, problem.message, gen)
    if last_run and last_run.get("outcome") == "Failed":
        message = f"{last_run.get('job', 'the last run')} failed"
        if last_run.get("message"):
            message += f": {last_run['message']}"
        return Condition(DEGRADED, "True", "RunFailed", message, gen)
    return Condition(DEGRADED, "False", "AsExpected", "", gen)


def desired_status(current: Mapping[str, Any] | None, observation: Observation) -> StatusUpdate:
    """The whole status after this pass, and the Events it calls for."""
    current = dict(current or {})
    obs = observation
    champion, previous = champions(current, obs)
    status: dict[str, Any] = {"observedGeneration": obs.generation}
    if champion is not None:
        status["champion"] = champion
    if previous is not None:
        status["previousChampion"] = previous
    if obs.pending is not None:
        status["pendingRecords"] = obs.pending

    events: list[Event] = []
    last_run = current.get("lastRun")
    if obs.finished is not None and is_new(current, obs.finished):
        last_run = _last_run(obs, obs.finished)
        events.append(_event(obs.finished, champion))
    if last_run:
        status["lastRun"] = last_run

    schedule = obs.decision.schedule_time if obs.decision else None
    if schedule is not None:
        status["lastScheduleTime"] = rfc3339(schedule)
    elif current.get("lastScheduleTime"):
        status["lastScheduleTime"] = current["lastScheduleTime"]

    conditions = current.get("conditions") or []
    for condition in (_ready(obs, champion), _progressing(obs), _degraded(obs, last_run)):
        conditions = set_condition(conditions, condition, obs.now)
    status["conditions"] = conditions
    problem = obs.rollout_problem
    before = find(current.get("conditions"), READY) or {}
    if problem is not None and before.get("reason") != problem.reason:
        events.append(Event("Warning", problem.reason, problem.message))  # once, not every pass
    return StatusUpdate(status=status, events=tuple(events))


def merge_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `current` into `desired`; {} when equal."""
    current = current or {}
    patch: dict[str, Any] = {}
    for key in current:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif old != value or key not in current:
            patch[key] = value
    return patch
