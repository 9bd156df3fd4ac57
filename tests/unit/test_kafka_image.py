"""The Kafka-on-kind pieces that need no daemon: broker properties and their env form, the
entrypoint's rendering of them, the image's inputs and tag, and the Kubernetes objects; with
and without the secure (TLS, MTLS, SCRAM) listeners."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from inshape_hack.kafka import kafka_version
from inshape_hack.kafka_certs import write_test_pki
from inshape_hack.kafka_config import (
    SINGLE_NODE_SETTINGS,
    BrokerConfig,
    ExternalListener,
    config_env,
    env_name,
    parse_properties,
    properties_text,
)
from inshape_hack.kafka_image import (
    ENTRYPOINT,
    KAFKA_UID,
    ImageInputs,
    dockerfile,
    write_context,
)
from inshape_hack.kafka_kind import rolled_out, stuck_reason
from inshape_hack.kafka_listeners import BrokerTls, Role, SecureListener, loopback_tls
from inshape_hack.kafka_manifests import (
    KafkaDeployment,
    KafkaOnKind,
    external_service,
    internal_service,
    manifests,
    statefulset,
    tls_secret,
)

NODE_IP = "172.18.0.2"
IMAGE = "localhost/inshape/kafka:4.1.1-0123456789ab"
KIND = KafkaDeployment(namespace="inshape", image=IMAGE, node_ip=NODE_IP)
SECURE_KIND = KafkaDeployment(
    namespace="inshape",
    image=IMAGE,
    node_ip=NODE_IP,
    secure_node_ports=((Role.TLS, 30100), (Role.MTLS, 30101), (Role.SCRAM, 30102)),
)
WITH_EXTERNAL = BrokerConfig(
    advertised_host="kafka.inshape.svc.cluster.local",
    external=ExternalListener(NODE_IP, 30092),
)


# --- broker properties ----------------------------------------------------------------------


def test_default_broker_is_a_single_node_on_localhost() -> None:
    props = BrokerConfig().properties()
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://localhost:9092"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == "/var/lib/kafka/data"
    assert props["offsets.topic.replication.factor"] == "1"
    assert SINGLE_NODE_SETTINGS.items() <= props.items()


def test_external_listener_is_bound_mapped_and_advertised_as_node_ip_and_node_port() -> None:
    props = WITH_EXTERNAL.properties()
    assert props["listeners"] == (
        "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093,EXTERNAL://0.0.0.0:9094"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://kafka.inshape.svc.cluster.local:9092,EXTERNAL://172.18.0.2:30092"
    )
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT"
    )
    assert "CONTROLLER" not in props["advertised.listeners"]


def test_node_id_goes_into_the_voters_too() -> None:
    props = BrokerConfig(node_id=3, controller_port=19093).properties()
    assert props["node.id"] == "3"
    assert props["controller.quorum.voters"] == "3@127.0.0.1:19093"


def test_env_names_are_the_entrypoints_inverse() -> None:
    assert env_name("advertised.listeners") == "KAFKA_CFG_ADVERTISED_LISTENERS"
    assert env_name("node.id") == "KAFKA_CFG_NODE_ID"
    assert env_name("a.scram-sha-512.b") == "KAFKA_CFG_A_SCRAM___SHA___512_B"
    for bad in ("with_underscore", "Upper.case", "trailing.", "", "a.-b", "a--b", "-a"):
        with pytest.raises(ValueError):
            env_name(bad)


def test_env_carries_only_what_varies_per_deployment() -> None:
    assert config_env(WITH_EXTERNAL) == {
        "KAFKA_CFG_NODE_ID": "1",
        "KAFKA_CFG_CONTROLLER_QUORUM_VOTERS": "1@127.0.0.1:9093",
        "KAFKA_CFG_LISTENERS": (
            "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093,EXTERNAL://0.0.0.0:9094"
        ),
        "KAFKA_CFG_ADVERTISED_LISTENERS": (
            "PLAINTEXT://kafka.inshape.svc.cluster.local:9092,EXTERNAL://172.18.0.2:30092"
        ),
        "KAFKA_CFG_LISTENER_SECURITY_PROTOCOL_MAP": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT"
        ),
    }


def test_properties_text_round_trips_and_refuses_what_a_properties_file_would_mangle() -> None:
    props = WITH_EXTERNAL.properties()
    assert parse_properties(properties_text(props)) == props
    with pytest.raises(ValueError):
        properties_text({"a": "line\nnext=1"})
    with pytest.raises(ValueError):
        properties_text({"a": r"C:\dir"})


# --- the entrypoint renders what the Python side means ------------------------------------


def render_with_entrypoint(tmp_path: Path, env: dict[str, str]) -> str:
    """Run the image's entrypoint script (`render` only) against the baked defaults."""
    (tmp_path / "config").mkdir()
    defaults = properties_text(BrokerConfig().properties())
    (tmp_path / "config" / "defaults.properties").write_text(defaults)
    base = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), "render"],
        env={**base, "KAFKA_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_entrypoint_turns_the_env_into_the_intended_properties(tmp_path: Path) -> None:
    rendered = render_with_entrypoint(tmp_path, config_env(WITH_EXTERNAL))
    assert parse_properties(rendered) == WITH_EXTERNAL.properties()


def test_entrypoint_without_env_renders_the_defaults(tmp_path: Path) -> None:
    rendered = render_with_entrypoint(tmp_path, {})
    assert parse_properties(rendered) == BrokerConfig().properties()


def test_entrypoint_maps_any_kafka_cfg_variable(tmp_path: Path) -> None:
    rendered = render_with_entrypoint(tmp_path, {"KAFKA_CFG_LOG_RETENTION_HOURS": "1"})
    assert parse_properties(rendered)["log.retention.hours"] == "1"


def test_entrypoint_renders_the_secure_listeners_dashes_and_all(tmp_path: Path) -> None:
    secure = SECURE_KIND.broker_config()
    rendered = parse_properties(render_with_entrypoint(tmp_path, config_env(secure)))
    assert rendered == secure.properties()
    jaas = "listener.name.scram.scram-sha-512.sasl.jaas.config"
    assert rendered[jaas] == "org.apache.kafka.common.security.scram.ScramLoginModule required;"


# --- the secure listeners ---------------------------------------------------------------------


def test_each_secure_listener_has_one_way_to_authenticate() -> None:
    tls = loopback_tls("/pki/broker.pem", "/pki/ca.crt", {Role.TLS: 1, Role.MTLS: 2, Role.SCRAM: 3})
    assert tls.bound() == ["TLS://127.0.0.1:1", "MTLS://127.0.0.1:2", "SCRAM://127.0.0.1:3"]
    assert tls.advertised() == ["TLS://127.0.0.1:1", "MTLS://127.0.0.1:2", "SCRAM://127.0.0.1:3"]
    assert tls.protocol_map() == ["TLS:SSL", "MTLS:SSL", "SCRAM:SASL_SSL"]
    assert tls.properties() == {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": "/pki/broker.pem",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/pki/ca.crt",
        "listener.name.tls.ssl.client.auth": "none",
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.scram.ssl.client.auth": "none",
        "listener.name.scram.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
        "listener.name.scram.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "listener.name.scram.scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
    }
    assert tls.listener(Role.MTLS).address == "127.0.0.1:2"
    only_tls = BrokerTls("/k", "/t", (SecureListener(Role.TLS, 1, "h", 2),))
    with pytest.raises(KeyError):
        only_tls.listener(Role.SCRAM)


def test_secure_listeners_come_after_the_plain_ones_and_change_nothing_else() -> None:
    plain, secure = KIND.broker_config().properties(), SECURE_KIND.broker_config().properties()
    assert secure["listeners"] == plain["listeners"] + (
        ",TLS://0.0.0.0:9095,MTLS://0.0.0.0:9096,SCRAM://0.0.0.0:9097"
    )
    assert secure["advertised.listeners"] == plain["advertised.listeners"] + (
        ",TLS://172.18.0.2:30100,MTLS://172.18.0.2:30101,SCRAM://172.18.0.2:30102"
    )
    assert secure["listener.security.protocol.map"] == plain["listener.security.protocol.map"] + (
        ",TLS:SSL,MTLS:SSL,SCRAM:SASL_SSL"
    )
    assert secure["inter.broker.listener.name"] == "PLAINTEXT"
    assert secure["ssl.keystore.location"] == "/etc/kafka/tls/broker.pem"
    changed = {key for key in plain if plain[key] != secure[key]}
    assert changed == {"listeners", "advertised.listeners", "listener.security.protocol.map"}


# --- the image ------------------------------------------------------------------------------


def inputs(tmp_path: Path, entrypoint: bytes = b"#!/bin/bash\n") -> ImageInputs:
    libs = tmp_path / "libs"
    libs.mkdir(exist_ok=True)
    (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"PK\x03\x04 server")
    (libs / "kafka-clients-4.1.1.jar").write_bytes(b"PK\x03\x04 clients")
    (libs / ".complete").write_text("fetched in 1.0s\n")  # kafka.py's marker: not an input
    base = "localhost/inshape/jre:892e684064c4"
    return ImageInputs(
        base=base,
        libs=libs,
        files={
            "Dockerfile": dockerfile(base).encode(),
            "bin/kafka-entrypoint": entrypoint,
            "config/defaults.properties": b"node.id=1\n",
        },
    )


def test_tag_is_kafka_version_and_a_hash_of_every_input(tmp_path: Path) -> None:
    first = inputs(tmp_path)
    tag = first.image()
    assert re.fullmatch(
        rf"localhost/inshape/kafka:{re.escape(kafka_version())}-[0-9a-f]{{12}}", tag
    )
    assert inputs(tmp_path).image() == tag  # same inputs, same tag: the cache hits
    assert inputs(tmp_path, entrypoint=b"#!/bin/bash\n# changed\n").image() != tag
    (tmp_path / "libs" / "kafka-clients-4.1.1.jar").write_bytes(b"PK\x03\x04 rebuilt")
    rebuilt = first.image()
    assert rebuilt != tag
    (tmp_path / "libs" / ".complete").write_text("fetched in 9.9s\n")
    assert first.image() == rebuilt


def test_dockerfile_runs_the_entrypoint_as_the_nonroot_uid_from_the_local_base() -> None:
    text = dockerfile("localhost/inshape/jre:892e684064c4")
    assert text.startswith("FROM localhost/inshape/jre:892e684064c4\n")
    assert f"USER {KAFKA_UID}:{KAFKA_UID}\n" in text
    assert 'ENTRYPOINT ["/opt/kafka/bin/kafka-entrypoint"]' in text
    assert "-Xmx512m" in text


def test_build_context_holds_the_files_with_modes_and_every_jar(tmp_path: Path) -> None:
    source = inputs(tmp_path)
    context = tmp_path / "context"
    context.mkdir()
    write_context(source, context)
    assert (context / "bin" / "kafka-entrypoint").stat().st_mode & 0o777 == 0o755
    assert (context / "config" / "defaults.properties").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (context / "libs").iterdir()) == [
        "kafka-clients-4.1.1.jar",
        "kafka_2.13-4.1.1.jar",
    ]


