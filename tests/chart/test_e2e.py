"""`helm install` on the local cluster, then the whole loop: the operator (running in a pod
under the chart's ServiceAccount and RBAC) sees the example policy's lag, runs an update Job,
promotes the model, rolls the serving Deployment, and the new serving pod (`mlflow models
serve` on its pod IP) answers with the promoted version's predictions.

Kafka and MLflow are the local cluster's host services (kafka.bootstrapServers and
mlflow.external.uri); the images are ignored by the local kubelet, which runs each
container's command in the project's venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from inshape_hack.cluster import Endpoints
from inshape_hack.ports import free_port
from inshape_hack.testing import Kubectl
from tests.chart import scenario
from tests.chart.conftest import CHART, set_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDS = 1500


def helm(endpoints: Endpoints, *args: str, check: bool = True) -> str:
    env = {**os.environ, "KUBECONFIG": endpoints.kubeconfig}
    result = subprocess.run(
        [endpoints.helm, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}{result.stdout}")
    return result.stdout + result.stderr


@pytest.fixture
def release(local_cluster: Endpoints, namespace: str, kubectl: Kubectl) -> Iterator[dict[str, str]]:
    names = {"topic": f"{namespace}-digits", "model": f"{namespace}-digits"}
    values = {
        "kafka.bootstrapServers": local_cluster.kafka_bootstrap,
        "mlflow.external.uri": local_cluster.mlflow_tracking_uri,
        "example.topic": names["topic"],
        "example.modelName": names["model"],
        "example.minNewRecords": RECORDS,
        "operator.pollSeconds": 2,
        "operator.job.ttlSecondsAfterFinished": 600,
        # Pods are host processes here: ports nobody else on the machine uses.
        "operator.healthPort": free_port(),
        "operator.metricsPort": free_port(),
    }
    install = ["inshape", str(CHART), "-n", namespace]
    # Other tests of the session may have applied the CRD with kubectl already; the chart
    # adopts it (a cluster-scoped CRD is shared by every release and test namespace).
    notes = helm(local_cluster, "install", *install, "--take-ownership", *set_args(values))
    assert f"kubectl -n {namespace} rollout status deployment/inshape-operator" in notes
    try:
        # The example's policy needs its CRD installed first (Helm maps every kind up front).
        notes = helm(
            local_cluster, "upgrade", *install, "--reuse-values", "--set", "example.enabled=true"
        )
        assert f"--topic {names['topic']} --count" in notes
        assert f"--bootstrap-servers {local_cluster.kafka_bootstrap}" in notes
        yield names
    finally:
        print(kubectl("logs", "deployment/inshape-operator", "--tail=80", check=False))
        kubectl("delete", "jobs", "--all", "--wait=false", check=False)
        helm(local_cluster, "uninstall", "inshape", "-n", namespace, "--wait=false", check=False)


def test_helm_install_promotes_and_the_new_serving_pod_answers(
    local_cluster: Endpoints, namespace: str, kubectl: Kubectl, release: dict[str, str]
) -> None:
    scenario.wait_for_operator(kubectl, timeout=120)
    assert scenario.deployment_uri(kubectl) == f"models:/{release['model']}@champion"

    subprocess.run(
        [
            sys.executable, "-m", "inshape_jobs", "produce",
            "--bootstrap-servers", local_cluster.kafka_bootstrap,
            "--topic", release["topic"], "--stream", "digits", "--count", str(RECORDS),
        ],
        check=True, timeout=300,
    )  # fmt: skip

    uri = scenario.wait_for_promotion(kubectl, release["model"], timeout=600)
    pod = scenario.wait_for_rollout(kubectl, uri, timeout=300)
    rows, labels = scenario.digits_rows(20)
    answered = scenario.invoke(f"http://{pod['status']['podIP']}:8080", rows)
    assert answered == scenario.expected_predictions(local_cluster.mlflow_tracking_uri, uri, rows)
    assert sum(int(p) == t for p, t in zip(answered, labels, strict=True)) >= 15
