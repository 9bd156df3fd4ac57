"""The operator end to end on the local cluster: lag threshold -> one Job -> result -> rollout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from inshape_api.names import CHAMPION_ALIAS
from inshape_hack.kindtesting import KindEnv
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_hack.serving import INITIAL_URI
from inshape_operator.conditions import parse_time
from inshape_operator.results import job_state
from tests.operator.conftest import World, host_operator, running_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB_TIMEOUT = 240
SLOW_POLL = 120


def finished(world: World, name: str, count: int) -> bool:
    jobs = world.jobs(name)
    return len(jobs) >= count and all(job_state(j) != "Active" for j in jobs)


def test_threshold_starts_one_job_and_a_promotion_is_rolled_out_once(world: World) -> None:
    policy = world.policy("lagged", {"trigger": {"minNewRecords": 300}})
    world.fill(policy, 200)
    world.wait(
        lambda: world.status("lagged").get("pendingRecords") == 200, 30, "pendingRecords is 200"
    )
    time.sleep(3)  # several polls: still below the threshold
    assert world.jobs("lagged") == []

    world.fill(policy, 150, seed=1)
    world.wait(lambda: len(world.jobs("lagged")) == 1, 15, "the update Job is created")

    def finished_alone() -> bool:
        jobs = world.jobs("lagged")
        assert len(jobs) == 1, "a second Job while the first runs"
        return job_state(jobs[0]) != "Active"

    world.wait(finished_alone, JOB_TIMEOUT, "the update Job finished, never a second meanwhile")
    assert job_state(world.jobs("lagged")[0]) == "Succeeded", world.operator.output()

    uri = f"models:/{policy.spec.model.name}/1"
    world.wait(lambda: world.model_uri() == uri, 30, f"the Deployment serves {uri}")
    world.wait(
        lambda: world.status("lagged").get("lastRun", {}).get("outcome") == "Promoted",
        15,
        "lastRun is Promoted",
    )
    time.sleep(3)  # more polls change nothing
    status = world.status("lagged")
    assert status["champion"]["uri"] == uri
    assert world.deployment()["metadata"]["generation"] == 2  # created, patched once
    assert world.replica_sets() == 2
    assert len(world.jobs("lagged")) == 1
    assert world.condition("lagged", "Ready")["reason"] == "ChampionServing"


def test_rejected_run_leaves_the_deployment_alone(world: World) -> None:
    policy = world.policy("rejected", {"evaluation": {"floor": 0.9999}})
    world.fill(policy, 400)
    world.wait(lambda: finished(world, "rejected", 1), JOB_TIMEOUT, "the update Job finished")
    world.wait(
        lambda: world.status("rejected").get("lastRun", {}).get("outcome") == "Rejected",
        15,
        "lastRun is Rejected",
    )
    time.sleep(2)
    assert world.model_uri() == INITIAL_URI
    assert world.deployment()["metadata"]["generation"] == 1
    assert "champion" not in world.status("rejected")


def test_a_failing_job_degrades_the_policy(world: World) -> None:
    policy = world.policy(
        "failing", {"model": {"params": {"loss": "no-such-loss"}}, "job": {"backoffLimit": 0}}
    )
    world.fill(policy, 400)
    world.wait(lambda: finished(world, "failing", 1), JOB_TIMEOUT, "the update Job finished")
    world.wait(
        lambda: world.condition("failing", "Degraded").get("status") == "True",
        15,
        "Degraded is True",
    )
    degraded = world.condition("failing", "Degraded")
    assert degraded["reason"] == "RunFailed"
    assert "failed" in degraded["message"]
    assert world.status("failing")["lastRun"]["outcome"] == "Failed"
    time.sleep(3)  # the lag is still above the threshold: the failure back-off holds
    assert len(world.jobs("failing")) == 1
    assert world.model_uri() == INITIAL_URI
    assert world.deployment()["metadata"]["generation"] == 1


def test_a_killed_operator_continues_without_a_second_job(world: World) -> None:
    policy = world.policy("restart")
    world.fill(policy, 400)
    world.wait(lambda: len(world.jobs("restart")) == 1, 20, "the update Job is created")
    world.operator.kill()
    world.operator.start()
    world.wait(lambda: finished(world, "restart", 1), JOB_TIMEOUT, "the update Job finished")
    uri = f"models:/{policy.spec.model.name}/1"
    world.wait(lambda: world.model_uri() == uri, 30, f"the Deployment serves {uri}")
    world.operator.kill()  # and once more, after the promotion
    world.operator.start()
    time.sleep(5)
    assert len(world.jobs("restart")) == 1
    assert world.deployment()["metadata"]["generation"] == 2
    assert world.status("restart")["lastRun"]["outcome"] == "Promoted"


def test_rollback_annotation_restores_the_previous_champion(world: World) -> None:
    policy = world.policy("rolled", {"trigger": {"minNewRecords": 300}})
    model = policy.spec.model.name
    world.fill(policy, 300, seed=1)
    first = f"models:/{model}/1"
    world.wait(lambda: world.model_uri() == first, JOB_TIMEOUT, f"the Deployment serves {first}")
    world.fill(policy, 3000, seed=2)  # much more data: the candidate wins
    second = f"models:/{model}/2"
    world.wait(lambda: world.model_uri() == second, JOB_TIMEOUT, f"the Deployment serves {second}")
    assert world.status("rolled")["previousChampion"]["uri"] == first

    world.kubectl("annotate", "mup", "rolled", "inshape.dev/rollback=true")

    world.wait(lambda: world.model_uri() == first, 30, f"the Deployment is back on {first}")
    world.wait(
        lambda: (
            "inshape.dev/rollback"
            not in (world.get_policy("rolled")["metadata"].get("annotations") or {})
        ),
        30,
        "the rollback annotation is removed",
    )
    status = world.status("rolled")
    assert status["champion"]["uri"] == first
    assert status["previousChampion"]["uri"] == second
    client = MlflowClient(world.endpoints.mlflow_tracking_uri)
    assert client.get_model_version_by_alias(model, CHAMPION_ALIAS).version == "1"
    time.sleep(3)  # more polls do not roll forward again
    assert world.model_uri() == first


@pytest.fixture
def slow_poll(
    kind_env: KindEnv, namespace: str, kubectl: Kubectl, tmp_path: Path
) -> Iterator[World]:
    """A world whose operator polls only every SLOW_POLL seconds."""
    operator = host_operator(
        kind_env, namespace, tmp_path / "operator.log", INSHAPE_POLL_SECONDS=str(SLOW_POLL)
    )
    with running_world(World, kind_env, namespace, kubectl, operator) as w:
        yield w


def test_max_interval_starts_its_job_when_due_not_at_the_next_poll(slow_poll: World) -> None:
    world = slow_poll
    # One minute: the shortest maxInterval the API admits.
    policy = world.policy("due", {"trigger": {"minNewRecords": 100_000, "maxInterval": "1m"}})
    world.fill(policy, 50)  # below the threshold: only the interval can start a run
    world.wait(lambda: len(world.jobs("due")) == 1, 100, "the update Job is created")
    job = world.jobs("due")[0]
    assert job["metadata"]["annotations"]["inshape.dev/trigger"] == "MaxInterval"
    created = parse_time(world.get_policy("due")["metadata"]["creationTimestamp"])
    started = parse_time(job["metadata"]["creationTimestamp"])
    assert created is not None and started is not None
    # Due 60 s after the policy's creation; the next poll would have come 120 s after it.
    late = (started - created).total_seconds() - 60
    assert -1 <= late <= 10, f"the Job started {late:+.0f} s from its due time"
