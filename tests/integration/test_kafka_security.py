"""Kafka as production runs it (issue 11), on a real broker: TLS, mutual TLS and SCRAM over TLS.

Every client here is configured by inshape_api.kafka_security alone, as the Job and the
operator will be. Through each secure listener a producer writes, a consumer group reads and
commits, and an admin client reads the group's lag (as the operator does). The failures come
within the client's bootstrap timeout, never later: kafka-python 3 retries a failed connection
until ``bootstrap_timeout_ms`` and then raises KafkaTimeoutError ("Unable to bootstrap"),
whatever the cause; the cause (wrong password, untrusted CA, no client certificate) is only in
its log, which the tests read. A last test compares a consumer's throughput over SASL_SSL with
SCRAM against PLAINTEXT on the same broker (printed with -s, not asserted).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic, OffsetSpec
from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition

from inshape_api.kafka_security import KafkaSecurity, SaslMechanism, client_kwargs
from inshape_hack.kafka_certs import KafkaPki
from inshape_hack.kafka_listeners import Role
from inshape_operator.lag import pending
from tests.conftest import ScramUser, SecureKafka

pytestmark = pytest.mark.integration

RECORDS = 300
PARTITIONS = 2
# The failing clients' bounds: each gives up after BOOTSTRAP_MS, and must have within SLACK.
BOOTSTRAP_MS = 3000
SLACK_SECONDS = 3.0
TIMEOUTS: dict[str, Any] = {"request_timeout_ms": 10_000, "bootstrap_timeout_ms": 15_000}


@dataclass(frozen=True)
class Way:
    """A way in: the listener and how the client authenticates to it."""

    name: str
    role: Role
    mechanism: SaslMechanism | None = None
    client_cert: bool = False


WAYS = [
    Way("tls", Role.TLS),
    Way("mtls", Role.MTLS, client_cert=True),
    Way("scram-sha-512", Role.SCRAM, mechanism="SCRAM-SHA-512"),
    Way("scram-sha-256", Role.SCRAM, mechanism="SCRAM-SHA-256"),
]


def security(way: Way, pki: KafkaPki, user: ScramUser) -> KafkaSecurity:
    ca = str(pki.ca_file)
    if way.mechanism is not None:
        return KafkaSecurity(
            "SASL_SSL",
            ca_file=ca,
            sasl_mechanism=way.mechanism,
            username=user.name,
            password=user.password,
        )
    if way.client_cert:
        client = pki.client(user.name)
        return KafkaSecurity(
            "SSL", ca_file=ca, cert_file=str(client.certfile), key_file=str(client.keyfile)
        )
    return KafkaSecurity("SSL", ca_file=ca)


def produce(address: str, how: KafkaSecurity, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=address, acks="all", linger_ms=5, **client_kwargs(how), **TIMEOUTS
    )
    try:
        for value in values:
            producer.send(topic, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


@dataclass(frozen=True)
class Filled:
    """A topic of RECORDS values made and filled through one listener."""

    address: str
    how: KafkaSecurity
    topic: str
    group: str
    admin: KafkaAdminClient
    values: list[bytes]


def fill_through(
    way: Way,
    secure_kafka: SecureKafka,
    unique_name: str,
    admin_for: Callable[[str, KafkaSecurity], KafkaAdminClient],
    records: int = RECORDS,
) -> Filled:
    address = secure_kafka.broker.address(way.role)
    how = security(way, secure_kafka.pki, secure_kafka.user)
    topic, group = f"{unique_name}-events", f"{unique_name}-group"
    admin = admin_for(address, how)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    values = [f"record-{index}".encode() for index in range(records)]
    produce(address, how, topic, values)
    return Filled(address, how, topic, group, admin, values)


def lag(admin: KafkaAdminClient, topic: str, group: str) -> int:
    """The group's lag as the operator reads it (inshape_operator.lag), through ``admin``."""
    tps = [TopicPartition(topic, partition) for partition in range(PARTITIONS)]
    ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    starts = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
    offsets = admin.list_group_offsets({group: None})[group]
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    return pending(
        list(range(PARTITIONS)),
        committed,
        {tp.partition: found.offset for tp, found in starts.items()},
        {tp.partition: found.offset for tp, found in ends.items()},
    )


