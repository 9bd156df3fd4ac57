"""`plan(world)`: what one pass decides, from a typed world alone — no cluster, service or mock.

Each test builds the World `observe` would return and checks the Job, alias move, target patch,
status and Events the plan asks for.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from inshape_api.kafka_connection import KafkaConnection, cluster_ca
from inshape_api.result import RecordCounts, RunResult, decode
from inshape_api.spec import PasswordSecretSource, parse_policy
from inshape_api.status import Champion, KafkaStatus, LastRun, PolicyStatus
from inshape_operator.config import OperatorConfig, load
from inshape_operator.plan import Plan, plan
from inshape_operator.rollout import workload
from inshape_operator.status import merge_patch
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

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONFIG: OperatorConfig = load({})
REF = PolicyRef("ml", "digits", "uid-1")
V6 = Champion(uri="models:/digits/6", version="6", metric=0.91)
SPEC: dict[str, Any] = {
    "source": {"kafka": {"bootstrapServers": "kafka:9092", "topic": "digits", "features": ["a"]}},
    "model": {"name": "digits", "estimator": "sklearn.linear_model.SGDClassifier"},
    "mlflow": {"trackingUri": "http://mlflow:5000"},
    "trigger": {"minNewRecords": 1000},
    "target": {"deployment": "digits-serving", "container": "server"},
}


def deployment(uri: str | None, opted_in: str | None = "digits") -> dict[str, Any]:
    env = [{"name": "MODEL_URI", "value": uri}] if uri else []
    labels = {"inshape.dev/policy": opted_in} if opted_in else {}
    return {
        "metadata": {"name": "digits-serving", "namespace": "ml", "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "server", "env": env}]}}},
    }


def world(
    *,
    status: PolicyStatus | None = None,
    spec: dict[str, Any] | None = None,
    pending: int | None = 0,
    serving: str | None = "models:/digits/6",
    **overrides: Any,
) -> World:
    stored = status or PolicyStatus()
    policy = parse_policy({"metadata": {"name": "digits", "namespace": "ml"}, "spec": spec or SPEC})
    observed = ObservedPolicy(
        ref=REF,
        generation=3,
        created=T0 - timedelta(days=1),
        policy=policy,
        spec_error=None,
        status=stored,
        stored_status=stored.to_wire(),
        rollback_requested=overrides.pop("rollback", False),
    )
    values: dict[str, Any] = {
        "now": T0,
        "policy": observed,
        "kafka": KafkaView(connection=KafkaConnection("kafka:9092"), pending=pending),
        "target": workload(deployment(serving)),
    }
    values.update(overrides)
    return World(**values)


def promoted(version: int, job: str, score: float = 0.93) -> FinishedRun:
    result = RunResult(
        outcome="Promoted",
        reasons=("Improved",),
        message="better",
        runId=f"run-{version}",
        metric="f1_macro",
        candidateScore=score,
        championScore=0.91,
        modelVersion=str(version),
        modelUri=f"models:/digits/{version}",
        records=RecordCounts(read=100),
        offsets={"0": (0, 100)},
    )
    return FinishedRun(job, version, "Lag", T0 - timedelta(seconds=5), result)


def finished(job: str, text: str) -> FinishedRun:
    return FinishedRun(job, 9, "Lag", T0 - timedelta(seconds=5), decode(text))


def condition(p: Plan, type_: str) -> tuple[str, str]:
    found = p.status.condition(type_)
    assert found is not None
    return found.status, found.reason


def stored(p: Plan, w: World, **changes: Any) -> World:
    """The next pass's world: the status as this plan stored it (via JSON), nothing new."""
    status = PolicyStatus.from_wire(p.status.to_wire())
    policy = replace(w.policy, status=status, stored_status=p.status.to_wire())
    return replace(w, policy=policy, finished=None, **changes)


def test_a_new_policy_below_threshold_waits() -> None:
    p = plan(world(pending=5), CONFIG)
    assert p.job is None and p.patch is None and p.alias is None and p.events == ()
    assert p.status.observedGeneration == 3 and p.status.pendingRecords == 5
    assert condition(p, "Ready") == ("False", "NoChampion")
    assert condition(p, "Progressing") == ("False", "BelowThreshold")
    assert condition(p, "Degraded") == ("False", "AsExpected")
    assert [c.type for c in p.status.conditions] == ["Ready", "Progressing", "Degraded"]
    assert p.status.champion is None and p.status.lastRun is None


