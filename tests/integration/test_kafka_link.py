"""The Job's own Kafka connections through secured listeners, on a real broker (no mocks).

Through TLS, mutual TLS and SCRAM-SHA-512/256 over TLS: the drain reads everything through
its raw fast path (not the consumer fallback) and commits, and the group's lag is then 0.
A refusal is named within seconds (inshape_api.kafka_link.probe) where kafka-python's clients
would time out after 30 s; and an update Job whose password is wrong reports KafkaAuthFailed
and leaves the group's offsets as they were.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from inshape_api import kafka_connection
from inshape_api.kafka_link import KafkaAuthError, KafkaUnreachableError, probe
from inshape_api.kafka_security import KafkaSecurity
from inshape_api.result import KAFKA_AUTH_FAILED, decode
from inshape_api.spec import (
    CertSecretSource,
    KafkaAuthenticationSpec,
    KafkaTlsSpec,
    PasswordSecretSource,
    Policy,
    dumps_policy,
)
from inshape_hack.kafka_certs import issue, new_ca
from inshape_hack.kafka_listeners import Role
from inshape_jobs.__main__ import _update, parser
from inshape_jobs.drain import TopicReader
from tests.conftest import SecureKafka
from tests.integration.helpers import digits_policy
from tests.integration.test_kafka_security import (
    WAYS,
    Way,
    fill_through,
    lag,
    produce,
)

pytestmark = pytest.mark.integration

RECORDS = 5000
FAST_SECONDS = 10.0  # a refusal must be named within this (kafka-python's clients take 30 s)


def secured(policy: Policy) -> Policy:
    """The policy with a CA Secret and a SCRAM user, as its author writes them."""
    source = replace(
        policy.spec.source.kafka,
        tls=KafkaTlsSpec([CertSecretSource("kafka-ca", certificate="ca.crt")]),
        authentication=KafkaAuthenticationSpec(
            "scram-sha-512", "alice", PasswordSecretSource("alice", "password")
        ),
    )
    return replace(
        policy, spec=replace(policy.spec, source=replace(policy.spec.source, kafka=source))
    )


def wrong_password(kafka: SecureKafka) -> KafkaSecurity:
    return KafkaSecurity(
        "SASL_SSL",
        ca_file=str(kafka.pki.ca_file),
        sasl_mechanism="SCRAM-SHA-512",
        username=kafka.user.name,
        password=kafka.user.password + "-wrong",
    )


@pytest.mark.parametrize("way", WAYS, ids=[way.name for way in WAYS])
def test_the_drain_reads_through_the_raw_path_and_commits(
    way: Way,
    secure_kafka: SecureKafka,
    unique_name: str,
    admin_for: Callable[[str, KafkaSecurity], KafkaAdminClient],
) -> None:
    filled = fill_through(way, secure_kafka, unique_name, admin_for, RECORDS)
    address, how, topic, group = filled.address, filled.how, filled.topic, filled.group
    admin, values = filled.admin, filled.values
    probe(address, how)  # accepted: returns

    reader = TopicReader(address, topic, group, stall_timeout=30, security=how)
    try:
        snapshot = reader.snapshot()
        read: list[bytes | None] = []
        for chunk in reader.read(snapshot, chunk_records=1000):
            read.extend(chunk.values)
        reader.commit(snapshot.end_offsets(), "test")
        paths = reader.paths
    finally:
        reader.close()

    assert sorted(value or b"" for value in read) == sorted(values)
    assert paths.fallback is None
    assert (paths.raw_records, paths.consumer_records) == (RECORDS, 0)
    assert lag(admin, topic, group) == 0


def refused(kafka: SecureKafka, address: str, how: KafkaSecurity) -> KafkaAuthError:
    started = time.monotonic()
    with pytest.raises(KafkaAuthError) as caught:
        probe(address, how)
    elapsed = time.monotonic() - started
    assert elapsed < FAST_SECONDS, f"named the refusal after {elapsed:.1f}s"
    assert kafka.user.password not in str(caught.value)
    assert kafka.user.password not in repr(how)
    return caught.value


def test_a_wrong_password_is_a_sasl_refusal_within_seconds(secure_kafka: SecureKafka) -> None:
    error = refused(
        secure_kafka, secure_kafka.broker.address(Role.SCRAM), wrong_password(secure_kafka)
    )
    assert error.kind == "sasl"
    assert "58" in error.message  # SASL_AUTHENTICATION_FAILED, as the broker said


def test_an_unknown_user_is_a_sasl_refusal(secure_kafka: SecureKafka) -> None:
    how = KafkaSecurity(
        "SASL_SSL",
        ca_file=str(secure_kafka.pki.ca_file),
        sasl_mechanism="SCRAM-SHA-256",
        username="nobody",
        password=secure_kafka.user.password,
    )
    assert refused(secure_kafka, secure_kafka.broker.address(Role.SCRAM), how).kind == "sasl"


def test_a_mechanism_the_listener_does_not_enable_is_a_sasl_refusal(
    secure_kafka: SecureKafka,
) -> None:
    how = KafkaSecurity(
        "SASL_SSL",
        ca_file=str(secure_kafka.pki.ca_file),
        sasl_mechanism="PLAIN",
        username=secure_kafka.user.name,
        password=secure_kafka.user.password,
    )
    error = refused(secure_kafka, secure_kafka.broker.address(Role.SCRAM), how)
    assert error.kind == "sasl"
    assert "SCRAM-SHA-512" in error.message  # what the listener does enable


def test_an_untrusted_ca_is_a_tls_refusal(secure_kafka: SecureKafka) -> None:
    how = KafkaSecurity("SSL", ca_file=str(secure_kafka.pki.untrusted_ca_file))
    error = refused(secure_kafka, secure_kafka.broker.address(Role.TLS), how)
    assert error.kind == "tls"
    assert "CERTIFICATE_VERIFY_FAILED" in error.message


@pytest.fixture
def tls_peer_for_another_host(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS server on 127.0.0.1 whose certificate (from a CA of its own) names only another
    host; its address and that CA's file. It completes handshakes and then hangs up."""
    ca = new_ca("elsewhere CA")
    leaf = issue(ca, "kafka", ["kafka.elsewhere.test"])
    (tmp_path / "peer.pem").write_bytes(leaf.key_pem() + leaf.certificate_pem())
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "peer.pem")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}", tmp_path / "ca.pem"
    stop.set()
    thread.join()
    server.close()


