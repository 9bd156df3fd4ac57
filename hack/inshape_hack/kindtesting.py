"""Pytest fixtures for every end-to-end tier: one kind cluster per session, driven through
pytest-kind, with the project's image loaded and a shared Kafka and MLflow inside it.

Use from a conftest with ``pytest_plugins = ["inshape_hack.kindtesting"]``. The cluster is
``$INSHAPE_KIND_CLUSTER`` (default ``inshape-test``); it is deleted at the end of the session
unless it existed before (then it is reused and kept) or ``INSHAPE_KEEP_CLUSTER=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from inshape_hack import bases, gotools, images, kafka_kind, kindcluster
from inshape_hack.docker import DockerEndpoint, docker_cli, ensure_docker, pull
from inshape_hack.kind_mlflow import deploy_mlflow
from inshape_hack.kubeconfig import kube_env
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.paths import REPO_ROOT
from inshape_hack.podsecurity import ENFORCE_RESTRICTED, RESTRICTED_CONTAINER
from inshape_hack.polling import wait_until
from inshape_operator import crd

INFRA_NAMESPACE = "inshape-infra"


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
    kafka_image: str  # the broker's image, loaded into the node
    docker: DockerEndpoint  # where the node container runs
    kafka_bootstrap: str  # node ip + NodePort: from the host and from pods
    kafka_in_cluster: str  # the broker's Service name, as a chart user would write it
    mlflow_tracking_uri: str  # node ip + NodePort: from the host and from pods

    def kubectl(self, namespace: str | None = None) -> KubectlRunner:
        return KubectlRunner(self.kubectl_binary, self.kubeconfig, namespace)

    def env(self) -> dict[str, str]:
        return kube_env(self.kubeconfig)

    @property
    def node_container(self) -> str:
        return f"{self.name}-control-plane"

    def node_exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command on the kind node (crictl, kill: what a test does to a container)."""
        return subprocess.run(
            [docker_cli(), "exec", self.node_container, *argv],
            env=self.docker.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def create_namespace(admin: KubectlRunner, name: str) -> None:
    """A namespace that enforces Pod Security `restricted`, with its default ServiceAccount."""
    admin("create", "namespace", name)
    admin("label", "namespace", name, ENFORCE_RESTRICTED)
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
    mlflow = deploy_mlflow(admin, INFRA_NAMESPACE, node_ip, project_image)
    env = KindEnv(
        name=name,
        kubeconfig=cluster.kubeconfig_path,
        kubectl_binary=tooling.kubectl,
        helm=gotools.build(gotools.tool_named("helm"), quiet=True),
        kube_version=gotools.kube_version(),
        node_ip=node_ip,
        image=project_image,
        kafka_image=kafka_image,
        docker=tooling.docker,
        kafka_bootstrap=kafka.host_bootstrap,
        kafka_in_cluster=kafka.in_cluster_bootstrap,
        mlflow_tracking_uri=mlflow.uri,
    )
    return env, existed


@contextmanager
def kind_session(default_name: str) -> Iterator[KindEnv]:
    """The cluster ``$INSHAPE_KIND_CLUSTER`` (else ``default_name``) for one test or bench
    session: deleted at the end unless it existed before or ``INSHAPE_KEEP_CLUSTER`` is set."""
    name = os.environ.get("INSHAPE_KIND_CLUSTER", default_name)
    env, existed = start_kind_env(name)
    try:
        yield env
    finally:
        if not existed and not os.environ.get("INSHAPE_KEEP_CLUSTER"):
            tooling = kindcluster.prepare_kind(with_node_image=False)
            kindcluster.kind_cluster(tooling, name).delete()


@pytest.fixture(scope="session")
def kind_env() -> Iterator[KindEnv]:
    with kind_session("inshape-test") as env:
        yield env


@contextmanager
def scratch_namespace(admin: KubectlRunner, prefix: str = "t") -> Iterator[str]:
    """A fresh restricted namespace, deleted (without waiting) afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_namespace(admin, name)
    try:
        yield name
    finally:
        admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kind_env: KindEnv) -> Iterator[str]:
    """A fresh restricted namespace for one test."""
    with scratch_namespace(kind_env.kubectl()) as name:
        yield name


@pytest.fixture
def kubectl(kind_env: KindEnv, namespace: str) -> KubectlRunner:
    return kind_env.kubectl(namespace)


def eventually(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll until `check()` holds; fail the test (not error it) naming `what` otherwise."""
    try:
        wait_until(check, timeout=timeout, what=what, interval=0.3)
    except TimeoutError as timed_out:
        pytest.fail(str(timed_out))


def crd_established(admin: KubectlRunner, name: str) -> bool:
    """The CRD's observed state: Established=True. No CRD or no conditions yet: not yet.

    `kubectl wait --for=condition=Established` errors instead when it runs before the API
    server has written any condition, which is the race this replaces.
    """
    conditions = admin.json("get", "crd", name).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def apply_established(admin: KubectlRunner, manifest: Path | str, names: list[str]) -> None:
    """Apply CRDs (a file, or a JSON/YAML text) and wait until each named one is served."""
    if isinstance(manifest, Path):
        admin("apply", "-f", str(manifest))
    else:
        admin("apply", "-f", "-", stdin=manifest)
    for name in names:
        wait_until(partial(crd_established, admin, name), 60, f"CRD {name} is Established")


def apply_policy_crd(admin: KubectlRunner) -> None:
    """The ModelUpdatePolicy CRD from manifests/, served."""
    apply_established(admin, REPO_ROOT / crd.MANIFEST, [crd.NAME])


def run_pod(
    kubectl: KubectlRunner,
    name: str,
    image: str,
    *command: str,
    claims: dict[str, str] | None = None,
    timeout: float = 300,
    labels: dict[str, str] | None = None,
) -> str:
    """Run ``command`` to completion in a throwaway pod that `restricted` admits; its log.
    ``claims`` mounts PersistentVolumeClaims (claim name -> mount path); ``labels`` are added
    to the pod's (what NetworkPolicies select).

    Raises AssertionError with the log when the pod fails.
    """
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, object]] = [{"name": "tmp", "emptyDir": {}}]
    for index, (claim, path) in enumerate(sorted((claims or {}).items())):
        mounts.append({"name": f"claim{index}", "mountPath": path})
        volumes.append({"name": f"claim{index}", "persistentVolumeClaim": {"claimName": claim}})
    kubectl("delete", "pod", name, "--ignore-not-found", "--wait=true")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "inshape-test", **(labels or {})},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"fsGroup": 65532},
            "containers": [
                {
                    "name": name,
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": list(command),
                    "securityContext": RESTRICTED_CONTAINER,
                    "env": [{"name": "HOME", "value": "/tmp"}],
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }
    kubectl.apply([pod])

    def finished() -> str | None:
        phase = kubectl.json("get", "pod", name).get("status", {}).get("phase")
        return str(phase) if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, timeout=timeout, what=f"pod {name} finishes", interval=0.5)
    log = kubectl("logs", name, check=False)
    kubectl("delete", "pod", name, "--wait=false", check=False)
    assert phase == "Succeeded", f"pod {name} {phase}:\n{log[-4000:]}"
    return log