def test_lag_over_the_threshold_creates_the_next_job() -> None:
    last = LastRun(outcome="Rejected", job="digits-update-4", sequence=4, finishedAt=T0)
    p = plan(world(pending=5000, status=PolicyStatus(lastRun=last)), CONFIG)
    assert p.job is not None
    assert p.job["metadata"]["name"] == "digits-update-5"
    assert p.job["metadata"]["annotations"]["inshape.dev/trigger"] == "Lag"
    assert p.job["metadata"]["namespace"] == "ml"
    assert condition(p, "Progressing") == ("True", "JobRunning")
    # bootstrapServers in the spec: the Job reads it there, no override on the command line.
    assert (
        "--bootstrap-servers" not in p.job["spec"]["template"]["spec"]["containers"][0]["command"]
    )


def test_the_resolved_connection_reaches_the_job_and_the_status() -> None:
    connection = KafkaConnection(
        "c-kafka-bootstrap:9093",
        protocol="SASL_SSL",
        trustedCertificates=(cluster_ca("c"),),
        saslMechanism="SCRAM-SHA-512",
        username="alice",
        passwordSecret=PasswordSecretSource("alice", "password"),
        listener="scram",
    )
    p = plan(world(kafka=KafkaView(connection=connection, pending=5000)), CONFIG)
    assert p.job is not None
    (container,) = p.job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert KafkaConnection.from_env(env["INSHAPE_KAFKA"]["value"]) == connection
    assert env["INSHAPE_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "alice",
        "key": "password",
    }
    assert p.status.kafka == KafkaStatus("c-kafka-bootstrap:9093", "SASL_SSL", "scram")


@pytest.mark.parametrize("reason", ["KafkaAuthFailed", "KafkaSecretMissing"])
def test_refused_credentials_degrade_once_and_start_no_job_even_when_due(reason: str) -> None:
    refused = KafkaView(
        connection=KafkaConnection("k:9093", protocol="SASL_SSL"),
        problem=Problem(reason, "Kafka k:9093 refused the credentials (Secret alice): ..."),
    )
    spec = {**SPEC, "trigger": {"maxInterval": "1h"}}  # due: the policy is a day old
    first = plan(world(kafka=refused, spec=spec), CONFIG)
    assert condition(first, "Degraded") == ("True", reason) and first.job is None
    assert [(e.type, e.reason) for e in first.events] == [("Warning", reason)]
    again = plan(stored(first, world(kafka=refused, spec=spec)), CONFIG)
    assert again.events == () and again.job is None
    unreachable = replace(refused, problem=Problem("LagUnavailable", "timed out"))
    assert plan(world(kafka=unreachable, spec=spec), CONFIG).job is not None


def test_no_second_job_while_one_runs() -> None:
    active = JobView("digits-update-4", 4, "Active", T0 - timedelta(minutes=1), "Schedule")
    p = plan(world(pending=5000, jobs=(active,)), CONFIG)
    assert p.job is None
    assert condition(p, "Progressing") == ("True", "JobRunning")
    message = p.status.condition("Progressing")
    assert message is not None and "digits-update-4 (trigger Schedule)" in message.message


def test_a_promoted_run_moves_the_champion_patches_the_target_once() -> None:
    w = world(status=PolicyStatus(champion=V6), finished=promoted(7, "digits-update-7"))
    p = plan(w, CONFIG)
    champion = p.status.champion
    assert champion is not None and champion.uri == "models:/digits/7"
    assert (champion.metric, champion.metricName, champion.job) == (
        0.93,
        "f1_macro",
        "digits-update-7",
    )
    assert p.status.previousChampion == V6
    run = p.status.lastRun
    assert run is not None and (run.job, run.sequence, run.trigger) == ("digits-update-7", 7, "Lag")
    assert run.offsets["0"].start == 0 and run.offsets["0"].end == 100
    assert [(e.type, e.reason) for e in p.events] == [("Normal", "Promoted")]
    assert p.patch is not None and p.patch.uri == "models:/digits/7"
    assert [op.op for op in p.patch.ops] == ["test", "test", "replace"]
    assert condition(p, "Ready") == ("True", "ChampionServing")

    # Next pass: the Deployment serves it and status records the Job: nothing to do or write.
    again = plan(stored(p, w, target=workload(deployment("models:/digits/7"))), CONFIG)
    assert again.events == () and again.patch is None and again.job is None
    assert merge_patch(p.status.to_wire(), again.status.to_wire()) == {}


