"""The kind cluster does what the end-to-end tiers rely on: containers on containerd, cluster DNS
and ClusterIP Services through kube-proxy and the node's CNI, local-path PersistentVolumes that
outlive their pod, Pod Security `restricted` enforced, and pods without an API token."""

from __future__ import annotations

import json

import pytest

from inshape_hack.kindtesting import KindEnv, run_pod
from inshape_hack.kubectl import KubectlRunner as Kubectl

pytestmark = [pytest.mark.e2e]


def test_a_pod_reaches_a_service_by_its_cluster_dns_name(
    kind_env: KindEnv, kubectl: Kubectl
) -> None:
    url = "http://mlflow.inshape-infra.svc.cluster.local:5000/health"
    code = f"import urllib.request as r; print(r.urlopen({url!r}, timeout=30).read().decode())"
    out = run_pod(kubectl, "dns", kind_env.image, "python", "-c", code)
    assert out.strip().splitlines()[-1] == "OK"


def test_pods_run_as_containerd_containers_without_an_api_token(
    kind_env: KindEnv, kubectl: Kubectl
) -> None:
    out = run_pod(
        kubectl, "token", kind_env.image, "python", "-c",
        "import os; print(os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount'))",
    )  # fmt: skip
    assert out.strip().splitlines()[-1] == "False"
    node = json.loads(kubectl("get", "nodes", "-o", "json"))["items"][0]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_a_local_path_volume_keeps_its_data_across_pods(
    kind_env: KindEnv, kubectl: Kubectl
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }
    kubectl.apply([claim])
    write = "open('/data/x', 'w').write('kept')"
    run_pod(kubectl, "writer", kind_env.image, "python", "-c", write, claims={"data": "/data"})
    read = "print(open('/data/x').read())"
    out = run_pod(kubectl, "reader", kind_env.image, "python", "-c", read, claims={"data": "/data"})
    assert out.strip().splitlines()[-1] == "kept"
    assert kubectl.json("get", "pvc", "data")["status"]["phase"] == "Bound"


def test_restricted_pod_security_refuses_a_root_container(
    kind_env: KindEnv, kubectl: Kubectl
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": kind_env.image, "command": ["true"]}]},
    }
    out = kubectl("apply", "-f", "-", stdin=json.dumps(pod), check=False)
    assert "violates PodSecurity" in out and "restricted" in out, out
