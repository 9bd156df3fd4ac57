"""Faults mid-run on kind, in real containers. Nothing is lost, serving always has a model.

Each test breaks one thing while an update run works (the Job's container SIGKILLed on the
node, the operator's pod deleted, the Kafka pod deleted, MLflow scaled to zero, the policy
itself deleted), lets the system recover, then audits the MLflow runs
against the topic (conftest.nothing_lost) and the serving Deployment's MODEL_URI history
(conftest.ServingWatch). Record counts are as small as still puts the fault mid-drain; a
fault that lands too late fails the test with a message saying so, rather than passing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from inshape_api.names import RUN_KEY_TAG
from inshape_hack.kafka_kind import KafkaOnKind
from inshape_hack.serving import INITIAL_URI
from inshape_operator.results import job_state
from tests.faults.conftest import (
    FaultWorld,
    Restartable,
    ServingWatch,
    accepted_runs,
    end_offsets,
    good_lines,
    kcat_fill,
    mixed_lines,
    nothing_lost,
    running_process,
    wait_mid_drain,
)
from tests.integration.helpers import committed
from tests.operator.conftest import SERVING

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

RUN_TIMEOUT = 240
# Enough records that draining them takes a few seconds (drain ~100-200k rec/s).
DRAIN_RECORDS = 200_000

Watch = Callable[..., ServingWatch]


def job_named(world: FaultWorld, policy: str, index: int = 0) -> str:
    world.wait(lambda: len(world.jobs(policy)) > index, 60, f"update Job #{index + 1} of {policy}")
    jobs = sorted(world.jobs(policy), key=lambda j: j["metadata"]["creationTimestamp"])
    return str(jobs[index]["metadata"]["name"])


def job_done(world: FaultWorld, job: str) -> str | None:
    obj = world.job(job)
    if obj is None:
        return None
    state = job_state(obj)
    return None if state == "Active" else state


def test_update_pod_sigkilled_mid_drain_is_retried_without_loss(
    world: FaultWorld, serving_watch: Watch, tmp_path: Path
) -> None:
    watch = serving_watch()
    policy = world.policy(
        "podkill", {"trigger": {"minNewRecords": DRAIN_RECORDS}, "job": {"backoffLimit": 2}}
    )
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    kcat_fill(kafka.bootstrapServers, kafka.topic, good_lines(DRAIN_RECORDS), tmp_path)
    job = job_named(world, "podkill")
    first = running_process(world, job)
    wait_mid_drain(world, first)
    first.kill()
    world.wait(lambda: not first.alive(), 15, "the killed pod's process is gone")
    assert committed(policy) == {}, "the killed attempt committed offsets"

    # The Job controller retries in a new pod with the same Job UID (run key).
    world.wait(lambda: job_done(world, job) is not None, RUN_TIMEOUT, f"Job {job} finished")
    obj = world.job(job)
    assert obj is not None
    assert job_state(obj) == "Succeeded", world.operator.output()
    assert obj["status"].get("failed") == 1, obj["status"]
    uri = f"models:/{policy.spec.model.name}/1"
    world.wait(lambda: world.model_uri() == uri, 30, f"the Deployment serves {uri}")

    ledger = nothing_lost(policy, DRAIN_RECORDS)
    assert [r["run_key"] for r in ledger.runs] == [obj["metadata"]["uid"]]
    assert len(world.jobs("podkill")) == 1
    assert watch.check(policy.spec.mlflow.trackingUri, policy.spec.model.name) == [
        INITIAL_URI,
        uri,
    ]


def test_operator_killed_between_job_success_and_patch_patches_once(
    world: FaultWorld, serving_watch: Watch, tmp_path: Path
) -> None:
    watch = serving_watch()
    count = 20_000
    policy = world.policy("opkill", {"trigger": {"minNewRecords": count}})
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    kcat_fill(kafka.bootstrapServers, kafka.topic, good_lines(count), tmp_path)
    job = job_named(world, "opkill")
    world.operator.kill()  # dead when the Job succeeds: the patch has not happened yet
    world.wait(lambda: job_done(world, job) is not None, RUN_TIMEOUT, f"Job {job} finished")
    assert job_done(world, job) == "Succeeded"
    time.sleep(2)
    assert world.model_uri() == INITIAL_URI
    assert world.deployment()["metadata"]["generation"] == 1

    world.operator.start()
    uri = f"models:/{policy.spec.model.name}/1"
    world.wait(lambda: world.model_uri() == uri, 60, f"the restarted operator serves {uri}")
    world.wait(lambda: world.outcome("opkill") == "Promoted", 30, "lastRun is Promoted")
    world.operator.kill()  # and again right after the patch: no second one
    world.operator.start()
    time.sleep(6)
    assert world.deployment()["metadata"]["generation"] == 2  # created, patched once
    assert world.replica_sets() == 2
    assert len(world.jobs("opkill")) == 1
    assert world.status("opkill")["champion"]["uri"] == uri
    nothing_lost(policy, count)
    assert watch.check(policy.spec.mlflow.trackingUri, policy.spec.model.name) == [
        INITIAL_URI,
        uri,
    ]
    assert watch.generations[-1] == 2


def test_kafka_broker_restarted_mid_drain_loses_nothing(
    world: FaultWorld,
    serving_watch: Watch,
    own_kafka: tuple[KafkaOnKind, Restartable],
    tmp_path: Path,
) -> None:
    watch = serving_watch()
    broker, broker_pod = own_kafka
    policy = world.policy(
        "brokerbounce",
        {
            "source": {"kafka": {"bootstrapServers": broker.host_bootstrap}},
            "trigger": {"minNewRecords": DRAIN_RECORDS},
            "job": {"backoffLimit": 3},
        },
    )
    kafka = policy.spec.source.kafka
    kcat_fill(broker.host_bootstrap, kafka.topic, good_lines(DRAIN_RECORDS), tmp_path)
    job = job_named(world, "brokerbounce")
    process = running_process(world, job)
    wait_mid_drain(world, process)
    # A restart in two steps, to see where the run was when the broker went away.
    broker_pod.stop()
    landed = process.log()
    broker_pod.start()  # same Service and volume: the Job's clients reconnect to the address
    assert "Decision:" not in landed, f"the run was past its drain when Kafka stopped:\n{landed}"

    # The Job may finish (reconnected), or fail and be retried (same run key) or followed by
    # the next Job: either way the group ends at the end of the topic, once.
    ends = end_offsets(broker.host_bootstrap, kafka.topic)
    world.wait(lambda: committed(policy) == ends, 2 * RUN_TIMEOUT, "the group committed the end")
    uri = f"models:/{policy.spec.model.name}/1"
    world.wait(lambda: world.model_uri() == uri, 60, f"the Deployment serves {uri}")
    nothing_lost(policy, DRAIN_RECORDS)
    watch.check(policy.spec.mlflow.trackingUri, policy.spec.model.name)
    attempts = [(j["metadata"]["name"], j["status"]) for j in world.jobs("brokerbounce")]
    print(json.dumps({"jobs": attempts}))


def test_mlflow_down_fails_the_run_and_the_next_one_loses_nothing(
    world: FaultWorld,
    serving_watch: Watch,
    own_mlflow: tuple[str, Restartable],
    tmp_path: Path,
) -> None:
    watch = serving_watch()
    tracking_uri, mlflow_server = own_mlflow
    first, second = 5_000, 150_000
    policy = world.policy(
        "mlflowdown",
        {
            "mlflow": {"trackingUri": tracking_uri},
            "trigger": {"minNewRecords": first},
            # MLflow's client retries a refused connection for minutes; the deadline ends the
            # run sooner (the Job then fails like any run that cannot log).
            "job": {"backoffLimit": 0, "activeDeadlineSeconds": 60},
        },
    )
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    model = policy.spec.model.name
    kcat_fill(kafka.bootstrapServers, kafka.topic, good_lines(first), tmp_path)
    uri = f"models:/{model}/1"
    world.wait(lambda: world.model_uri() == uri, RUN_TIMEOUT, f"the first run promotes {uri}")
    world.wait(lambda: world.outcome("mlflowdown") == "Promoted", 30, "lastRun is Promoted")
    before = committed(policy)

    kcat_fill(kafka.bootstrapServers, kafka.topic, good_lines(second, seed=1), tmp_path)
    job = job_named(world, "mlflowdown", 1)
    process = running_process(world, job)
    wait_mid_drain(world, process)
    mlflow_server.stop()  # scaled to zero, its pod deleted at once
    # The next run gets time enough; the running Job keeps the deadline it was created with.
    world.kubectl(
        "patch", "mup", "mlflowdown", "--type=merge", "-p",
        json.dumps({"spec": {"job": {"activeDeadlineSeconds": 600}}}),
    )  # fmt: skip
    world.wait(lambda: job_done(world, job) is not None, RUN_TIMEOUT, f"Job {job} finished")
    assert job_done(world, job) == "Failed"
    world.wait(
        lambda: world.condition("mlflowdown", "Degraded").get("status") == "True",
        30,
        "Degraded is True",
    )
    assert world.condition("mlflowdown", "Degraded")["reason"] == "RunFailed"
    assert world.outcome("mlflowdown") == "Failed"
    assert committed(policy) == before, "the failed run committed offsets"
    assert world.model_uri() == uri, "serving changed on a failed run"

    mlflow_server.start()  # same Service, same store on its volume
    world.wait(
        lambda: (
            len(world.jobs("mlflowdown")) == 3
            and job_done(world, job_named(world, "mlflowdown", 2)) is not None
        ),
        RUN_TIMEOUT,
        "the run after MLflow came back finished",
    )
    assert job_done(world, job_named(world, "mlflowdown", 2)) == "Succeeded"
    world.wait(
        lambda: world.outcome("mlflowdown") in ("Promoted", "Rejected"), 30, "lastRun accepted"
    )
    world.wait(
        lambda: world.condition("mlflowdown", "Degraded").get("status") == "False",
        30,
        "Degraded is False again",
    )
    ledger = nothing_lost(policy, first + second)
    assert len(ledger.runs) == 2
    values = watch.check(tracking_uri, model)
    assert values[:2] == [INITIAL_URI, uri]


def test_malformed_records_are_counted_exactly(
    world: FaultWorld, serving_watch: Watch, tmp_path: Path
) -> None:
    watch = serving_watch()
    good, bad = 100_000, 10_000
    policy = world.policy("malformed", {"trigger": {"minNewRecords": good + bad}})
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    produced = kcat_fill(kafka.bootstrapServers, kafka.topic, mixed_lines(good, bad), tmp_path)
    assert produced == good + bad
    uri = f"models:/{policy.spec.model.name}/1"
    world.wait(lambda: world.model_uri() == uri, RUN_TIMEOUT, f"the Deployment serves {uri}")
    ledger = nothing_lost(policy, produced)
    assert (ledger.valid, ledger.rejected) == (good, bad), ledger.rejected_by_reason
    assert len(ledger.rejected_by_reason) >= 6, ledger.rejected_by_reason
    record = world.status("malformed")["lastRun"]
    print(json.dumps({"rejectedByReason": ledger.rejected_by_reason, "lastRun": record}))
    watch.check(policy.spec.mlflow.trackingUri, policy.spec.model.name)


def test_policy_deleted_mid_run_collects_the_job_and_promotes_nothing(
    world: FaultWorld, serving_watch: Watch, tmp_path: Path
) -> None:
    watch = serving_watch()
    policy = world.policy("deleted", {"trigger": {"minNewRecords": DRAIN_RECORDS}})
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    kcat_fill(kafka.bootstrapServers, kafka.topic, good_lines(DRAIN_RECORDS), tmp_path)
    job = job_named(world, "deleted")
    process = running_process(world, job)
    wait_mid_drain(world, process)
    world.kubectl("delete", "mup", "deleted", "--wait=false")

    world.wait(lambda: world.job(job) is None, 60, f"Job {job} garbage-collected")
    world.wait(lambda: world.pods(job) == [], 60, f"the pods of Job {job} are gone")
    world.wait(lambda: not process.alive(), 30, f"pod {process.pod}'s process ended")
    time.sleep(5)  # an operator that wrongly acted on the deletion would do it by now
    assert world.jobs("deleted") == []
    assert world.model_uri() == INITIAL_URI
    assert world.deployment()["metadata"]["generation"] == 1
    tracking = policy.spec.mlflow.trackingUri
    offsets = committed(policy)
    print(json.dumps({"committedAfterDeletion": offsets}))
    if offsets:  # the Job beat the garbage collector: then exactly once
        nothing_lost(policy, DRAIN_RECORDS)
    else:
        assert accepted_runs(tracking, policy.experiment) == []
        versions = MlflowClient(tracking).search_model_versions(
            f"name = '{policy.spec.model.name}'"
        )
        assert versions == [], "a killed run registered a model"
    assert watch.check(tracking, policy.spec.model.name) == [INITIAL_URI]


def test_two_policies_on_one_topic_train_independently(
    world: FaultWorld, serving_watch: Watch, tmp_path: Path
) -> None:
    world.serving("serving-b")
    watch_a, watch_b = serving_watch(SERVING), serving_watch("serving-b")
    topic = f"{world.namespace}-shared"
    count = 20_000

    def spec(deployment: str) -> dict[str, object]:
        return {
            "source": {"kafka": {"topic": topic}},
            "trigger": {"minNewRecords": count},
            "target": {"deployment": deployment},
        }

    a = world.policy("pa", spec(SERVING))
    b = world.policy("pb", spec("serving-b"))
    assert a.consumer_group != b.consumer_group
    bootstrap = world.endpoints.kafka_bootstrap
    total = 0
    for round_, seed in enumerate((0, 1), start=1):
        total += kcat_fill(bootstrap, topic, good_lines(count, seed=seed), tmp_path)
        for name in ("pa", "pb"):
            world.wait(
                lambda name=name, round_=round_: (
                    len(world.jobs(name)) == round_
                    and all(job_state(j) != "Active" for j in world.jobs(name))
                    and world.status(name).get("pendingRecords") == 0
                ),
                RUN_TIMEOUT,
                f"run {round_} of {name} finished",
            )
        for policy, deployment in ((a, SERVING), (b, "serving-b")):
            ledger = nothing_lost(policy, total)
            assert len(ledger.runs) == round_
            uri = world.model_uri(deployment)
            assert uri is not None and uri.startswith(f"models:/{policy.spec.model.name}/")
    for policy, watch in ((a, watch_a), (b, watch_b)):
        values = watch.check(policy.spec.mlflow.trackingUri, policy.spec.model.name)
        assert values[0] == INITIAL_URI and len(values) >= 2
    runs_a = {
        r.data.tags[RUN_KEY_TAG] for r in accepted_runs(a.spec.mlflow.trackingUri, a.experiment)
    }
    runs_b = {
        r.data.tags[RUN_KEY_TAG] for r in accepted_runs(b.spec.mlflow.trackingUri, b.experiment)
    }
    assert runs_a.isdisjoint(runs_b)
