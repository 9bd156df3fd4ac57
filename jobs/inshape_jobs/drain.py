"""Kafka I/O for one update run: snapshot, bounded chunked read, dead letters, offset commit.

The read is bounded by a snapshot of end offsets taken first, so a run never chases a growing
tail; offsets are committed only by `commit()`, which the run calls after MLflow has everything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from kafka.consumer import KafkaConsumer
from kafka.producer import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from inshape_jobs.records import RawChunk
from inshape_jobs.topics import ensure_topic


class DrainError(RuntimeError):
    """Kafka could not be read to the snapshot; nothing is committed."""


@dataclass(frozen=True)
class PartitionRange:
    """Records [start, end) of one partition; `committed` is where the group stood before."""

    partition: int
    committed: int
    start: int
    end: int

    @property
    def new_records(self) -> int:
        return max(0, self.end - max(self.committed, self.start))


@dataclass(frozen=True)
class Snapshot:
    topic: str
    group: str
    ranges: tuple[PartitionRange, ...]

    @property
    def new_records(self) -> int:
        return sum(r.new_records for r in self.ranges)

    @property
    def to_read(self) -> int:
        return sum(max(0, r.end - r.start) for r in self.ranges)

    def committed_offsets(self) -> dict[int, int]:
        return {r.partition: r.committed for r in self.ranges}

    def end_offsets(self) -> dict[int, int]:
        return {r.partition: r.end for r in self.ranges}


# Fetch sizes tuned for draining a backlog: few large fetches rather than many small ones.
CONSUMER_SETTINGS = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    # Large enough to amortise round trips, small enough that buffered fetches stay a few
    # tens of MiB: the run's memory budget is 512 MiB, and imports alone take ~290.
    "fetch_max_bytes": 16 * 1024 * 1024,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "fetch_min_bytes": 1,
    "receive_buffer_bytes": 4 * 1024 * 1024,
    # Record CRCs are checked by the broker on write; re-checking in pure Python halves speed.
    "check_crcs": False,
    "request_timeout_ms": 30_000,
}


class TopicReader:
    """Reads one topic on behalf of one consumer group, with partitions assigned manually."""

    def __init__(
        self, bootstrap_servers: str, topic: str, group: str, stall_timeout: float = 60.0
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group = group
        self.stall_timeout = stall_timeout
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=group, **CONSUMER_SETTINGS
        )

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def _partitions(self) -> list[TopicPartition]:
        deadline = time.monotonic() + self.stall_timeout
        while True:
            parts = self._consumer.partitions_for_topic(self.topic)
            if parts:
                return [TopicPartition(self.topic, p) for p in sorted(parts)]
            if time.monotonic() > deadline:
                raise DrainError(f"Topic {self.topic} has no partitions (does it exist?)")
            time.sleep(0.5)

    def snapshot(self, window: int | None = None) -> Snapshot:
        """Where the group stands and where each partition ends, right now.

        With a window (strategy retrain), each partition also reads up to window/partitions
        records from before the committed offset, so the refit sees recent history too.
        """
        tps = self._partitions()
        ends = self._consumer.end_offsets(tps)
        beginnings = self._consumer.beginning_offsets(tps)
        ranges = []
        for tp in tps:
            committed = self._consumer.committed(tp)
            # Retention may have deleted what the group had not read; start at what exists.
            first_new = max(beginnings[tp], committed if committed is not None else 0)
            start = first_new
            if window is not None:
                per_partition = -(-window // len(tps))
                start = max(beginnings[tp], min(first_new, ends[tp] - per_partition))
            ranges.append(PartitionRange(tp.partition, first_new, start, ends[tp]))
        return Snapshot(self.topic, self.group, tuple(ranges))

    def read(self, snapshot: Snapshot, chunk_records: int) -> Iterator[RawChunk]:
        """Every record of the snapshot's ranges, in chunks of about chunk_records."""
        remaining = {r.partition: r.end for r in snapshot.ranges if r.end > r.start}
        if not remaining:
            return
        consumer = self._consumer
        tps = {p: TopicPartition(self.topic, p) for p in remaining}
        consumer.assign(list(tps.values()))
        for r in snapshot.ranges:
            if r.partition in remaining:
                consumer.seek(tps[r.partition], r.start)
        partitions: list[int] = []
        offsets: list[int] = []
        values: list[bytes | None] = []
        last_progress = time.monotonic()
        while remaining:
            batches = consumer.poll(timeout_ms=1000, max_records=chunk_records)
            if not batches:
                if time.monotonic() - last_progress > self.stall_timeout:
                    raise DrainError(
                        f"No records from {self.topic} for {self.stall_timeout:.0f}s; "
                        f"still to read: {remaining}"
                    )
                continue
            last_progress = time.monotonic()
            for tp, records in batches.items():
                end = remaining.get(tp.partition)
                if end is None:
                    continue
                for record in records:
                    if record.offset >= end:
                        break
                    partitions.append(tp.partition)
                    offsets.append(record.offset)
                    values.append(record.value)
                if consumer.position(tp) >= end:
                    del remaining[tp.partition]
                    consumer.pause(tp)
            if len(values) >= chunk_records:
                yield _chunk(partitions, offsets, values)
                partitions, offsets, values = [], [], []
        if values:
            yield _chunk(partitions, offsets, values)

    def commit(self, offsets: dict[int, int], metadata: str) -> None:
        """Commit the group's offsets (the next offset to read, per partition)."""
        self._consumer.commit(
            {
                TopicPartition(self.topic, partition): OffsetAndMetadata(offset, metadata, -1)
                for partition, offset in offsets.items()
            }
        )


def _chunk(partitions: list[int], offsets: list[int], values: list[bytes | None]) -> RawChunk:
    return RawChunk(
        partitions=np.asarray(partitions, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        values=values,
    )


class DeadLetters:
    """Copies rejected records to a topic, the reason and origin in headers."""

    def __init__(self, bootstrap_servers: str, topic: str, source_topic: str) -> None:
        self.topic = topic
        self.source_topic = source_topic
        ensure_topic(bootstrap_servers, topic, partitions=1)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, linger_ms=20, acks="all"
        )

    def send(self, rejected: list[tuple[int, int, str, bytes | None]]) -> None:
        for partition, offset, reason, value in rejected:
            self._producer.send(
                self.topic,
                value=value,
                headers=[
                    ("inshape-reason", reason.encode()),
                    ("inshape-source", f"{self.source_topic}/{partition}/{offset}".encode()),
                ],
            )

    def flush(self) -> None:
        """Called before the offsets commit, so no dead letter is lost with them."""
        self._producer.flush(timeout=60)

    def close(self) -> None:
        self._producer.close(timeout=10)
