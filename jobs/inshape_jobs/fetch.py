"""Raw Fetch requests on a connection of our own, for the drain's fast path.

kafka-python's consumer turns every record into a ConsumerRecord (~10 us each) and its network
layer reads sockets 4 KiB at a time (~100 MB/s); the drain needs only the record batches'
bytes, which batches.decode_batches reads ~10x faster. So this opens one connection per leader
(inshape_api.kafka_link: TLS and SASL as the consumer's KafkaSecurity says), encodes Fetch
requests (v4-v11: read_uncommitted, as the consumer fetches by default) and decodes the
responses with kafka-python's protocol classes, and reads whole responses with large
recv_into calls on a thread (the GIL is released while it waits on the socket, TLS
decryption included), so the next response arrives while the caller decodes this one.

Metadata (who leads which partition, the broker's Fetch versions) comes from the consumer.
Anything out of the ordinary (a partition error, a moved leader, a failed request, a refused
connection) raises FetchFallbackError: the caller then finishes the read with the consumer
itself, which knows how to recover.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.structs import TopicPartition

from inshape_api.kafka_link import KafkaAuthError, open_link
from inshape_api.kafka_security import KafkaSecurity

_FetchTopic = FetchRequest.FetchTopic
_FetchPartition = _FetchTopic.FetchPartition

# v4 is the first with isolation levels and record batches passed on as stored; v12 makes
# the headers flexible (tagged fields), which this reader does not need.
MIN_FETCH_VERSION, MAX_FETCH_VERSION = 4, 11
READ_UNCOMMITTED = 0
RECV_BYTES = 1 << 20
CLIENT_ID = "inshape-drain"


class FetchFallbackError(RuntimeError):
    """The raw fetch path cannot go on; the consumer should take over from here."""


@dataclass(frozen=True)
class PartitionFetch:
    partition: int
    fetch_offset: int
    records: bytes


class _BrokerLink:
    """One connection to one broker; a thread sends each request and reads its response."""

    def __init__(
        self, host: str, port: int, security: KafkaSecurity, timeout: float, receive_buffer: int
    ) -> None:
        try:
            # An ssl.SSLSocket with TLS: its recv_into and sendall work as a plain socket's.
            self._sock = open_link(host, port, security, timeout, receive_buffer=receive_buffer)
        except (OSError, KafkaAuthError) as exc:
            raise FetchFallbackError(f"Cannot connect to {host}:{port}: {exc}") from exc
        self._requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._responses: queue.SimpleQueue[bytearray | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inshape-fetch", daemon=True)
        self._thread.start()

    def send(self, frame: bytes) -> None:
        self._requests.put(frame)

    def receive(self, timeout: float) -> bytearray:
        try:
            response = self._responses.get(timeout=timeout)
        except queue.Empty:
            raise FetchFallbackError(f"No fetch response in {timeout:.0f}s") from None
        if isinstance(response, BaseException):
            raise FetchFallbackError(f"Fetch failed: {response!r}") from response
        return response

    def close(self) -> None:
        self._requests.put(None)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _run(self) -> None:
        while (frame := self._requests.get()) is not None:
            try:
                self._sock.sendall(frame)
                (size,) = struct.unpack(">i", self._read(4))
                self._responses.put(self._read(size))
            except BaseException as exc:  # handed to the caller, which falls back
                self._responses.put(exc)
                return

    def _read(self, size: int) -> bytearray:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self._sock.recv_into(view[got:], min(size - got, RECV_BYTES))
            if n == 0:
                raise ConnectionError("Broker closed the connection")
            got += n
        return buf


class RawFetcher:
    """Keeps at most one Fetch per leader in flight: send(), then receive() its records."""

    def __init__(
        self, consumer: Any, topic: str, config: dict[str, Any], security: KafkaSecurity
    ) -> None:
        # The consumer's own security: the raw links authenticate as it did.
        self._security = security
        self._cluster = consumer._cluster
        try:
            self._version = consumer._manager.broker_version_data.api_version(
                FetchRequest, min_version=MIN_FETCH_VERSION, max_version=MAX_FETCH_VERSION
            )
        except Exception as exc:
            raise FetchFallbackError(f"No usable Fetch version: {exc!r}") from exc
        self.topic = topic
        self._max_wait_ms = int(config.get("fetch_max_wait_ms", 500))
        self._min_bytes = int(config["fetch_min_bytes"])
        self._max_bytes = int(config["fetch_max_bytes"])
        self._partition_max_bytes = int(config["max_partition_fetch_bytes"])
        self._receive_buffer = int(config.get("receive_buffer_bytes", 1 << 20))
        self._timeout = (int(config["request_timeout_ms"]) + self._max_wait_ms) / 1000
        self._links: dict[int, _BrokerLink] = {}
        self._correlation_id = 0
        # (node, correlation id, partition -> fetch offset) of each request in flight
        self._in_flight: list[tuple[int, int, dict[int, int]]] = []

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()

    def _leader(self, partition: int) -> int:
        node = self._cluster.leader_for_partition(TopicPartition(self.topic, partition))
        if node is None or node == -1:
            raise FetchFallbackError(f"No known leader for {self.topic}/{partition}")
        return int(node)

    def _link(self, node: int) -> _BrokerLink:
        link = self._links.get(node)
        if link is None:
            broker = self._cluster.broker_metadata(node)
            if broker is None:
                raise FetchFallbackError(f"No address for broker {node}")
            link = _BrokerLink(
                broker.host, int(broker.port), self._security, self._timeout, self._receive_buffer
            )
            self._links[node] = link
        return link

    def send(self, positions: dict[int, int]) -> None:
        """Request every partition's records from its position, one request per leader."""
        if self._in_flight:
            raise RuntimeError("receive() the fetches in flight before sending more")
        by_node: dict[int, dict[int, int]] = {}
        for partition, offset in positions.items():
            by_node.setdefault(self._leader(partition), {})[partition] = offset
        for node, offsets in by_node.items():
            request = FetchRequest(
                max_wait_ms=self._max_wait_ms,
                min_bytes=self._min_bytes,
                max_bytes=self._max_bytes,
                isolation_level=READ_UNCOMMITTED,
                session_id=0,
                session_epoch=-1,  # no fetch session: every request is a full one
                topics=[
                    _FetchTopic(
                        topic=self.topic,
                        partitions=[
                            _FetchPartition(
                                partition=partition,
                                current_leader_epoch=-1,
                                fetch_offset=offset,
                                log_start_offset=-1,
                                partition_max_bytes=self._partition_max_bytes,
                            )
                            for partition, offset in offsets.items()
                        ],
                    )
                ],
                forgotten_topics_data=[],
                rack_id="",
            )
            request.API_VERSION = self._version
            self._correlation_id = (self._correlation_id + 1) % 2**31
            request.with_header(correlation_id=self._correlation_id, client_id=CLIENT_ID)
            self._link(node).send(request.encode(framed=True, header=True))
            self._in_flight.append((node, self._correlation_id, offsets))

    def receive(self) -> list[PartitionFetch]:
        """The raw records of every partition sent for, in request order."""
        in_flight, self._in_flight = self._in_flight, []
        fetched: list[PartitionFetch] = []
        for node, correlation_id, offsets in in_flight:
            body = self._links[node].receive(self._timeout)
            (got_id,) = struct.unpack_from(">i", body)
            if got_id != correlation_id:
                raise FetchFallbackError(f"Correlation id {got_id}, expected {correlation_id}")
            try:
                response = FetchResponse.decode(memoryview(body)[4:], version=self._version)
            except Exception as exc:
                raise FetchFallbackError(f"Undecodable fetch response: {exc!r}") from exc
            if getattr(response, "error_code", 0):
                raise FetchFallbackError(f"Fetch from {self.topic}: error {response.error_code}")
            for topic_data in response.responses:
                if topic_data.topic != self.topic:
                    continue
                for data in topic_data.partitions:
                    if data.error_code:
                        raise FetchFallbackError(
                            f"Fetch from {self.topic}/{data.partition_index}: "
                            f"error {data.error_code}"
                        )
                    if data.partition_index not in offsets:
                        continue
                    records = data.records
                    if records is None:
                        records = b""
                    elif not isinstance(records, bytes):
                        records = bytes(records)
                    fetched.append(
                        PartitionFetch(data.partition_index, offsets[data.partition_index], records)
                    )
        return fetched
