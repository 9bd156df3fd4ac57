"""A consumer group's lag on one topic: end offsets minus committed offsets, via Kafka's admin API.

A partition the group never committed counts from its log start (everything there is pending,
as the update Job starts there too); a group that does not exist yet means the whole topic is
pending. One admin client per bootstrap address is kept and shared by all policies (under a
lock: kafka-python's clients are not thread-safe); a client that failed is dropped and rebuilt.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import CoordinatorNotAvailableError, GroupIdNotFoundError, KafkaError
from kafka.structs import TopicPartition

_TIMEOUT_MS = 5000


class LagError(Exception):
    """The lag could not be read; the message says why (broker down, no topic, ...)."""


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


class LagReader:
    """Reads lags; thread-safe; one instance per operator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[threading.Lock, KafkaAdminClient]] = {}

    def _client(self, bootstrap: str) -> tuple[threading.Lock, KafkaAdminClient]:
        with self._lock:
            found = self._clients.get(bootstrap)
            if found is None:
                client = KafkaAdminClient(
                    bootstrap_servers=bootstrap,
                    client_id="inshape-operator",
                    request_timeout_ms=_TIMEOUT_MS,
                )
                found = (threading.Lock(), client)
                self._clients[bootstrap] = found
            return found

    def _drop(self, bootstrap: str) -> None:
        with self._lock:
            found = self._clients.pop(bootstrap, None)
        if found is not None:
            with contextlib.suppress(KafkaError, OSError):
                found[1].close()

    def lag(self, bootstrap: str, topic: str, group: str) -> int:
        """The group's lag on `topic`; LagError if it cannot be read."""
        try:
            lock, client = self._client(bootstrap)
            with lock:
                return self._read(client, topic, group)
        except LagError:
            raise
        except (KafkaError, OSError, ValueError) as exc:
            self._drop(bootstrap)
            raise LagError(f"Kafka {bootstrap}: {type(exc).__name__}: {exc}") from exc

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
        with self._lock:
            clients = list(self._clients)
        for bootstrap in clients:
            self._drop(bootstrap)
