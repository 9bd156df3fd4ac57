"""Kubernetes objects for one KRaft broker on kind, from the image of kafka_image.py.

Pods reach it at ``<name>.<namespace>.svc.cluster.local:9092`` (a ClusterIP Service); host
processes at ``<node ip>:<nodePort>`` (a NodePort Service to a second, EXTERNAL listener that
advertises exactly that address). A StatefulSet keeps the data on a PVC, so a restarted pod
comes back with its records and cluster id. Pod Security `restricted` admits the pod.

Optionally (``secure_node_ports``) the broker also opens the TLS, MTLS and SCRAM listeners of
kafka_listeners.py, each advertised as the node IP and a node port of the external Service,
for pods and the host alike; its PEM files come from the Secret of ``tls_secret`` (the
broker's key and certificate chain, and the CA), mounted read-only.

    python -m inshape_hack.kafka_manifests --namespace inshape --node-ip 172.18.0.2 \\
        --image localhost/inshape/kafka:...      # prints the objects as YAML
"""

from __future__ import annotations

import argparse
import base64
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from inshape_hack.kafka_certs import KafkaPki
from inshape_hack.kafka_config import BrokerConfig, ExternalListener, config_env
from inshape_hack.kafka_image import KAFKA_UID
from inshape_hack.kafka_listeners import BrokerTls, Role, SecureListener

JSON = dict[str, Any]

NODE_PORTS = range(30000, 32768)  # the apiserver's default --service-node-port-range
NODE_PORT = 30092
# The secure listeners' container ports (the node ports are Kubernetes' choice).
SECURE_PORTS = {Role.TLS: 9095, Role.MTLS: 9096, Role.SCRAM: 9097}
TLS_DIR = "/etc/kafka/tls"
KEYSTORE_FILE = "broker.pem"
TRUSTSTORE_FILE = "ca.crt"

# What Pod Security `restricted` asks of every container, and no more privilege than that.
CONTAINER_SECURITY: JSON = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,  # writes go to the data volume and the /tmp emptyDir
    "runAsNonRoot": True,
}
POD_SECURITY: JSON = {
    "runAsNonRoot": True,
    "runAsUser": KAFKA_UID,
    "runAsGroup": KAFKA_UID,
    "fsGroup": KAFKA_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class KafkaOnKind:
    """The two bootstrap addresses of the broker, and those of its secure listeners."""

    in_cluster_bootstrap: str  # for pods: the Service's cluster DNS name
    host_bootstrap: str  # the kind node's IP and the NodePort: from the host, and pods too
    secure: dict[Role, str] = field(default_factory=dict)  # node IP:node port, each listener


@dataclass(frozen=True)
class KafkaDeployment:
    """One broker in ``namespace``; ``node_ip`` is the kind node's address on docker's bridge."""

    namespace: str
    image: str
    node_ip: str
    node_port: int = NODE_PORT
    name: str = "kafka"
    storage_class: str = "standard"  # kind's local-path provisioner
    storage: str = "1Gi"
    memory: str = "1Gi"  # the limit; the heap is 512m (kafka_image.HEAP_OPTS)
    cpu: str = "250m"  # a request only: a 2-core node also runs the control plane
    # The secure listeners and their node ports; none by default.
    secure_node_ports: tuple[tuple[Role, int], ...] = ()

    def __post_init__(self) -> None:
        for port in (self.node_port, *(port for _, port in self.secure_node_ports)):
            if port not in NODE_PORTS:
                raise ValueError(f"nodePort {port} is outside 30000-32767")

    @property
    def tls_secret_name(self) -> str:
        return f"{self.name}-tls"

    def tls_hosts(self) -> list[str]:
        """What the broker's certificate must name: every address a client may dial."""
        short = self.service_host.removesuffix(".cluster.local")
        return [self.service_host, short, f"{self.name}.{self.namespace}", self.node_ip]

    def broker_tls(self) -> BrokerTls | None:
        if not self.secure_node_ports:
            return None
        listeners = tuple(
            SecureListener(role, SECURE_PORTS[role], self.node_ip, node_port)
            for role, node_port in self.secure_node_ports
        )
        return BrokerTls(f"{TLS_DIR}/{KEYSTORE_FILE}", f"{TLS_DIR}/{TRUSTSTORE_FILE}", listeners)

    @property
    def service_host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def pod_name(self) -> str:
        return f"{self.name}-0"  # a StatefulSet's only replica

    def external(self) -> ExternalListener:
        return ExternalListener(self.node_ip, self.node_port)

    def broker_config(self) -> BrokerConfig:
        return BrokerConfig(
            advertised_host=self.service_host, external=self.external(), tls=self.broker_tls()
        )

    def bootstrap(self) -> KafkaOnKind:
        tls = self.broker_tls()
        secure = {item.role: item.address for item in tls.listeners} if tls else {}
        return KafkaOnKind(self.broker_config().address, self.external().address, secure)

    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "kafka", "app.kubernetes.io/instance": self.name}

    def metadata(self, name: str) -> JSON:
        return {"name": name, "namespace": self.namespace, "labels": self.labels()}


