"""A shared MLflow tracking server inside the kind cluster, for tests and benches.

The project's image runs `mlflow server` (sqlite and artifacts on a local-path PVC, artifacts
served through the server) behind a NodePort Service, so the same URI,
``http://<node ip>:<node port>``, works from the host (the tests, an operator run as a host
process) and from pods (update Jobs). The chart's own MLflow is tested by the chart e2e test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inshape_hack.kubectl import KubectlRunner
from inshape_hack.podsecurity import NONROOT_UID, RESTRICTED_CONTAINER
from inshape_hack.polling import wait_until

Manifest = dict[str, Any]
NAME = "mlflow"
PORT = 5000
READY_SECONDS = 300.0


@dataclass(frozen=True)
class MlflowOnKind:
    """Where the in-cluster MLflow answers (the node port is the one Kubernetes allocated)."""

    namespace: str
    node_ip: str
    node_port: int = 0

    @property
    def uri(self) -> str:
        return f"http://{self.node_ip}:{self.node_port}"

    @property
    def in_cluster_uri(self) -> str:
        return f"http://{NAME}.{self.namespace}.svc.cluster.local:{PORT}"


def mlflow_manifests(namespace: str, node_ip: str, image: str) -> list[Manifest]:
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "inshape-test"}
    # MLflow 3 refuses requests whose Host header it does not know (DNS rebinding guard).
    hosts = ",".join(
        [
            f"{node_ip}:*",  # whichever node port Kubernetes allocates
            f"{NAME}:{PORT}",
            f"{NAME}.{namespace}:{PORT}",
            f"{NAME}.{namespace}.svc.cluster.local:{PORT}",
            "localhost:*",  # kubectl port-forward
        ]
    )
    pvc: Manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    container: Manifest = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "Never",
        "command": [
            "mlflow",
            "server",
            "--backend-store-uri=sqlite:////data/mlflow.db",
            "--artifacts-destination=/data/artifacts",
            "--serve-artifacts",
            "--host=0.0.0.0",
            f"--port={PORT}",
            "--workers=1",
            f"--allowed-hosts={hosts}",
        ],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            # No job runner (seven huey consumers, ~235 MiB each): nothing here submits jobs.
            {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"},
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 2},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "384Mi"}, "limits": {"memory": "1Gi"}},
    }
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one writer of the sqlite file
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "fsGroup": NONROOT_UID,
                        "runAsUser": NONROOT_UID,
                        "runAsGroup": NONROOT_UID,
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": NAME}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
        },
    }
    return [pvc, deployment, service]


def deploy_mlflow(kubectl: KubectlRunner, namespace: str, node_ip: str, image: str) -> MlflowOnKind:
    """Apply the server and wait until it is ready; where it answers."""
    kubectl.apply(mlflow_manifests(namespace, node_ip, image))
    wait_ready(kubectl, namespace)
    service = kubectl.json("get", "service", NAME, "-n", namespace)
    return MlflowOnKind(namespace, node_ip, int(service["spec"]["ports"][0]["nodePort"]))


def wait_ready(kubectl: KubectlRunner, namespace: str, timeout: float = READY_SECONDS) -> None:
    """Until the Deployment reports a ready replica of its current template."""

    def ready() -> bool:
        deployment = kubectl.json("get", "deployment", NAME, "-n", namespace)
        status = deployment.get("status", {})
        current = status.get("observedGeneration") == deployment.get("metadata", {}).get(
            "generation"
        )
        return current and int(status.get("readyReplicas") or 0) >= 1

    wait_until(ready, timeout=timeout, what=f"MLflow in {namespace} is ready", interval=1)
