"""Strimzi's CRDs of one release on the bare API server, and Kafka resources with the status
Strimzi writes. The CRDs of two releases share names, so installing one removes the other."""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import Any

from inshape_hack.kindtesting import crd_established
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.polling import wait_until
from inshape_hack.strimzi_crds import KINDS, Release, ensure_crds
from inshape_operator import strimzi

GROUP_PATH = f"/apis/{strimzi.GROUP}"
CRD_NAMES = [f"{kind}s.{strimzi.GROUP}" for kind in KINDS]
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# One listener per way in, as production clusters have them (and Strimzi's examples name them).
LISTENERS: list[dict[str, Any]] = [
    {"name": "plain", "port": 9092, "type": "internal", "tls": False},
    {"name": "tls", "port": 9093, "type": "internal", "tls": True},
    {
        "name": "scram",
        "port": 9094,
        "type": "internal",
        "tls": True,
        "authentication": {"type": "scram-sha-512"},
    },
    {
        "name": "mtls",
        "port": 9095,
        "type": "cluster-ip",
        "tls": True,
        "authentication": {"type": "tls"},
    },
    {"name": "external", "port": 9096, "type": "nodeport", "tls": False},
]


def served_resources(admin: KubectlRunner, version: str) -> list[str]:
    text = admin("get", "--raw", f"{GROUP_PATH}/{version}", check=False)
    try:
        return [r["name"] for r in json.loads(text).get("resources") or []]
    except ValueError:
        return []


def _crds_left(admin: KubectlRunner) -> list[str]:
    names = admin("get", "crd", "-o", "name", check=False).split()
    return [n for n in names if n.endswith(f".{strimzi.GROUP}")]


def _stuck(admin: KubectlRunner) -> str:
    report = []
    for name in CRD_NAMES:
        crd = admin.json("get", "crd", name)
        if crd:
            conditions = (crd.get("status") or {}).get("conditions")
            report.append(f"{name}: {crd['metadata'].get('finalizers')} {conditions}")
    return "; ".join(report)


def remove_crds(admin: KubectlRunner) -> None:
    """Strimzi's CRDs (and every object of them) gone, and gone from discovery. Objects
    first, then the CRDs, each without kubectl's --wait (a watch): the CRDs' absence is
    polled for instead."""
    if _crds_left(admin):
        kinds = ",".join(CRD_NAMES)
        admin("delete", kinds, "--all", "-A", "--ignore-not-found", "--wait=false", check=False)
        admin("delete", "crd", *CRD_NAMES, "--ignore-not-found", "--wait=false")
    try:
        wait_until(lambda: not _crds_left(admin), 180, "Strimzi's CRDs are deleted", interval=1)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {_stuck(admin)}") from exc
    wait_until(
        lambda: "NotFound" in admin("get", "--raw", GROUP_PATH, check=False),
        60,
        "discovery no longer lists kafka.strimzi.io",
    )


def install_crds(admin: KubectlRunner, release: Release) -> None:
    """The release's CRDs alone, Established, and `kafkas` in discovery at its version."""
    remove_crds(admin)
    folder = ensure_crds(release)
    for kind in KINDS:
        admin("apply", "--server-side", "-f", str(folder / f"{kind}.yaml"))
    for name in CRD_NAMES:
        wait_until(partial(crd_established, admin, name), 60, f"CRD {name} is Established")
    wait_until(
        lambda: "kafkas" in served_resources(admin, release.served),
        60,
        f"discovery serves kafkas at {release.served}",
    )
    admin("api-resources", f"--api-group={strimzi.GROUP}")  # kubectl's cache learns the change


def create_namespace(admin: KubectlRunner, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin("create", "namespace", name)
    return name


def kafka_version(release: Release) -> tuple[str, str]:
    """A Kafka version (and its KRaft metadata version) the release supports."""
    return ("3.9.0", "3.9-IV0") if release.served == "v1beta2" else ("4.2.0", "4.2-IV1")


def kafka_resource(release: Release, name: str, namespace: str) -> dict[str, Any]:
    version, metadata = kafka_version(release)
    return {
        "apiVersion": f"{strimzi.GROUP}/{release.served}",
        "kind": "Kafka",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "kafka": {
                "version": version,
                "metadataVersion": metadata,
                "listeners": LISTENERS,
                "config": {"offsets.topic.replication.factor": 1},
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }


def ready_status(release: Release, name: str, namespace: str, generation: int) -> dict[str, Any]:
    """The status a Strimzi operator of that release writes for a Ready cluster."""
    version, metadata = kafka_version(release)
    host = f"{name}-kafka-bootstrap.{namespace}.svc"
    listeners = [
        {
            "name": item["name"],
            "addresses": [{"host": host, "port": item["port"]}],
            "bootstrapServers": f"{host}:{item['port']}",
            **({"certificates": [CA_PEM]} if item["tls"] else {}),
        }
        for item in LISTENERS
        if item["type"] != "nodeport"
    ] + [
        {
            "name": "external",
            "addresses": [{"host": "10.0.0.5", "port": 31234}],
            "bootstrapServers": "10.0.0.5:31234",
        }
    ]
    return {
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "observedGeneration": generation,
        "listeners": listeners,
        "kafkaNodePools": [{"name": "dual-role"}],
        "clusterId": "fa3Zq0mWQpKq3vX2qS1w0A",
        "operatorLastSuccessfulVersion": release.version,
        "kafkaVersion": version,
        "kafkaMetadataVersion": metadata,
    }


def create_ready_kafka(
    admin: KubectlRunner, release: Release, name: str, namespace: str
) -> dict[str, Any]:
    """A Kafka with the listeners above, its status written through the status subresource
    (as Strimzi does); returns the status as stored."""
    kubectl = admin.in_namespace(namespace)
    created = json.loads(
        kubectl(
            "create",
            "-o",
            "json",
            "-f",
            "-",
            stdin=json.dumps(kafka_resource(release, name, namespace)),
        )
    )
    status = ready_status(release, name, namespace, created["metadata"]["generation"])
    kubectl(
        "patch",
        f"kafkas.{release.served}.{strimzi.GROUP}",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    stored = kubectl.json("get", f"kafkas.{release.served}.{strimzi.GROUP}", name)
    assert stored["status"] == status  # nothing pruned: the shape is what the CRD allows
    return status