# --- the Kubernetes objects -----------------------------------------------------------------


def pod_spec(kafka: KafkaDeployment = KIND) -> dict[str, Any]:
    spec: dict[str, Any] = statefulset(kafka)["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_bootstrap_addresses_are_the_service_dns_name_and_the_node_port() -> None:
    assert KIND.bootstrap() == KafkaOnKind(
        in_cluster_bootstrap="kafka.inshape.svc.cluster.local:9092",
        host_bootstrap="172.18.0.2:30092",
    )


def test_pod_env_advertises_both_bootstrap_addresses() -> None:
    (container,) = pod_spec()["containers"]
    env = env_of(container)
    assert env["KAFKA_CFG_ADVERTISED_LISTENERS"] == (
        "PLAINTEXT://kafka.inshape.svc.cluster.local:9092,EXTERNAL://172.18.0.2:30092"
    )
    assert env == config_env(KIND.broker_config())
    assert pod_spec()["enableServiceLinks"] is False  # no KAFKA_PORT=tcp://... from Kubernetes
    assert pod_spec()["automountServiceAccountToken"] is False


def test_services_route_pods_to_9092_and_the_node_port_to_the_external_listener() -> None:
    (container,) = pod_spec()["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"kafka": 9092, "external": 9094}
    internal = internal_service(KIND)
    assert internal["metadata"]["name"] == "kafka"
    assert internal["spec"]["type"] == "ClusterIP"
    assert internal["spec"]["ports"] == [{"name": "kafka", "port": 9092, "targetPort": "kafka"}]
    external = external_service(KIND)
    assert external["spec"]["type"] == "NodePort"
    (port,) = external["spec"]["ports"]
    assert (port["nodePort"], port["targetPort"], port["port"]) == (30092, "external", 9094)
    for service in (internal, external):
        assert service["spec"]["selector"] == statefulset(KIND)["spec"]["selector"]["matchLabels"]
        assert service["metadata"]["namespace"] == "inshape"


def test_readiness_is_the_open_client_port() -> None:
    (container,) = pod_spec()["containers"]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "kafka"}
    assert "livenessProbe" not in container


def test_data_lives_on_a_claim_from_the_default_storage_class() -> None:
    sts = statefulset(KIND)
    assert sts["spec"]["replicas"] == 1
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["storageClassName"] == "standard"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (container,) = pod_spec()["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/var/lib/kafka"  # log.dirs is /var/lib/kafka/data under it
    assert container["imagePullPolicy"] == "Never"
    assert container["image"] == IMAGE
    assert container["resources"]["limits"]["memory"] == "1Gi"


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of Pod Security Standards `restricted` (v1.34) that a spec can fail."""
    found = []
    pod_ctx = pod.get("securityContext", {})
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"}
    allowed_volumes |= {"persistentVolumeClaim", "projected", "secret"}
    for volume in pod.get("volumes", []):
        if not set(volume) - {"name"} <= allowed_volumes:
            found.append(f"volume {volume['name']}")
    for c in pod["containers"]:
        ctx = c.get("securityContext", {})
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            found.append(f"{c['name']}: runAsNonRoot")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            found.append(f"{c['name']}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{c['name']}: seccompProfile")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{c['name']}: allowPrivilegeEscalation")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{c['name']}: capabilities")
        if ctx.get("privileged") or any("hostPort" in p for p in c.get("ports", [])):
            found.append(f"{c['name']}: privileged or hostPort")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        found.append("host namespaces")
    return found


def test_pod_passes_pod_security_restricted() -> None:
    assert restricted_violations(pod_spec()) == []
    assert restricted_violations(pod_spec(SECURE_KIND)) == []
    assert pod_spec()["securityContext"]["runAsUser"] == KAFKA_UID
    assert pod_spec()["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # The checker itself catches what it claims to.
    loose = {"containers": [{"name": "c", "securityContext": {"runAsNonRoot": True}}]}
    assert len(restricted_violations(loose)) == 3


def test_manifests_put_the_services_before_the_statefulset() -> None:
    assert [(o["kind"], o["metadata"]["name"]) for o in manifests(KIND)] == [
        ("Service", "kafka"),
        ("Service", "kafka-external"),
        ("StatefulSet", "kafka"),
    ]


def schema_round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` read into the Kubernetes client's model of its kind and written back: a field
    the API does not know (a typo, a wrong nesting) is dropped on the way."""
    api = ApiClient()
    model = api._ApiClient__deserialize(obj, f"V1{obj['kind']}")
    return dict(api.sanitize_for_serialization(model))


def test_every_field_is_one_the_kubernetes_api_knows(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path, SECURE_KIND.tls_hosts())
    for obj in [*manifests(KIND), *manifests(SECURE_KIND), tls_secret(SECURE_KIND, pki)]:
        assert schema_round_trip(obj) == obj, obj["kind"]
    misspelt = statefulset(KIND)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert schema_round_trip(misspelt) != misspelt  # the check notices


def test_node_port_outside_the_apiservers_range_is_refused() -> None:
    with pytest.raises(ValueError):
        KafkaDeployment(namespace="inshape", image=IMAGE, node_ip=NODE_IP, node_port=9094)
    with pytest.raises(ValueError):
        KafkaDeployment("inshape", IMAGE, NODE_IP, secure_node_ports=((Role.TLS, 9095),))


def test_secure_listeners_are_node_ports_of_the_external_service() -> None:
    assert SECURE_KIND.bootstrap().secure == {
        Role.TLS: "172.18.0.2:30100",
        Role.MTLS: "172.18.0.2:30101",
        Role.SCRAM: "172.18.0.2:30102",
    }
    assert KIND.bootstrap().secure == {}
    ports = {p["name"]: p for p in external_service(SECURE_KIND)["spec"]["ports"]}
    assert {name: (p["port"], p["nodePort"]) for name, p in ports.items()} == {
        "external": (9094, 30092),
        "tls": (9095, 30100),
        "mtls": (9096, 30101),
        "scram": (9097, 30102),
    }
    (container,) = pod_spec(SECURE_KIND)["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {name: container_ports[name] for name in ports} == {
        name: p["port"] for name, p in ports.items()
    }
    assert env_of(container) == config_env(SECURE_KIND.broker_config())


def test_the_broker_reads_its_pems_from_a_secret_only_it_can_read(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path, SECURE_KIND.tls_hosts())
    secret = tls_secret(SECURE_KIND, pki)
    assert secret["metadata"]["name"] == "kafka-tls"
    assert set(secret["data"]) == {"broker.pem", "ca.crt"}
    assert base64.b64decode(secret["data"]["ca.crt"]) == pki.ca_file.read_bytes()
    spec = pod_spec(SECURE_KIND)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": "kafka-tls", "defaultMode": 0o440}
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/etc/kafka/tls", "readOnly": True}
    assert "tls" not in {v["name"] for v in pod_spec()["volumes"]}  # not without them
    assert SECURE_KIND.tls_hosts() == [
        "kafka.inshape.svc.cluster.local",
        "kafka.inshape.svc",
        "kafka.inshape",
        "172.18.0.2",
    ]


# --- the deploy wait's reading of observed state ------------------------------------------


def test_rolled_out_needs_the_latest_generation_ready() -> None:
    def sts(generation: int, **status: Any) -> dict[str, Any]:
        return {"metadata": {"generation": generation}, "status": status}

    ready = {"readyReplicas": 1, "updatedReplicas": 1, "currentRevision": "r2"}
    assert rolled_out(sts(2, observedGeneration=2, updateRevision="r2", **ready))
    assert not rolled_out({})  # not created yet (KubectlRunner.json's answer)
    assert not rolled_out(sts(3, observedGeneration=2, updateRevision="r2", **ready))
    assert not rolled_out(sts(2, observedGeneration=2, updateRevision="r3", **ready))
    assert not rolled_out(sts(1, observedGeneration=1, replicas=1))


def test_stuck_reason_names_what_will_not_clear_up() -> None:
    def pod(reason: str, message: str = "") -> dict[str, Any]:
        waiting = {"reason": reason, "message": message}
        return {"status": {"containerStatuses": [{"state": {"waiting": waiting}}]}}

    assert stuck_reason({}) is None
    assert stuck_reason(pod("ContainerCreating")) is None
    assert stuck_reason({"status": {"phase": "Pending"}}) is None
    reason = stuck_reason(pod("ErrImageNeverPull", f'image "{IMAGE}" is not present'))
    assert reason is not None and reason.startswith("ErrImageNeverPull:") and IMAGE in reason
    assert stuck_reason(pod("CrashLoopBackOff")) == "CrashLoopBackOff:"
