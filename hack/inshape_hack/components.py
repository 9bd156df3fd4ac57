"""Command lines of the local cluster's components: pure, so all flags are reviewed in one place."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from inshape_hack.certs import CertSpec

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first IP of the range: the `kubernetes` Service
ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_NAME = "inshape-node"

# What the issue asks for, plus what makes them usable: the serviceaccount controller
# creates each namespace's `default` SA, the root-CA publisher its kube-root-ca.crt, and
# ttl-after-finished honours Jobs' ttlSecondsAfterFinished.
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "resourcequota-controller",
)


def certificate_specs() -> list[CertSpec]:
    """Every leaf the cluster needs; the kubelet is in system:masters because it also schedules."""
    loopback = ("127.0.0.1",)
    return [
        CertSpec(
            "apiserver",
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=(*loopback, SERVICE_IP),
            server=True,
        ),
        CertSpec("admin", "inshape-admin", organizations=("system:masters",), client=True),
        CertSpec("controller-manager", "system:kube-controller-manager", client=True),
        CertSpec(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=("system:masters",),
            client=True,
        ),
        CertSpec("kubelet", "inshape-kubelet", organizations=("system:masters",), client=True),
        CertSpec(
            "kubelet-serving",
            f"system:node:{NODE_NAME}",
            dns_names=("localhost",),
            ips=loopback,
            server=True,
        ),
    ]


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    kubelet: int


def etcd_argv(binary: Path, data_dir: Path, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binary),
        "--name=inshape",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=inshape={peer}",
        # A throwaway dev cluster: skip fsync, it is the slowest part of etcd on CI disks.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_argv(binary: Path, pki: Path, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # `kubectl logs` goes apiserver -> kubelet over TLS, both sides verified.
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        # Endpoints may not hold loopback IPs, so the apiserver must not publish its own.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_argv(
    binary: Path, pki: Path, kubeconfig: Path, cert_dir: Path, ports: Ports
) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
        f"--controllers={','.join(CONTROLLERS)}",
        # Each controller acts as its own service account, as in a real control plane.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
        "--v=1",
    ]


def pod_ip_start(octet: int) -> str:
    """Each cluster takes its pod IPs from its own 127.<octet>.0.0/16, so two clusters on one
    machine (a dev cluster and a test run) never hand out the same address."""
    if not 1 <= octet <= 254:
        raise ValueError(f"octet {octet} outside 1..254")
    return f"127.{octet}.0.2"


def kubelet_argv(
    pki: Path, state_dir: Path, ports: Ports, version: str, pod_ips_from: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "inshape_hack.kubelet",
        f"--server=https://127.0.0.1:{ports.apiserver}",
        f"--ca={pki / 'ca.crt'}",
        f"--client-cert={pki / 'kubelet.crt'}",
        f"--client-key={pki / 'kubelet.key'}",
        f"--serving-cert={pki / 'kubelet-serving.crt'}",
        f"--serving-key={pki / 'kubelet-serving.key'}",
        f"--node-name={NODE_NAME}",
        "--host-ip=127.0.0.1",
        f"--port={ports.kubelet}",
        f"--pod-ip-start={pod_ips_from}",
        f"--state-dir={state_dir}",
        f"--version={version}",
    ]
