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
from inshape_hack.polling import wait_until

Manifest = dict[str, Any]
NAME = "mlflow"
PORT = 5000
NODE_PORT = 30500
READY_SECONDS = 300.0

RESTRICTED_CONTAINER: Manifest = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class MlflowOnKind:
    """Where the in-cluster MLflow answers."""

    namespace: str
    node_ip: str
    node_port: int = NODE_PORT

    @property
    def uri(self) -> str:
        return f"http://{self.node_ip}:{self.node_port}"

    @property
    def in_cluster_uri(self) -> str:
        return f"http://{NAME}.{self.namespace}.svc.cluster.local:{PORT}"


def mlflow_manifests(target: MlflowOnKind, image: str) -> list[Manifest]:
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "inshape-test"}
    # MLflow 3 refuses requests whose Host header it does not know (DNS rebinding guard).
    hosts = ",".join(
        [
            f"{target.node_ip}:{target.node_port}",
            f"{NAME}:{PORT}",
            f"{NAME}.{target.namespace}:{PORT}",
            f"{NAME}.{target.namespace}.svc.cluster.local:{PORT}",
            f"localhost:{PORT}",
        ]
    )
    pvc: Manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": NAME, "namespace": target.namespace, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    container: Manifest = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "Never",
        "command": [
            "mlflow", "server",
            "--backend-store-uri=sqlite:////data/mlflow.db",
            "--artifacts-destination=/data/artifacts",
            "--serve-artifacts",
            "--host=0.0.0.0",
            f"--port={PORT}",
            "--workers=2",
            f"--allowed-hosts={hosts}",
        ],  # fmt: skip
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 2},
        "securityContext": {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "50m", "memory": "384Mi"}, "limits": {"memory": "1Gi"}},
    }
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": target.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one writer of the sqlite file
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"fsGroup": 65532, "runAsUser": 65532, "runAsGroup": 65532},
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
        "metadata": {"name": NAME, "namespace": target.namespace, "labels": labels},
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "nodePort": target.node_port}],
        },
    }
    return [pvc, deployment, service]


def deploy_mlflow(kubectl: KubectlRunner, target: MlflowOnKind, image: str) -> MlflowOnKind:
    """Apply the server and wait until its Deployment reports a ready replica."""
    kubectl.apply(mlflow_manifests(target, image))

    def ready() -> bool:
        replicas = kubectl.json("get", "deployment", NAME, "-n", target.namespace)
        return int(replicas.get("status", {}).get("readyReplicas") or 0) >= 1

    wait_until(ready, timeout=READY_SECONDS, what=f"MLflow in {target.namespace} is ready")
    return target
