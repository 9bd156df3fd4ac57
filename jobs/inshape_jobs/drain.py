"""Kafka I/O for one update run: snapshot, bounded chunked read, dead letters, offset commit.

The read is bounded by a snapshot of end offsets taken first, so a run never chases a growing
tail; offsets are committed only by `commit()`, which the run calls after MLflow has everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
from kafka.consumer import KafkaConsumer
from kafka.producer import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from inshape_api.kafka_security import PLAINTEXT_SECURITY, KafkaSecurity, client_kwargs
from inshape_jobs import native
from inshape_jobs.batches import (
    BatchFormatError,
    RecordSpans,
    decode_batches,
    decode_spans,
    next_fetch_offset,
)
from inshape_jobs.fetch import FetchFallbackError, RawFetcher
from inshape_jobs.records import Chunk, IntArray, RawChunk
from inshape_jobs.spans import Segment, SpanChunk
from inshape_jobs.topics import ensure_topic

log = logging.getLogger(__name__)


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


@dataclass
class ReadPaths:
    """How this reader's records came: raw fetches, or the consumer after a fallback (and
    why). Read by tests and benchmarks to know which path they measured."""

    raw_records: int = 0
    consumer_records: int = 0
    fallback: str | None = None


# One partition's records read in one go: their offsets and values (a list, or a Segment of
# the fetch buffer when the compiled decoder walks the batches).
Piece = tuple[int, IntArray, list[bytes | None] | Segment]


class TopicReader:
    """Reads one topic on behalf of one consumer group, with partitions assigned manually.
    The consumer, its commits and the raw fetches all connect as ``security`` says.

    With the compiled decoder installed (and native left on), chunks are SpanChunks: values
    stay in the fetch buffers for native.NativeParser; otherwise RawChunks of bytes.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        stall_timeout: float = 60.0,
        security: KafkaSecurity = PLAINTEXT_SECURITY,
        *,
        native_spans: bool = True,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._record_spans: RecordSpans | None = native.record_spans() if native_spans else None
        self.topic = topic
        self.group = group
        self.stall_timeout = stall_timeout
        self.security = security
        self.paths = ReadPaths()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group,
            **CONSUMER_SETTINGS,
            **client_kwargs(security),
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

    def read(self, snapshot: Snapshot, chunk_records: int) -> Iterator[Chunk]:
        """Every record of the snapshot's ranges, in chunks of chunk_records (the last fewer)."""
        positions = {r.partition: r.start for r in snapshot.ranges if r.end > r.start}
        ends = {r.partition: r.end for r in snapshot.ranges if r.end > r.start}
        if not positions:
            return
        # Assigned as before (the group's commit goes through this consumer), but the records
        # come from raw fetches unless something goes wrong.
        consumer = self._consumer
        consumer.assign([TopicPartition(self.topic, p) for p in positions])
        chunker = _Chunker(chunk_records)
        try:
            for piece in self._read_raw(positions, ends):
                self.paths.raw_records += len(piece[1])
                yield from chunker.add(piece)
        except (FetchFallbackError, BatchFormatError) as trouble:
            # positions holds where every partition's delivered records end: the consumer
            # takes over from there and recovers (new leader, retries) the way it always has.
            log.info("Raw fetch stopped (%s); reading on with the consumer", trouble)
            self.paths.fallback = str(trouble)
            for partition, offsets, values in self._read_consumer(positions, ends):
                self.paths.consumer_records += len(offsets)
                payload = values if self._record_spans is None else Segment.of_values(values)
                yield from chunker.add((partition, np.asarray(offsets, dtype=np.int64), payload))
        yield from chunker.finish()

    def _read_raw(self, positions: dict[int, int], ends: dict[int, int]) -> Iterator[Piece]:
        """Raw fetches decoded by batches.decode_batches; the next fetch is in flight while
        this one is decoded. Advances positions as records are handed out."""
        fetcher = RawFetcher(self._consumer, self.topic, CONSUMER_SETTINGS, self.security)
        try:
            yield from self._fetch_loop(fetcher, positions, ends)
        finally:
            fetcher.close()

    def _fetch_loop(
        self, fetcher: RawFetcher, positions: dict[int, int], ends: dict[int, int]
    ) -> Iterator[Piece]:
        fetcher.send(positions)
        last_progress = time.monotonic()
        while True:
            fetched = fetcher.receive()
            # Where each partition goes next, from batch headers only, so the next request
            # goes out before the records are decoded.
            upcoming = dict(positions)
            for f in fetched:
                upcoming[f.partition] = next_fetch_offset(f.records, f.fetch_offset)
            pending = {p: o for p, o in upcoming.items() if o < ends[p]}
            if pending:
                fetcher.send(pending)
            progressed = False
            for f in fetched:
                next_offset = yield from self._decode(f.partition, f.records, f.fetch_offset, ends)
                if next_offset > positions[f.partition]:
                    positions[f.partition] = next_offset
                    progressed = True
            if not pending:
                return
            if progressed:
                last_progress = time.monotonic()
            else:
                self._check_stall(last_progress, pending)

    def _decode(
        self, partition: int, records: bytes, fetch_offset: int, ends: dict[int, int]
    ) -> Generator[Piece, None, int]:
        """Yields one fetch's records; returns where the partition's next fetch starts."""
        end = ends[partition]
        if self._record_spans is not None:
            spans = decode_spans(records, fetch_offset, end, self._record_spans)
            for offsets, segment in spans.pieces:
                yield partition, offsets, segment
            return spans.next_offset
        decoded = decode_batches(records, fetch_offset, end)
        if decoded.offsets:
            yield partition, np.asarray(decoded.offsets, dtype=np.int64), decoded.values
        return decoded.next_offset

    def _read_consumer(
        self, positions: dict[int, int], ends: dict[int, int]
    ) -> Iterator[tuple[int, list[int], list[bytes | None]]]:
        """The same records through KafkaConsumer.poll: slow, but every recovery built in."""
        remaining = {p: ends[p] for p, o in positions.items() if o < ends[p]}
        if not remaining:
            return
        consumer = self._consumer
        tps = {p: TopicPartition(self.topic, p) for p in remaining}
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, positions[p])
        last_progress = time.monotonic()
        while remaining:
            batches = consumer.poll(timeout_ms=1000, max_records=10_000)
            if not batches:
                self._check_stall(last_progress, remaining)
                continue
            last_progress = time.monotonic()
            for tp, records in batches.items():
                end = remaining.get(tp.partition)
                if end is None:
                    continue
                offsets: list[int] = []
                values: list[bytes | None] = []
                for record in records:
                    if record.offset >= end:
                        break
                    offsets.append(record.offset)
                    values.append(record.value)
                if offsets:
                    yield tp.partition, offsets, values
                positions[tp.partition] = consumer.position(tp)
                if positions[tp.partition] >= end:
                    del remaining[tp.partition]
                    consumer.pause(tp)

    def _check_stall(self, last_progress: float, still_to_read: dict[int, int]) -> None:
        """A drain that gets nothing for stall_timeout fails (broker gone), committing nothing."""
        if time.monotonic() - last_progress > self.stall_timeout:
            raise DrainError(
                f"No records from {self.topic} for {self.stall_timeout:.0f}s; "
                f"still to read: {still_to_read}"
            )

    def commit(self, offsets: dict[int, int], metadata: str) -> None:
        """Commit the group's offsets (the next offset to read, per partition)."""
        self._consumer.commit(
            {
                TopicPartition(self.topic, partition): OffsetAndMetadata(offset, metadata, -1)
                for partition, offset in offsets.items()
            }
        )


