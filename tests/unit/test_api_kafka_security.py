"""How a client connects to Kafka (inshape_api.kafka_security): checked when described, spelled
as kafka-python's keywords, the password never shown."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from inshape_api.kafka_security import (
    MECHANISMS,
    PROTOCOLS,
    KafkaSecurity,
    KafkaSecurityError,
    client_kwargs,
)

SECRET = "s3cret-do-not-print"
SCRAM = KafkaSecurity(
    "SASL_SSL",
    ca_file="/tls/ca.crt",
    sasl_mechanism="SCRAM-SHA-512",
    username="alice",
    password=SECRET,
)
MTLS = KafkaSecurity(
    "SSL", ca_file="/tls/ca.crt", cert_file="/tls/user.crt", key_file="/tls/user.key"
)


def test_plaintext_is_the_default_and_says_only_that() -> None:
    assert client_kwargs(KafkaSecurity()) == {"security_protocol": "PLAINTEXT"}


def test_tls_server_auth_checks_the_hostname_and_trusts_the_given_ca() -> None:
    assert client_kwargs(KafkaSecurity("SSL", ca_file="/tls/ca.crt")) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": "/tls/ca.crt",
    }


def test_tls_without_a_ca_file_leaves_kafka_python_on_the_system_store() -> None:
    assert client_kwargs(KafkaSecurity("SSL")) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": True,
    }


def test_mutual_tls_presents_the_client_certificate() -> None:
    assert client_kwargs(MTLS) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": "/tls/ca.crt",
        "ssl_certfile": "/tls/user.crt",
        "ssl_keyfile": "/tls/user.key",
    }


def test_a_certificate_file_may_hold_its_key() -> None:
    kwargs = client_kwargs(KafkaSecurity("SSL", cert_file="/tls/user.pem"))
    assert kwargs["ssl_certfile"] == "/tls/user.pem"
    assert "ssl_keyfile" not in kwargs


def test_hostname_checking_can_be_turned_off() -> None:
    kwargs = client_kwargs(KafkaSecurity("SSL", ca_file="/ca", check_hostname=False))
    assert kwargs["ssl_check_hostname"] is False


def test_scram_over_tls_has_both_halves() -> None:
    assert client_kwargs(SCRAM) == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": "/tls/ca.crt",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_without_tls_has_no_ssl_keywords(mechanism: Any) -> None:
    security = KafkaSecurity(
        "SASL_PLAINTEXT", sasl_mechanism=mechanism, username="bob", password="pw"
    )
    assert client_kwargs(security) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "bob",
        "sasl_plain_password": "pw",
    }


def test_the_password_is_never_in_repr_or_str() -> None:
    for text in (repr(SCRAM), str(SCRAM), f"{SCRAM}", repr([SCRAM])):
        assert SECRET not in text
    assert "alice" in repr(SCRAM)  # the rest is shown, for logs that say how it connected


def test_it_is_frozen_and_compares_by_value() -> None:
    with pytest.raises(AttributeError):
        SCRAM.password = "other"  # type: ignore[misc]
    assert (
        KafkaSecurity(
            "SSL", ca_file="/tls/ca.crt", cert_file="/tls/user.crt", key_file="/tls/user.key"
        )
        == MTLS
    )


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"protocol": "TLS"}, "protocol 'TLS'"),
        ({"protocol": "ssl"}, "protocol 'ssl'"),  # Kafka spells them upper case
        ({"ca_file": "/ca"}, "ca_file mean nothing to PLAINTEXT"),
        ({"protocol": "SASL_PLAINTEXT", "cert_file": "/c"}, "cert_file mean nothing"),
        ({"check_hostname": False}, "check_hostname=False means nothing to PLAINTEXT"),
        ({"protocol": "SSL", "key_file": "/k"}, "key_file without cert_file"),
        ({"protocol": "SASL_SSL", "username": "a", "password": "p"}, "needs sasl_mechanism"),
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "a", "password": "p"},
            "needs sasl_mechanism",
        ),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "password": "p"}, "a username"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "a"}, "a password"),
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "a", "password": ""},
            "a password",
        ),
        ({"protocol": "SSL", "sasl_mechanism": "PLAIN"}, "sasl_mechanism mean nothing to SSL"),
        ({"username": "a", "password": "p"}, "username, password mean nothing to PLAINTEXT"),
    ],
)
def test_descriptions_that_cannot_work_are_refused(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(KafkaSecurityError, match=complaint):
        KafkaSecurity(**fields)


def test_a_refusal_never_echoes_the_password() -> None:
    with pytest.raises(KafkaSecurityError) as refused:
        KafkaSecurity("SSL", ca_file="/ca", password=SECRET)
    assert SECRET not in str(refused.value)


def test_the_protocols_and_mechanisms_are_kafka_pythons() -> None:
    assert PROTOCOLS == ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    assert MECHANISMS == ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@pytest.mark.parametrize("client", [KafkaConsumer, KafkaProducer, KafkaAdminClient])
def test_every_keyword_is_one_each_kafka_python_client_knows(client: type) -> None:
    """A misspelt keyword would fail only when a client is made (each checks its keys)."""
    known = set(client.DEFAULT_CONFIG)  # type: ignore[attr-defined]
    everything = {**client_kwargs(SCRAM), **client_kwargs(MTLS)}
    assert set(everything) <= known
