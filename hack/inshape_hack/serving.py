"""The stand-in serving Deployment that tests and benches point a policy's `target` at, and how
to read what it serves.

Its one container `server` has MODEL_URI as its first env variable: the variable the operator
patches, and the one a rollout changes in the pods.
"""

from __future__ import annotations

from typing import Any

from inshape_api.names import TARGET_OPT_IN_LABEL
from inshape_hack.podsecurity import RESTRICTED_CONTAINER

CONTAINER = "server"
MODEL_ENV = "MODEL_URI"
INITIAL_URI = "models:/none/0"  # what serving runs before the first promotion


def serving_deployment(
    name: str,
    namespace: str,
    image: str,
    *,
    replicas: int = 1,
    http_port: int | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    """A Deployment `restricted` admits, serving INITIAL_URI.

    Without ``http_port`` its container is a long-running process and nothing more. With it,
    it runs `python -m http.server` on the pod's IP behind an httpGet readiness probe, and a
    rollout starts the new pod before it stops the old one: a new pod is Ready once it answers.
    ``policy`` is the policy its owner lets patch it (the opt-in label).
    """
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", "import time; time.sleep(3600)"],
        "env": [{"name": MODEL_ENV, "value": INITIAL_URI}],
        "securityContext": RESTRICTED_CONTAINER,
    }
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "automountServiceAccountToken": False,
                "containers": [container],
            },
        },
    }
    if http_port is not None:
        container["command"] = ["python", "-m", "http.server", str(http_port)]
        container["args"] = ["--bind", "$(POD_IP)"]
        container["env"].append(
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        )
        container["ports"] = [{"name": "http", "containerPort": http_port}]
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
        spec["strategy"] = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if policy is not None:
        metadata["labels"] = {TARGET_OPT_IN_LABEL: policy}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def opt_in_patch(policy: str) -> dict[str, Any]:
    """The merge patch by which a Deployment's owner lets ``policy`` patch it."""
    return {"metadata": {"labels": {TARGET_OPT_IN_LABEL: policy}}}


def model_uri_patch(uri: str) -> list[dict[str, Any]]:
    """A JSON patch of the serving Deployment to ``uri``, the way a bare `kubectl patch` does."""
    return [{"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": uri}]


def model_uri_of(obj: dict[str, Any], container: str = CONTAINER) -> str | None:
    """MODEL_URI of ``container`` in a Deployment's pod template or in a pod; None if unset."""
    spec = obj["spec"]
    pod_spec = spec["template"]["spec"] if "template" in spec else spec
    for named in pod_spec["containers"]:
        if named["name"] == container:
            for var in named.get("env") or ():
                if var["name"] == MODEL_ENV:
                    return None if var.get("value") is None else str(var["value"])
    return None


def pod_ready(pod: dict[str, Any]) -> bool:
    """The pod's Ready condition is True and it is not being deleted."""
    conditions = (pod.get("status") or {}).get("conditions") or ()
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready and not pod["metadata"].get("deletionTimestamp")