def test_a_replayed_promotion_of_the_champion_keeps_previous() -> None:
    seven = Champion(uri="models:/digits/7", version="7")
    status = PolicyStatus(champion=seven, previousChampion=V6)
    p = plan(world(status=status, finished=promoted(7, "digits-update-8")), CONFIG)
    assert p.status.champion == seven and p.status.previousChampion == V6
    assert p.status.lastRun is not None and p.status.lastRun.job == "digits-update-8"


def test_a_rejected_run_keeps_the_champion() -> None:
    rejected = finished("digits-update-8", '{"outcome":"Rejected","reasons":["BelowFloor"]}')
    p = plan(world(status=PolicyStatus(champion=V6), finished=rejected), CONFIG)
    assert p.status.champion == V6 and p.status.previousChampion is None
    assert p.status.lastRun is not None and p.status.lastRun.outcome == "Rejected"
    assert [(e.type, e.reason) for e in p.events] == [("Normal", "Rejected")]
    assert "BelowFloor" in p.events[0].message


def test_a_failed_run_degrades_and_backs_off_until_a_run_succeeds() -> None:
    w = world(status=PolicyStatus(champion=V6), finished=finished("digits-update-9", "Traceback"))
    p = plan(
        replace(w, kafka=KafkaView(connection=KafkaConnection("kafka:9092"), pending=5000)), CONFIG
    )
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "RunFailed")]
    assert condition(p, "Degraded") == ("True", "RunFailed")
    assert condition(p, "Ready") == ("True", "ChampionServing")  # still serving V6
    assert p.job is None  # lag is high, but the failure back-off holds
    assert condition(p, "Progressing") == ("False", "FailureBackoff")
    assert p.recheck_at == T0 - timedelta(seconds=5) + timedelta(seconds=300)

    later = stored(p, w, now=T0 + timedelta(minutes=6))
    after = plan(
        replace(later, kafka=KafkaView(connection=KafkaConnection("kafka:9092"), pending=5000)),
        CONFIG,
    )
    assert after.job is not None and after.job["metadata"]["name"] == "digits-update-10"
    assert condition(after, "Degraded") == ("True", "RunFailed")
    skipped = finished("digits-update-10", '{"outcome":"Skipped","reasons":["NoNewRecords"]}')
    healed = plan(replace(stored(after, later), finished=skipped), CONFIG)
    assert condition(healed, "Degraded") == ("False", "AsExpected")


def test_an_invalid_spec_starts_nothing() -> None:
    w = world(status=PolicyStatus(champion=V6), pending=5000)
    broken = replace(w.policy, policy=None, spec_error="spec.model.name: is required")
    p = plan(replace(w, policy=broken), CONFIG)
    assert p.job is None and p.patch is None and p.spec_error == "spec.model.name: is required"
    assert condition(p, "Ready") == ("False", "InvalidSpec")
    assert condition(p, "Progressing") == ("False", "InvalidSpec")
    assert condition(p, "Degraded") == ("True", "InvalidSpec")


def test_a_strimzi_cluster_that_cannot_serve_is_a_spec_error() -> None:
    kafka = KafkaView(spec_error="spec.source.kafka.strimziCluster: no plain listener")
    p = plan(world(kafka=kafka), CONFIG)
    assert p.spec_error == kafka.spec_error and p.job is None
    assert condition(p, "Degraded") == ("True", "InvalidSpec")


def test_kafka_problems_degrade_and_start_nothing() -> None:
    kafka = KafkaView(problem=Problem("KafkaNotReady", "rolling"))
    spec = {**SPEC, "trigger": {"maxInterval": "1h"}}  # due: the policy is a day old
    p = plan(world(kafka=kafka, spec=spec), CONFIG)
    assert condition(p, "Degraded") == ("True", "KafkaNotReady")
    assert p.status.pendingRecords is None and p.job is None


def test_unknown_lag_drops_pending_from_status() -> None:
    before = plan(world(pending=10), CONFIG)
    after = plan(
        stored(before, world(pending=None), kafka=KafkaView(connection=KafkaConnection("k:9092"))),
        CONFIG,
    )
    patch = merge_patch(before.status.to_wire(), after.status.to_wire())
    assert "pendingRecords" in patch and patch["pendingRecords"] is None
    assert condition(after, "Progressing") == ("False", "LagUnknown")


def test_a_missing_target_warns_once() -> None:
    w = world(status=PolicyStatus(champion=V6), target=None)
    first = plan(w, CONFIG)
    assert condition(first, "Ready") == ("False", "TargetNotFound")
    assert condition(first, "Degraded") == ("True", "TargetNotFound")
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "TargetNotFound")]
    second = plan(stored(first, w), CONFIG)
    assert second.events == ()  # posted once, not every pass


