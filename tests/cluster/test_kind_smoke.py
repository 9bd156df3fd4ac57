"""The kind cluster does what the end-to-end tiers rely on: containers on containerd, cluster DNS
and ClusterIP Services through kube-proxy and the node's CNI, local-path PersistentVolumes that
outlive their pod, Pod Security `restricted` enforced, pods without an API token, and
NetworkPolicies enforced."""

from __future__ import annotations

import json

import pytest

from inshape_hack.kindtesting import KindEnv, eventually, run_pod, tcp_open
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_hack.podsecurity import RESTRICTED_CONTAINER

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


# A TCP server on 8080 in the project's image, as Pod Security `restricted` admits it.
_LISTEN = (
    "import socket; s = socket.create_server(('', 8080)); "
    "[s.accept()[0].close() for _ in iter(int, 1)]"
)


def test_network_policies_are_enforced(kind_env: KindEnv, kubectl: Kubectl) -> None:
    """kindnetd enforces NetworkPolicies; so must the offline image's stand-in. Before a policy
    any pod connects; after it, only the pods it admits (a new admitted pod within seconds of
    its start, a refused one not in a 10 s window)."""
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "server", "labels": {"role": "server"}},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "server",
                    "image": kind_env.image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", _LISTEN],
                    "securityContext": RESTRICTED_CONTAINER,
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }
            ],
        },
    }
    kubectl.apply([server])
    kubectl("wait", "--for=condition=Ready", "pod/server", "--timeout=120s")
    address = kubectl.json("get", "pod", "server")["status"]["podIP"]
    client = {"role": "client"}
    assert tcp_open(kubectl, "before", kind_env.image, address, 8080)

    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "clients-only"},
        "spec": {
            "podSelector": {"matchLabels": {"role": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": client}}]}],
        },
    }
    kubectl.apply([policy])
    # The engine applies a policy within its watch latency: until then a pod still connects.
    eventually(
        lambda: not tcp_open(kubectl, "intruder", kind_env.image, address, 8080),
        timeout=90,
        what="a pod the policy does not admit is refused",
    )
    assert tcp_open(kubectl, "client", kind_env.image, address, 8080, labels=client)
