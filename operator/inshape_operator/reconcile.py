"""The one reconcile of a policy: observe -> pure decisions -> act -> write status once.

Level-based: every pass recomputes from the policy, its Jobs (and their pods), the Strimzi
Kafka resource, the consumer group's lag, the target Deployment and MLflow, so a restarted
operator continues where the last one stopped. Acts only on gaps: a Job is created only when
none is active (deterministic name: a retried create meets 409), the target is patched only
when its env var differs from the champion's URI (so a promotion is applied exactly once),
status is written only when it changed.

Rollback: the annotation `inshape.dev/rollback: "true"` swaps champion and previousChampion,
points the target back at the previous URI, moves MLflow's `champion` alias back, and is
removed when done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from inshape_api.spec import API_GROUP, Policy, SpecError, parse_policy
from inshape_operator import job_builder, metrics, results, rollout, status, strimzi, triggers
from inshape_operator.conditions import parse_time
from inshape_operator.config import OperatorConfig
from inshape_operator.kube import ConflictError, Kube
from inshape_operator.lag import LagError, LagReader
from inshape_operator.mlflow_check import Registry, RegistryUnavailableError, verify
from inshape_operator.status import Event, Observation, Problem

ROLLBACK_ANNOTATION = f"{API_GROUP}/rollback"
JSON = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter[Any]
EventSink = Callable[[Mapping[str, Any], Event], None]


class NotYetError(Exception):
    """Something to retry soon (MLflow unreachable while a result waits to be checked)."""


@dataclass
class Services:
    """What a reconcile talks to; one per operator, shared by every policy (thread-safe)."""

    kube: Kube
    lags: LagReader
    config: OperatorConfig
    post: EventSink
    locks: dict[str, threading.Lock]
    locks_guard: threading.Lock

    def lock(self, uid: str) -> threading.Lock:
        """The lock of one policy: its passes (timer, change, Job event) never overlap."""
        with self.locks_guard:
            return self.locks.setdefault(uid, threading.Lock())


@dataclass(frozen=True)
class Outcome:
    spec_error: str | None = None
    recheck_at: datetime | None = None
    job_created: str | None = None
    patched: bool = False


def _finished_jobs(jobs: list[JSON]) -> list[JSON]:
    done = [j for j in jobs if results.job_state(j) != "Active"]
    return sorted(done, key=lambda j: job_builder.sequence_of(j) or 0)


def _annotation(job: Mapping[str, Any], key: str) -> str | None:
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def _created(obj: Mapping[str, Any]) -> datetime | None:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def _checked(services: Services, policy: Policy, job: JSON, result: results.RunResult) -> Any:
    """A Promoted result MLflow confirms, else a Failed one saying why not."""
    if result.outcome != "Promoted":
        return result
    uid = str((job.get("metadata") or {}).get("uid"))
    registry = Registry(policy.spec.mlflow.trackingUri)
    try:
        verdict = verify(
            registry, policy.experiment, policy.spec.model.name, uid, result.model_version
        )
    except RegistryUnavailableError as exc:
        raise NotYetError(str(exc)) from exc
    if verdict.ok:
        return result
    return replace(result, outcome="Failed", reasons=(verdict.reason,), message=verdict.message)


def reconcile(services: Services, body: Mapping[str, Any], logger: Logger | None = None) -> Outcome:
    """One pass over one policy (see the module docstring)."""
    log = logger or logging.getLogger(__name__)
    started = time.monotonic()
    meta = body.get("metadata") or {}
    name, namespace, uid = str(meta["name"]), str(meta["namespace"]), str(meta["uid"])
    with services.lock(uid):
        fresh = services.kube.get_policy(namespace, name)  # the newest status, not the event's
        if fresh is None or (fresh.get("metadata") or {}).get("uid") != uid:
            return Outcome()
        outcome = _reconcile(services, fresh, log)
    metrics.RECONCILE.observe(time.monotonic() - started)
    return outcome


def _reconcile(services: Services, body: JSON, log: Logger) -> Outcome:
    kube, cfg = services.kube, services.config
    meta = body["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    generation = int(meta.get("generation") or 0)
    raw_spec = body.get("spec") or {}
    current: JSON = dict(body.get("status") or {})
    now = datetime.now(UTC)
    created = _created(body) or now

    spec_error: str | None = None
    policy: Policy | None = None
    target_name: str | None = None
    try:
        policy = parse_policy(
            {"metadata": {"name": name, "namespace": namespace}, "spec": raw_spec}
        )
        triggers.validate(policy.spec.trigger)
        if raw_spec.get("target"):
            target_name = rollout.check_target(raw_spec["target"])
    except (SpecError, triggers.TriggerError, rollout.TargetError) as exc:
        spec_error = str(exc)

    # --- observe the Jobs --------------------------------------------------------------------
    jobs = kube.list_jobs(namespace, job_builder.selector(uid))
    active = [j for j in jobs if results.job_state(j) == "Active"]
    finished = _finished_jobs(jobs)
    newest = finished[-1] if finished else None
    result: results.RunResult | None = None
    recorded = (current.get("lastRun") or {}).get("job")
    if newest is not None and newest["metadata"]["name"] != recorded:
        sequence = job_builder.sequence_of(newest)
        pods = kube.list_pods(
            namespace, f"{job_builder.selector(uid)},{job_builder.LABEL_RUN}={sequence}"
        )
        result = results.read_result(newest, pods)
        if result is not None and policy is not None:
            result = _checked(services, policy, newest, result)

    # --- Kafka: address and lag ---------------------------------------------------------------
    kafka_problem: Problem | None = None
    bootstrap: str | None = None
    pending: int | None = None
    if policy is not None and spec_error is None:
        source = policy.spec.source.kafka
        bootstrap = source.bootstrapServers
        if source.strimziCluster:
            try:
                bootstrap = strimzi.resolve(
                    kube.get_kafka(namespace, source.strimziCluster),
                    source.strimziCluster,
                    namespace,
                ).servers
            except strimzi.StrimziError as exc:
                bootstrap = None
                if exc.retryable:
                    kafka_problem = Problem(exc.reason, str(exc))
                else:
                    spec_error = f"spec.source.kafka.strimziCluster: {exc}"
        if bootstrap is not None:
            try:
                pending = services.lags.lag(bootstrap, source.topic, policy.consumer_group)
            except LagError as exc:
                kafka_problem = Problem("LagUnavailable", str(exc))
    if pending is not None:
        metrics.PENDING.labels(namespace, name).set(pending)

    # --- decide and start a run ---------------------------------------------------------------
    last_run = dict(current.get("lastRun") or {})
    last_outcome: str | None
    last_finished: datetime | None
    if result is not None:
        last_outcome, last_finished = result.outcome, result.finished_at or now
    else:
        last_outcome, last_finished = (
            last_run.get("outcome"),
            parse_time(last_run.get("finishedAt")),
        )
    last_failed_at = last_finished if last_outcome == "Failed" else None
    starts = [t for t in (_created(j) for j in jobs) if t is not None]
    last_started = max(starts) if starts else last_finished
    decision: triggers.Decision | None = None
    active_name = active[0]["metadata"]["name"] if active else None
    active_trigger = _annotation(active[0], job_builder.ANNOTATION_TRIGGER) if active else None
    created_job: str | None = None
    if policy is not None and spec_error is None:
        decision = triggers.decide(
            policy.spec.trigger,
            suspend=policy.spec.suspend,
            observed=triggers.Observed(
                now=now,
                created=created,
                pending=pending,
                job_active=bool(active),
                last_run_started=last_started,
                last_schedule_time=parse_time(current.get("lastScheduleTime")),
                last_failed_at=last_failed_at,
            ),
            failure_backoff=timedelta(seconds=cfg.failure_backoff_seconds),
        )
        if decision.start and (bootstrap is not None or kafka_problem is None):
            last_sequence = (current.get("lastRun") or {}).get("sequence")
            job = job_builder.build_job(
                job_builder.JobRequest(
                    policy_name=name,
                    namespace=namespace,
                    uid=uid,
                    spec=raw_spec,
                    sequence=job_builder.next_sequence(
                        jobs, last_sequence if isinstance(last_sequence, int) else None
                    ),
                    image=cfg.job_image,
                    image_pull_policy=cfg.job_image_pull_policy,
                    ttl_seconds=cfg.job_ttl_seconds,
                    run_as_user=cfg.job_run_as_user,
                    bootstrap_servers=bootstrap
                    if policy.spec.source.kafka.strimziCluster
                    else None,
                    trigger=decision.trigger,
                    generation=generation,
                )
            )
            if kube.create_job(namespace, job):
                log.info(
                    "Created update Job %s/%s (%s)",
                    namespace,
                    job["metadata"]["name"],
                    decision.message,
                )
            created_job = active_name = job["metadata"]["name"]
            active_trigger = decision.trigger

    # --- rollback request ---------------------------------------------------------------------
    annotations = meta.get("annotations") or {}
    rollback = annotations.get(ROLLBACK_ANNOTATION) == "true"
    events: list[Event] = []
    if rollback and current.get("previousChampion"):
        back = dict(current["previousChampion"])
        current["previousChampion"], current["champion"] = current.get("champion"), back
        if policy is not None and back.get("version"):
            try:
                Registry(policy.spec.mlflow.trackingUri).set_champion(
                    policy.spec.model.name, str(back["version"])
                )
            except RegistryUnavailableError as exc:
                raise NotYetError(f"rollback waits for MLflow: {exc}") from exc
        events.append(Event("Normal", "RolledBack", f"champion set back to {back.get('uri')}"))

    # --- roll the champion out ----------------------------------------------------------------
    observation = Observation(
        now=now,
        generation=generation,
        suspended=bool(raw_spec.get("suspend")),
        spec_error=spec_error,
        active_job=active_name,
        active_trigger=active_trigger,
        finished=result,
        finished_sequence=job_builder.sequence_of(newest) if newest and result else None,
        finished_trigger=_annotation(newest, job_builder.ANNOTATION_TRIGGER) if newest else None,
        pending=pending,
        kafka_problem=kafka_problem,
        has_target=target_name is not None,
        decision=decision,
    )
    champion, _previous = status.champions(current, observation)
    rollout_problem: Problem | None = None
    in_sync = False
    patched = False
    if target_name is not None and champion is not None and champion.get("uri"):
        target = raw_spec["target"]
        deployment = kube.get_deployment(namespace, target_name)
        if deployment is None:
            rollout_problem = Problem(
                "TargetNotFound", f"Deployment {namespace}/{target_name} does not exist"
            )
        else:
            try:
                rollout.check_same_namespace(deployment, namespace)
                patch = rollout.env_patch(deployment, target, str(champion["uri"]))
                if patch is not None:
                    kube.patch_deployment(namespace, target_name, patch)
                    patched = True
                    log.info(
                        "Pointed Deployment %s/%s at %s", namespace, target_name, champion["uri"]
                    )
                    if result is not None and result.outcome == "Promoted" and result.finished_at:
                        metrics.PROMOTION_LATENCY.observe(
                            (datetime.now(UTC) - result.finished_at).total_seconds()
                        )
                in_sync = True
            except rollout.TargetError as exc:
                rollout_problem = Problem("TargetInvalid", str(exc))
            except ConflictError as exc:
                rollout_problem = Problem("TargetChanged", f"{exc}; retrying")
    observation = replace(observation, rollout_problem=rollout_problem, target_in_sync=in_sync)

    # --- write status once --------------------------------------------------------------------
    update = status.desired_status(current, observation)
    stored = dict(body.get("status") or {})
    patch_doc = status.merge_patch(stored, update.status)
    if patch_doc:
        kube.patch_policy_status(namespace, name, patch_doc)
    for event in (*update.events, *events):
        services.post(body, event)
    if result is not None:
        metrics.RUNS.labels(namespace, name, result.outcome).inc()
    if rollback:
        kube.remove_policy_annotation(namespace, name, ROLLBACK_ANNOTATION)
        if not events:
            services.post(
                body, Event("Warning", "RollbackRefused", "no previousChampion to roll back to")
            )
    return Outcome(
        spec_error=spec_error,
        recheck_at=decision.recheck_at if decision else None,
        job_created=created_job,
        patched=patched,
    )
