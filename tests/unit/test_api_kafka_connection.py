"""The resolved Kafka connection: protocol from tls + authentication (+ a Strimzi listener),
the Secret volumes it asks for, and the Job's KafkaSecurity from those files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inshape_api.kafka_connection import (
    CONNECTION_ENV,
    PASSWORD_ENV,
    USER_DIR,
    KafkaConnection,
    KafkaFilesError,
    cluster_ca,
    job_connection,
    mounts,
    resolve,
    security_from_files,
    trusted_dir,
)
from inshape_api.spec import KafkaSourceSpec, SpecError, parse_spec
from tests.unit.test_operator_crd import MTLS, SCRAM, example_spec

CA = {"secretName": "kafka-ca", "certificate": "ca.crt"}


def source(**kafka: Any) -> KafkaSourceSpec:
    raw = example_spec()
    raw["source"]["kafka"].update(kafka)
    for key, value in kafka.items():
        if value is None:
            raw["source"]["kafka"].pop(key)
    return parse_spec(raw).source.kafka


def test_a_plain_source_is_plaintext_and_names_no_secret() -> None:
    connection = resolve(source(), "kafka:9092")
    assert connection == KafkaConnection(bootstrapServers="kafka:9092")
    assert connection.secrets == () and mounts(connection) == ()


@pytest.mark.parametrize(
    ("kafka", "protocol", "mechanism"),
    [
        ({"tls": {}}, "SSL", None),
        ({"tls": {"trustedCertificates": [CA]}, "authentication": MTLS}, "SSL", None),
        ({"tls": {}, **{"authentication": SCRAM}}, "SASL_SSL", "SCRAM-SHA-512"),
        ({"authentication": SCRAM}, "SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ({"authentication": {**SCRAM, "type": "scram-sha-256"}}, "SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ({"tls": {}, "authentication": {**SCRAM, "type": "plain"}}, "SASL_SSL", "PLAIN"),
    ],
)
def test_protocol_and_mechanism_follow_tls_and_authentication(
    kafka: dict[str, Any], protocol: str, mechanism: str | None
) -> None:
    connection = resolve(source(**kafka), "kafka:9093")
    assert (connection.protocol, connection.saslMechanism) == (protocol, mechanism)
    assert connection.tls == ("tls" in kafka)


def test_a_strimzi_tls_listener_trusts_the_cluster_ca_unless_the_policy_names_one() -> None:
    strimzi = source(bootstrapServers=None, strimziCluster="my-cluster", authentication=SCRAM)
    picked = resolve(strimzi, "b:9093", listener="scram", listener_tls=True, cluster="my-cluster")
    assert picked.protocol == "SASL_SSL" and picked.listener == "scram"
    assert picked.trustedCertificates == (cluster_ca("my-cluster"),)
    assert cluster_ca("my-cluster").secretName == "my-cluster-cluster-ca-cert"
    own = resolve(
        source(
            bootstrapServers=None, strimziCluster="my-cluster", tls={"trustedCertificates": [CA]}
        ),
        "b:9093",
        listener="tls",
        listener_tls=True,
        cluster="my-cluster",
    )
    assert [t.secretName for t in own.trustedCertificates] == ["kafka-ca"]
    plain = resolve(strimzi, "b:9092", listener="scram", listener_tls=False, cluster="my-cluster")
    assert plain.protocol == "SASL_PLAINTEXT" and plain.trustedCertificates == ()


def test_mutual_tls_mounts_cert_and_key_under_fixed_names_and_a_pattern_mounts_all_keys() -> None:
    connection = resolve(
        source(
            tls={"trustedCertificates": [CA, {"secretName": "more-cas", "pattern": "*.crt"}]},
            authentication=MTLS,
        ),
        "kafka:9094",
    )
    found = {m.volume: m for m in mounts(connection)}
    assert found["kafka-trusted-0"].items == (("ca.crt", "ca.crt"),)
    assert found["kafka-trusted-1"].items is None  # the pattern is matched in the pod
    assert found["kafka-user"].items == (("user.crt", "user.crt"), ("user.key", "user.key"))
    assert found["kafka-user"].path == USER_DIR
    assert connection.secrets == ("kafka-ca", "more-cas", "alice")


def test_the_connection_survives_the_env_var_and_holds_no_secret_value() -> None:
    connection = resolve(source(tls={"trustedCertificates": [CA]}, authentication=SCRAM), "k:1")
    text = connection.to_env()
    assert KafkaConnection.from_env(text) == connection
    assert "alice" in text and "password" in text  # the user and the Secret's key, by name


def _write(root: Path, folder: str, files: dict[str, str]) -> None:
    where = root / folder.lstrip("/")
    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (where / name).write_text(text)


def test_the_job_joins_trusted_certificates_and_reads_the_password_from_env(
    tmp_path: Path,
) -> None:
    connection = resolve(
        source(
            tls={"trustedCertificates": [CA, {"secretName": "more", "pattern": "*.crt"}]},
            authentication=SCRAM,
        ),
        "k:1",
    )
    _write(tmp_path, trusted_dir(0), {"ca.crt": "CA-ONE\n"})
    _write(tmp_path, trusted_dir(1), {"a.crt": "CA-TWO", "b.crt": "CA-THREE", "x.key": "no"})
    (tmp_path / trusted_dir(1).lstrip("/") / "..data").mkdir()
    security = security_from_files(connection, {PASSWORD_ENV: "s3cret"}, tmp_path, tmp_path)
    assert security.protocol == "SASL_SSL" and security.password == "s3cret"
    assert security.ca_file is not None
    assert Path(security.ca_file).read_text() == "CA-ONE\nCA-TWO\nCA-THREE\n"
    assert "s3cret" not in repr(security)


def test_missing_files_and_passwords_name_the_secret(tmp_path: Path) -> None:
    scram = resolve(source(tls={"trustedCertificates": [CA]}, authentication=SCRAM), "k:1")
    with pytest.raises(KafkaFilesError, match=r"Secret kafka-ca has no ca\.crt"):
        security_from_files(scram, {PASSWORD_ENV: "x"}, tmp_path, tmp_path)
    _write(tmp_path, trusted_dir(0), {"ca.crt": "CA"})
    with pytest.raises(KafkaFilesError, match="Secret alice key password"):
        security_from_files(scram, {}, tmp_path, tmp_path)
    mtls = resolve(source(tls={"trustedCertificates": [CA]}, authentication=MTLS), "k:1")
    with pytest.raises(KafkaFilesError, match="Secret alice is not mounted"):
        security_from_files(mtls, {}, tmp_path, tmp_path)
    _write(tmp_path, USER_DIR, {"user.crt": "C", "user.key": "K"})
    security = security_from_files(mtls, {}, tmp_path, tmp_path)
    assert (security.protocol, security.cert_file) == (
        "SSL",
        str(tmp_path / "etc/inshape/kafka/user/user.crt"),
    )


def test_a_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    connection = resolve(
        source(tls={"trustedCertificates": [{"secretName": "cas", "pattern": "*.pem"}]}), "k:1"
    )
    _write(tmp_path, trusted_dir(0), {"ca.crt": "CA"})
    with pytest.raises(KafkaFilesError, match=r"Secret cas has no a key matching '\*.pem'"):
        security_from_files(connection, {}, tmp_path, tmp_path)


def test_the_spec_refuses_what_resolve_could_not_honour() -> None:
    with pytest.raises(SpecError):
        source(authentication=MTLS)  # mutual TLS without tls


def test_the_job_finds_the_operators_connection_or_none() -> None:
    connection = resolve(source(tls={}), "k:9093")
    assert job_connection({CONNECTION_ENV: connection.to_env()}) == connection
    assert job_connection({}) is None
