"""A consumer group's lag on one topic: end offsets minus committed offsets, via Kafka's admin API.

A partition the group never committed counts from its log start (everything there is pending,
as the update Job starts there too); a group that does not exist yet means the whole topic is
pending. A few admin clients per address and credentials are kept and shared by the policies
that connect alike, each used by one thread at a time (kafka-python's clients are not
thread-safe); a client that failed is closed and a fresh one opened.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Mapping
from typing import Any

from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import CoordinatorNotAvailableError, GroupIdNotFoundError, KafkaError
from kafka.structs import TopicPartition

from inshape_api.kafka_link import KafkaAuthError, KafkaUnreachableError, probe
from inshape_api.kafka_security import client_kwargs
from inshape_operator.kafka_credentials import KafkaClientSettings

_TIMEOUT_MS = 5000
CLIENTS_PER_BOOTSTRAP = 4


class LagError(Exception):
    """The lag could not be read; the message says why (broker down, no topic, ...)."""


class KafkaRefusedError(LagError):
    """Kafka refused the TLS handshake (`kind` "tls") or the SASL login ("sasl")."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def pending(
    partitions: list[int],
    committed: Mapping[int, int],
    start: Mapping[int, int],
    end: Mapping[int, int],
) -> int:
    """Records the group has not consumed yet, summed over the topic's partitions (pure)."""
    total = 0
    for partition in partitions:
        high = end.get(partition, 0)
        low = committed.get(partition, start.get(partition, 0))
        total += max(0, high - max(low, start.get(partition, 0)))
    return total


def _check_login(settings: KafkaClientSettings) -> ssl.SSLContext | None:
    """Log in once by hand before a client is made (kafka-python reports refused credentials
    only as "Unable to bootstrap" after its timeout, this names them in a second or two);
    returns the TLS context the client is to use."""
    try:
        context = settings.tls_context()
    except ssl.SSLError as exc:  # a PEM in the Secrets that does not load
        raise KafkaRefusedError("tls", f"the Secrets' certificates do not load: {exc}") from None
    try:
        probe(settings.bootstrap, settings.security, _TIMEOUT_MS / 1000, context=context)
    except KafkaAuthError as exc:
        raise KafkaRefusedError(exc.kind, exc.message) from None
    except KafkaUnreachableError as exc:
        raise LagError(f"Kafka {settings.bootstrap}: {exc}") from None
    return context


class LagReader:
    """Reads lags; thread-safe; one instance per operator.

    Up to CLIENTS_PER_BOOTSTRAP admin clients per address and credentials (settings.key), each
    used by one pass at a time:
    passes that come due together (many policies on one cron slot) read their lags side by
    side instead of queueing behind one client.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._idle: dict[str, list[KafkaAdminClient]] = {}
        self._open: dict[str, int] = {}

    def _take(self, settings: KafkaClientSettings) -> KafkaAdminClient:
        key = settings.key
        with self._ready:
            while not self._idle.get(key) and self._open.get(key, 0) >= CLIENTS_PER_BOOTSTRAP:
                self._ready.wait()
            if self._idle.get(key):
                return self._idle[key].pop()
            self._open[key] = self._open.get(key, 0) + 1
        try:
            context = _check_login(settings)
            return KafkaAdminClient(
                bootstrap_servers=settings.bootstrap,
                client_id="inshape-operator",
                request_timeout_ms=_TIMEOUT_MS,
                ssl_context=context,
                **client_kwargs(settings.security),
            )
        except BaseException:
            self._discard(key, None)
            raise

    def _give_back(self, key: str, client: KafkaAdminClient) -> None:
        with self._ready:
            self._idle.setdefault(key, []).append(client)
            self._ready.notify()

    def _discard(self, key: str, client: KafkaAdminClient | None) -> None:
        """A client that failed is closed, not reused; the next pass opens a fresh one."""
        with self._ready:
            self._open[key] -= 1
            self._ready.notify()
        if client is not None:
            with contextlib.suppress(KafkaError, OSError):
                client.close()

    def lag(self, settings: KafkaClientSettings, topic: str, group: str) -> int:
        """The group's lag on `topic`; LagError if it cannot be read."""
        bootstrap, key = settings.bootstrap, settings.key
        try:
            client = self._take(settings)
        except (KafkaError, OSError, ValueError) as exc:
            raise LagError(f"Kafka {bootstrap}: {type(exc).__name__}: {exc}") from exc
        try:
            lag = self._read(client, topic, group)
        except LagError:
            self._give_back(key, client)
            raise
        except (KafkaError, OSError, ValueError) as exc:
            self._discard(key, client)
            raise LagError(f"Kafka {bootstrap}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._discard(key, client)
            raise
        self._give_back(key, client)
        return lag

    @staticmethod
    def _read(client: KafkaAdminClient, topic: str, group: str) -> int:
        described: list[dict[str, Any]] = client.describe_topics([topic])
        info = next((t for t in described if topic in (t.get("name"), t.get("topic"))), None)
        if info is None or info.get("error_code") or not info.get("partitions"):
            raise LagError(f"topic {topic!r} does not exist")
        partitions = sorted(int(p["partition_index"]) for p in info["partitions"])
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = client.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        starts = client.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        try:
            groups = client.list_group_offsets({group: None})
        except (CoordinatorNotAvailableError, GroupIdNotFoundError):
            # No group yet (on a new broker not even the offsets topic): nothing committed.
            groups = {}
        committed = {
            tp.partition: meta.offset
            for tp, meta in (groups.get(group) or {}).items()
            if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0
        }
        return pending(
            partitions,
            committed,
            {tp.partition: o.offset for tp, o in starts.items()},
            {tp.partition: o.offset for tp, o in ends.items()},
        )

    def close(self) -> None:
        with self._ready:
            idle = [(b, c) for b, clients in self._idle.items() for c in clients]
            self._idle = {}
        for key, client in idle:
            self._discard(key, client)
