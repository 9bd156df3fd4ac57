"""Bootstrap servers of a Strimzi `Kafka` resource (kafka.strimzi.io), from its spec and status.

The policy says how it authenticates (none, mutual `tls`, or `scram-sha-512`); the listener
used is an in-cluster one (`internal` or `cluster-ip`) whose `authentication.type` is exactly
that. Among several matches the order is, first to last:

1. transport: with no authentication a plain listener before a TLS one (nothing to trust);
   with scram-sha-512 a TLS listener before a plain one (the password is not sent in clear);
   mutual TLS is always over TLS;
2. the conventional name for that authentication and transport: `plain` (none, plain), `tls`
   (none over TLS, or mutual TLS), `scram` (scram-sha-512), then `mtls` (mutual TLS);
3. the listener's name, alphabetically.

The first of these that the status reports an address for wins. A TLS listener's certificate
is signed by the cluster CA, which Strimzi publishes in Secret `<cluster>-cluster-ca-cert`
(key `ca.crt`). Works with v1beta2 and v1 resources: both have `spec.kafka.listeners`, and
status listeners carry `name` (before Strimzi 0.27 `type`), `bootstrapServers`, `addresses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

GROUP = "kafka.strimzi.io"
KIND = "Kafka"
PLURAL = "kafkas"
# Served versions the operator can read, preferred first (Strimzi 1.x serves only v1).
VERSIONS = ("v1", "v1beta2")
IN_CLUSTER_TYPES = ("internal", "cluster-ip")
CA_KEY = "ca.crt"

Authentication = Literal["tls", "scram-sha-512"]
AUTHENTICATIONS: tuple[Authentication, ...] = get_args(Authentication)

# Rule 2 above: conventional listener names per (authentication, tls), best first.
_CONVENTIONAL: dict[tuple[Authentication | None, bool], tuple[str, ...]] = {
    (None, False): ("plain",),
    (None, True): ("tls",),
    ("scram-sha-512", True): ("scram",),
    ("scram-sha-512", False): ("scram",),
    ("tls", True): ("tls", "mtls"),
}


class StrimziError(Exception):
    """Why no address can be given; `retryable` when waiting may fix it (cluster not ready)."""

    def __init__(self, reason: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Listener:
    """One entry of `spec.kafka.listeners`, the parts that decide whether it fits."""

    name: str
    type: str
    tls: bool
    authentication: str | None

    def describe(self) -> str:
        tls = "true" if self.tls else "false"
        auth = self.authentication or "none"
        return f"{self.name} ({self.type}, tls: {tls}, authentication: {auth})"


@dataclass(frozen=True)
class Bootstrap:
    servers: str
    listener: str
    tls: bool = False
    authentication: Authentication | None = None
    ca_secret: str | None = None  # Secret with the cluster CA (key CA_KEY) when tls


def ca_secret_name(cluster: str) -> str:
    return f"{cluster}-cluster-ca-cert"


def listeners(kafka: Mapping[str, Any]) -> list[Listener]:
    """The spec's listeners, as typed values (entries without a name are skipped)."""
    raw = ((kafka.get("spec") or {}).get("kafka") or {}).get("listeners") or []
    out = []
    for item in raw:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        auth = item.get("authentication")
        kind = auth.get("type") if isinstance(auth, Mapping) else None
        out.append(
            Listener(
                name=str(item["name"]),
                type=str(item.get("type") or ""),
                tls=item.get("tls") is True,
                authentication=str(kind) if kind else None,
            )
        )
    return out


def _fits(listener: Listener, authentication: Authentication | None) -> bool:
    if listener.type not in IN_CLUSTER_TYPES or listener.authentication != authentication:
        return False
    return listener.tls or authentication != "tls"


def _rank(listener: Listener, authentication: Authentication | None) -> tuple[int, int, str]:
    # Rule 1: scram prefers TLS, none prefers plain (mutual TLS is TLS only, so no matter).
    transport = int(listener.tls) if authentication is None else int(not listener.tls)
    names = _CONVENTIONAL.get((authentication, listener.tls), ())
    conventional = names.index(listener.name) if listener.name in names else len(names)
    return transport, conventional, listener.name


def matching(kafka: Mapping[str, Any], authentication: Authentication | None) -> list[Listener]:
    """The listeners a client with `authentication` can use, best first (see module doc)."""
    found = [item for item in listeners(kafka) if _fits(item, authentication)]
    return sorted(found, key=lambda item: _rank(item, authentication))


def _ready(kafka: Mapping[str, Any]) -> tuple[bool, str]:
    for condition in (kafka.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            text = condition.get("message") or condition.get("reason") or ""
            return condition.get("status") == "True", str(text)
    return False, "no Ready condition yet"


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


def reported_address(kafka: Mapping[str, Any], listener: str) -> str | None:
    """The address the status reports for `listener`, if any yet."""
    for item in (kafka.get("status") or {}).get("listeners") or ():
        # Strimzi before 0.27 named status listeners by `type`, later by `name`.
        if isinstance(item, Mapping) and listener in (item.get("name"), item.get("type")):
            address = _address(item)
            if address:
                return address
    return None


def _asked(authentication: Authentication | None) -> str:
    if authentication is None:
        return "an internal or cluster-ip listener without authentication"
    if authentication == "tls":
        return "an internal or cluster-ip listener with tls: true and authentication type tls"
    return f"an internal or cluster-ip listener with authentication type {authentication}"


def resolve(
    kafka: Mapping[str, Any] | None,
    name: str,
    namespace: str,
    authentication: Authentication | None = None,
) -> Bootstrap:
    """The listener of Kafka `name` in `namespace` a client with `authentication` uses, and
    its address; StrimziError says why there is none."""
    where = f"Kafka {namespace}/{name}"
    if kafka is None:
        raise StrimziError("KafkaNotFound", f"{where} does not exist", retryable=True)
    candidates = matching(kafka, authentication)
    if not candidates:
        there = ", ".join(item.describe() for item in listeners(kafka)) or "none"
        raise StrimziError(
            "NoMatchingListener",
            f"{where} has no listener for this policy: it asks for {_asked(authentication)}; "
            f"the listeners are: {there}",
            retryable=False,
        )
    ready, detail = _ready(kafka)
    if not ready:
        raise StrimziError("KafkaNotReady", f"{where} is not ready: {detail}", retryable=True)
    for listener in candidates:
        address = reported_address(kafka, listener.name)
        if address:
            return Bootstrap(
                servers=address,
                listener=listener.name,
                tls=listener.tls,
                authentication=authentication,
                ca_secret=ca_secret_name(name) if listener.tls else None,
            )
    raise StrimziError(
        "ListenerNotReported",
        f"{where} reports no address for listener {candidates[0].name!r} yet",
        retryable=True,
    )
