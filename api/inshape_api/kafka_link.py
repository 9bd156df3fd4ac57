"""Our own connection to a broker, authenticated as ``KafkaSecurity`` says, and a quick probe.

kafka-python 3 turns every TLS or SASL refusal into ``KafkaTimeoutError("Unable to
bootstrap")`` after its bootstrap timeout (30 s), the cause only in its log. Here a refusal is
a ``KafkaAuthError`` naming what was refused ("tls" or "sasl") within one round trip, and a
network problem stays an ``OSError`` (``KafkaUnreachableError``):

- ``tls_context(security)``: the one SSLContext the project builds (as kafka-python builds its
  own from ``client_kwargs``: TLS >= 1.2, the CA file or the system's store, the client chain);
- ``open_link(host, port, security, timeout)``: TCP, the TLS handshake, then SaslHandshake and
  SaslAuthenticate frames from kafka-python's protocol classes, the mechanism's bytes from
  kafka-python's own SCRAM/PLAIN classes; a blocking socket ready for requests;
- ``probe(bootstrap_servers, security)``: tries each address until one accepts the client.

The api package ships in the same image as the Job and the operator, kafka-python with it.
No message here holds the password: the mechanism classes never put it in one, and anything
the broker says back is scrubbed of it anyway.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from inshape_api.kafka_security import KafkaSecurity, client_kwargs

AuthKind = Literal["tls", "sasl"]
CLIENT_ID = "inshape-link"
# SaslHandshake v1 and SaslAuthenticate v1: every broker from Kafka 2.2 to 4.x takes both, and
# neither has flexible (tagged) headers. v0 authenticate (raw bytes) is gone since Kafka 4.0.
SASL_HANDSHAKE_VERSION = 1
SASL_AUTHENTICATE_VERSION = 1
API_VERSIONS_VERSION = 2  # the newest without flexible headers
MAX_RESPONSE_BYTES = 1 << 20  # handshake-time answers are small; more means not Kafka
# OpenSSL reasons that mean the peer refused our certificate (or we refused its); anything
# else from the TLS layer (EOF mid-handshake, a reset) is the network's.
_TLS_REFUSALS = ("ALERT", "CERTIFICATE", "WRONG_VERSION_NUMBER", "UNKNOWN_CA", "HANDSHAKE_FAILURE")


class KafkaAuthError(Exception):
    """The broker (or our check of it) refused the connection: ``kind`` "tls" for the
    certificates (untrusted CA, wrong hostname, client certificate refused), "sasl" for the
    credentials (wrong password, unknown user, mechanism not enabled). Retrying will not help."""

    def __init__(self, kind: AuthKind, message: str) -> None:
        super().__init__(message)
        self.kind: AuthKind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class KafkaUnreachableError(ConnectionError):
    """No broker answered (refused, reset, timed out, closed mid-handshake)."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bootstrap(servers: str) -> tuple[BrokerAddress, ...]:
    """``host:port[,host:port...]`` as kafka-python reads it; ``[v6addr]:port`` for IPv6.
    A missing port is Kafka's 9092."""
    addresses = []
    for item in (part.strip() for part in servers.split(",")):
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "9092"
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, "9092"
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"Not a host:port bootstrap address: {item!r}")
        addresses.append(BrokerAddress(host, int(port)))
    if not addresses:
        raise ValueError("No bootstrap address given")
    return tuple(addresses)


def tls_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The client's TLS settings, or None without TLS. Reads the PEM files now, so a missing
    or unreadable one fails here (FileNotFoundError, ssl.SSLError), not mid-handshake."""
    if not security.tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = security.check_hostname
    # PROTOCOL_TLS_CLIENT verifies the chain whatever check_hostname says, as kafka-python does.
    if security.ca_file:
        context.load_verify_locations(security.ca_file)
    else:
        context.load_default_certs()
    if security.cert_file:
        context.load_cert_chain(certfile=security.cert_file, keyfile=security.key_file)
    return context


def _scrub(text: str, security: KafkaSecurity) -> str:
    return text.replace(security.password, "***") if security.password else text


def tls_refusal(exc: ssl.SSLError) -> bool:
    """Whether a TLS error is a refusal (certificates), not a network problem."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return False
    # OpenSSL's errors carry a reason code; the text holds it too, for any other SSLError.
    said = f"{getattr(exc, 'reason', None) or ''} {exc}".upper()
    return any(word in said for word in _TLS_REFUSALS)


@contextlib.contextmanager
def _classified(where: str, security: KafkaSecurity) -> Iterator[None]:
    """Errors of the block as KafkaAuthError (a refusal) or KafkaUnreachableError."""
    try:
        yield
    except (KafkaAuthError, KafkaUnreachableError):
        raise
    except ssl.SSLError as exc:
        if tls_refusal(exc):
            raise KafkaAuthError("tls", _scrub(f"{where}: {exc}", security)) from None
        raise KafkaUnreachableError(_scrub(f"{where}: {exc!r}", security)) from None
    except OSError as exc:
        raise KafkaUnreachableError(_scrub(f"{where}: {exc!r}", security)) from None