def test_a_certificate_for_another_host_is_a_tls_refusal(
    tls_peer_for_another_host: tuple[str, Path],
) -> None:
    address, ca_file = tls_peer_for_another_host
    with pytest.raises(KafkaAuthError) as caught:
        probe(address, KafkaSecurity("SSL", ca_file=str(ca_file)), timeout=5)
    assert caught.value.kind == "tls"
    assert "mismatch" in caught.value.message  # "IP address mismatch": 127.0.0.1 not named
    # Without the hostname check the handshake passes; this peer then is no broker.
    unchecked = KafkaSecurity("SSL", ca_file=str(ca_file), check_hostname=False)
    with pytest.raises(KafkaUnreachableError):
        probe(address, unchecked, timeout=5)


def test_no_client_certificate_on_mutual_tls_is_a_tls_refusal(secure_kafka: SecureKafka) -> None:
    how = KafkaSecurity("SSL", ca_file=str(secure_kafka.pki.ca_file))
    assert refused(secure_kafka, secure_kafka.broker.address(Role.MTLS), how).kind == "tls"


def test_a_refusal_outranks_an_address_that_does_not_answer(secure_kafka: SecureKafka) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
        scram = secure_kafka.broker.address(Role.SCRAM)
        assert refused(secure_kafka, f"{dead},{scram}", wrong_password(secure_kafka)).kind == "sasl"
        with pytest.raises(KafkaUnreachableError) as caught:
            probe(dead, wrong_password(secure_kafka), timeout=5)
    assert isinstance(caught.value, OSError)


def test_an_update_job_with_a_wrong_password_fails_kafka_auth_and_commits_nothing(
    secure_kafka: SecureKafka, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the Job's real contract: the operator's connection in $INSHAPE_KAFKA, the CA as
    a mounted Secret file, the (wrong) password in the env a secretKeyRef fills."""
    plain = secure_kafka.broker.bootstrap_servers
    scram = secure_kafka.broker.address(Role.SCRAM)
    # MLflow is never reached: the probe comes first, so no tracking server is needed.
    policy = secured(digits_policy(unique_name, scram, "http://127.0.0.1:9"))
    connection = kafka_connection.resolve(policy.spec.source.kafka, scram)
    ca = tmp_path / kafka_connection.trusted_dir(0).lstrip("/") / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_bytes(secure_kafka.pki.ca_file.read_bytes())
    monkeypatch.setenv(kafka_connection.CONNECTION_ENV, connection.to_env())
    monkeypatch.setenv(kafka_connection.PASSWORD_ENV, secure_kafka.user.password + "-wrong")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    topic, group = policy.spec.source.kafka.topic, policy.consumer_group
    admin = KafkaAdminClient(bootstrap_servers=plain)
    admin.create_topics([NewTopic(topic, 3, 1)])
    produce(plain, KafkaSecurity(), topic, [b"{}"] * 30)
    # Where an earlier run left the group: the failed run must leave it there.
    before = {TopicPartition(topic, p): OffsetAndMetadata(1, "", -1) for p in range(3)}
    consumer = KafkaConsumer(bootstrap_servers=plain, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit(before)
    finally:
        consumer.close()
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(dumps_policy(policy))
    termination_log = tmp_path / "result.json"
    options = ["--policy", str(policy_file), "--termination-log", str(termination_log)]
    options += ["--kafka-files-root", str(tmp_path)]
    args = parser().parse_args(["update", "--run-key", "k1", *options])

    started = time.monotonic()
    code = _update(args)
    elapsed = time.monotonic() - started

    result = decode(termination_log.read_text())
    assert code == 1
    assert result.outcome == "Failed" and result.reasons == (KAFKA_AUTH_FAILED,)
    assert secure_kafka.user.password not in termination_log.read_text()
    assert elapsed < FAST_SECONDS
    try:
        after = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    assert {tp: meta.offset for tp, meta in after.items()} == {
        tp: meta.offset for tp, meta in before.items()
    }
