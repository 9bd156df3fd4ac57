"""The operator's Kafka client settings from Secrets: only the named keys, errors that name the
Secret (never a value), a real TLS context from in-memory PEMs, and a pool key that changes
when a Secret rotates."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from inshape_api.kafka_connection import KafkaConnection
from inshape_api.spec import CertAndKeySecretSource, CertSecretSource, PasswordSecretSource
from inshape_hack.kafka_certs import write_test_pki
from inshape_operator.kafka_credentials import (
    CredentialsError,
    decode_secret,
    read_settings,
    settings,
)

SCRAM = KafkaConnection(
    "k:9093",
    protocol="SASL_SSL",
    trustedCertificates=(CertSecretSource("cas", pattern="*.crt"),),
    saslMechanism="SCRAM-SHA-512",
    username="alice",
    passwordSecret=PasswordSecretSource("alice", "password"),
)


def test_the_named_keys_are_taken_and_a_pattern_matches_in_key_order() -> None:
    found = settings(
        SCRAM,
        {
            "cas": {"b.crt": b"CA-B", "a.crt": b"CA-A\n", "notes.txt": b"no"},
            "alice": {"password": b"pw", "user.p12": b"unused"},
        },
    )
    assert (found.ca_pem, found.password) == ("CA-A\nCA-B\n", "pw")
    assert found.security.protocol == "SASL_SSL" and found.security.username == "alice"
    assert "pw" not in repr(found) and "CA-A" not in repr(found)
    assert found.secrets_for("sasl") == ("alice",) and found.secrets_for("tls") == ("cas",)


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"cas": {"a.crt": b"CA"}}, "Secret alice does not exist"),
        ({"cas": {"a.crt": b"CA"}, "alice": {"pass": b"x"}}, "Secret alice has no key 'password'"),
        ({"cas": {"a.pem": b"CA"}, "alice": {"password": b"x"}}, "no key matching '\\*.crt'"),
        ({"alice": {"password": b"x"}}, "Secret cas does not exist"),
    ],
)
def test_what_is_missing_names_the_secret_and_key(
    secrets: dict[str, dict[str, bytes]], message: str
) -> None:
    with pytest.raises(CredentialsError, match=message) as caught:
        settings(SCRAM, {"cas": None, "alice": None, **secrets})
    assert caught.value.secret in ("cas", "alice")


def test_secrets_are_read_by_name_once_and_decoded() -> None:
    asked: list[str] = []

    def get_secret(name: str) -> dict[str, object] | None:
        asked.append(name)
        data = {"cas": {"ca.crt": b"CA"}, "alice": {"password": b"pw"}}[name]
        return {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}

    connection = KafkaConnection(
        "k:9093",
        protocol="SASL_SSL",
        trustedCertificates=(CertSecretSource("cas", certificate="ca.crt"),),
        saslMechanism="SCRAM-SHA-256",
        username="alice",
        passwordSecret=PasswordSecretSource("alice", "password"),
    )
    found = read_settings(get_secret, connection)
    assert asked == ["cas", "alice"] and found.password == "pw"
    assert decode_secret({"data": {"k": "not base64!"}}) == {}


def test_a_tls_context_from_in_memory_pems_verifies_and_presents_the_client_certificate(
    tmp_path: Path,
) -> None:
    pki = write_test_pki(tmp_path, users=["alice"])
    alice = pki.clients["alice"]
    mtls = KafkaConnection(
        "k:9094",
        protocol="SSL",
        trustedCertificates=(CertSecretSource("cas", certificate="ca.crt"),),
        certificateAndKey=CertAndKeySecretSource("alice", "user.crt", "user.key"),
    )
    found = settings(
        mtls,
        {
            "cas": {"ca.crt": pki.ca_file.read_bytes()},
            "alice": {
                "user.crt": alice.certfile.read_bytes(),
                "user.key": alice.keyfile.read_bytes(),
            },
        },
    )
    context = found.tls_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname and len(context.get_ca_certs()) == 1
    assert settings(KafkaConnection("k:9092"), {}).tls_context() is None
    broken = settings(
        mtls,
        {"cas": {"ca.crt": b"not a certificate"}, "alice": {}}
        | {"alice": {"user.crt": b"x", "user.key": b"y"}},
    )
    with pytest.raises(ssl.SSLError):
        broken.tls_context()


def test_a_rotated_password_makes_a_new_pool_key() -> None:
    cas = {"b.crt": b"CA"}
    before = settings(SCRAM, {"cas": cas, "alice": {"password": b"old"}})
    after = settings(SCRAM, {"cas": cas, "alice": {"password": b"new"}})
    again = settings(SCRAM, {"cas": cas, "alice": {"password": b"old"}})
    assert before.key != after.key and before.key == again.key