@pytest.mark.parametrize("way", WAYS, ids=[way.name for way in WAYS])
def test_a_group_reads_and_commits_and_its_lag_is_read_through_the_listener(
    way: Way,
    secure_kafka: SecureKafka,
    unique_name: str,
    admin_for: Callable[[str, KafkaSecurity], KafkaAdminClient],
) -> None:
    filled = fill_through(way, secure_kafka, unique_name, admin_for)
    address, how, topic, group = filled.address, filled.how, filled.topic, filled.group
    admin, values = filled.admin, filled.values

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=address,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_kwargs(how),
        **TIMEOUTS,
    )
    read: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(read) < RECORDS and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                read.extend(record.value for record in records)
        consumer.commit()
    finally:
        consumer.close()
    assert sorted(read) == sorted(values)
    assert lag(admin, topic, group) == 0

    produce(address, how, topic, values[:7])
    assert lag(admin, topic, group) == 7


@dataclass(frozen=True)
class Refusal:
    name: str
    role: Role
    cause: str  # a pattern of what kafka-python logs as the reason it could not connect


REFUSALS = [
    # The broker answers a wrong password with SaslAuthenticate error 58, then closes the
    # connection at once; kafka-python 3.0.12 drops bytes read together with the close
    # (KafkaSSLTransport._read_from_sock), so it logs the error or, as often, only the close.
    Refusal(
        "wrong-scram-password",
        Role.SCRAM,
        r"SaslAuthenticationFailedError: .*invalid credentials|socket disconnected",
    ),
    Refusal("untrusted-ca", Role.TLS, r"Handshake failed: \[SSL: CERTIFICATE_VERIFY_FAILED\]"),
    # Java's TLS 1.3 alert for a missing client certificate; after the client's handshake.
    Refusal("mtls-without-client-cert", Role.MTLS, r"alert (bad certificate|certificate required)"),
]


def refused_security(refusal: Refusal, pki: KafkaPki, user: ScramUser) -> KafkaSecurity:
    """What the client brings: all right but for the one thing the refusal is about."""
    if refusal.role is Role.SCRAM:
        return KafkaSecurity(
            "SASL_SSL",
            ca_file=str(pki.ca_file),
            sasl_mechanism="SCRAM-SHA-512",
            username=user.name,
            password=user.password + "-wrong",
        )
    if refusal.role is Role.TLS:
        return KafkaSecurity("SSL", ca_file=str(pki.untrusted_ca_file))
    return KafkaSecurity("SSL", ca_file=str(pki.ca_file))  # no cert_file for MTLS


def make_client(kind: str, address: str, kwargs: dict[str, Any]) -> None:
    """Make a client and use it; each kind bootstraps when made (no api_version given)."""
    if kind == "admin":
        KafkaAdminClient(bootstrap_servers=address, **kwargs).list_topics()
    elif kind == "consumer":
        KafkaConsumer("any", bootstrap_servers=address, group_id="g", **kwargs).poll(1000)
    else:
        KafkaProducer(bootstrap_servers=address, **kwargs).send("any", b"x").get(timeout=10)


@pytest.mark.parametrize("kind", ["admin", "consumer", "producer"])
@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.name for refusal in REFUSALS])
def test_a_refused_client_fails_within_its_bootstrap_timeout_and_logs_why(
    refusal: Refusal,
    kind: str,
    secure_kafka: SecureKafka,
    caplog: pytest.LogCaptureFixture,
    record_property: Callable[[str, object], None],
) -> None:
    address = secure_kafka.broker.address(refusal.role)
    how = refused_security(refusal, secure_kafka.pki, secure_kafka.user)
    kwargs = {
        **client_kwargs(how),
        "request_timeout_ms": BOOTSTRAP_MS,
        "bootstrap_timeout_ms": BOOTSTRAP_MS,
    }
    caplog.set_level(logging.WARNING, logger="kafka")
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        make_client(kind, address, kwargs)
    elapsed = time.monotonic() - started
    record_property("seconds", round(elapsed, 2))
    print(f"\n{refusal.name} {kind}: KafkaTimeoutError after {elapsed:.2f}s")
    assert elapsed < BOOTSTRAP_MS / 1000 + SLACK_SECONDS
    assert re.search(refusal.cause, caplog.text), caplog.text[-2000:]