class _Chunker:
    """Gathers pieces into chunks of exactly chunk_records: SpanChunks when every piece is a
    Segment, else RawChunks."""

    def __init__(self, chunk_records: int) -> None:
        self.chunk_records = max(1, chunk_records)
        self._pieces: list[Piece] = []
        self._count = 0

    def add(self, piece: Piece) -> Iterator[Chunk]:
        partition, offsets, values = piece
        while len(offsets):
            take = self.chunk_records - self._count
            if len(offsets) < take:
                self._pieces.append((partition, offsets, values))
                self._count += len(offsets)
                return
            self._pieces.append((partition, offsets[:take], values[:take]))
            self._count += take
            offsets, values = offsets[take:], values[take:]
            yield self._emit()

    def finish(self) -> Iterator[Chunk]:
        if self._count:
            yield self._emit()

    def _emit(self) -> Chunk:
        pieces, self._pieces, self._count = self._pieces, [], 0
        partitions = np.concatenate([np.full(len(o), p, dtype=np.int64) for p, o, _ in pieces])
        offsets = np.concatenate([o for _, o, _ in pieces])
        segments = [v for _, _, v in pieces if isinstance(v, Segment)]
        if len(segments) == len(pieces):
            return SpanChunk(partitions, offsets, tuple(segments))
        values: list[bytes | None] = []
        for _, _, piece_values in pieces:
            values.extend(
                piece_values.values() if isinstance(piece_values, Segment) else piece_values
            )
        return RawChunk(partitions=partitions, offsets=offsets, values=values)


class DeadLetters:
    """Copies rejected records to a topic, the reason and origin in headers."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        source_topic: str,
        security: KafkaSecurity = PLAINTEXT_SECURITY,
    ) -> None:
        self.topic = topic
        self.source_topic = source_topic
        ensure_topic(bootstrap_servers, topic, partitions=1, security=security)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            linger_ms=20,
            acks="all",
            **client_kwargs(security),
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
