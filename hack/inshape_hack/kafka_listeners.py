"""A test broker's optional secure listeners, as production runs Kafka (Strimzi: TLS, mutual
TLS, SCRAM over TLS), as server.properties entries for the host launcher and the kind image.

Three listeners, one way of authenticating each, so a test picks the listener, not a setting:

========  ==========  ===================================================================
name      protocol    clients
========  ==========  ===================================================================
TLS       SSL         any client that trusts the CA (server authentication only)
MTLS      SSL         only a client with a certificate the CA signed (ssl.client.auth=required)
SCRAM     SASL_SSL    a SCRAM-SHA-512 or -256 user (kafka_scram.py), over TLS, no client cert
========  ==========  ===================================================================

The broker reads PEM files directly (Kafka >= 2.7, KIP-651): its key and certificate chain in
one file (``ssl.keystore.type=PEM``, unencrypted PKCS#8 key), the CA in another (the
truststore, which the MTLS listener checks client certificates against). Inter-broker and
controller traffic stay PLAINTEXT, as do the existing listeners: nothing else changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


class Role(enum.Enum):
    """A secure listener: its value is the listener's name."""

    TLS = "TLS"
    MTLS = "MTLS"
    SCRAM = "SCRAM"

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self is Role.SCRAM else "SSL"

    @property
    def client_auth(self) -> str:
        return "required" if self is Role.MTLS else "none"

    @property
    def prefix(self) -> str:
        """Kafka's prefix for this listener's own settings."""
        return f"listener.name.{self.value.lower()}."


@dataclass(frozen=True)
class SecureListener:
    role: Role
    port: int  # bound
    advertised_host: str
    advertised_port: int

    @property
    def address(self) -> str:
        return f"{self.advertised_host}:{self.advertised_port}"


@dataclass(frozen=True)
class BrokerTls:
    """The secure listeners of one broker and the PEM files (paths as the broker sees them)."""

    keystore: str  # its key, then its certificate chain
    truststore: str  # the CA certificates it trusts client certificates from
    listeners: tuple[SecureListener, ...]
    bind_host: str = "0.0.0.0"

    def listener(self, role: Role) -> SecureListener:
        for listener in self.listeners:
            if listener.role is role:
                return listener
        raise KeyError(f"no {role.value} listener")

    def bound(self) -> list[str]:
        return [f"{item.role.value}://{self.bind_host}:{item.port}" for item in self.listeners]

    def advertised(self) -> list[str]:
        return [f"{item.role.value}://{item.address}" for item in self.listeners]

    def protocol_map(self) -> list[str]:
        return [f"{item.role.value}:{item.role.protocol}" for item in self.listeners]

    def properties(self) -> dict[str, str]:
        """The TLS files, and each listener's own settings; merged into server.properties."""
        settings = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": self.keystore,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.truststore,
        }
        for item in self.listeners:
            prefix = item.role.prefix
            settings[f"{prefix}ssl.client.auth"] = item.role.client_auth
            if item.role is Role.SCRAM:
                settings[f"{prefix}sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
                for mechanism in SCRAM_MECHANISMS:
                    # The broker's side of SCRAM needs a JAAS entry, with no user in it.
                    jaas = f"{prefix}{mechanism.lower()}.sasl.jaas.config"
                    settings[jaas] = SCRAM_LOGIN_MODULE
        return settings


def loopback_tls(keystore: str, truststore: str, ports: dict[Role, int]) -> BrokerTls:
    """Listeners bound and advertised on 127.0.0.1 (a broker on the host)."""
    return BrokerTls(
        keystore,
        truststore,
        tuple(SecureListener(role, port, "127.0.0.1", port) for role, port in ports.items()),
        bind_host="127.0.0.1",
    )