def test_given_api_version_a_refused_consumer_raises_nothing_and_reads_nothing(
    secure_kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """Why the product must not pass api_version: then the consumer does not bootstrap when
    made, and poll() swallows the refusal (kafka-python 3.0) -- an empty poll, no error."""
    refusal = REFUSALS[0]
    how = refused_security(refusal, secure_kafka.pki, secure_kafka.user)
    caplog.set_level(logging.WARNING, logger="kafka")
    consumer = KafkaConsumer(
        "any",
        bootstrap_servers=secure_kafka.broker.address(refusal.role),
        group_id="g",
        api_version=(4, 0),
        **client_kwargs(how),
        request_timeout_ms=BOOTSTRAP_MS,
    )
    try:
        assert consumer.poll(timeout_ms=2000) == {}
    finally:
        consumer.close()
    assert re.search(refusal.cause, caplog.text)


THROUGHPUT_RECORDS = 100_000


def consume_seconds(address: str, how: KafkaSecurity, topic: str) -> float:
    """Seconds a fresh consumer (no group, bytes as they come) takes to read the whole topic,
    from its first poll (the TLS handshake and SCRAM exchange are not counted)."""
    consumer = KafkaConsumer(
        bootstrap_servers=address, enable_auto_commit=False, **client_kwargs(how), **TIMEOUTS
    )
    try:
        consumer.assign([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
        consumer.seek_to_beginning()
        started = time.monotonic()
        read = 0
        while read < THROUGHPUT_RECORDS and time.monotonic() < started + 300:
            read += sum(len(records) for records in consumer.poll(timeout_ms=1000).values())
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
    assert read == THROUGHPUT_RECORDS
    return elapsed


@pytest.mark.slow
def test_consume_throughput_over_scram_and_tls_against_plaintext(
    secure_kafka: SecureKafka,
    unique_name: str,
    admin_for: Callable[[str, KafkaSecurity], KafkaAdminClient],
    record_property: Callable[[str, object], None],
) -> None:
    """Reported, not asserted: the same broker and topic, the two listeners taken in turn."""
    plain, plaintext = secure_kafka.broker.bootstrap_servers, KafkaSecurity()
    scram = secure_kafka.broker.address(Role.SCRAM)
    over_tls = security(WAYS[2], secure_kafka.pki, secure_kafka.user)
    topic = f"{unique_name}-throughput"
    admin_for(plain, plaintext).create_topics([NewTopic(topic, PARTITIONS, 1)])
    value = b"x" * 100
    started = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=plain, linger_ms=20, batch_size=256 * 1024)
    try:
        for _ in range(THROUGHPUT_RECORDS):
            producer.send(topic, value=value)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    produced = time.monotonic() - started

    rounds: dict[str, list[float]] = {"PLAINTEXT": [], "SASL_SSL+SCRAM": []}
    for _ in range(2):  # alternated, best of two: the machine is shared
        rounds["PLAINTEXT"].append(consume_seconds(plain, plaintext, topic))
        rounds["SASL_SSL+SCRAM"].append(consume_seconds(scram, over_tls, topic))
    best = {name: min(seconds) for name, seconds in rounds.items()}
    ratio = best["SASL_SSL+SCRAM"] / best["PLAINTEXT"]
    record_property("scram_over_plaintext_seconds_ratio", round(ratio, 2))
    lines = [
        f"{name}: {seconds:.2f}s ({THROUGHPUT_RECORDS / seconds:,.0f} records/s; rounds "
        + ", ".join(f"{each:.2f}" for each in rounds[name])
        + ")"
        for name, seconds in best.items()
    ]
    print(f"\nproduced {THROUGHPUT_RECORDS:,} records of 100 B in {produced:.1f}s (PLAINTEXT)")
    print("consumed them: " + "; ".join(lines))
    print(f"SASL_SSL+SCRAM takes {ratio:.2f}x the time of PLAINTEXT")
