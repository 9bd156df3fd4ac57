"""Test certificates for Kafka's TLS listeners: a CA, a broker certificate, client certificates.

Everything is EC P-256 (fast to make; Java's and OpenSSL's TLS both take it) and written as
PEM, the one format both sides read without keytool:

- the broker's keystore is one file, its unencrypted PKCS#8 key then its certificate chain,
  as Kafka reads it with ``ssl.keystore.type=PEM`` + ``ssl.keystore.location``;
- a truststore is a file of CA certificates (``ssl.truststore.type=PEM``, kafka-python's
  ``ssl_cafile``);
- a client has its certificate and its key in two files (``ssl_certfile``, ``ssl_keyfile``).

``write_test_pki(directory, hosts)`` makes a whole set, plus a second, unrelated CA for the
"untrusted CA" case. Certificates are valid from a day ago (clock skew) for 30 days.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30
BROKER_HOSTS = ("localhost", "127.0.0.1")  # what a broker on the host is dialled as


@dataclass(frozen=True)
class Issued:
    """A key and the certificate for it."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,  # Kafka's PEM keystore reads PKCS#8 only
            serialization.NoEncryption(),
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "inshape tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def new_ca(common_name: str) -> Issued:
    """A self-signed CA that may sign leaf certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder(_name(common_name), _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(key, certificate)


def subject_alternative_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """A DNS name for each name, an IP address for each address (TLS clients match IPs so)."""
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(ca: Issued, common_name: str, hosts: Sequence[str] = ()) -> Issued:
    """A leaf certificate signed by ``ca``: a server's when ``hosts`` are given (its SANs),
    else a client's, whose subject ``CN=common_name`` is the user it authenticates as."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if hosts else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name), ca.certificate.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(subject_alternative_names(hosts)), critical=False
        )
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


@dataclass(frozen=True)
class ClientFiles:
    """A client certificate's PEM files, for kafka-python's ssl_certfile and ssl_keyfile."""

    user: str
    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class KafkaPki:
    """The PEM files of one test set (all under one directory)."""

    ca_file: Path  # the CA certificate: the clients' ssl_cafile, the broker's truststore
    broker_keystore: Path  # the broker's key, then its certificate and the CA's
    clients: dict[str, ClientFiles]
    untrusted_ca_file: Path  # another CA, which signed nothing the broker has

    def client(self, user: str) -> ClientFiles:
        return self.clients[user]


def _write(path: Path, content: bytes, private: bool = False) -> Path:
    path.write_bytes(content)
    path.chmod(0o600 if private else 0o644)
    return path


def write_test_pki(
    directory: Path, hosts: Sequence[str] = BROKER_HOSTS, users: Sequence[str] = ("alice",)
) -> KafkaPki:
    """A CA, a broker certificate for ``hosts`` and a client certificate per user, as PEM
    files in ``directory``; also a second CA that the broker does not know."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca("inshape test CA")
    broker = issue(ca, "kafka", hosts)
    clients: dict[str, ClientFiles] = {}
    for user in users:
        client = issue(ca, user)
        clients[user] = ClientFiles(
            user,
            _write(directory / f"{user}.crt", client.certificate_pem()),
            _write(directory / f"{user}.key", client.key_pem(), private=True),
        )
    return KafkaPki(
        ca_file=_write(directory / "ca.crt", ca.certificate_pem()),
        broker_keystore=_write(
            directory / "broker.pem",
            broker.key_pem() + broker.certificate_pem() + ca.certificate_pem(),
            private=True,
        ),
        clients=clients,
        untrusted_ca_file=_write(
            directory / "untrusted-ca.crt", new_ca("not the broker's CA").certificate_pem()
        ),
    )
