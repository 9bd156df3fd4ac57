"""Kafka on kind: apply the objects of kafka_manifests.py and wait until the broker serves.

``deploy_kafka(kubectl, namespace, image, node_ip)`` is idempotent (server-side apply). It
returns once the StatefulSet's pod is Ready and a client on the host gets metadata through
the NodePort, and fails early, with the pod's log, when the pod cannot start (image not on
the node, crash loop). The image (``ensure_kafka_image``, re-exported here) must be loaded
into the node first (kindcluster.load_image); the namespace must exist. Given test
certificates (``pki``, made for ``KafkaDeployment.tls_hosts()``), the broker also opens the
TLS, MTLS and SCRAM listeners on node ports of their own (``KafkaOnKind.secure``).
"""

from __future__ import annotations

import socket
from typing import Any

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from inshape_hack.kafka_certs import KafkaPki
from inshape_hack.kafka_image import ensure_kafka_image
from inshape_hack.kafka_listeners import Role
from inshape_hack.kafka_manifests import (
    NODE_PORT,
    KafkaDeployment,
    KafkaOnKind,
    external_service,
    manifests,
    port_name,
    tls_secret,
)
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.polling import wait_until

__all__ = ["KafkaOnKind", "deploy_kafka", "ensure_kafka_image"]

FIELD_MANAGER = "inshape-hack"
READY_SECONDS = 300.0
# Waiting reasons a pod does not get out of by itself.
STUCK_REASONS = frozenset(
    {
        "ErrImageNeverPull",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    }
)


def rolled_out(statefulset: dict[str, Any]) -> bool:
    """The controller saw the latest spec, and its one replica runs it and is Ready.
    ``{}`` (not created yet) is not rolled out."""
    if not statefulset:
        return False
    status = statefulset.get("status", {})
    return bool(
        status.get("observedGeneration", 0) >= statefulset["metadata"]["generation"]
        and status.get("readyReplicas", 0) == 1
        and status.get("updatedReplicas", 0) == 1
        and status.get("currentRevision") == status.get("updateRevision")
    )


def stuck_reason(pod: dict[str, Any]) -> str | None:
    """Why the pod will not become Ready without help, or None (fine, or still starting)."""
    for status in pod.get("status", {}).get("containerStatuses", []):
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") in STUCK_REASONS:
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip()
    return None


def broker_answers(bootstrap: str, timeout_ms: int = 5000) -> bool:
    """True once the broker at ``bootstrap`` hands out metadata (it has joined its quorum)."""
    host, _, port = bootstrap.rpartition(":")
    try:  # a closed port says "not yet" at once; the client would retry until its timeout
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError:
        return False
    try:
        # The bootstrap timeout too: its 30 s default would make every "not yet" take 30 s.
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError:  # NoBrokersAvailable: nothing answers there yet
        return False
    try:
        admin.list_topics()
    except KafkaError:
        return False
    finally:
        admin.close()
    return True


def wait_rolled_out(kubectl: KubectlRunner, kafka: KafkaDeployment, timeout: float) -> None:
    def check() -> bool:
        if rolled_out(kubectl.json("get", "statefulset", kafka.name)):
            return True
        reason = stuck_reason(kubectl.json("get", "pod", kafka.pod_name))
        if reason is not None:
            logs = kubectl("logs", kafka.pod_name, "--tail=30", check=False)
            raise RuntimeError(f"pod {kafka.pod_name} is stuck: {reason}\n{logs}")
        return False

    wait_until(check, timeout, f"statefulset {kafka.namespace}/{kafka.name} is Ready")


def allocated_node_ports(
    kubectl: KubectlRunner, kafka: KafkaDeployment, given: dict[str, int]
) -> dict[str, int]:
    """The external Service's node ports by port name: those ``given``, the existing ones, and
    for any other port (a new Service, or secure listeners added) one Kubernetes allocates
    now. ``kafka``'s own node ports are placeholders, only its ports' names count."""
    service = external_service(kafka)
    name = service["metadata"]["name"]

    def known() -> dict[str, int]:
        found = kubectl.json("get", "service", name).get("spec", {}).get("ports", [])
        return {**{port["name"]: int(port["nodePort"]) for port in found}, **given}

    ports = known()
    if any(port["name"] not in ports for port in service["spec"]["ports"]):
        for port in service["spec"]["ports"]:
            if port["name"] in ports:
                port["nodePort"] = ports[port["name"]]
            else:
                del port["nodePort"]
        kubectl.apply([service], "--server-side", f"--field-manager={FIELD_MANAGER}")
        ports = known()
    return ports


def deploy_kafka(
    kubectl: KubectlRunner,
    namespace: str,
    image: str,
    node_ip: str,
    *,
    node_port: int | None = None,
    timeout: float = READY_SECONDS,
    pki: KafkaPki | None = None,
) -> KafkaOnKind:
    """Run the broker in ``namespace``; its in-cluster and host bootstrap addresses.

    Without ``node_port`` the external Service's port is the one Kubernetes allocates (kept
    across re-deploys), so several brokers (the demo's, the tests', a test's own) coexist; the
    secure listeners' node ports (with ``pki``) are always Kubernetes' choice.
    """
    in_namespace = kubectl.in_namespace(namespace)
    roles = tuple(Role) if pki is not None else ()
    placeholder = KafkaDeployment(
        namespace, image, node_ip, secure_node_ports=tuple((role, NODE_PORT) for role in roles)
    )
    given = {"external": node_port} if node_port is not None else {}
    ports = allocated_node_ports(in_namespace, placeholder, given)
    secure = tuple((role, ports[port_name(role)]) for role in roles)
    kafka = KafkaDeployment(namespace, image, node_ip, ports["external"], secure_node_ports=secure)
    objects = manifests(kafka)
    if pki is not None:
        objects.insert(0, tls_secret(kafka, pki))
    in_namespace.apply(objects, "--server-side", f"--field-manager={FIELD_MANAGER}")
    wait_rolled_out(in_namespace, kafka, timeout)
    bootstrap = kafka.bootstrap()
    # Ready means the port is open; clients also need the broker to be through its start.
    wait_until(
        lambda: broker_answers(bootstrap.host_bootstrap),
        timeout,
        f"the broker answers at {bootstrap.host_bootstrap}",
        interval=1.0,
    )
    return bootstrap