# Tries to connect until the window closes: a policy engine admits a new pod a second or two
# after it starts (kube-router: ~1.6 s here), so one refusal proves nothing; "blocked" is a
# window of refusals or timeouts.
_CONNECT = """
import socket, sys, time
host, port, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + window
while True:
    try:
        socket.create_connection((host, port), timeout=2).close()
        print("open")
        break
    except OSError as error:
        if time.monotonic() > deadline:
            print("blocked", type(error).__name__)
            break
        time.sleep(0.2)
"""


def tcp_open(
    kubectl: KubectlRunner,
    name: str,
    image: str,
    host: str,
    port: int,
    *,
    labels: dict[str, str] | None = None,
    window_seconds: float = 10.0,
) -> bool:
    """Whether a new pod with ``labels`` opens a TCP connection to ``host:port`` within
    ``window_seconds`` of its start."""
    log = run_pod(
        kubectl, name, image, "python", "-c", _CONNECT, host, str(port), str(window_seconds),
        labels=labels,
    )  # fmt: skip
    verdict = log.strip().splitlines()[-1]
    assert verdict == "open" or verdict.startswith("blocked"), log
    return verdict == "open"


@contextmanager
def port_forward(kubectl: KubectlRunner, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward target :port` on loopback; yields the local port."""
    argv = [str(kubectl.binary), *(["-n", kubectl.namespace] if kubectl.namespace else [])]
    proc = subprocess.Popen(
        [*argv, "port-forward", target, f":{port}", "--address=127.0.0.1"],
        env=kubectl.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", first)
        assert match, f"kubectl port-forward {target}: {first}"
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(10)


def prepare() -> dict[str, float]:
    """Everything the e2e tiers need before the first test, each stage timed (seconds).

    Run ahead of pytest (`make images`) so a cold build never counts against a test's
    timeout; a warm run is a few lookups.
    """
    timings: dict[str, float] = {}
    started = time.monotonic()
    # Where the published node image cannot be pulled, everything is built here: then the
    # Debian bases (network-bound debootstraps) download while Go compiles.
    offline = not pull(ensure_docker(), kindcluster.published_node_image())
    with ThreadPoolExecutor(max_workers=1) as pool:
        debootstraps = pool.submit(bases.prefetch) if offline else None
        for tool in gotools.ALL_TOOLS:
            gotools.build(tool, quiet=True)
        timings["go_tools"] = time.monotonic() - started
        if debootstraps is not None:
            debootstraps.result()
    timings["go_tools_and_debian_bases"] = time.monotonic() - started
    started = time.monotonic()
    tooling = kindcluster.prepare_kind()
    timings["node_image"] = time.monotonic() - started
    started = time.monotonic()
    images.ensure_project_image(tooling.docker)
    timings["project_image"] = time.monotonic() - started
    started = time.monotonic()
    kafka_kind.ensure_kafka_image(tooling.docker)
    timings["kafka_image"] = time.monotonic() - started
    return timings


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] != ["prepare"]:
        sys.exit("usage: python -m inshape_hack.kindtesting prepare")
    print(json.dumps({k: round(v, 1) for k, v in prepare().items()}))
