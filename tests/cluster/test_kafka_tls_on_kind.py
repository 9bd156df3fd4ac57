"""The broker on kind with its secure listeners (kafka_manifests.py): its PEMs from a Secret in
a namespace that enforces Pod Security `restricted`, each listener advertised as the node IP
and a node port, which its certificate names. A host client gets through each, configured by
inshape_api.kafka_security alone; the SCRAM user is made through the admin API."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError

from inshape_api.kafka_security import KafkaSecurity, client_kwargs
from inshape_hack import kafka_kind
from inshape_hack.kafka_certs import BROKER_HOSTS, write_test_pki
from inshape_hack.kafka_listeners import Role
from inshape_hack.kafka_manifests import KafkaDeployment
from inshape_hack.kafka_scram import create_scram_user
from inshape_hack.kindtesting import KindEnv

pytestmark = [pytest.mark.e2e]

TIMEOUTS = {"request_timeout_ms": 10_000, "bootstrap_timeout_ms": 20_000}


def test_each_secure_listener_serves_the_host_through_its_node_port(
    kind_env: KindEnv, namespace: str, tmp_path: Path
) -> None:
    hosts = KafkaDeployment(namespace, kind_env.kafka_image, kind_env.node_ip).tls_hosts()
    pki = write_test_pki(tmp_path, [*BROKER_HOSTS, *hosts])
    kafka = kafka_kind.deploy_kafka(
        kind_env.kubectl(), namespace, kind_env.kafka_image, kind_env.node_ip, pki=pki
    )
    assert set(kafka.secure) == set(Role)
    assert all(address.startswith(f"{kind_env.node_ip}:") for address in kafka.secure.values())
    password = secrets.token_urlsafe(18)
    create_scram_user(kafka.host_bootstrap, "alice", password)

    ca, client = str(pki.ca_file), pki.client("alice")
    ways = {
        Role.TLS: KafkaSecurity("SSL", ca_file=ca),
        Role.MTLS: KafkaSecurity(
            "SSL", ca_file=ca, cert_file=str(client.certfile), key_file=str(client.keyfile)
        ),
        Role.SCRAM: KafkaSecurity(
            "SASL_SSL",
            ca_file=ca,
            sasl_mechanism="SCRAM-SHA-512",
            username="alice",
            password=password,
        ),
    }
    for role, how in ways.items():
        address, topic = kafka.secure[role], f"tls-{role.value.lower()}"
        admin = KafkaAdminClient(bootstrap_servers=address, **client_kwargs(how), **TIMEOUTS)
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            admin.close()
        producer = KafkaProducer(bootstrap_servers=address, **client_kwargs(how), **TIMEOUTS)
        try:
            producer.send(topic, b"over " + role.value.encode()).get(timeout=30)
        finally:
            producer.close()
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=address,
            auto_offset_reset="earliest",
            consumer_timeout_ms=20_000,
            **client_kwargs(how),
            **TIMEOUTS,
        )
        try:
            assert [record.value for record in consumer] == [b"over " + role.value.encode()]
        finally:
            consumer.close()

    # The certificate names the node IP, not just any name: another CA is refused.
    started = time.monotonic()
    untrusted = KafkaSecurity("SSL", ca_file=str(pki.untrusted_ca_file))
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(
            bootstrap_servers=kafka.secure[Role.TLS],
            **client_kwargs(untrusted),
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
        )
    assert time.monotonic() - started < 8
