"""Pytest fixtures for the local cluster, shared by the smoke, integration and e2e tests.

Use from a root conftest with `pytest_plugins = ["inshape_hack.testing"]`, or import the
fixtures into a conftest. `local_cluster` starts one cluster per session and stops it at
the end; with INSHAPE_CLUSTER_STATE=<state dir of `cluster up`> (e.g. `.run/cluster`) it
attaches to a running one instead and leaves it running.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inshape_hack.cluster import Endpoints, LocalCluster, pid_alive, read_state

Kubectl = Callable[..., str]


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `check()` holds, failing the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    attach = os.environ.get("INSHAPE_CLUSTER_STATE")
    if attach:
        state = read_state(Path(attach))
        if state is None or not pid_alive(int(state["supervisor_pid"])):
            pytest.fail(f"INSHAPE_CLUSTER_STATE={attach}: no running cluster there")
        yield Endpoints(**state["endpoints"])
        return
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    try:
        yield cluster.endpoints()
    finally:
        cluster.stop()


def make_kubectl(endpoints: Endpoints, namespace: str | None = None) -> Kubectl:
    """A `kubectl(*args, stdin=None, check=True) -> stdout` bound to the cluster."""
    # Discovery cache beside the kubeconfig: every cluster has a new port, so ~/.kube/cache
    # would collect one stale directory per test session.
    cache = str(Path(endpoints.kubeconfig).parent / "kubectl-cache")
    env = {**os.environ, "KUBECONFIG": endpoints.kubeconfig, "KUBECACHEDIR": cache}

    def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
        argv = [endpoints.kubectl, *(["-n", namespace] if namespace else []), *args]
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, timeout=180, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {result.stderr or result.stdout}")
        return result.stdout if check else result.stdout + result.stderr

    return kubectl


@pytest.fixture
def namespace(local_cluster: Endpoints) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin = make_kubectl(local_cluster)
    admin("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount, which a controller creates.
    eventually(
        lambda: "default" in admin("get", "serviceaccount", "-n", name, "-o", "name"),
        timeout=60,
        what=f"namespace {name} has its default ServiceAccount",
    )
    yield name
    admin("delete", "namespace", name, "--wait=false")


@pytest.fixture
def kubectl(local_cluster: Endpoints, namespace: str) -> Kubectl:
    return make_kubectl(local_cluster, namespace)
