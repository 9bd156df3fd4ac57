"""The test PKI (inshape_hack.kafka_certs): what each PEM file holds, who signed it, what it
names; checked with `cryptography` and with Python's own TLS, as kafka-python will load them."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inshape_hack.kafka_certs import KafkaPki, write_test_pki

HOSTS = ["localhost", "127.0.0.1", "kafka.inshape.svc.cluster.local", "172.18.0.2"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> KafkaPki:
    return write_test_pki(tmp_path_factory.mktemp("pki"), HOSTS, users=("alice", "bob"))


def certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_the_broker_keystore_is_a_pkcs8_key_then_the_chain_to_the_ca(pki: KafkaPki) -> None:
    text = pki.broker_keystore.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    leaf, ca = certificates(pki.broker_keystore)
    (trusted,) = certificates(pki.ca_file)
    assert ca == trusted
    leaf.verify_directly_issued_by(trusted)
    key = serialization.load_pem_private_key(text.encode(), password=None)
    assert key.public_key() == leaf.public_key()
    assert pki.broker_keystore.stat().st_mode & 0o777 == 0o600


def test_the_broker_certificate_names_every_host_as_dns_or_ip(pki: KafkaPki) -> None:
    (leaf, _) = certificates(pki.broker_keystore)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "localhost",
        "kafka.inshape.svc.cluster.local",
    ]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("172.18.0.2"),
    ]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_a_client_certificate_is_its_user_signed_by_the_same_ca(pki: KafkaPki) -> None:
    (ca,) = certificates(pki.ca_file)
    for user in ("alice", "bob"):
        files = pki.client(user)
        (certificate,) = certificates(files.certfile)
        certificate.verify_directly_issued_by(ca)
        assert common_name(certificate) == user
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert files.keyfile.stat().st_mode & 0o777 == 0o600


def test_the_untrusted_ca_signed_nothing_of_this_set(pki: KafkaPki) -> None:
    (untrusted,) = certificates(pki.untrusted_ca_file)
    (leaf, ca) = certificates(pki.broker_keystore)
    assert untrusted != ca
    with pytest.raises(ValueError):  # the issuer is not the untrusted CA
        leaf.verify_directly_issued_by(untrusted)


def test_the_ca_may_sign_leaves_only(pki: KafkaPki) -> None:
    (ca,) = certificates(pki.ca_file)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert constraints.path_length == 0


def test_pythons_tls_loads_them_as_kafka_python_does(pki: KafkaPki) -> None:
    """The calls of kafka-python's KafkaSSLTransport._build_ssl_context, on these files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki.ca_file))
    files = pki.client("alice")
    context.load_cert_chain(certfile=str(files.certfile), keyfile=str(files.keyfile))
    assert context.check_hostname is True
    loaded = [x509.load_der_x509_certificate(der) for der in context.get_ca_certs(True)]
    assert [common_name(certificate) for certificate in loaded] == ["inshape test CA"]


def test_each_set_is_new(tmp_path: Path, pki: KafkaPki) -> None:
    other = write_test_pki(tmp_path, HOSTS)
    assert other.ca_file.read_bytes() != pki.ca_file.read_bytes()
    assert set(other.clients) == {"alice"}
