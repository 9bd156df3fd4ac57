"""The chart's end-to-end scenario on kind (pytest-kind): the image built from the
Dockerfile, Strimzi's operator from its pinned install YAML, `helm install` with Strimzi and
MLflow from the chart, the example policy, data streamed from a pod, a promotion, the serving
Deployment rolled, and the new serving pod answering with the promoted version.

Skips with the reason where Docker does not work (tests/kind/conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_kind import KindCluster

from inshape_hack.helm import helm_binary
from inshape_hack.testing import Kubectl
from tests.chart import scenario
from tests.chart.conftest import CHART, ROOT

pytestmark = [pytest.mark.kind, pytest.mark.slow, pytest.mark.timeout(3600)]

NAMESPACE = "inshape"
IMAGE = "inshape:kind-test"
RECORDS = 3000


def strimzi_url() -> str:
    """The install YAML pinned in hack/kind.mk, so the test and the README's path agree."""
    text = (ROOT / "hack" / "kind.mk").read_text()
    version = re.search(r"^STRIMZI_VERSION\s*\?=\s*(\S+)", text, re.MULTILINE)
    assert version is not None
    return (
        "https://github.com/strimzi/strimzi-kafka-operator/releases/download/"
        f"{version.group(1)}/strimzi-cluster-operator-{version.group(1)}.yaml"
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[KindCluster]:
    kind = KindCluster("inshape-pytest")
    kind.create(config_file=ROOT / "kind-config.yaml")
    try:
        subprocess.run(["docker", "build", "-t", IMAGE, str(ROOT)], check=True, timeout=1800)
        kind.load_docker_image(IMAGE)
        yield kind
    finally:
        kind.delete()


def kubectl_for(cluster: KindCluster) -> Kubectl:
    def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(cluster.kubectl_path), "-n", NAMESPACE, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={"KUBECONFIG": str(cluster.kubeconfig_path), "PATH": "/usr/bin:/bin"},
            timeout=900,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout if check else result.stdout + result.stderr

    return kubectl


def helm(cluster: KindCluster, *args: str) -> str:
    binary = shutil.which("helm") or helm_binary()
    result = subprocess.run(
        [binary, "--kubeconfig", str(cluster.kubeconfig_path), "-n", NAMESPACE, *args],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def in_cluster(kubectl: Kubectl, name: str, *command: str) -> str:
    """Run a command in a throwaway pod of the inshape image; its output."""
    kubectl("delete", "pod", name, "--ignore-not-found")
    return kubectl(
        "run", name, "--rm", "-i", "--restart=Never", f"--image={IMAGE}",
        "--image-pull-policy=Never", "--command", "--", *command,
    )  # fmt: skip


def test_helm_install_on_kind_promotes_and_the_new_serving_pod_answers(
    cluster: KindCluster,
) -> None:
    kubectl = kubectl_for(cluster)
    cluster.kubectl("create", "namespace", NAMESPACE)
    with urllib.request.urlopen(strimzi_url(), timeout=120) as response:
        install = (
            response.read().decode().replace("namespace: myproject", f"namespace: {NAMESPACE}")
        )
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=install)
    kubectl("rollout", "status", "deployment/strimzi-cluster-operator", "--timeout=600s")

    common = [
        "inshape", str(CHART), "--set", "image.repository=inshape,image.tag=kind-test",
        "--set", "image.pullPolicy=Never,strimzi.enabled=true",
        "--set", f"example.minNewRecords={RECORDS},operator.pollSeconds=5",
    ]  # fmt: skip
    helm(cluster, "install", *common)
    kubectl("rollout", "status", "deployment/inshape-mlflow", "--timeout=600s")
    kubectl("wait", "kafka/inshape-kafka", "--for=condition=Ready", "--timeout=1200s")
    helm(cluster, "upgrade", *common, "--set", "example.enabled=true")
    scenario.wait_for_operator(kubectl, timeout=300)

    in_cluster(
        kubectl, "producer", "python", "-m", "inshape_jobs", "produce", "--stream", "digits",
        "--bootstrap-servers", "inshape-kafka-kafka-bootstrap:9092", "--topic", "digits-events",
        "--count", str(RECORDS),
    )  # fmt: skip
    model = "digits-classifier"
    uri = scenario.wait_for_promotion(kubectl, model, timeout=1200)
    pod = scenario.wait_for_rollout(kubectl, uri, timeout=900)

    rows, labels = scenario.digits_rows(20)
    # Pod IPs are reachable inside the cluster only, and the server binds the pod IP (so
    # port-forward, which dials localhost in the pod, cannot reach it): ask from a pod.
    answer = in_cluster(kubectl, "client", "python", "-c", textwrap.dedent(f"""
        import json, urllib.request
        body = json.dumps({{"dataframe_records": {json.dumps(rows)}}}).encode()
        req = urllib.request.Request("http://{pod['status']['podIP']}:8080/invocations",
            data=body, headers={{"Content-Type": "application/json"}})
        print(json.dumps(json.load(urllib.request.urlopen(req, timeout=60))["predictions"]))
    """))  # fmt: skip
    answered: list[Any] = json.loads(answer.strip().splitlines()[-1])
    with cluster.port_forward("service/inshape-mlflow", 5000, "-n", NAMESPACE) as port:
        expected = scenario.expected_predictions(f"http://localhost:{port}", uri, rows)
    assert answered == expected
    assert sum(int(p) == t for p, t in zip(answered, labels, strict=True)) >= 15
