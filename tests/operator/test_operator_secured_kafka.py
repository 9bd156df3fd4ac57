"""A policy on a secured broker, end to end on kind: the broker's SASL_SSL (SCRAM-SHA-512) and
mutual-TLS listeners, the CA and the credentials in Secrets of the policy's namespace. The
operator (on the host) measures lag as the policy's user; the update Job (a pod) mounts the
Secrets, drains over TLS, commits and is promoted. A wrong password is a KafkaAuthFailed
condition naming the Secret in `kubectl describe`, with no Job and nothing committed."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from inshape_api.spec import Policy
from inshape_hack import kafka_kind
from inshape_hack.kafka_certs import BROKER_HOSTS, KafkaPki, write_test_pki
from inshape_hack.kafka_listeners import Role
from inshape_hack.kafka_manifests import KafkaDeployment, KafkaOnKind
from inshape_hack.kafka_scram import create_scram_user
from inshape_hack.kindtesting import KindEnv, scratch_namespace
from tests.integration.helpers import fill
from tests.operator.conftest import World
from tests.operator.test_operator_runs import JOB_TIMEOUT

pytestmark = [pytest.mark.e2e]

USER = "alice"
CA = {"secretName": "kafka-ca", "certificate": "ca.crt"}


@dataclass(frozen=True)
class SecuredKafka:
    kafka: KafkaOnKind
    pki: KafkaPki
    password: str


def secret(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    encoded = {key: base64.b64encode(value).decode() for key, value in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


@pytest.fixture(scope="module")
def secured_broker(
    kind_env: KindEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredKafka]:
    """One broker for the module, in a namespace of its own, with a fresh CA and a SCRAM user
    made through Kafka's admin API."""
    admin = kind_env.kubectl()
    with scratch_namespace(admin, "kafka") as namespace:
        kinds = KafkaDeployment(namespace, kind_env.kafka_image, kind_env.node_ip)
        pki = write_test_pki(
            tmp_path_factory.mktemp("pki"), [*BROKER_HOSTS, *kinds.tls_hosts()], users=[USER]
        )
        kafka = kafka_kind.deploy_kafka(
            admin, namespace, kind_env.kafka_image, kind_env.node_ip, pki=pki
        )
        password = secrets.token_urlsafe(18)
        create_scram_user(kafka.host_bootstrap, USER, password)
        yield SecuredKafka(kafka, pki, password)


@pytest.fixture
def secured(world: World, secured_broker: SecuredKafka) -> SecuredKafka:
    """The Secrets a platform team would hand a policy author, in the test's namespace."""
    pki, password = secured_broker.pki, secured_broker.password
    client = pki.client(USER)
    objects = [
        secret("kafka-ca", {"ca.crt": pki.ca_file.read_bytes()}),
        secret(USER, {"password": password.encode()}),
        secret("alice-wrong", {"password": b"not-" + password.encode()}),
        secret(
            "alice-tls",
            {"user.crt": client.certfile.read_bytes(), "user.key": client.keyfile.read_bytes()},
        ),
    ]
    world.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    return secured_broker


def secured_spec(address: str, authentication: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": {
            "kafka": {
                "bootstrapServers": address,
                "tls": {
                    "trustedCertificates": [{"secretName": "kafka-ca", "certificate": "ca.crt"}]
                },
                "authentication": authentication,
            }
        },
        "trigger": {"minNewRecords": 300},
    }


def scram(password_secret: str) -> dict[str, Any]:
    return {
        "type": "scram-sha-512",
        "username": USER,
        "passwordSecret": {"secretName": password_secret, "password": "password"},
    }


def fill_plainly(policy: Policy, kafka: KafkaOnKind, count: int) -> None:
    """Produce through the broker's plaintext listener (the test's producer, not the policy)."""
    source = replace(policy.spec.source.kafka, bootstrapServers=kafka.host_bootstrap)
    plain = replace(policy.spec, source=replace(policy.spec.source, kafka=source))
    fill(replace(policy, spec=plain), count)


def committed(kafka: KafkaOnKind, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=kafka.host_bootstrap, request_timeout_ms=10_000)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group) or {}
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def test_scram_over_tls_trains_promotes_and_reports_how_it_connects(
    world: World, secured: SecuredKafka
) -> None:
    address = secured.kafka.secure[Role.SCRAM]
    policy = world.policy("scram", secured_spec(address, scram(USER)))
    fill_plainly(policy, secured.kafka, 400)
    world.wait(lambda: len(world.jobs("scram")) == 1, 60, "the update Job is created")
    world.wait(
        lambda: world.status("scram").get("lastRun", {}).get("outcome") == "Promoted",
        JOB_TIMEOUT,
        "the run over SASL_SSL is promoted",
    )
    status = world.status("scram")
    assert status["kafka"] == {"bootstrapServers": address, "securityProtocol": "SASL_SSL"}
    assert sum(committed(secured.kafka, policy.consumer_group).values()) == 400
    world.wait(lambda: world.status("scram").get("pendingRecords") == 0, 30, "lag read is 0")
    (job,) = world.jobs("scram")
    text = json.dumps(job)
    assert secured.password not in text  # the password reaches the pod through secretKeyRef


def test_mutual_tls_trains_with_the_client_certificate_from_a_secret(
    world: World, secured: SecuredKafka
) -> None:
    mtls = {
        "type": "tls",
        "certificateAndKey": {
            "secretName": "alice-tls",
            "certificate": "user.crt",
            "key": "user.key",
        },
    }
    policy = world.policy("mtls", secured_spec(secured.kafka.secure[Role.MTLS], mtls))
    fill_plainly(policy, secured.kafka, 400)
    world.wait(
        lambda: world.status("mtls").get("lastRun", {}).get("outcome") in ("Promoted", "Failed"),
        JOB_TIMEOUT,
        "the run over mutual TLS finished",
    )
    assert world.status("mtls")["lastRun"]["outcome"] == "Promoted", world.operator.output()
    assert world.status("mtls")["kafka"]["securityProtocol"] == "SSL"


def test_a_wrong_password_is_kafka_auth_failed_naming_the_secret_and_nothing_runs(
    world: World, secured: SecuredKafka
) -> None:
    address = secured.kafka.secure[Role.SCRAM]
    policy = world.policy("wrong", secured_spec(address, scram("alice-wrong")))
    fill_plainly(policy, secured.kafka, 400)
    world.wait(
        lambda: world.condition("wrong", "Degraded").get("reason") == "KafkaAuthFailed",
        60,
        "Degraded is KafkaAuthFailed",
    )
    degraded = world.condition("wrong", "Degraded")
    assert degraded["status"] == "True" and "Secret alice-wrong" in degraded["message"]
    described = world.kubectl("describe", "modelupdatepolicy", "wrong")
    assert "KafkaAuthFailed" in described and "alice-wrong" in described
    assert secured.password not in described
    assert world.jobs("wrong") == []
    assert committed(secured.kafka, policy.consumer_group) == {}
