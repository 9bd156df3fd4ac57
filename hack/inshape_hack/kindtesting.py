"""Pytest fixtures for every end-to-end tier: one kind cluster per session, driven through
pytest-kind, with the project's image loaded and a shared Kafka and MLflow inside it.

Use from a conftest with ``pytest_plugins = ["inshape_hack.kindtesting"]``. The cluster is
``$INSHAPE_KIND_CLUSTER`` (default ``inshape-test``); it is deleted at the end of the session
unless it existed before (then it is reused and kept) or ``INSHAPE_KEEP_CLUSTER=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inshape_hack import gotools, images, kafka_kind, kindcluster
from inshape_hack.kind_mlflow import MlflowOnKind, deploy_mlflow
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.polling import wait_until

INFRA_NAMESPACE = "inshape-infra"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


@dataclass(frozen=True)
class KindEnv:
    """A running kind cluster and how to reach what runs in it."""

    name: str
    kubeconfig: Path
    kubectl_binary: Path
    helm: Path
    kube_version: str
    node_ip: str
    image: str  # the project's image, loaded into the node
    kafka_bootstrap: str  # node ip + NodePort: from the host and from pods
    kafka_in_cluster: str  # the broker's Service name, as a chart user would write it
    mlflow_tracking_uri: str  # node ip + NodePort: from the host and from pods

    def kubectl(self, namespace: str | None = None) -> KubectlRunner:
        return KubectlRunner(self.kubectl_binary, self.kubeconfig, namespace)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def create_namespace(admin: KubectlRunner, name: str) -> None:
    """A namespace that enforces Pod Security `restricted`, with its default ServiceAccount."""
    admin("create", "namespace", name)
    admin("label", "namespace", name, RESTRICTED)
    wait_until(
        lambda: "default" in admin("get", "serviceaccount", "-n", name, "-o", "name", check=False),
        timeout=60,
        what=f"namespace {name} has its default ServiceAccount",
    )


def start_kind_env(name: str) -> tuple[KindEnv, bool]:
    """Create (or reuse) the cluster, load the images, deploy Kafka and MLflow; returns the
    env and whether the cluster was already there."""
    tooling = kindcluster.prepare_kind()
    existed = kindcluster.cluster_exists(tooling, name) and kindcluster.node_running(tooling, name)
    cluster = kindcluster.up(tooling, name)
    project_image = images.ensure_project_image(tooling.docker)
    kafka_image = kafka_kind.ensure_kafka_image(tooling.docker)
    for image in (project_image, kafka_image):
        kindcluster.load_image(tooling, image, name)
    node_ip = kindcluster.node_ip(tooling, name)
    admin = KubectlRunner(tooling.kubectl, cluster.kubeconfig_path)
    if not admin.json("get", "namespace", INFRA_NAMESPACE):
        create_namespace(admin, INFRA_NAMESPACE)
    kafka = kafka_kind.deploy_kafka(admin, INFRA_NAMESPACE, kafka_image, node_ip)
    mlflow = deploy_mlflow(admin, MlflowOnKind(INFRA_NAMESPACE, node_ip), project_image)
    env = KindEnv(
        name=name,
        kubeconfig=cluster.kubeconfig_path,
        kubectl_binary=tooling.kubectl,
        helm=gotools.build(gotools.tool_named("helm"), quiet=True),
        kube_version=gotools.kube_version(),
        node_ip=node_ip,
        image=project_image,
        kafka_bootstrap=kafka.host_bootstrap,
        kafka_in_cluster=kafka.in_cluster_bootstrap,
        mlflow_tracking_uri=mlflow.uri,
    )
    return env, existed


@pytest.fixture(scope="session")
def kind_env() -> Iterator[KindEnv]:
    name = os.environ.get("INSHAPE_KIND_CLUSTER", "inshape-test")
    env, existed = start_kind_env(name)
    yield env
    if not existed and not os.environ.get("INSHAPE_KEEP_CLUSTER"):
        tooling = kindcluster.prepare_kind()
        kindcluster.kind_cluster(tooling, name).delete()


@pytest.fixture
def namespace(kind_env: KindEnv) -> Iterator[str]:
    """A fresh restricted namespace for one test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin = kind_env.kubectl()
    create_namespace(admin, name)
    yield name
    admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(kind_env: KindEnv, namespace: str) -> KubectlRunner:
    return kind_env.kubectl(namespace)