def test_a_target_in_another_namespace_or_without_the_container_is_invalid() -> None:
    elsewhere = replace(workload(deployment(None)), namespace="other")
    p = plan(world(status=PolicyStatus(champion=V6), target=elsewhere), CONFIG)
    assert condition(p, "Ready") == ("False", "TargetInvalid") and p.patch is None
    spec = {**SPEC, "target": {"deployment": "digits-serving", "container": "sidecar"}}
    q = plan(world(status=PolicyStatus(champion=V6), spec=spec), CONFIG)
    assert condition(q, "Ready") == ("False", "TargetInvalid")


def test_ready_follows_the_target() -> None:
    serving = plan(world(status=PolicyStatus(champion=V6)), CONFIG)
    assert serving.patch is None and condition(serving, "Ready") == ("True", "ChampionServing")
    behind = plan(world(status=PolicyStatus(champion=V6), serving=None), CONFIG)
    assert behind.patch is not None and [op.op for op in behind.patch.ops] == ["test", "add"]
    spec = {k: v for k, v in SPEC.items() if k != "target"}
    untargeted = plan(world(status=PolicyStatus(champion=V6), spec=spec), CONFIG)
    assert (
        condition(untargeted, "Ready") == ("True", "ChampionTracked") and untargeted.patch is None
    )


def test_a_refused_patch_is_reported_not_retried_blindly() -> None:
    w = world(status=PolicyStatus(champion=V6), serving=None)
    p = plan(w, CONFIG, rollout_failure=Problem("TargetChanged", "Deployment changed; retrying"))
    assert p.patch is None
    assert condition(p, "Ready") == ("False", "TargetChanged")


def test_rollback_swaps_champions_moves_the_alias_and_the_target() -> None:
    seven = Champion(uri="models:/digits/7", version="7")
    status = PolicyStatus(champion=seven, previousChampion=V6)
    p = plan(world(status=status, rollback=True, serving="models:/digits/7"), CONFIG)
    assert (p.status.champion, p.status.previousChampion) == (V6, seven)
    assert p.alias is not None and (p.alias.model, p.alias.version) == ("digits", "6")
    assert p.alias.tracking_uri == "http://mlflow:5000"
    assert p.patch is not None and p.patch.uri == "models:/digits/6"
    assert [(e.type, e.reason) for e in p.events] == [("Normal", "RolledBack")]
    assert p.clear_rollback


def test_rollback_without_a_previous_champion_is_refused() -> None:
    p = plan(world(status=PolicyStatus(champion=V6), rollback=True), CONFIG)
    assert p.status.champion == V6 and p.alias is None and p.patch is None
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "RollbackRefused")]
    assert p.clear_rollback


def test_a_suspended_policy_starts_nothing() -> None:
    p = plan(world(spec={**SPEC, "suspend": True}, pending=5000), CONFIG)
    assert p.job is None and condition(p, "Progressing") == ("False", "Suspended")


def test_a_schedule_slot_starts_a_run_and_is_recorded() -> None:
    spec = {**SPEC, "trigger": {"minNewRecords": 1000, "schedule": "*/15 * * * *"}}
    at_slot = world(spec=spec, pending=3, now=T0 + timedelta(seconds=1))
    p = plan(at_slot, CONFIG)
    assert (
        p.job is not None and p.job["metadata"]["annotations"]["inshape.dev/trigger"] == "Schedule"
    )
    assert p.status.lastScheduleTime == T0
    assert p.status.to_wire()["lastScheduleTime"] == "2025-03-01T12:00:00Z"
    kept = plan(stored(p, at_slot, now=T0 + timedelta(minutes=1)), CONFIG)
    assert kept.status.lastScheduleTime == T0


def test_between_slots_the_plan_says_when_to_look_again() -> None:
    spec = {**SPEC, "trigger": {"minNewRecords": 1000, "schedule": "*/15 * * * *"}}
    last = PolicyStatus(lastScheduleTime=T0)
    p = plan(world(spec=spec, pending=3, status=last, now=T0 + timedelta(minutes=4)), CONFIG)
    assert p.job is None and p.recheck_at == T0 + timedelta(minutes=15)


def test_merge_patch() -> None:
    current = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True, "same": [1]}
    desired = {"a": 1, "b": {"c": 2, "d": 4, "e": 5}, "same": [1], "new": None}
    assert merge_patch(current, desired) == {"b": {"d": 4, "e": 5}, "gone": None, "new": None}
    assert merge_patch(None, {"a": 1}) == {"a": 1}
    assert merge_patch(desired, desired) == {}


