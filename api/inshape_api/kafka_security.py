"""How a client connects to Kafka: TLS, SASL, or neither; and the kafka-python keywords for it.

``KafkaSecurity`` says it once, checked when made; ``client_kwargs(security)`` spells it as
the keyword arguments of kafka-python's KafkaConsumer, KafkaProducer and KafkaAdminClient
(the three take the same ones). No kafka import here: the Job and the operator both use it.

    KafkaSecurity("SASL_SSL", ca_file="/tls/ca.crt", sasl_mechanism="SCRAM-SHA-512",
                  username="alice", password=secret)

The password never shows in ``repr``. Paths are the client's own (files a Secret mounts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

PROTOCOLS: tuple[SecurityProtocol, ...] = get_args(SecurityProtocol)
MECHANISMS: tuple[SaslMechanism, ...] = get_args(SaslMechanism)
TLS_PROTOCOLS: frozenset[str] = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS: frozenset[str] = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})

ClientKwargs = dict[str, str | bool]


class KafkaSecurityError(ValueError):
    """A connection description that cannot work (a field its protocol does not use, or one it
    needs and lacks)."""


@dataclass(frozen=True)
class KafkaSecurity:
    """One way to reach a cluster. The defaults are PLAINTEXT, as a bare broker listens.

    - ``ca_file``: PEM CA certificates to trust; None trusts the system's store (TLS only).
    - ``cert_file``/``key_file``: the client certificate for mutual TLS; the key may sit in
      ``cert_file`` (then no ``key_file``), but a key file alone is an error (TLS only).
    - ``check_hostname``: the broker's certificate must name the address dialled (TLS only).
    - ``sasl_mechanism``, ``username``, ``password``: all three (non-empty) with a SASL
      protocol, none without one.
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(f"protocol {self.protocol!r} is not one of {PROTOCOLS}")
        if not self.tls:
            files = {
                "ca_file": self.ca_file,
                "cert_file": self.cert_file,
                "key_file": self.key_file,
            }
            _unset(self.protocol, files)
            if not self.check_hostname:
                raise KafkaSecurityError(f"check_hostname=False means nothing to {self.protocol}")
        if self.key_file is not None and self.cert_file is None:
            raise KafkaSecurityError("key_file without cert_file: no certificate to present")
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise KafkaSecurityError(
                    f"{self.protocol} needs sasl_mechanism, one of {MECHANISMS}"
                    f" (got {self.sasl_mechanism!r})"
                )
            if not self.username or not self.password:
                raise KafkaSecurityError(f"{self.protocol} needs a username and a password")
        else:
            sasl = {"sasl_mechanism": self.sasl_mechanism, "username": self.username}
            _unset(self.protocol, {**sasl, "password": self.password})

    @property
    def tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS


def _unset(protocol: str, fields: Mapping[str, object]) -> None:
    given = [name for name, value in fields.items() if value is not None]
    if given:
        raise KafkaSecurityError(f"{', '.join(given)} mean nothing to {protocol}")


PLAINTEXT_SECURITY = KafkaSecurity()  # the clients' default: a bare broker's listener


def client_kwargs(security: KafkaSecurity) -> ClientKwargs:
    """kafka-python's keywords for ``security``; what is unset is left out, so kafka-python's
    own defaults hold (for a TLS client without ``ca_file``: the system's CA store)."""
    kwargs: ClientKwargs = {"security_protocol": security.protocol}
    if security.tls:
        kwargs["ssl_check_hostname"] = security.check_hostname
        optional = {
            "ssl_cafile": security.ca_file,
            "ssl_certfile": security.cert_file,
            "ssl_keyfile": security.key_file,
        }
        kwargs.update({key: value for key, value in optional.items() if value is not None})
    if security.sasl:
        # Checked in __post_init__: all three are set with a SASL protocol.
        assert security.sasl_mechanism and security.username and security.password
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.username
        kwargs["sasl_plain_password"] = security.password
    return kwargs