def internal_service(kafka: KafkaDeployment) -> JSON:
    port = kafka.broker_config().port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": kafka.metadata(kafka.name),
        "spec": {
            "type": "ClusterIP",
            "selector": kafka.labels(),
            "ports": [{"name": "kafka", "port": port, "targetPort": "kafka"}],
        },
    }


def port_name(role: Role) -> str:
    return role.value.lower()


def external_service(kafka: KafkaDeployment) -> JSON:
    ports = [("external", kafka.external().port, kafka.node_port)]
    ports += [
        (port_name(role), SECURE_PORTS[role], node_port)
        for role, node_port in kafka.secure_node_ports
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": kafka.metadata(f"{kafka.name}-external"),
        "spec": {
            "type": "NodePort",
            "selector": kafka.labels(),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "nodePort": node_port}
                for name, port, node_port in ports
            ],
        },
    }


def tls_secret(kafka: KafkaDeployment, pki: KafkaPki) -> JSON:
    """The broker's PEM files: its key and certificate chain, and the CA it trusts."""
    files = {KEYSTORE_FILE: pki.broker_keystore, TRUSTSTORE_FILE: pki.ca_file}
    data = {name: base64.b64encode(path.read_bytes()).decode() for name, path in files.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": kafka.metadata(kafka.tls_secret_name),
        "type": "Opaque",
        "data": data,
    }


def container(kafka: KafkaDeployment) -> JSON:
    config = kafka.broker_config()
    env = config_env(config)
    secure = bool(kafka.secure_node_ports)
    return {
        "name": "kafka",
        "image": kafka.image,
        "imagePullPolicy": "Never",  # loaded with `kind load`; there is no registry to ask
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        "ports": [
            {"name": "kafka", "containerPort": config.port},
            {"name": "external", "containerPort": kafka.external().port},
            *(
                {"name": port_name(role), "containerPort": SECURE_PORTS[role]}
                for role, _ in kafka.secure_node_ports
            ),
        ],
        # Open port = listening; no liveness probe, which could kill a broker busy
        # recovering its log after a crash.
        "readinessProbe": {
            "tcpSocket": {"port": "kafka"},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": kafka.cpu, "memory": kafka.memory},
            "limits": {"memory": kafka.memory},
        },
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/kafka"},
            {"name": "tmp", "mountPath": "/tmp"},  # server.properties, native libs of jars
            *([{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}] if secure else []),
        ],
    }


def volumes(kafka: KafkaDeployment) -> list[JSON]:
    found: list[JSON] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    if kafka.secure_node_ports:
        # 0440: the broker's uid and group (fsGroup) read the key; nobody else.
        secret = {"secretName": kafka.tls_secret_name, "defaultMode": 0o440}
        found.append({"name": "tls", "secret": secret})
    return found


def statefulset(kafka: KafkaDeployment) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": kafka.metadata(kafka.name),
        "spec": {
            "serviceName": kafka.name,
            "replicas": 1,
            "selector": {"matchLabels": kafka.labels()},
            "template": {
                "metadata": {"labels": kafka.labels()},
                "spec": {
                    # Else Kubernetes adds KAFKA_PORT=tcp://... and friends for the Service.
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,  # it never talks to the API
                    "securityContext": POD_SECURITY,
                    "terminationGracePeriodSeconds": 60,  # a controlled shutdown, not a kill
                    "containers": [container(kafka)],
                    "volumes": volumes(kafka),
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": kafka.labels()},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": kafka.storage_class,
                        "resources": {"requests": {"storage": kafka.storage}},
                    },
                }
            ],
        },
    }


def manifests(kafka: KafkaDeployment) -> list[JSON]:
    """Services first: the StatefulSet's pod finds its Service names resolvable."""
    return [internal_service(kafka), external_service(kafka), statefulset(kafka)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--node-ip", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--node-port", type=int, default=NODE_PORT)
    args = parser.parse_args(argv)
    kafka = KafkaDeployment(args.namespace, args.image, args.node_ip, args.node_port)
    print(yaml.safe_dump_all(manifests(kafka), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
