"""The policy's status after a pass, computed in one place (pure).

`desired_status(world, progress)` takes what was observed and what the plan decided (the run
starting or running, the champions, how the rollout stands) and returns the whole status to
store plus the Events it calls for. The reconcile writes the JSON merge patch from the stored
status to this one, and only when it is not empty.

A finished Job is recorded once: `observe` only reports a Job that `lastRun.job` does not name
yet. A Promoted run moves `champion` and keeps the one before in `previousChampion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from inshape_api.kafka_connection import KafkaConnection
from inshape_api.result import RunResult
from inshape_api.status import (
    Champion,
    Condition,
    ConditionStatus,
    KafkaStatus,
    LastRun,
    OffsetRange,
)
from inshape_api.status import PolicyStatus as Status
from inshape_operator.conditions import DEGRADED, PROGRESSING, READY, set_condition
from inshape_operator.triggers import Decision
from inshape_operator.world import CREDENTIAL_PROBLEMS, FinishedRun, Problem, World

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Rollout:
    """Where the target stands after this pass."""

    has_target: bool = False
    in_sync: bool = False  # the target's env var holds the champion's URI
    problem: Problem | None = None


@dataclass(frozen=True)
class Progress:
    """What the plan decided, as far as status reports it."""

    spec_error: str | None
    decision: Decision | None
    running_job: str | None  # the active Job, or the one this pass creates
    running_trigger: str | None
    champion: Champion | None
    previous: Champion | None
    rollout: Rollout
    refusal: Problem | None = None  # what the operator will not run for this policy


def champion_of(run: FinishedRun, now: datetime) -> Champion | None:
    """The champion a Promoted run makes (None for any other outcome)."""
    result = run.result
    if result.outcome != "Promoted" or not result.modelUri:
        return None
    return Champion(
        uri=result.modelUri,
        version=result.modelVersion or result.modelUri.rsplit("/", 1)[-1],
        metric=result.candidateScore,
        metricName=result.metric,
        runId=result.runId,
        job=run.job,
        promotedAt=run.finished_at or now,
    )


def last_run(run: FinishedRun, now: datetime) -> LastRun:
    result: RunResult = run.result
    return LastRun(
        outcome=result.outcome,
        job=run.job,
        sequence=run.sequence,
        trigger=run.trigger,
        runId=result.runId,
        reasons=result.reasons,
        message=result.message,
        records=result.records,
        offsets={p: OffsetRange(a, b) for p, (a, b) in result.offsets.items()},
        candidateMetric=result.candidateScore,
        championMetric=result.championScore,
        modelVersion=result.modelVersion,
        finishedAt=run.finished_at or now,
    )


def run_event(run: FinishedRun, champion: Champion | None) -> Event:
    result = run.result
    why = f" ({', '.join(result.reasons)})" if result.reasons else ""
    detail = f": {result.message}" if result.message else ""
    if result.outcome == "Promoted":
        uri = champion.uri if champion else result.modelUri
        return Event("Normal", "Promoted", f"{run.job} promoted {uri}{detail}")
    if result.outcome == "Failed":
        return Event("Warning", "RunFailed", f"{run.job} failed{why}{detail}")
    return Event("Normal", result.outcome, f"{run.job}: {result.outcome}{why}{detail}")


def _condition(
    type_: str, status: ConditionStatus, reason: str, message: str, world: World
) -> Condition:
    return Condition(type_, status, reason, message, world.now, world.policy.generation)


def ready(world: World, p: Progress) -> Condition:
    if p.spec_error:
        return _condition(READY, "False", "InvalidSpec", p.spec_error, world)
    if p.champion is None:
        return _condition(READY, "False", "NoChampion", "no model has been promoted yet", world)
    what = f"champion version {p.champion.version} ({p.champion.uri})"
    if not p.rollout.has_target:
        return _condition(READY, "True", "ChampionTracked", f"{what}; no target to roll out", world)
    if p.rollout.problem is not None:
        problem = p.rollout.problem
        return _condition(READY, "False", problem.reason, problem.message, world)
    if not p.rollout.in_sync:
        return _condition(READY, "False", "RolloutPending", f"{what} not yet on the target", world)
    return _condition(READY, "True", "ChampionServing", f"{what} is served", world)


def progressing(world: World, p: Progress) -> Condition:
    if p.running_job:
        trigger = f" (trigger {p.running_trigger})" if p.running_trigger else ""
        return _condition(PROGRESSING, "True", "JobRunning", f"Job {p.running_job}{trigger}", world)
    if p.spec_error:
        return _condition(PROGRESSING, "False", "InvalidSpec", "no runs start", world)
    if world.policy.policy is not None and world.policy.policy.spec.suspend:
        return _condition(PROGRESSING, "False", "Suspended", "spec.suspend is true", world)
    if p.decision is not None:
        return _condition(
            PROGRESSING,
            "True" if p.decision.start else "False",
            "JobStarting" if p.decision.start else p.decision.reason,
            p.decision.message,
            world,
        )
    return _condition(PROGRESSING, "False", "Idle", "no update Job is running", world)


def degraded(world: World, p: Progress, run: LastRun | None) -> Condition:
    if p.spec_error:
        return _condition(DEGRADED, "True", "InvalidSpec", p.spec_error, world)
    # Refused credentials first: they, not a passing blip, are why no Job starts.
    problems = (p.refusal, credentials_refused(world), world.kafka.problem, world.mlflow.problem)
    for problem in (*problems, p.rollout.problem):
        if problem is not None:
            return _condition(DEGRADED, "True", problem.reason, problem.message, world)
    if run is not None and run.outcome == "Failed":
        message = f"{run.job or 'the last run'} failed" + (
            f": {run.message}" if run.message else ""
        )
        return _condition(DEGRADED, "True", "RunFailed", message, world)
    return _condition(DEGRADED, "False", "AsExpected", "", world)


def desired_status(world: World, p: Progress) -> tuple[Status, tuple[Event, ...]]:
    """The whole status after this pass, and the Events it calls for."""
    stored = world.policy.status
    events: list[Event] = []
    run = stored.lastRun
    if world.finished is not None:
        run = last_run(world.finished, world.now)
        events.append(run_event(world.finished, p.champion))
    schedule = p.decision.schedule_time if p.decision else None
    conditions = stored.conditions
    for condition in (ready(world, p), progressing(world, p), degraded(world, p, run)):
        conditions = set_condition(conditions, condition, world.now)
    problem = p.rollout.problem
    before = stored.condition(READY)
    if problem is not None and (before is None or before.reason != problem.reason):
        events.append(Event("Warning", problem.reason, problem.message))  # once, not every pass
    refused = credentials_refused(world)
    was = stored.condition(DEGRADED)
    if refused is not None and (was is None or was.reason != refused.reason):
        events.append(Event("Warning", refused.reason, refused.message))  # once, not every pass
    status = Status(
        observedGeneration=world.policy.generation,
        conditions=conditions,
        champion=p.champion,
        previousChampion=p.previous,
        pendingRecords=world.kafka.pending,
        lastRun=run,
        lastScheduleTime=schedule or stored.lastScheduleTime,
        kafka=kafka_status(world.kafka.connection),
    )
    return status, tuple(events)


def credentials_refused(world: World) -> Problem | None:
    """Kafka's or MLflow's refusal of the policy's credentials (or their missing Secret)."""
    kafka, mlflow = world.kafka.problem, world.mlflow.problem
    if kafka is not None and kafka.reason in CREDENTIAL_PROBLEMS:
        return kafka
    if mlflow is not None and world.mlflow.runs_blocked:
        return mlflow
    return None


def kafka_status(connection: KafkaConnection | None) -> KafkaStatus | None:
    if connection is None:
        return None
    return KafkaStatus(
        bootstrapServers=connection.bootstrapServers,
        securityProtocol=connection.protocol,
        listener=connection.listener,
    )


def merge_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `current` into `desired`; {} when equal."""
    current = current or {}
    patch: dict[str, Any] = {key: None for key in current if key not in desired}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif old != value or key not in current:
            patch[key] = value
    return patch
