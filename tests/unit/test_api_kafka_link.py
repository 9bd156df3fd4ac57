"""The pure parts of inshape_api.kafka_link: bootstrap lists, the TLS context, how TLS errors
are told apart, and what a refusal says. The connections themselves are tested on a real
broker (tests/integration/test_kafka_link.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from inshape_api.kafka_link import (
    BrokerAddress,
    KafkaAuthError,
    KafkaUnreachableError,
    parse_bootstrap,
    tls_context,
    tls_refusal,
)
from inshape_api.kafka_security import KafkaSecurity
from inshape_hack.kafka_certs import write_test_pki


def test_bootstrap_lists_are_read_as_kafka_python_reads_them() -> None:
    assert parse_bootstrap("a:9093, b:19092,,[::1]:9094,c") == (
        BrokerAddress("a", 9093),
        BrokerAddress("b", 19092),
        BrokerAddress("::1", 9094),
        BrokerAddress("c", 9092),
    )
    assert str(BrokerAddress("::1", 9094)) == "[::1]:9094"
    assert str(BrokerAddress("a", 1)) == "a:1"


@pytest.mark.parametrize("servers", ["", " , ", "a:port", "a:0", "a:70000", ":9092"])
def test_a_bootstrap_list_without_usable_addresses_is_refused(servers: str) -> None:
    with pytest.raises(ValueError):
        parse_bootstrap(servers)


def test_no_tls_no_context() -> None:
    assert tls_context(KafkaSecurity()) is None


def test_the_context_checks_the_broker_and_presents_the_client_chain(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path)
    client = pki.client("alice")
    context = tls_context(
        KafkaSecurity(
            "SSL",
            ca_file=str(pki.ca_file),
            cert_file=str(client.certfile),
            key_file=str(client.keyfile),
        )
    )
    assert context is not None
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [ca["subject"] for ca in context.get_ca_certs()] == [
        ((("organizationName", "inshape tests"),), (("commonName", "inshape test CA"),))
    ]


def test_without_hostname_checks_the_chain_is_still_verified(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path)
    context = tls_context(KafkaSecurity("SSL", ca_file=str(pki.ca_file), check_hostname=False))
    assert context is not None
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_a_missing_ca_file_fails_when_the_context_is_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tls_context(KafkaSecurity("SSL", ca_file=str(tmp_path / "absent.crt")))


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] unable to get"), True),
        (ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert"), True),
        (ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"), True),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), True),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), False),
        (ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed"), False),
        (ssl.SSLError(1, "[SSL] record layer failure"), False),
    ],
)
def test_certificate_trouble_is_a_refusal_a_broken_connection_is_not(
    error: ssl.SSLError, refusal: bool
) -> None:
    assert tls_refusal(error) is refusal


def test_a_refusal_says_what_was_refused_and_the_network_stays_an_os_error() -> None:
    error = KafkaAuthError("sasl", "'alice' via SCRAM-SHA-512 refused")
    assert (error.kind, str(error)) == ("sasl", "sasl: 'alice' via SCRAM-SHA-512 refused")
    assert not isinstance(error, OSError)
    assert isinstance(KafkaUnreachableError("no broker"), OSError)
