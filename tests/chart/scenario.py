"""The chart's end-to-end scenario on kind (tests/chart/test_e2e.py, and reusable by benches):
installed chart -> records streamed -> model promoted -> serving Deployment rolled -> the new
serving pod answers with the promoted version's predictions."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from sklearn.datasets import load_digits

from inshape_hack.kindtesting import eventually
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_hack.serving import model_uri_of, pod_ready
from inshape_jobs.streams import DIGITS_FEATURES

POLICY = "digits"
SERVING = "digits-serving"
OPERATOR_SA = "inshape"


def json_of(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", *args, "-o", "json")))


def operator_pod(kubectl: Kubectl) -> dict[str, Any]:
    pods = json_of(kubectl, "pods", "-l", "app.kubernetes.io/component=operator")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return dict(pods[0])


def wait_for_operator(kubectl: Kubectl, timeout: float) -> dict[str, Any]:
    """The operator pod is Running, under the chart's ServiceAccount; returns the pod."""

    def running() -> bool:
        pods = json_of(kubectl, "pods", "-l", "app.kubernetes.io/component=operator")["items"]
        return len(pods) == 1 and pods[0].get("status", {}).get("phase") == "Running"

    eventually(running, timeout, "the operator pod is Running")
    pod = operator_pod(kubectl)
    assert pod["spec"]["serviceAccountName"] == OPERATOR_SA
    assert pod["spec"].get("automountServiceAccountToken") is not False
    return pod


def champion_uri(kubectl: Kubectl) -> str | None:
    status = json_of(kubectl, "modelupdatepolicy", POLICY).get("status") or {}
    uri = (status.get("champion") or {}).get("uri")
    return str(uri) if uri else None


def wait_for_promotion(kubectl: Kubectl, model: str, timeout: float) -> str:
    expected = f"models:/{model}/1"
    eventually(lambda: champion_uri(kubectl) == expected, timeout, f"champion is {expected}")
    status = json_of(kubectl, "modelupdatepolicy", POLICY)["status"]
    assert status["lastRun"]["outcome"] == "Promoted", status
    return expected


def deployment_uri(kubectl: Kubectl) -> str | None:
    return model_uri_of(json_of(kubectl, "deployment", SERVING))


def ready_serving_pod(kubectl: Kubectl, uri: str) -> dict[str, Any] | None:
    """A Ready serving pod whose container was started with MODEL_URI=uri, if there is one."""
    pods = json_of(kubectl, "pods", "-l", "app.kubernetes.io/component=serving")["items"]
    return next((dict(p) for p in pods if model_uri_of(p) == uri and pod_ready(p)), None)


def wait_for_rollout(kubectl: Kubectl, uri: str, timeout: float) -> dict[str, Any]:
    """The Deployment points at `uri` and a pod of the new template is Ready; returns it."""
    eventually(lambda: deployment_uri(kubectl) == uri, 60, f"the Deployment's MODEL_URI is {uri}")
    deployment = json_of(kubectl, "deployment", SERVING)
    assert deployment["metadata"]["generation"] == 2  # created, then patched once
    eventually(lambda: ready_serving_pod(kubectl, uri) is not None, timeout, f"a pod serves {uri}")
    pod = ready_serving_pod(kubectl, uri)
    assert pod is not None
    return pod


def digits_rows(count: int) -> tuple[list[dict[str, float]], list[int]]:
    data = load_digits()
    rows = [
        {name: float(v) for name, v in zip(DIGITS_FEATURES, data.data[i], strict=True)}
        for i in range(count)
    ]
    return rows, [int(t) for t in data.target[:count]]


def invoke(url: str, rows: list[dict[str, float]]) -> list[Any]:
    """POST /invocations as MLflow's scoring server expects it; the predictions."""
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"dataframe_records": rows}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    return list(body["predictions"])


def expected_predictions(tracking_uri: str, uri: str, rows: list[dict[str, float]]) -> list[Any]:
    """What the registered version predicts, loaded straight from the registry."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(uri)
    return [v.item() if hasattr(v, "item") else v for v in model.predict(pd.DataFrame(rows))]