class _Exchange:
    """Request/response on a blocking socket, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._correlation_id = 0

    def call(self, request: Any, version: int, response_class: Any) -> Any:
        request.API_VERSION = version
        self._correlation_id += 1
        request.with_header(correlation_id=self._correlation_id, client_id=CLIENT_ID)
        self.sock.sendall(request.encode(framed=True, header=True))
        (size,) = struct.unpack(">i", self._read(4))
        if not 4 <= size <= MAX_RESPONSE_BYTES:
            raise ConnectionError(f"A {size}-byte answer: not a Kafka broker's")
        body = self._read(size)
        (got,) = struct.unpack_from(">i", body)
        if got != self._correlation_id:
            raise ConnectionError(f"Correlation id {got}, expected {self._correlation_id}")
        return response_class.decode(memoryview(body)[4:], version=version)

    def _read(self, size: int) -> bytes:
        chunks, got = [], 0
        while got < size:
            chunk = self.sock.recv(size - got)
            if not chunk:
                raise ConnectionError("The broker closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


def _authenticate(exchange: _Exchange, host: str, security: KafkaSecurity) -> None:
    """SASL: the handshake names the mechanism, then its tokens go back and forth."""
    mechanism_name = security.sasl_mechanism
    handshake = exchange.call(
        SaslHandshakeRequest(mechanism=mechanism_name),
        SASL_HANDSHAKE_VERSION,
        SaslHandshakeResponse,
    )
    if handshake.error_code:
        enabled = ", ".join(handshake.mechanisms or []) or "none"
        raise KafkaAuthError(
            "sasl",
            f"the listener does not take {mechanism_name} (error {handshake.error_code}; "
            f"enabled: {enabled})",
        )
    # kafka-python's own mechanism classes make the tokens: configured by the same keywords
    # as its clients (client_kwargs), so the SCRAM exchange is the one its consumer does.
    mechanism = get_sasl_mechanism(mechanism_name)(host=host, **client_kwargs(security))
    who = f"{security.username!r} via {mechanism_name}"
    while not mechanism.is_done():
        response = exchange.call(
            SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes()),
            SASL_AUTHENTICATE_VERSION,
            SaslAuthenticateResponse,
        )
        if response.error_code:
            said = _scrub(str(response.error_message or ""), security)
            raise KafkaAuthError(
                "sasl", f"{who} refused (error {response.error_code}): {said}".rstrip(": ")
            )
        try:
            mechanism.receive(response.auth_bytes)
        except (ValueError, KeyError) as exc:  # e.g. the server's SCRAM signature is wrong
            raise KafkaAuthError("sasl", _scrub(f"{who}: {exc}", security)) from None
    if not mechanism.is_authenticated():
        raise KafkaAuthError("sasl", f"{who} not authenticated")
    # No re-authentication (KIP-368): where the broker sets connections.max.reauth.ms it
    # closes the link when the session ends, and the drain's consumer fallback reads on.


def open_link(
    host: str,
    port: int,
    security: KafkaSecurity,
    timeout: float,
    *,
    receive_buffer: int | None = None,
    context: ssl.SSLContext | None = None,
) -> socket.socket:
    """A connection to one broker, through TLS and SASL as ``security`` says, ready for
    Kafka requests: blocking, ``timeout`` on each operation (an ssl.SSLSocket with TLS).

    Raises KafkaAuthError on a refusal, KafkaUnreachableError (an OSError) otherwise. With
    mutual TLS under TLS 1.3 the broker checks the client's certificate after the client's
    handshake ends, so a refused certificate shows only at the first answer (``probe`` asks
    for one). ``context`` replaces the one built from ``security``'s files (the operator
    builds its own from PEMs held in memory)."""
    where = str(BrokerAddress(host, port))
    if context is None:
        context = tls_context(security)  # a bad PEM file raises here, before any connection
    with _classified(f"Cannot connect to {where}", security):
        sock = socket.create_connection((host, port), timeout=timeout)
    try:
        with _classified(f"TLS with {where}", security):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            if context is not None:
                # An IP address is matched against the certificate's IP SANs (no SNI sent).
                sock = context.wrap_socket(sock, server_hostname=host.rstrip("."))
        if security.sasl:
            with _classified(f"SASL with {where}", security):
                _authenticate(_Exchange(sock), host, security)
    except BaseException:
        sock.close()
        raise
    return sock


def _ask_versions(sock: socket.socket, where: str, security: KafkaSecurity) -> None:
    """One request answered: the broker speaks Kafka and (mutual TLS) took our certificate."""
    with _classified(f"ApiVersions from {where}", security):
        response = _Exchange(sock).call(
            ApiVersionsRequest(), API_VERSIONS_VERSION, ApiVersionsResponse
        )
    if response.error_code:
        raise KafkaUnreachableError(f"ApiVersions from {where}: error {response.error_code}")


def probe(
    bootstrap_servers: str,
    security: KafkaSecurity,
    timeout: float = 10.0,
    *,
    context: ssl.SSLContext | None = None,
) -> None:
    """Return once some bootstrap address accepts ``security``. KafkaAuthError if an address
    refused it and none accepted it (a refusal outranks an address that did not answer),
    else KafkaUnreachableError. ``timeout`` bounds the whole probe."""
    deadline = time.monotonic() + timeout
    refusals: list[KafkaAuthError] = []
    problems: list[str] = []
    for address in parse_bootstrap(bootstrap_servers):
        left = deadline - time.monotonic()
        if left <= 0:
            problems.append(f"{address}: not tried, the probe's {timeout:.0f}s were up")
            continue
        try:
            sock = open_link(address.host, address.port, security, left, context=context)
            try:
                _ask_versions(sock, str(address), security)
            finally:
                sock.close()
        except KafkaAuthError as exc:
            refusals.append(KafkaAuthError(exc.kind, f"{address}: {exc.message}"))
        except OSError as exc:
            problems.append(str(exc))
        else:
            return
    if refusals:
        raise refusals[0]
    raise KafkaUnreachableError("; ".join(problems))
