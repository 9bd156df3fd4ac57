"""Bootstrap servers of a Strimzi `Kafka` resource (kafka.strimzi.io), from its status.

The update Job speaks plain Kafka without TLS or authentication, so it needs an `internal`
listener with `tls: false` and no `authentication`; among several the one named `plain` wins.
Its address comes from `status.listeners[].bootstrapServers` (or `addresses`), which Strimzi
fills in once the cluster is Ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "kafka.strimzi.io"
KIND = "Kafka"
PLURAL = "kafkas"
PREFERRED = "plain"


class StrimziError(Exception):
    """Why no address can be given; `retryable` when waiting may fix it (cluster not ready)."""

    def __init__(self, reason: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Bootstrap:
    servers: str
    listener: str


def _ready(kafka: Mapping[str, Any]) -> tuple[bool, str]:
    for condition in (kafka.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            text = condition.get("message") or condition.get("reason") or ""
            return condition.get("status") == "True", str(text)
    return False, "no Ready condition yet"


def _plain_listeners(kafka: Mapping[str, Any]) -> list[str]:
    """Names of internal listeners without TLS or authentication, `plain` first."""
    listeners = ((kafka.get("spec") or {}).get("kafka") or {}).get("listeners") or []
    names = [
        str(item["name"])
        for item in listeners
        if isinstance(item, Mapping)
        and item.get("name")
        and item.get("type") == "internal"
        and not item.get("tls")
        and not item.get("authentication")
    ]
    return sorted(names, key=lambda name: name != PREFERRED)


def _address(listener: Mapping[str, Any]) -> str | None:
    servers = listener.get("bootstrapServers")
    if isinstance(servers, str) and servers:
        return servers
    addresses = [
        f"{a['host']}:{a['port']}"
        for a in listener.get("addresses") or ()
        if isinstance(a, Mapping) and a.get("host") and a.get("port")
    ]
    return ",".join(addresses) or None


def resolve(kafka: Mapping[str, Any] | None, name: str, namespace: str) -> Bootstrap:
    """Bootstrap servers of Kafka `name` in `namespace`; StrimziError says why not."""
    where = f"Kafka {namespace}/{name}"
    if kafka is None:
        raise StrimziError("KafkaNotFound", f"{where} does not exist", retryable=True)
    plain = _plain_listeners(kafka)
    if not plain:
        raise StrimziError(
            "NoPlainListener",
            f"{where} has no internal listener without TLS and authentication "
            "(add one: {name: plain, port: 9092, type: internal, tls: false})",
            retryable=False,
        )
    ready, detail = _ready(kafka)
    if not ready:
        raise StrimziError("KafkaNotReady", f"{where} is not ready: {detail}", retryable=True)
    status = [
        item
        for item in (kafka.get("status") or {}).get("listeners") or ()
        if isinstance(item, Mapping)
    ]
    for listener_name in plain:
        for item in status:
            # Strimzi before 0.27 named status listeners by `type`, later by `name`.
            if listener_name in (item.get("name"), item.get("type")):
                address = _address(item)
                if address:
                    return Bootstrap(servers=address, listener=listener_name)
    raise StrimziError(
        "ListenerNotReported",
        f"{where} reports no address for listener {plain[0]!r} yet",
        retryable=True,
    )
