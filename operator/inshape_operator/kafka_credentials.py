"""The operator's own Kafka client settings for one policy: its resolved connection plus the
contents of the Secrets it names, read through the API (the operator mounts nothing).

Only the keys the policy names are taken; they live in memory. The TLS context is built from
them once (a client key has to pass through a private temporary file, which Python's ssl module
reads only from disk, and is removed at once); kafka-python is then given that context. Values
never reach a log, a repr or a condition: errors name the Secret and the key, nothing more.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inshape_api.kafka_connection import KafkaConnection
from inshape_api.kafka_security import KafkaSecurity

SecretData = Mapping[str, bytes]  # a Secret's data, decoded


class CredentialsError(Exception):
    """A Secret the policy names is missing or lacks the key; `secret` names it."""

    def __init__(self, secret: str, message: str) -> None:
        super().__init__(message)
        self.secret = secret


@dataclass(frozen=True)
class KafkaClientSettings:
    """What the operator's lag reader connects with; PEMs and the password held, never shown."""

    connection: KafkaConnection
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return self.connection.bootstrapServers

    @property
    def key(self) -> str:
        """Identity of these settings: clients are pooled per key, and a rotated Secret gives a
        new key (so a new client) instead of reusing one logged in with the old password."""
        parts = (
            self.connection.to_env(),
            self.password or "",
            self.ca_pem or "",
            self.cert_pem or "",
            self.key_pem or "",
        )
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    @property
    def security(self) -> KafkaSecurity:
        """kafka-python's settings apart from TLS material (given as `tls_context()`)."""
        c = self.connection
        return KafkaSecurity(
            protocol=c.protocol,
            sasl_mechanism=c.saslMechanism,
            username=c.username,
            password=self.password,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context, as kafka-python would build it from files; None without TLS."""
        if not self.connection.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = True
        if self.ca_pem:
            context.load_verify_locations(cadata=self.ca_pem)
        else:
            context.load_default_certs()
        if self.cert_pem and self.key_pem:
            _load_cert_chain(context, self.cert_pem, self.key_pem)
        return context

    def secrets_for(self, kind: str) -> tuple[str, ...]:
        """The Secrets to name when Kafka refused a `kind` ("tls" or "sasl") handshake."""
        c = self.connection
        if kind == "sasl" and c.passwordSecret is not None:
            return (c.passwordSecret.secretName,)
        names = [t.secretName for t in c.trustedCertificates]
        if c.certificateAndKey is not None:
            names.append(c.certificateAndKey.secretName)
        return tuple(dict.fromkeys(names))


def _load_cert_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # ssl reads a certificate chain from files only: a 0700 directory of our own, gone at once.
    with tempfile.TemporaryDirectory(prefix="inshape-kafka-") as folder:
        cert, key = Path(folder, "user.crt"), Path(folder, "user.key")
        cert.write_text(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key_pem)
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))


def decode_secret(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret object's `data`, base64-decoded (pure)."""
    decoded: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            continue  # the API server stores valid base64 only; skip anything else
    return decoded


def _text(secrets: Mapping[str, SecretData | None], name: str, key: str) -> str:
    data = secrets.get(name)
    if data is None:
        raise CredentialsError(name, f"Secret {name} does not exist")
    if key not in data:
        raise CredentialsError(name, f"Secret {name} has no key {key!r}")
    try:
        return data[key].decode()
    except UnicodeDecodeError:
        raise CredentialsError(name, f"Secret {name} key {key!r} is not text") from None


def settings(
    connection: KafkaConnection, secrets: Mapping[str, SecretData | None]
) -> KafkaClientSettings:
    """The client settings from the Secrets' data, by name (None: the Secret is absent). Pure."""
    found = KafkaClientSettings(connection)
    pems: list[str] = []
    for trusted in connection.trustedCertificates:
        data = secrets.get(trusted.secretName)
        if trusted.certificate is not None or data is None:
            pems.append(_text(secrets, trusted.secretName, trusted.certificate or "?"))
            continue
        keys = sorted(k for k in data if fnmatch.fnmatchcase(k, trusted.pattern or ""))
        if not keys:
            raise CredentialsError(
                trusted.secretName,
                f"Secret {trusted.secretName} has no key matching {trusted.pattern!r}",
            )
        pems += [_text(secrets, trusted.secretName, k) for k in keys]
    if pems:
        found = replace(found, ca_pem="\n".join(p.strip() for p in pems) + "\n")
    if connection.passwordSecret is not None:
        ref = connection.passwordSecret
        found = replace(found, password=_text(secrets, ref.secretName, ref.password))
    if connection.certificateAndKey is not None:
        pair = connection.certificateAndKey
        found = replace(
            found,
            cert_pem=_text(secrets, pair.secretName, pair.certificate),
            key_pem=_text(secrets, pair.secretName, pair.key),
        )
    return found


def read_settings(
    get_secret: Callable[[str], Mapping[str, Any] | None], connection: KafkaConnection
) -> KafkaClientSettings:
    """`settings` with each Secret read through `get_secret` (by name, in the policy's
    namespace)."""
    secrets: dict[str, SecretData | None] = {}
    for name in connection.secrets:
        secret = get_secret(name)
        secrets[name] = None if secret is None else decode_secret(secret)
    return settings(connection, secrets)
