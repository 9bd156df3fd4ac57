"""Every read of one reconcile pass, gathered into one typed `World` (see world.py).

Reads the policy as stored now (not as the triggering event saw it), its Jobs, the pods of the
newest finished Job not yet recorded (its result is checked against MLflow before anyone acts
on a Promoted claim), the Strimzi Kafka resource, the consumer group's lag, whether MLflow takes
the policy's credentials and, when a champion may need serving, the target Deployment. Nothing
here writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from inshape_api import kafka_connection
from inshape_api.kafka_connection import KafkaConnection
from inshape_api.names import LABEL_RUN, ROLLBACK_ANNOTATION
from inshape_api.result import (
    KAFKA_AUTH_FAILED,
    KAFKA_SECRET_MISSING,
    MLFLOW_SECRET_MISSING,
    MLFLOW_UNAUTHORIZED,
    RunResult,
)
from inshape_api.spec import KafkaSourceSpec, Policy, SpecError, parse_policy
from inshape_api.status import PolicyStatus
from inshape_operator import (
    job_builder,
    kafka_credentials,
    mlflow_credentials,
    results,
    rollout,
    strimzi,
    triggers,
)
from inshape_operator.conditions import parse_time
from inshape_operator.kube import Kube
from inshape_operator.lag import KafkaRefusedError, LagError, LagReader
from inshape_operator.mlflow_check import (
    MlflowUnauthorizedError,
    Registry,
    RegistryUnavailableError,
    verify,
)
from inshape_operator.mlflow_credentials import NO_CREDENTIALS, MlflowCredentials
from inshape_operator.world import (
    FinishedRun,
    JobView,
    KafkaView,
    MlflowView,
    ObservedPolicy,
    PolicyRef,
    Problem,
    World,
)

_FORBIDDEN = 403


class NotYetError(Exception):
    """Something to retry soon (MLflow unreachable while a result waits to be checked)."""


@dataclass(frozen=True)
class Readers:
    """The clients observe reads through (MLflow clients are opened per tracking URI)."""

    kube: Kube
    lags: LagReader


def parsed(body: Mapping[str, Any]) -> tuple[Policy | None, str | None]:
    """The typed policy, or why its spec can never work."""
    meta = body.get("metadata") or {}
    try:
        policy = parse_policy(
            {
                "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
                "spec": body.get("spec") or {},
            }
        )
        triggers.validate(policy.spec.trigger)
    except (SpecError, triggers.TriggerError) as exc:
        return None, str(exc)
    return policy, None


def observed_policy(body: Mapping[str, Any], now: datetime) -> ObservedPolicy:
    meta = body["metadata"]
    policy, error = parsed(body)
    stored = dict(body.get("status") or {})
    return ObservedPolicy(
        ref=PolicyRef(str(meta["namespace"]), str(meta["name"]), str(meta["uid"])),
        generation=int(meta.get("generation") or 0),
        created=parse_time(meta.get("creationTimestamp")) or now,
        policy=policy,
        spec_error=error,
        status=PolicyStatus.from_wire(stored),
        stored_status=stored,
        rollback_requested=(meta.get("annotations") or {}).get(ROLLBACK_ANNOTATION) == "true",
    )


def checked(
    policy: Policy,
    run_key: str,
    result: RunResult,
    credentials: MlflowCredentials = NO_CREDENTIALS,
) -> RunResult:
    """A Promoted result MLflow confirms, else a Failed one saying why not
    (MlflowUnauthorizedError when MLflow refuses the policy's credentials)."""
    if result.outcome != "Promoted":
        return result
    registry = Registry(policy.spec.mlflow.trackingUri, credentials)
    try:
        verdict = verify(
            registry, policy.experiment, policy.spec.model.name, run_key, result.modelVersion
        )
    except RegistryUnavailableError as exc:
        raise NotYetError(str(exc)) from exc
    if verdict.ok:
        return result
    return replace(result, outcome="Failed", reasons=(verdict.reason,), message=verdict.message)


def newest_finished(
    kube: Kube, seen: ObservedPolicy, jobs: list[dict[str, Any]], mlflow: MlflowView
) -> FinishedRun | None:
    """The newest finished Job, read and checked, unless status records it already. A Promoted
    claim waits while MLflow refuses the credentials: it is recorded once it can be checked."""
    done = [j for j in jobs if results.job_state(j) != "Active"]
    if not done:
        return None
    newest = max(done, key=lambda j: results.sequence_of(j) or 0)
    view = results.job_view(newest)
    recorded = seen.status.lastRun.job if seen.status.lastRun else None
    if view.name == recorded:
        return None
    selector = f"{job_builder.selector(seen.ref.uid)},{LABEL_RUN}={view.sequence}"
    result = results.read_result(newest, kube.list_pods(seen.ref.namespace, selector))
    if result is None:
        return None
    if seen.policy is not None:
        if result.outcome == "Promoted" and mlflow.runs_blocked:
            return None
        uid = str(newest["metadata"].get("uid"))
        result = checked(seen.policy, uid, result, mlflow.credentials)
    return FinishedRun(view.name, view.sequence, view.trigger, results.finished_at(newest), result)


def connection_of(readers: Readers, policy: Policy) -> KafkaConnection:
    """The policy's Kafka connection; with strimziCluster, through the listener that matches
    its authentication (StrimziError says why there is none)."""
    source = policy.spec.source.kafka
    if source.strimziCluster is None:
        assert source.bootstrapServers is not None  # the spec names exactly one of the two
        return kafka_connection.resolve(source, source.bootstrapServers)
    found = readers.kube.get_kafka(policy.namespace, source.strimziCluster)
    picked = strimzi.resolve(
        found, source.strimziCluster, policy.namespace, asked_authentication(source)
    )
    return kafka_connection.resolve(
        source,
        picked.servers,
        listener=picked.listener,
        listener_tls=picked.tls,
        cluster=source.strimziCluster,
    )


def asked_authentication(source: KafkaSourceSpec) -> strimzi.Authentication | None:
    """How the policy authenticates, in Strimzi's terms (the spec admits only those with
    strimziCluster)."""
    kind = source.authentication.type if source.authentication else None
    return next((a for a in strimzi.AUTHENTICATIONS if a == kind), None)


def kafka_view(readers: Readers, policy: Policy | None) -> KafkaView:
    """Kafka's connection (resolved from Strimzi when named) and the consumer group's lag, read
    with the credentials the policy names."""
    if policy is None:
        return KafkaView()
    source = policy.spec.source.kafka
    try:
        view = KafkaView(connection=connection_of(readers, policy))
    except strimzi.StrimziError as exc:
        if exc.retryable:
            return KafkaView(problem=Problem(exc.reason, str(exc)))
        return KafkaView(spec_error=f"spec.source.kafka.strimziCluster: {exc}")
    assert view.connection is not None
    try:
        settings = kafka_credentials.read_settings(
            lambda name: readers.kube.get_secret(policy.namespace, name), view.connection
        )
    except kafka_credentials.CredentialsError as exc:
        return replace(view, problem=Problem(KAFKA_SECRET_MISSING, str(exc)))
    try:
        return replace(
            view, pending=readers.lags.lag(settings, source.topic, policy.consumer_group)
        )
    except KafkaRefusedError as exc:
        secrets = ", ".join(settings.secrets_for(exc.kind)) or "none named"
        message = (
            f"Kafka {settings.bootstrap} refused the policy's credentials (Secret {secrets}): {exc}"
        )
        return replace(view, problem=Problem(KAFKA_AUTH_FAILED, message))
    except LagError as exc:
        return replace(view, problem=Problem("LagUnavailable", str(exc)))


def mlflow_view(readers: Readers, policy: Policy | None) -> MlflowView:
    """The policy's MLflow credentials (spec.mlflow.credentialsSecret) and whether the tracking
    server takes them: one cheap read per pass, so no Job starts only to be refused."""
    if policy is None:
        return MlflowView()
    secret = policy.spec.mlflow.credentialsSecret
    try:
        credentials = mlflow_credentials.read_credentials(
            lambda name: readers.kube.get_secret(policy.namespace, name), secret
        )
    except kafka_credentials.CredentialsError as exc:
        return MlflowView(problem=Problem(MLFLOW_SECRET_MISSING, str(exc)))
    except ApiException as exc:
        if exc.status != _FORBIDDEN:
            raise
        # The chart's rbac.readKafkaSecrets=false: say so on the policy instead of failing.
        message = f"the operator may not get Secret {secret} (RBAC: get secrets)"
        return MlflowView(problem=Problem(MLFLOW_SECRET_MISSING, message))
    view = MlflowView(credentials=credentials)
    try:
        Registry(policy.spec.mlflow.trackingUri, credentials).probe(policy.spec.model.name)
    except MlflowUnauthorizedError as exc:
        return replace(view, problem=Problem(MLFLOW_UNAUTHORIZED, str(exc)))
    except RegistryUnavailableError:
        pass  # down or slow: a result's check waits, a Job reports it, as without credentials
    return view


def observe(readers: Readers, ref: PolicyRef, now: datetime) -> World | None:
    """The world of one policy now; None when the policy is gone (or was replaced)."""
    kube = readers.kube
    body = kube.get_policy(ref.namespace, ref.name)
    if body is None or (body.get("metadata") or {}).get("uid") != ref.uid:
        return None
    seen = observed_policy(body, now)
    jobs = kube.list_jobs(ref.namespace, job_builder.selector(ref.uid))
    mlflow = mlflow_view(readers, seen.policy if seen.spec_error is None else None)
    try:
        finished = newest_finished(kube, seen, jobs, mlflow)
    except MlflowUnauthorizedError as exc:  # refused since the probe: as if the probe saw it
        mlflow = replace(mlflow, problem=Problem(MLFLOW_UNAUTHORIZED, str(exc)))
        finished = None
    views: tuple[JobView, ...] = tuple(results.job_view(j) for j in jobs)
    kafka = kafka_view(readers, seen.policy if seen.spec_error is None else None)
    target = None
    spec_target = seen.policy.spec.target if seen.policy else None
    if spec_target is not None and (seen.status.champion or finished or seen.rollback_requested):
        deployment = kube.get_deployment(ref.namespace, spec_target.deployment)
        target = rollout.workload(deployment) if deployment is not None else None
    return World(now, seen, views, finished, kafka, mlflow, target)