@pytest.mark.parametrize("opted_in", [None, "another-policy"])
def test_a_target_that_does_not_name_the_policy_is_never_patched(opted_in: str | None) -> None:
    w = world(status=PolicyStatus(champion=V6))
    p = plan(replace(w, target=workload(deployment(None, opted_in))), CONFIG)
    assert p.patch is None
    assert condition(p, "Degraded") == ("True", "TargetNotOptedIn")
    found = p.status.condition("Degraded")
    assert found is not None and "inshape.dev/policy=digits" in found.message


def test_a_job_image_outside_the_allow_list_starts_nothing() -> None:
    spec = {**SPEC, "job": {"image": "evil.example/miner:1"}}
    p = plan(world(pending=5000, spec=spec), CONFIG)
    assert p.job is None
    assert condition(p, "Degraded") == ("True", "ImageNotAllowed")
    allowed = replace(CONFIG, job_images_allowed=("evil.example/miner:1",))
    q = plan(world(pending=5000, spec=spec), allowed)
    assert q.job is not None
    (container,) = q.job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "evil.example/miner:1"
    own = {**SPEC, "job": {"image": CONFIG.job_image}}
    assert plan(world(pending=5000, spec=own), CONFIG).job is not None


MLFLOW_REFUSED = MlflowView(
    problem=Problem(
        "MlflowUnauthorized",
        "MLflow http://mlflow:5000 refused the credentials of Secret mlflow-creds (401 on GET ...)",
    )
)


@pytest.mark.parametrize("reason", ["MlflowUnauthorized", "MlflowSecretMissing"])
def test_mlflow_refusing_the_credentials_degrades_once_and_starts_no_job(reason: str) -> None:
    refused = replace(MLFLOW_REFUSED, problem=Problem(reason, "Secret mlflow-creds ..."))
    spec = {**SPEC, "trigger": {"maxInterval": "1h"}}  # due: the policy is a day old
    first = plan(world(mlflow=refused, spec=spec, pending=5000), CONFIG)
    assert condition(first, "Degraded") == ("True", reason) and first.job is None
    degraded = first.status.condition("Degraded")
    assert degraded is not None and "mlflow-creds" in degraded.message
    assert [(e.type, e.reason) for e in first.events] == [("Warning", reason)]
    assert first.status.pendingRecords == 5000  # the rest of status is still written
    again = plan(stored(first, world(mlflow=refused, spec=spec, pending=5000)), CONFIG)
    assert again.events == () and again.job is None
    healed = plan(stored(first, world(spec=spec, pending=5000)), CONFIG)
    assert healed.job is not None and condition(healed, "Degraded") == ("False", "AsExpected")


def test_kafka_refusal_is_reported_before_mlflow_refusal() -> None:
    kafka = KafkaView(
        connection=KafkaConnection("k:9093", protocol="SASL_SSL"),
        problem=Problem("KafkaAuthFailed", "Kafka k:9093 refused ... (Secret alice)"),
    )
    p = plan(world(kafka=kafka, mlflow=MLFLOW_REFUSED), CONFIG)
    assert condition(p, "Degraded") == ("True", "KafkaAuthFailed")


def test_mlflow_unreachable_is_no_credential_problem() -> None:
    down = MlflowView(problem=Problem("MlflowUnavailable", "connection refused"))
    assert not down.runs_blocked
    assert plan(world(mlflow=down, pending=5000), CONFIG).job is not None


def test_a_rollback_waits_while_mlflow_refuses_the_credentials() -> None:
    seven = Champion(uri="models:/digits/7", version="7")
    status = PolicyStatus(champion=seven, previousChampion=V6)
    w = world(status=status, rollback=True, serving="models:/digits/7", mlflow=MLFLOW_REFUSED)
    p = plan(w, CONFIG)
    assert p.alias is None and p.patch is None and not p.clear_rollback
    assert (p.status.champion, p.status.previousChampion) == (seven, V6)
    assert condition(p, "Degraded") == ("True", "MlflowUnauthorized")


def test_mlflow_refusal_is_reported_over_a_passing_kafka_problem() -> None:
    blip = KafkaView(
        connection=KafkaConnection("kafka:9092"), problem=Problem("LagUnavailable", "timed out")
    )
    p = plan(world(kafka=blip, mlflow=MLFLOW_REFUSED, pending=None), CONFIG)
    assert condition(p, "Degraded") == ("True", "MlflowUnauthorized") and p.job is None
