"""Every write of one reconcile pass, carrying out a `Plan` (see plan.py).

Order matters: the Job first (a retried create meets 409: deterministic names), then MLflow's
alias (a rollback that cannot reach MLflow retries before anything else is written), then the
target's patch, then status, Events and metrics. A patch refused because the Deployment changed
since it was read is no error: status says so and the next pass reads it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inshape_api.names import ROLLBACK_ANNOTATION
from inshape_operator.config import OperatorConfig
from inshape_operator.kube import ConflictError, Kube
from inshape_operator.metrics import Metrics
from inshape_operator.mlflow_check import (
    MlflowUnauthorizedError,
    Registry,
    RegistryUnavailableError,
)
from inshape_operator.mlflow_credentials import MlflowCredentials
from inshape_operator.observe import NotYetError
from inshape_operator.plan import AliasMove, Plan, plan
from inshape_operator.status import Event, merge_patch
from inshape_operator.world import PolicyRef, Problem, World

Logger = logging.Logger | logging.LoggerAdapter[Any]
EventSink = Callable[[PolicyRef, Event], None]


@dataclass(frozen=True)
class Writers:
    kube: Kube
    metrics: Metrics
    post: EventSink
    config: OperatorConfig


@dataclass(frozen=True)
class Outcome:
    """What a pass did; handlers turn `spec_error` into a permanent error, `recheck_at` into
    the next wake-up."""

    spec_error: str | None = None
    recheck_at: datetime | None = None
    job_created: str | None = None
    patched: bool = False


def move_alias(alias: AliasMove, credentials: MlflowCredentials) -> None:
    """Move the alias with the policy's own credentials (plan holds a rollback back while
    MLflow refuses them; refused since this pass's probe, it waits like an outage)."""
    try:
        Registry(alias.tracking_uri, credentials).set_champion(alias.model, alias.version)
    except (RegistryUnavailableError, MlflowUnauthorizedError) as exc:
        raise NotYetError(f"rollback waits for MLflow: {exc}") from exc


def patch_target(writers: Writers, world: World, planned: Plan, log: Logger) -> tuple[Plan, bool]:
    """Apply the planned patch; a refused one gives the plan of a world where it failed."""
    if planned.patch is None:
        return planned, False
    ref = world.policy.ref
    try:
        writers.kube.patch_deployment(
            ref.namespace, planned.patch.deployment, [op.to_wire() for op in planned.patch.ops]
        )
    except ConflictError as exc:
        problem = Problem("TargetChanged", f"{exc}; retrying")
        return plan(world, writers.config, rollout_failure=problem), False
    log.info(
        "Pointed Deployment %s/%s at %s", ref.namespace, planned.patch.deployment, planned.patch.uri
    )
    finished = world.finished
    if finished is not None and finished.result.outcome == "Promoted" and finished.finished_at:
        waited = (datetime.now(UTC) - finished.finished_at).total_seconds()
        writers.metrics.promotion_latency.observe(waited)
    return planned, True


def act(writers: Writers, world: World, planned: Plan, log: Logger) -> Outcome:
    """Carry out `planned` (see the module docstring)."""
    kube, ref = writers.kube, world.policy.ref
    created = None
    if planned.job is not None:
        created = planned.job["metadata"]["name"]
        if kube.create_job(ref.namespace, planned.job):
            reason = planned.decision.message if planned.decision else ""
            log.info("Created update Job %s/%s (%s)", ref.namespace, created, reason)
    if planned.alias is not None:
        move_alias(planned.alias, world.mlflow.credentials)
    planned, patched = patch_target(writers, world, planned, log)
    patch = merge_patch(world.policy.stored_status, planned.status.to_wire())
    if patch:
        kube.patch_policy_status(ref.namespace, ref.name, patch)
    for event in planned.events:
        writers.post(ref, event)
    if world.kafka.pending is not None:
        writers.metrics.pending.labels(ref.namespace, ref.name).set(world.kafka.pending)
    if world.finished is not None:
        writers.metrics.runs.labels(ref.namespace, ref.name, world.finished.result.outcome).inc()
    if planned.clear_rollback:
        kube.remove_policy_annotation(ref.namespace, ref.name, ROLLBACK_ANNOTATION)
    return Outcome(planned.spec_error, planned.recheck_at, created, patched)
