"""The operator's lag reader on a real broker: counts, concurrent passes, a broker that is gone."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from inshape_api.kafka_connection import KafkaConnection
from inshape_api.spec import CertAndKeySecretSource, CertSecretSource, PasswordSecretSource
from inshape_hack.kafka import KafkaBroker
from inshape_hack.kafka_listeners import Role
from inshape_jobs.produce import produce
from inshape_operator.kafka_credentials import KafkaClientSettings, settings
from inshape_operator.lag import CLIENTS_PER_BOOTSTRAP, KafkaRefusedError, LagError, LagReader
from tests.conftest import SecureKafka
from tests.integration.helpers import NewPolicy, fill, run

pytestmark = pytest.mark.integration


def plain(bootstrap: str) -> KafkaClientSettings:
    return KafkaClientSettings(KafkaConnection(bootstrap))


def test_lag_counts_what_the_group_has_not_trained_on(
    new_policy: NewPolicy, kafka_broker: KafkaBroker
) -> None:
    policy = new_policy()
    topic, group = policy.spec.source.kafka.topic, policy.consumer_group
    bootstrap = plain(kafka_broker.bootstrap_servers)
    reader = LagReader()
    try:
        fill(policy, 300)
        assert reader.lag(bootstrap, topic, group) == 300  # no group yet: all pending
        run(policy, "lag-1")
        fill(policy, 120, seed=1)
        # Many passes at once (policies due on one cron slot) share a few clients.
        with ThreadPoolExecutor(max_workers=3 * CLIENTS_PER_BOOTSTRAP) as pool:
            lags = list(pool.map(lambda _: reader.lag(bootstrap, topic, group), range(24)))
        assert lags == [120] * 24
        with pytest.raises(LagError, match="does not exist"):
            reader.lag(bootstrap, "no-such-topic-here", group)
        assert reader.lag(bootstrap, topic, group) == 120  # the client is still good
    finally:
        reader.close()


def test_an_unreachable_broker_is_a_lag_error_not_a_hang() -> None:
    reader = LagReader()
    with pytest.raises(LagError):
        reader.lag(plain("127.0.0.1:9"), "t", "g")
    reader.close()


def _settings(
    kafka: SecureKafka, role: Role, *, password: str | None = None, ca: Path | None = None
) -> KafkaClientSettings:
    """The operator's settings as it builds them from a policy's Secrets (PEMs in memory)."""
    ca_secret = CertSecretSource("kafka-ca", certificate="ca.crt")
    pems = {"ca.crt": (ca or kafka.pki.ca_file).read_bytes()}
    client = kafka.pki.client(kafka.user.name)
    if role is Role.MTLS:
        connection = KafkaConnection(
            kafka.broker.address(role),
            protocol="SSL",
            trustedCertificates=(ca_secret,),
            certificateAndKey=CertAndKeySecretSource("alice-tls", "user.crt", "user.key"),
        )
        user = {"user.crt": client.certfile.read_bytes(), "user.key": client.keyfile.read_bytes()}
        return settings(connection, {"kafka-ca": pems, "alice-tls": user})
    connection = KafkaConnection(
        kafka.broker.address(role),
        protocol="SASL_SSL",
        trustedCertificates=(ca_secret,),
        saslMechanism="SCRAM-SHA-512",
        username=kafka.user.name,
        passwordSecret=PasswordSecretSource("alice", "password"),
    )
    secret = {"password": (password or kafka.user.password).encode()}
    return settings(connection, {"kafka-ca": pems, "alice": secret})


@pytest.mark.parametrize("role", [Role.SCRAM, Role.MTLS])
def test_lag_is_read_as_the_policys_own_user_over_tls(
    secure_kafka: SecureKafka, unique_name: str, role: Role
) -> None:
    plain = secure_kafka.broker.bootstrap_servers
    produce(
        plain, unique_name, (b'{"a": 1}' for _ in range(50)), count=50, partitions=2, quiet=True
    )
    reader = LagReader()
    try:
        assert reader.lag(_settings(secure_kafka, role), unique_name, f"g-{unique_name}") == 50
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("change", "kind"),
    [({"password": "not-the-password"}, "sasl"), ({"ca": None}, "tls")],
    ids=["wrong-password", "untrusted-ca"],
)
def test_refused_credentials_are_named_within_seconds(
    secure_kafka: SecureKafka, change: dict[str, Any], kind: str
) -> None:
    if "ca" in change:
        change = {"ca": secure_kafka.pki.untrusted_ca_file}
    reader = LagReader()
    started = time.monotonic()
    try:
        with pytest.raises(KafkaRefusedError) as refused:
            reader.lag(_settings(secure_kafka, Role.SCRAM, **change), "t", "g")
    finally:
        reader.close()
    assert refused.value.kind == kind and time.monotonic() - started < 10
    assert secure_kafka.user.password not in str(refused.value)
