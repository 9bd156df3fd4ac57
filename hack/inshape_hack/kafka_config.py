"""A single-node KRaft broker's server.properties from typed values, and its env-var form.

The Kafka image (kafka_image.py) bakes in the properties of ``BrokerConfig()``; its entrypoint
(hack/kafka/entrypoint.sh) appends one property per ``KAFKA_CFG_*`` variable, a later line
winning. What differs per deployment (node id, listeners, advertised listeners, the optional
external listener, the optional secure listeners of kafka_listeners.py) therefore travels as
env vars, built here and nowhere else. A name's `.` is `_` there and its `-` is `___`
(``listener.name.scram.scram-sha-512.sasl.jaas.config``), as in Confluent's images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inshape_hack.kafka_listeners import BrokerTls

ENV_PREFIX = "KAFKA_CFG_"
INTERNAL = "PLAINTEXT"
CONTROLLER = "CONTROLLER"
EXTERNAL = "EXTERNAL"
DATA_DIR = "/var/lib/kafka/data"

# One node: internal topics cannot be replicated, and few partitions start faster.
SINGLE_NODE_SETTINGS: dict[str, str] = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "1",
    "message.max.bytes": str(8 * 1024 * 1024),
}

# Property names are dotted lower case, maybe with `-`; the entrypoint maps `___` back to `-`
# and then `_` to `.`, so no `_` here, and no two separators in a row.
_PROPERTY_NAME = re.compile(r"[a-z0-9]+([.-][a-z0-9]+)*")


@dataclass(frozen=True)
class ExternalListener:
    """A second listener for clients outside the pod network (processes on the host).

    Bound on ``port`` in the container, advertised as ``advertised_host:advertised_port``:
    on kind, the node's IP on the docker bridge and a NodePort that forwards to ``port``.
    """

    advertised_host: str
    advertised_port: int
    port: int = 9094

    @property
    def address(self) -> str:
        return f"{self.advertised_host}:{self.advertised_port}"


@dataclass(frozen=True)
class BrokerConfig:
    """One broker that is also the only controller; the controller listens on loopback."""

    node_id: int = 1
    advertised_host: str = "localhost"  # what clients of the internal listener dial
    port: int = 9092
    controller_port: int = 9093
    external: ExternalListener | None = None
    data_dir: str = DATA_DIR
    tls: BrokerTls | None = None  # the TLS, MTLS and SCRAM listeners, if any

    @property
    def address(self) -> str:
        return f"{self.advertised_host}:{self.port}"

    def listeners(self) -> str:
        bound = [
            f"{INTERNAL}://0.0.0.0:{self.port}",
            f"{CONTROLLER}://127.0.0.1:{self.controller_port}",
        ]
        if self.external is not None:
            bound.append(f"{EXTERNAL}://0.0.0.0:{self.external.port}")
        if self.tls is not None:
            bound += self.tls.bound()
        return ",".join(bound)

    def advertised_listeners(self) -> str:
        # The controller listener is not advertised: KRaft finds it through the voters.
        advertised = [f"{INTERNAL}://{self.address}"]
        if self.external is not None:
            advertised.append(f"{EXTERNAL}://{self.external.address}")
        if self.tls is not None:
            advertised += self.tls.advertised()
        return ",".join(advertised)

    def protocol_map(self) -> str:
        names = [CONTROLLER, INTERNAL, *([EXTERNAL] if self.external else [])]
        protocols = [f"{name}:PLAINTEXT" for name in names]
        if self.tls is not None:
            protocols += self.tls.protocol_map()
        return ",".join(protocols)

    def deployment_properties(self) -> dict[str, str]:
        """What varies from one deployment to the next: the env vars' share."""
        return {
            "node.id": str(self.node_id),
            "controller.quorum.voters": f"{self.node_id}@127.0.0.1:{self.controller_port}",
            "listeners": self.listeners(),
            "advertised.listeners": self.advertised_listeners(),
            "listener.security.protocol.map": self.protocol_map(),
            **(self.tls.properties() if self.tls is not None else {}),
        }

    def properties(self) -> dict[str, str]:
        """The whole server.properties of this broker."""
        return {
            "process.roles": "broker,controller",
            "controller.listener.names": CONTROLLER,
            "inter.broker.listener.name": INTERNAL,
            "log.dirs": self.data_dir,
            **SINGLE_NODE_SETTINGS,
            **self.deployment_properties(),
        }


def env_name(key: str) -> str:
    """`advertised.listeners` -> `KAFKA_CFG_ADVERTISED_LISTENERS`, `a.scram-sha-512` ->
    `KAFKA_CFG_A_SCRAM___SHA___512` (the entrypoint's inverse)."""
    if not _PROPERTY_NAME.fullmatch(key):
        raise ValueError(f"{key!r} cannot travel as a {ENV_PREFIX}* variable")
    return ENV_PREFIX + key.replace("-", "___").replace(".", "_").upper()


def config_env(config: BrokerConfig) -> dict[str, str]:
    """The container env that turns the image's default broker into ``config``."""
    return {env_name(key): value for key, value in config.deployment_properties().items()}


def properties_text(properties: dict[str, str]) -> str:
    for key, value in properties.items():
        # Kept literal: a properties file reads `\` as an escape and a newline as a new key.
        if "\n" in value or "\\" in value:
            raise ValueError(f"{key}: {value!r} holds a newline or backslash")
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def parse_properties(text: str) -> dict[str, str]:
    """The reverse of properties_text for what it writes: a later line wins, as in Java."""
    parsed: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            parsed[key.strip()] = value
    return parsed
