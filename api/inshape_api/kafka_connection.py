"""How the update Job reaches Kafka, as the operator resolved it, and where its Secrets land.

The operator turns a policy's `spec.source.kafka` (and, with `strimziCluster`, the listener it
picked) into one ``KafkaConnection``: the address, the security protocol and the Secrets that
hold the trust anchors and credentials, by name only. It reaches the Job as JSON in
``$INSHAPE_KAFKA``; the Secrets reach it as files (certificates, keys) and an env var from a
``secretKeyRef`` (the password), at the paths ``mounts()`` and ``PASSWORD_ENV`` say. The Job turns
the files back into a ``KafkaSecurity`` with ``security_from_files``. No Secret's content ever
passes through the policy, the Job's spec or its arguments.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inshape_api.kafka_security import KafkaSecurity, SaslMechanism, SecurityProtocol
from inshape_api.spec import (
    CertAndKeySecretSource,
    CertSecretSource,
    KafkaSourceSpec,
    PasswordSecretSource,
)
from inshape_api.wire import encode, from_wire

CONNECTION_ENV = "INSHAPE_KAFKA"
PASSWORD_ENV = "INSHAPE_KAFKA_PASSWORD"  # from a secretKeyRef, never a literal
MOUNT_ROOT = "/etc/inshape/kafka"
USER_CERT, USER_KEY = "user.crt", "user.key"
# Strimzi publishes the cluster CA's certificate here; a TLS listener's certificate chains to it.
CLUSTER_CA_KEY = "ca.crt"

MECHANISMS: dict[str, SaslMechanism] = {
    "scram-sha-512": "SCRAM-SHA-512",
    "scram-sha-256": "SCRAM-SHA-256",
    "plain": "PLAIN",
}


# (TLS, SASL) -> Kafka's security protocol
PROTOCOL_OF: dict[tuple[bool, bool], SecurityProtocol] = {
    (False, False): "PLAINTEXT",
    (True, False): "SSL",
    (False, True): "SASL_PLAINTEXT",
    (True, True): "SASL_SSL",
}


def cluster_ca(cluster: str) -> CertSecretSource:
    return CertSecretSource(secretName=f"{cluster}-cluster-ca-cert", certificate=CLUSTER_CA_KEY)


@dataclass(frozen=True)
class KafkaConnection:
    """Everything a client needs except the Secrets' contents (named, never held)."""

    bootstrapServers: str  # noqa: N815 - the wire's names are camelCase
    protocol: SecurityProtocol = "PLAINTEXT"
    trustedCertificates: tuple[CertSecretSource, ...] = ()  # noqa: N815
    saslMechanism: SaslMechanism | None = None  # noqa: N815
    username: str | None = None
    passwordSecret: PasswordSecretSource | None = None  # noqa: N815
    certificateAndKey: CertAndKeySecretSource | None = None  # noqa: N815
    listener: str | None = None  # the Strimzi listener it goes through

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Names of the Secrets this connection reads, each once, in a stable order."""
        names = [t.secretName for t in self.trustedCertificates]
        if self.passwordSecret is not None:
            names.append(self.passwordSecret.secretName)
        if self.certificateAndKey is not None:
            names.append(self.certificateAndKey.secretName)
        return tuple(dict.fromkeys(names))

    def to_env(self) -> str:
        return encode(self)

    @classmethod
    def from_env(cls, text: str) -> KafkaConnection:
        return from_wire(json.loads(text), cls)


def resolve(
    source: KafkaSourceSpec,
    bootstrap: str,
    *,
    listener: str | None = None,
    listener_tls: bool = False,
    cluster: str | None = None,
) -> KafkaConnection:
    """The connection for `source` at `bootstrap` (pure). With a Strimzi listener (`listener`,
    `listener_tls`, `cluster`), TLS follows the listener and, when the policy names no CA,
    the cluster CA is trusted."""
    tls = source.tls is not None or listener_tls
    trusted = tuple(source.tls.trustedCertificates) if source.tls else ()
    if tls and not trusted and listener_tls and cluster is not None:
        trusted = (cluster_ca(cluster),)
    auth = source.authentication
    sasl = auth is not None and auth.type != "tls"
    protocol = PROTOCOL_OF[(tls, sasl)]
    return KafkaConnection(
        bootstrapServers=bootstrap,
        protocol=protocol,
        trustedCertificates=trusted,
        saslMechanism=MECHANISMS[auth.type] if auth is not None and sasl else None,
        username=auth.username if sasl and auth is not None else None,
        passwordSecret=auth.passwordSecret if sasl and auth is not None else None,
        certificateAndKey=auth.certificateAndKey if auth is not None and not sasl else None,
        listener=listener,
    )


@dataclass(frozen=True)
class SecretMount:
    """One Secret volume of the Job: `items` (key → file name) or, when None, every key."""

    volume: str
    secret: str
    path: str
    items: tuple[tuple[str, str], ...] | None
    optional: bool = False  # a missing Secret or item leaves the volume empty, the pod starts


def trusted_dir(index: int) -> str:
    return f"{MOUNT_ROOT}/trusted/{index}"


USER_DIR = f"{MOUNT_ROOT}/user"


def mounts(connection: KafkaConnection) -> tuple[SecretMount, ...]:
    """The Secret volumes the Job mounts for `connection` (pure; the Job reads the same paths)."""
    found = [
        SecretMount(
            volume=f"kafka-trusted-{i}",
            secret=trusted.secretName,
            path=trusted_dir(i),
            # A pattern matches keys the Job only sees once mounted: mount them all.
            items=((trusted.certificate, trusted.certificate),) if trusted.certificate else None,
        )
        for i, trusted in enumerate(connection.trustedCertificates)
    ]
    user = connection.certificateAndKey
    if user is not None:
        found.append(
            SecretMount(
                volume="kafka-user",
                secret=user.secretName,
                path=USER_DIR,
                items=((user.certificate, USER_CERT), (user.key, USER_KEY)),
            )
        )
    return tuple(found)


class KafkaFilesError(ValueError):
    """The mounted Secrets do not hold what the connection needs (the message names which)."""


def _trusted_files(connection: KafkaConnection, root: Path) -> list[Path]:
    files: list[Path] = []
    for i, trusted in enumerate(connection.trustedCertificates):
        folder = root / trusted_dir(i).lstrip("/")
        if trusted.certificate is not None:
            matched = [folder / trusted.certificate]
        else:
            # Secret volumes hold `..data`-style bookkeeping entries next to the keys.
            names = (
                sorted(p.name for p in folder.iterdir() if not p.name.startswith(".."))
                if folder.is_dir()
                else []
            )
            matched = [folder / n for n in names if fnmatch.fnmatchcase(n, trusted.pattern or "")]
        missing = [p for p in matched if not p.is_file()]
        if missing or not matched:
            what = trusted.certificate or f"a key matching {trusted.pattern!r}"
            raise KafkaFilesError(f"Secret {trusted.secretName} has no {what}")
        files += matched
    return files


def security_from_files(
    connection: KafkaConnection, environ: Mapping[str, str], root: Path, scratch: Path
) -> KafkaSecurity:
    """The Job's KafkaSecurity from the mounted Secrets (under `root`, "/" in a pod) and the
    password env var. Several trusted certificates are joined into one bundle in `scratch`
    (kafka-python takes one CA file)."""
    ca_file = None
    trusted = _trusted_files(connection, root)
    if trusted:
        bundle = scratch / "kafka-trusted.pem"
        bundle.write_text("\n".join(p.read_text().strip() for p in trusted) + "\n")
        ca_file = str(bundle)
    cert_file = key_file = None
    if connection.certificateAndKey is not None:
        user = root / USER_DIR.lstrip("/")
        cert_file, key_file = str(user / USER_CERT), str(user / USER_KEY)
        if not (Path(cert_file).is_file() and Path(key_file).is_file()):
            raise KafkaFilesError(
                f"Secret {connection.certificateAndKey.secretName} is not mounted at {user}"
            )
    password = None
    if connection.passwordSecret is not None:
        password = environ.get(PASSWORD_ENV)
        if not password:
            raise KafkaFilesError(
                f"${PASSWORD_ENV} is empty: Secret {connection.passwordSecret.secretName} "
                f"key {connection.passwordSecret.password}"
            )
    return KafkaSecurity(
        protocol=connection.protocol,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        sasl_mechanism=connection.saslMechanism,
        username=connection.username,
        password=password,
    )


def job_connection(environ: Mapping[str, str] | None = None) -> KafkaConnection | None:
    """The connection the operator gave the Job, or None (a run started by hand)."""
    env = os.environ if environ is None else environ
    text = env.get(CONNECTION_ENV)
    return KafkaConnection.from_env(text) if text else None
