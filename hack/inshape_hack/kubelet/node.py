"""The Node object this kubelet registers, and its Lease: pure builders."""

from __future__ import annotations

import os
import platform
from typing import Any

JSON = dict[str, Any]
LEASE_SECONDS = 40
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


def node_object(name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": _arch(),
                "inshape.dev/local-kubelet": "true",
            },
        },
        "spec": {},
    }


def node_status(host_ip: str, port: int, now: str, version: str) -> JSON:
    cpus = str(os.cpu_count() or 1)
    memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 1024}Ki"
    resources = {"cpu": cpus, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    conditions = [
        ("Ready", "True", "KubeletReady", "local kubelet is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
        ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
    ]
    return {
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": host_ip},
                {"type": "Hostname", "address": platform.node() or "localhost"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, status, reason, message in conditions
            ],
            "nodeInfo": {
                "architecture": _arch(),
                "operatingSystem": "linux",
                "osImage": platform.platform(),
                "kernelVersion": platform.release(),
                "kubeletVersion": version,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "inshape-local://processes",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }


def lease_object(name: str, now_micro: str) -> JSON:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro,
        },
    }


def without_not_ready_taint(taints: list[JSON]) -> list[JSON]:
    """TaintNodesByCondition marks new nodes not-ready; no node controller runs to lift it."""
    return [t for t in taints if t.get("key") != NOT_READY_TAINT]


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
