"""`helm install` on kind, as a user installs the chart, then the whole loop in real containers:
the chart's own MLflow (sqlite on a local-path PVC) with basic auth (the admin password in a
Secret, the example signing in with it) behind the chart's NetworkPolicy (enforced: a pod it
does not admit is refused), the operator in its
pod under the chart's
ServiceAccount and RBAC, the example policy, records streamed from a pod to the in-cluster
Kafka by its Service name, an update Job, a promotion, the serving Deployment rolled, and the
new serving pod, called through its Service and cluster DNS, answering with the promoted
version's predictions. The namespace enforces Pod Security `restricted`: any violation fails.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from inshape_hack.kindtesting import KindEnv, port_forward, run_pod, tcp_open
from inshape_hack.kubectl import KubectlRunner as Kubectl
from tests.chart import scenario
from tests.chart.conftest import CHART, set_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

RECORDS = 3000
MLFLOW_SECRET = "mlflow-admin"
MLFLOW_PASSWORD = secrets.token_urlsafe(18)


def helm(kind_env: KindEnv, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        [str(kind_env.helm), *args],
        capture_output=True,
        text=True,
        env=kind_env.env(),
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}{result.stdout}")
    return result.stdout + result.stderr


@pytest.fixture
def release(kind_env: KindEnv, namespace: str, kubectl: Kubectl) -> Iterator[dict[str, str]]:
    repository, tag = kind_env.image.rsplit(":", 1)
    names = {"topic": f"{namespace}-digits", "model": f"{namespace}-digits"}
    values = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "kafka.bootstrapServers": kind_env.kafka_in_cluster,
        "example.topic": names["topic"],
        "example.modelName": names["model"],
        "example.minNewRecords": RECORDS,
        "operator.pollSeconds": 2,
        "operator.job.ttlSecondsAfterFinished": 600,
    }
    # Basic auth and NetworkPolicies on, as a platform team installs it: one Secret is the
    # admin's password and the example's credentials.
    kubectl(
        "create", "secret", "generic", MLFLOW_SECRET,
        "--from-literal=MLFLOW_TRACKING_USERNAME=admin",
        f"--from-literal=MLFLOW_TRACKING_PASSWORD={MLFLOW_PASSWORD}",
    )  # fmt: skip
    values |= {
        "mlflow.server.auth.enabled": True,
        "mlflow.server.auth.adminSecret.name": MLFLOW_SECRET,
        "mlflow.server.auth.adminSecret.key": "MLFLOW_TRACKING_PASSWORD",
        "networkPolicy.enabled": True,
    }
    install = ["inshape", str(CHART), "-n", namespace]
    # Other tests of the session may have applied the CRD with kubectl already; the chart
    # adopts it (a cluster-scoped CRD is shared by every release and test namespace).
    # One install creates the CRD and the example policy (a post-install hook while the CRD
    # is new).
    values["example.enabled"] = True
    notes = helm(kind_env, "install", *install, "--take-ownership", *set_args(values))
    assert f"kubectl -n {namespace} rollout status deployment/inshape-operator" in notes
    try:
        assert f"--topic {names['topic']} --count" in notes
        assert f"--bootstrap-servers {kind_env.kafka_in_cluster}" in notes
        yield names
    finally:
        print(kubectl("logs", "deployment/inshape-operator", "--tail=80", check=False))
        kubectl("delete", "jobs", "--all", "--wait=false", check=False)
        # Policies first, while the operator runs: it removes the finalizer Kopf puts on
        # objects with daemons; after `helm uninstall` no one would, and the namespace could
        # never be deleted.
        kubectl("delete", "modelupdatepolicies", "--all", "--timeout=60s", check=False)
        helm(kind_env, "uninstall", "inshape", "-n", namespace, "--wait=false", check=False)


def container_runtimes(kubectl: Kubectl) -> dict[str, str]:
    """component label -> the runtime of its first container (`containerd://...`)."""
    pods = json.loads(kubectl("get", "pods", "-o", "json"))["items"]
    out: dict[str, str] = {}
    for pod in pods:
        component = pod["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if component and statuses and statuses[0].get("containerID"):
            out[component] = statuses[0]["containerID"].split("://", 1)[0]
    return out


def test_helm_install_promotes_and_the_new_serving_pod_answers_through_its_service(
    kind_env: KindEnv,
    namespace: str,
    kubectl: Kubectl,
    release: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario.wait_for_operator(kubectl, timeout=300)
    assert scenario.deployment_uri(kubectl) == f"models:/{release['model']}@champion"

    run_pod(
        kubectl, "producer", kind_env.image,
        "python", "-m", "inshape_jobs", "produce", "--stream", "digits",
        "--bootstrap-servers", kind_env.kafka_in_cluster, "--topic", release["topic"],
        "--count", str(RECORDS),
    )  # fmt: skip

    uri = scenario.wait_for_promotion(kubectl, release["model"], timeout=600)
    scenario.wait_for_rollout(kubectl, uri, timeout=600)
    runtimes = container_runtimes(kubectl)
    assert runtimes.get("operator") == "containerd", runtimes
    assert runtimes.get("mlflow") == "containerd", runtimes
    job = scenario.json_of(kubectl, "modelupdatepolicy", scenario.POLICY)["status"]["lastRun"][
        "job"
    ]
    # The run is in the log of the Job's pod that succeeded: `kubectl logs job/...` may pick
    # an earlier pod the Job retried (a retry is how a Job rides out a transient failure).
    pods = scenario.json_of(kubectl, "pods", "-l", f"job-name={job}")["items"]
    succeeded = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Succeeded"]
    assert len(succeeded) == 1, [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    if len(pods) > 1:  # say why a pod was retried: a transient failure worth knowing about
        print(kubectl("logs", "-l", f"job-name={job}", "--prefix", "--tail=-1", check=False))
    job_log = kubectl("logs", succeeded[0])
    assert "Decision:" in job_log, job_log[-2000:]
    # The project's image carries the compiled record decoder, and the Job uses it.
    assert "Record decoder: compiled" in job_log, job_log[-2000:]

    rows, labels = scenario.digits_rows(20)
    service = f"http://{scenario.SERVING}.{namespace}.svc.cluster.local:8080"
    answer = run_pod(kubectl, "client", kind_env.image, "python", "-c", textwrap.dedent(f"""
        import json, urllib.request
        body = json.dumps({{"dataframe_records": {json.dumps(rows)}}}).encode()
        req = urllib.request.Request("{service}/invocations", data=body,
            headers={{"Content-Type": "application/json"}})
        print(json.dumps(json.load(urllib.request.urlopen(req, timeout=60))["predictions"]))
    """))  # fmt: skip
    answered: list[Any] = json.loads(answer.strip().splitlines()[-1])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    with port_forward(kubectl, "service/inshape-mlflow", 5000) as port:
        expected = scenario.expected_predictions(f"http://localhost:{port}", uri, rows)
    assert answered == expected
    assert sum(int(p) == t for p, t in zip(answered, labels, strict=True)) >= 15

    # The NetworkPolicy is enforced, not only accepted: the Job and the serving pod reached
    # MLflow above; a pod of the namespace without an admitted label cannot, `helm test`'s can.
    mlflow = f"inshape-mlflow.{namespace}.svc.cluster.local"
    assert not tcp_open(kubectl, "intruder", kind_env.image, mlflow, 5000)
    tester = {
        "app.kubernetes.io/name": "inshape",
        "app.kubernetes.io/instance": "inshape",
        "app.kubernetes.io/component": "test",
    }
    assert tcp_open(kubectl, "tester", kind_env.image, mlflow, 5000, labels=tester)
