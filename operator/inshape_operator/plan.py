"""What one pass should do, decided from the observed world alone (pure: no I/O, no clock).

`plan(world, config)` returns the Job to create (if a trigger fired and none runs), the MLflow
alias to move back (rollback), the JSON patch that points the target at the champion, the
whole status to store and the Events to post. `act` carries it out. When a write fails in a
way status should report (the target changed under the patch), `act` asks again with
`rollout_failure` set and stores that plan's status instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from inshape_api.names import TARGET_OPT_IN_LABEL
from inshape_api.status import Champion, PolicyStatus
from inshape_operator import job_builder, rollout, status, triggers
from inshape_operator.config import OperatorConfig
from inshape_operator.status import Event, Progress, Rollout
from inshape_operator.world import Problem, World


@dataclass(frozen=True)
class AliasMove:
    """Point MLflow's champion alias of `model` at `version` (a rollback)."""

    tracking_uri: str
    model: str
    version: str


@dataclass(frozen=True)
class TargetPatch:
    deployment: str
    ops: tuple[rollout.PatchOp, ...]
    uri: str


@dataclass(frozen=True)
class Plan:
    status: PolicyStatus
    events: tuple[Event, ...] = ()
    job: dict[str, Any] | None = None  # the update Job manifest to create
    decision: triggers.Decision | None = None
    alias: AliasMove | None = None
    patch: TargetPatch | None = None
    clear_rollback: bool = False  # remove the rollback annotation once acted on
    recheck_at: datetime | None = None  # when a time-based trigger is next due
    spec_error: str | None = None


def spec_error(world: World) -> str | None:
    return world.policy.spec_error or world.kafka.spec_error


def decide(world: World, config: OperatorConfig) -> triggers.Decision | None:
    """Whether a run starts now (None when the spec can never work)."""
    policy = world.policy.policy
    if policy is None or spec_error(world):
        return None
    stored = world.policy.status.lastRun
    finished = world.finished
    outcome = finished.result.outcome if finished else (stored.outcome if stored else None)
    ended = (
        (finished.finished_at or world.now) if finished else (stored.finishedAt if stored else None)
    )
    starts = [j.created for j in world.jobs if j.created is not None]
    return triggers.decide(
        policy.spec.trigger,
        suspend=policy.spec.suspend,
        observed=triggers.Observed(
            now=world.now,
            created=world.policy.created,
            pending=world.kafka.pending,
            job_active=world.active_job is not None,
            last_run_started=max(starts) if starts else ended,
            last_schedule_time=world.policy.status.lastScheduleTime,
            last_failed_at=ended if outcome == "Failed" else None,
        ),
        failure_backoff=timedelta(seconds=config.failure_backoff_seconds),
    )


def image_refusal(world: World, config: OperatorConfig) -> Problem | None:
    """Why the policy's spec.job.image may not run, if it may not."""
    policy = world.policy.policy
    image = policy.spec.job.image if policy is not None else None
    if image is None or config.image_allowed(image):
        return None
    return Problem(
        "ImageNotAllowed",
        f"spec.job.image {image!r} is not in the operator's INSHAPE_JOB_IMAGES_ALLOWED "
        "(the chart's operator.job.allowedImages)",
    )


def job_to_create(
    world: World, decision: triggers.Decision | None, config: OperatorConfig
) -> dict[str, Any] | None:
    """The Job of a run that starts now; none while Kafka's address is unknown or Kafka or
    MLflow refuses the policy's credentials."""
    policy = world.policy.policy
    if policy is None or decision is None or not decision.start:
        return None
    blocked = world.kafka.runs_blocked or world.mlflow.runs_blocked
    if blocked or image_refusal(world, config) is not None:
        return None
    last = world.policy.status.lastRun
    run = job_builder.RunRequest(
        uid=world.policy.ref.uid,
        sequence=job_builder.next_sequence(world.jobs, last.sequence if last else None),
        trigger=decision.trigger,
        generation=world.policy.generation,
        kafka=world.kafka.connection,
    )
    return job_builder.build_job(policy, run, config)


def rollback_requested(world: World) -> bool:
    """A rollback to carry out now: it waits (annotation kept) while MLflow, whose alias it
    moves, refuses the policy's credentials."""
    return world.policy.rollback_requested and not world.mlflow.runs_blocked


def champions(
    world: World,
) -> tuple[Champion | None, Champion | None, list[Event], AliasMove | None]:
    """(champion, previousChampion) after a requested rollback and a newly promoted run."""
    stored = world.policy.status
    champion, previous = stored.champion, stored.previousChampion
    events: list[Event] = []
    alias: AliasMove | None = None
    if rollback_requested(world):
        if previous is None:
            events.append(
                Event("Warning", "RollbackRefused", "no previousChampion to roll back to")
            )
        else:
            champion, previous = previous, champion
            events.append(Event("Normal", "RolledBack", f"champion set back to {champion.uri}"))
            policy = world.policy.policy
            if policy is not None and champion.version:
                alias = AliasMove(
                    policy.spec.mlflow.trackingUri, policy.spec.model.name, champion.version
                )
    promoted = status.champion_of(world.finished, world.now) if world.finished else None
    if promoted is not None and (champion is None or champion.uri != promoted.uri):
        previous, champion = champion, promoted
    return champion, previous, events, alias


def target_rollout(world: World, champion: Champion | None) -> tuple[Rollout, TargetPatch | None]:
    """How the target stands, and the patch that points it at the champion."""
    policy = world.policy.policy
    target = policy.spec.target if policy is not None and not spec_error(world) else None
    if target is None:
        return Rollout(has_target=False), None
    if champion is None:
        return Rollout(has_target=True), None
    if world.target is None:
        where = f"{world.policy.ref.namespace}/{target.deployment}"
        return Rollout(
            True, problem=Problem("TargetNotFound", f"Deployment {where} does not exist")
        ), None
    ref = world.policy.ref
    if world.target.opted_in_policy != ref.name:
        message = (
            f"Deployment {ref.namespace}/{target.deployment} does not name this policy: its "
            f"owner opts in with the label {TARGET_OPT_IN_LABEL}={ref.name}"
        )
        return Rollout(True, problem=Problem("TargetNotOptedIn", message)), None
    try:
        ops = rollout.env_patch(world.target, target, world.policy.ref.namespace, champion.uri)
    except rollout.TargetError as exc:
        return Rollout(True, problem=Problem("TargetInvalid", str(exc))), None
    patch = TargetPatch(target.deployment, ops, champion.uri) if ops else None
    return Rollout(True, in_sync=True), patch


def plan(world: World, config: OperatorConfig, rollout_failure: Problem | None = None) -> Plan:
    """Everything this pass should do (see the module docstring)."""
    decision = decide(world, config)
    job = job_to_create(world, decision, config)
    champion, previous, events, alias = champions(world)
    target, patch = target_rollout(world, champion)
    if rollout_failure is not None:
        target, patch = Rollout(True, problem=rollout_failure), None
    active = world.active_job
    running = job["metadata"]["name"] if job else (active.name if active else None)
    running_trigger = decision.trigger if job and decision else (active.trigger if active else None)
    progress = Progress(
        spec_error(world),
        decision,
        running,
        running_trigger,
        champion,
        previous,
        target,
        image_refusal(world, config),
    )
    desired, status_events = status.desired_status(world, progress)
    return Plan(
        status=desired,
        events=(*status_events, *events),
        job=job,
        decision=decision,
        alias=alias,
        patch=patch,
        clear_rollback=rollback_requested(world),
        recheck_at=decision.recheck_at if decision else None,
        spec_error=progress.spec_error,
    )
